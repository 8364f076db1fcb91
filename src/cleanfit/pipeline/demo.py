"""``cleanfit demo``: the whole discipline on a real dataset, offline, in well under a minute on a CPU.

The data is scikit-learn's bundled breast cancer table (569 tumours, 30 measurements, diagnosis
malignant/benign). The demo

1. writes it to ``<out>/data/breast_cancer.csv`` and a config to ``<out>/demo.toml``;
2. splits it (stratified train/val/test) before anything looks at it, and audits the split: clean;
3. plants a leak (a column that encodes the diagnosis) and shows the audit catching it: the gate
   would stop ``cleanfit train`` on that file;
4. trains the clean data with bf16 mixed precision, gradient accumulation, warmup + cosine,
   checkpoints, MLflow tracking (a SQLite store under ``<out>``) and writes the HTML report;
5. ends with where to look.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from cleanfit._util.files import write_json
from cleanfit.errors import CleanfitError
from cleanfit.pipeline.config import load_config
from cleanfit.pipeline.run import AuditGateError, prepare, split_method, train_prepared
from cleanfit.tracking.store import mlflow_client

__all__ = ["DEMO_CONFIG", "run_demo", "write_breast_cancer"]

MARKER = ".cleanfit-demo"

DEMO_CONFIG = """\
# The cleanfit demo: breast cancer diagnosis from 30 tumour measurements.
[data]
path = "data/breast_cancer.csv"
target = "diagnosis"

[split]          # stratified: every part keeps the malignant/benign mix
test = 0.2
val = 0.15
seed = 0

[model]
hidden = [32, 16]
dropout = 0.1

[train]
epochs = 10
batch_size = 32
accumulate = 2   # one optimizer step per 2 batches: an effective batch of 64
lr = 5e-3
schedule = "warmup_cosine"
warmup = 0.1
precision = "bf16"
seed = 0

[checkpoint]
keep_last = 2

[tracking]
experiment = "cleanfit-demo"
"""


def write_breast_cancer(path: str | Path, *, leak: bool = False) -> Path:
    """Write scikit-learn's breast cancer data as a CSV with a ``diagnosis`` column.

    ``leak=True`` adds ``lab_flag``: the diagnosis as a 0/1 code, the kind of column a careless
    export carries (a field filled in after the diagnosis was known).
    """
    from sklearn.datasets import load_breast_cancer  # scikit-learn is heavy; only the demo's data needs this

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.drop(columns="target")
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    diagnosis = np.where(bunch.target.to_numpy() == 0, "malignant", "benign")
    if leak:
        frame["lab_flag"] = (diagnosis == "malignant").astype(int)
    frame["diagnosis"] = diagnosis
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def run_demo(out: str | Path = "cleanfit-out", *, echo: Any = print) -> Any:
    """Run the demo into ``out``; returns the :class:`~cleanfit.pipeline.run.TabularRun` of the clean run."""
    out = _claim_demo_dir(Path(out))
    data_dir = out / "data"
    clean_csv = write_breast_cancer(data_dir / "breast_cancer.csv")
    leaky_csv = write_breast_cancer(data_dir / "breast_cancer_leaky.csv", leak=True)
    config_path = out / "demo.toml"
    store = f"sqlite:///{(out / 'mlflow.db').resolve()}"
    # the store is named in the file, so that the "try a change" run below lands in the same MLflow UI
    config_path.write_text(DEMO_CONFIG + f"uri = {json.dumps(store)}   # the demo's own store\n")
    config = load_config(config_path)

    echo(f"cleanfit demo: {clean_csv.name}, 569 tumours x 30 measurements -> diagnosis")
    echo("\n1. Split before anything looks at the data")
    clean = prepare(config)
    s = clean.splits
    echo(
        f"   {split_method(config, clean.task)} split: train {len(s.train)}, val {len(s.val)}, test {len(s.test)} "
        f"rows (fingerprint {s.fingerprint[:12]}); preprocessing is fit on the {len(s.train)} train rows only"
    )
    echo("\n2. Leakage audit of the clean data")
    echo(_indent(str(clean.audit)))
    clean.audit.to_html(out / "audit_clean.html")

    echo("\n3. The same data with a planted leak (lab_flag: the diagnosis as a 0/1 code)")
    leaky = load_config(config_path, [f"data.path={json.dumps(str(leaky_csv.resolve()))}"])
    try:
        prepare(leaky)
        raise CleanfitError("the demo's planted leak was not caught by the audit; please report this")
    except AuditGateError as gate:
        echo(_indent(str(gate.report)))
        gate.report.to_html(out / "audit_leaky.html")
        echo("   -> `cleanfit train` stops here with exit code 1; nothing is trained on leaky data")

    echo("\n4. Training the clean data: bf16 autocast, accumulate=2, warmup+cosine, checkpoints, MLflow")
    _experiment_beside_store(store, config.tracking.experiment or "cleanfit-demo", out / "mlruns")
    run = train_prepared(clean, out=out / "run", quiet=True)
    echo("   " + "  ".join(f"{k} {v:.3f}" for k, v in run.metrics.items()))
    for finding in run.diagnosis:
        echo(f"   [{finding.severity}] {finding.check}: {finding.message}")
    write_json(out / MARKER, {"run": str(run.out)})

    echo("\n5. Where to look")
    echo(f"   report:          {run.report_path}")
    echo(f"   audits:          {out / 'audit_clean.html'}  {out / 'audit_leaky.html'}")
    echo(f"   checkpoints:     {run.checkpoint_dir}")
    echo(f"   metrics:         {run.metrics_path}")
    echo(f"   MLflow UI:       mlflow ui --backend-store-uri {store}")
    echo(f"   the config:      {config_path}")
    echo(f"   try a change:    cleanfit train {config_path} --set train.lr=1e-2 --out {out / 'run-lr'}")
    echo(f"   reproducibility: cleanfit repro {config_path}")
    return run


def _claim_demo_dir(out: Path) -> Path:
    """The demo owns ``out``: a new or empty folder, or one a previous demo wrote (its run is replaced)."""
    if out.exists() and not out.is_dir():
        raise CleanfitError(f"--out {out} is a file; pass a folder for the demo")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise CleanfitError(
                f"--out {out} already holds files that the demo did not write; pass an empty or new folder"
            )
        for name in ("run", "data"):
            shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / MARKER, {})
    return out.resolve()


def _experiment_beside_store(uri: str, name: str, artifacts: Path) -> None:
    """Create the demo's MLflow experiment with its artifacts under ``out`` (not the working directory)."""
    client = mlflow_client(uri)
    if client.get_experiment_by_name(name) is None:
        client.create_experiment(name, artifact_location=artifacts.resolve().as_uri())


def _indent(text: str) -> str:
    return "\n".join("   " + line for line in text.splitlines())
