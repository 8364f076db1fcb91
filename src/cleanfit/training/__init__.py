"""Training: the Trainer and everything around its loop.

``Trainer`` (trainer.py) runs the loop; ``TrainState`` (state.py) is what a checkpoint holds;
``Precision`` (precision.py), the schedules (schedules.py), ``EarlyStopping`` (early_stopping.py),
``History`` and its diagnosis (history.py, diagnosis.py), the DDP plumbing (distributed.py) and
the checkpoint files (checkpoints.py) are the named pieces it calls.
"""

from __future__ import annotations

from cleanfit.training.early_stopping import EarlyStopping
from cleanfit.training.history import History
from cleanfit.training.schedules import Schedule, constant, warmup_cosine, warmup_linear
from cleanfit.training.trainer import Trainer

__all__ = ["Trainer", "History", "EarlyStopping", "Schedule", "warmup_cosine", "warmup_linear", "constant"]
