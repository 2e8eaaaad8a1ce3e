from dataclasses import replace

import pytest
import torch

from ronan.inversion import (
    PRESETS,
    InversionProgress,
    InversionResult,
    InversionSettings,
    RowAdam,
    invert,
    invert_stream,
    resolve_settings,
)
from ronan.models.cgan import ConditionalGAN
from ronan.models.dcgan import DCGAN
from ronan.seeding import rng

SETTINGS = InversionSettings(steps=60, lr=0.1, restarts=3)
PLATEAU = InversionSettings(steps=400, lr=0.1, restarts=2, plateau_steps=50, plateau_tol=0.1)


def _samples(g, n, seed=5):
    with torch.no_grad():
        return g.generate(g.sample_inputs(n, rng(seed, "test")))


@pytest.mark.parametrize("early_stopping", [False, True])
def test_batched_equals_one_by_one(tiny_dcgan, early_stopping):
    settings = PLATEAU if early_stopping else SETTINGS
    images = torch.cat([_samples(tiny_dcgan, 2), torch.rand(1, 1, 28, 28)])
    batch = invert(tiny_dcgan, images, settings=settings, seed=3)
    for i in range(3):
        single = invert(tiny_dcgan, images[i:i + 1], settings=settings, seed=3)
        if not early_stopping:
            assert single.loss[0].item() == pytest.approx(batch.loss[i].item(), rel=1e-4, abs=1e-7)
            assert torch.allclose(single.inputs[0], batch.inputs[i], atol=1e-4)
            continue
        assert single.loss[0].item() == pytest.approx(batch.loss[i].item(), rel=1e-3, abs=1e-7)
        # the stop step may move by one check when a row sits at the threshold (float rounding)
        assert abs(int(single.image_steps[0]) - int(batch.image_steps[i])) <= 20


def test_seed_reproduces_and_changes(tiny_dcgan):
    images = _samples(tiny_dcgan, 2)
    a = invert(tiny_dcgan, images, settings=SETTINGS, seed=11)
    b = invert(tiny_dcgan, images, settings=SETTINGS, seed=11)
    c = invert(tiny_dcgan, images, settings=SETTINGS, seed=12)
    assert torch.equal(a.loss, b.loss) and torch.equal(a.inputs, b.inputs)
    assert not torch.equal(a.inputs, c.inputs)


def test_generated_image_reconstructs_better_than_random(tiny_dcgan):
    gen = _samples(tiny_dcgan, 3)
    real = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    res = invert(tiny_dcgan, torch.cat([gen, real]), settings=InversionSettings(steps=200, lr=0.1, restarts=4))
    assert res.loss[:3].max() < 1e-3 < res.loss[3:].min()
    assert res.loss[:3].max() * 20 < res.loss[3:].min()


def test_loss_is_min_over_steps_and_restarts(tiny_dcgan):
    res = invert(tiny_dcgan, _samples(tiny_dcgan, 2), settings=SETTINGS)
    assert res.history.shape == (SETTINGS.steps + 1, 2)
    assert torch.allclose(res.loss, res.history.min(0).values)
    # the stored input reproduces the stored loss
    recon = tiny_dcgan.generate(res.inputs)
    assert torch.allclose(recon, res.reconstructions, atol=1e-6)


def test_stream_yields_progress_then_result(tiny_dcgan):
    events = list(invert_stream(tiny_dcgan, _samples(tiny_dcgan, 2), settings=SETTINGS, progress_every=20,
                                with_images=True))
    progress = [e for e in events if isinstance(e, InversionProgress)]
    assert isinstance(events[-1], InversionResult)
    assert [p.step for p in progress] == [0, 20, 40, 60]
    assert progress[0].reconstructions.shape == (2, 1, 28, 28)
    assert (progress[-1].best_loss <= progress[0].best_loss).all()


def test_should_stop_ends_early(tiny_dcgan):
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] >= 5

    res = invert(tiny_dcgan, _samples(tiny_dcgan, 1), settings=SETTINGS, should_stop=stop)
    assert res.steps_run == 5 and res.extra["stopped"]


