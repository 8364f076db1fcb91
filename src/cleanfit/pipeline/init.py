"""``cleanfit init``: a starter ``cleanfit.toml`` for a table, with every setting, its default and what it does.

:func:`starter_config` reads the table, infers the task (the one task rule,
:func:`cleanfit.data.tables.infer_task`) and the split, lists the feature columns it found, and puts the text
columns training should not use (dates stored as text, identifier-like text) in ``drop`` with the reason.
Every other setting is written with its default value, so a newcomer sees all the keys; the file trains
as written.

>>> import pandas as pd
>>> frame = pd.DataFrame({"x": range(40), "y": [0, 1] * 20})
>>> text = starter_config(frame, "data.csv", target="y")
>>> 'task = "classification"' in text, 'by = "stratify"' in text
(True, True)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from cleanfit._util.columns import did_you_mean
from cleanfit.data.tables import infer_task, text_column_problem
from cleanfit.errors import DataError
from cleanfit.pipeline.config import Config

__all__ = ["starter_config", "text_columns_to_drop", "COMMENTS"]

# One line per setting; a setting without a line here is still written, with its default.
COMMENTS: dict[str, str] = {
    "data.path": "the table (CSV or Parquet), relative to this file",
    "data.target": "the column to predict",
    "data.time": "a time column: the split becomes by time (train < val < test)",
    "data.group": "an entity column (patient, user): no entity in two parts",
    "data.drop": "columns the model must not see",
    "data.task": '"auto", "classification" or "regression"',
    "data.missing_target": '"error" or "drop": what to do with rows whose target is missing',
    "split.by": '"auto", "random", "stratify", "group" or "time"',
    "split.test": "share of rows for the test part (scored once, at the end)",
    "split.val": "share of rows for validation (early stopping, the loss curve)",
    "split.gap": "rows dropped between parts (time series)",
    "split.seed": "the split's seed",
    "preprocess.impute": '"median", "mean", "most_frequent" or "none" (fit on train rows only)',
    "preprocess.scale": '"standard", "minmax", "robust" or "none"',
    "preprocess.categorical": '"onehot", "ordinal" or "none" (text columns)',
    "model.kind": "the built-in network: an MLP",
    "model.hidden": "the MLP's hidden layer widths",
    "model.dropout": "dropout after each hidden layer",
    "model.module": 'your own network: "package.module:factory", factory(n_features, n_outputs)',
    "train.epochs": "passes over the train rows",
    "train.batch_size": "the global batch: under torchrun it is shared out over the processes",
    "train.accumulate": "batches per optimizer step",
    "train.optimizer": '"adamw", "adam" or "sgd"',
    "train.lr": "peak learning rate",
    "train.weight_decay": "weight decay",
    "train.schedule": '"warmup_cosine", "warmup_linear" or "constant"',
    "train.warmup": "share of the steps spent warming up",
    "train.precision": '"auto", "fp32", "bf16" or "fp16"',
    "train.clip_grad": "gradient norm clipping (0 = off)",
    "train.seed": "seeds weights, dropout and the batch order",
    "train.early_stopping": "patience in epochs (0 = off)",
    "checkpoint.dir": "default: <out>/checkpoints",
    "checkpoint.every": "steps between checkpoints (0 = each epoch)",
    "checkpoint.keep_last": "checkpoints kept (and the best)",
    "tracking.backend": '"mlflow" or "none"',
    "tracking.experiment": "default: the data file's name",
    "tracking.uri": "default: MLflow's own (sqlite:///mlflow.db here) or MLFLOW_TRACKING_URI",
    "audit.fail_on": '"critical", "warning" or "never": which findings stop training',
    "audit.memory": '"auto", "2GB" or bytes: a Parquet table larger than this is audited out of core',
}


def text_columns_to_drop(frame: pd.DataFrame, exclude: Sequence[str] = ()) -> dict[str, str]:
    """Text columns ``cleanfit train`` would refuse to one-hot encode, with the reason: the one rule of
    :func:`cleanfit.data.tables.text_column_problem` (dates stored as text, identifier-like text, too many
    levels), so the starter config trains as written.

    >>> frame = pd.DataFrame({"id": [f"u{i}" for i in range(50)], "day": ["2024-01-02"] * 50, "c": ["a", "b"] * 25})
    >>> sorted(text_columns_to_drop(frame))
    ['day', 'id']
    """
    reasons = {
        "date": "dates stored as text: use it as data.time, or leave it dropped",
        "identifier": "identifier-like text ({distinct:,} distinct values in {rows:,} rows)",
        "levels": "text with {distinct:,} levels: too many to one-hot encode",
    }
    found: dict[str, str] = {}
    for name in frame.columns:
        if name in exclude:
            continue
        problem = text_column_problem(frame[name], name)
        if problem is not None:
            rows = int(frame[name].notna().sum())
            found[name] = reasons[problem.kind].format(distinct=problem.distinct, rows=rows)
    return found


def starter_config(frame: pd.DataFrame, data_path: str, *, target: str, time: str | None = None,
                   group: str | None = None) -> str:
    """The text of a starter config for ``frame`` (read from ``data_path``, as written into the file)."""
    for option, name in (("--target", target), ("--time", time), ("--group", group)):
        if name is not None and name not in frame.columns:
            hint = did_you_mean(name, frame.columns)
            raise DataError(f"{option} {name!r}: no such column in {data_path}{'; ' + hint if hint else ''}")
    task = infer_task(frame[target])
    by = "time" if time else "group" if group else "stratify" if task == "classification" else "random"
    special = [c for c in (target, time, group) if c is not None]
    drop = text_columns_to_drop(frame, special)
    features = [c for c in frame.columns if c not in special and c not in drop]
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(frame[c])]
    text = [c for c in features if c not in numeric]
    inferred = {
        "data.path": data_path, "data.target": target, "data.time": time, "data.group": group,
        "data.drop": list(drop), "data.task": task, "split.by": by,
    }
    lines = [
        f"# cleanfit.toml for {data_path}: written by `cleanfit init`; every setting, with its default.",
        f"# Inferred: task {task} (target {target!r}, {frame[target].nunique()} distinct values), split by {by};",
        f"# {len(frame)} rows, {len(features)} feature columns: {len(numeric)} numeric {_names(numeric)}, "
        f"{len(text)} text {_names(text)}.",
        "# Train it with: cleanfit train cleanfit.toml",
    ]
    defaults = _defaults(data_path, target)
    for section, fields in defaults.items():
        lines += ["", f"[{section}]"]
        for key, default in fields.items():
            dotted = f"{section}.{key}"
            value = inferred.get(dotted, default)
            comment = COMMENTS.get(dotted, "")
            if dotted == "data.drop" and drop:
                lines.append(f"{'drop = [':<36}# {comment}")
                lines += [f"    {json.dumps(c)},  # {reason}" for c, reason in drop.items()]
                lines.append("]")
                continue
            setting = f"{key} = {_toml(value)}" if value is not None else f"# {key} = ..."
            lines.append(f"{setting:<36}# {comment}" if comment else setting)
    return "\n".join(lines) + "\n"


def _defaults(data_path: str, target: str) -> dict[str, dict[str, Any]]:
    """Every section and setting with its default (``None`` where the default is "not set")."""
    config = Config.model_validate({"data": {"path": data_path, "target": target}})
    return config.model_dump(mode="json")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value == int(value) and abs(value) < 1e15:
        return repr(value)
    return json.dumps(value)


def _names(names: Sequence[str], limit: int = 6) -> str:
    if not names:
        return ""
    shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
    return f"({shown})"

