"""``cleanfit train`` on a Parquet table larger than ``[audit] memory``: the audit runs out of core, and the run
trains on the very split that audit checked (the row-number split), not on ``cf.split``'s."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from _cli import run_cli


def test_train_over_the_budget_trains_on_the_audited_row_split(mlflow_tracking_uri: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 1200
    df = pd.DataFrame(rng.normal(size=(n, 3)).astype("float32"), columns=["a", "b", "c"])
    df["label"] = (df["a"] + rng.normal(size=n) > 0).astype(int)
    df.to_parquet(tmp_path / "big.parquet", row_group_size=300)
    audit_json = tmp_path / "audit.json"
    code, out, err = run_cli(["audit", str(tmp_path / "big.parquet"), "--target", "label", "--val", "0.1", "--seed", "3",
                           "--memory", "0", "--json", str(audit_json)])
    assert code == 0, out + err
    audited = json.loads(audit_json.read_text())
    assert audited["split"]["method"] == "row-stratify" and audited["sample"]["out_of_core"]

    config = tmp_path / "big.toml"
    config.write_text(f'[data]\npath = "big.parquet"\ntarget = "label"\n\n[tracking]\nuri = "{mlflow_tracking_uri}"\n')
    sets = ["train.epochs=1", "model.hidden=[8]", "split.val=0.1", "split.seed=3"]
    trained = []
    for memory in ('"0"', '"auto"'):
        train_json = tmp_path / f"train{len(trained)}.json"
        args = ["train", str(config), "--out", str(tmp_path / f"out{len(trained)}"), "--json", str(train_json)]
        code, out, err = run_cli(args + [a for s in sets + [f"audit.memory={memory}"] for a in ("--set", s)])
        assert code == 0, out + err
        trained.append(json.loads(train_json.read_text()))
    over, under = trained
    assert over["split"] == audited["split"]  # the audited split is the trained one
    assert json.loads((tmp_path / "out0" / "run.json").read_text())["split_fingerprint"] == audited["split"]["fingerprint"]
    assert under["split"]["method"] == "stratify" and under["split"]["fingerprint"] != audited["split"]["fingerprint"]