@pytest.mark.parametrize("phase", ["refinement", "second path"])
def test_a_stop_during_the_refinement_or_the_second_path_is_reported(tiny_dcgan, phase):
    """A stop after Adam (in the Levenberg-Marquardt refinement, or in the second path) marks the
    result stopped, so that callers cancel (a calibration must not cache a partial distribution)."""
    settings = InversionSettings(steps=1, refine_steps=30, retry_above=1e-30 if phase == "second path" else 0.0)
    calls = {"n": 0, "stop_at": 4 if phase == "refinement" else None}

    def stop():
        calls["n"] += 1
        return calls["stop_at"] is not None and calls["n"] >= calls["stop_at"]

    x = _samples(tiny_dcgan, 2)
    if phase == "second path":  # stop a few polls after the refinement: inside the second path
        polls = {"n": 0}
        first = invert(tiny_dcgan, x, settings=replace(settings, retry_above=0.0),
                       should_stop=lambda: polls.__setitem__("n", polls["n"] + 1) or False)
        calls["stop_at"] = polls["n"] + 3
    res = invert(tiny_dcgan, x, settings=settings, should_stop=stop)
    assert res.extra["stopped"], calls
    if phase == "second path":
        assert res.extra["retry_kept"] == [False, False] and torch.equal(res.loss, first.loss)


def test_inversion_leaves_model_untouched(tiny_dcgan):
    before = {k: v.clone() for k, v in tiny_dcgan.state_dict().items()}
    tiny_dcgan.train()  # adapters refuse train mode: BatchNorm must use running stats
    assert not tiny_dcgan.training
    invert(tiny_dcgan, torch.rand(2, 1, 28, 28), settings=SETTINGS)
    for k, v in tiny_dcgan.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(not p.requires_grad for p in tiny_dcgan.parameters())


def test_conditional_model_tries_every_class_with_label_fixed():
    torch.manual_seed(0)
    g = ConditionalGAN(latent_dim=8, n_classes=4, base=8).freeze()
    x = g.generate(g.make_inputs(torch.randn(1, 8), torch.tensor([2]))).detach()
    res = invert(g, x, settings=InversionSettings(steps=150, lr=0.1, restarts=6))
    assert res.extra["rows_per_image"] == 8  # every class, ceil(6 / 4) = 2 starts each
    assert res.loss[0] < 1e-3
    label = res.inputs[0, 8:].softmax(0)
    assert label.max() > 0.999  # the condition stayed one-hot
    relaxed = ConditionalGAN(latent_dim=8, n_classes=4, base=8, class_search="relaxed")
    relaxed.load_state_dict(g.state_dict())
    relaxed.freeze()
    r2 = invert(relaxed, x, settings=InversionSettings(steps=150, lr=0.1, restarts=2))
    assert r2.extra["rows_per_image"] == 2


def test_presets():
    from ronan.inversion import PRESETS
    from ronan.preset_names import PRESET_SUMMARIES

    assert set(PRESET_SUMMARIES) == set(PRESETS) | {"default"}  # every preset (and the model's own) has its line
    paper = resolve_settings("paper")
    assert (paper.steps, paper.lr, paper.restarts) == (1500, 0.1, 1)
    assert resolve_settings("fast", steps=7).steps == 7
    with pytest.raises(ValueError):
        resolve_settings("nope")
    with pytest.raises(ValueError):
        InversionSettings(steps=-1)


def test_wrong_image_shape(tiny_dcgan):
    with pytest.raises(ValueError, match="images must be"):
        invert(tiny_dcgan, torch.rand(1, 3, 28, 28), settings=SETTINGS)


# ------------------------------------------------------------------ early stopping


