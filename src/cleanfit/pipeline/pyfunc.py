"""The run's model as an MLflow pyfunc model, logged under the artifact path ``model``.

``mlflow.pyfunc.load_model("runs:/<id>/model")`` and ``mlflow models serve -m runs:/<id>/model`` give the
predictions ``cleanfit predict`` gives (:meth:`cleanfit.pipeline.predict.LoadedRun.predictions`):
the model's artifacts are copies of the run folder's ``model.json`` and ``model.pt``.

The model is saved as MLflow's "model from code": a three-line Python file (:data:`MODEL_CODE`) that
builds :class:`CleanfitPyfunc`; nothing is pickled. The signature names the feature columns (see
:func:`save_pyfunc`) and the prediction columns; the input example is five training rows. Loading it needs
cleanfit installed where it is loaded (``--env-manager local`` uses the current environment).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from cleanfit.pipeline.predict import LoadedRun, load_files, load_run
from cleanfit.pipeline.saved import SPEC_FILE, WEIGHTS_FILE

ARTIFACT_PATH = "model"
LOCAL_DIR = "mlflow-model"  # the saved model in the run folder, before it is logged
MODEL_CODE = (
    "import mlflow.models\n"
    "from cleanfit.pipeline.pyfunc import CleanfitPyfunc\n"
    "mlflow.models.set_model(CleanfitPyfunc())\n"
)

__all__ = ["CleanfitPyfunc", "save_pyfunc", "ARTIFACT_PATH", "LOCAL_DIR", "MODEL_CODE"]


class CleanfitPyfunc(mlflow.pyfunc.PythonModel):
    """``predict(frame)``: the DataFrame of ``prediction`` (and ``proba_<label>`` per class)."""

    def load_context(self, context: Any) -> None:
        self.run_: LoadedRun = load_files(context.artifacts["spec"], context.artifacts["weights"], where="model")

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        return self.run_.predictions(model_input).reset_index(drop=True)


def save_pyfunc(run_dir: Path, example: pd.DataFrame) -> Path:
    """Save the run folder's model as an MLflow model in ``run_dir/mlflow-model``; returns that folder.

    ``example`` is a few rows of the training table's feature columns (the input example). The signature
    names every feature column: text ones as ``string``, numeric ones as ``Any``, because MLflow refuses
    an integer column for a ``double`` one; cleanfit checks their values itself, naming the column.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import DataType
    from mlflow.types.schema import AnyType, ColSpec, Schema
    from mlflow.types.utils import _infer_schema

    target = run_dir / LOCAL_DIR
    if target.exists():  # a resumed run saves its final model again
        shutil.rmtree(target)
    run = load_run(run_dir)
    inputs = Schema([ColSpec(DataType.string if run.kinds_[name] == "text" else AnyType(), name) for name in run.features_])
    with warnings.catch_warnings():  # MLflow's hint on integer columns: a prediction of int labels has no holes
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer", category=UserWarning)
        outputs = _infer_schema(run.predictions(example).reset_index(drop=True))
    signature = ModelSignature(inputs=inputs, outputs=outputs)
    quiet = logging.getLogger("mlflow")
    level = quiet.level
    with tempfile.TemporaryDirectory(prefix="cleanfit-pyfunc-") as tmp, _environ(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"):
        code = Path(tmp) / "cleanfit_model.py"
        code.write_text(MODEL_CODE)
        quiet.setLevel(logging.WARNING)  # "Validating input example against model signature" on every run
        try:
            with warnings.catch_warnings():  # the hint about integer columns is for inferred signatures, not this one
                warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer", category=UserWarning)
                mlflow.pyfunc.save_model(
                    str(target),
                    python_model=str(code),
                    artifacts={"spec": str(run_dir / SPEC_FILE), "weights": str(run_dir / WEIGHTS_FILE)},
                    signature=signature,
                    input_example=example,
                    pip_requirements=["cleanfit", "torch", "numpy", "pandas"],  # inferring them costs a subprocess
                )
        finally:
            quiet.setLevel(level)
    return target


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
