"""Odd data gives a finding, clean handling or a one-line cleanfit error naming the column: never a crash
from inside scikit-learn, pandas or torch's allocator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cleanfit as cf
from cleanfit.pipeline.config import load_config
from cleanfit.pipeline.model import build_model
from cleanfit.pipeline.run import train_config


def _frame(n: int = 150) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    return X, (X["a"] > 0).astype(int)


def test_infinite_and_float32_overflowing_features_are_audited() -> None:
    X, y = _frame()
    X.loc[::7, "b"] = 1e39  # finite in float64, infinite in the trees' float32
    X.loc[3, "a"] = np.inf
    X["c"] = -1e300 * (y * 2 - 1)  # alone, it gives the target away
    report = cf.audit(X, y, cf.split(len(X)))
    leaks = [f for f in report.findings if f.check == "target-leakage"]
    assert leaks and "'c'" in leaks[0].message


def test_undecodable_bytes_are_text_to_the_audit() -> None:
    X, y = _frame()
    X["raw"] = [b"\xff\xfe%d" % i if i % 2 else "x" for i in range(len(X))]
    report = cf.audit(X, y, cf.split(len(X)))
    assert isinstance(report.passed, bool)


def test_a_list_column_in_parquet_is_a_data_error_naming_it(tmp_path: Path) -> None:
    X, y = _frame()
    X["tags"] = [[i, i + 1] for i in range(len(X))]
    X.assign(y=y).to_parquet(tmp_path / "lists.parquet")
    config = {"data": {"path": str(tmp_path / "lists.parquet"), "target": "y"}, "tracking": {"backend": "none"}}
    with pytest.raises(cf.DataError, match=r"column 'tags' of lists.parquet holds lists .*data.drop"):
        train_config(config, out=tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists()


def test_a_model_too_big_for_memory_is_a_config_error_with_its_size_before_allocation(tmp_path: Path) -> None:
    config = load_config({"data": {"path": str(tmp_path / "any.csv"), "target": "y"},
                          "model": {"hidden": [10**6, 10**6, 10**6]}})  # 8 TB of weights: more than any machine
    with pytest.raises(cf.ConfigError, match=r"model.hidden = \[1000000, 1000000, 1000000\]: .*8,000,140,000,008 bytes"):
        build_model(config, 30, 2)
