"""Exact resume, in process: an interrupted run resumed from its checkpoint ends bit-identical to
an uninterrupted one (weights, optimizer state, History), for fp32 and bf16, dropout, shuffling,
accumulation with partial windows, and interruptions between checkpoints (the run replays from the
last checkpoint). The interruption is the Trainer's test hook ``_after_step`` raising; the
subprocess kill tests live in tests/test_checkpoints*.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cleanfit as cf
from cleanfit.training.state import TrainState


class Interrupted(Exception):
    pass


@pytest.fixture(autouse=True)
def _quick():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: more threads only contend for the shared cores
    yield
    torch.set_num_threads(threads)


def _data(n: int = 90):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 6)).astype("float32")
    y = (X[:, 0] - X[:, 2] > 0).astype("int64")
    return X, y


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 2))


def _trainer(directory, *, model_seed=0, precision="fp32", accumulate=3, early_stopping=None, **kw):
    kw.setdefault("schedule", cf.warmup_cosine(warmup=3))
    model = _model(model_seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-2, weight_decay=0.01)
    return cf.Trainer(model, opt, loss=torch.nn.functional.cross_entropy, precision=precision, device="cpu",
                      accumulate=accumulate, clip_grad=1.0,
                      metrics=["accuracy"], checkpoint_dir=directory, seed=3, progress=False,
                      early_stopping=early_stopping, report=False, **kw)  # the report is tested in test_trainer.py


def _fit(trainer, *, epochs=4, resume=False, batch=8):
    X, y = _data()
    train = cf.Batches((X, y), batch, seed=11)
    val = cf.Batches((X[:40], y[:40]), 16, shuffle=False)
    return trainer.fit(train, val, epochs=epochs, resume=resume)


def _stop_at(step: int):
    def hook(trainer, state):
        if state.step == step:
            raise Interrupted
    return hook


def _assert_same_run(a: cf.Trainer, b: cf.Trainer, ha: cf.History, hb: cf.History) -> None:
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(pa, pb), name
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for key in sa["state"]:
        for field in sa["state"][key]:
            assert torch.equal(sa["state"][key][field], sb["state"][key][field])
    assert a.scheduler_.state_dict() == b.scheduler_.state_dict()
    assert ha == hb
    assert torch.equal(torch.get_rng_state(), torch.get_rng_state())  # both runs leave the RNG usable


@pytest.mark.parametrize(
    "precision, accumulate, every, stop",
    [
        ("fp32", 3, 2, 4),  # mid-epoch, at a checkpoint (12 batches/epoch -> 4 steps/epoch)
        ("fp32", 5, 2, 5),  # partial last window (12 = 5 + 5 + 2), interrupted between checkpoints: replay
        ("bf16", 2, 3, 7),  # bf16 autocast on CPU, replay from step 6
        ("fp32", 1, None, 24),  # epoch-end checkpoints only, stop just after epoch 2 ends
    ],
)
def test_interrupted_run_resumes_bit_identical(tmp_path, precision, accumulate, every, stop):
    reference = _trainer(tmp_path / "a", precision=precision, accumulate=accumulate, checkpoint_every=every)
    history_a = _fit(reference)

    interrupted = _trainer(tmp_path / "b", precision=precision, accumulate=accumulate, checkpoint_every=every)
    interrupted._after_step = _stop_at(stop)
    with pytest.raises(Interrupted):
        _fit(interrupted)
    torch.manual_seed(12345)  # disturb the global RNG: the resume must restore it
    np.random.seed(999)

    # A new process would build a new model (other init) and optimizer; the checkpoint overrides them.
    resumed = _trainer(tmp_path / "b", model_seed=99, precision=precision, accumulate=accumulate, checkpoint_every=every)
    history_b = _fit(resumed, resume=True)
    _assert_same_run(reference, resumed, history_a, history_b)


def test_resume_with_early_stopping_and_restore_best(tmp_path):
    def es():
        return cf.EarlyStopping(patience=2, min_delta=0.1, restore_best=True)

    reference = _trainer(tmp_path / "a", early_stopping=es())
    history_a = _fit(reference, epochs=8)
    interrupted = _trainer(tmp_path / "b", early_stopping=es())
    interrupted._after_step = _stop_at(6)
    with pytest.raises(Interrupted):
        _fit(interrupted, epochs=8)
    resumed = _trainer(tmp_path / "b", model_seed=5, early_stopping=es())
    history_b = _fit(resumed, epochs=8, resume=True)
    _assert_same_run(reference, resumed, history_a, history_b)
    assert len(history_a.epochs) < 8  # it did stop early


def test_resume_of_a_finished_run_changes_nothing(tmp_path):
    trainer = _trainer(tmp_path)
    history = _fit(trainer)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    again = _trainer(tmp_path, model_seed=7)
    assert _fit(again, resume=True) == history
    for name, value in again.model.state_dict().items():
        assert torch.equal(value, before[name])


def test_resume_true_without_checkpoints_starts_fresh(tmp_path):
    fresh = _trainer(tmp_path / "a")
    history_a = _fit(fresh)
    resumed = _trainer(tmp_path / "b")
    history_b = _fit(resumed, resume=True)
    _assert_same_run(fresh, resumed, history_a, history_b)


def test_resume_refuses_a_different_model_seed_or_data(tmp_path):
    _fit(_trainer(tmp_path))
    torch.manual_seed(0)
    wider = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    trainer = cf.Trainer(wider, torch.optim.AdamW(wider.parameters()), loss=torch.nn.functional.cross_entropy,
                         checkpoint_dir=tmp_path, seed=3, accumulate=3, progress=False, report=False)
    with pytest.raises(cf.CheckpointError, match=r"parameters\.0\.weight: checkpoint \[16, 6\], now \[32, 6\]"):
        _fit(trainer, resume=True)

    other_seed = _trainer(tmp_path)
    other_seed.seed = 4
    with pytest.raises(cf.CheckpointError, match="seed: checkpoint 3, now 4"):
        _fit(other_seed, resume=True)

    X, y = _data(60)
    with pytest.raises(cf.CheckpointError, match="num_train_examples: checkpoint 90, now 60"):
        _trainer(tmp_path).fit(cf.Batches((X, y), 8, seed=11), epochs=4, resume=True)


def test_checkpoint_is_the_whole_train_state_and_loads_weights_only(tmp_path):
    trainer = _trainer(tmp_path, checkpoint_every=2)
    _fit(trainer, epochs=1)
    path = sorted(tmp_path.glob("step-*.ckpt"))[-1]
    state = trainer_state = cf.training.checkpoints.CheckpointManager(tmp_path).load(path)
    expected = {"format", "identity", "model", "optimizer", "scheduler", "scaler", "epoch", "step", "micro_step",
                "train_batches", "rng", "early_stopping", "best_metric", "history", "run_id", "totals"}
    assert set(state) == expected
    assert set(TrainState.__dataclass_fields__) >= {"model", "optimizer", "scheduler", "precision", "train",
                                                    "early_stopping", "history", "epoch", "step",
                                                    "best_metric", "run_id", "rng", "totals", "identity"}
    assert state["micro_step"] == 0  # saved between optimizer steps only: the format keeps the key, always 0
    assert trainer_state["epoch"] == 1 and trainer_state["train_batches"]["epoch"] == 1


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stop=st.integers(1, 15), every=st.sampled_from([None, 1, 2, 5]), accumulate=st.integers(1, 4))
def test_any_interruption_point_resumes_bit_identical(tmp_path_factory, stop, every, accumulate):
    root = tmp_path_factory.mktemp("any")
    stop = 1 + (stop - 1) % (3 * -(-12 // accumulate))  # 12 batches per epoch, 3 epochs
    reference = _trainer(root / "a", accumulate=accumulate, checkpoint_every=every)
    history_a = _fit(reference, epochs=3)
    interrupted = _trainer(root / "b", accumulate=accumulate, checkpoint_every=every)
    interrupted._after_step = _stop_at(stop)
    with pytest.raises(Interrupted):
        _fit(interrupted, epochs=3)
    # a restarted program builds the same model; before the first checkpoint resume=True starts fresh
    resumed = _trainer(root / "b", accumulate=accumulate, checkpoint_every=every)
    _assert_same_run(reference, resumed, history_a, _fit(resumed, epochs=3, resume=True))


def _assert_same_values(saved, restored, where="state"):
    if isinstance(saved, dict):
        assert set(saved) == set(restored), where
        for key in saved:
            _assert_same_values(saved[key], restored[key], f"{where}[{key!r}]")
    elif isinstance(saved, (list, tuple)):
        assert len(saved) == len(restored), where
        for i, (a, b) in enumerate(zip(saved, restored)):
            _assert_same_values(a, b, f"{where}[{i}]")
    elif isinstance(saved, torch.Tensor):
        assert torch.equal(saved, restored), where
    else:
        assert saved == restored or (saved != saved and restored != restored), where  # NaN == NaN here


def test_every_field_of_the_train_state_is_restored(tmp_path):
    """Load a checkpoint into a fresh Trainer (other initial weights) and read its state back: a field
    that load_state_dict forgot keeps the fresh value and the comparison names it."""
    first = _trainer(tmp_path / "a", precision="fp16", checkpoint_every=3,
                     early_stopping=cf.EarlyStopping(patience=10, restore_best=True))
    first._after_step = _stop_at(11)
    with pytest.raises(Interrupted):
        _fit(first, epochs=4)
    path = sorted((tmp_path / "a").glob("step-*.ckpt"))[-1]
    saved = cf.training.checkpoints.CheckpointManager(tmp_path / "a").load(path)
    assert saved["history"]["epochs"] and saved["best_metric"] is not None and saved["scaler"]

    fresh = _trainer(tmp_path / "b", model_seed=1, precision="fp16", checkpoint_every=3,
                     early_stopping=cf.EarlyStopping(patience=10, restore_best=True))
    fresh._prepare()
    X, y = _data()
    state, _ = fresh._start(cf.Batches((X, y), 8, seed=11), cf.Batches((X[:40], y[:40]), 16, shuffle=False),
                            4, path)
    state.rng = saved["rng"]  # the Trainer restores RNGs itself, last (checked by the bit-identical tests)
    _assert_same_values(saved, state.state_dict())


def test_a_fresh_fit_into_a_folder_with_another_runs_checkpoints_is_refused(tmp_path):
    """Two runs in one folder: resume=True later takes the highest step, whichever run wrote it, and
    retention deletes the new run's lower-step files. A fresh fit there is refused before training."""
    _fit(_trainer(tmp_path), epochs=2)
    before = sorted(p.name for p in tmp_path.iterdir())
    other = _trainer(tmp_path, model_seed=1)
    with pytest.raises(cf.CheckpointError, match=rf"checkpoint_dir {tmp_path} already holds .*resume=True"):
        _fit(other, epochs=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == before and other.history_ is None


def test_resume_from_a_file_without_checkpoint_dir_writes_nothing_next_to_it(tmp_path):
    _fit(_trainer(tmp_path / "run", checkpoint_every=2), epochs=1)
    files = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run").iterdir()}
    history = _fit(_trainer(None), epochs=1, resume=tmp_path / "run" / "step-0000000002.ckpt")
    assert history.epochs[-1]["step"] == 4
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run").iterdir()} == files  # nothing written there


def test_resume_with_other_epochs_is_refused_when_the_schedule_was_planned_for_the_old_total(tmp_path):
    """The restored warmup_cosine keeps its old total: more epochs would train at a learning rate of 0."""
    _fit(_trainer(tmp_path), epochs=2)
    with pytest.raises(cf.CheckpointError, match=r"schedule_total_steps: checkpoint 8, now 16"):
        _fit(_trainer(tmp_path), epochs=4, resume=True)
    with pytest.raises(cf.CheckpointError, match=r"schedule_total_steps: checkpoint 8, now missing"):
        _fit(_trainer(tmp_path, schedule=None), epochs=2, resume=True)  # the schedule itself changed


def test_resume_with_more_epochs_without_a_planned_schedule_trains_on(tmp_path):
    _fit(_trainer(tmp_path, schedule=None), epochs=2)
    with pytest.raises(cf.ConfigError, match=r"fit\(epochs=1\) but .* is already at epoch 2; resume with epochs >= 2"):
        _fit(_trainer(tmp_path, schedule=None), epochs=1, resume=True)
    history = _fit(_trainer(tmp_path, schedule=None), epochs=3, resume=True)
    assert [row["step"] for row in history.epochs] == [4, 8, 12]
