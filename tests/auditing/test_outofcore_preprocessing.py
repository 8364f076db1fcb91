"""Check ``preprocessing`` out of core: real scikit-learn transformers, real Parquet files, a real DuckDB database.

The same table is audited in memory (the in-memory check refits clones) and forced out of core (``memory=0``:
statistics from DuckDB); the findings must agree in id, severity and message.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, OneHotEncoder, RobustScaler, StandardScaler

import cleanfit as cf
from cleanfit.auditing.outofcore import splits_of
from cleanfit.data.rowsplit import RowSplit, split_rows

SPEC = RowSplit("stratify", test=0.2, val=0.1, seed=3)


def _table(tmp_path: Path, dtype: str = "float64", n: int = 2400) -> tuple[Path, pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    df = pd.DataFrame((rng.normal(size=(n, 3)) * [1, 5, 2] + [0, 10, -3]).astype(dtype), columns=["a", "b", "c"])
    df.loc[rng.choice(n, 80, replace=False), "b"] = np.nan  # imputers and scalers skip missing values
    df["label"] = (df["a"] > 0).astype(int)
    path = tmp_path / "t.parquet"
    df.to_parquet(path, row_group_size=500)
    part = split_rows(SPEC, n, y=df["label"].to_numpy())
    return path, df[["a", "b", "c"]], part


def _both(path: Path, transformers: list) -> tuple[cf.AuditReport, cf.AuditReport]:
    inside = cf.audit(str(path), "label", SPEC, transformers=transformers, memory="64GB", checks=["preprocessing"])
    outside = cf.audit(str(path), "label", SPEC, transformers=transformers, memory=0, checks=["preprocessing"])
    assert inside.sample is None and outside.sample["out_of_core"]  # one in memory, one out of core
    assert outside.checks == inside.checks == ["preprocessing"]
    return inside, outside


def _seen(report: cf.AuditReport) -> list[tuple[str, str, str]]:
    return [(f.check, f.severity, f.message) for f in report.findings]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_transformers_fit_on_all_rows_are_found_as_in_memory(tmp_path: Path, dtype: str) -> None:
    path, X, part = _table(tmp_path, dtype)
    kinds = [StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler, lambda: RobustScaler(quantile_range=(10, 90)),
             SimpleImputer, lambda: SimpleImputer(strategy="median"), lambda: SimpleImputer(strategy="most_frequent")]
    on_train = [make().fit(X[part == 0]) for make in kinds]
    on_all = [make().fit(X) for make in kinds]
    on_train_val = [StandardScaler().fit(X[part <= 1])]
    inside, outside = _both(path, on_train + on_all + on_train_val)
    assert _seen(outside) == _seen(inside)
    flagged = {f.details["transformer"]: f for f in outside.findings}
    assert len(flagged) == len(kinds) + 1  # every transformer fit on all rows or train+val, none fit on train
    for i in range(len(kinds)):
        f = flagged[f"transformers[{len(kinds) + i}] ({type(on_all[i]).__name__})"]
        assert f.severity == "warning" and "was fit on all rows, not on the train rows only" in f.message
        assert f.details["matches"] == "all rows" and f.details["distance"]["all rows"] < 1e-6
    assert flagged[f"transformers[{2 * len(kinds)}] (StandardScaler)"].details["matches"] == "train+val rows"


def test_fit_records_and_what_cannot_be_verified(tmp_path: Path) -> None:
    path, X, part = _table(tmp_path)
    splits = splits_of(part, SPEC)
    proven = StandardScaler()
    splits.fit_transform(proven, X)  # the record names this split's train rows
    other = StandardScaler()
    splits_of(split_rows(RowSplit("stratify", test=0.3, seed=9), len(X), y=(X["a"] > 0).astype(int).to_numpy()),
              SPEC).fit_transform(other, X)
    unfitted, encoder = StandardScaler(), OneHotEncoder().fit(X[["a"]].round())
    inside, outside = _both(path, [proven, other, unfitted])
    assert _seen(outside) == _seen(inside)
    assert [f.severity for f in outside.findings] == ["warning", "info"]  # the other split's record; not fitted
    (f,) = cf.audit(str(path), "label", SPEC, transformers=[encoder], memory=0, checks=["preprocessing"]).findings
    assert f.severity == "info" and "cannot be verified out of core" in f.message and "OneHotEncoder" in f.message


def test_no_transformers_skips_the_check_out_of_core(tmp_path: Path) -> None:
    path, _, _ = _table(tmp_path)
    report = cf.audit(str(path), "label", SPEC, memory=0, checks=["preprocessing", "duplicates"])
    assert report.skipped == {"preprocessing": "no transformers given"} and report.checks == ["duplicates"]
