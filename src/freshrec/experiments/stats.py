"""The statistics of experiment results: intervals for rates and means, and tests of a variant's lift.

* A rate (CTR, conversion) gets a 95% **Wilson score** interval, which stays inside [0, 1] and behaves with
  few or no successes, where the normal (Wald) interval does not.
* A mean (revenue per exposure) gets a normal-approximation interval from its sample variance.
* A variant is compared with the baseline by the **two-sided two-proportion z-test with the pooled
  proportion** (rates) or a **two-sided Welch z-test** (means); the relative lift ``b/a - 1`` gets a 95%
  interval by the delta method on ``log(b/a)`` (Katz's interval for a risk ratio).

>>> round(wilson(10, 100)[0], 4), round(wilson(10, 100)[1], 4)
(0.0552, 0.1744)
>>> round(two_proportion_p(10, 100, 20, 100), 4)
0.0477
"""

from __future__ import annotations

import math

from scipy.stats import norm

Z95 = float(norm.ppf(0.975))


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion; (0, 0) with no trials."""
    if trials <= 0:
        return 0.0, 0.0
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_p(x_a: int, n_a: int, x_b: int, n_b: int) -> float | None:
    """Two-sided p-value of H0 ``p_a == p_b`` (pooled z-test); None when it is undefined."""
    if n_a <= 0 or n_b <= 0:
        return None
    pooled = (x_a + x_b) / (n_a + n_b)
    variance = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if variance <= 0:
        return None if x_a / n_a == x_b / n_b else 0.0
    z = (x_b / n_b - x_a / n_a) / math.sqrt(variance)
    return float(2 * norm.sf(abs(z)))


def mean_interval(total: float, total_sq: float, n: int, z: float = Z95) -> tuple[float, float, float]:
    """Mean, and its normal-approximation interval, from the sum and the sum of squares of ``n`` values."""
    if n <= 0:
        return 0.0, 0.0, 0.0
    mean = total / n
    half = z * math.sqrt(sample_variance(total, total_sq, n) / n)
    return mean, mean - half, mean + half


def sample_variance(total: float, total_sq: float, n: int) -> float:
    if n < 2:
        return 0.0
    return max(0.0, (total_sq - total * total / n) / (n - 1))


def welch_p(mean_a: float, var_a: float, n_a: int, mean_b: float, var_b: float, n_b: int) -> float | None:
    """Two-sided p-value of H0 ``mean_a == mean_b`` (large-sample Welch z-test); None when undefined."""
    if n_a <= 0 or n_b <= 0:
        return None
    se2 = var_a / n_a + var_b / n_b
    if se2 <= 0:
        return None if mean_a == mean_b else 0.0
    return float(2 * norm.sf(abs(mean_b - mean_a) / math.sqrt(se2)))


def ratio_lift(
    a: float, se_a: float, b: float, se_b: float, z: float = Z95
) -> tuple[float | None, float | None, float | None]:
    """Relative lift ``b/a - 1`` and its interval from the standard errors of ``a`` and ``b``."""
    if a <= 0:
        return None, None, None
    lift = b / a - 1
    if b <= 0:
        return lift, None, None
    se_log = math.sqrt((se_a / a) ** 2 + (se_b / b) ** 2)
    return lift, math.exp(math.log(b / a) - z * se_log) - 1, math.exp(math.log(b / a) + z * se_log) - 1


def proportion_se(successes: int, trials: int) -> float:
    if trials <= 0:
        return 0.0
    p = successes / trials
    return math.sqrt(p * (1 - p) / trials)


def sample_size_per_variant(p_a: float, p_b: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Exposures per variant for a two-sided two-proportion z-test to detect ``p_a`` vs ``p_b``.

    The classic formula ``(z_{1-α/2} √(2 p̄ q̄) + z_{power} √(p_a q_a + p_b q_b))² / (p_a - p_b)²``; None
    when the rates are equal (no difference to detect).

    >>> sample_size_per_variant(0.10, 0.12)
    3841
    """
    if p_a == p_b or not (0 <= p_a <= 1 and 0 <= p_b <= 1):
        return None
    mean = (p_a + p_b) / 2
    z_alpha, z_power = float(norm.ppf(1 - alpha / 2)), float(norm.ppf(power))
    root = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_power * math.sqrt(p_a * (1 - p_a) + p_b * (1 - p_b))
    return math.ceil(root * root / (p_a - p_b) ** 2)
