"""A run the Trainer started takes the test scores: ``fit(..., test=)`` and ``evaluate()`` after ``fit``
(until ``close()``) log them to it, in a real MLflow store; a resume says where it resumed from."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

import cleanfit as cf


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(96, 3)).astype("float32")
    y = (X[:, 0] > 0).astype("int64")
    return cf.Batches((X[:64], y[:64]), 16), cf.Batches((X[64:], y[64:]), 32, shuffle=False)


def _trainer(tracker, checkpoint_dir: Path | None = None) -> cf.Trainer:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    return cf.Trainer(model, torch.optim.AdamW(model.parameters(), lr=1e-2), loss=F.cross_entropy, device="cpu",
                      metrics=["accuracy"], tracker=tracker, progress=False, checkpoint_dir=checkpoint_dir)


def test_evaluate_after_fit_logs_to_the_run_until_close(mlflow_tracking_uri) -> None:
    from mlflow.tracking import MlflowClient

    train, test = _data()
    tracker = cf.MLflowTracker(experiment="after-fit")
    with _trainer(tracker) as trainer:
        trainer.fit(train, epochs=2)
        scores = trainer.evaluate(test)
        client = MlflowClient(mlflow_tracking_uri)
        run = client.get_run(tracker.run_id)
        assert run.info.status == "FINISHED"
        assert run.data.metrics["test_loss"] == scores["loss"] and run.data.metrics["test_accuracy"] == scores["accuracy"]
        assert [m.step for m in client.get_metric_history(tracker.run_id, "test_loss")] == [8]  # the last step
    trainer.evaluate(test)  # closed: no longer logged
    assert len(client.get_metric_history(tracker.run_id, "test_loss")) == 1


def test_fit_with_test_scores_it_once_into_the_run(mlflow_tracking_uri) -> None:
    from mlflow.tracking import MlflowClient

    train, test = _data()
    tracker = cf.MLflowTracker(experiment="fit-test")
    trainer = _trainer(tracker)
    trainer.fit(train, epochs=2, test=test)
    run = MlflowClient(mlflow_tracking_uri).get_run(tracker.run_id)
    assert trainer.test_scores_ == trainer.evaluate(test, log_as=None)
    assert run.data.metrics["test_loss"] == trainer.test_scores_["loss"] and run.info.status == "FINISHED"


def test_a_caller_owned_run_is_left_to_the_caller_and_a_resume_says_where_it_resumed(tmp_path, caplog) -> None:
    train, test = _data()
    trainer = _trainer(cf.NullTracker(), tmp_path / "ckpt")
    trainer.fit(train, epochs=2)
    assert trainer._after_fit is None  # NullTracker: no run to add to
    with caplog.at_level(logging.INFO, logger="cleanfit"):
        _trainer(cf.NullTracker(), tmp_path / "ckpt").fit(train, epochs=3, resume=True)
    assert "resumed from step 8 of 12 (epoch 3 of 3)" in caplog.text
