"""Model cards (issue 10): format, one-line errors per field, safe names, verified weights."""

import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from ronan.calibration import cache_path
from ronan.errors import CardError, ModelUnavailable
from ronan.models import cards, registry
from ronan.models.loader import build, read_state_dict, verified_weights

SHA = "ab" * 32
FACTORY = {"name": "my-gan", "factory": "pkg.mod:build", "input_shape": [8], "output_range": [-1, 1]}
FAMILY = {"name": "my-dcgan", "family": "dcgan", "config": {"latent_dim": 8, "base": 8}, "weights_sha256": SHA}


@pytest.mark.parametrize("patch, field", [
    ({"name": "../escape"}, "name"),
    ({"name": "My Model"}, "name"),
    ({"name": "a..b"}, "name"),
    ({"name": "none"}, "name"),
    ({"card_version": 2}, "card_version"),
    ({"card_version": "1"}, "card_version"),
    ({"role": "judge"}, "role"),
    ({"reference": "my-gan"}, "reference"),
    ({"reference": "../ref"}, "reference"),
    ({"factory": "not a factory"}, "factory"),
    ({"input_shape": None}, "input_shape"),
    ({"input_shape": [0]}, "input_shape"),
    ({"input_shape": "8"}, "input_shape"),
    ({"output_range": None}, "output_range"),
    ({"output_range": [0, 255]}, "output_range"),
    ({"input_distribution": "cauchy"}, "input_distribution"),
    ({"input_distribution": {"type": "normal", "std": -1}}, "input_distribution"),
    ({"input_distribution": {"type": "uniform", "low": 1, "high": 0}}, "input_distribution"),
    ({"resolution": 3}, "resolution"),
    ({"channels": 4}, "channels"),
    ({"preprocessing": {"fit": "zoom"}}, "preprocessing"),
    ({"preprocessing": {"resample": "magic"}}, "preprocessing"),
    ({"conditioning": {"type": "class", "classes": 1}}, "conditioning"),
    ({"conditioning": {"type": "class", "classes": 10, "label": 10}}, "conditioning"),
    ({"conditioning": {"type": "text"}}, "conditioning"),
    ({"weights_file": "model.pkl", "weights_sha256": SHA}, "weights_file"),
    ({"weights_file": "../other/model.safetensors", "weights_sha256": SHA}, "weights_file"),
    ({"weights_file": "model.safetensors"}, "weights_sha256"),
    ({"weights_file": "model.safetensors", "weights_sha256": "abc"}, "weights_sha256"),
    ({"config": [1, 2]}, "config"),
    ({"diffusers": "org/repo"}, "factory"),
    ({"learned_start": {"width": 4}}, "learned_start"),
    ({"learned_start": {"steps": True}}, "learned_start"),
    ({"learned_start": {"lr": 2}}, "learned_start"),
    ({"learned_start": {"depth": 3}}, "learned_start"),
    ({"learned_start": [64]}, "learned_start"),
    ({"preset": "quick"}, "preset"),
    ({"preset": "default"}, "preset"),  # a card names a preset, not "the model's own"
    ({"preset": 3}, "preset"),
    ({"weight_file": "model.safetensors"}, "weight_file"),  # a typo is an unknown field, not ignored
])
def test_each_bad_field_is_one_line_naming_it(tmp_path, patch, field):
    data = {k: v for k, v in {**FACTORY, **patch}.items() if v is not None}
    with pytest.raises(CardError) as e:
        cards.parse_card(data, "card.json", tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"card.json: {field}:"), msg


@pytest.mark.parametrize("patch, field", [
    ({"family": "stylegan9"}, "family"),
    ({"family": None}, "family"),
    ({"output_range": [0, 1]}, "output_range"),  # a bundled family defines its own output
    ({"family": "sd-latent", "diffusers": "org/repo"}, "weights_sha256"),
])
def test_family_and_diffusers_cards_reject_what_they_do_not_use(tmp_path, patch, field):
    data = {k: v for k, v in {**FAMILY, **patch}.items() if v is not None}
    if "diffusers" in patch:
        data = {"name": "d", "family": "ddim", "diffusers": "org/repo", "weights_file": "x.safetensors"}
        field = "weights_file"
    with pytest.raises(CardError, match=rf"^card.json: {field}:"):
        cards.parse_card(data, "card.json", tmp_path)


def test_valid_cards_and_defaults(tmp_path):
    c = cards.parse_card(dict(FACTORY, factory_path="code", weights_file="w.pt", weights_sha256=SHA), "c", tmp_path)
    assert c.kind == "factory" and c.family == "custom" and c.output_range == (-1.0, 1.0)
    assert c.factory_path == tmp_path / "code" and c.weights_file == tmp_path / "w.pt"
    assert c.input_distribution == cards.InputDistribution() and c.preprocessing == cards.Preprocessing()
    assert c.reference is None and c.role == "generator" and c.card_version == cards.CARD_VERSION
    c = cards.parse_card(FAMILY, "c", tmp_path)
    assert c.kind == "family" and c.weights_file == tmp_path / "model.safetensors"
    d = cards.parse_card({"name": "d", "family": "ddim", "diffusers": "google/ddpm-cifar10-32"}, "c", tmp_path)
    assert d.kind == "diffusers" and d.diffusers == "google/ddpm-cifar10-32"  # a hub id, not a path
    (tmp_path / "pipe").mkdir()
    d = cards.parse_card({"name": "d", "family": "ddim", "diffusers": "pipe"}, "c", tmp_path)
    assert d.diffusers == str(tmp_path / "pipe")


