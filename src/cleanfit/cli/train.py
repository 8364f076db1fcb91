"""``cleanfit train``, ``cleanfit repro`` and ``cleanfit demo``.

Bad input raises :class:`~cleanfit.errors.CleanfitError` (``cleanfit.cli.main`` prints one line, exit 2);
a failed audit gate or a run that does not reproduce returns exit code 1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from cleanfit._util.files import check_writable, write_json_output
from cleanfit._util.ranks import rank
from cleanfit.errors import CleanfitError
from cleanfit.pipeline.config import load_config
from cleanfit.pipeline.demo import run_demo
from cleanfit.pipeline.repro import compare_runs
from cleanfit.pipeline.run import AuditGateError, train_config
from cleanfit.tracking import TrackingWarning
from cleanfit.training.checkpoints import CheckpointWarning

_SET_HELP = "Override a config field, e.g. --set train.lr=3e-4 (repeatable)."


@click.command("train")
@click.argument("config", metavar="CONFIG.toml")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out from its latest checkpoint.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help=_SET_HELP)
@click.option("--out", type=click.Path(path_type=Path), help="Output folder [default: ./cleanfit-out/<data file stem>].")
@click.option("--json", "json_path", type=click.Path(path_type=Path),
              help="Write the run's metrics (with the test scores) as JSON.")
def train(config: str, resume: bool, overrides: tuple[str, ...], out: Path | None, json_path: Path | None) -> int:
    """Train from a TOML config: split, audit, preprocess on train, train, test once, track, report."""
    check_writable(json_path, "--json")
    _show_progress()
    try:
        with _tracking_failure_said_once():
            run = train_config(config, out=out, overrides=overrides, resume=resume)
    except AuditGateError as exc:
        return _gate_failed(exc, json_path)
    if json_path is not None and rank() == 0:
        write_json_output(json_path, run.to_dict())
    return 0


@click.command("repro")
@click.argument("config", metavar="CONFIG.toml")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help=_SET_HELP)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Keep both runs in OUT/run1 and OUT/run2 [default: a temporary folder, deleted at the end].")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the comparison as JSON.")
def repro(config: str, overrides: tuple[str, ...], out: Path | None, json_path: Path | None) -> int:
    """Train twice with the same seed; exit 0 when the weights and metrics are identical, else 1.

    Both runs are untracked (tracking.backend = "none") and written, checkpoints included, to a
    temporary folder that is deleted at the end, or to --out OUT/run1 and OUT/run2 to keep them.
    """
    check_writable(json_path, "--json")
    settings = load_config(config, [*overrides, 'tracking.backend="none"'])
    with contextlib.ExitStack() as stack:
        folder = out if out is not None else Path(stack.enter_context(_temporary_runs()))
        runs = []
        for attempt in (1, 2):
            click.echo(f"cleanfit repro: training run {attempt} of 2 (seed {settings.train.seed})")
            run_dir = folder / f"run{attempt}"
            # each run checkpoints into its own folder, whatever checkpoint.dir the config names
            own_checkpoints = [f"checkpoint.dir={json.dumps(str(run_dir / 'checkpoints'))}"]
            try:
                runs.append(train_config(settings, out=run_dir, overrides=own_checkpoints, quiet=True))
            except AuditGateError as exc:
                return _gate_failed(exc, json_path)
    verdict = compare_runs(runs[0], runs[1])
    click.echo(verdict.describe())
    if out is not None:
        click.echo(f"cleanfit repro: the two runs are in {out / 'run1'} and {out / 'run2'}")
    if json_path is not None:
        write_json_output(json_path, verdict.to_dict())
    return 0 if verdict.identical else 1


@contextlib.contextmanager
def _temporary_runs() -> Iterator[str]:
    """A temporary folder for repro's runs, deleted at the end: a cleanfit error that names a path in it
    says so instead (``<temporary folder>/run1/checkpoints``) and how to keep the runs (``--out DIR``)."""
    with tempfile.TemporaryDirectory(prefix="cleanfit-repro-") as tmp:
        try:
            yield tmp
        except CleanfitError as exc:
            text = str(exc)
            if tmp not in text:
                raise
            text = text.replace(tmp, "<temporary folder>").rstrip(". ")
            text += " (repro's runs were in a temporary folder, now deleted: pass --out DIR to keep them)"
            try:
                said = type(exc)(text)
            except TypeError:  # an error class with other arguments: the message is what matters here
                said = CleanfitError(text)
            raise said from exc


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("cleanfit-out"), show_default=True,
              help="Where the demo writes its data, report, checkpoints and MLflow store.")
def demo(out: Path) -> int:
    """The whole discipline on scikit-learn's breast cancer data, in under a minute on a CPU."""
    _show_progress()
    with _tracking_failure_said_once():
        run_demo(out)
    return 0


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (tests and notebooks swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _show_progress() -> None:
    """Print the Trainer's epoch lines (logger ``cleanfit``) to stderr, on rank 0, once."""
    logger = logging.getLogger("cleanfit")
    if rank() == 0 and not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)


@contextlib.contextmanager
def _tracking_failure_said_once() -> Iterator[None]:
    """A failed tracking store is logged as one line (logger ``cleanfit``, shown by :func:`_show_progress`);
    its TrackingWarning would print the same text again, with a source line. A checkpoint skipped on
    resume (CheckpointWarning) is one line too, without Python's source line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrackingWarning)
        show = warnings.showwarning

        def one_line(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if issubclass(category, CheckpointWarning):
                click.echo(f"cleanfit: warning: {' '.join(str(message).split())}", err=True)
            else:
                show(message, category, *args, **kwargs)

        warnings.showwarning = one_line
        yield


def _gate_failed(exc: Any, json_path: Path | None) -> int:
    report = exc.report
    click.echo(str(report), err=True)
    click.echo(f"cleanfit: audit gate failed: {' '.join(str(exc).split())}", err=True)
    if json_path is not None:
        write_json_output(json_path, {"passed": False, "audit": report.to_dict()})
    return 1


__all__ = ["train", "repro", "demo"]
