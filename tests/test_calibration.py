import json
from dataclasses import replace

import pytest
import torch

from ronan.attribution import attribute
from ronan.calibration import (BelongingDistribution, build_distribution, cache_path, calibrate_losses,
                               distribution_key, get_distribution, load_distribution, model_side_key,
                               save_distribution)
from ronan.errors import CalibrationError
from ronan.generation import generate
from ronan.images import load_image
from ronan.inversion import PRESETS, InversionSettings, invert
from ronan.models.dcgan import DCGAN
from ronan.prepare import Prepared

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
    # MSE with one restart gets no such note (the paper's preset: no start network to train here)
    mse = attribute(real_images[0], tiny_dcgan, reference=None, preset="paper", steps=10, restarts=1, n_calibration=5)
    assert not any("restarts" in n for n in four.notes + mse.notes)


LM = InversionSettings(steps=30, lr=0.1, refine_steps=4)
"""Adam, then 4 Levenberg-Marquardt iterations, for both models."""
CHEAP_REF = replace(LM, reference_refine_steps=0)
"""The same for the model; the reference model's inversions stop after Adam (as ``fast``'s)."""


def test_reference_settings_key_a_distribution_only_when_they_differ(tiny_dcgan, tiny_ref):
    assert LM.for_reference() is LM and CHEAP_REF.for_reference() == replace(LM, refine_steps=0)
    assert "reference_refine_steps" not in replace(LM, reference_refine_steps=4).to_dict()  # same as the model's
    assert CHEAP_REF.to_dict()["reference_refine_steps"] == 0
    key = lambda ref, s: distribution_key(tiny_dcgan, ref, "mse", s, 5, 0)  # noqa: E731
    assert key(tiny_ref, CHEAP_REF) != key(tiny_ref, LM)
    assert key(None, CHEAP_REF) == key(None, LM)  # without a reference model it changes nothing
    assert model_side_key(key(tiny_ref, CHEAP_REF)) == model_side_key(key(tiny_ref, LM)) == model_side_key(key(None, LM))
    fast = PRESETS["fast"]
    assert fast.for_reference().refine_steps == 4 < fast.refine_steps and fast.describe().endswith("iterations")
    assert PRESETS["paper"].for_reference() is PRESETS["paper"]
    with pytest.raises(ValueError, match="reference_refine_steps"):
        InversionSettings(reference_refine_steps=-1)


def test_the_reference_is_inverted_with_its_own_settings(tiny_dcgan, tiny_ref, cache_tmp):
    dist = build_distribution(tiny_dcgan, tiny_ref, settings=CHEAP_REF, n=4, seed=0)
    x = generate(tiny_dcgan, 4, 0, purpose="calibration")
    adam_only = invert(tiny_ref, x, settings=replace(LM, refine_steps=0), seed=0).loss.double()
    refined = invert(tiny_ref, x, settings=LM, seed=0).loss.double()
    assert (refined < adam_only).all()  # the refinement matters on these images ...
    assert dist.reference_losses == pytest.approx(adam_only.tolist(), rel=1e-6)  # ... and did not run
    assert dist.losses == pytest.approx(build_distribution(tiny_dcgan, tiny_ref, settings=LM, n=4, seed=0).losses)


def test_a_query_is_inverted_on_the_reference_as_its_distribution_was(tiny_dcgan, tiny_ref, cache_tmp, real_images):
    prepared = Prepared(tiny_dcgan, tiny_ref, CHEAP_REF, torch.device("cpu"))
    r = attribute(real_images[0], prepared, n_calibration=5, edit="none", contrast="off")
    x = tiny_ref.preprocess(load_image(real_images[0]).image)[None]
    assert r.reference_loss == pytest.approx(float(invert(tiny_ref, x, settings=CHEAP_REF.for_reference()).loss[0]), rel=1e-6)
    assert r.loss == pytest.approx(float(invert(tiny_dcgan, x, settings=CHEAP_REF).loss[0]), rel=1e-6)