def test_plateau_rows_leave_early_and_keep_their_losses(tiny_dcgan):
    gen = (_samples(tiny_dcgan, 2) * 255).round() / 255  # 8-bit, as every saved image is
    real = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    images = torch.cat([gen, real])
    full = invert(tiny_dcgan, images, settings=replace(PLATEAU, plateau_steps=0), seed=4)
    events = list(invert_stream(tiny_dcgan, images, settings=PLATEAU, seed=4, progress_every=10))
    early = events[-1]
    # random images plateau quickly; every image stops before the cap
    assert (early.image_steps[2:] < 200).all() and early.steps_run < PLATEAU.steps
    assert early.extra["row_steps"] < full.extra["row_steps"] / 2
    active = [e.active_rows for e in events[:-1]]
    assert active[0] == 8 and active == sorted(active, reverse=True) and active[-1] < 8
    # each image's curve is the same as without early stopping until the image stops
    for i in range(4):
        n = int(early.image_steps[i]) + 1
        assert torch.allclose(early.history[:n, i], full.history[:n, i], rtol=1e-4, atol=1e-8)
    # belonging images still reconstruct, and the decision-relevant gap is kept
    assert early.loss[:2].max() < 1e-3 < early.loss[2:].min()
    assert torch.allclose(early.loss[2:], full.loss[2:], rtol=0.5)
    # loss, inputs and reconstructions of stopped rows stay consistent
    assert torch.allclose(early.loss, early.history.min(0).values)
    assert torch.allclose(tiny_dcgan.generate(early.inputs), early.reconstructions, atol=1e-6)


def test_plateau_settings_are_validated_and_paper_runs_every_step(tiny_dcgan):
    with pytest.raises(ValueError, match="plateau"):
        InversionSettings(plateau_steps=15)
    with pytest.raises(ValueError, match="plateau"):
        InversionSettings(plateau_tol=1.5)
    paper = resolve_settings("paper")
    assert paper.plateau_steps == 0
    res = invert(tiny_dcgan, torch.rand(1, 1, 28, 28), settings=replace(paper, steps=120))
    assert res.steps_run == 120 and int(res.image_steps[0]) == 120


def test_row_adam_matches_torch_adam():
    torch.manual_seed(0)
    target = torch.randn(5, 7)
    a = torch.randn(5, 7, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    ours = RowAdam(a, 0.1, (0.9, 0.999))
    ref = torch.optim.Adam([b], lr=0.1)
    for _ in range(50):
        for p in (a, b):
            p.grad = None
            ((p - target) ** 3).abs().sum().backward()
        ours.step()
        ref.step()
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_row_adam_per_row_rates_and_keep():
    torch.manual_seed(0)
    p = torch.zeros(3, 4, requires_grad=True)
    opt = RowAdam(p, 0.1, (0.9, 0.999))
    opt.lr[1] = 0.0
    p.grad = torch.ones(3, 4)
    opt.step()
    assert torch.allclose(p[0], torch.full((4,), -0.1)) and torch.equal(p[1], torch.zeros(4))
    keep = torch.tensor([True, False, True])
    q = p.detach()[keep].requires_grad_(True)
    opt.keep(q, keep)
    assert opt.exp_avg.shape == (2, 4) and opt.lr.tolist() == pytest.approx([0.1, 0.1])
    q.grad = torch.ones(2, 4)
    opt.step()
    assert torch.allclose(q, torch.full((2, 4), -0.2), atol=1e-6)


def test_lr_drop_continues_a_plateaued_row_for_the_second_window(tiny_dcgan):
    gen = (_samples(tiny_dcgan, 3, seed=9) * 255).round() / 255
    base = InversionSettings(steps=600, lr=0.3, restarts=1, plateau_steps=50, plateau_lr_drops=0)
    no_drop = invert(tiny_dcgan, gen, settings=base, seed=2)
    drop = invert(tiny_dcgan, gen, settings=replace(base, plateau_lr_drops=1, plateau_lr_factor=0.1,
                                                    plateau_steps_after_drop=30), seed=2)
    # same trajectory up to the first plateau; there the lr drops instead of the row stopping,
    # and the row runs at least the second window (30 steps) longer
    assert (drop.image_steps >= no_drop.image_steps + 30).all()
    n = int(no_drop.image_steps.min()) + 1
    assert torch.allclose(drop.history[:n], no_drop.history[:n], rtol=1e-5, atol=1e-9)
    # the best loss is a running minimum over a longer run: never worse
    assert (drop.loss <= no_drop.loss * (1 + 1e-4)).all()


CANDIDATES = InversionSettings(steps=200, lr=0.1, restarts=1, candidates=6, warmup_steps=20, plateau_steps=0)


def test_candidates_keep_the_best_rows_after_the_warmup(tiny_dcgan):
    images = torch.cat([_samples(tiny_dcgan, 2), torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(1))])
    res = invert(tiny_dcgan, images, settings=CANDIDATES, seed=4)
    assert res.extra["rows_per_image"] == 6
    # 6 rows run 20 steps, then one row per image continues: 3 x (6 x 21 + 180) row-steps in all
    assert res.extra["row_steps"] == 3 * (5 * 21 + 201)
    # the kept row is the one that was best at the warm-up, and nothing beats one restart from it:
    # each image's loss is at most the best of its 6 candidates after 20 steps
    warm = invert(tiny_dcgan, images, settings=replace(CANDIDATES, steps=20, candidates=1, warmup_steps=0,
                                                       restarts=6), seed=4)
    assert torch.all(res.loss <= warm.loss + 1e-12)
    # batch == one by one
    single = invert(tiny_dcgan, images[:1], settings=CANDIDATES, seed=4)
    assert single.loss[0].item() == pytest.approx(res.loss[0].item(), rel=1e-4, abs=1e-9)


