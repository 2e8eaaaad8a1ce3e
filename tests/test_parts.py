"""An inversion in parts side by side, and the reference's inversion only as far as the verdict needs."""

from dataclasses import replace

import numpy as np
import pytest
import torch

import ronan.attribution as attribution
from ronan.attribution import attribute_batch
from ronan.generation import as_uploads, generate_pil, quantize
from ronan.images import load_image
from ronan.inversion import invert, resolve_settings, start_losses
from ronan.models.registry import load_model
from ronan.parts import invert_parts_stream, split
from ronan.seeding import rng


def _samples(g, n, seed=5):
    with torch.no_grad():
        return quantize(g.generate(g.sample_inputs(n, rng(seed, "test"))))


def _settings(g):
    return replace(resolve_settings("fast", model=g), learned_start=False, steps=40)


def test_split_deals_the_heavy_images_evenly_whatever_their_order():
    heavy = torch.tensor([True] * 6 + [False] * 6)  # ordered: the heavy ones first
    parts = split(12, 2, heavy)
    assert [int(heavy[p].sum()) for p in parts] == [3, 3]
    assert sorted(torch.cat(parts).tolist()) == list(range(12))
    alternating = torch.tensor([True, False] * 6)
    assert [int(alternating[p].sum()) for p in split(12, 2, alternating)] == [3, 3]
    assert len(split(1, 2)) == 1 and len(split(5, 8)) == 5  # never an empty part


def test_parts_side_by_side_give_the_whole_batchs_result_in_its_order(tiny_dcgan):
    x = torch.cat([_samples(tiny_dcgan, 3), torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))])
    settings = _settings(tiny_dcgan)
    whole = invert(tiny_dcgan, x, settings=settings, seed=4)
    heavy = torch.tensor([False, True, False, True, True, False])
    events = list(invert_parts_stream("model", tiny_dcgan, x, {"settings": settings}, parts=2, heavy=heavy, seed=4))
    assert {role for role, _ in events} == {"model"}
    merged = events[-1][1]
    assert torch.allclose(merged.loss, whole.loss, rtol=1e-3, atol=1e-7)
    assert torch.equal(merged.image_steps, whole.image_steps)
    assert torch.equal(merged.settled, whole.settled)
    assert torch.allclose(merged.inputs, whole.inputs, atol=1e-3)
    assert merged.history.shape == (max(whole.history.shape[0], merged.history.shape[0]), 6)
    assert torch.allclose(merged.history[-1], whole.history[-1], rtol=1e-3, atol=1e-7)
    last_progress = events[-2][1]
    assert torch.allclose(last_progress.best_loss, merged.loss, rtol=1e-3, atol=1e-7)  # in the batch's order


def test_parts_keep_the_second_paths_per_image_lists(tiny_dcgan):
    """A batch split into parts and merged keeps ``extra["retried"]`` / ``["retry_kept"]`` for every
    image in the batch's order (once only the first part's: a two-path batch failed in assembly)."""
    from ronan.distances import REACHED_FLOOR

    x = torch.cat([_samples(tiny_dcgan, 3), torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))])
    settings = replace(_settings(tiny_dcgan), retry_above=REACHED_FLOOR, retry_shell_steps=2, retry_steps=2)
    whole = invert(tiny_dcgan, x, settings=settings, seed=4)
    assert whole.extra["retried"][3:] == [True] * 3  # the random pictures take the second path
    heavy = torch.tensor([False, True, False, True, True, False])
    merged = list(invert_parts_stream("model", tiny_dcgan, x, {"settings": settings}, parts=2, heavy=heavy, seed=4))
    extra = merged[-1][1].extra
    assert extra["retried"] == whole.extra["retried"] and extra["retry_kept"] == whole.extra["retry_kept"]


