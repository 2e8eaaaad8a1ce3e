"""The robust belonging test: outlier removal, log domain, inconclusive outcomes, the paper mode."""

import math

import numpy as np
import pytest

from ronan.stats import esd_outliers, grubbs_test
from ronan.verdict import DecisionSettings, decide, summarize


def belonging_sample(n=100, seed=0, center=2e-4, spread=0.4):
    """Calibrated losses of converged belonging inversions: log-normal around ``center``."""
    rng = np.random.default_rng(seed)
    return np.exp(np.log(center) + spread * rng.standard_normal(n))


def test_esd_finds_planted_upper_outliers_only():
    x = list(belonging_sample())
    assert esd_outliers(np.log(x)) == []
    planted = x + [5e-2, 3e-2, 8e-2]           # three failed inversions
    low = planted + [1e-7]                      # an unusually good inversion is not a failure
    found = esd_outliers(np.log(low))
    assert sorted(found) == [100, 101, 102]


def test_esd_false_alarm_rate_is_alpha():
    hits = sum(bool(esd_outliers(np.random.default_rng(s).standard_normal(100), 0.05)) for s in range(400))
    assert 0.02 < hits / 400 < 0.09


def test_planted_failed_inversions_do_not_change_a_real_images_verdict():
    """The issue's case: a few failed belonging inversions inflate sigma until real images pass."""
    clean = list(belonging_sample())
    poisoned = clean[:95] + [2e-2, 5e-2, 9e-2, 3e-2, 6e-2]   # 5 of 100 inversions failed
    real = 4e-3                                              # a real image: 20x the belonging losses
    paper = summarize(poisoned, DecisionSettings(mode="paper"))
    assert decide(real, paper).verdict == "belonging"        # the paper's test is poisoned
    for sample in (clean, poisoned):
        robust = summarize(sample, DecisionSettings())
        verdict = decide(real, robust)
        assert verdict.verdict == "non-belonging" and verdict.statistic > verdict.critical_value
    robust = summarize(poisoned, DecisionSettings())
    assert sorted(robust.removed) == [95, 96, 97, 98, 99] and robust.n_kept == 95
    assert robust.removed_values[0] in poisoned[95:]
    # belonging images stay belonging
    for v in clean[:10]:
        assert decide(v, robust).verdict == "belonging"


def test_threshold_is_where_the_statistic_meets_the_critical_value():
    s = summarize(belonging_sample(), DecisionSettings())
    assert s.domain == "log"
    assert math.isclose(s.statistic(s.threshold), s.critical_value, rel_tol=1e-9)
    assert decide(s.threshold * 0.99, s).verdict == "belonging"
    assert decide(s.threshold * 1.01, s).verdict == "non-belonging"


def test_paper_mode_is_eq3_exactly():
    vals = belonging_sample()
    s = summarize(vals, DecisionSettings(mode="paper", alpha=0.05))
    assert s.domain == "linear" and s.removed == [] and s.n_kept == 100
    for v in (1e-4, 3e-4, 6e-4, 1e-3, 5e-2):
        ref = grubbs_test(v, float(np.mean(vals)), float(np.std(vals, ddof=1)), 100, 0.05)
        got = decide(v, s, settled=False)   # no abstention in the paper's procedure
        assert got.verdict == ("belonging" if ref.belonging else "non-belonging")
        assert math.isclose(got.statistic, ref.statistic)


def test_too_many_failed_samples_make_every_verdict_inconclusive():
    sample = list(belonging_sample(100))[:85] + list(np.geomspace(1e-2, 1e-1, 15))
    s = summarize(sample, DecisionSettings())
    assert len(s.removed) > 10 and s.problems
    for v in (1e-4, 1.0):
        d = decide(v, s)
        assert d.verdict == "inconclusive" and "did not invert like the others" in d.reasons[0]


def test_degenerate_sample_is_inconclusive():
    s = summarize([1e-3] * 20, DecisionSettings())
    d = decide(1e-3, s)
    assert d.verdict == "inconclusive" and "degenerate" in d.reasons[0]


def test_unsettled_query_is_inconclusive_only_when_the_test_rejects_it():
    s = summarize(belonging_sample(), DecisionSettings())
    assert decide(1.0, s, settled=False).verdict == "inconclusive"
    assert "still improving" in decide(1.0, s, settled=False).reasons[0]
    assert decide(1.0, s, settled=True).verdict == "non-belonging"
    assert decide(2e-4, s, settled=False).verdict == "belonging"


