"""The compare verdict is calibrated at every seed count and keeps the paired t-test's power.

Monte Carlo with cheap callables through the public cf.compare: each repetition compares on its own,
disjoint seeds. With 1,000 repetitions the binomial sd of a 5% rate is 0.0069, so a cell may read up
to 0.071 (3 sd) by chance; pooled over the five cells of one noise (5,000 comparisons, sd 0.0031) the
rate must stay under 0.06 (3 sd). Power at 0.8 has a binomial sd of 0.0126. The old bootstrap verdict
measured 0.54 at 2 seeds and 0.22-0.28 at 3 (issue #14).
Each candidate looks its noise up in a table drawn once, so the 11,000 comparisons cost what cf.compare
itself costs (about 0.1 ms plus 20 us a seed; once 28 s under load, mostly seeds_needed's scipy.stats calls).
"""

from __future__ import annotations

import functools
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import cleanfit as cf
from cleanfit.comparison import stats as _stats

REPEATS = 1000
_SEEDS = REPEATS * 20  # the largest seed any cell uses, plus one


@functools.cache
def _noise_table(stream: int, noise: str) -> np.ndarray:
    """Noise of one stream at seeds 0 .. _SEEDS - 1, drawn once (a lookup per call keeps 8,000 comparisons cheap)."""
    rng = np.random.default_rng([stream, 14])
    return rng.normal(size=_SEEDS) if noise == "normal" else rng.exponential(size=_SEEDS) - 1.0


def candidate(seed: int, *, stream: int, noise: str = "normal", gain: float = 0.0) -> float:
    """Shared seed noise (sd 0.05) plus this candidate's own noise (sd 0.01, normal or exponential)."""
    return float(0.8 + gain + 0.05 * _noise_table(0, "normal")[seed] + 0.01 * _noise_table(stream, noise)[seed])


def _rate(a, b, n: int, want: str = "winner") -> float:
    verdicts = [cf.compare(a, b, seeds=range(r * n, (r + 1) * n)).verdict for r in range(REPEATS)]
    if want == "winner":
        return float(np.mean([v != "tie" for v in verdicts]))
    return float(np.mean([v == want for v in verdicts]))


@pytest.mark.parametrize("noise", ["normal", "skewed"])
def test_two_equal_candidates_rarely_get_a_winner_at_any_seed_count(noise: str) -> None:
    a = partial(candidate, stream=1, noise=noise)
    b = partial(candidate, stream=2, noise=noise)
    rates = {n: _rate(a, b, n) for n in (2, 3, 5, 10, 20)}
    assert all(rate <= 0.071 for rate in rates.values()), rates
    assert np.mean(list(rates.values())) <= 0.06, rates


def test_a_difference_of_one_sd_is_found_at_10_seeds_as_often_as_a_paired_t_test_finds_it() -> None:
    # own noise sd 0.01 each, so the paired difference has sd 0.01 * sqrt(2); B is better by exactly that
    gain = 0.01 * np.sqrt(2.0)
    a = partial(candidate, stream=1)
    b = partial(candidate, stream=2, gain=gain)
    power = _rate(a, b, 10, want="b")
    theory = _stats.paired_t_power(10, 1.0)
    assert theory >= 0.80
    assert power >= 0.80 - 3 * 0.0126, power  # binomial sd at 0.8 over 1,000 repetitions is 0.0126
    assert abs(power - theory) <= 3 * 0.0126, (power, theory)


def test_few_seeds_say_tie_and_how_many_seeds_would_resolve_it() -> None:
    a = partial(candidate, stream=1)
    b = partial(candidate, stream=2, gain=0.01)
    result = cf.compare(a, b, seeds=2)
    assert result.verdict == "tie"
    assert result.seeds_needed is not None and result.seeds_needed > 2
    assert f"about {result.seeds_needed} seeds would resolve" in result.summary()
    assert "with 2 seeds the test finds a difference" in result.notes[0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_subnormal=False), min_size=2, max_size=15).filter(
    lambda d: np.ptp(d) > 1e-6))
def test_the_verdict_is_the_paired_t_test_and_the_printed_interval_is_its_interval(d: list[float]) -> None:
    result = cf.Comparison(range(len(d)), np.zeros(len(d)), d)
    test = stats.ttest_1samp(d, 0.0)
    low, high = test.confidence_interval(0.95)
    assert result.ci == pytest.approx((low, high), rel=1e-9, abs=1e-12)
    assert result.p_value == pytest.approx(test.pvalue, rel=1e-7, abs=1e-12)
    if abs(test.pvalue - 0.05) > 1e-9:
        assert (result.verdict != "tie") == (test.pvalue < 0.05)
    assert f"[{result.ci[0]:+.4f}, {result.ci[1]:+.4f}]" in str(result)


def test_a_tiny_validation_set_gets_a_note_about_its_steps() -> None:
    tiny = cf.Comparison(range(10), [0.80] * 5 + [0.83] * 5, [0.83] * 5 + [0.86] * 5,
                         metric="val_accuracy", eval_rows=35)
    assert any("moves in steps of 1/35 = 0.029" in note for note in tiny.notes)
    roomy = cf.Comparison(range(10), [0.80] * 5 + [0.83] * 5, [0.83] * 5 + [0.86] * 5,
                          metric="val_accuracy", eval_rows=3500)
    assert not any("steps of" in note for note in roomy.notes)
    assert not any("steps of" in note for note in cf.Comparison(range(10), [0.8] * 10, [0.81] * 10,
                                                                metric="val_rmse", eval_rows=35).notes)


def test_a_fixed_split_is_named_and_vary_split_is_offered() -> None:
    fixed = cf.Comparison(range(10), [0.8] * 10, [0.81] * 10, split_seed=0)
    assert any("same split (split.seed = 0)" in n and "--vary-split" in n for n in fixed.notes)
    varied = cf.Comparison(range(10), [0.8] * 10, [0.81] * 10, vary_split=True, split_seed=0)
    assert not any("--vary-split" in n for n in varied.notes)