def test_stop_images_ends_an_image_with_an_upper_bound_and_leaves_the_others_alone(tiny_dcgan):
    x = torch.cat([_samples(tiny_dcgan, 2), torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(2))])
    settings = _settings(tiny_dcgan)
    whole = invert(tiny_dcgan, x, settings=settings, seed=1)
    seen = []

    def stop(best):
        seen.append(best.clone())
        return torch.tensor([False, False, True, len(seen) >= 2])  # image 2 at once, image 3 at step 10

    res = invert(tiny_dcgan, x, settings=settings, seed=1, stop_images=stop)
    assert res.cut.tolist() == [False, False, True, True]
    assert torch.allclose(seen[0], start_losses(tiny_dcgan, x, settings=settings, seed=1))  # the starting losses
    assert res.image_steps[2] == 0 and res.image_steps[3] == 10  # ended there, no refinement
    assert float(res.loss[2]) == pytest.approx(float(seen[0][2]))
    assert bool((res.loss[2:] >= whole.loss[2:]).all())  # upper bounds of the whole inversion's
    assert torch.allclose(res.loss[:2], whole.loss[:2], rtol=1e-4, atol=1e-8)  # the others as without it
    assert torch.equal(res.image_steps[:2], whole.image_steps[:2])
    assert not bool(res.settled[2:].any())
    assert whole.cut is None


def _queries(model, n_own, n_real):
    from pathlib import Path

    real = sorted((Path(__file__).resolve().parents[1] / "assets" / "samples" / "fmnist-test").glob("*.png"))
    return as_uploads(generate_pil(model, n_own, 2024), model.name) + [load_image(f) for f in real[:n_real]]


@pytest.mark.parametrize("side_by_side", [True, False])
def test_the_reference_stops_where_the_verdict_is_certain_and_verdicts_equal_the_full_runs(monkeypatch, side_by_side):
    """Staged (the default): the bundled model's own images are found belonging with an exact
    reference loss, real pictures non-belonging with the reference's loss an upper bound; every
    verdict is the one the full reference inversion gives."""
    model = load_model("dcgan-fmnist")
    images = _queries(model, 6, 6)
    full = attribute_batch(images, "dcgan-fmnist", full_reference=True, build_calibration=False)
    monkeypatch.setattr(attribution, "parallel_default", lambda device: side_by_side)
    monkeypatch.setattr(attribution, "SPLIT_MIN_VALUES", 1)
    events = []
    staged = attribute_batch(images, "dcgan-fmnist", build_calibration=False, callback=events.append)
    assert [r.verdict for r in staged] == [r.verdict for r in full] == ["belonging"] * 6 + ["non-belonging"] * 6
    assert [r.reference_bound for r in staged] == [False] * 6 + [True] * 6
    assert not any(r.reference_bound for r in full)
    for s, f in zip(staged, full):
        assert s.loss == pytest.approx(f.loss, rel=0.05)
        if s.reference_bound:
            assert s.reference_loss >= f.reference_loss * 0.999 and s.calibrated_loss <= f.calibrated_loss * 1.001
            assert s.calibrated_loss > s.threshold and s.reference_steps_run == 0
            assert any("upper bound" in n for n in s.notes)
            assert s.to_row()["reference_bound"] is True
        else:
            assert s.reference_loss == pytest.approx(f.reference_loss, rel=0.05)
    roles = [e.role for e in events]
    assert roles.index("reference") > max(i for i, r in enumerate(roles) if r == "model")  # M first, then M_r
    if side_by_side:
        _bounds_are_shown_as_bounds(staged[-1], full[-1])


def _bounds_are_shown_as_bounds(bound, exact):
    """The CLI line, the verdict card, the report and the app's batch table say which numbers are bounds."""
    from ronan import views
    from ronan.cli import result_line
    from ronan.report import report_html

    assert "ref at most " in result_line(bound) and "= at least " in result_line(bound)
    assert "statistic at least " in result_line(bound)
    assert "at most" not in result_line(exact)
    card = views.verdict_card(bound)
    assert "at least " in card and "at most " in card and "upper bound" in card
    assert "at least " not in views.verdict_card(exact)
    assert "Reference loss A(M_r, x)</th><td>at most " in report_html(bound, None)
    import app

    row = bound.to_row()
    cells = dict(zip([k for _, k in app.BATCH_COLUMNS], app._table([row | {"label": "", "error": ""}],
                                                                    app.BATCH_COLUMNS)[0]))
    assert str(cells["calibrated_loss"]).startswith("≥ ") and str(cells["statistic"]).startswith("≥ ")


