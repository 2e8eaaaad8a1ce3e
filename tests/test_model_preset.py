"""A model card's ``preset``: the inversion preset its attributions use when none is asked for
(the preset ``"default"``), recorded as the preset that ran; an explicit preset still wins."""

from dataclasses import replace

import pytest

from ronan import studio
from ronan.attribution import attribute
from ronan.cli import main, result_line
from ronan.inversion import PRESETS, resolve_settings
from ronan.models import cards, registry
from ronan.prepare import prepare
from ronan.preset_names import DEFAULT_PRESET, MODEL_PRESET, preset_name
from ronan.starts import settings_for


def test_a_card_preset_is_parsed(tmp_path):
    data = {"name": "my-dcgan", "family": "dcgan", "config": {"latent_dim": 8, "base": 8}, "weights_sha256": "ab" * 32}
    assert cards.parse_card({**data, "preset": "thorough"}, "card.json", tmp_path).preset == "thorough"
    assert cards.parse_card(data, "card.json", tmp_path).preset is None


def test_default_names_the_model_own_preset_and_an_explicit_one_wins(tiny_dcgan):
    assert preset_name(None, tiny_dcgan) == preset_name(MODEL_PRESET, tiny_dcgan) == DEFAULT_PRESET
    tiny_dcgan.default_preset = "thorough"
    assert preset_name(None, tiny_dcgan) == preset_name(MODEL_PRESET, tiny_dcgan) == preset_name("", tiny_dcgan)
    assert preset_name(None, tiny_dcgan) == "thorough" and preset_name("paper", tiny_dcgan) == "paper"
    assert resolve_settings(model=tiny_dcgan) == PRESETS["thorough"]
    assert resolve_settings("default", model=tiny_dcgan) == PRESETS["thorough"]
    assert resolve_settings("fast", model=tiny_dcgan) == PRESETS["fast"]
    assert resolve_settings() == PRESETS[DEFAULT_PRESET]  # no model: the global default
    with pytest.raises(ValueError, match="choose one of default, "):
        resolve_settings("quick", model=tiny_dcgan)


def test_an_attribution_runs_and_records_the_model_own_preset(tiny_dcgan, real_images, cache_tmp):
    tiny_dcgan.default_preset = "paper"
    common = {"reference": None, "steps": 30, "n_calibration": 5, "edit": "none", "contrast": "off"}
    r = attribute(real_images[0], tiny_dcgan, **common)
    assert r.preset == "paper" and r.settings["steps"] == 30 and r.settings["lr"] == PRESETS["paper"].lr
    other = attribute(real_images[0], tiny_dcgan, preset="fast-adam", **common)
    assert other.preset == "fast-adam" and other.settings["lr"] == PRESETS["fast-adam"].lr  # an explicit preset wins
    assert result_line(r).endswith(" s, preset paper)") and result_line(other).endswith(" s, preset fast-adam)")  # the CLI line
    assert "preset" not in result_line(replace(r, preset="fast"))  # the usual one goes unsaid


def test_the_late_model_defaults_to_two_path_and_its_distributions_are_committed():
    p = prepare("upgan64-clipart", device="cpu")
    assert p.preset == "two-path" and p.settings == PRESETS["two-path"]
    assert prepare("upgan64-clipart", preset="fast", device="cpu").preset == "fast"
    ready, line = studio.distribution_status("upgan64-clipart")
    assert ready and "preset two-path" in line, line
    assert studio.has_distribution(prepare("upgan64-clipart", preset="thorough", device="cpu"))  # the one before
    assert prepare("dcgan64-clipart", device="cpu").preset == "fast"  # models whose card names none


def test_the_cli_default_preset_is_the_model_own(capsys):
    with pytest.raises(SystemExit):
        main(["attribute", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "default: default, the model card's preset, else fast" in out


def test_the_model_lists_and_the_app_name_the_card_preset():
    choices = {c.name: c for c in studio.model_choices()}
    assert choices["upgan64-clipart"].preset == "two-path" and choices["dcgan64-clipart"].preset is None
    pytest.importorskip("gradio")
    import app

    assert "names the <b>two-path</b> inversion preset" in app.model_info("upgan64-clipart")
    assert "inversion preset" not in app.model_info("dcgan64-clipart")


def test_register_writes_the_preset_and_the_start_network(models_tmp, capsys):
    """`ronan register --preset --learned-start`: both fields on the card, both on the loaded model."""
    common = ["--factory", "test_user_models:tiny_generator", "--input-shape", "8", "--output-range=-1,1"]
    args = ["register", "tiny-own", *common, "--preset", "thorough", "--learned-start", '{"steps": 50, "width": 16}']
    assert main(args) == 0
    card = cards.read_card_file(models_tmp / "tiny-own" / "card.json")
    assert card.preset == "thorough" and card.learned_start == {"steps": 50, "width": 16}
    g = registry.load_model("tiny-own")
    assert g.default_preset == "thorough" and preset_name(None, g) == "thorough"
    assert (settings_for(g).steps, settings_for(g).width) == (50, 16)
    capsys.readouterr()
    for extra, msg in [
        (["--learned-start", '{"steps": 0}'], "learned_start: steps must be an integer"),
        (["--learned-start", "steps=50"], "--learned-start: not valid JSON"),
    ]:
        assert main(["register", "tiny-bad", *common, *extra]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and msg in lines[0], lines
    assert not (models_tmp / "tiny-bad").exists()  # nothing written
    with pytest.raises(SystemExit):  # argparse refuses an unknown preset
        main(["register", "tiny-bad", *common, "--preset", "default"])
