"""cleanfit.pipeline.diagnose: a near perfect score read beside the run's audit and a baseline on the same
split; advice in config keys that never suggests what the run already does; audit warnings on the console."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cleanfit.cli.main import main
from cleanfit.pipeline.run import train_config
from cleanfit.training.history import History

_SMALL = {"model": {"hidden": [16], "dropout": 0.0},
          "train": {"epochs": 12, "batch_size": 32, "lr": 1e-2, "precision": "fp32", "warmup": 0.0},
          "tracking": {"backend": "none"}}


def _easy_table(path: Path, *, proxy: bool = False, sort: bool = False) -> Path:
    """600 rows of 6 features whose sum decides the class, with a margin: honest and linearly easy, yet
    no single feature alone predicts the class (so the audit has nothing to find)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(900, 6))
    X = X[np.abs(X.sum(axis=1)) > 1.0][:600]
    y = (X.sum(axis=1) > 0).astype(int)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    if proxy:  # a field filled in after the outcome was known: the label with a little noise
        frame["review_score"] = y + rng.normal(0, 0.05, len(y))
    frame["label"] = np.where(y == 1, "yes", "no")
    if sort:
        frame = frame.sort_values("label", kind="stable")
    frame.to_csv(path, index=False)
    return path


def _config(csv: Path, **extra: dict) -> dict:
    config = {"data": {"path": str(csv), "target": "label"}, **{k: dict(v) for k, v in _SMALL.items()}}
    for section, values in extra.items():
        config.setdefault(section, {}).update(values)
    return config


def test_a_clean_easy_table_with_a_passed_audit_is_an_info_with_the_baseline(tmp_path: Path) -> None:
    run = train_config(_config(_easy_table(tmp_path / "easy.csv")), out=tmp_path / "run", quiet=True)
    assert run.audit.passed
    (finding,) = [f for f in run.diagnosis if f.check == "too-good"]
    assert finding.severity == "info", finding.message
    assert "the audit found no leak; a simple baseline" in finding.message
    assert finding.details["baseline"] >= 0.97 and finding.details["audit_passed"] is True
    assert "cf.audit" not in finding.message


def test_a_planted_proxy_keeps_too_good_a_warning_that_names_the_audit_finding(tmp_path: Path) -> None:
    csv = _easy_table(tmp_path / "proxy.csv", proxy=True)
    run = train_config(_config(csv, audit={"fail_on": "never"}), out=tmp_path / "run", quiet=True)
    assert any(f.check == "target-leakage" for f in run.audit.findings)
    (finding,) = [f for f in run.diagnosis if f.check == "too-good"]
    assert finding.severity == "warning"
    assert "The run's audit found target-leakage" in finding.message and "review_score" in finding.message


def _too_good_history() -> History:
    return History([{"epoch": e, "train_loss": 0.5 / e, "val_loss": 0.4 / e, "val_accuracy": 0.995}
                    for e in range(1, 7)])


class _Report:
    def __init__(self, findings: list, passed: bool = True) -> None:
        self.findings, self.passed = findings, passed


def test_too_good_stays_a_warning_without_an_audit_or_far_above_the_baseline() -> None:
    history = _too_good_history()
    (alone,) = history.diagnose()  # the Trainer's own reading: no audit, today's warning
    assert alone.severity == "warning" and "Run cf.audit(...)" in alone.message
    (far,) = history.diagnose(audit=_Report([]), baseline={"val_accuracy": 0.90})
    assert far.severity == "warning" and "far above a simple baseline" in far.message
    (close,) = history.diagnose(audit=_Report([]), baseline={"val_accuracy": 0.985})
    assert close.severity == "info"
    (failed,) = history.diagnose(audit=_Report([], passed=False), baseline={"val_accuracy": 0.995})
    assert failed.severity == "warning"
    (no_baseline,) = history.diagnose(audit=_Report([]))
    assert no_baseline.severity == "warning" and "no baseline" in no_baseline.message


def _overfit_history() -> History:
    rows = [(1, 1.0, 1.0), (2, 0.6, 0.7), (3, 0.4, 0.6), (4, 0.3, 0.7), (5, 0.2, 0.8), (6, 0.1, 0.9)]
    return History([{"epoch": e, "train_loss": t, "val_loss": v} for e, t, v in rows],
                   [{"step": 1, "epoch": 1, "train_loss": 1.0}])


def test_advice_names_config_keys_and_never_what_the_run_already_does() -> None:
    from cleanfit.training.advice import Advice

    (python,) = _overfit_history().diagnose()
    assert "EarlyStopping(patience=3, restore_best=True)" in python.message
    off = Advice.for_config_train(early_stopping=0, clip_grad=1.0, warmup=0.05, lr=1e-3)
    (config,) = _overfit_history().diagnose(advice=off)
    assert "train.early_stopping = 3" in config.message and "EarlyStopping(" not in config.message
    on = Advice.for_config_train(early_stopping=5, clip_grad=1.0, warmup=0.05, lr=1e-3)
    (stopped,) = _overfit_history().diagnose(advice=on)
    assert "already kept the weights of the best epoch" in stopped.message
    assert "train.early_stopping =" not in stopped.message and "EarlyStopping(" not in stopped.message
    diverged = History([{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": float("nan")}])
    (finding,) = diverged.diagnose(advice=on)
    assert "train.lr = 0.0001" in finding.message
    assert "clip" not in finding.message and "warmup" not in finding.message  # it clips and warms up already
    (plain,) = diverged.diagnose()
    assert "clip_grad=1.0" in plain.message


def test_cleanfit_train_prints_the_audit_warnings_before_training(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    csv = _easy_table(tmp_path / "sorted.csv", sort=True)
    config = tmp_path / "sorted.toml"
    config.write_text(f'[data]\npath = "{csv}"\ntarget = "label"\n[model]\nhidden = [8]\n'
                      '[train]\nepochs = 2\nprecision = "fp32"\n[tracking]\nbackend = "none"\n')
    with pytest.raises(SystemExit) as info:
        main(["train", str(config), "--out", str(tmp_path / "run")])
    assert info.value.code == 0
    out = capsys.readouterr().out.splitlines()
    (line,) = [i for i, text in enumerate(out) if text.startswith("cleanfit: audit [warning] label-order: ")]
    trained = next(i for i, text in enumerate(out) if text.startswith("cleanfit: trained"))
    assert line < trained and "sorted by label" in out[line]
