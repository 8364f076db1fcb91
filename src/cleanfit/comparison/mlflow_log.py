"""MLflow records of a comparison: one parent run, one child run per candidate and seed.

The children carry the MLflow tag ``mlflow.parentRunId``, so the MLflow UI nests them under the
parent, and the versions the comparison ran with (cleanfit, torch, numpy, python, the git commit); a config
candidate's child also carries its data and split fingerprints and the rows in each part. The parent names
the metric actually compared (``metric``, known once the first run is scored) beside the one asked for. Everything is written from the calling process (never from worker processes), so parallel
seeds never contend for the SQLite store.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cleanfit._util.files import write_json
from cleanfit.errors import ConfigError
from cleanfit.tracking.environment import environment_params
from cleanfit.tracking.store import mlflow_client

if TYPE_CHECKING:
    from cleanfit.comparison.result import Comparison
    from cleanfit.pipeline.config import Config

_DEFAULT_EXPERIMENT = "cleanfit"


def resolve_target(tracker: Any, config: Config | None) -> tuple[str | None, str] | None:
    """``(tracking_uri, experiment)`` for ``compare(tracker=...)``, or None for no tracking.

    ``tracker`` is ``"auto"`` (follow the ``[tracking]`` section of candidate A's config, as
    ``cleanfit train`` would; no tracking when both candidates are callables), None / ``"none"``
    (no tracking), ``"mlflow"`` (MLflow's default store, or ``MLFLOW_TRACKING_URI``), or a
    :class:`cleanfit.MLflowTracker` whose URI and experiment are used.
    """
    section = config.tracking if config is not None else None
    experiment = (section.experiment if section is not None else None) or _DEFAULT_EXPERIMENT
    if tracker == "auto":
        if section is None or section.backend == "none":
            return None
        return section.uri, experiment
    if tracker is None or tracker == "none" or type(tracker).__name__ == "NullTracker":
        return None
    if tracker == "mlflow":
        return None, experiment
    if not isinstance(tracker, str) and (hasattr(tracker, "experiment") or hasattr(tracker, "tracking_uri")):
        return getattr(tracker, "tracking_uri", None), getattr(tracker, "experiment", None) or experiment
    raise ConfigError(
        f"compare(tracker={tracker!r}): expected 'auto', None, 'mlflow' or a cleanfit.MLflowTracker"
    )


class ComparisonLog:
    """Writes the parent run at the start, a child per finished (candidate, seed), the summary at the end."""

    def __init__(self, uri: str | None, experiment: str) -> None:
        # the same store cleanfit.MLflowTracker (and so ``cleanfit train``) would use
        self.uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
        try:
            self._client = mlflow_client(self.uri)
            found = self._client.get_experiment_by_name(experiment)
            self.experiment_id = found.experiment_id if found else self._client.create_experiment(experiment)
        except Exception as exc:  # MLflow raises many types for a store it cannot open
            raise ConfigError(
                f"compare: cannot open the MLflow store {self.uri} ({type(exc).__name__}: {exc}); fix "
                "tracking.uri, or compare without tracking (--set tracking.backend=none, tracker=None)"
            ) from None
        self.run_id: str | None = None
        self._versions = environment_params()

    def start(self, name: str, params: Mapping[str, Any]) -> str:
        run = self._client.create_run(
            self.experiment_id, run_name=name, tags={"cleanfit.kind": "comparison"}
        )
        self.run_id = run.info.run_id
        self._batch(self.run_id, params={**params, **self._versions})
        return self.run_id

    def child(self, label: str, name: str, seed: int, metrics: Mapping[str, float],
              params: Mapping[str, Any]) -> str:
        assert self.run_id is not None, "start() first"
        run = self._client.create_run(
            self.experiment_id,
            run_name=f"{label}-seed{seed}",
            tags={
                "mlflow.parentRunId": self.run_id,
                "cleanfit.kind": "comparison-candidate",
                "cleanfit.candidate": label,
                "cleanfit.candidate_name": name,
                "cleanfit.seed": str(seed),
            },
        )
        child_id = run.info.run_id
        self._batch(child_id, params={"candidate": label, "candidate_name": name, "seed": seed, **params,
                                      **self._versions}, metrics=metrics)
        self._client.set_terminated(child_id, "FINISHED")
        return child_id

    def finish(self, comparison: Comparison | None) -> None:
        """Summary metrics, the verdict tag and the JSON/plot artifacts; FAILED when ``comparison`` is None."""
        if self.run_id is None:
            return
        if comparison is None:
            self._client.set_terminated(self.run_id, "FAILED")
            return
        c = comparison
        metrics = {"mean_a": c.mean_a, "mean_b": c.mean_b, "std_a": c.std_a, "std_b": c.std_b,
                   "mean_difference": c.mean_difference, "std_difference": c.std_difference,
                   "ci_low": c.ci[0], "ci_high": c.ci[1]}
        if c.seeds_needed is not None:
            metrics["seeds_needed"] = float(c.seeds_needed)
        self._batch(self.run_id, params={"metric": c.metric, "higher_is_better": c.higher_is_better,
                                         "interval_method": "paired t"}, metrics=metrics)
        self._client.set_tag(self.run_id, "cleanfit.verdict", c.verdict)
        with tempfile.TemporaryDirectory(prefix="cleanfit-compare-") as tmp:
            report = Path(tmp) / "comparison.json"
            write_json(report, c.to_dict() | {"run_id": self.run_id})
            self._client.log_artifact(self.run_id, str(report))
            self._client.log_artifact(self.run_id, str(c.plot(Path(tmp) / "comparison.png")))
        self._client.set_terminated(self.run_id, "FINISHED")

    def _batch(self, run_id: str, *, params: Mapping[str, Any] = {},
               metrics: Mapping[str, float] = {}) -> None:
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        self._client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if math.isfinite(float(v))],
            params=[Param(k, _param_text(v)) for k, v in params.items()],
        )


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]
