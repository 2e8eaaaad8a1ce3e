import math

import pytest

from ronan.stats import grubbs_critical_value, grubbs_statistic, grubbs_test

# One-sided 5% critical values of Grubbs' test (Grubbs 1969, Table I; NIST e-Handbook 1.3.5.17).
PUBLISHED = {3: 1.153, 5: 1.672, 10: 2.176, 20: 2.557, 30: 2.745, 50: 2.956, 100: 3.207}
# One-sided 1% values from the same table.
PUBLISHED_01 = {10: 2.410, 20: 2.884, 50: 3.336}


@pytest.mark.parametrize("n,value", sorted(PUBLISHED.items()))
def test_critical_values_match_published_table(n, value):
    assert grubbs_critical_value(n, 0.05) == pytest.approx(value, abs=3e-3)


@pytest.mark.parametrize("n,value", sorted(PUBLISHED_01.items()))
def test_critical_values_alpha_001(n, value):
    assert grubbs_critical_value(n, 0.01) == pytest.approx(value, abs=3e-3)


def test_formula_is_eq3():
    from scipy.stats import t as student

    n, alpha = 100, 0.05
    t = student.ppf(1 - alpha / n, n - 2)
    assert grubbs_critical_value(n, alpha) == pytest.approx((n - 1) / math.sqrt(n) * math.sqrt(t**2 / (n - 2 + t**2)))


def test_decision_is_one_sided():
    mean, std, n = 1.0, 0.1, 100
    crit = grubbs_critical_value(n)
    assert grubbs_test(mean, mean, std, n).belonging
    assert grubbs_test(mean - 10 * std, mean, std, n).belonging  # far below: still belonging
    assert grubbs_test(mean + (crit - 0.01) * std, mean, std, n).belonging
    assert not grubbs_test(mean + (crit + 0.01) * std, mean, std, n).belonging
    assert not grubbs_test(float("nan"), mean, std, n).belonging


def test_zero_std_and_small_n():
    assert grubbs_statistic(1.0, 1.0, 0.0) == 0.0
    assert grubbs_statistic(2.0, 1.0, 0.0) == math.inf
    assert grubbs_statistic(0.5, 1.0, 0.0) == -math.inf
    with pytest.raises(ValueError):
        grubbs_critical_value(2)
    with pytest.raises(ValueError):
        grubbs_critical_value(10, 1.5)
