"""cleanfit: train PyTorch models without fooling yourself.

    import cleanfit as cf

Every public name is re-exported here. Submodules are imported on first use, so ``import cleanfit``
stays cheap (the command line does not pay for MLflow or matplotlib unless a command needs them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # errors and findings
    "CleanfitError": "errors",
    "DataError": "errors",
    "ConfigError": "errors",
    "CheckpointError": "errors",
    "TrainingError": "errors",
    "Finding": "findings",
    # reproducibility
    "seed_everything": "seeding",
    "rng_state": "seeding",
    "set_rng_state": "seeding",
    "example_rng": "seeding",
    # data
    "Batches": "data.batches",
    "pick_device": "data.devices",
    "to_device": "data.devices",
    "split": "data.splits",
    "Splits": "data.splits",
    # audit
    "audit": "auditing",
    "AuditReport": "auditing",
    # training
    "Trainer": "training",
    "History": "training",
    "EarlyStopping": "training",
    "warmup_cosine": "training",
    "warmup_linear": "training",
    "constant": "training",
    # tracking and comparison
    "Tracker": "tracking",
    "MLflowTracker": "tracking",
    "NullTracker": "tracking",
    "compare": "comparison",
    # using a trained run
    "load_run": "pipeline.predict",
    "LoadedRun": "pipeline.predict",
    "Comparison": "comparison",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cleanfit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"cleanfit.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from cleanfit.auditing import AuditReport, audit
    from cleanfit.data.batches import Batches
    from cleanfit.comparison.compare import Comparison, compare
    from cleanfit.data.devices import pick_device, to_device
    from cleanfit.errors import CheckpointError, CleanfitError, ConfigError, DataError, TrainingError
    from cleanfit.findings import Finding
    from cleanfit.pipeline.predict import LoadedRun, load_run
    from cleanfit.seeding import example_rng, rng_state, seed_everything, set_rng_state
    from cleanfit.data.splits import Splits, split
    from cleanfit.tracking import MLflowTracker, NullTracker, Tracker
    from cleanfit.training import EarlyStopping, History, Trainer, constant, warmup_cosine, warmup_linear
