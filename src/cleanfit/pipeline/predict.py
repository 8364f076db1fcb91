"""Predictions of a trained run for new rows: :func:`load_run` and what ``cleanfit predict`` does.

A run folder written by ``cleanfit train`` holds ``model.json`` (schema, fitted preprocessing, target;
see :mod:`cleanfit.pipeline.saved`) and ``model.pt`` (the network's weights, loaded with
``weights_only=True``). Nothing in it runs code when it is loaded.

    run = cf.load_run("cleanfit-out/patients")
    run.predict(new_rows)          # the target's own values, one per row, in row order
    run.predict_proba(new_rows)    # classification: (rows, classes), columns in run.classes_ order
    run.predictions(new_rows)      # a DataFrame: "prediction", and "proba_<label>" per class

New rows are checked by name and type first: a feature column that is missing is a
:class:`~cleanfit.errors.DataError` naming it (with the closest extra column, for a rename), text in a
numeric column is one naming the column, the value and its row; extra columns are ignored and listed in
``run.ignored_``. A category never seen in training encodes as training did (one-hot: all zeros).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cleanfit._util.columns import did_you_mean, shown
from cleanfit._util.files import write_atomic
from cleanfit.data.tables import read_table
from cleanfit.errors import ConfigError, DataError
from cleanfit.pipeline.model import MLP, load_factory
from cleanfit.pipeline.features import text_values
from cleanfit.pipeline.saved import FORMAT, SPEC_FILE, WEIGHTS_FILE, Preprocessing

__all__ = ["LoadedRun", "load_run", "load_files", "predict_file", "PROBA_PREFIX"]

PROBA_PREFIX = "proba_"  # one column per class: proba_<label>
_CHUNK = 65536  # rows per forward pass


class LoadedRun:
    """A trained run, ready to predict. Build it with :func:`load_run`."""

    def __init__(self, spec: dict[str, Any], model: torch.nn.Module, where: str = "run") -> None:
        self.spec_ = spec
        self.task_: str = spec["task"]
        self.target_: str = spec["target"]["name"]
        self.classes_: list[Any] | None = spec["target"]["classes"]
        self.features_: list[str] = [f["name"] for f in spec["features"]]
        self.model_ = model.eval()
        self.where_ = where
        self.ignored_: list[str] = []
        self._preprocessing = Preprocessing(spec["preprocess"])
        self.kinds_: dict[str, str] = {f["name"]: f["kind"] for f in spec["features"]}

    def __repr__(self) -> str:
        return f"LoadedRun({self.where_!r}, task={self.task_!r}, target={self.target_!r}, features={len(self.features_)})"

    @property
    def proba_columns(self) -> list[str]:
        """The names of the probability columns (classification), in ``classes_`` order."""
        return proba_names(self.classes_ or [])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """One prediction per row, in the target's own values (labels, or numbers in its units)."""
        outputs = self._outputs(frame)
        if self.task_ == "classification":
            return self._labels()[outputs.argmax(axis=1)]
        return outputs.reshape(-1) * self.spec_["target"]["std"] + self.spec_["target"]["mean"]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Classification: each class's probability (softmax of the network's outputs), ``(rows, classes)``."""
        if self.task_ != "classification":
            raise DataError(f"{self.where_}: predict_proba needs a classification run; this run is {self.task_}")
        logits = torch.from_numpy(self._outputs(frame))
        return torch.softmax(logits, dim=1).numpy()

    def predictions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``prediction`` and, for classification, ``proba_<label>`` per class; the rows and index of ``frame``."""
        outputs = self._outputs(frame)
        result = pd.DataFrame(index=frame.index)
        if self.task_ == "classification":
            proba = torch.softmax(torch.from_numpy(outputs), dim=1).numpy()
            result["prediction"] = self._labels()[outputs.argmax(axis=1)]
            for column, values in zip(self.proba_columns, proba.T):
                result[column] = values
        else:
            target = self.spec_["target"]
            result["prediction"] = outputs.reshape(-1) * target["std"] + target["mean"]
        return result

    def _labels(self) -> np.ndarray:
        """The class labels as one array (ints, text, booleans: their own dtype)."""
        return np.asarray(self.classes_)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The network's input for ``frame``: checked, preprocessed as in training, float32."""
        return np.ascontiguousarray(self._preprocessing.transform(self._features(frame)), dtype=np.float32)

    def _outputs(self, frame: pd.DataFrame) -> np.ndarray:
        X = torch.from_numpy(self.transform(frame))
        parts = []
        with torch.no_grad():
            for start in range(0, len(X), _CHUNK):
                parts.append(self.model_(X[start:start + _CHUNK]).float().reshape(len(X[start:start + _CHUNK]), -1))
        return torch.cat(parts).double().numpy()

    def _features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The feature columns of ``frame`` as training saw them; a mistake is a DataError naming the column."""
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"{self.where_}: predict needs a pandas DataFrame with the columns {shown(self.features_, 8)}")
        if len(frame) == 0:
            raise DataError(f"{self.where_}: no rows to predict; the table is empty")
        columns = [str(c) for c in frame.columns]
        missing = [c for c in self.features_ if c not in columns]
        self.ignored_ = [c for c in columns if c not in self.kinds_]
        if missing:
            hint = did_you_mean(missing[0], self.ignored_)
            raise DataError(
                f"{self.where_}: the table lacks column(s) {shown(missing, 8)} the model was trained on"
                f"{'; ' + hint + ' (rename it)' if hint else ''}; add them (other columns are ignored)"
            )
        frame = frame.set_axis(columns, axis=1)
        features = pd.DataFrame(index=frame.index)
        for name in self.features_:
            column = frame[name]
            features[name] = _numbers(column, name, self.where_) if self.kinds_[name] == "numeric" else text_values(column)
        return features


def _numbers(column: pd.Series, name: str, where: str) -> np.ndarray:
    """A numeric feature as float64 (missing values stay NaN and are imputed); text in it is a DataError."""
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_complex_dtype(column):
        converted = pd.to_numeric(column, errors="coerce")
        bad = column.notna() & converted.isna()
        if bad.any():
            position = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{where}: column {name!r} was numeric in training but holds text such as "
                f"{column.iloc[position]!r} (row {position + 1}); fix those values or leave them empty "
                f"(missing values are imputed as in training)"
            )
        column = converted
    values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isinf(values).any():
        raise DataError(f"{where}: column {name!r} holds infinite values; replace them or leave them empty")
    return values


def load_run(run_dir: str | Path) -> LoadedRun:
    """The model a ``cleanfit train`` run folder holds, rebuilt without running code from the folder.

    Raises :class:`~cleanfit.errors.DataError` when the folder is not a finished run.
    """
    run_dir = Path(run_dir)
    return load_files(run_dir / SPEC_FILE, run_dir / WEIGHTS_FILE, where=str(run_dir))


def load_files(spec_path: str | Path, weights_path: str | Path, *, where: str) -> LoadedRun:
    """:func:`load_run` from the two files themselves (an MLflow model holds copies of them)."""
    try:
        spec = json.loads(Path(spec_path).read_text())
    except FileNotFoundError:
        raise DataError(
            f"{where}: no {SPEC_FILE} there; pass the --out folder of a finished `cleanfit train` run"
        ) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{where}: cannot read {SPEC_FILE} ({exc}); train the run again") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise DataError(f"{where}: {SPEC_FILE} has format {spec.get('format') if isinstance(spec, dict) else None!r}, "
                        f"this cleanfit reads format {FORMAT}; train the run again with this version")
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{where}: no {WEIGHTS_FILE} there; the run did not finish: train it again") from None
    except Exception as exc:
        raise DataError(f"{where}: cannot load {WEIGHTS_FILE} ({type(exc).__name__}: {exc}); train the run again") from None
    model = _network(spec["network"], where)
    model.load_state_dict(state)
    return LoadedRun(spec, model, where)


def _network(network: dict[str, Any], where: str) -> torch.nn.Module:
    if network["kind"] == "mlp":
        return MLP(network["n_features"], network["n_outputs"], network["hidden"], network["dropout"])
    base = Path(network["base_dir"]) if network.get("base_dir") else None
    try:
        factory = load_factory(network["module"], base)
    except ConfigError as exc:
        raise DataError(f"{where}: the run's model comes from {network['module']!r}, which cannot be loaded here: {exc}") from None
    return factory(network["n_features"], network["n_outputs"])


_PARQUET = (".parquet", ".pq")


def predict_file(run_dir: str | Path, data: str | Path, out: str | Path | None = None) -> tuple[pd.DataFrame, list[str]]:
    """``cleanfit predict``: read ``data``, predict every row, write ``out`` (CSV, or Parquet by its suffix).

    Returns the predictions and the ignored extra columns. Every check runs before ``out`` is written, and
    ``out`` is written atomically: a failure leaves nothing behind.
    """
    run = load_run(run_dir)
    frame = read_table(data)
    run.where_ = f"{data}"
    table = run.predictions(frame)
    if out is not None:
        out = Path(out)
        if out.suffix.lower() in _PARQUET:
            buffer = io.BytesIO()
            table.to_parquet(buffer, index=False)
            write_atomic(out, buffer.getvalue())
        else:
            write_atomic(out, table.to_csv(index=False))
    return table, list(run.ignored_)


def out_format_ok(out: Path | None, option: str = "--out") -> None:
    """``--out`` must name a .csv or .parquet file."""
    if out is not None and out.suffix.lower() not in (".csv", *_PARQUET):
        raise ConfigError(f"{option} {out}: name a .csv or .parquet file (the format follows the suffix)")


def proba_names(labels: Sequence[Any]) -> list[str]:
    """``proba_<label>`` for each label.

    >>> proba_names(["benign", "malignant"])
    ['proba_benign', 'proba_malignant']
    """
    return [f"{PROBA_PREFIX}{label}" for label in labels]