def test_nan_is_never_belonging():
    for mode in ("paper", "robust"):
        assert decide(math.nan, summarize(belonging_sample(), DecisionSettings(mode=mode))).verdict != "belonging"


@pytest.mark.parametrize("bad", [dict(mode="x"), dict(alpha=0), dict(alpha=1.5), dict(outlier_alpha=-1),
                                 dict(max_removed_fraction=1.0), dict(min_kept=2), dict(max_log_spread=0)])
def test_invalid_test_settings(bad):
    with pytest.raises(ValueError):
        DecisionSettings(**bad)


def test_a_sample_of_unsettled_inversions_makes_every_verdict_inconclusive():
    """Many belonging inversions still improving when they ended (upgan64-clipart: 26 of 100): failures are
    then the bulk of the sample, not outliers the robust test could remove, so nothing is decided on it."""
    sample = list(belonging_sample(100))
    few = summarize(sample, DecisionSettings(), settled=[True] * 95 + [False] * 5)
    assert not few.problems
    many = summarize(sample, DecisionSettings(), settled=[True] * 74 + [False] * 26)
    for v in (1e-6, 1.0):
        d = decide(v, many)
        assert d.verdict == "inconclusive" and "still improving" in d.reasons[0]
    assert decide(1.0, summarize(sample, DecisionSettings(mode="paper"), settled=[False] * 100)).verdict != "inconclusive"


def test_an_unreliable_sample_advises_the_two_path_preset_unless_it_was_used():
    from ronan.inversion import resolve_settings

    sample = list(belonging_sample(100))
    settled = [True] * 74 + [False] * 26
    for preset in ("fast", "thorough"):
        told = summarize(sample, DecisionSettings(), settled=settled, inversion=resolve_settings(preset).to_dict())
        assert "try the 'two-path' inversion preset" in told.problems[0], told.problems
    two = summarize(sample, DecisionSettings(), settled=settled, inversion=resolve_settings("two-path").to_dict())
    assert "even the 'two-path'" in two.problems[0] and "try the" not in two.problems[0]


def test_a_scattered_sample_makes_every_verdict_inconclusive():
    """Belonging losses spread over orders of magnitude (inverting through a crop: log standard deviation
    2.1; healthy samples of every bundled model: 0.13-0.73) put the log-domain threshold hundreds of times
    above their median, where real images pass: the robust test abstains; the paper's test still decides."""
    healthy = summarize(belonging_sample(spread=0.7), DecisionSettings())
    assert not healthy.problems and decide(1.0, healthy).verdict == "non-belonging"
    scattered = belonging_sample(spread=2.0)
    s = summarize(scattered, DecisionSettings())
    assert s.threshold > 100 * np.median(scattered)
    for v in (np.median(scattered), 50 * np.median(scattered)):
        d = decide(v, s)
        assert d.verdict == "inconclusive" and "scattered" in d.reasons[0]
    assert decide(50 * np.median(scattered), summarize(scattered, DecisionSettings(mode="paper"))).verdict != "inconclusive"
    assert not summarize(scattered, DecisionSettings(max_log_spread=2.5)).problems


def unreliable_sample(n=100, reached=40, seed=0):
    """A model whose inversions fail on most of its own images (resgan64-clipart with `fast`: 15 of
    100 reach the floor): raw losses and calibrated losses of ``reached`` converged samples (raw
    ~1e-6, A' log-normal around 2e-4) and of failed ones spread over orders of magnitude."""
    rng = np.random.default_rng(seed)
    raw = np.concatenate([np.exp(np.log(1e-6) + 0.2 * rng.standard_normal(reached)),
                          np.geomspace(3e-5, 3e-2, n - reached)])
    ref = raw / np.concatenate([belonging_sample(reached, seed), np.geomspace(6e-3, 2.0, n - reached)])
    return list(raw / ref), list(raw)


