"""Learning-rate schedules: their shapes, their arguments, and how the Trainer steps them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

import cleanfit as cf
from cleanfit.training.schedules import make_scheduler


def _optimizer(lr=1.0):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def _lrs(schedule, total, lr=1.0):
    opt = _optimizer(lr)
    scheduler = make_scheduler(schedule, opt, total)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if scheduler is not None:
            scheduler.step()
    return out


def test_warmup_then_cosine_to_the_floor():
    lrs = _lrs(cf.warmup_cosine(warmup=4, min_lr_ratio=0.1), 100, lr=2.0)
    assert lrs[:4] == pytest.approx([2.0 * (s + 1) / 5 for s in range(4)])
    assert lrs[4] == pytest.approx(2.0)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))  # decays monotonically after warmup
    assert lrs[-1] == pytest.approx(0.2 + 1.8 * 0.5 * (1 + math.cos(math.pi * 95 / 96)))
    assert min(lrs) >= 0.2


def test_warmup_linear_and_constant():
    lrs = _lrs(cf.warmup_linear(warmup=0.1), 20)
    assert lrs[:2] == pytest.approx([1 / 3, 2 / 3]) and lrs[2] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(1 - 17 / 18)
    assert _lrs(cf.constant(), 5) == [1.0] * 5
    assert _lrs(None, 3) == [1.0] * 3
    assert _lrs("warmup_cosine", 40)[0] == pytest.approx(1 / 3)  # 5% of 40 = 2 warmup steps


@settings(max_examples=50, deadline=None)
@given(total=st.integers(1, 500), warmup=st.one_of(st.floats(0, 1), st.integers(0, 50)),
       ratio=st.floats(0, 1), kind=st.sampled_from(["cosine", "linear"]))
def test_factors_stay_between_the_floor_and_one(total, warmup, ratio, kind):
    schedule = cf.warmup_cosine(warmup, ratio) if kind == "cosine" else cf.warmup_linear(warmup, ratio)
    factors = [schedule.factor(s, total) for s in range(total)]
    assert all(0 < f <= 1 + 1e-12 for f in factors)
    after = factors[schedule.warmup_steps(total):]
    assert all(f >= ratio - 1e-12 for f in after)
    assert all(a >= b - 1e-12 for a, b in zip(after, after[1:]))


@pytest.mark.parametrize("bad", [dict(warmup=1.5), dict(warmup=-1), dict(warmup="5%"), dict(min_lr_ratio=2.0)])
def test_bad_arguments_say_what_to_pass(bad):
    with pytest.raises(cf.ConfigError, match="warmup|min_lr_ratio"):
        cf.warmup_cosine(**bad)


def test_torch_scheduler_factory_and_errors():
    lrs = _lrs(lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5), 6)
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    with pytest.raises(cf.ConfigError, match="factory returned int"):
        make_scheduler(lambda opt: 3, _optimizer(), 10)
    with pytest.raises(cf.ConfigError, match="not a schedule"):
        make_scheduler("cosine", _optimizer(), 10)


def test_trainer_steps_the_schedule_once_per_optimizer_step():
    X = np.random.default_rng(0).normal(size=(40, 2)).astype("float32")
    y = (X[:, 0] > 0).astype("int64")
    model = torch.nn.Linear(2, 2)
    seen = []
    trainer = cf.Trainer(model, torch.optim.SGD(model.parameters(), lr=1.0), loss=F.cross_entropy, accumulate=2,
                         schedule=cf.warmup_cosine(warmup=2), progress=False)
    trainer._after_step = lambda t, s: seen.append(t._run.last_lr)
    trainer.fit(cf.Batches((X, y), 4), epochs=3)  # 10 batches -> 5 steps per epoch, 15 in all
    schedule = cf.warmup_cosine(warmup=2)
    assert seen == pytest.approx([schedule.factor(s, 15) for s in range(15)])
    assert trainer.total_steps_ == 15 and trainer.scheduler_.last_epoch == 15


def test_a_torch_factory_may_take_the_total_steps_and_a_plateau_scheduler_is_refused():
    lrs = _lrs(lambda opt, total_steps: torch.optim.lr_scheduler.OneCycleLR(opt, 1.0, total_steps=total_steps), 10)
    assert len(lrs) == 10 and max(lrs) == pytest.approx(1.0, rel=0.05)  # stepped exactly total times, no error
    assert _lrs(lambda opt: torch.optim.lr_scheduler.StepLR(opt, 2, 0.5), 4) == [1.0, 1.0, 0.5, 0.5]
    with pytest.raises(TypeError):  # a class is called with the optimizer only, never given the total by accident
        make_scheduler(torch.optim.lr_scheduler.StepLR, _optimizer(), 10)
    with pytest.raises(cf.ConfigError, match="ReduceLROnPlateau, which steps on a metric"):
        make_scheduler(lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt), _optimizer(), 10)
    opt = _optimizer()
    with pytest.raises(cf.ConfigError, match="ReduceLROnPlateau, which steps on a metric"):
        make_scheduler(torch.optim.lr_scheduler.ReduceLROnPlateau(opt), opt, 10)


def test_a_warmup_longer_than_the_run_is_refused():
    with pytest.raises(cf.ConfigError, match=r"warmup=500 steps, but the run has only 40 optimizer steps"):
        make_scheduler(cf.warmup_cosine(warmup=500), _optimizer(), 40)
    assert make_scheduler(cf.warmup_cosine(warmup=39), _optimizer(), 40) is not None
    assert make_scheduler(cf.warmup_cosine(warmup=1.0), _optimizer(), 40) is not None  # a fraction is the user's plan
