"""The loss-curve plot, the HTML run report (rendered in headless Chromium) and log_run_artifacts."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import matplotlib.image
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from cleanfit.report.run_report import (
    LR_COLOR, TRAIN_COLOR, TURN_COLOR, VAL_COLOR, log_run_artifacts, plot_history, write_run_report,
)
from cleanfit.tracking import MLflowTracker, NullTracker
from cleanfit.training.history import History


def _history(overfit: bool) -> History:
    """Ten epochs of ten logged steps; val loss turns up after epoch 4 when ``overfit``."""
    h = History()
    for e in range(1, 11):
        for k in range(1, 11):
            s = (e - 1) * 10 + k
            h.add_step({"step": s, "epoch": e, "train_loss": 1.0 / (1 + 0.1 * s), "lr": 1e-3 * min(1.0, s / 20)})
        val = 0.625 + 0.03 * (e - 4) ** 2 if overfit and e > 4 else 0.5 + 0.5 / e
        h.add_epoch({"epoch": e, "step": 10 * e, "train_loss": 1.0 / (1 + e), "val_loss": val, "lr": 1e-3,
                     "grad_norm": 0.5, "skipped_steps": 0, "val_accuracy": 0.7 + 0.01 * e})
    return h


def _pixels_near(image: np.ndarray, hex_color: str, tol: float = 0.08) -> int:
    rgb = np.array([int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(image[..., :3] - rgb).max(axis=-1) < tol).sum())


def test_plot_shows_train_val_lr_and_marks_where_overfitting_began(tmp_path):
    overfit = _history(overfit=True)
    (finding,) = overfit.diagnose()
    assert finding.check == "overfitting" and finding.details["turned_at_epoch"] == 4
    image = matplotlib.image.imread(plot_history(overfit, tmp_path / "sub" / "curves.png"))
    for color in (TRAIN_COLOR, VAL_COLOR, LR_COLOR, TURN_COLOR):
        assert _pixels_near(image, color) > 200, color
    healthy = _history(overfit=False)
    assert healthy.diagnose() == []
    image = matplotlib.image.imread(plot_history(healthy, tmp_path / "healthy.png"))
    assert _pixels_near(image, TURN_COLOR) < 20  # no marker without overfitting
    assert _pixels_near(image, VAL_COLOR) > 200


def test_plot_without_validation_or_steps(tmp_path):
    h = History([{"epoch": e, "step": e, "train_loss": 1.0 / e, "val_loss": None, "lr": 0.1} for e in (1, 2, 3)])
    image = matplotlib.image.imread(plot_history(h, tmp_path / "p.png"))
    assert _pixels_near(image, TRAIN_COLOR) > 100 and _pixels_near(image, VAL_COLOR) < 20


def _audit_report():
    from cleanfit.auditing import AuditReport
    from cleanfit.findings import Finding

    return AuditReport(
        [Finding("duplicates", "critical", "10 rows of the test part also appear in train: drop them.", {"rows": 10}),
         Finding("label-order", "warning", "Rows are sorted by label.")],
        checks=["duplicates", "label-order"], n_rows=60, n_features=3,
    )


def test_report_is_one_self_contained_file_with_every_section(tmp_path):
    audit = _audit_report()
    assert audit.findings
    config = {"data": {"path": "data.csv", "target": "y"}, "train": {"lr": 0.00123, "epochs": 10}}
    path = write_run_report(tmp_path / "run.html", history=_history(True), config=config,
                            metrics={"test_loss": 0.4321}, audit=audit, title="my run")
    html = path.read_text()
    assert html.count("data:image/png;base64,") == 1
    assert "http://" not in html and "https://" not in html and "<script" not in html and "<link" not in html
    assert "<title>my run</title>" in html and "0.4321" in html
    assert "overfitting" in html and "Validation loss was lowest at epoch 4" in html
    assert "10 rows of the test part also appear in train" in html and "Leakage audit" in html
    assert "failed" in html and "1 critical, 1 warning" in html
    assert "0.00123" in html and "data.csv" in html
    assert html.count("<tr>") >= 10 + 1  # one row per epoch at least
    assert "val_accuracy" in html and "gap" in html


def test_healthy_report_says_so_in_plain_words(tmp_path):
    history = _history(False)
    png = plot_history(history, tmp_path / "curves.png")
    html = write_run_report(tmp_path / "r.html", history=history, plot=png).read_text()
    assert base64.b64encode(png.read_bytes()).decode() in html  # the given plot, not drawn again
    assert "No problem found in the loss curves." in html
    assert "Leakage audit" not in html and "Configuration" not in html


def test_report_renders_in_headless_chromium_with_the_plot(tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed on this machine (Debian package 'chromium'); cannot render the report")
    report = write_run_report(tmp_path / "report.html", history=_history(True), config={"lr": 1e-3})
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,1600",
         report.as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    image = matplotlib.image.imread(shot)
    assert image.shape[:2] == (1600, 1200)
    # The plot's own line colours are on screen: the image was decoded and drawn, not just linked.
    for color in (TRAIN_COLOR, VAL_COLOR, LR_COLOR, TURN_COLOR):
        assert _pixels_near(image, color) > 150, color


def test_log_run_artifacts_puts_files_and_tags_in_mlflow(mlflow_tracking_uri, tmp_path):
    model = torch.nn.Linear(3, 2)
    tracker = MLflowTracker()
    run_id = tracker.start()
    written = log_run_artifacts(tracker, tmp_path / "out", history=_history(True), audit=_audit_report(),
                                config={"lr": 0.1}, metrics={"test_loss": 0.5}, model=model)
    tracker.finish()
    client = MlflowClient(mlflow_tracking_uri)
    names = {a.path for a in client.list_artifacts(run_id)}
    assert names == {"loss_curves.png", "report.html", "history.json", "diagnosis.json", "audit.json",
                     "config.json", "model.pt"}
    tags = client.get_run(run_id).data.tags
    assert tags["diagnosis"] == "overfitting" and tags["diagnosis.overfitting"] == "warning"
    assert [r.info.run_id for r in client.search_runs(
        [client.get_run(run_id).info.experiment_id], "tags.diagnosis LIKE '%overfitting%'")] == [run_id]
    local = client.download_artifacts(run_id, "model.pt", str(tmp_path / "back"))
    state = torch.load(local, weights_only=True)
    assert torch.equal(state["weight"], model.weight.detach())
    diagnosis = json.loads(written["diagnosis"].read_text())
    assert diagnosis[0]["check"] == "overfitting" and diagnosis[0]["details"]["turned_at_epoch"] == 4


def test_log_run_artifacts_without_tracking_only_writes_files(tmp_path):
    written = log_run_artifacts(NullTracker(), tmp_path, history=_history(False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diagnosis.json", "history.json", "loss_curves.png",
                                                         "report.html"]
    assert set(written) == {"plot", "report", "history", "diagnosis"}
    assert json.loads(written["diagnosis"].read_text()) == []
