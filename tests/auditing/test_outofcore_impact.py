"""``audit(path, impact=True)`` and ``cleanfit audit --impact`` out of core: measured on the row sample, said so.

Real Parquet files, a real DuckDB database, real HistGradientBoosting fits, the real CLI (in-process).
"""

from __future__ import annotations

import json
from pathlib import Path

import cleanfit as cf
from _cli import run_cli
from cleanfit.auditing.report import impact_text
from cleanfit.data.rowsplit import RowSplit
from test_outofcore_audit import _leaky_frame, _write_files

SPLIT = RowSplit("random", test=0.2, seed=3)  # a random split leaves the planted copies across train and test


def _impacts(report: cf.AuditReport) -> dict[str, dict]:
    return {f.check: f.details["impact"] for f in report.findings if f.severity != "info"}


def test_impact_out_of_core_equals_in_memory_when_the_sample_is_every_row(tmp_path: Path) -> None:
    folder = _write_files(_leaky_frame(3000), tmp_path / "t", files=2)
    inside = cf.audit(str(folder), "label", SPLIT, memory="64GB", impact=True, checks=["duplicates", "target-leakage"])
    outside = cf.audit(str(folder), "label", SPLIT, memory=0, sample=10**9, impact=True, checks=["duplicates", "target-leakage"])
    a, b = _impacts(inside), _impacts(outside)
    assert set(a) == set(b) == {"duplicates", "target-leakage"}
    for check in a:  # the same rows, the same model: the same numbers; out of core says where it measured
        assert {k: v for k, v in b[check].items() if k not in ("compared", "sample_rows")} == \
               {k: v for k, v in a[check].items() if k != "compared"}
        assert b[check]["compared"] == f"{a[check]['compared']}, on a uniform sample of 3,000 of the table's 3,000 rows"
    assert b["target-leakage"]["with"] - b["target-leakage"]["without"] > 0.1  # the proxy column is worth a lot


def test_impact_on_a_smaller_sample_names_it(tmp_path: Path) -> None:
    folder = _write_files(_leaky_frame(6000), tmp_path / "t")
    report = cf.audit(str(folder), "label", SPLIT, memory=0, sample=2000, impact=True)
    rows = report.sample["rows"]
    assert 1500 < rows < 2500 and report.n_rows == 6000
    leak = _impacts(report)["target-leakage"]
    assert leak["sample_rows"] == rows and leak["test_rows"] + leak["train_rows"] <= rows
    assert f"on a uniform sample of {rows:,} of the table's 6,000 rows" in impact_text(leak)  # the finding's text
    dup = _impacts(report)["duplicates"]  # copies decided over every row: held-out sampled rows with a train copy
    assert "test rows with a copy in train" in dup["compared"] and dup["sample_rows"] == rows


def test_cli_impact_out_of_core(tmp_path: Path) -> None:
    folder = _write_files(_leaky_frame(3000), tmp_path / "t", files=2)
    out_json = tmp_path / "audit.json"
    code, out, err = run_cli(["audit", str(folder), "--target", "label", "--by", "random", "--memory", "0", "--impact",
                              "--checks", "target-leakage", "--json", str(out_json)])
    assert code == 1 and "Traceback" not in err, out + err
    (leak,) = json.loads(out_json.read_text())["findings"]
    assert leak["details"]["impact"]["sample_rows"] == 3000 and "uniform sample" in leak["details"]["impact"]["compared"]
    assert "Impact: accuracy" in out