def test_candidates_are_validated():
    with pytest.raises(ValueError, match="candidate"):
        InversionSettings(candidates=4, warmup_steps=0)
    with pytest.raises(ValueError, match="candidate"):
        InversionSettings(candidates=0)
    assert "candidates" not in InversionSettings().to_dict()  # keys of older distributions stay valid
    assert InversionSettings(candidates=4, warmup_steps=10).to_dict()["candidates"] == 4


def test_settled_flags_an_inversion_still_improving_at_its_cap(tiny_dcgan):
    images = _samples(tiny_dcgan, 2)
    short = invert(tiny_dcgan, images, settings=InversionSettings(steps=40, lr=0.05, plateau_steps=0))
    assert not short.settled.any()           # 40 steps: not even one window to show it settled
    done = invert(tiny_dcgan, images, settings=InversionSettings(steps=1000, lr=0.2))
    assert done.settled.all()                # the plateau rule stopped them


def test_transform_inverts_through_an_edit(tiny_dcgan):
    """Inversion through a differentiable edit reconstructs an edited belonging image far better."""
    from ronan.edits import parse_edit
    from ronan.generation import quantize
    from ronan.images import to_pil

    edit = parse_edit("resize:0.5")
    clean = quantize(_samples(tiny_dcgan, 3))
    edited = torch.stack([tiny_dcgan.preprocess(edit.apply(to_pil(x))) for x in clean])
    settings = InversionSettings(steps=300, lr=0.1, restarts=2, plateau_steps=0)
    plain = invert(tiny_dcgan, edited, settings=settings)
    through = invert(tiny_dcgan, edited, settings=settings, transform=lambda r: edit.differentiable(r, 28))
    assert torch.all(through.loss * 10 < plain.loss)


