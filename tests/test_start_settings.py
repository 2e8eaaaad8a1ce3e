"""Per-model start networks (issue 9): a card's ``learned_start`` trains, keys and records the model's
own start network, and the keys of models without one stay what they were."""

import json

import torch

from ronan import starts
from ronan.calibration import distribution_key, model_side_key
from ronan.inversion import PRESETS, invert
from ronan.models import cards
from ronan.models.registry import load_model


def test_a_card_learned_start_is_parsed_with_defaults_kept(tmp_path):
    data = {"name": "my-dcgan", "family": "dcgan", "config": {"latent_dim": 8, "base": 8}, "weights_sha256": "ab" * 32,
            "learned_start": {"width": 64, "steps": 9600, "lr": 1e-3}}
    card = cards.parse_card(data, "card.json", tmp_path)
    assert card.learned_start == {"width": 64, "steps": 9600, "lr": 1e-3}
    assert cards.parse_card({k: v for k, v in data.items() if k != "learned_start"}, "c", tmp_path).learned_start is None


def test_settings_for_applies_the_model_settings_over_the_defaults(tiny_dcgan):
    assert starts.settings_for(tiny_dcgan) == starts.StartSettings()
    tiny_dcgan.start_settings = {"width": 8, "steps": 30}
    assert starts.settings_for(tiny_dcgan) == starts.StartSettings(width=8, steps=30)


def test_the_model_start_settings_train_key_and_record_its_own_network(tiny_dcgan, cache_tmp):
    images = tiny_dcgan.generate(tiny_dcgan.sample_inputs(4, torch.Generator().manual_seed(3))).detach()
    default_key = distribution_key(tiny_dcgan, None, "mse", PRESETS["fast"], 100, 0)
    tiny_dcgan.start_settings = {"width": 8, "steps": 30, "batch": 16}
    own = starts.settings_for(tiny_dcgan)
    net, digest = starts.get_inverse(tiny_dcgan)  # trained with the model's settings, cached under their key
    assert net.features[0].out_channels == 8 and len(digest) == 64  # width 8, not the default 32
    record = json.loads(next(cache_tmp.glob("starts/tiny-dcgan__start__*.json")).read_text())
    assert record["key"] == starts.start_key(tiny_dcgan, own) and record["key"]["settings"]["width"] == 8
    start = starts.learned_inputs(tiny_dcgan, images)
    assert torch.equal(start, net(images).view_as(start))
    res = invert(tiny_dcgan, images, settings=PRESETS["fast"], seed=0)  # the engine's learned start is this network
    assert torch.isfinite(res.loss).all()
    key = distribution_key(tiny_dcgan, None, "mse", PRESETS["fast"], 100, 0)
    assert key["settings"]["learned_start"] == own.to_dict() != default_key["settings"]["learned_start"]
    assert PRESETS["fast"].to_dict(generator=tiny_dcgan)["learned_start"]["width"] == 8
    assert "learned_start" not in PRESETS["paper"].to_dict(generator=tiny_dcgan)


def test_a_reference_with_its_own_start_settings_enters_only_the_reference_side(tiny_dcgan):
    model = load_model("dcgan-fmnist")
    plain = distribution_key(model, tiny_dcgan, "mse", PRESETS["fast"], 100, 0)
    assert "reference_learned_start" not in plain  # keys of models without card settings unchanged
    tiny_dcgan.start_settings = {"width": 16}
    key = distribution_key(model, tiny_dcgan, "mse", PRESETS["fast"], 100, 0)
    assert key["reference_learned_start"]["width"] == 16
    assert model_side_key(key) == model_side_key(plain)  # the model's losses are unaffected


def test_the_bundled_late_model_uses_its_committed_larger_start_network():
    model = load_model("upgan64-clipart")
    assert model.start_settings == {"width": 64, "batch": 512, "steps": 9600}
    net, digest = starts.get_inverse(model, build=False)  # committed with the repository, verified by SHA-256
    assert net.head.out_features == 128 and len(digest) == 64


def test_an_attribution_records_the_start_networks_it_began_from(real_images):
    from ronan.attribution import attribute

    result = attribute(real_images[0], "dcgan-fmnist")  # default preset, committed distribution
    model, ref = load_model("dcgan-fmnist"), load_model(result.reference)
    assert result.start_sha256["model"] == starts.get_inverse(model, build=False)[1]
    if starts.supports(ref):
        assert result.start_sha256["reference"] == starts.get_inverse(ref, build=False)[1]
    assert result.to_dict()["start_sha256"] == result.start_sha256
    paper = attribute(real_images[0], "dcgan-fmnist", reference=None, preset="paper", n_calibration=5, steps=5)
    assert paper.start_sha256 is None  # the paper's procedure starts from random inputs only
