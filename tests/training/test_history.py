"""History and its diagnosis, checked on real training runs: a learning rate that is too high
(diverges to inf, or blows up and swings), one that is too low (flat), a big model on a tiny
dataset (overfitting), a leaky feature (too good), and healthy runs that must yield no finding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification, make_regression
from torch.nn import functional as F

import cleanfit as cf
from cleanfit.training.history import History


def _classification(n=1200, informative=8, flip=0.01, seed=0):
    X, y = make_classification(n_samples=n, n_features=20, n_informative=informative, flip_y=flip, random_state=seed)
    return ((X - X.mean(0)) / X.std(0)).astype("float32"), y.astype("int64")


def _regression():
    X, y = make_regression(n_samples=800, n_features=10, noise=10, random_state=0)
    return X.astype("float32"), ((y - y.mean()) / y.std()).astype("float32")[:, None]


def _run(X, y, *, lr, opt="adamw", hidden=32, epochs=12, n_train=None, batch=32, loss=F.cross_entropy, out=2,
         metrics=None):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                                torch.nn.ReLU(), torch.nn.Linear(hidden, out))
    optimizer = (torch.optim.AdamW(model.parameters(), lr=lr) if opt == "adamw"
                 else torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9 if opt == "sgdm" else 0.0))
    n = n_train or int(0.7 * len(X))
    trainer = cf.Trainer(model, optimizer, loss=loss, metrics=metrics, progress=False, device="cpu")
    try:
        trainer.fit(cf.Batches((X[:n], y[:n]), batch), cf.Batches((X[n:], y[n:]), 256, shuffle=False), epochs=epochs)
    except cf.TrainingError:
        pass  # a diverged run stops; its History keeps what happened
    return trainer.history_


def _checks(history):
    return [f.check for f in history.diagnose()]


@pytest.mark.parametrize("lr, opt", [(3e-3, "adamw"), (0.05, "sgd")])
def test_healthy_runs_have_no_finding(lr, opt):
    X, y = _classification()
    assert _checks(_run(X, y, lr=lr, opt=opt, epochs=10, metrics=["accuracy"])) == []


def test_healthy_regression_has_no_finding():
    X, y = _regression()
    assert _checks(_run(X, y, lr=0.05, opt="sgdm", loss=F.mse_loss, out=1, epochs=8)) == []


def test_too_high_learning_rate_diverges_to_inf():
    X, y = _regression()
    history = _run(X, y, lr=2.0, opt="sgd", loss=F.mse_loss, out=1)
    (finding,) = history.diagnose()
    assert finding.check == "diverging" and finding.severity == "critical"
    assert finding.details["epoch"] == 1 and finding.details["step"] >= 1
    assert "learning rate" in finding.message and "too high" in finding.message


def test_too_high_learning_rate_that_blows_up_and_recovers_is_unstable():
    X, y = _classification()
    (finding,) = _run(X, y, lr=1.0, opt="sgdm", epochs=10).diagnose()
    assert finding.check == "unstable" and "too high" in finding.message
    assert finding.details["peak_train_loss"] > 3 * finding.details["start_train_loss"]


def test_oscillating_regression_is_unstable_not_overfitting():
    X, y = _regression()
    assert _checks(_run(X, y, lr=0.5, opt="sgd", loss=F.mse_loss, out=1, epochs=15)) == ["unstable"]


def test_tiny_learning_rate_is_flat():
    X, y = _classification()
    (finding,) = _run(X, y, lr=1e-6).diagnose()
    assert finding.check == "flat" and finding.details["relative_drop"] < 0.01
    assert "too low" in finding.message


def test_big_model_on_a_tiny_dataset_overfits_and_says_when():
    X, y = _classification(n=300, informative=3, flip=0.2, seed=1)
    history = _run(X, y, lr=3e-3, hidden=256, n_train=60, batch=16, epochs=25)
    (finding,) = history.diagnose()
    assert finding.check == "overfitting"
    val = history.column("val_loss")
    turned = finding.details["turned_at_epoch"]
    assert val[turned - 1] == min(val) and val[-1] > 1.5 * min(val)
    assert f"epoch {turned}" in finding.message


def test_leaky_feature_is_too_good():
    X, y = _classification(n=900)
    leaky = np.concatenate([X, 2 * y[:, None].astype("float32") - 1], axis=1)  # the target, as a +-1 feature
    findings = _run(leaky, y, lr=3e-3, metrics=["accuracy"]).diagnose()
    assert [f.check for f in findings] == ["too-good"] and "leak" in findings[0].message


def _history(train, val=None, steps=()):
    val = val or [None] * len(train)
    return History([{"epoch": i + 1, "step": 10 * (i + 1), "train_loss": t, "val_loss": v}
                    for i, (t, v) in enumerate(zip(train, val))],
                   [{"step": 10 * (i + 1), "epoch": i + 1, "train_loss": s} for i, s in enumerate(steps)])


def test_val_far_below_train_late_is_too_good_but_not_early():
    assert _checks(_history([1.0, 0.8, 0.7, 0.65, 0.6, 0.6], [0.5, 0.4, 0.3, 0.2, 0.2, 0.2])) == ["too-good"]
    # dropout makes val lower early on; it catches up: healthy
    assert _checks(_history([1.0, 0.8, 0.5, 0.4, 0.35, 0.3], [0.4, 0.45, 0.4, 0.38, 0.34, 0.31])) == []


def test_growing_finite_loss_is_diverging_and_a_nan_anywhere_is_named():
    assert _checks(_history([1.0, 1.2, 1.6, 2.5, 4.0], steps=[1.0, 1.1])) == ["diverging"]
    finding = _history([1.0, 0.8], [1.0, float("nan")]).diagnose()[0]
    assert finding.check == "diverging" and finding.details["epoch"] == 2 and "nan" in finding.message
    assert _history([]).diagnose() == [] and _history([0.5]).diagnose() == []


def test_history_round_trips_and_equality_treats_nan_as_equal():
    h = _history([1.0, float("nan")], steps=[0.9])
    assert History.from_dict(h.to_dict()) == h
    assert History.from_dict(h.to_dict()).to_dict()["epochs"][0]["train_loss"] == 1.0
    assert "2 epochs" in repr(h) and len(h) == 2 and h.last["epoch"] == 2
    assert list(h.to_frame().columns[:3]) == ["epoch", "step", "train_loss"]


def _rows(train, val=None):
    val = val or [None] * len(train)
    return History([{"epoch": e, "train_loss": t, "val_loss": v} for e, (t, v) in enumerate(zip(train, val), start=1)])


def test_a_negative_loss_is_read_by_its_change_not_its_sign():
    """A Gaussian negative log-likelihood goes below zero as the model fits: a real run of it is healthy."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4)).astype("float32")
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0], dtype="float32") + 0.05 * rng.normal(size=600).astype("float32"))[:, None]

    def nll(out, target):  # mean and log-variance
        return (0.5 * (out[:, 1:] + (target - out[:, :1]) ** 2 / out[:, 1:].exp())).mean()

    history = _run(X, y, lr=3e-3, loss=nll, out=2, epochs=10)
    assert history.epochs[-1]["train_loss"] < 0 and history.epochs[-1]["val_loss"] < 0
    assert history.diagnose() == []
    assert _rows([-1.0, -1.02, -1.04, -1.05]).diagnose() == []  # improving slowly is not diverging
    assert [f.check for f in _rows([-2.0, -1.5, -1.0, -0.5]).diagnose()] == ["diverging"]
    overfit = _rows([-1.0, -2.0, -3.0, -4.0, -5.0], [-1.0, -2.0, -1.6, -1.2, -0.8]).diagnose()
    assert [(f.check, f.details["turned_at_epoch"]) for f in overfit] == [("overfitting", 2)]


def test_nan_findings_name_where_once_and_read_numpy_values():
    (finding,) = _rows([np.float32(1.0), np.float32("nan")]).diagnose()
    assert finding.check == "diverging" and "became nan at epoch 2:" in finding.message
    (finding,) = History([], [{"step": 7, "epoch": 1, "train_loss": float("inf")}]).diagnose()
    assert "became inf at step 7 (epoch 1):" in finding.message
    assert [f.check for f in _rows([np.float32(v) for v in (1.0, 1.5, 2.0)]).diagnose()] == ["diverging"]