def test_learned_start_trains_once_and_starts_close(tiny_dcgan, cache_tmp, monkeypatch):
    from ronan import starts

    monkeypatch.setattr(starts, "_LOADED", {})  # cleared below; the other tests' networks stay loaded
    quick = starts.StartSettings(steps=300, batch=32)
    net, digest = starts.get_inverse(tiny_dcgan, quick)
    assert list(cache_tmp.glob("starts/tiny-dcgan__start__*.safetensors")) and len(digest) == 64
    starts._LOADED.clear()
    again, digest2 = starts.get_inverse(tiny_dcgan, quick, build=False)   # from the cache, verified
    assert digest2 == digest
    images = _samples(tiny_dcgan, 8, seed=9)
    z0 = starts.learned_inputs(tiny_dcgan, images, quick)
    start_loss = (tiny_dcgan.generate(z0) - images).pow(2).mean()
    random_loss = (tiny_dcgan.generate(tiny_dcgan.sample_inputs(8, torch.Generator().manual_seed(0))) - images).pow(2).mean()
    assert start_loss * 3 < random_loss
    # a damaged cache is refused, never silently used
    starts._LOADED.clear()
    f = next(cache_tmp.glob("starts/*.safetensors"))
    f.write_bytes(f.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(Exception, match="damaged"):
        starts.get_inverse(tiny_dcgan, quick, build=False)


def test_refine_reaches_the_floor_from_inside_the_basin_and_never_raises_the_loss(tiny_dcgan):
    from ronan.refine import refine

    z = tiny_dcgan.sample_inputs(6, rng(3, "test"))
    with torch.no_grad():
        x = tiny_dcgan.generate(z)
    start = z + 0.3 * torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = (tiny_dcgan.generate(start) - x).pow(2).mean((1, 2, 3))
    inputs = start.clone()
    events = list(refine(tiny_dcgan.generate, inputs, x, iterations=20))
    losses = torch.stack([e[1] for e in events[:-1]])
    assert torch.all(losses[1:] <= losses[:-1]) and torch.all(losses[0] <= before)
    assert torch.all(losses[-1] < 1e-9) and torch.all(before > 1e-6)
    with torch.no_grad():
        assert torch.allclose((tiny_dcgan.generate(inputs) - x).pow(2).mean((1, 2, 3)), losses[-1], atol=1e-9)
    assert events[-1][0] == -1 and events[-1][1].all()          # every row stopped converged


def test_broyden_refinement_reaches_the_floor_with_fewer_forward_passes(tiny_dcgan):
    """``jacobian_every > 1``: the same answers as the exact refinement from inside the basin, losses
    never rise, and fewer generator calls (a Broyden iteration costs one forward pass, not d + 1)."""
    from ronan.refine import refine

    z = tiny_dcgan.sample_inputs(6, rng(3, "test"))
    with torch.no_grad():
        x = tiny_dcgan.generate(z)
    start = z + 0.3 * torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    rows = {}

    def counting(p):
        rows[every] = rows.get(every, 0) + len(p)
        return tiny_dcgan.generate(p)

    finals = {}
    for every in (1, 4):
        inputs = start.clone()
        events = list(refine(counting, inputs, x, iterations=40, jacobian_every=every))
        losses = torch.stack([e[1] for e in events[:-1]])
        assert torch.all(losses[1:] <= losses[:-1])
        assert events[-1][1].all()                              # every row stopped converged
        finals[every] = losses[-1]
    assert torch.all(finals[4] < 1e-9) and torch.all(finals[1] < 1e-9)
    assert rows[4] < 0.7 * rows[1]
    with pytest.raises(ValueError, match="jacobian_every"):
        list(refine(tiny_dcgan.generate, start.clone(), x, jacobian_every=0))


def test_refinement_stops_a_row_with_nothing_left_to_gain():
    """The Gauss-Newton gain is the residual's share in the Jacobian's column space (1 inside, 0
    orthogonal); a row whose residual the generator cannot reach stops at once, converged, unchanged."""
    from ronan.refine import gauss_newton_gain, refine

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(4, 30, generator=gen, dtype=torch.float64).float()      # 4 inputs -> 30 pixels
    q, _ = torch.linalg.qr(a.t().double())
    inside = (a.t() @ torch.randn(4, generator=gen)).unsqueeze(0)            # in the column space
    outside = torch.randn(30, generator=gen, dtype=torch.float64)
    outside = (outside - q @ (q.t() @ outside)).float().unsqueeze(0)         # orthogonal to it
    jtj, jac = (a @ a.t()).unsqueeze(0), a.unsqueeze(0)
    for res, expected in ((inside, 1.0), (outside, 0.0), (0.5 * inside + outside, None)):
        gain = float(gauss_newton_gain(jtj, jac @ res.unsqueeze(2), res)[0])
        if expected is not None:
            assert gain == pytest.approx(expected, abs=1e-4)
        else:
            share = float(inside.pow(2).sum() * 0.25 / (0.5 * inside + outside).pow(2).sum())
            assert gain == pytest.approx(share, rel=1e-3)

    def linear(p):                                                          # a linear "generator"
        return (p @ a).view(-1, 1, 5, 6)

    z = torch.randn(3, 4, generator=gen)
    y = linear(z) + 0.1 * outside.view(1, 1, 5, 6)                          # its best fit is z exactly
    for every in (1, 4):                        # before this rule: 2, 1, 2 and 3, 1, 17 iterations
        inputs, ran = z.clone(), torch.zeros(3, dtype=torch.long)
        events = list(refine(linear, inputs, y, iterations=30, jacobian_every=every, iterations_run=ran))
        assert ran.tolist() == [1, 1, 1] and events[-1][1].all()
        assert torch.allclose(inputs, z, atol=1e-4)


def test_the_broyden_setting_keys_only_when_used():
    plain = resolve_settings("fast-lm16")                       # the default before the Broyden option
    assert "refine_jacobian_every" not in plain.to_dict()       # caches built before it keep their keys
    broyden = resolve_settings("fast")
    assert broyden.to_dict()["refine_jacobian_every"] == 4 and "Broyden" in broyden.describe()
    with pytest.raises(ValueError, match="refine_jacobian_every"):
        replace(plain, refine_jacobian_every=0)


def test_fast_preset_falls_back_to_adam_where_refinement_cannot_apply(tiny_dcgan):
    fast = resolve_settings("fast", model=tiny_dcgan)
    assert fast.refine_steps > 0 and fast.learned_start
    assert resolve_settings("fast", model=tiny_dcgan, distance="ssim") == resolve_settings("fast-adam")
    big = DCGAN(latent_dim=600, base=4, channels=1, image_size=28)
    assert resolve_settings("fast", model=big) == resolve_settings("fast-adam")
    assert resolve_settings("fast", model=big, steps=50).steps == 50
    assert resolve_settings("paper", model=big) == resolve_settings("paper")


def test_a_tiny_64x64_model_converges_to_the_8bit_floor():
    """Convergence on the 64x64 tier's architecture: every 8-bit sample of a random-weight DCGAN-64
    inverts to within 8x the 8-bit floor (1/255^2/12) with Adam + Levenberg-Marquardt."""
    from ronan.generation import quantize
    from ronan.models.gan64 import DCGAN64

    torch.manual_seed(7)
    g = DCGAN64(latent_dim=16, base=4).freeze()
    g.name, g.weights_sha256 = "tiny-dcgan64", "1" * 64
    x = quantize(_samples(g, 6, seed=11))
    res = invert(g, x, settings=replace(resolve_settings("fast", model=g), learned_start=False, restarts=2))
    floor = 1 / 255 ** 2 / 12
    assert torch.all(res.loss < 8 * floor), res.loss
    assert bool(res.settled.all())


def test_refined_steps_and_settled_are_each_images_own_in_a_batch(tiny_dcgan):
    """An image the refinement stops early counts its own iterations, not the batch's, and is settled
    alike alone and in a batch (the steps and flags a result records do not depend on its company)."""
    from ronan.generation import quantize
    from ronan.refine import refine

    x = torch.cat([quantize(_samples(tiny_dcgan, 3, seed=21)), torch.rand(2, 1, 28, 28)])
    settings = replace(resolve_settings("fast", model=tiny_dcgan), learned_start=False, steps=60)
    batch = invert(tiny_dcgan, x, settings=settings, seed=2)
    lm = batch.image_steps - 60                                  # each image's refinement iterations
    assert int(lm.min()) >= 1 and int(lm.min()) < int(lm.max())  # some stopped before others
    for i in range(len(x)):
        single = invert(tiny_dcgan, x[i:i + 1], settings=settings, seed=2)
        assert int(single.image_steps[0]) == int(batch.image_steps[i])
        assert bool(single.settled[0]) == bool(batch.settled[i])
    ran = torch.zeros(len(x), dtype=torch.long)
    events = list(refine(tiny_dcgan.generate, batch.inputs.clone(), x, iterations=5, iterations_run=ran))
    assert int(ran.max()) <= len(events) - 1 and bool((ran >= 1).all())


def test_thread_count_changes_losses_within_the_stated_tolerance(tiny_dcgan):
    """Reproducibility across thread counts: same decisions need losses within REPRODUCED_RTOL
    (tests/test_zoo.py; benchmarks/RESULTS.md, "Reproducibility")."""
    from ronan.generation import quantize

    x = quantize(_samples(tiny_dcgan, 6, seed=21))
    settings = replace(resolve_settings("fast", model=tiny_dcgan), learned_start=False, steps=100)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = invert(tiny_dcgan, x, settings=settings).loss
        torch.set_num_threads(2)
        two = invert(tiny_dcgan, x, settings=settings).loss
    finally:
        torch.set_num_threads(before)
    assert torch.allclose(one, two, rtol=0.05, atol=0)


def test_candidates_around_the_learned_start(tiny_dcgan, monkeypatch):
    """``start_spread``: the other starting points of an image are its learned start plus the spread
    times the seeded random start (row 0 is the learned start itself); without it they stay random."""
    from ronan import inversion, starts

    images = _samples(tiny_dcgan, 3, seed=4)
    learned = torch.arange(3 * 8, dtype=torch.float32).view(3, 8) / 10
    monkeypatch.setattr(starts, "supports", lambda g: True)
    monkeypatch.setattr(starts, "learned_inputs", lambda g, x: learned[: len(x)])
    base = InversionSettings(steps=20, learned_start=True, candidates=4, warmup_steps=10)
    anywhere = inversion._starting_points(tiny_dcgan, images, base, 0, 4).view(3, 4, 8)
    around = inversion._starting_points(tiny_dcgan, images, replace(base, start_spread=0.3), 0, 4).view(3, 4, 8)
    assert torch.equal(anywhere[:, 0], learned) and torch.equal(around[:, 0], learned)
    random = anywhere[:, 1:]                                    # the seeded random starts, the same per image
    assert torch.allclose(around[:, 1:], learned[:, None] + 0.3 * random)
    assert not torch.allclose(around[:, 1:], random)


def test_the_spread_keys_only_when_used_and_thorough_resolves(tiny_dcgan):
    assert "start_spread" not in resolve_settings("fast").to_dict()   # the committed caches keep their keys
    thorough = resolve_settings("thorough", model=tiny_dcgan)
    assert thorough.to_dict()["start_spread"] == 0.3 and thorough.candidates == 8 and thorough.refine_steps == 160
    assert "around it (spread 0.3)" in thorough.describe()
    assert resolve_settings("thorough", model=tiny_dcgan, distance="ssim") == resolve_settings("fast-adam")
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="start_spread"):
            InversionSettings(start_spread=bad)