def test_the_floor_rule_decides_only_images_that_reached_the_floor():
    """When failed inversions are the bulk of the sample, an image whose own inversion reached the
    8-bit floor is tested against the samples that reached it too; one that did not stays inconclusive."""
    from ronan.verdict import floor_for

    values, losses = unreliable_sample()
    floor = floor_for("mse", edited=False)
    assert floor == pytest.approx(8 / (12 * 255**2))
    s = summarize(values, DecisionSettings(), losses=losses, floor=floor)
    assert s.problems and s.on_floor is not None and s.on_floor.basis == "floor" and not s.on_floor.problems
    f = s.on_floor
    assert f.n == 100 and f.n_kept == 40 and f.removed == list(range(40, 100))  # every sample on the floor counts
    high = summarize(values[:39] + [values[0] * 30] + values[40:], DecisionSettings(), losses=losses, floor=floor)
    assert high.on_floor.n_kept == 40  # a floor sample the reference reconstructs well is spread, not a failure
    assert 1e-4 < f.threshold < 1e-3 < s.threshold        # the whole sample's threshold admits far more
    own = decide(2e-4, s, loss=1e-6)
    assert own.verdict == "belonging" and own.basis == "floor" and not own.reasons
    assert own.statistic == pytest.approx(f.statistic(2e-4))
    generic = decide(2e-2, s, loss=1e-6)                  # on the floor, but the reference makes it nearly as well
    assert generic.verdict == "inconclusive" and generic.basis == "floor" and not generic.test_belonging
    assert "reached the 8-bit floor" in generic.reasons[0]  # never a confident "not belonging" for it
    for value, loss in ((2e-4, 5e-4), (1.0, 3e-3)):       # did not reach the floor: no verdict, whatever A'
        d = decide(value, s, loss=loss)
        assert d.verdict == "inconclusive" and d.basis == "all"
        assert "scattered" in d.reasons[0] and "did not reach the 8-bit floor" in d.reasons[-1]
    assert decide(2e-4, s).verdict == "inconclusive"      # the query's raw loss unknown: no floor rule
    assert s.deciding(1e-6) is f and s.deciding(1e-3) is None and s.for_basis("floor") is f
    # the rule switched off, an edit or another distance: every verdict inconclusive, as before
    off = summarize(values, DecisionSettings(floor_rule=False), losses=losses, floor=floor)
    assert off.on_floor is None and decide(2e-4, off, loss=1e-6).verdict == "inconclusive"
    assert floor_for("mse", edited=True) is None and floor_for("ssim", edited=False) is None
    assert summarize(values, DecisionSettings(), losses=losses, floor=None).on_floor is None
    # the paper's test and a healthy sample are untouched
    assert summarize(values, DecisionSettings(mode="paper"), losses=losses, floor=floor).on_floor is None
    healthy = summarize(belonging_sample(), DecisionSettings(), losses=[1e-6] * 100, floor=floor)
    assert healthy.on_floor is None and decide(2e-4, healthy, loss=1e-6).basis == "all"


def test_an_image_that_reached_the_floor_is_never_judged_not_belonging():
    """On a healthy sample too: a query whose inversion reached the 8-bit floor but whose calibrated
    loss the test rejects (the reference reproduces a plain image nearly as well) is inconclusive
    with the reason; off the floor the same value is not belonging; the paper's test, the rule
    switched off, an edit (no floor) keep the rejection."""
    floor = 8 / (12 * 255**2)
    healthy = summarize(belonging_sample(), DecisionSettings(), losses=[1e-6] * 100, floor=floor)
    assert not healthy.problems and healthy.on_floor is None and healthy.floor == floor
    plain = decide(5e-2, healthy, loss=1e-6)
    assert plain.verdict == "inconclusive" and not plain.test_belonging and plain.basis == "all"
    assert len(plain.reasons) == 1 and "reached the 8-bit floor (loss 1e-06" in plain.reasons[0]
    assert decide(5e-2, healthy, loss=2e-5).verdict == "non-belonging"  # above the floor: the test decides
    assert decide(2e-4, healthy, loss=1e-6).verdict == "belonging"     # the rule only withholds a rejection
    for settings, f in ((DecisionSettings(floor_rule=False), floor), (DecisionSettings(mode="paper"), floor),
                        (DecisionSettings(), None)):
        s = summarize(belonging_sample(), settings, losses=[1e-6] * 100, floor=f)
        assert s.floor is None and decide(5e-2, s, loss=1e-6).verdict == "non-belonging"


def test_the_floor_rule_needs_enough_samples_on_the_floor():
    values, losses = unreliable_sample(reached=8)
    s = summarize(values, DecisionSettings(), losses=losses, floor=8 / (12 * 255**2))
    assert s.problems and s.on_floor is None               # 8 < min_kept (10): nothing to test against
    assert decide(2e-4, s, loss=1e-6).verdict == "inconclusive"