def test_a_cached_model_side_is_reused_and_the_result_is_a_fresh_builds(tiny_dcgan, tiny_ref, cache_tmp):
    full = get_distribution(tiny_dcgan, tiny_ref, settings=LM, n=5, seed=0)
    roles: list[str] = []
    cheap = get_distribution(tiny_dcgan, tiny_ref, settings=CHEAP_REF, n=5, seed=0,
                             callback=lambda role, first, event: roles.append(role))
    assert roles and set(roles) == {"reference"}  # the model's inversions did not run again
    assert cheap.losses == full.losses and cheap.sample_steps == full.sample_steps
    assert cheap.reference_losses != full.reference_losses
    assert cheap.model_side_from == {k: getattr(full, k) for k in ("reference", "settings", "created", "seconds")}
    fresh = build_distribution(tiny_dcgan, tiny_ref, settings=CHEAP_REF, n=5, seed=0)
    assert fresh.values == pytest.approx(cheap.values, rel=1e-6) and fresh.sample_settled == cheap.sample_settled
    assert get_distribution(tiny_dcgan, tiny_ref, settings=CHEAP_REF, n=5, seed=0, build=False).values == cheap.values
    # a model side taken from a distribution that took it in turn names the build that inverted the model
    again = build_distribution(tiny_dcgan, tiny_ref, settings=replace(LM, reference_refine_steps=2), n=5, seed=0,
                               model_side=cheap)
    assert again.losses == full.losses and again.model_side_from == cheap.model_side_from
    # without a reference model: nothing to invert at all; rebuild=True runs both models again
    assert get_distribution(tiny_dcgan, None, settings=LM, n=5, seed=0).values == full.losses
    roles.clear()
    get_distribution(tiny_dcgan, tiny_ref, settings=CHEAP_REF, n=5, seed=0, rebuild=True,
                     callback=lambda role, first, event: roles.append(role))
    assert set(roles) == {"model", "reference"}
    with pytest.raises(ValueError, match="model_side"):  # other samples are no model side
        build_distribution(tiny_dcgan, tiny_ref, settings=CHEAP_REF, n=5, seed=1, model_side=full)


def test_a_reference_only_build_fills_the_whole_progress_bar(tiny_dcgan, tiny_ref, cache_tmp):
    """The app weighs a build's model and reference sides; when the model side is cached
    (calibration.reuses_model_side) only the reference's inversions run, and the bar they fill is the
    whole build's, not half of it."""
    from ronan import studio
    from ronan.calibration import reuses_model_side
    from ronan.prepare import Prepared

    get_distribution(tiny_dcgan, tiny_ref, settings=LM, n=5, seed=0)
    assert reuses_model_side(tiny_dcgan, tiny_ref, settings=CHEAP_REF, n=5, seed=0)
    assert not reuses_model_side(tiny_dcgan, tiny_ref, settings=CHEAP_REF, n=5, seed=1)  # other samples
    assert not reuses_model_side(tiny_dcgan, None, settings=LM, n=5, seed=0)
    p = Prepared(tiny_dcgan, tiny_ref, CHEAP_REF, torch.device("cpu"))
    progress = studio.Progress({"calibration-model-0": 10.0, "calibration-reference-0": 10.0})
    stream = studio._calibration_stream(p, n=5, seed=0, rebuild=False, build=True, should_stop=None, t0=0.0,
                                        progress=progress)
    fractions = []
    try:
        while True:
            fractions.append(next(stream).fraction)
    except StopIteration as stop:
        dist = stop.value
    assert dist.model_side_from is not None and fractions == sorted(fractions)
    assert fractions[-1] > 0.9  # the reference's inversions span the bar (before: at most one half)
    skip = studio.Progress({"a": 1.0, "b": 3.0})
    skip.skip("b")
    assert skip.update("a", 0.5) == pytest.approx(0.5)



def test_a_job_that_builds_two_distributions_moves_its_bar_through_both(tiny_dcgan, tiny_ref, cache_tmp):
    """An app job that builds several distributions (the robust family's edits, a contrast set) gives
    each build its own stage of the bar: the second build moves it on instead of idling at the first's
    end (before: both reported on one phase)."""
    from ronan import studio
    from ronan.edits.policy import NONE as NO_EDIT
    from ronan.prepare import Prepared

    p = Prepared(tiny_dcgan, tiny_ref, LM, torch.device("cpu"))
    assert [(e.spec, pictures) for e, pictures in studio._builds(p, NO_EDIT, "samples", "robust")] == [("none", None)]
    progress = studio._plan(tiny_ref, 2)  # query on M and M_r (1 + 1) after two builds (4 x 10)
    ends = []
    for stage, seed in ((0, 0), (1, 1)):
        stream = studio._calibration_stream(p, n=5, seed=seed, rebuild=False, build=True, should_stop=None,
                                            t0=0.0, progress=progress, stage=stage)
        fractions = [ev.fraction for ev in stream]
        assert fractions == sorted(fractions)
        ends.append(fractions[-1])
    assert ends[0] == pytest.approx(20 / 42, abs=0.02) and ends[1] == pytest.approx(40 / 42, abs=0.02)
    assert studio.has_distribution(p, n=5, seed=0) and studio.has_distribution(p, n=5, seed=1)