def test_thorough_reaches_the_floor_on_a_tiny_model(tiny_dcgan, cache_tmp, monkeypatch):
    """The ``thorough`` preset end to end (learned start trained briefly here): every own sample
    reaches the floor and the chosen row is one of the 8 candidates."""
    from ronan import starts

    quick = starts.StartSettings(steps=200, batch=32)
    net, _ = starts.get_inverse(tiny_dcgan, quick)
    monkeypatch.setattr(starts, "get_inverse", lambda g, s=None, **k: (net, "test"))
    x = _samples(tiny_dcgan, 4, seed=8)
    res = invert(tiny_dcgan, x, settings=resolve_settings("thorough", model=tiny_dcgan))
    assert res.extra["rows_per_image"] == 8
    assert torch.all(res.loss < 1e-8), res.loss


def test_the_second_path_runs_only_where_the_first_failed_and_the_better_is_kept(tiny_dcgan):
    """``retry_above``: images left above it are inverted again (on the typical shell, then free) and
    keep the better result; images already below it are untouched; a batch equals one-by-one runs."""
    x = _samples(tiny_dcgan, 3, seed=9)
    weak = InversionSettings(steps=1, refine_steps=0)  # one Adam step from a random start: far out
    first = invert(tiny_dcgan, x, settings=weak, seed=2)
    assert torch.all(first.loss > 1e-4), first.loss
    two = replace(weak, retry_above=1e-8, retry_shell_steps=20, retry_steps=40)
    res = invert(tiny_dcgan, x, settings=two, seed=2)
    assert res.extra["retried"] == [True] * 3 and res.extra["retry_kept"] == [True] * 3
    assert torch.all(res.loss < 1e-8), res.loss  # the second path reaches the floor
    assert torch.all(res.settled) and torch.all(res.image_steps > first.image_steps)
    with torch.no_grad():  # the kept input is the one that reaches the kept loss
        assert torch.allclose(tiny_dcgan.generate(res.inputs), res.reconstructions, atol=1e-6)
    for i in range(3):
        single = invert(tiny_dcgan, x[i:i + 1], settings=two, seed=2)
        assert single.loss[0].item() == pytest.approx(res.loss[i].item(), rel=1e-3, abs=1e-9)
    # a second path worse than the first leaves the first's result
    short = replace(weak, steps=60, lr=0.1, retry_above=1e-8, retry_shell_steps=1, retry_steps=0)
    base = invert(tiny_dcgan, x, settings=replace(short, retry_above=0.0), seed=2)
    kept = invert(tiny_dcgan, x, settings=short, seed=2)
    assert kept.extra["retried"] == [True] * 3 and kept.extra["retry_kept"] == [False] * 3
    assert torch.equal(kept.loss, base.loss) and torch.equal(kept.inputs, base.inputs)
    # an inversion that reached the floor is not retried
    good = replace(weak, steps=100, refine_steps=32, retry_above=1e-6)
    done = invert(tiny_dcgan, x, settings=good, seed=2)
    assert done.extra["retried"] == [False] * 3
    assert torch.equal(done.loss, invert(tiny_dcgan, x, settings=replace(good, retry_above=0.0), seed=2).loss)


