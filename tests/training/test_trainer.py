"""Trainer: the loop's contract (steps, logs, evaluation, prediction, clipping, early stopping,
non-finite losses, clear errors, tracking and the report)."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import cleanfit as cf
from cleanfit.tracking.base import NullTracker
from cleanfit.training import metrics


def _data(n=100, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype("float32")
    y = (X[:, 0] + X[:, 1] > 0).astype("int64")
    return X, y


def _mlp(d=4, seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, 8), torch.nn.ReLU(), torch.nn.Dropout(dropout), torch.nn.Linear(8, 2))


def _trainer(model=None, lr=0.1, **kw):
    model = model or _mlp()
    kw.setdefault("loss", F.cross_entropy)
    kw.setdefault("progress", False)
    kw.setdefault("device", "cpu")
    return cf.Trainer(model, torch.optim.SGD(model.parameters(), lr=lr), **kw)


class RecordingTracker(NullTracker):
    def __init__(self, run_id=None):
        self.run_id = run_id
        self.calls: list[tuple[str, object]] = []

    def start(self, *, run_id=None):
        self.run_id = run_id or "run-1"
        self.calls.append(("start", run_id))
        return self.run_id

    def log_params(self, params):
        self.calls.append(("params", dict(params)))

    def log_metrics(self, metrics, step):
        self.calls.append(("metrics", (dict(metrics), step)))

    def log_artifact(self, path, artifact_path=None):
        self.calls.append(("artifact", str(path)))

    def set_tags(self, tags):
        self.calls.append(("tags", dict(tags)))

    def finish(self, status="FINISHED"):
        self.calls.append(("finish", status))

    def of(self, kind):
        return [value for k, value in self.calls if k == kind]


def test_steps_rows_and_log_line(caplog):
    X, y = _data(100)
    trainer = _trainer(accumulate=4, schedule=cf.constant(), metrics=["accuracy"])
    with caplog.at_level(logging.INFO, logger="cleanfit"):
        history = trainer.fit(cf.Batches((X, y), 8), cf.Batches((X, y), 32, shuffle=False), epochs=3)
    # 13 batches per epoch, 4 per step: ceil(13 / 4) = 4 optimizer steps per epoch
    assert [row["step"] for row in history.epochs] == [4, 8, 12]
    assert set(history.epochs[0]) >= {"epoch", "step", "train_loss", "val_loss", "lr", "grad_norm", "skipped_steps",
                                      "val_accuracy"}
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(lines) == 3
    assert re.fullmatch(
        r"epoch 3/3 · step 12/12 · 13 batches/epoch · batch 8 \(effective 32\) · train \d\.\d+ · val \d\.\d+ · "
        r"lr 1\.0e-1 · val_accuracy \d(\.\d+)?", lines[-1]), lines[-1]


def test_training_learns_and_evaluate_is_an_exact_mean_over_examples():
    X, y = _data(101)
    trainer = _trainer(lr=0.3, metrics=["accuracy", "auc"])
    trainer.fit(cf.Batches((X, y), 16), epochs=8)
    result = trainer.evaluate(cf.Batches((X, y), 25, shuffle=False))  # 4 full batches and one of 1
    with torch.no_grad():
        outputs = trainer.model(torch.from_numpy(X))
        expected = F.cross_entropy(outputs, torch.from_numpy(y)).item()
    assert result["loss"] == pytest.approx(expected, rel=1e-6)
    assert result["accuracy"] == metrics.accuracy(outputs, torch.from_numpy(y)) > 0.9
    assert trainer.model.training  # back in train mode


def test_predict_returns_outputs_in_data_order_on_cpu():
    X, y = _data(37)
    trainer = _trainer(model=_mlp(dropout=0.5))
    outputs = trainer.predict(cf.Batches((X, y), 10, shuffle=False))
    trainer.model.eval()
    with torch.no_grad():  # row by row equal up to BLAS blocking differences between batch sizes
        torch.testing.assert_close(outputs, trainer.model(torch.from_numpy(X)), rtol=1e-6, atol=1e-6)
    assert outputs.device.type == "cpu"
    with pytest.raises(cf.DataError, match="shuffle=False"):
        trainer.predict(cf.Batches((X, y), 10))


def test_step_function_for_dict_batches():
    X, y = _data(64)
    model = _mlp()

    def step(net, batch):
        return F.cross_entropy(net(batch["features"]), batch["label"])

    trainer = cf.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.2), step=step, progress=False)
    history = trainer.fit(cf.Batches({"features": X, "label": y}, 16), epochs=3)
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]
    assert set(trainer.evaluate(cf.Batches({"features": X, "label": y}, 16, shuffle=False))) == {"loss"}


def test_clipping_records_the_pre_clip_norm_and_clips():
    X, y = _data(32)
    model = _mlp()
    reference = _mlp()
    trainer = _trainer(model=model, lr=1.0, clip_grad=0.01)
    history = trainer.fit(cf.Batches((X, y), 32, shuffle=False), epochs=1)
    loss = F.cross_entropy(reference(torch.from_numpy(X)), torch.from_numpy(y))
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.01)
    with torch.no_grad():
        for p in reference.parameters():
            p -= 1.0 * p.grad
    assert history.epochs[0]["grad_norm"] == pytest.approx(norm.item(), rel=1e-6)
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert _trainer().fit(cf.Batches((X, y), 8), epochs=1).epochs[0]["grad_norm"] is None  # no clipping, no norm


def test_early_stopping_stops_and_restores_best_weights():
    X, y = _data(60)
    Xv, yv = X[:20], 1 - y[:20]  # val labels flipped: val loss rises as training succeeds
    es = cf.EarlyStopping(patience=2, restore_best=True)
    trainer = _trainer(lr=0.5, early_stopping=es)
    history = trainer.fit(cf.Batches((X, y), 10), cf.Batches((Xv, yv), 20, shuffle=False), epochs=30)
    assert len(history.epochs) == es.best_epoch_ + 2 < 30
    best = min(row["val_loss"] for row in history.epochs)
    assert trainer.evaluate(cf.Batches((Xv, yv), 20, shuffle=False))["loss"] == pytest.approx(best, rel=1e-6)
    with pytest.raises(cf.ConfigError, match="needs val batches"):
        _trainer(early_stopping=cf.EarlyStopping(2)).fit(cf.Batches((X, y), 10), epochs=2)


def test_non_finite_loss_names_epoch_and_step_and_keeps_last_good_checkpoint(tmp_path):
    X, y = _data(40)
    bad_from_step = 7  # steps 1..6 are fine, the 7th optimizer step's loss is NaN
    calls = [0]

    def loss(outputs, targets):
        calls[0] += 1
        value = F.cross_entropy(outputs, targets)
        return value * float("nan") if calls[0] >= bad_from_step else value

    trainer = _trainer(loss=loss, checkpoint_dir=tmp_path, checkpoint_every=2, report=False)
    with pytest.raises(cf.TrainingError, match=r"became nan at epoch 2, step 7"):
        trainer.fit(cf.Batches((X, y), 8), epochs=5)  # 5 steps per epoch
    assert trainer.history_.steps[-1]["step"] == 7 and np.isnan(trainer.history_.steps[-1]["train_loss"])
    assert [f.check for f in trainer.history_.diagnose()] == ["diverging"]
    manager = cf.training.checkpoints.CheckpointManager(tmp_path)
    newest = manager.resolve(True)
    assert newest["step"] == 6 and all(torch.isfinite(v).all() for v in newest["model"].values())


def test_fp16_skipped_steps_are_counted_and_do_not_advance_the_schedule():
    X, y = _data(64)
    calls = [0]

    def loss(outputs, targets):
        calls[0] += 1
        value = F.cross_entropy(outputs.float(), targets)
        return value * 1e36 if calls[0] in (2, 5) else value  # x 65536 overflows: inf gradients

    trainer = _trainer(loss=loss, precision="fp16", schedule=cf.warmup_linear(warmup=0))
    history = trainer.fit(cf.Batches((X, y), 8, shuffle=False), epochs=1)
    assert history.epochs[0]["skipped_steps"] == 2
    assert trainer.scheduler_.last_epoch == 8 - 2
    assert history.epochs[0]["lr"] == pytest.approx(0.1 * (1 - 5 / 8))


def test_bf16_autocast_runs_on_cpu():
    X, y = _data(64)
    seen = []

    def loss(outputs, targets):
        seen.append(outputs.dtype)
        return F.cross_entropy(outputs.float(), targets)

    trainer = _trainer(loss=loss, precision="bf16")
    trainer.fit(cf.Batches((X, y), 16), epochs=1)
    assert trainer.precision_.name == "bf16" and seen == [torch.bfloat16] * 4
    assert _trainer(precision="auto").fit(cf.Batches((X, y), 16), epochs=1) and True


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: _trainer(accumulate=0), r"accumulate=0\) must be an int >= 1"),
        (lambda: _trainer(precision="fp8"), "precision='fp8'"),
        (lambda: _trainer(clip_grad=-1.0), "clip_grad"),
        (lambda: cf.Trainer(_mlp(), torch.optim.SGD(_mlp(seed=1).parameters(), lr=0.1), loss=F.cross_entropy),
         r"4 parameter\(s\) that are not in the model"),
        (lambda: cf.Trainer(_mlp(), torch.optim.SGD(_mlp().parameters(), lr=0.1)), "exactly one of loss"),
        (lambda: _trainer(step=lambda m, b: 0, loss=None, metrics=["accuracy"]), "metrics"),
        (lambda: _trainer(metrics=["f1"]), "unknown metric 'f1'"),
        (lambda: _trainer(checkpoint_every=10), r"checkpoint_every=10\) saves nowhere without checkpoint_dir"),
    ],
)
def test_constructor_errors(make, match):
    with pytest.raises(cf.ConfigError, match=match):
        make()


def test_fit_errors_name_the_problem():
    X, y = _data(20)
    with pytest.raises(cf.ConfigError, match=r"epochs=0\) must be an int >= 1"):
        _trainer().fit(cf.Batches((X, y), 8), epochs=0)
    with pytest.raises(cf.DataError, match="expected cf.Batches"):
        _trainer().fit((X, y), epochs=1)
    with pytest.raises(cf.DataError, match="no batches"):
        _trainer().fit(cf.Batches((X, y), 32, drop_last=True), epochs=1)
    with pytest.raises(cf.TrainingError, match=r"x float32 \(8, 4\), y int64 \(8,\).*mat1 and mat2"):
        _trainer(model=_mlp(d=5)).fit(cf.Batches((X, y), 8), epochs=1)
    with pytest.raises(cf.TrainingError, match="scalar"):
        _trainer(loss=lambda o, t: F.cross_entropy(o, t, reduction="none")).fit(cf.Batches((X, y), 8), epochs=1)
    with pytest.raises(cf.ConfigError, match="checkpoint_dir"):
        _trainer().fit(cf.Batches((X, y), 8), epochs=1, resume=True)
    with pytest.raises(cf.ConfigError, match=r"resume='best'\) needs Trainer\(checkpoint_dir=\.\.\.\)"):
        _trainer().fit(cf.Batches((X, y), 8), epochs=1, resume="best")


def test_tracking_params_metrics_tags_report_and_finish(tmp_path):
    X, y = _data(50)
    tracker = RecordingTracker()
    trainer = _trainer(tracker=tracker, clip_grad=1.0, schedule=cf.warmup_cosine(), checkpoint_dir=tmp_path,
                       metrics=["accuracy"])
    trainer.fit(cf.Batches((X, y), 5), cf.Batches((X, y), 25, shuffle=False), epochs=2)  # 10 steps per epoch
    (params,) = tracker.of("params")
    assert params["effective_batch_size"] == 5 and params["total_steps"] == 20 and params["optimizer"] == "SGD"
    assert params["optimizer.lr"] == 0.1 and params["schedule"] == "cosine" and params["parameters"] == 58
    step_logs = [(m, s) for m, s in tracker.of("metrics") if "batch_loss" in m]
    assert [s for _, s in step_logs] == [10, 20]
    epoch_logs = [(m, s) for m, s in tracker.of("metrics") if "val_loss" in m]
    assert [s for _, s in epoch_logs] == [10, 20]
    assert {"train_loss", "val_loss", "gap", "val_accuracy", "grad_norm", "skipped_steps"} <= set(epoch_logs[0][0])
    assert all("lr" in m for m, _ in step_logs) and not any("lr" in m for m, _ in epoch_logs)  # once per step
    assert any("diagnosis" in tags for tags in tracker.of("tags"))
    assert {p.rsplit("/", 1)[-1] for p in tracker.of("artifact")} >= {"report.html", "loss_curves.png"}
    assert (tmp_path / "report.html").exists()
    assert tracker.calls[-1] == ("finish", "FINISHED")


def test_tracker_finished_as_failed_on_error_and_left_open_when_the_caller_started_it():
    X, y = _data(20)
    tracker = RecordingTracker()
    with pytest.raises(cf.TrainingError):
        _trainer(model=_mlp(d=5), tracker=tracker).fit(cf.Batches((X, y), 8), epochs=1)
    assert tracker.calls[-1] == ("finish", "FAILED")

    started = RecordingTracker(run_id="callers-run")
    _trainer(tracker=started).fit(cf.Batches((X, y), 8), epochs=1)
    assert started.of("finish") == [] and started.of("artifact") == []  # the caller reports and finishes


def test_a_tracker_whose_store_failed_to_open_its_run_is_the_callers():
    """The caller started it (``failure_`` is set, ``run_id`` stayed None): the Trainer only flushes it."""
    X, y = _data(20)
    failed = RecordingTracker()
    failed.failure_ = "could not open the run"
    _trainer(tracker=failed).fit(cf.Batches((X, y), 8), epochs=1)
    assert failed.of("finish") == [] and failed.of("artifact") == [] and len(failed.of("params")) == 1


def test_report_false_writes_none_and_a_callable_is_the_callers_report_writer(tmp_path):
    X, y = _data(20)
    tracker = RecordingTracker()
    _trainer(tracker=tracker, checkpoint_dir=tmp_path / "off", report=False).fit(cf.Batches((X, y), 8), epochs=1)
    assert tracker.of("artifact") == [] and not list((tmp_path / "off").glob("*.html"))

    seen = []
    started = RecordingTracker(run_id="callers-run")  # a callable report runs whoever owns the run
    _trainer(tracker=started, report=lambda **kw: seen.append(kw)).fit(cf.Batches((X, y), 8), epochs=2)
    (written,) = seen
    assert written["tracker"] is started and written["directory"] is None and len(written["history"].epochs) == 2
    assert written["config"]["status"] == "FINISHED" and written["config"]["epochs"] == 2
    assert written["metrics"]["step"] == 6 and "epoch" not in written["metrics"]
    assert isinstance(written["findings"], list) and started.of("finish") == []
    with pytest.raises(cf.ConfigError, match=r"report='yes'\) must be True"):
        _trainer(report="yes")


def test_argument_errors_of_early_stopping_schedules_and_metrics_are_config_errors():
    for make, match in [
        (lambda: cf.EarlyStopping(2, min_delta="0.1"), r"min_delta='0.1'\) must be a number >= 0"),
        (lambda: cf.EarlyStopping(2, min_delta=float("nan")), r"min_delta=nan\) must be a number >= 0"),
        (lambda: cf.EarlyStopping(2, monitor=3), r"monitor=3\) must name an epoch value"),
        (lambda: cf.warmup_cosine(min_lr_ratio="0.1"), r"min_lr_ratio='0.1' must be a number in \[0, 1\]"),
        (lambda: _trainer(metrics=42), r"metrics=42\) must be a list"),
    ]:
        with pytest.raises(cf.ConfigError, match=match):
            make()
    # one metric by name or as a function is that metric, not the letters of its name
    assert list(_trainer(metrics="accuracy").metrics) == ["accuracy"]
    assert list(_trainer(metrics=metrics.rmse).metrics) == ["rmse"]


def test_an_early_stopping_monitor_the_rows_will_not_have_is_refused_before_training():
    X, y = _data(20)
    trainer = _trainer(metrics=["accuracy"], early_stopping=cf.EarlyStopping(2, monitor="val_acc"))
    with pytest.raises(cf.ConfigError, match=r"monitor='val_acc'\) is not a value .*val_accuracy"):
        trainer.fit(cf.Batches((X, y), 8), cf.Batches((X, y), 8, shuffle=False), epochs=2)
    assert trainer.history_ is None  # nothing was trained
    with pytest.raises(cf.ConfigError, match=r"monitor='grad_norm'\) is not a value .*one of train_loss \(metrics"):
        _trainer(early_stopping=cf.EarlyStopping(2, monitor="grad_norm")).fit(cf.Batches((X, y), 8), epochs=2)
    with pytest.raises(cf.ConfigError, match=r"monitor='val_loss'\) needs val batches"):
        _trainer(early_stopping=cf.EarlyStopping(2)).fit(cf.Batches((X, y), 8), epochs=2)
    history = _trainer(early_stopping=cf.EarlyStopping(1, monitor="train_loss")).fit(cf.Batches((X, y), 8), epochs=2)
    assert len(history.epochs) == 2


def test_batches_cut_for_other_ranks_are_refused_without_that_process_group():
    X, y = _data(20)
    trainer = _trainer()
    share = cf.Batches((X, y), 4, shuffle=False, rank=1, world_size=2)  # half the rows, silently
    for call in (lambda: trainer.evaluate(share), lambda: trainer.predict(share),
                 lambda: trainer.fit(cf.Batches((X, y), 4, rank=0, world_size=2), epochs=1),
                 lambda: trainer.fit(cf.Batches((X, y), 4), share, epochs=1)):
        with pytest.raises(cf.DataError, match=r"Batches\(rank=\d, world_size=2\) yield only that rank's share.*"
                                               r"single process"):
            call()
    assert trainer.evaluate(cf.Batches((X, y), 4, shuffle=False, rank=0, world_size=1))["loss"] > 0


def test_predict_on_batches_the_model_cannot_take_says_what_it_passed():
    X, y = _data(20)
    with pytest.raises(cf.TrainingError, match=r"predict\(\): the model does not take the batch's input \(a dict "
                                               r"of features float32 \(8, 4\), label int64 \(8,\)\).*cf.Batches\(X"):
        _trainer().predict(cf.Batches({"features": X, "label": y}, 8, shuffle=False))


def test_a_non_finite_loss_without_checkpoint_dir_does_not_promise_a_checkpoint():
    X, y = _data(40)
    nan_data = cf.Batches((np.full_like(X, np.nan), y), 8)
    with pytest.raises(cf.TrainingError, match=r"became nan at epoch 1, step 1 .*nothing was saved") as error:
        _trainer().fit(nan_data, epochs=1)
    assert "checkpoint is kept" not in str(error.value)
    with pytest.raises(cf.TrainingError, match=r"validation loss became nan at epoch 1, step 5; .*nothing was saved"):
        _trainer().fit(cf.Batches((X, y), 8), nan_data, epochs=1)


def test_evaluation_and_prediction_refuse_batches_that_drop_examples():
    X, y = _data(20)
    trainer = _trainer()
    dropping = cf.Batches((X, y), 8, shuffle=False, drop_last=True)  # 16 of 20 rows
    for call in (lambda: trainer.evaluate(dropping), lambda: trainer.predict(dropping),
                 lambda: trainer.fit(cf.Batches((X, y), 8), dropping, epochs=1)):
        with pytest.raises(cf.DataError, match=r"drop_last=True\) leave out the last 4 of 20 examples"):
            call()
    assert trainer.history_ is None
    assert trainer.predict(cf.Batches((X, y), 10, shuffle=False, drop_last=True)).shape == (20, 2)  # nothing dropped


def test_metrics_errors_name_the_metric_or_the_output_type():
    X, y = _data(20)

    class DictModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 2)

        def forward(self, x):
            return {"logits": self.linear(x)}

    model = DictModel()
    trainer = cf.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), metrics=["accuracy"], progress=False,
                         loss=lambda out, target: F.cross_entropy(out["logits"], target))
    with pytest.raises(cf.TrainingError, match=r"metrics=\.\.\.\) needs a model that returns a tensor .*got dict"):
        trainer.evaluate(cf.Batches((X, y), 8, shuffle=False))
    broken = _trainer(metrics={"share": lambda out, target: 1 / 0})
    with pytest.raises(cf.TrainingError, match=r"metric 'share' failed on outputs \(20, 2\) and targets \(20,\): "
                                               r"ZeroDivisionError"):
        broken.evaluate(cf.Batches((X, y), 8, shuffle=False))


def test_a_fresh_fit_starts_at_the_first_batch_even_after_the_caller_peeked():
    X, y = _data(48)
    train = cf.Batches((X, y), 8)
    next(iter(train))  # look at one batch: the Batches now stand at position 1 of epoch 0
    history = _trainer().fit(train, epochs=2)
    assert [row["step"] for row in history.epochs] == [6, 12]  # every batch of both epochs
