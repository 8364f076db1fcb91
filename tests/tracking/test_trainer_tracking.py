"""The Trainer with a real MLflow store (SQLite): params, per-step and per-epoch metrics, diagnosis
tags and report artifacts, FAILED on an interruption, and a resume that continues the same run with
no duplicated metric points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import cleanfit as cf


class Interrupted(Exception):
    pass


def _trainer(directory: Path, tracker) -> cf.Trainer:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    return cf.Trainer(model, torch.optim.AdamW(model.parameters(), lr=1e-2), loss=F.cross_entropy, device="cpu",
                      metrics=["accuracy"], schedule=cf.warmup_cosine(), clip_grad=1.0, checkpoint_dir=directory,
                      checkpoint_every=5, tracker=tracker, progress=False)


def _fit(trainer, resume=False):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3)).astype("float32")
    y = (X[:, 0] > 0).astype("int64")
    return trainer.fit(cf.Batches((X, y), 8), cf.Batches((X, y), 60, shuffle=False), epochs=3, resume=resume)


def test_a_run_interrupted_and_resumed_is_one_complete_mlflow_run(mlflow_tracking_uri, tmp_path):
    from mlflow.tracking import MlflowClient

    first = cf.MLflowTracker(experiment="trainer-test")
    interrupted = _trainer(tmp_path / "ckpt", first)

    def stop(trainer, state):
        if state.step == 22:  # epoch 2 of 3 (15 steps per epoch), after the step-20 checkpoint
            raise Interrupted

    interrupted._after_step = stop
    with pytest.raises(Interrupted):
        _fit(interrupted)
    run_id = first.run_id
    client = MlflowClient(mlflow_tracking_uri)
    assert client.get_run(run_id).info.status == "FAILED"

    resumed_tracker = cf.MLflowTracker(experiment="trainer-test")
    history = _fit(_trainer(tmp_path / "ckpt", resumed_tracker), resume=True)
    assert resumed_tracker.run_id == run_id  # the same MLflow run, continued

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["total_steps"] == "45" and run.data.params["optimizer"] == "AdamW"
    assert run.data.params["schedule"] == "cosine" and "parameters" in run.data.params
    val = client.get_metric_history(run_id, "val_loss")
    assert sorted(m.step for m in val) == [15, 30, 45]  # one point per epoch, none twice
    assert [m.value for m in sorted(val, key=lambda m: m.step)] == pytest.approx(history.column("val_loss"))
    steps = sorted(m.step for m in client.get_metric_history(run_id, "batch_loss"))
    assert steps == sorted({r["step"] for r in history.steps})
    lr_steps = sorted(m.step for m in client.get_metric_history(run_id, "lr"))
    assert lr_steps == steps  # one learning-rate point per logged step, none twice at the epoch ends
    assert {"train_loss", "gap", "val_accuracy", "grad_norm", "skipped_steps", "lr"} <= set(run.data.metrics)
    assert "diagnosis" in run.data.tags
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"report.html", "loss_curves.png", "history.json", "diagnosis.json"} <= artifacts
    assert (tmp_path / "ckpt" / "report.html").exists()