def test_the_shell_keeps_a_condition_and_the_radius_is_the_inputs_own():
    from ronan.inversion import _on_shell, typical_radius

    g = DCGAN(latent_dim=64, base=4, channels=1, image_size=28).freeze()
    assert typical_radius(g, None, 0) == pytest.approx(8.0, rel=0.03)  # sqrt(64)
    u = torch.randn(5, 64) * 3
    mask = torch.cat([torch.ones(60), torch.zeros(4)])
    z = _on_shell(u, mask, 7.0)
    assert torch.equal(z[:, 60:], u[:, 60:])  # the condition stays
    assert torch.allclose(z[:, :60].norm(dim=1), torch.full((5,), 7.0))
    assert torch.allclose(_on_shell(u, None, 2.0).norm(dim=1), torch.full((5,), 2.0))


def test_the_retry_settings_key_only_when_used_and_skip_the_reference(tiny_dcgan):
    assert "retry_above" not in resolve_settings("thorough").to_dict()  # the committed caches keep their keys
    two = resolve_settings("two-path", model=tiny_dcgan)
    d = two.to_dict()
    assert d["retry_above"] == pytest.approx(8 / (12 * 255**2)) and d["retry_shell_steps"] == 120
    assert d["retry_steps"] == 160 and d["refine_steps"] == 280 and d["reference_refine_steps"] == 160
    assert "typical shell" in two.describe()
    ref = two.for_reference()
    assert ref.retry_above == 0 and ref.refine_steps == 160 and "retry_above" not in ref.to_dict()
    assert replace(two, reference_refine_steps=None).for_reference().refine_steps == 280
    assert resolve_settings("two-path", model=tiny_dcgan, distance="ssim") == resolve_settings("fast-adam")
    for bad in ({"retry_above": -1.0}, {"retry_above": float("nan")}, {"retry_steps": -1},
                {"retry_above": 1e-5, "retry_shell_steps": 0, "retry_steps": 0}):
        with pytest.raises(ValueError, match="retry"):
            InversionSettings(**bad)


def test_each_preset_is_described_as_it_runs():
    """The one-line description names the Adam phase first and its early-stopping rule only where
    the rule can end a row before the last step (the CLI's --preset help is built from these)."""
    text = {name: s.describe() for name, s in PRESETS.items()}
    assert text["paper"] == "Adam lr 0.1, 1500 steps, 1 restart"
    assert text["fast"].startswith("Adam lr 0.2, 100 steps, 1 restart, the first from the model's learned inverse")
    assert text["two-path"].startswith("Adam lr 0.2, 1 step, 1 restart,") and "early stopping" not in text["two-path"]
    assert text["fast-lm16"].startswith("Adam lr 0.2, at most 300 steps (early stopping: a row stops once its loss")
    assert text["fast-adam"].startswith("Adam lr 0.2, at most 1000 steps (early stopping: a row's lr drops to 0.02")
    assert text["fast"].endswith("the reference model's inversion: up to 4 Levenberg-Marquardt iterations")
