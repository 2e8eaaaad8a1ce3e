import json

import pytest
import torch

from ronan.calibration import (BelongingDistribution, build_distribution, cache_path, calibrate_losses,
                               get_distribution, load_distribution, save_distribution)
from ronan.errors import CalibrationError
from ronan.inversion import InversionSettings
from ronan.models.dcgan import DCGAN

SETTINGS = InversionSettings(steps=40, lr=0.1, restarts=2)


@pytest.fixture
def tiny_ref():
    torch.manual_seed(99)
    g = DCGAN(latent_dim=8, base=8)
    g.name, g.weights_sha256 = "tiny-ref", "1" * 64
    return g.freeze()


def test_calibrated_loss_is_eq2():
    loss, ref = torch.tensor([0.2, 1e-3, 0.5]), torch.tensor([0.4, 1e-3, 0.0])
    out = calibrate_losses(loss, ref)
    assert out[:2].tolist() == pytest.approx([0.5, 1.0])
    assert torch.isfinite(out[2]) and out[2] > 1e10  # zero reference loss is floored, not a division by zero
    assert torch.equal(calibrate_losses(loss, None), loss)


def test_build_save_load_roundtrip(tiny_dcgan, tiny_ref, cache_tmp):
    dist = build_distribution(tiny_dcgan, tiny_ref, settings=SETTINGS, n=6, seed=1)
    assert dist.n == 6 and len(dist.values) == 6
    expected = [l / r for l, r in zip(dist.losses, dist.reference_losses)]
    assert dist.values == pytest.approx(expected)
    assert dist.std == pytest.approx(torch.tensor(dist.values, dtype=torch.float64).std().item())
    path = save_distribution(dist)
    assert path.parent == cache_tmp and path.name.startswith("tiny-dcgan__tiny-ref__mse__")
    assert not list(cache_tmp.glob(".tmp-*"))  # atomic write leaves no temp file
    again = load_distribution(path, dist.key())
    assert again.values == dist.values and again.mean == dist.mean


def test_cache_is_reused_and_keyed(tiny_dcgan, tiny_ref, cache_tmp):
    a = get_distribution(tiny_dcgan, tiny_ref, settings=SETTINGS, n=5, seed=0)
    b = get_distribution(tiny_dcgan, tiny_ref, settings=SETTINGS, n=5, seed=0, build=False)
    assert a.created == b.created and a.values == b.values
    for change in [dict(n=6), dict(seed=1), dict(settings=InversionSettings(steps=41, lr=0.1, restarts=2))]:
        kwargs = dict(settings=SETTINGS, n=5, seed=0) | change
        with pytest.raises(CalibrationError):
            get_distribution(tiny_dcgan, tiny_ref, build=False, **kwargs)
    with pytest.raises(CalibrationError):  # no reference is another key
        get_distribution(tiny_dcgan, None, settings=SETTINGS, n=5, seed=0, build=False)
    tiny_dcgan.weights_sha256 = "2" * 64  # new weights: stale cache is not used
    with pytest.raises(CalibrationError):
        get_distribution(tiny_dcgan, tiny_ref, settings=SETTINGS, n=5, seed=0, build=False)


def test_damaged_cache_is_rejected_and_rebuilt(tiny_dcgan, tiny_ref, cache_tmp):
    dist = get_distribution(tiny_dcgan, tiny_ref, settings=SETTINGS, n=5, seed=0)
    path = cache_path(dist.key())
    data = json.loads(path.read_text())
    data["mean"] *= 2
    path.write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match="mean/std"):
        load_distribution(path)
    with pytest.raises(CalibrationError):
        get_distribution(tiny_dcgan, tiny_ref, settings=SETTINGS, n=5, seed=0, build=False)
    rebuilt = get_distribution(tiny_dcgan, tiny_ref, settings=SETTINGS, n=5, seed=0)
    assert rebuilt.mean == pytest.approx(dist.mean)
    path.write_text("{not json")
    with pytest.raises(CalibrationError, match="unreadable"):
        load_distribution(path)


def test_validation_rejects_bad_values():
    base = dict(model="m", model_sha256=None, model_options={}, reference=None, reference_sha256=None, distance="mse", settings={},
                n=3, seed=0, losses=[1, 2, 3], reference_losses=None)
    with pytest.raises(CalibrationError):
        BelongingDistribution.from_dict(base | dict(values=[1.0, float("nan"), 2.0], mean=1.0, std=1.0))
    with pytest.raises(CalibrationError):
        BelongingDistribution.from_dict(base | dict(values=[1.0, 2.0], mean=1.5, std=0.7))
    ok = BelongingDistribution.from_dict(base | dict(values=[1.0, 2.0, 3.0], mean=2.0, std=1.0))
    assert ok.n == 3


def test_belonging_samples_inverted_with_query_settings(tiny_dcgan, tiny_ref, cache_tmp):
    dist = build_distribution(tiny_dcgan, tiny_ref, settings=SETTINGS, n=4, seed=0)
    assert dist.settings == SETTINGS.to_dict() and dist.distance == "mse"
    assert max(dist.losses) < min(dist.reference_losses)  # own samples: easier on M than on M_r


def test_ssim_with_one_restart_is_flagged(tiny_dcgan, cache_tmp, real_images):
    from ronan.attribution import attribute

    one = attribute(real_images[0], tiny_dcgan, reference=None, distance="ssim", steps=10, restarts=1, n_calibration=5)
    assert any("restarts=4 is recommended" in n for n in one.notes)
    four = attribute(real_images[0], tiny_dcgan, reference=None, distance="ssim", steps=10, restarts=4, n_calibration=5)
    mse = attribute(real_images[0], tiny_dcgan, reference=None, steps=10, n_calibration=5)
    assert not any("restarts" in n for n in four.notes + mse.notes)
