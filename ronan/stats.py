"""Grubbs' test as RONAN uses it (paper Eq. 3, Appendix B).

H0: the examined image is *non-belonging*. Given the belonging distribution of the model
(N calibrated losses with mean ``mu`` and sample standard deviation ``sigma``), the image
with calibrated loss ``a`` is flagged **belonging** when

    G = (a - mu) / sigma  <  (N - 1) / sqrt(N) * sqrt(t^2 / (N - 2 + t^2)),

with ``t = t_{alpha/N, N-2}`` the upper ``alpha/N`` critical value of Student's t with
``N - 2`` degrees of freedom. The test is one-sided: a value far *below* ``mu`` (an even
easier reconstruction) is belonging too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def grubbs_critical_value(n: int, alpha: float = 0.05) -> float:
    """One-sided Grubbs critical value for ``n`` samples at significance ``alpha``.

    Args:
        n (int): number of belonging samples, >= 3.
        alpha (float): significance level in (0, 1); default 0.05.

    Returns:
        ``(n-1)/sqrt(n) * sqrt(t^2 / (n-2+t^2))`` with ``t = scipy.stats.t.isf(alpha/n, n-2)``, the
        upper ``alpha/n`` critical value (``isf`` stays exact for tiny ``alpha``, where
        ``ppf(1 - alpha/n)`` loses it to rounding).
    """
    if n < 3:
        raise ValueError(f"Grubbs' test needs at least 3 belonging samples, got {n}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return (n - 1) / math.sqrt(n) * math.sqrt(_t_ratio(alpha / n, n - 2))


def _t_ratio(p: float, df: int) -> float:
    """``t^2 / (df + t^2)`` for ``t = t_{p, df}`` (upper critical value), written ``1 / (1 + df / t^2)`` so
    that it stays exact where ``t`` overflows: a ``p`` so small that ``t`` is infinite (or ``p``
    underflows to 0) gives the limit 1, never NaN."""
    from scipy import stats  # here, not at import: scipy takes most of a second to import

    t = float(stats.t.isf(p, df)) if p > 0 else math.inf
    if math.isnan(t) or math.isinf(t):
        return 1.0
    return 1.0 / (1.0 + df / (t * t))


def grubbs_statistic(value: float, mean: float, std: float) -> float:
    """``(value - mean) / std``; with ``std == 0`` it is 0 at the mean and +-inf elsewhere."""
    if std > 0.0:
        return (value - mean) / std
    if value == mean:
        return 0.0
    return math.inf if value > mean else -math.inf


@dataclass(frozen=True)
class GrubbsDecision:
    """Outcome of the test. ``belonging`` is True when ``statistic < critical_value``."""

    statistic: float
    critical_value: float
    belonging: bool


def grubbs_test(value: float, mean: float, std: float, n: int, alpha: float = 0.05) -> GrubbsDecision:
    """Decide whether a calibrated loss ``value`` belongs to the distribution ``(mean, std, n)``.

    Args:
        value (float): calibrated loss A'(M, x) of the examined image (>= 0; NaN is non-belonging).
        mean (float): mean of the belonging calibrated losses.
        std (float): their sample standard deviation (ddof = 1), >= 0.
        n (int): number of belonging samples, >= 3.
        alpha (float): significance level, default 0.05.
    """
    critical = grubbs_critical_value(n, alpha)
    if math.isnan(value):
        return GrubbsDecision(math.nan, critical, False)
    g = grubbs_statistic(value, mean, std)
    return GrubbsDecision(g, critical, g < critical)


def esd_outliers(values, alpha: float = 0.05, max_outliers: int | None = None) -> list[int]:
    """Upper outliers of a sample by the generalized ESD test (Rosner 1983), i.e. iterated Grubbs.

    Grubbs' test applied repeatedly, with Rosner's critical values so that several outliers
    do not mask each other: for ``i = 1 .. r`` the most extreme high value of the remaining
    sample is set aside with ``R_i = (x_max - mean) / std``; the number of outliers is the
    largest ``i`` with ``R_i > lambda_i``, where
    ``lambda_i = (n-i) t / sqrt((n-i-1+t^2)(n-i+1))`` and ``t = t_{alpha/(n-i+1), n-i-1}``
    (one-sided: only values *above* the rest are outliers — in RONAN a failed inversion
    reconstructs worse than the others, never better).

    Args:
        values (sequence of float): the sample (finite).
        alpha (float): significance of each step, in (0, 1); default 0.05.
        max_outliers (int | None): upper bound ``r`` of outliers searched; default ``n // 4``.
            At most ``n - 3`` (Grubbs needs 3 values).

    Returns:
        Indices (into ``values``) of the outliers, most extreme first; empty if none.
    """
    import numpy as np

    x = np.asarray(values, dtype=np.float64)
    n = x.size
    if n < 4:
        return []
    r = min(n // 4 if max_outliers is None else max_outliers, n - 3)
    remaining = list(range(n))
    removed, found = [], 0
    for i in range(1, r + 1):
        sub = x[remaining]
        std = sub.std(ddof=1)
        if not std > 0:
            break
        j = int(np.argmax(sub))
        stat = (sub[j] - sub.mean()) / std
        m = n - i + 1  # size of the sample tested at this step
        lam = (m - 1) / math.sqrt(m) * math.sqrt(_t_ratio(alpha / m, m - 2))
        removed.append(remaining.pop(j))
        if stat > lam:
            found = i
    return removed[:found]
