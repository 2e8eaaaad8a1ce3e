"""One preparation step (ronan.prepare): the reference vocabulary, models and settings checked once."""

from __future__ import annotations

import pytest
from PIL import Image

from ronan.attribution import attribute, attribute_batch
from ronan.errors import CalibrationError
from ronan.inversion import FALLBACK_PRESETS, PRESETS
from ronan.prepare import Prepared, prepare, reference_name


def test_reference_vocabulary(tiny_dcgan):
    """One reading everywhere: "default" (or "") is the pairing, None or "none" (any case) is no calibration."""
    assert reference_name("dcgan-fmnist", "default") == "ref-photos"
    assert reference_name("dcgan-fmnist", "") == "ref-photos"
    for no in (None, "none", "None", "NONE"):
        assert reference_name("dcgan-fmnist", no) is None
    assert reference_name("dcgan-fmnist", "vae-fmnist") == "vae-fmnist"
    assert reference_name(tiny_dcgan, "default") is None  # an adapter without a pairing: no calibration
    assert reference_name("dcgan-fmnist", tiny_dcgan) is tiny_dcgan


def test_prepare_resolves_once(tiny_dcgan):
    p = prepare(tiny_dcgan, None, steps=7)
    assert isinstance(p, Prepared) and p.model is tiny_dcgan and p.reference is None
    assert p.settings.steps == 7 and p.preset == "fast" and p.distance == "mse" and p.device.type == "cpu"
    # a preset whose refinement cannot apply falls back (SSIM: no Levenberg-Marquardt)
    assert prepare(tiny_dcgan, None, distance="ssim").settings == PRESETS[FALLBACK_PRESETS["fast"]]
    with pytest.raises(CalibrationError, match="own reference"):
        prepare(tiny_dcgan, tiny_dcgan)
    with pytest.raises(ValueError, match="unknown preset"):
        prepare(tiny_dcgan, None, preset="bogus")


def test_a_prepared_model_is_used_as_is(tiny_dcgan, cache_tmp):
    # the paper's preset: no start network to train for the tiny model (50 s), the reuse is the point
    p = prepare(tiny_dcgan, None, preset="paper", steps=5)
    img = Image.new("L", (28, 28), 40)
    a = attribute(img, p, n_calibration=5)
    b = attribute(img, tiny_dcgan, reference=None, preset="paper", steps=5, n_calibration=5)  # prepared inside
    assert (a.loss, a.statistic, a.settings, a.preset) == (b.loss, b.statistic, b.settings, b.preset)
    with pytest.raises(ValueError, match="steps: already fixed by the prepared model"):
        attribute_batch([img], p, steps=9)