def test_every_bundled_card_is_valid_and_versioned():
    found = cards.scan(registry.assets_dir())
    assert {"dcgan-fmnist", "ref-photos"} <= set(found)
    for name, card in found.items():
        assert not isinstance(card, CardError), card
        assert card.raw.get("card_version") == cards.CARD_VERSION and card.description
        assert card.reference == registry.EXPECTED_BUNDLED[name].reference


def test_unreadable_card_files(tmp_path):
    with pytest.raises(CardError, match="no model card"):
        cards.read_card_file(tmp_path / "nope.json")
    bad = tmp_path / "card.json"
    bad.write_text("{not json")
    with pytest.raises(CardError, match="not valid JSON"):
        cards.read_card_file(tmp_path)  # a folder means its card.json
    bad.write_text("[1, 2]")
    with pytest.raises(CardError, match="must be a JSON object"):
        cards.read_card_file(bad)


@pytest.mark.parametrize("name", ["../../escape", "/etc/passwd", "a/b", "..", "UPPER", "-x", "x" * 65, "", "default"])
def test_path_like_names_are_refused(name):
    assert not cards.is_safe_name(name)
    with pytest.raises(CardError, match="invalid model name"):
        cards.validate_name(name)


def test_cache_path_never_leaves_the_cache_folder(tmp_path):
    """Second line of defence: a Generator named ``../../escape`` still caches inside the folder."""
    key = {"model": "../../escape", "reference": "../x", "distance": "mse", "n": 3}
    p = cache_path(key, tmp_path)
    assert p.parent == tmp_path and ".." not in p.name and "/" not in p.name
    ok = cache_path({"model": "dcgan-fmnist", "reference": None, "distance": "mse"}, tmp_path)
    assert ok.name.startswith("dcgan-fmnist__none__mse__")


def _family_card(tmp_path, **patch):
    torch.manual_seed(0)
    from ronan.models.dcgan import DCGAN

    folder = tmp_path / "my-dcgan"
    folder.mkdir(exist_ok=True)
    save_file(DCGAN(latent_dim=8, base=8).state_dict(), str(folder / "model.safetensors"))
    from ronan.images import sha256_file

    data = dict(FAMILY, weights_sha256=sha256_file(folder / "model.safetensors"), **patch)
    cards.write_card(data, folder)
    return cards.read_card_file(folder)


def test_weights_are_verified_by_hash(tmp_path):
    card = _family_card(tmp_path)
    path, digest = verified_weights(card)
    g = build(card)
    assert g.weights_sha256 == digest == card.weights_sha256 and g.name == "my-dcgan" and not g.training
    data = path.read_bytes()
    path.write_bytes(data[:-4] + b"\0\0\0\0")  # changed bytes: refused before anything is loaded
    with pytest.raises(ModelUnavailable, match="does not match the SHA-256"):
        build(card)
    path.unlink()
    with pytest.raises(ModelUnavailable, match="is missing"):
        build(card)


def test_card_fields_are_checked_against_the_model(tmp_path):
    with pytest.raises(CardError, match="resolution: the card says 32, the model has 28"):
        build(_family_card(tmp_path, resolution=32))
    with pytest.raises(CardError, match="config: does not fit family"):
        build(_family_card(tmp_path, config={"latent_dim": 8, "base": 8, "depth": 3}))
    with pytest.raises(CardError, match="config: does not fit family .*negative dimension"):  # was a traceback
        build(_family_card(tmp_path, config={"latent_dim": -1, "base": 8}))
    with pytest.raises(CardError, match="weights do not fit"):
        build(_family_card(tmp_path, config={"latent_dim": 9, "base": 8}))


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_objects_are_never_unpickled(tmp_path):
    good = {"w": torch.ones(2)}
    torch.save(good, tmp_path / "good.pt")
    assert torch.equal(read_state_dict(tmp_path / "good.pt")["w"], good["w"])
    torch.save({"G": good, "step": 3}, tmp_path / "nested.pt")
    assert set(read_state_dict(tmp_path / "nested.pt", key="G")) == {"w"}
    with pytest.raises(CardError, match="weights_key"):
        read_state_dict(tmp_path / "nested.pt")
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"w": _Evil()}, protocol=2))
    with pytest.raises(CardError, match=r"weights_only=True\) refused it"):
        read_state_dict(tmp_path / "evil.pt")
    torch.save({"generator.w": torch.ones(1), "disc.w": torch.zeros(1)}, tmp_path / "gan.pt")
    assert set(read_state_dict(tmp_path / "gan.pt", prefix="generator.")) == {"w"}
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(CardError, match="not a readable safetensors file"):
        read_state_dict(tmp_path / "bad.safetensors")


def test_user_folder_names_never_shadow_bundled_models(tmp_path, monkeypatch):
    monkeypatch.setenv("RONAN_MODELS_DIR", str(tmp_path))
    for name in ("dcgan-fmnist", "other"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "card.json").write_text(json.dumps(dict(FAMILY, name=name)))
    (tmp_path / "mismatch").mkdir()
    (tmp_path / "mismatch" / "card.json").write_text(json.dumps(dict(FAMILY, name="something-else")))
    (tmp_path / "Bad Name").mkdir()
    (tmp_path / "Bad Name" / "card.json").write_text(json.dumps(FAMILY))
    cat = registry.catalogue()
    assert cat["dcgan-fmnist"].source == "bundled"
    assert any("'dcgan-fmnist'" in p and "ignored" in p for p in registry.problems())
    assert cat["other"].source == "user" and "Bad Name" not in cat
    ok, reason = registry.availability("mismatch")
    assert not ok and "differs from its folder name" in reason
    ok, reason = registry.availability("other")
    assert not ok and "missing" in reason
    with pytest.raises(ModelUnavailable, match="by path on the command line"):
        registry.load_model("some/card.json")  # a str is a name, never a path
