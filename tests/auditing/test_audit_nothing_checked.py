"""cf.audit never passes with nothing checked: no features, no held-out rows, an infinite target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import cleanfit as cf


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"a": rng.normal(size=80), "y": rng.integers(0, 2, 80)})


class _OnlyTrain:
    train, val, test = np.arange(80), np.arange(0), np.arange(0)


def test_no_feature_columns_is_a_data_error() -> None:
    with pytest.raises(cf.DataError, match="no feature columns"):
        cf.audit(_frame()[["y"]], "y", cf.split(80, seed=0))


def test_a_split_without_held_out_rows_is_a_data_error() -> None:
    with pytest.raises(cf.DataError, match="no held-out rows"):
        cf.audit(_frame(), "y", _OnlyTrain())
    assert cf.audit(_frame(), "y", cf.split(80, test=0.0, val=0.2, seed=0)).passed  # val alone is held out


def test_an_infinite_target_names_its_rows() -> None:
    frame = _frame().assign(y=np.random.default_rng(2).normal(size=80))
    frame.loc[7, "y"] = np.inf
    with pytest.raises(cf.DataError, match=r"1 infinite value\(s\) \(rows 7\)"):
        cf.audit(frame, "y", cf.split(80, seed=0))


def test_no_splits_still_runs_the_checks_that_need_none() -> None:
    report = cf.audit(_frame(), "y")
    assert "duplicates" in report.skipped and "target-leakage" in report.checks
