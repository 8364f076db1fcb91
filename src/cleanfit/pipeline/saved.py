"""A trained run's folder as a model: the fitted preprocessing, the network and the schema, as plain JSON.

``model.json`` (beside ``model.pt``, the network's ``state_dict``) holds everything needed to turn new
rows into predictions, and nothing that runs code when it is read:

- ``features``: the feature columns in order, each with its ``kind`` (``"numeric"`` or ``"text"``), the
  dtype it had in the training file and, for text, the categories seen in the train rows;
- ``preprocess``: the fitted scikit-learn ColumnTransformer as numbers: imputer statistics, the
  scaler's shift and scale, the encoder's categories (rebuilt by :class:`Preprocessing` in NumPy, with
  the same floating-point operations scikit-learn does, so the outputs are bit-identical);
- ``network``: how to rebuild the model (the MLP's sizes, or the user's ``model.module`` factory);
- ``target``: its name, the task and the labels (classification) or the train targets' mean and std
  (regression, which the network predicts standardised).

>>> from sklearn.compose import ColumnTransformer
>>> from sklearn.preprocessing import StandardScaler
>>> import pandas as pd
>>> frame = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
>>> fitted = ColumnTransformer([("numeric", StandardScaler(), ["a"])]).fit(frame)
>>> spec = preprocess_spec(fitted)
>>> spec["numeric"]["steps"]
[{'op': 'subtract_divide', 'sub': [2.0], 'div': [0.816496580927726]}]
>>> Preprocessing(spec).transform(frame).round(3).tolist()
[[-1.225], [0.0], [1.225]]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cleanfit.errors import DataError

SPEC_FILE = "model.json"
WEIGHTS_FILE = "model.pt"
FORMAT = 1  # the version of model.json's layout

__all__ = ["SPEC_FILE", "WEIGHTS_FILE", "FORMAT", "preprocess_spec", "Preprocessing"]


def preprocess_spec(transformer: Any) -> dict[str, Any]:
    """A fitted ColumnTransformer (as :func:`cleanfit.pipeline.features.build_preprocessor` builds it) as JSON values."""
    spec: dict[str, Any] = {"numeric": None, "categorical": None}
    for name, fitted, columns in transformer.transformers_:
        if name == "numeric":
            spec["numeric"] = {"columns": list(columns), "steps": _numeric_steps(fitted)}
        elif name == "categorical":
            kind = "onehot" if type(fitted).__name__ == "OneHotEncoder" else "ordinal"
            categories = [[_plain(v) for v in values] for values in fitted.categories_]
            spec["categorical"] = {"columns": list(columns), "encoding": kind, "categories": categories}
    return spec


def _numeric_steps(fitted: Any) -> list[dict[str, Any]]:
    if fitted == "passthrough":
        return []
    steps: list[dict[str, Any]] = []
    for step in fitted.steps if hasattr(fitted, "steps") else [(None, fitted)]:
        part = step[1]
        kind = type(part).__name__
        if kind == "SimpleImputer":
            steps.append({"op": "impute", "values": _floats(part.statistics_)})
        elif kind == "StandardScaler":
            steps.append({"op": "subtract_divide", "sub": _floats(part.mean_), "div": _floats(part.scale_)})
        elif kind == "RobustScaler":
            steps.append({"op": "subtract_divide", "sub": _floats(part.center_), "div": _floats(part.scale_)})
        elif kind == "MinMaxScaler":
            steps.append({"op": "multiply_add", "mul": _floats(part.scale_), "add": _floats(part.min_)})
        else:  # pragma: no cover - build_preprocessor makes no other step
            raise TypeError(f"cannot save the preprocessing step {kind}")
    return steps


class Preprocessing:
    """The fitted preprocessing, rebuilt from :func:`preprocess_spec`'s JSON; ``transform`` as scikit-learn does.

    Numeric columns take the saved steps in order; text columns are one-hot encoded over the train
    categories (a category never seen in training is all zeros, as ``handle_unknown="ignore"`` does) or
    ordinal-encoded (unseen: ``-1``). The input is a feature frame as
    :func:`cleanfit.pipeline.features.feature_frame` makes it (numbers as float64, text as str).
    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.numeric_ = spec.get("numeric")
        self.categorical_ = spec.get("categorical")

    def spec(self) -> dict[str, Any]:
        """The JSON values this was built from (what ``model.json`` holds as ``preprocess``)."""
        return {"numeric": self.numeric_, "categorical": self.categorical_}

    @property
    def n_outputs(self) -> int:
        """How many columns ``transform`` gives."""
        n = len(self.numeric_["columns"]) if self.numeric_ else 0
        if self.categorical_:
            sizes = [len(c) if self.categorical_["encoding"] == "onehot" else 1 for c in self.categorical_["categories"]]
            n += sum(sizes)
        return n

    def transform(self, features: pd.DataFrame) -> np.ndarray:
        """The model's input matrix (float64, one row per row of ``features``), filled in place."""
        out = np.zeros((len(features), self.n_outputs))
        width = 0
        if self.numeric_:
            X = features[self.numeric_["columns"]].to_numpy(dtype=np.float64, na_value=np.nan).copy()
            for step in self.numeric_["steps"]:
                X = _apply(step, X)
            width = X.shape[1]
            out[:, :width] = X
        if self.categorical_:
            self._encode(features, out, width)
        return out

    def _encode(self, features: pd.DataFrame, out: np.ndarray, offset: int) -> None:
        spec = self.categorical_
        rows = np.arange(len(features))
        for column, categories in zip(spec["columns"], spec["categories"]):
            values = features[column].to_numpy(dtype=object)
            codes = pd.Index(categories, dtype=object).get_indexer(values)  # unseen: -1
            if spec["encoding"] == "onehot":
                seen = codes >= 0
                out[rows[seen], offset + codes[seen]] = 1.0
                offset += len(categories)
            else:
                out[:, offset] = codes
                offset += 1


def _apply(step: Mapping[str, Any], X: np.ndarray) -> np.ndarray:
    op = step["op"]
    if op == "impute":
        holes = np.isnan(X)
        if holes.any():
            X[holes] = np.take(np.asarray(step["values"], dtype=np.float64), np.nonzero(holes)[1])
        return X
    if op == "subtract_divide":
        X -= np.asarray(step["sub"], dtype=np.float64)
        X /= np.asarray(step["div"], dtype=np.float64)
        return X
    if op == "multiply_add":
        X *= np.asarray(step["mul"], dtype=np.float64)
        X += np.asarray(step["add"], dtype=np.float64)
        return X
    raise DataError(f"model.json: unknown preprocessing step {op!r}; the run was saved by a newer cleanfit")


def _floats(values: Any) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64)]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
