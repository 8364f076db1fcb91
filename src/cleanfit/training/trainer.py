"""Trainer: a PyTorch training loop with the production practices, each in plain sight.

The heart is :meth:`Trainer._train_step`, which reads top to bottom like a hand-written loop::

    weights = loss weights of the window's micro-batches   # examples / examples in the window
    for each micro-batch:
        with no DDP all-reduce unless it is the last, autocast:
            loss = loss_fn(model(x), y)
        backward(loss * weight)                          # fp16: scaled
    unscale, clip (recording the pre-clip norm)
    optimizer step (fp16 may skip it) -> schedule step only if it was taken
    zero the gradients

Everything around it (device, process group, checkpoints, tracking, logs) is set up once in
:meth:`Trainer.fit` and called by name where it acts.

>>> import torch, numpy as np, cleanfit as cf
>>> X = np.random.default_rng(0).normal(size=(64, 3)).astype("float32"); y = (X[:, 0] > 0).astype("int64")
>>> model = torch.nn.Linear(3, 2)
>>> trainer = cf.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.5),
...                      loss=torch.nn.functional.cross_entropy, metrics=["accuracy"], progress=False)
>>> history = trainer.fit(cf.Batches((X, y), 16), cf.Batches((X, y), 32, shuffle=False), epochs=5)
>>> len(history.epochs), history.epochs[-1]["step"]
(5, 20)
>>> trainer.evaluate(cf.Batches((X, y), 32, shuffle=False))["accuracy"] > 0.9
True
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import torch

from cleanfit._util.args import check_seed
from cleanfit.data.batches import Batches
from cleanfit.data.devices import pick_device, to_device
from cleanfit.errors import ConfigError
from cleanfit.seeding import rng_state
from cleanfit.training import distributed
from cleanfit.training import run_io as io
from cleanfit.training.arguments import check_arguments, check_batches, check_eval_batches, check_fit
from cleanfit.training.arguments import check_combinations, check_fit_batches, open_checkpoints
from cleanfit.training.averaging import Ema, check_decay
from cleanfit.training.batch import compute_loss, count, count_weighting, loss_weights, needs_move, weighted_sum
from cleanfit.training.batch import windows
from cleanfit.training.checkpoints import CheckpointManager
from cleanfit.training.compiling import check_compile, compiled
from cleanfit.training.early_stopping import EarlyStopping
from cleanfit.training.evaluation import evaluate as _evaluate
from cleanfit.training.evaluation import predict as _predict
from cleanfit.training.history import History
from cleanfit.training.metrics import resolve_metrics
from cleanfit.training.precision import Precision
from cleanfit.training.resume import restore, seed_run
from cleanfit.training.run_context import RunContext
from cleanfit.training.schedules import ScheduleLike, make_scheduler, planned
from cleanfit.training.state import TrainState, identity_of
from cleanfit.training.step_log import check_val_loss, epoch_row, log_steps

__all__ = ["Trainer"]


class Trainer:
    """Train ``model`` with ``optimizer`` on :class:`~cleanfit.data.batches.Batches`.

    See docs/INTERNALS.md and the README for the contract. ``loss(outputs, targets)`` is for ``(x, y)``
    batches; ``step(model, batch) -> loss`` for anything else. Both must return the mean over the batch;
    ``step`` may return ``(loss, count)``, the mean over ``count`` units (e.g. tokens), which then weight it.
    ``compile=True``: the training forward runs through ``torch.compile`` (checkpoints keep plain keys);
    ``ema=decay``: validation, evaluate and predict use the moving average, which the model holds after fit.
    Learned state: ``history_`` (also after a failed fit), ``device_``, ``precision_``, ``scheduler_``,
    ``total_steps_``.

    A fresh ``fit`` seeds Python, NumPy and torch with ``seed`` (+ the rank under DDP) once everything
    is built; a resumed one restores the RNG states of the checkpoint instead. Checkpoints are taken
    between optimizer steps only: every ``checkpoint_every`` steps and at every epoch end (after
    validation and early stopping).

    ``tracker``: a run the Trainer starts itself (``None``, ``"mlflow"``, or a Tracker with no run yet) it
    also finishes (FAILED on an error); a run the caller started is left open for the caller (flushed only).

    ``report``: ``True`` writes the run report (loss curves, HTML, history, diagnosis) at the end of a fit
    whose run the Trainer owns, next to the checkpoints and into the tracking run; ``False`` writes none;
    a callable is the caller's report writer, called on rank 0 at the end of every fit (finished or
    failed) as ``report(tracker=, directory=, history=, config=, metrics=, findings=)`` (``config`` holds
    the run's parameters and ``"status"``). A failing report is logged as a warning, never raised.
    """

    log_every = 10  # optimizer steps between logged train-loss points (and non-finite checks)

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        loss: Callable[[Any, Any], torch.Tensor] | None = None,
        step: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
        device: str | torch.device = "auto",
        precision: str = "auto",
        accumulate: int = 1,
        clip_grad: float | None = None,
        schedule: ScheduleLike = None,
        metrics: Any = None,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
        keep_last: int = 3,
        tracker: Any = None,
        seed: int = 0,
        early_stopping: EarlyStopping | None = None,
        progress: bool = True,
        report: bool | Callable[..., Any] = True,
        compile: bool | str = False,
        ema: float | None = None,
    ) -> None:
        check_arguments(model, optimizer, loss, step, precision, accumulate, clip_grad, checkpoint_every,
                        keep_last, early_stopping, report)
        self.model = model
        self.optimizer = optimizer
        self.loss = loss
        self.step = step
        self.device = device
        self.precision = precision
        self.accumulate = accumulate
        self.clip_grad = clip_grad
        self.schedule = schedule
        self.metrics = resolve_metrics(metrics)
        check_combinations(self.metrics, step, checkpoint_every, checkpoint_dir)
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.checkpoint_every = checkpoint_every or None
        self.keep_last = keep_last
        self.tracker = tracker
        self.seed = check_seed(seed, "Trainer", error=ConfigError)
        self.early_stopping = early_stopping
        self.progress = progress
        self.report = report
        self.compile = check_compile(compile)
        self.ema = check_decay(ema)
        self.ema_: Ema | None = None  # the average of the current (or last) fit
        self.history_: History | None = None
        self._prepared = False
        self._after_fit: tuple[Any, str, int] | None = None  # (tracker, run id, step): see close()
        self.test_scores_: dict[str, float] | None = None
        self._run: RunContext | None = None  # the current (or last) fit's bookkeeping
        # Test hook: called as hook(trainer, state) after every optimizer step (after any checkpoint).
        self._after_step: Callable[[Trainer, TrainState], None] | None = None

    # -- setup ---------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Device, process group (under torchrun), DDP wrapper and precision; once per Trainer."""
        if self._prepared:
            return
        self.dist_, device = distributed.setup(self.device)
        self.device_ = pick_device(device)
        self.model.to(self.device_)
        self.net_ = compiled(self.dist_.wrap(self.model, self.device_), self.compile)
        self.precision_ = Precision(self.precision, self.device_)
        self._prepared = True

    # -- fit -------------------------------------------------------------------------------------
    def fit(self, train: Batches, val: Batches | None = None, *, epochs: int, resume: bool | str | Path = False,
            test: Batches | None = None) -> History:
        """Train for ``epochs`` epochs (continuing a checkpointed run with ``resume``); return the History.

        ``test`` is scored once, after training, into ``test_scores_`` and the run (``test_<name>``). A run
        the Trainer started takes the scores of a later ``evaluate()`` too, until :meth:`close`.
        """
        check_fit(train, val, epochs, self.early_stopping, self.metrics)
        self._prepare()
        check_fit_batches(train, val, self.dist_)
        self._after_fit = None
        with distributed.before_training():  # under torchrun, a rank whose _start fails stops the others at ready()
            state, run = self._start(train, val, epochs, resume)
        status = "FAILED"
        try:
            distributed.ready()  # rank 0 may be slow opening the tracking store: CLEANFIT_SETUP_TIMEOUT, not the collectives'
            self._loop(state, run)
            if test is not None:
                self.test_scores_ = self.evaluate(test, log_as=None)
                run.tracker.log_metrics(io.prefixed(self.test_scores_, "test"), step=state.step)
            status = "FINISHED"
        except RuntimeError as exc:
            lost = distributed.lost_peer(exc, self.dist_.rank, self.dist_.world_size)
            if lost is None:
                raise
            raise lost from None
        finally:
            if run.report is not None:
                io.call_report(run.report, run.tracker, self.checkpoint_dir, state.history, run.params, status)
            if run.owns_run:
                run.tracker.finish(status)
            else:
                run.tracker.flush()
        if run.owns_run and state.run_id is not None:  # evaluate() after fit adds to this run (see close())
            self._after_fit = (run.tracker, state.run_id, state.step)
        return state.history

    def close(self) -> None:
        """Stop adding ``evaluate()`` scores to the run the last ``fit`` started (``with Trainer(...) as t`` closes)."""
        self._after_fit = None

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def _start(self, train: Batches, val: Batches | None, epochs: int, resume: bool | str | Path) -> tuple[TrainState, RunContext]:
        """Build the run's TrainState (fresh or from a checkpoint), start tracking, then seed."""
        main = self.dist_.is_main
        windows_per_epoch = math.ceil(len(train) / self.accumulate)
        self.total_steps_ = epochs * windows_per_epoch
        self.scheduler_ = make_scheduler(self.schedule, self.optimizer, self.total_steps_)
        manager = open_checkpoints(self.checkpoint_dir, self.keep_last, resume, self.dist_)
        # Without a checkpoint_dir, resume=<file> only reads that file: nothing is written next to it.
        reader = manager if manager is not None or not resume else CheckpointManager(Path(resume).parent)
        if self.early_stopping is not None:
            self.early_stopping.reset()
        self.ema_ = Ema(self.model, self.ema) if self.ema is not None else None
        state = TrainState(
            model=self.model, optimizer=self.optimizer, scheduler=self.scheduler_, precision=self.precision_,
            train=train, identity=identity_of(self.model, train, seed=self.seed, accumulate=self.accumulate,
                                              schedule_steps=self.total_steps_ if planned(self.schedule) else None,
                                              ema=self.ema),
            device=self.device_, early_stopping=self.early_stopping, ema=self.ema_,
        )
        saved = reader.resolve(resume, check=state.check) if reader is not None and resume else None
        self.history_ = state.history
        tracker = self.tracker if main else None
        run = self._run = RunContext(tracker=io.make_tracker(tracker), owns_run=io.owns_run(tracker), manager=manager,
                                     val=val, epochs=epochs, windows_per_epoch=windows_per_epoch,
                                     non_blocking=self.device_.type == "cuda")
        if saved is None:
            train.set_epoch(0)  # a fresh run starts at the first batch, even if the caller peeked at some
        else:
            restore(state, saved, reader.resolved_path, epochs=epochs, total_steps=self.total_steps_, dist=self.dist_)
            self.history_ = state.history
        state.run_id = run.tracker.start(run_id=state.run_id)
        run.report = io.report_writer(self.report, run.tracker, owns_run=run.owns_run,
                                  directory=self.checkpoint_dir) if main else None
        if main and (io.tracked(run.tracker) or run.report is not None):
            run.params = io.run_params(self, train, val, epochs=epochs, total_steps=self.total_steps_,
                                       world_size=self.dist_.world_size)  # what this run was (reads git)
            if saved is None:
                run.tracker.log_params(run.params)
        if saved is not None and main:
            io.resend_history(run.tracker, state.history)
        seed_run(state, resumed=saved is not None, seed=self.seed, rank=self.dist_.rank)  # random numbers last
        return state, run

    # -- the loop ----------------------------------------------------------------------------------
    def _loop(self, s: TrainState, run: RunContext) -> None:
        self.model.train()
        run.last_lr = self.optimizer.param_groups[0]["lr"]
        io.show_epoch_lines(self.progress and self.dist_.is_main)
        bar = run.bar = io.progress_bar(self.progress and self.dist_.is_main, self.total_steps_, s.step)
        try:
            stopped = self.early_stopping is not None and self.early_stopping.stopped_
            while s.epoch < run.epochs and not stopped:
                if s.train.epoch != s.epoch or s.train.state_dict()["position"] == 0:
                    s.train.set_epoch(s.epoch)  # a resume mid-epoch keeps the restored position
                first_window = s.train.state_dict()["position"] // self.accumulate
                for index, window in enumerate(windows(s.train, self.accumulate), start=first_window):
                    run.move_batches = run.move_batches and needs_move(window[0], self.device_)
                    step_loss = self._train_step(s, run, window, first_batch=index * self.accumulate)
                    s.step += 1
                    distributed.note_step(s.step)  # what this rank's heartbeat reports (no I/O here)
                    self._after_train_step(s, run, step_loss, index == run.windows_per_epoch - 1)
                    bar.update(1)
                stopped = self._end_epoch(s, run)
        finally:
            bar.close()
        if self.early_stopping is not None and self.early_stopping.restore(self._eval_model()):
            io.logger.info("restored the weights of epoch %s (best %s %.4g)", self.early_stopping.best_epoch_,
                           self.early_stopping.monitor, self.early_stopping.best_)
        if s.ema is not None:
            s.ema.copy_to(self.model)  # the model ends holding the average

    def _train_step(self, s: TrainState, run: RunContext, window: list[Any],
                    first_batch: int) -> tuple[torch.Tensor, Any, Any]:
        """One optimizer step over a window of up to ``accumulate`` micro-batches. Returns the window's loss
        (a tensor: no host sync), ``scale``, which turns it back into this rank's sum of loss x units, and
        this rank's units (rows, or step's counts), for the epoch's exact mean (see training/step_log.py)."""
        counts = [count(batch) for batch in window]
        weights, scale = loss_weights(counts, s.train, first_batch, self.dist_)
        losses, units = [], []
        for i, (batch, n, weight) in enumerate(zip(window, counts, weights)):
            if run.move_batches:
                batch = to_device(batch, self.device_, non_blocking=run.non_blocking)
            last = i == len(window) - 1
            with self.dist_.sync_gradients(self.net_, sync=last):  # DDP all-reduces on the last micro-batch only
                with self.precision_.autocast():
                    loss, _, _, unit = compute_loss(self.net_, batch, loss=self.loss, step=self.step, examples=n)
                if unit is not None:  # step -> (loss, count): weighted by its count, normalised after the window
                    units.append(unit)
                    self.precision_.backward(loss * unit)
                else:
                    self.precision_.backward(loss if weight == 1.0 else loss * weight)
            losses.append(loss.detach())
        if units:
            window_loss, scale, examples = count_weighting(self.model.parameters(), losses, units, self.dist_,
                                                           self.device_)
        else:
            window_loss, examples = weighted_sum(losses, weights), sum(counts)
        grad_norm = self._clip_gradients()
        run.last_lr = self.optimizer.param_groups[0]["lr"]
        if self.precision_.step(self.optimizer):
            if self.scheduler_ is not None:
                self.scheduler_.step()  # a step fp16 skipped does not advance the schedule
            if grad_norm is not None:
                s.totals["grad_norm_sum"] += grad_norm
                s.totals["grad_norms"] += 1
            if s.ema is not None:
                s.ema.update(self.model)
        else:
            s.totals["skipped_steps"] += 1
        self.optimizer.zero_grad(set_to_none=True)
        return window_loss, scale, examples

    def _clip_gradients(self) -> torch.Tensor | None:
        """Clip to ``clip_grad`` (fp16: after unscaling); return the pre-clip norm."""
        if self.clip_grad is None:
            return None
        self.precision_.unscale_(self.optimizer)
        return torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad).detach().float()

    def _after_train_step(self, s: TrainState, run: RunContext, step_loss: tuple[torch.Tensor, Any, Any],
                          end_of_epoch: bool) -> None:
        """Log every ``log_every`` steps (checking for a non-finite loss), checkpoint every ``checkpoint_every``."""
        run.pending.append(step_loss)
        checkpoint_due = (run.manager is not None and self.checkpoint_every is not None
                          and s.step % self.checkpoint_every == 0 and not end_of_epoch)  # the epoch end saves anyway
        if s.step % self.log_every == 0 or end_of_epoch or checkpoint_due:
            log_steps(s, run, self.dist_, io.stopped(self.checkpoint_dir))
        if checkpoint_due:
            self._save(s, run, metric=None)
        if self._after_step is not None:
            self._after_step(self, s)

    def _end_epoch(self, s: TrainState, run: RunContext) -> bool:
        """Exact train loss, validation, the epoch's row, log line, early stopping, checkpoint."""
        row = epoch_row(s, s.summed_totals(self.dist_), lr=run.last_lr)
        if run.val is not None:
            scores = self.evaluate(run.val)
            row["val_loss"] = scores.pop("loss")
            row.update({f"val_{name}": value for name, value in scores.items()})
        s.history.add_epoch(row)
        s.epoch += 1
        s.reset_totals()
        run.tracker.log_metrics(io.epoch_metrics(row), step=s.step)
        if self.dist_.is_main:
            with run.bar.external_write_mode():  # the line above the progress bar, not inside it
                io.logger.info(io.epoch_line(row, epochs=run.epochs, total_steps=self.total_steps_,
                                             batches_per_epoch=len(s.train), batch_size=s.train.batch_size,
                                             effective=s.train.global_batch_size * self.accumulate))
        check_val_loss(row, io.stopped(self.checkpoint_dir))
        stop = self.early_stopping.update(row, self._eval_model()) if self.early_stopping is not None else False
        if row["val_loss"] is not None and (s.best_metric is None or row["val_loss"] < s.best_metric):
            s.best_metric = row["val_loss"]
        self._save(s, run, metric=row["val_loss"])
        return stop

    def _save(self, s: TrainState, run: RunContext, *, metric: float | None) -> None:
        """A checkpoint of the whole TrainState (rank 0 writes; every rank contributes its RNG state)."""
        if run.manager is None:
            return
        s.rng = self.dist_.all_gather(rng_state())
        totals = s.summed_totals(self.dist_) if self.dist_.enabled else None  # rank 0 saves all ranks' sums
        if self.dist_.is_main:
            run.manager.save(s.state_dict(totals=totals), step=s.step, epoch=s.epoch, metric=metric)

    # -- evaluation ------------------------------------------------------------------------------
    def evaluate(self, batches: Batches, *, log_as: str | None = "test") -> dict[str, float]:
        """Exact means over all examples of ``batches``: ``"loss"`` and each metric.

        After a ``fit`` whose run the Trainer started (and until :meth:`close`), the scores are also logged to
        that run as ``<log_as>_<name>`` (``log_as=None``: not logged).
        """
        check_batches(batches, "evaluate")
        self._prepare()
        check_eval_batches(batches, "evaluate", self.dist_)
        scores = _evaluate(self._eval_model(), batches, precision=self.precision_, device=self.device_, dist=self.dist_,
                           loss=self.loss, step=self.step, metrics=self.metrics)
        if log_as and self._after_fit is not None and self.dist_.is_main:
            io.log_after_fit(self._after_fit, io.prefixed(scores, log_as))
        return scores

    def predict(self, batches: Batches) -> torch.Tensor:
        """The model's outputs for every example of ``batches`` (unshuffled), as one CPU tensor in data order."""
        check_batches(batches, "predict")
        self._prepare()
        check_eval_batches(batches, "predict", self.dist_)
        return _predict(self._eval_model(), batches, precision=self.precision_, device=self.device_, dist=self.dist_)

    def _eval_model(self) -> torch.nn.Module:
        """The weights validation, evaluate and predict use: the moving average with ``ema=``, else the model."""
        return self.model if self.ema_ is None else self.ema_.module

    def __repr__(self) -> str:
        return (f"Trainer(model={type(self.model).__name__}, optimizer={type(self.optimizer).__name__}, "
                f"precision={self.precision!r}, accumulate={self.accumulate}, clip_grad={self.clip_grad}, "
                f"seed={self.seed})")
