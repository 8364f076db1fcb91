"""The loss-curve plot and the one-file HTML run report, and one call that logs a run's artifacts.

``history`` is anything shaped like :class:`cleanfit.training.history.History`: ``.epochs`` (one dict
per epoch: ``epoch``, ``step``, ``train_loss``, ``val_loss``, ``lr``, ``val_<metric>`` ...),
``.steps`` (one dict per logged optimizer step: ``step``, ``epoch``, ``train_loss``, ``lr``) and
``.diagnose() -> list[Finding]``.

>>> from cleanfit.training.history import History
>>> h = History([{"epoch": 1, "step": 5, "train_loss": 0.9, "val_loss": 1.0, "lr": 1e-3}])
>>> import tempfile, pathlib
>>> out = write_run_report(pathlib.Path(tempfile.mkdtemp()) / "report.html", history=h)
>>> out.read_text().startswith("<!doctype html>")
True
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cleanfit._util import html as _html
from cleanfit._util.files import write_atomic, write_json
from cleanfit.findings import Finding

__all__ = ["plot_history", "write_run_report", "log_run_artifacts", "TRAIN_COLOR", "VAL_COLOR", "LR_COLOR"]

TRAIN_COLOR = "#1f77b4"  # blue
VAL_COLOR = "#ff7f0e"  # orange
LR_COLOR = "#2ca02c"  # green
TURN_COLOR = "#d62728"  # red: where overfitting began
_FIRST_COLUMNS = ("epoch", "step", "train_loss", "val_loss", "gap", "lr", "grad_norm", "skipped_steps")


def plot_history(history: Any, path: str | Path) -> Path:
    """Save the loss curves as a PNG at ``path`` and return the path.

    Top: train loss (per logged step, faint, and per epoch) and val loss per epoch against the epoch;
    a log scale when the loss spans more than two decades; a dashed red line at the epoch where
    overfitting began when ``history.diagnose()`` finds it. Bottom: the learning rate, same x axis.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, _plot_png(history, _findings(history, None)))
    return path


