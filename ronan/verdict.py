"""From numbers to a verdict: Grubbs' test on a (robust) belonging sample, and when to abstain.

Two test modes (``TEST_MODES``):

* ``"paper"`` — the paper's procedure exactly (Eq. 3): Grubbs' one-sided test of the query's
  calibrated loss against the mean and sample standard deviation of all N belonging values.
  Always belonging or non-belonging.
* ``"robust"`` (default) — the same test, made safe against failed inversions:

  1. **log domain**: the test runs on ``log A'``. Reconstruction losses are positive and span
     orders of magnitude; their logarithms are close to normal, which Grubbs' test assumes,
     while one failed inversion among raw values inflates sigma by itself.
  2. **outliers removed**: a belonging sample whose inversion failed (it stopped in a local
     minimum far above the others) is not evidence about the model. The generalized ESD test
     (iterated Grubbs, :func:`ronan.stats.esd_outliers`, one-sided, at ``outlier_alpha``)
     removes such values before the query is tested; the result says how many.
  3. **inconclusive** instead of a confident guess when the evidence cannot carry a verdict
     (:func:`decide`, rules below).

Inconclusive rules (mode ``"robust"``; each gives a one-line reason):

* *unreliable sample*: more than ``max_removed_fraction`` (10%) of the belonging samples were
  removed as failed inversions — the model's inversions are unreliable at these settings;
* *degenerate sample*: fewer than ``min_kept`` (10) values are left, or their spread is 0;
* *scattered sample*: the kept values' standard deviation in the log domain exceeds
  ``max_log_spread`` (1.5; the threshold is then more than ~150x their median): the model's own
  images do not reconstruct consistently at these settings (e.g. inverting through a crop), so
  any threshold wide enough for them also admits images it did not make (measured: healthy
  samples 0.13-0.73 on every bundled model, edits included; failing ones 2.1-3.8);
* *unsettled query*: the test says non-belonging but the query's inversion on M was still
  improving (by more than 10% over its last 100 steps) when it ended — more steps might
  reach the belonging range. A belonging outcome needs no settling: the loss already
  reached the belonging range.
* *not set apart from real pictures* (when a contrast check ran, :mod:`ronan.contrast`): the
  test says belonging, but the query's conformal p-value among held-out real pictures that went
  through the same edit is above ``contrast_alpha`` (default 0.01: with 100 pictures, one of them
  reconstructs at least as well), or that check applies but its distribution is not built here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .stats import esd_outliers, grubbs_critical_value, grubbs_statistic

BELONGING, NON_BELONGING, INCONCLUSIVE = "belonging", "non-belonging", "inconclusive"
TEST_MODES = ("robust", "paper")
DEFAULT_TEST = "robust"
LOG_FLOOR = 1e-12
"""Values below this are clamped before the logarithm (a perfect reconstruction)."""


@dataclass(frozen=True)
class DecisionSettings:
    """How a query is tested against the belonging distribution.

    Attributes:
        mode (str): ``"robust"`` (default) or ``"paper"`` (see the module docstring).
        alpha (float): significance of Grubbs' test on the query, in (0, 1); default 0.05.
        outlier_alpha (float): significance of each step of the outlier removal (robust mode),
            in (0, 1); default 0.05.
        max_removed_fraction (float): robust mode: above this fraction of removed samples the
            sample is unreliable and every verdict is inconclusive; default 0.1.
        min_kept (int): robust mode: fewest values left for a verdict; default 10.
        max_log_spread (float): robust mode: above this standard deviation of the kept log values
            the sample is too scattered to separate anything and every verdict is inconclusive;
            default 1.5.
        contrast_alpha (float): robust mode: level of the contrast check (:mod:`ronan.contrast`), in
            (0, 1); default 0.01 — with the bundled 100 real pictures, a belonging verdict under an
            edit must beat every one of them (p = 1/101).
    """

    mode: str = DEFAULT_TEST
    alpha: float = 0.05
    outlier_alpha: float = 0.05
    max_removed_fraction: float = 0.1
    min_kept: int = 10
    max_log_spread: float = 1.5
    contrast_alpha: float = 0.01

    def __post_init__(self):
        if self.mode not in TEST_MODES:
            raise ValueError(f"test mode must be one of {', '.join(TEST_MODES)}, not {self.mode!r}")
        for name in ("alpha", "outlier_alpha", "contrast_alpha"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 < v < 1.0):
                raise ValueError(f"{name} must be between 0 and 1 (exclusive), got {v!r}")
        if not 0.0 <= self.max_removed_fraction < 1.0 or self.min_kept < 3 or not self.max_log_spread > 0:
            raise ValueError("max_removed_fraction must be in [0, 1), min_kept >= 3 and max_log_spread > 0")

    @property
    def log_domain(self) -> bool:
        return self.mode == "robust"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SampleSummary:
    """The belonging sample as the test uses it (JSON-ready via ``to_dict``).

    Attributes:
        mode (str), domain (str): ``"log"`` (values are ``log A'``) or ``"linear"``.
        n (int): belonging samples in the distribution; ``n_kept`` used by the test.
        removed (list[int]): indices of the samples removed as failed inversions.
        removed_values (list[float]): their calibrated losses A'.
        mean (float), std (float): of the kept values in ``domain`` (ddof 1).
        critical_value (float): Grubbs' critical value for ``n_kept`` and alpha.
        threshold (float): the calibrated loss A' at which the statistic equals the critical
            value: queries below it are belonging (NaN when std is 0).
        problems (list[str]): reasons why this sample cannot carry any verdict (robust mode).
    """

    mode: str
    domain: str
    n: int
    n_kept: int
    removed: list[int]
    removed_values: list[float]
    mean: float
    std: float
    critical_value: float
    threshold: float
    alpha: float
    problems: list[str] = field(default_factory=list)

    def statistic(self, value: float) -> float:
        """Grubbs' statistic of a calibrated loss ``value`` against this sample."""
        if math.isnan(value):
            return math.nan
        return grubbs_statistic(_to_domain(value, self.domain), self.mean, self.std)

    def to_dict(self) -> dict:
        return asdict(self)


def _to_domain(value: float, domain: str) -> float:
    return math.log(max(value, LOG_FLOOR)) if domain == "log" else value


STRONGER_PRESET = "two-path"
"""The preset the unreliable-sample reasons suggest first: a second inversion path where the first
fails (benchmarks/RESULTS.md, "Two paths, the second only where the first failed": more belonging
samples converge with it than with ``"thorough"`` on both 64x64 models measured)."""


def remedy(inversion: dict | None = None) -> str:
    """What an unreliable-sample reason advises, given the distribution's inversion settings
    (``BelongingDistribution.settings``; None when unknown): the ``"two-path"`` preset, unless the
    settings already take a second path (``retry_above``) as it does."""
    if inversion and inversion.get("retry_above"):
        return (
            "even the 'two-path' inversion (a second path where the first fails) misses their inputs; "
            "no preset here does better"
        )
    return (
        f"try the '{STRONGER_PRESET}' inversion preset (a second inversion path where the first fails; "
        "'thorough' tries more starting points)"
    )


def summarize(
    values, test: DecisionSettings | None = None, settled=None, inversion: dict | None = None
) -> SampleSummary:
    """Prepare the belonging values (calibrated losses A') for the test of ``test``.

    Args:
        values (sequence of float): the N belonging calibrated losses (finite, >= 0).
        test (DecisionSettings | None): default ``DecisionSettings()`` (robust mode).
        settled (sequence of bool | None): per sample, whether its inversion on M had settled
            (``BelongingDistribution.sample_settled``); None when unknown. In robust mode, more than
            ``max_removed_fraction`` (10%) unsettled samples make every verdict inconclusive: when
            many belonging inversions were still improving, failed inversions are the bulk of the
            sample rather than outliers, and no test on it can be trusted.
        inversion (dict | None): the distribution's inversion settings, for the advice in those
            reasons (:func:`remedy`); default None.
    """
    test = test or DecisionSettings()
    raw = np.asarray(values, dtype=np.float64)
    domain = "log" if test.log_domain else "linear"
    x = np.log(np.maximum(raw, LOG_FLOOR)) if domain == "log" else raw
    removed = esd_outliers(x, test.outlier_alpha) if test.mode == "robust" else []
    keep = np.ones(x.size, dtype=bool)
    keep[removed] = False
    kept = x[keep]
    n_kept = int(kept.size)
    mean = float(kept.mean()) if n_kept else math.nan
    std = float(kept.std(ddof=1)) if n_kept > 1 else math.nan
    problems = []
    if test.mode == "robust":
        if len(removed) > test.max_removed_fraction * x.size:
            problems.append(
                f"{len(removed)} of the {x.size} belonging samples did not invert like the others "
                f"(more than {test.max_removed_fraction:.0%}): this model's inversions are unreliable "
                f"at these settings; {remedy(inversion)}"
            )
        unsettled = 0 if settled is None else sum(not bool(v) for v in settled)
        if unsettled > test.max_removed_fraction * x.size:
            problems.append(
                f"{unsettled} of the {x.size} belonging samples' inversions were still improving when they "
                f"ended (more than {test.max_removed_fraction:.0%}): the belonging distribution is unreliable "
                f"for this model at these settings; {remedy(inversion)}"
            )
        if domain == "log" and std > test.max_log_spread:
            problems.append(
                f"the belonging samples' losses are scattered over orders of magnitude (standard deviation "
                f"{std:.2f} of their logarithms, more than {test.max_log_spread:g}): the model does not reconstruct "
                f"its own images consistently at these settings, so no threshold separates them from others"
            )
        if n_kept < test.min_kept or not std > 0:
            problems.append(
                f"the belonging sample is degenerate ({n_kept} values, spread {std:.3g}): it cannot support a test"
            )
    crit = grubbs_critical_value(max(n_kept, 3), test.alpha)
    if std > 0:
        edge = mean + crit * std
        threshold = math.exp(edge) if domain == "log" else edge
    else:
        threshold = math.nan
    return SampleSummary(
        test.mode,
        domain,
        int(x.size),
        n_kept,
        [int(i) for i in removed],
        [float(raw[i]) for i in removed],
        mean,
        std,
        crit,
        threshold,
        test.alpha,
        problems,
    )


@dataclass(frozen=True)
class Verdict:
    """A decision: ``verdict`` is belonging, non-belonging or inconclusive.

    ``test_belonging`` is what Grubbs' test alone says (``statistic < critical_value``);
    ``reasons`` explain an inconclusive verdict (empty otherwise).
    """

    verdict: str
    statistic: float
    critical_value: float
    test_belonging: bool
    reasons: tuple[str, ...] = ()


def test_belongs(value: float, summary: SampleSummary) -> bool:
    """What Grubbs' test alone says of a calibrated loss ``value``: belonging when its statistic is
    below the critical value (NaN never belongs). Monotone: a larger ``value`` never belongs more."""
    g = summary.statistic(value)
    return bool(g < summary.critical_value) if not math.isnan(g) else False


def decide(value: float, summary: SampleSummary, *, settled: bool = True, contrast=None, edit: str = "none") -> Verdict:
    """Test a query's calibrated loss ``value`` against ``summary`` and apply the abstention rules.

    Args:
        value (float): A'(M, x) of the query (>= 0; NaN never counts as belonging).
        summary (SampleSummary): from :func:`summarize`.
        settled (bool): whether the query's inversion on M had settled when it ended
            (see :func:`ronan.inversion.settled`); default True.
        contrast (ContrastCheck | None): the query among real pictures under the same edit
            (:func:`ronan.contrast.check`); None when no contrast check ran. Robust mode only.
        edit (str): the edit assumed (named in the contrast reason); default ``"none"``.
    """
    g = summary.statistic(value)
    crit = summary.critical_value
    test_belonging = test_belongs(value, summary)
    if summary.mode == "paper":
        return Verdict(BELONGING if test_belonging else NON_BELONGING, g, crit, test_belonging)
    reasons = list(summary.problems)
    if math.isnan(value):
        reasons.append("the reconstruction loss is not a number")
    if not test_belonging and not settled:
        reasons.append(
            "the inversion was still improving when it ended (more than 10% over its last 100 steps): "
            "more steps might reach the belonging range"
        )
    if test_belonging and contrast is not None and not contrast.apart:
        reasons.append(contrast.reason(edit))
    verdict = INCONCLUSIVE if reasons else (BELONGING if test_belonging else NON_BELONGING)
    return Verdict(verdict, g, crit, test_belonging, tuple(reasons))


def pick(verdicts: list[Verdict]) -> int:
    """Index of the verdict that decides when one query was tested against several belonging
    distributions (the robust edit assumption: one per edit of the family): among the belonging
    verdicts, if any, the closest fit (the smallest ``|statistic|``: the distribution in which the
    query is most typical, not the one it lies furthest below); else among the inconclusive ones;
    else the non-belonging one with the smallest statistic. So the query is non-belonging only when
    it fits none of them."""
    rank = {BELONGING: 0, INCONCLUSIVE: 1, NON_BELONGING: 2}

    def key(i: int) -> tuple:
        s = verdicts[i].statistic
        return (rank[verdicts[i].verdict], math.inf if math.isnan(s) else abs(s))

    return min(range(len(verdicts)), key=key)
