"""Counting decisions: the paper's confusion table (TP, FP, FN, TN, Acc) and ROC AUC.

"Positive" is *belonging*: TP = a belonging image judged belonging, FP = a non-belonging
image judged belonging.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import rankdata


def confusion(belonging_verdicts: Sequence[bool], non_belonging_verdicts: Sequence[bool]) -> dict:
    """Confusion table from verdicts (True = judged belonging) of the two groups.

    Returns:
        dict with ``tp, fn, tn, fp`` (int), ``accuracy``, ``tpr``, ``fpr`` (float, NaN for an
        empty group), ``n_belonging``, ``n_non_belonging``.
    """
    b = np.asarray(belonging_verdicts, dtype=bool)
    nb = np.asarray(non_belonging_verdicts, dtype=bool)
    tp, fn = int(b.sum()), int((~b).sum())
    fp, tn = int(nb.sum()), int((~nb).sum())
    total = tp + fn + fp + tn
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "accuracy": (tp + tn) / total if total else float("nan"),
            "tpr": tp / (tp + fn) if tp + fn else float("nan"),
            "fpr": fp / (fp + tn) if fp + tn else float("nan"),
            "n_belonging": tp + fn, "n_non_belonging": fp + tn}


def roc_auc(belonging_scores: Sequence[float], non_belonging_scores: Sequence[float]) -> float:
    """Area under the ROC curve of a score that is *lower* for belonging images.

    Equals P(score of a belonging image < score of a non-belonging one), ties counting 1/2
    (the Mann-Whitney U statistic); NaN if a group is empty.
    """
    b = np.asarray(belonging_scores, dtype=np.float64)
    nb = np.asarray(non_belonging_scores, dtype=np.float64)
    if b.size == 0 or nb.size == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([nb, b]))  # high rank = high score = non-belonging
    u = ranks[: nb.size].sum() - nb.size * (nb.size + 1) / 2
    return float(u / (nb.size * b.size))
