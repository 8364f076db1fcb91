"""Models, losses, optimizers and scores for :mod:`cleanfit.pipeline.run`.

>>> import torch
>>> model = MLP(4, 3, hidden=[8], dropout=0.0)
>>> model(torch.zeros(2, 4)).shape
torch.Size([2, 3])
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cleanfit.errors import ConfigError
from cleanfit._util.columns import close_names
from cleanfit.pipeline.config import Config
from cleanfit.pipeline.dropout import GlobalBatchDropout
from cleanfit.training.metrics import METRICS


class MLP(nn.Sequential):
    """Linear -> ReLU -> Dropout for each hidden width, then a linear layer to ``n_outputs``.

    The dropout is :class:`~cleanfit.pipeline.dropout.GlobalBatchDropout`: its masks are drawn per global
    batch from ``(seed, forward counter, layer)``, so 1 and N torchrun processes train the same run;
    ``layout = (train_rows, global_batch)`` is how the pipeline cuts each epoch (see that class).

    >>> MLP(4, 2, hidden=[8], dropout=0.1, seed=7)[2]
    GlobalBatchDropout(p=0.1, seed=7, layer=0, layout=None)
    """

    def __init__(self, n_features: int, n_outputs: int, hidden: Sequence[int] = (128, 64), dropout: float = 0.1,
                 *, seed: int = 0, layout: tuple[int, int] | None = None):
        layers: list[nn.Module] = []
        width = n_features
        for index, size in enumerate(hidden):
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout > 0:
                layers.append(GlobalBatchDropout(dropout, seed=seed, layer=index, layout=layout))
            width = size
        layers.append(nn.Linear(width, n_outputs))
        super().__init__(*layers)


def build_model(config: Config, n_features: int, n_outputs: int, base_dir: Path | None = None, *,
                train_rows: int | None = None) -> nn.Module:
    """The ``[model]`` section's network: the MLP, or the user's ``module = "pkg.mod:factory"``.

    ``train_rows`` (the pipeline's train rows) with ``train.batch_size`` (the global batch) tells the MLP's
    dropout how each epoch is cut, so its masks are the same on 1 or N processes. A user's factory model is
    built as it is: its own dropout layers (``nn.Dropout``) draw a mask per process.
    """
    spec = config.model.module
    if spec is None:
        _check_fits_in_memory(n_features, n_outputs, list(config.model.hidden))
        layout = None if not train_rows else (int(train_rows), int(config.train.batch_size))
        return MLP(n_features, n_outputs, config.model.hidden, config.model.dropout, seed=config.train.seed,
                   layout=layout)
    factory = load_factory(spec, base_dir)
    try:
        model = factory(n_features, n_outputs)
    except Exception as exc:
        raise ConfigError(
            f"model.module = {spec!r}: factory({n_features}, {n_outputs}) raised "
            f"{type(exc).__name__}: {exc}; it must build an nn.Module from (n_features, n_outputs)"
        ) from None
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model.module = {spec!r} returned {type(model).__name__}, not a torch.nn.Module; "
            f"return the model from factory(n_features, n_outputs)"
        )
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(f"model.module = {spec!r} built a {type(model).__name__} with no trainable parameters")
    _check_output_shape(model, spec, n_features, n_outputs)
    return model


def _check_fits_in_memory(n_features: int, n_outputs: int, hidden: list[int]) -> None:
    """A ConfigError, before anything is allocated, for an MLP whose training would not fit in memory.

    Training holds the weights, their gradients and the optimizer's two moments (AdamW): about four
    times the float32 weights. With ``hidden = [100000, 100000, 100000]`` that is 80 GB of weights alone.
    """
    sizes = [n_features, *hidden, n_outputs]
    parameters = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    weights = 4 * parameters  # float32
    memory = _physical_memory()
    if memory is not None and 4 * weights > memory:
        raise ConfigError(
            f"model.hidden = {hidden}: the MLP has {parameters:,} parameters ({weights:,} bytes of float32 "
            f"weights; training needs about {4 * weights:,} bytes with gradients and optimizer state), more than "
            f"this machine's {memory:,} bytes of memory; use smaller hidden layers, e.g. hidden = [128, 64]"
        )


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not on every platform
        return None


def _check_output_shape(model: nn.Module, spec: str, n_features: int, n_outputs: int) -> None:
    """One forward pass on two zero rows: the outputs must be ``(rows, n_outputs)`` (or ``(rows,)`` for one)."""
    state = torch.random.get_rng_state()
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            outputs = model(torch.zeros(2, n_features))
    except Exception as exc:
        raise ConfigError(
            f"model.module = {spec!r}: the model fails on a batch of shape (2, {n_features}): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    finally:
        model.train(was_training)
        torch.random.set_rng_state(state)
    shape = tuple(getattr(outputs, "shape", ()))
    if shape not in ((2, n_outputs),) + (((2,),) if n_outputs == 1 else ()):
        raise ConfigError(
            f"model.module = {spec!r}: the model maps a batch of shape (2, {n_features}) to "
            f"{shape or type(outputs).__name__}; "
            f"it must give (2, {n_outputs}): one output per class (or 1 for regression)"
        )


def load_factory(spec: str, base_dir: Path | None = None) -> Callable[[int, int], Any]:
    """Import ``"pkg.mod:factory"``; the config's folder is searched too (for a ``models.py`` beside it)."""
    module_name, _, attr = spec.partition(":")
    added = base_dir is not None and str(base_dir) not in sys.path
    if added:
        sys.path.insert(0, str(base_dir))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"model.module = {spec!r}: cannot import {module_name!r} ({exc}); put {module_name}.py "
            f"beside the config or install the package"
        ) from None
    except Exception as exc:
        raise ConfigError(f"model.module = {spec!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}") from None
    finally:
        if added:
            sys.path.remove(str(base_dir))
    factory = getattr(module, attr, None)
    if not callable(factory):
        names = [n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")]
        close = close_names(attr, names, n=1)
        hint = f"did you mean '{module_name}:{close[0]}'?" if close else "name a function factory(n_features, n_outputs)"
        raise ConfigError(f"model.module = {spec!r}: {module_name} has no callable {attr!r}; {hint}")
    return factory


def make_optimizer(config: Config, parameters: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """The ``[train]`` optimizer: ``adamw``, ``adam`` or ``sgd`` (momentum 0.9)."""
    train = config.train
    if train.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=train.lr, weight_decay=train.weight_decay)
    if train.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=train.lr, weight_decay=train.weight_decay)
    return torch.optim.SGD(parameters, lr=train.lr, momentum=0.9, weight_decay=train.weight_decay)


