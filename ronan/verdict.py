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

The floor rule (mode ``"robust"``, ``floor_rule``, on by default): when the whole sample cannot
carry a verdict (one of the first three rules) but at least ``min_kept`` of its samples' inversions
*reached the floor* (MSE below 8x the 8-bit floor, :data:`ronan.distances.REACHED_FLOOR`: their
input was found up to rounding) and those form a sound sample by themselves, a query whose own
inversion reached the floor too is tested against them alone (``SampleSummary.on_floor``; the
verdict's ``basis`` is ``"floor"``). Both sides are then conditioned on the same event, so the
comparison is fair; a failed inversion can only raise a loss, never bring an image the model did
not make to the floor, so failures cannot make such an image look belonging. A query that did
not reach the floor stays inconclusive, with that reason: on such a model a belonging image fails
as often as the samples did. And on every model, a query whose own inversion reached the floor is
never judged *not belonging*: where the test rejects it, the outcome is inconclusive with that
reason. The model reproduces such an image up to rounding; what pushes its calibrated loss above
the samples' is a reference model that also reconstructs it closely (a plain image) or an inversion
that stopped just short of the samples' floor — neither is evidence that another model made it
(measured: no real picture or other model's image reached the floor in any run, RESULTS.md). Only for
the MSE distance on unedited images (:func:`floor_for`: an edit's floor is not the 8-bit one).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .distances import REACHED_FLOOR
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
        floor_rule (bool): robust mode: when the whole sample cannot carry a verdict, decide a
            query whose inversion reached the 8-bit floor against the samples that reached it
            too, and never judge a query that reached the floor not belonging (see the module
            docstring); default True. False: the robust test before the rule.
    """

    mode: str = DEFAULT_TEST
    alpha: float = 0.05
    outlier_alpha: float = 0.05
    max_removed_fraction: float = 0.1
    min_kept: int = 10
    max_log_spread: float = 1.5
    contrast_alpha: float = 0.01
    floor_rule: bool = True

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
        basis (str): ``"all"`` (the whole sample) or ``"floor"`` (only the samples whose inversions
            reached the floor; the others are in ``removed``).
        floor (float | None): the raw loss below which an inversion reached the 8-bit floor
            (:func:`floor_for`), where the floor rule applies (robust test, ``floor_rule``, MSE on
            unedited images); None otherwise.
        on_floor (SampleSummary | None): the floor rule's summary (basis ``"floor"``, no problems),
            when the rule applies: the whole sample has problems and its samples that reached the
            floor form a sound sample (see the module docstring); else None.
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
    basis: str = "all"
    floor: float | None = None
    on_floor: SampleSummary | None = None

    def statistic(self, value: float) -> float:
        """Grubbs' statistic of a calibrated loss ``value`` against this sample."""
        if math.isnan(value):
            return math.nan
        return grubbs_statistic(_to_domain(value, self.domain), self.mean, self.std)

    def to_dict(self) -> dict:
        return asdict(self)

    def for_basis(self, basis: str) -> SampleSummary:
        """The summary a verdict of ``basis`` (``Verdict.basis``) was tested against."""
        return self.on_floor if basis == "floor" and self.on_floor is not None else self

    def deciding(self, loss: float | None) -> SampleSummary | None:
        """The summary that decides a query whose raw loss on M is ``loss``: this one, or with the
        floor rule (``on_floor``) its floor sample for a query that reached the floor and None for
        one that did not (inconclusive whatever its calibrated loss)."""
        floor = self.on_floor.floor if self.on_floor is not None else None
        if floor is None or loss is None or math.isnan(loss):
            return self
        return self.on_floor if loss < floor else None


def floor_for(distance: str, edited: bool) -> float | None:
    """The raw loss below which an inversion reached the floor, for the floor rule: 8x the 8-bit
    floor of the MSE (:data:`ronan.distances.REACHED_FLOOR`) on unedited images; None otherwise (other
    distances have no such floor, and an edit's own error is not the 8-bit one)."""
    return REACHED_FLOOR if distance == "mse" and not edited else None


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
    values,
    test: DecisionSettings | None = None,
    settled=None,
    inversion: dict | None = None,
    *,
    losses=None,
    floor: float | None = None,
    remove_outliers: bool = True,
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
        losses (sequence of float | None): the samples' raw losses on M
            (``BelongingDistribution.losses``), for the floor rule; default None (no floor rule).
        floor (float | None): the raw loss below which an inversion reached the floor
            (:func:`floor_for`); None (default): no floor rule.
        remove_outliers (bool): robust mode: remove failed inversions with the generalized ESD
            test (default True); False for the floor rule's sample, where every inversion
            succeeded and a high value is the reference's doing, not a failure.
    """
    test = test or DecisionSettings()
    raw = np.asarray(values, dtype=np.float64)
    domain = "log" if test.log_domain else "linear"
    x = np.log(np.maximum(raw, LOG_FLOOR)) if domain == "log" else raw
    removed = esd_outliers(x, test.outlier_alpha) if test.mode == "robust" and remove_outliers else []
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
    summary = SampleSummary(
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
    if test.mode == "robust" and test.floor_rule and floor is not None:
        summary.floor = float(floor)
        if problems and losses is not None:
            summary.on_floor = _on_floor(raw, np.asarray(losses, dtype=np.float64), floor, test)
    return summary


def _on_floor(values: np.ndarray, losses: np.ndarray, floor: float, test: DecisionSettings) -> SampleSummary | None:
    """The floor rule's summary: the values whose raw loss is below ``floor``, in the log domain, none
    of them removed (every inversion in it succeeded: a high value there means the reference
    reconstructs that image well, which is the spread a query meets too); the others listed as
    removed (indices into the whole sample). None when fewer than ``min_kept`` reached it or those
    have problems of their own (no spread, scattered)."""
    reached = np.nonzero(losses < floor)[0]
    if reached.size < test.min_kept:
        return None
    sub = summarize(values[reached], test, remove_outliers=False)
    if sub.problems:
        return None
    on_floor = set(reached.tolist())
    removed = [i for i in range(values.size) if i not in on_floor]
    return replace(
        sub,
        n=int(values.size),
        removed=removed,
        removed_values=[float(values[i]) for i in removed],
        basis="floor",
        floor=float(floor),
    )


@dataclass(frozen=True)
class Verdict:
    """A decision: ``verdict`` is belonging, non-belonging or inconclusive.

    ``test_belonging`` is what Grubbs' test alone says (``statistic < critical_value``);
    ``reasons`` explain an inconclusive verdict (empty otherwise); ``basis`` is the sample it was
    tested against: ``"all"`` or ``"floor"`` (the floor rule: ``SampleSummary.on_floor``).
    """

    verdict: str
    statistic: float
    critical_value: float
    test_belonging: bool
    reasons: tuple[str, ...] = ()
    basis: str = "all"


def test_belongs(value: float, summary: SampleSummary) -> bool:
    """What Grubbs' test alone says of a calibrated loss ``value``: belonging when its statistic is
    below the critical value (NaN never belongs). Monotone: a larger ``value`` never belongs more."""
    g = summary.statistic(value)
    return bool(g < summary.critical_value) if not math.isnan(g) else False


def unmodelled_reason(what: str) -> str:
    """The reason of an inconclusive outcome where the file is ``what`` (e.g. ``"a lossy WebP"``), an
    encoding no edit models (one clause)."""
    return (
        f"the file is {what}, a change no edit here models: it alone can lift a generated image above the "
        f"model's own samples, and this image lies within twice what its strongest form does to them, so a "
        f"rejection is no evidence"
    )


def decide(
    value: float,
    summary: SampleSummary,
    *,
    settled: bool = True,
    contrast=None,
    edit: str = "none",
    loss: float | None = None,
    unmodelled: str | None = None,
) -> Verdict:
    """Test a query's calibrated loss ``value`` against ``summary`` and apply the abstention rules.

    Args:
        value (float): A'(M, x) of the query (>= 0; NaN never counts as belonging).
        summary (SampleSummary): from :func:`summarize`.
        settled (bool): whether the query's inversion on M had settled when it ended
            (see :func:`ronan.inversion.settled`); default True.
        contrast (ContrastCheck | None): the query among real pictures under the same edit
            (:func:`ronan.contrast.check`); None when no contrast check ran. Robust mode only.
        edit (str): the edit assumed (named in the contrast reason); default ``"none"``.
        loss (float | None): the query's raw loss A(M, x), for the floor rule
            (``summary.on_floor``); None (default): the rule is not applied.
        unmodelled (str | None): a lossy encoding the file reveals that no assumed edit models
            (:func:`ronan.edits.policy.unmodelled`, e.g. ``"a lossy WebP"``) and whose strongest
            form could explain a rejection (:func:`ronan.edits.stand_in.unmodelled_rejection_holds`
            is False): a rejection is then inconclusive (robust mode). None (default): nothing.
    """
    deciding = summary.deciding(loss)
    if deciding is not None and deciding is not summary:  # the floor rule: both reached the floor
        on_floor = decide(
            value, deciding, settled=settled, contrast=contrast, edit=edit, loss=loss, unmodelled=unmodelled
        )
        return replace(on_floor, basis="floor")
    g = summary.statistic(value)
    crit = summary.critical_value
    test_belonging = test_belongs(value, summary)
    if summary.mode == "paper":
        return Verdict(BELONGING if test_belonging else NON_BELONGING, g, crit, test_belonging)
    reasons = list(summary.problems)
    if deciding is None and summary.on_floor is not None:
        f = summary.on_floor
        reasons.append(
            f"this image's own inversion did not reach the 8-bit floor either (loss {loss:.3g}, floor "
            f"{f.floor:.3g}): on this model only an image that does can be decided, against the {f.n_kept} of "
            f"the {f.n} belonging samples that reached it"
        )
    if not test_belonging and summary.floor is not None and loss is not None and loss < summary.floor:
        reasons.append(
            f"this image's own inversion reached the 8-bit floor (loss {loss:.3g} < {summary.floor:.3g}): the model "
            f"reproduces it up to rounding, and what lifts it above the model's own samples (an inversion that "
            f"stopped just short of their floor, or a reference model that also reconstructs a plain image "
            f"closely) is no evidence that another model made it"
        )
    if math.isnan(value):
        reasons.append("the reconstruction loss is not a number")
    if not test_belonging and not settled:
        reasons.append(
            "the inversion was still improving when it ended (more than 10% over its last 100 steps): "
            "more steps might reach the belonging range"
        )
    if not test_belonging and unmodelled:
        reasons.append(unmodelled_reason(unmodelled))
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
