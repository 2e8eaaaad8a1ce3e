"""README "Check images against your own model", run end to end (issue 10).

The bash block of that README section is executed line by line as a user would type it (the
``ronan`` command is ``python -m ronan`` here, files under ``/tmp/`` go to the test's folder),
then the registered model is used through the app's API, as ``python app.py`` serves it.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

SECTION = "## Check images against your own model"


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text[text.index(SECTION):], re.S).group(1)
    lines = []
    for raw in block.replace("\\\n", " ").splitlines():
        line = raw.split("  #")[0].strip()
        if line:
            lines.append(line)
    return lines


@pytest.fixture(scope="module")
def worked_example(tmp_path_factory):
    """Run the README lines; returns (tmp folder, env, outputs of each line)."""
    tmp = tmp_path_factory.mktemp("worked")
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    (bin_dir / "ronan").write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m ronan \"$@\"\n")
    (bin_dir / "ronan").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(REPO),
               RONAN_MODELS_DIR=str(tmp / "models"), RONAN_CACHE_DIR=str(tmp / "cache"), OMP_NUM_THREADS="2")
    outputs = {}
    for line in readme_commands():
        if line.startswith("python app.py"):
            continue  # the app is checked below, through its API
        cmd = line.replace("/tmp/", f"{tmp}/").replace("python ", f"{shlex.quote(sys.executable)} ", 1)
        p = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
        assert p.returncode == 0 and "Traceback" not in p.stderr, f"{line}\n{p.stdout}\n{p.stderr}"
        outputs[line] = p.stdout
    return tmp, env, outputs


def test_readme_commands_run(worked_example):
    tmp, _, outputs = worked_example
    lines = list(outputs)
    assert any(line.startswith("ronan register my-gan") for line in lines)
    assert "my-gan" in outputs["ronan models | grep my-gan"] and "ready" in outputs["ronan models | grep my-gan"]
    card = tmp / "models" / "my-gan" / "card.json"
    assert card.is_file() and "examples" in card.read_text()  # the factory's folder, absolute
    calibrated = next(o for line, o in outputs.items() if line.startswith("ronan attribute") and "none" not in line)
    verdicts = [row.split(": ")[1].split()[0] for row in calibrated.splitlines()]
    assert verdicts == ["BELONGING", "BELONGING", "NON-BELONGING"], calibrated
    assert "/ ref None" not in calibrated
    plain = next(o for line, o in outputs.items() if line.startswith("ronan attribute") and "none" in line)
    assert "BELONGING" in plain and "/ ref None" in plain, plain


def test_registered_model_in_the_app(worked_example, monkeypatch):
    pytest.importorskip("gradio")
    from gradio_client import Client, handle_file

    tmp, env, _ = worked_example
    for key in ("RONAN_MODELS_DIR", "RONAN_CACHE_DIR"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setenv("RONAN_ALLOW_BUILDS", "1")  # a workstation: its operator lets the app build distributions
    import app
    from app_server import free_port

    assert ("my-gan (your model)", "my-gan") in app._model_choices()
    assert "my MLP generator" in app.model_info("my-gan")
    demo = app.build_demo()  # as `python app.py` builds it at start, with the cards on disk now
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app.LAUNCH_KWARGS)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        out = client.predict(handle_file(str(tmp / "mine" / "000001.png")), "my-gan", "default", "mse", "fast", None,
                             None, None, 0.05, 0, True, "auto", "robust", api_name="/attribute")
        report = out[5]
        assert report["verdict"] == "belonging", report
        assert report["attribution"]["reference"] == "ref-photos"
    finally:
        demo.close()


def test_card_given_by_path(worked_example):
    """A card outside any models folder, given directly to the CLI (folder or card.json)."""
    import json

    tmp, env, _ = worked_example
    loose = tmp / "loose-card"
    shutil.copytree(tmp / "models" / "my-gan", loose)
    image = str(tmp / "mine" / "000001.png")
    env = dict(env, RONAN_MODELS_DIR=str(tmp / "empty-models"))  # not registered here
    for model in (str(loose), str(loose / "card.json")):
        p = subprocess.run([sys.executable, "-m", "ronan", "attribute", model, image, "--json"], capture_output=True,
                           text=True, cwd=REPO, env=env, timeout=300)
        assert p.returncode == 0, p.stderr
        row = json.loads(p.stdout)[0]
        assert row["model"] == "my-gan" and row["verdict"] == "belonging" and row["reference"] == "ref-photos"
    p = subprocess.run([sys.executable, "-m", "ronan", "attribute", "my-gan", image], capture_output=True, text=True,
                       cwd=REPO, env=env, timeout=300)
    assert p.returncode == 2 and p.stderr.startswith("error: unknown model 'my-gan'")
