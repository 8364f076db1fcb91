"""The rarity baseline for exact copies (auditing/twins.py) as a function of counts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cleanfit.auditing.twins import rare_twins

counts = st.integers(1, 10_000)


@settings(max_examples=200, deadline=None)
@given(obs=st.integers(0, 50), early=counts, late=counts, rare_pairs=st.integers(0, 1000),
       within=st.integers(1, 10**8), coarse=st.floats(1e-6, 1.0))
def test_critical_needs_the_floor_and_implies_a_warning(obs, early, late, rare_pairs, within, coarse) -> None:
    t = rare_twins("train", "test", obs, early, late, rare_pairs, within, coarse)
    assert 0 <= t.expected <= t.expected_floor
    assert t.p_value <= t.p_floor
    if t.critical:
        assert t.significant and t.observed - t.expected_floor >= 1
    more = rare_twins("train", "test", obs + 1, early, late, rare_pairs, within, coarse)
    assert more.p_value <= t.p_value and more.p_floor <= t.p_floor


def test_no_rows_seen_is_never_a_finding_and_no_natural_pair_is_not_certainty_for_critical() -> None:
    assert not rare_twins("train", "test", 0, 500, 100, 0, 130_000, 0.2).significant
    # no pair within parts equal on the rare columns: one copy is a warning, but critical needs the
    # count to beat one natural pair assumed
    one = rare_twins("train", "test", 1, 500, 100, 0, 130_000, 0.2)
    assert one.significant and not one.critical
