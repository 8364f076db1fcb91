"""How the diagnosis words its hints: for the place the user is, and never for what the run already does.

A finding's advice names the setting to change. From Python that is a Trainer argument
(``clip_grad=1.0``); from ``cleanfit train`` it is a config key (``train.clip_grad = 1.0``). And a run
that already clips its gradients, warms up or stops early is not told to add it.

>>> Advice().clip()
'clip gradients (clip_grad=1.0)'
>>> Advice(style="config").clip()
'clip gradients (train.clip_grad = 1.0)'
>>> Advice(style="config", clip_grad=1.0).clip() is None
True
>>> Advice.for_config_train(early_stopping=5, clip_grad=0.0, warmup=0.05, lr=1e-3).stop_early(7)
'early stopping (patience 5) already kept the weights of the best epoch'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Advice"]


@dataclass(frozen=True)
class Advice:
    """What the user can change, and what the run already does (None: not known).

    ``style``: ``"python"`` (Trainer arguments, the default) or ``"config"`` (``cleanfit train`` keys).
    ``early_stopping``: the patience in effect (0: off); ``clip_grad``: the clipping norm (0: off);
    ``warmup``: the warmup fraction (0: none); ``lr``: the learning rate the run used.
    """

    style: Literal["python", "config"] = "python"
    early_stopping: int | None = None
    clip_grad: float | None = None
    warmup: float | None = None
    lr: float | None = None

    @classmethod
    def for_config_train(cls, *, early_stopping: int, clip_grad: float, warmup: float, lr: float) -> Advice:
        """The advice for a ``cleanfit train`` run with these ``[train]`` settings."""
        return cls("config", early_stopping=early_stopping, clip_grad=clip_grad, warmup=warmup, lr=lr)

    @property
    def _config(self) -> bool:
        return self.style == "config"

    def lower_lr(self) -> str:
        """'lower it (e.g. 10x)' or, for a config with a known lr, the key and a value to try."""
        if self._config and self.lr:
            return f"lower it (e.g. 10x: train.lr = {self.lr / 10:.3g})"
        return "lower it (e.g. 10x)"

    def raise_lr(self) -> str:
        if self._config and self.lr:
            return f"try 10x higher: train.lr = {self.lr * 10:.3g}"
        return "try 10x higher"

    def clip(self) -> str | None:
        """Clipping advice, or None when the run already clips."""
        if self.clip_grad:
            return None
        return "clip gradients (train.clip_grad = 1.0)" if self._config else "clip gradients (clip_grad=1.0)"

    def warm_up(self) -> str | None:
        """Warmup advice, or None when the run already warms up."""
        if self.warmup:
            return None
        return "add warmup (train.warmup = 0.05)" if self._config else "add warmup (schedule=cf.warmup_cosine())"

    def larger_batch(self) -> str:
        return "use a larger batch (train.accumulate = 4)" if self._config else "use a larger batch (accumulate=k)"

    def calm_down(self) -> str:
        """The advice for a loss that diverged, blew up or swings: a comma list of what the run does not do yet."""
        return _either([self.lower_lr(), self.warm_up(), self.clip()])

    def stop_early(self, epoch: int) -> str:
        """How to stop at ``epoch``; a run that already stops early is told what early stopping did."""
        if self.early_stopping:
            return f"early stopping (patience {self.early_stopping}) already kept the weights of the best epoch"
        if self._config:
            return f"stop around epoch {epoch} (train.early_stopping = 3 keeps the best epoch's weights)"
        return f"stop around epoch {epoch} (EarlyStopping(patience=3, restore_best=True))"

    def regularise(self) -> str:
        if self._config:
            return "add regularisation (train.weight_decay, model.dropout), use a smaller model (model.hidden)"
        return "add regularisation (weight decay, dropout), use a smaller model"

    def audit(self) -> str:
        if self._config:
            return "look at the audit in the run's report (or run `cleanfit audit DATA --target COL --impact`)"
        return "run cf.audit(...)"


def _either(parts: list[str | None]) -> str:
    """``a, b or c`` of the parts that are not None."""
    kept = [p for p in parts if p]
    return kept[0] if len(kept) == 1 else ", ".join(kept[:-1]) + " or " + kept[-1]
