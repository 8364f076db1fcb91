"""The statistics behind :func:`cleanfit.comparison.compare`: a paired t interval, its verdict, the seeds needed.

Everything works on the paired differences ``d[i] = score_b(seed_i) - score_a(seed_i)``.

The verdict is the two-sided paired t-test at 5%, read as its 95% interval
``mean(d) ± t(0.975, n - 1) · sd(d) / sqrt(n)``: "tie" exactly when the interval contains 0, so the
interval printed is the one the verdict uses. Why a t interval and not a bootstrap or a sign-flip
permutation test (measured in docs/BENCHMARKS.md, "Compare: calibration and power"):

- Two equally good candidates, i.e. exchangeable ones (each seed's two scores could be swapped
  without changing their joint distribution), give differences symmetric about 0. The t-test is exact
  for normal differences and conservative for every symmetric distribution at the 5% level (Efron,
  "Student's t-test under symmetry conditions", JASA 1969), so the false-winner rate stays at or under
  5% at 2 seeds as at 50, for skewed seed noise too.
- A bootstrap interval never reaches past the smallest and largest difference: over 2 to 5 seeds it
  names a winner 15-50% of the time for two equal candidates.
- The exact sign-flip permutation test can never reject with fewer than 6 seeds (its smallest p is
  ``2 / 2**n``), and at 10 seeds it finds a true one-SD difference a little less often than the t-test
  (79% against 80%).

>>> d = [0.02, 0.03, 0.01, 0.04, 0.02]
>>> low, high = t_interval(d)
>>> round(low, 4), round(high, 4)
(0.0098, 0.0382)
>>> verdict_of(low, high, higher_is_better=True)
'b'
>>> seeds_needed(mean=0.5, sd=1.0)
34
>>> seeds_needed(mean=0.0, sd=1.0) is None
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import special
from scipy import stats as scipy_stats

CONFIDENCE = 0.95
POWER = 0.8
ALPHA = 0.05
INTERVAL_METHOD = "paired t interval"

Verdict = Literal["a", "b", "tie"]


def t_interval(differences: Sequence[float] | np.ndarray, *, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The ``confidence`` t interval of the mean of ``differences`` (the paired t-test's interval).

    No spread at all (every difference equal) gives the single point ``(d, d)``.

    >>> t_interval([1.0, 1.0, 1.0])
    (1.0, 1.0)
    """
    d = _differences(differences)
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return mean, mean
    half = _t_quantile(d.size - 1, 0.5 + confidence / 2.0) * sd / math.sqrt(d.size)
    return mean - half, mean + half


def p_value(differences: Sequence[float] | np.ndarray) -> float:
    """Two-sided paired t-test p value of ``mean(differences) == 0`` (1.0 for all-zero differences).

    >>> round(p_value([0.02, 0.03, 0.01, 0.04, 0.02]), 4)
    0.0093
    """
    d = _differences(differences)
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0.0:
        return 1.0 if mean == 0.0 else 0.0
    t = mean / (sd / math.sqrt(d.size))
    return float(2.0 * special.stdtr(d.size - 1, -abs(t)))  # the t distribution's sf, as scipy.stats.t.sf


def verdict_of(low: float, high: float, *, higher_is_better: bool) -> Verdict:
    """``"tie"`` when ``[low, high]`` (an interval of ``b - a``) contains 0, else the side it favours."""
    if low <= 0.0 <= high:
        return "tie"
    b_higher = low > 0.0
    return "b" if b_higher == higher_is_better else "a"


def paired_t_power(n: int, effect: float, *, alpha: float = ALPHA) -> float:
    """Power of a two-sided paired t-test with ``n`` pairs at standardised effect ``mean / sd``.

    The noncentral t's two tails beyond the critical t, from scipy.special's ``nctdtr`` ufunc (what
    ``scipy.stats.nct.cdf`` computes, without the distribution object's ~40 us a call). ``nctdtr`` gives
    NaN far in a tail (large noncentrality, e.g. 2 seeds at 4x the spread): the upper tail then comes from
    ``scipy.stats.nct.sf``, and the lower one is 0 (it is below ``P(Z < -nc)``, under 1e-14 there).

    >>> round(paired_t_power(10, 1.0), 4)
    0.8031
    >>> round(paired_t_power(2, 12.0), 3)  # 2 seeds: even 12 spreads are found only 82% of the time
    0.817
    """
    df = n - 1
    t_crit = _t_quantile(df, 1.0 - alpha / 2.0)
    nc = abs(effect) * math.sqrt(n)
    upper = 1.0 - float(special.nctdtr(df, nc, t_crit))
    if not math.isfinite(upper):
        upper = float(scipy_stats.nct.sf(t_crit, df, nc))
    lower = float(special.nctdtr(df, nc, -t_crit))
    if not math.isfinite(lower):
        lower = 0.0
    return min(1.0, upper + lower)


@lru_cache(maxsize=256)
def smallest_effect(n: int, *, power: float = POWER, alpha: float = ALPHA) -> float:
    """The smallest ``mean / sd`` of the differences that ``n`` seeds find with ``power`` (cached per ``n``).

    >>> [round(smallest_effect(n), 2) for n in (2, 3, 5, 10, 20)]
    [11.55, 3.26, 1.68, 1.0, 0.66]
    """
    low, high = 0.0, 1.0
    while paired_t_power(n, high, alpha=alpha) < power:
        low, high = high, 2.0 * high
    for _ in range(60):
        mid = (low + high) / 2.0
        low, high = (mid, high) if paired_t_power(n, mid, alpha=alpha) < power else (low, mid)
    return high


def seeds_needed(
    mean: float, sd: float, *, power: float = POWER, alpha: float = ALPHA
) -> int | None:
    """Seeds a paired t-test needs to detect a mean difference ``mean`` with spread ``sd``.

    The smallest ``n >= 2`` whose two-sided paired t-test at level ``alpha`` has at least ``power``;
    None when ``mean`` is 0 (no number of seeds resolves a difference that is not there).
    A difference with no spread at all (``sd == 0``) needs the minimum, 2.
    """
    if not math.isfinite(mean) or mean == 0.0:
        return None
    if sd == 0.0:
        return 2
    effect = abs(mean) / sd
    z = float(special.ndtri(1.0 - alpha / 2.0) + special.ndtri(power))  # normal quantiles, the first guess
    guess = (z / effect) ** 2
    if guess > 1e6:  # t and normal agree to far below one seed here
        return math.ceil(guess)
    n = max(2, math.ceil(guess))
    while n > 2 and paired_t_power(n - 1, effect, alpha=alpha) >= power:
        n -= 1
    while paired_t_power(n, effect, alpha=alpha) < power:
        n += 1
    return n


@lru_cache(maxsize=1024)
def _t_quantile(df: int, q: float) -> float:
    """Student's t quantile (``scipy.stats.t.ppf(q, df)``), computed once per degrees of freedom."""
    return float(special.stdtrit(df, q))


def _differences(differences: Sequence[float] | np.ndarray) -> np.ndarray:
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 1 or d.size < 2:
        raise ValueError(f"need at least 2 differences, got shape {d.shape}")
    return d


__all__ = [
    "ALPHA",
    "CONFIDENCE",
    "INTERVAL_METHOD",
    "POWER",
    "Verdict",
    "p_value",
    "paired_t_power",
    "seeds_needed",
    "smallest_effect",
    "t_interval",
    "verdict_of",
]