def classification_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of logits against class codes."""
    return nn.functional.cross_entropy(outputs.float(), targets.long())


def regression_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error of a one-column output against (standardised) targets."""
    return nn.functional.mse_loss(outputs.float().reshape(-1), targets.float().reshape(-1))


METRIC_NAMES = {"classification": ("accuracy", "auc"), "regression": ("rmse", "r2")}


class TaskMetric:
    """A :mod:`cleanfit.training.metrics` function on outputs and targets put back in the target's units.

    Regression targets are standardised with the train rows' ``(mean, std)`` for training; the
    metric undoes that so RMSE reads in the target's own units. A metric that is undefined for the
    rows at hand (AUC with a class missing) is NaN rather than an error.

    >>> import torch
    >>> TaskMetric("rmse", mean=10.0, std=2.0)(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0]))
    1.4142135623730951
    """

    def __init__(self, name: str, mean: float = 0.0, std: float = 1.0) -> None:
        self.name, self.mean, self.std = name, mean, std

    def __call__(self, outputs: Any, targets: Any) -> float:
        if self.name in ("rmse", "r2"):
            outputs = outputs.float().reshape(-1) * self.std + self.mean
            targets = targets.float().reshape(-1) * self.std + self.mean
        try:
            return float(METRICS[self.name](outputs, targets))
        except ValueError:
            return math.nan


def task_metrics(task: str, target_scale: tuple[float, float] = (0.0, 1.0)) -> dict[str, TaskMetric]:
    """The metrics of a task, for ``Trainer(metrics=...)`` and the final scores."""
    mean, std = target_scale
    return {name: TaskMetric(name, mean, std) for name in METRIC_NAMES[task]}


__all__ = [
    "MLP", "build_model", "load_factory", "make_optimizer", "classification_loss", "regression_loss",
    "TaskMetric", "task_metrics",
]
