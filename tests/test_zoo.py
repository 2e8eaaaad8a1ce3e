"""The bundled zoo: weights verified, and the method's decisions on a handful of images."""

import pytest
import torch

from ronan.attribution import attribute_batch
from ronan.calibration import get_distribution
from ronan.errors import ModelUnavailable
from ronan.generation import as_uploads, generate, generate_pil
from ronan.images import load_image
from ronan.inversion import invert, resolve_settings
from ronan.models.registry import default_reference, list_models, load_model


def test_all_bundled_models_load_and_are_verified():
    bundled = [i for i in list_models() if i.source == "bundled"]
    assert {"dcgan-fmnist", "dcgan-fmnist-seed1", "cgan-fmnist", "vae-fmnist", "ref-photos"} <= {
        i.name for i in bundled if i.available}
    for info in bundled:
        if info.card is None:  # expected, not trained here yet: unavailable, saying how to get it
            assert not info.available and "retrain" in info.reason
            continue
        assert info.available, info.reason
        m = load_model(info.name)
        assert m.weights_sha256 and not m.training
        assert all(not p.requires_grad for p in m.parameters())
        assert default_reference(info.name) != info.name
    assert load_model("dcgan-fmnist") is load_model("dcgan-fmnist")  # loaded once, shared


def test_committed_calibrations_are_current():
    for name in [i.name for i in list_models() if i.source == "bundled" and i.card is not None]:
        m = load_model(name)
        ref = load_model(default_reference(name))
        dist = get_distribution(m, ref, settings=resolve_settings(model=m), n=100, seed=0, build=False)
        assert dist.n == 100 and dist.std > 0


REPRODUCED_RTOL = 0.05
"""Relative tolerance of a re-inverted calibration loss (benchmarks/RESULTS.md, "Reproducibility")."""


@pytest.mark.parametrize("name", ["dcgan-fmnist", "cgan-fmnist"])
def test_a_few_calibration_samples_reinvert_to_the_committed_losses(name):
    """Expected values: the first calibration samples, inverted again here, give the committed losses."""
    m = load_model(name)
    ref = load_model(default_reference(name))
    settings = resolve_settings(model=m)
    dist = get_distribution(m, ref, settings=settings, build=False)
    x = generate(m, 100, dist.seed, purpose="calibration")[:4]
    res = invert(m, x, settings=settings, seed=dist.seed)
    committed = torch.tensor(dist.losses[:4], dtype=torch.float64)
    assert torch.allclose(res.loss.double(), committed, rtol=REPRODUCED_RTOL, atol=0), (res.loss, committed)
    ref_res = invert(ref, x, settings=settings.for_reference(), seed=dist.seed)  # the reference: its own settings
    committed = torch.tensor(dist.reference_losses[:4], dtype=torch.float64)
    assert torch.allclose(ref_res.loss.double(), committed, rtol=REPRODUCED_RTOL, atol=0), (ref_res.loss, committed)


def test_unknown_and_damaged_models(tmp_path, monkeypatch):
    with pytest.raises(ModelUnavailable, match="unknown model"):
        load_model("nope")
    monkeypatch.setenv("RONAN_ASSETS_DIR", str(tmp_path))
    from ronan.models import registry

    ok, reason = registry.availability("dcgan-fmnist")
    assert not ok and "card" in reason
    src = registry.REPO_ROOT / "assets" / "models" / "dcgan-fmnist"
    (tmp_path / "dcgan-fmnist").mkdir()
    (tmp_path / "dcgan-fmnist" / "card.json").write_text((src / "card.json").read_text())
    (tmp_path / "dcgan-fmnist" / "model.safetensors").write_bytes(b"tampered")
    ok, reason = registry.availability("dcgan-fmnist")
    assert not ok and "SHA-256" in reason


def test_belonging_and_non_belonging(real_images):
    model = load_model("dcgan-fmnist")
    own = as_uploads(generate_pil(model, 4, seed=321), "own")
    vae = as_uploads(generate_pil(load_model("vae-fmnist"), 3, seed=321), "vae")
    twin = as_uploads(generate_pil(load_model("dcgan-fmnist-seed1"), 3, seed=321), "seed1")
    real = [load_image(p) for p in real_images[:4]]
    results = attribute_batch(own + vae + twin + real, "dcgan-fmnist")
    verdicts = [r.belonging for r in results]
    assert verdicts == [True] * 4 + [False] * 10, [(r.image, r.statistic) for r in results]
    for r in results:
        assert r.reference == "ref-photos" and r.n_calibration == 100 and r.alpha == 0.05
        assert (r.statistic < r.critical_value) == r.belonging
        assert r.calibrated_loss == pytest.approx(r.loss / r.reference_loss)
    assert max(r.calibrated_loss for r in results[:4]) < min(r.calibrated_loss for r in results[4:])


def test_attribution_result_is_reproducible_and_serialisable(real_images):
    import json

    a = attribute_batch([real_images[5]], "dcgan-fmnist", seed=3)[0]
    b = attribute_batch([real_images[5]], "dcgan-fmnist", seed=3)[0]
    assert a.loss == b.loss and a.statistic == b.statistic
    d = json.loads(json.dumps(a.to_dict()))
    assert d["image_sha256"] == a.image_sha256 and d["settings"]["steps"] == a.settings["steps"]
    assert "torch" in d["versions"] and len(d["history"]) == a.steps_run + 1
    # Adam's steps, then the refinement's iterations, which a real image ends before their cap (LM stalls)
    cap = a.settings["steps"] + a.settings["refine_steps"]
    assert a.settings["steps"] < d["steps_run"] < cap and len(d["reference_history"]) == d["reference_steps_run"] + 1
    assert a.explanation().startswith("dcgan-fmnist cannot reconstruct")


def test_generated_images_are_defined_by_seed_and_n():
    """As `generate` documents: the batch size never changes the images; `n` may, where the input's size
    is not a multiple of 16 (dcgan64-clipart: 100 inputs; the last of 5 images differs)."""
    m = load_model("dcgan64-clipart")
    five = generate(m, 5, 7)
    assert torch.equal(five, generate(m, 5, 7, batch=2))
    sixteen = generate(m, 16, 7)
    assert torch.equal(five[:4], sixteen[:4]) and not torch.equal(five[4], sixteen[4])