def test_a_small_batch_runs_both_inversions_at_once_and_to_their_end(monkeypatch):
    """Two 28x28 images on a CPU with one thread per inversion: too few to split M's inversion
    (SPLIT_MIN_VALUES), so both run at once, one per core, and no reference loss is a bound."""
    monkeypatch.setattr(attribution, "parallel_default", lambda device: True)
    model = load_model("dcgan-fmnist")
    images = _queries(model, 1, 1)
    events = []
    out = attribute_batch(images, "dcgan-fmnist", build_calibration=False, callback=events.append)
    assert [r.verdict for r in out] == ["belonging", "non-belonging"]
    assert not any(r.reference_bound for r in out)
    roles = [e.role for e in events]
    assert roles.index("reference") < max(i for i, r in enumerate(roles) if r == "model")  # interleaved


def test_one_part_keeps_the_batchs_order_even_with_heavy_images():
    heavy = torch.tensor([False, True, False, True])
    (only,) = split(4, 1, heavy)
    assert only.tolist() == [0, 1, 2, 3]


def test_with_the_floor_rule_the_staged_reference_keeps_the_full_runs_verdicts(monkeypatch, tmp_path):
    """The bundled model's belonging sample with 40 planted failed inversions: the floor rule decides own
    images (their inversions reach the 8-bit floor) against the 60 that did; real pictures, which do not
    reach it, are inconclusive whatever the reference says, so the staged reference ends them at once —
    and every verdict is the one the full reference inversion gives."""
    from ronan.calibration import calibrate_losses, get_distribution, save_distribution
    from ronan.prepare import prepare

    target = prepare("dcgan-fmnist")
    dist = get_distribution(target.model, target.reference, settings=target.settings, build=False)
    monkeypatch.setenv("RONAN_CACHE_DIR", str(tmp_path))
    dist.losses = dist.losses[:60] + [float(v) for v in torch.logspace(-4, -1, 40)]
    dist.values = calibrate_losses(torch.tensor(dist.losses, dtype=torch.float64),
                                   torch.tensor(dist.reference_losses, dtype=torch.float64)).tolist()
    dist.mean, dist.std = float(np.mean(dist.values)), float(np.std(dist.values, ddof=1))
    dist.validate()
    save_distribution(dist, tmp_path)
    images = _queries(target.model, 3, 3)
    full = attribute_batch(images, target, full_reference=True, build_calibration=False)
    monkeypatch.setattr(attribution, "parallel_default", lambda device: True)
    monkeypatch.setattr(attribution, "SPLIT_MIN_VALUES", 1)
    staged = attribute_batch(images, target, build_calibration=False)
    assert [r.verdict for r in staged] == [r.verdict for r in full] == ["belonging"] * 3 + ["inconclusive"] * 3
    assert [r.basis for r in staged] == ["floor"] * 3 + ["all"] * 3
    assert [r.reference_bound for r in staged] == [False] * 3 + [True] * 3
    for r in staged[3:]:
        assert r.reference_steps_run == 0 and any("did not reach the floor (the floor rule)" in n for n in r.notes)
    # re-deciding the recorded numbers (evaluate, tier tables) applies the same rule
    from ronan.evaluation import verdicts

    assert verdicts(full, dist) == [r.verdict for r in full]
    assert verdicts(full, dist, calibrated=False)[:3] == ["belonging"] * 3


def test_the_papers_schedule_inverts_the_reference_to_the_end(monkeypatch, cache_tmp):
    """`preset="paper"` (a fixed schedule, ``plateau_steps`` 0): even a batch that would be staged
    inverts every image on the reference to its end, as Algorithm 1 does — no reference loss is a
    bound, every one ran all its steps; the same batch with `fast` stages its real pictures."""
    monkeypatch.setattr(attribution, "parallel_default", lambda device: True)
    monkeypatch.setattr(attribution, "SPLIT_MIN_VALUES", 1)
    model = load_model("dcgan-fmnist")
    images = _queries(model, 2, 4)
    paper = attribute_batch(images, "dcgan-fmnist", preset="paper", steps=300, n_calibration=10)
    assert not any(r.reference_bound for r in paper)
    assert [r.reference_steps_run for r in paper] == [300] * 6
    staged = attribute_batch(images, "dcgan-fmnist", build_calibration=False)
    assert any(r.reference_bound for r in staged)
