"""Writing a trained run's folder as a model: ``model.json`` beside ``model.pt``, and MLflow's pyfunc model.

See :mod:`cleanfit.pipeline.saved` for what ``model.json`` holds and :mod:`cleanfit.pipeline.predict` for
reading it back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cleanfit._util.files import write_json
from cleanfit.pipeline.features import column_kinds
from cleanfit.pipeline.prepare import PreparedData
from cleanfit.pipeline.saved import FORMAT, SPEC_FILE, Preprocessing, preprocess_spec

__all__ = ["model_spec", "save_run_model"]


def model_spec(data: PreparedData) -> dict[str, Any]:
    """What ``model.json`` holds for a prepared (and trained) run."""
    config = data.config
    numeric, text = column_kinds(data.features)
    preprocess = _spec(data.preprocessor)
    categories = dict(zip(text, preprocess["categorical"]["categories"])) if text else {}
    features = [
        {"name": c, "kind": "numeric" if c in numeric else "text", "dtype": str(data.frame[c].dtype),
         **({"categories": categories[c]} if c in categories else {})}
        for c in data.features.columns
    ]
    if config.model.module is None:
        network = {"kind": "mlp", "hidden": list(config.model.hidden), "dropout": config.model.dropout}
    else:
        network = {"kind": "module", "module": config.model.module, "base_dir": str(config.base_dir)}
    network.update(n_features=data.n_features, n_outputs=data.n_outputs)
    mean, std = data.target_scale
    return {
        "format": FORMAT,
        "task": data.task,
        "target": {"name": config.data.target, "classes": data.classes, "mean": mean, "std": std},
        "features": features,
        "preprocess": preprocess,
        "network": network,
    }


def _spec(preprocessor: Any) -> dict[str, Any]:
    """The fitted preprocessing as ``model.json`` holds it: a ColumnTransformer's numbers, or the spec a
    :class:`~cleanfit.pipeline.saved.Preprocessing` was built from (a table fit out of core)."""
    return preprocessor.spec() if isinstance(preprocessor, Preprocessing) else preprocess_spec(preprocessor)


def save_run_model(out: Path, data: PreparedData, tracker: Any = None) -> None:
    """Rank 0, after ``model.pt`` is written: ``model.json`` beside it, and, when the run is tracked in
    MLflow, the pyfunc model logged under the artifact path ``model``."""
    write_json(out / SPEC_FILE, model_spec(data))
    if tracker is None or getattr(tracker, "failure_", None) is not None or not hasattr(tracker, "tracking_uri_"):
        return
    from cleanfit.pipeline.pyfunc import ARTIFACT_PATH, save_pyfunc  # mlflow is heavy: only for a tracked run

    if data.large is not None:  # a table over audit.memory: its first rows, read from its first row group
        example = data.large.example
    else:
        example = data.frame.loc[data.frame.index[:5], list(data.features.columns)].reset_index(drop=True)
    tracker.log_artifact(save_pyfunc(out, example), ARTIFACT_PATH)