def _plot_png(history: Any, findings: Sequence[Finding]) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = list(history.epochs)
    steps = list(getattr(history, "steps", []) or [])
    fig = Figure(figsize=(9, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, lr_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    x_epoch = [float(row.get("epoch", i + 1)) for i, row in enumerate(epochs)]
    to_epoch = _step_to_epoch(epochs)
    plotted: list[float] = []
    if steps and to_epoch is not None:
        xs = [to_epoch(float(s["step"])) for s in steps]
        ys = [_num(s.get("train_loss")) for s in steps]
        loss_ax.plot(xs, ys, color=TRAIN_COLOR, alpha=0.3, linewidth=1, label="train loss (steps)")
        plotted += ys
    for key, color, label in (("train_loss", TRAIN_COLOR, "train loss"), ("val_loss", VAL_COLOR, "val loss")):
        ys = [_num(row.get(key)) for row in epochs]
        if any(math.isfinite(y) for y in ys):
            loss_ax.plot(x_epoch, ys, color=color, linewidth=2.5, marker="o", markersize=4, label=label)
            plotted += ys
    finite = [y for y in plotted if math.isfinite(y)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 100:
        loss_ax.set_yscale("log")
    for finding in findings:
        turned = finding.details.get("turned_at_epoch") if finding.check == "overfitting" else None
        if turned is not None:
            loss_ax.axvline(turned, color=TURN_COLOR, linestyle="--", linewidth=1.5,
                            label=f"overfitting began (epoch {turned})")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title("Loss curves")
    loss_ax.grid(alpha=0.3)
    if loss_ax.get_legend_handles_labels()[0]:
        loss_ax.legend(loc="best")
    if steps and to_epoch is not None and any(s.get("lr") is not None for s in steps):
        lr_x, lr_y = [to_epoch(float(s["step"])) for s in steps], [_num(s.get("lr")) for s in steps]
    else:
        lr_x, lr_y = x_epoch, [_num(row.get("lr")) for row in epochs]
    lr_ax.plot(lr_x, lr_y, color=LR_COLOR, linewidth=1.5)
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_xlabel("epoch")
    lr_ax.grid(alpha=0.3)
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _step_to_epoch(epochs: list[dict[str, Any]]) -> Any:
    """A map from optimizer step to (fractional) epoch, from each epoch's end step; None if unknown."""
    ends = [(float(row["epoch"]), float(row["step"])) for row in epochs
            if row.get("step") is not None and row.get("epoch") is not None]
    if not ends:
        return None
    xp = np.array([0.0] + [s for _, s in ends])
    fp = np.array([ends[0][0] - 1] + [e for e, _ in ends])
    if np.any(np.diff(xp) <= 0):
        return None
    last_len = xp[-1] - xp[-2]

    def convert(step: float) -> float:  # steps after the last finished epoch: that epoch's length
        if step <= xp[-1]:
            return float(np.interp(step, xp, fp))
        return float(fp[-1] + (step - xp[-1]) / last_len)

    return convert


def write_run_report(
    path: str | Path,
    *,
    history: Any,
    config: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    diagnosis: Sequence[Finding] | None = None,
    audit: Any = None,
    title: str = "cleanfit run",
    plot: str | Path | None = None,
) -> Path:
    """Write one self-contained HTML file (no network) and return its path.

    Sections: the final ``metrics`` (e.g. test scores), the loss curves (PNG embedded as a data URI;
    ``plot`` = a PNG that :func:`plot_history` already wrote for this history saves drawing it again),
    the diagnosis in plain words (``history.diagnose()`` unless ``diagnosis`` is given), the leakage
    audit summary when ``audit`` (an AuditReport) is given, the per-epoch table, and ``config`` in full.
    """
    path = Path(path)
    findings = _findings(history, diagnosis)
    epochs = list(history.epochs)
    parts = []
    if metrics:
        parts.append("<h2>Results</h2>" + _html.table(["metric", "value"], [(k, _fmt(v)) for k, v in metrics.items()]))
    png = Path(plot).read_bytes() if plot is not None else _plot_png(history, findings)
    parts.append("<h2>Loss curves</h2>" + _html.image(png, "loss curves"))
    parts.append("<h2>Diagnosis</h2>" + _findings_html(findings, "No problem found in the loss curves."))
    if audit is not None:
        verdict = _html.badge("ok") + " passed" if audit.passed else _html.badge("critical") + " failed"
        counts = ", ".join(f"{sum(f.severity == s for f in audit.findings)} {s}" for s in ("critical", "warning", "info"))
        parts.append(f"<h2>Leakage audit</h2><p>{verdict} ({counts})</p>"
                     + _findings_html(list(audit.findings), "No leakage found."))
    parts.append("<h2>Per-epoch metrics</h2>" + _epoch_table(epochs))
    if config is not None:
        shown = json.dumps(config, indent=2, sort_keys=True, default=str)
        parts.append(f"<h2>Configuration</h2><pre>{_html.esc(shown)}</pre>")
    last = epochs[-1] if epochs else {}
    written = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = f"{len(epochs)} epochs, {last.get('step', '?')} optimizer steps; written {written}"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, _html.page(title, "".join(parts), subtitle=subtitle))
    return path


def _findings(history: Any, diagnosis: Sequence[Finding] | None) -> list[Finding]:
    return list(diagnosis) if diagnosis is not None else list(history.diagnose())


def _findings_html(findings: Sequence[Finding], none_text: str) -> str:
    if not findings:
        return f"<p>{_html.badge('ok')} {_html.esc(none_text)}</p>"
    rows = [(_html.badge(f.severity), f"<b>{_html.esc(f.check)}</b>", _html.esc(f.message)) for f in findings]
    return _html.table(["severity", "finding", "what it means and what to do"], rows, raw=True)


def _epoch_table(epochs: list[dict[str, Any]]) -> str:
    rows = []
    for row in epochs:
        row = dict(row)
        if _is_num(row.get("train_loss")) and _is_num(row.get("val_loss")):
            row["gap"] = row["val_loss"] - row["train_loss"]
        rows.append(row)
    keys = [k for k in _FIRST_COLUMNS if any(k in r for r in rows)]
    keys += sorted({k for r in rows for k in r} - set(keys))
    return _html.table(keys, [[_fmt(r.get(k)) for k in keys] for r in rows])


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _num(value: Any) -> float:
    return float(value) if _is_num(value) else math.nan


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def log_run_artifacts(
    tracker: Any,
    out_dir: str | Path,
    *,
    history: Any,
    diagnosis: Sequence[Finding] | None = None,
    audit: Any = None,
    config: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    model: Any = None,
    title: str = "cleanfit run",
) -> dict[str, Path]:
    """Write a run's files into ``out_dir``, log them to ``tracker`` and tag the run; return the paths.

    Writes ``loss_curves.png``, ``report.html`` (:func:`write_run_report`), ``history.json``,
    ``diagnosis.json`` (the findings as a list of dicts), ``audit.json`` (when ``audit`` is given),
    ``config.json`` (when ``config`` is given) and ``model.pt`` (``torch.save(model.state_dict())``,
    when ``model`` is given). Each is logged with ``tracker.log_artifact``. Tags: ``diagnosis`` = the
    finding ids joined by commas (``"none"`` for a healthy run) and ``diagnosis.<id>`` = the severity,
    so MLflow can find runs that overfit (``tags.`diagnosis.overfitting` != ''``). With a
    :class:`~cleanfit.tracking.base.NullTracker` the files are only written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    findings = _findings(history, diagnosis)
    plot = out / "loss_curves.png"
    write_atomic(plot, _plot_png(history, findings))
    written = {
        "plot": plot,
        "report": write_run_report(out / "report.html", history=history, config=config, metrics=metrics,
                                   diagnosis=findings, audit=audit, title=title, plot=plot),
        "history": _write_json(out / "history.json", {"epochs": list(history.epochs),
                                                      "steps": list(getattr(history, "steps", []) or [])}),
        "diagnosis": _write_json(out / "diagnosis.json", [f.to_dict() for f in findings]),
    }
    if audit is not None:
        written["audit"] = _write_json(out / "audit.json", audit.to_dict())
    if config is not None:
        written["config"] = _write_json(out / "config.json", dict(config))
    if model is not None:
        written["model"] = out / "model.pt"
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        write_atomic(written["model"], buffer.getvalue())
    for file in written.values():
        tracker.log_artifact(file)
    ids = [f.check for f in findings]
    tracker.set_tags({"diagnosis": ",".join(ids) or "none", **{f"diagnosis.{f.check}": f.severity for f in findings}})
    return written


def _write_json(path: Path, value: Any) -> Path:
    write_json(path, value, default=_jsonable)
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)
