"""Atomic, checksummed checkpoints with retention, and the choice of what to resume from.

A checkpoint is exactly the Trainer's training state (``TrainState.state_dict()``): a nested dict
of tensors and plain values. :class:`CheckpointManager` writes it atomically (temporary file,
fsync, rename, fsync of the directory) inside a container whose sha256 checksum is verified on
every load, keeps the ``keep_last`` newest files plus the best one by the monitored metric, and
reads files back with ``torch.load(weights_only=True)`` only.

>>> import tempfile, torch
>>> directory = tempfile.mkdtemp()
>>> manager = CheckpointManager(directory, keep_last=2)
>>> manager.check_writable()
>>> for step, loss in [(10, 0.9), (20, 0.5), (30, 0.7), (40, 0.8)]:
...     _ = manager.save({"w": torch.ones(2) * step, "step": step}, step=step, epoch=0, metric=loss)
>>> [p.name for p in manager.list()]          # the 2 newest, plus the best (val_loss 0.5)
['step-0000000040.ckpt', 'step-0000000030.ckpt', 'step-0000000020.ckpt']
>>> manager.best_path.name
'step-0000000020.ckpt'
>>> manager.resolve(True)["step"]
40
>>> manager.resolve(False) is None
True
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from cleanfit.errors import CheckpointError, ConfigError
from cleanfit.training import checkpoint_file as _file

__all__ = ["CheckpointManager", "CheckpointWarning"]

_NAME = re.compile(r"^step-(\d+)\.ckpt$")
_BEST = "best.json"
logger = logging.getLogger("cleanfit")
_TEMP = re.compile(r"^\.(?:step-\d+\.ckpt|best\.json)\.(\d+)\.tmp$")  # see checkpoint_file.write_atomic
_PROBE = ".cleanfit-write-probe"


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped (corrupt or truncated) or could not be cleaned up."""


class CheckpointManager:
    """Write, keep and find the checkpoints of one training run in ``directory``.

    Files are named ``step-<step>.ckpt`` (sortable by step); ``best.json`` points at the best
    checkpoint by ``monitor`` (``mode="min"`` or ``"max"``). ``keep_last`` newest files and the
    best one are kept; older ones are deleted after each save, together with temporary files left
    by a process that died in the middle of a write.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        keep_last: int = 3,
        monitor: str = "val_loss",
        mode: str = "min",
    ) -> None:
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
            raise ConfigError(
                f"keep_last={keep_last!r}: must be an integer >= 1 (the newest checkpoint is what "
                "a resume needs); e.g. keep_last=3"
            )
        if mode not in ("min", "max"):
            raise ConfigError(f"mode={mode!r}: must be 'min' (e.g. for a loss) or 'max' (e.g. for accuracy)")
        self.directory = Path(directory)
        self._check: Callable[[dict[str, Any], Path], None] | None = None
        self.keep_last = keep_last
        self.monitor = monitor
        self.mode = mode
        self.resolved_path: Path | None = None

    def __repr__(self) -> str:
        return (
            f"CheckpointManager({str(self.directory)!r}, keep_last={self.keep_last}, "
            f"monitor={self.monitor!r}, mode={self.mode!r})"
        )

    # -- writing ---------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Create the directory and prove a file can be written there, before training starts."""
        fix = "choose a writable checkpoint_dir (or fix its permissions / free the disk)"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(
                f"cannot create checkpoint directory {self.directory}: {exc.strerror or exc}; {fix}"
            ) from None
        if not self.directory.is_dir():
            raise CheckpointError(f"checkpoint directory {self.directory} is not a directory; {fix}")
        probe = self.directory / f"{_PROBE}.{os.getpid()}"
        try:
            with open(probe, "wb") as f:
                f.write(b"ok")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise CheckpointError(
                f"checkpoint directory {self.directory} is not writable: {exc.strerror or exc}; {fix}"
            ) from None
        finally:
            try:
                probe.unlink()
            except OSError:
                pass
        self._remove_stale_temp_files(include_own=True)

    def save(self, state: Mapping[str, Any], *, step: int, epoch: int, metric: float | None) -> Path:
        """Write ``state`` atomically as ``step-<step>.ckpt``, update ``best.json``, apply retention.

        Raises CheckpointError when the state holds values that could not be loaded back safely,
        or when the write fails (full disk, lost permissions); the previous checkpoints are left
        as they were.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping (TrainState.state_dict()), got {type(state).__name__}")
        _file.check_state(dict(state))
        step, epoch = _non_negative_int(step, "step"), _non_negative_int(epoch, "epoch")
        metric = _finite_or_none(metric)
        meta = {
            "format": 1,
            "step": step,
            "epoch": epoch,
            "metric": metric,
            "monitor": self.monitor,
            "mode": self.mode,
            "torch": torch.__version__,
            "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        parts = _file.encode(dict(state), meta)
        path = self.directory / f"step-{step:010d}.ckpt"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            _file.write_atomic(path, parts)
        except OSError as exc:
            raise self._write_error(path, sum(memoryview(p).nbytes for p in parts), exc) from None
        self._update_best(path, meta)
        self._apply_retention(keep=path)
        return path

    def _write_error(self, path: Path, size: int, exc: OSError) -> CheckpointError:
        previous = next((p for p in self.list() if p != path), None)
        kept = f"the previous checkpoint {previous} is unchanged" if previous else "no earlier checkpoint exists"
        if _file.is_disk_full(exc):
            what = f"the disk is full (or a size limit was hit) writing {path} ({size} bytes)"
            fix = "free space or point checkpoint_dir at a larger disk, then resume with resume=True"
        else:
            what = f"could not write {path}: {exc.strerror or exc}"
            fix = "fix the directory's permissions or choose another checkpoint_dir, then resume"
        return CheckpointError(f"checkpoint not saved, training stopped: {what}; {kept}; {fix}")

    def _update_best(self, path: Path, meta: Mapping[str, Any]) -> None:
        metric = meta["metric"]
        if metric is None:
            return
        current = self._read_best()
        if current is not None and (self.directory / current["file"]).exists() and current["file"] != path.name:
            better = metric < current["metric"] if self.mode == "min" else metric > current["metric"]
            if not better:
                return
        record = {
            "file": path.name,
            "step": meta["step"],
            "epoch": meta["epoch"],
            "metric": metric,
            "monitor": self.monitor,
            "mode": self.mode,
        }
        try:
            _file.write_atomic(self.directory / _BEST, (json.dumps(record, indent=2) + "\n").encode())
        except OSError as exc:
            raise self._write_error(self.directory / _BEST, 0, exc) from None

    def _read_best(self) -> dict[str, Any] | None:
        try:
            record = json.loads((self.directory / _BEST).read_text())
        except (OSError, ValueError):
            return None
        if (
            not isinstance(record, dict)
            or record.get("monitor") != self.monitor
            or record.get("mode") != self.mode
            or not isinstance(record.get("file"), str)
            or not _NAME.match(record["file"])
            or not isinstance(record.get("metric"), (int, float))
        ):
            return None
        return record

    def _apply_retention(self, keep: Path) -> None:
        best = self.best_path
        for path in self.list()[self.keep_last :]:
            if path in (keep, best):
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                warnings.warn(f"could not delete old checkpoint {path}: {exc}", CheckpointWarning, stacklevel=3)
        self._remove_stale_temp_files(include_own=False)

    def _remove_stale_temp_files(self, *, include_own: bool) -> None:
        """Delete temporary files whose writer died mid-write (their pid is gone)."""
        if not self.directory.is_dir():
            return
        for path in self.directory.glob(f".*{_file.TEMP_SUFFIX}"):
            match = _TEMP.match(path.name)
            if match is None:
                continue
            pid = int(match.group(1))
            if (include_own and pid == os.getpid()) or not _file.pid_alive(pid):
                try:
                    path.unlink()
                except OSError:
                    pass

    # -- reading ---------------------------------------------------------------------------

    def list(self) -> list[Path]:
        """The checkpoint files in the directory, newest (highest step) first; temp files excluded."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            match = _NAME.match(path.name)
            if match and path.is_file():
                found.append((int(match.group(1)), path))
        return [path for _, path in sorted(found, key=lambda item: item[0], reverse=True)]

    @property
    def best_path(self) -> Path | None:
        """The best checkpoint by ``monitor`` so far (None until one was saved with a metric)."""
        record = self._read_best()
        if record is None:
            return None
        path = self.directory / record["file"]
        return path if path.is_file() else None

    def load(self, path: str | os.PathLike[str], *, map_location: Any = "cpu") -> dict[str, Any]:
        """Verify and load one checkpoint file (``torch.load(weights_only=True)``)."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            available = ", ".join(p.name for p in self.list()[:5]) or "none"
            raise CheckpointError(
                f"no checkpoint at {path} (checkpoints in {self.directory}: {available}); pass an "
                "existing file, or resume=True to use the newest valid checkpoint"
            ) from None
        except IsADirectoryError:
            raise CheckpointError(f"{path} is a directory, not a checkpoint file; pass a .ckpt file") from None
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
        return _file.decode(data, path, map_location)

    def resolve(self, resume: bool | str | os.PathLike[str], *,
                check: Callable[[dict[str, Any], Path], None] | None = None) -> dict[str, Any] | None:
        """The state to resume from, or None to start fresh.

        ``False``: None. ``True``: the newest valid checkpoint (a corrupt or truncated newer one is
        skipped with a :class:`CheckpointWarning`); None when there are no checkpoint files;
        CheckpointError when there are files but none is valid. ``"best"``: the best checkpoint.
        A directory: the newest valid checkpoint in it. A file: that file. The file used is
        recorded in :attr:`resolved_path`. ``check(state, path)`` (e.g. the Trainer's structure check)
        raises CheckpointError for a state that verifies but cannot be this run's: with ``True`` that
        checkpoint is skipped like a corrupt one.
        """
        self._check = check
        self.resolved_path = None
        if resume is False or resume is None:
            return None
        if resume is True:
            state = self._resolve_newest(self)
            if state is None:  # resume=True with nothing to resume: say so (a torn first write leaves no file)
                logger.info("resume: no finished checkpoint in %s; training starts from the beginning", self.directory)
            return state
        if not isinstance(resume, (str, os.PathLike)):
            raise ConfigError(f"resume={resume!r}: use True, False, 'best' or a checkpoint path")
        if resume == "best":
            best = self.best_path
            if best is None:
                raise CheckpointError(
                    f"resume='best': {self.directory} has no best checkpoint for {self.monitor!r}; "
                    "use resume=True for the newest one"
                )
            return self._load_resolved(best)
        path = Path(resume)
        if not path.exists() and not path.is_absolute() and (self.directory / path).exists():
            path = self.directory / path
        if path.is_dir():
            return self._resolve_newest(CheckpointManager(path, monitor=self.monitor, mode=self.mode))
        return self._load_resolved(path)

    def _load_resolved(self, path: Path) -> dict[str, Any]:
        state = self.load(path)
        if self._check is not None:
            self._check(state, path)
        self.resolved_path = path
        return state

    def _resolve_newest(self, source: CheckpointManager) -> dict[str, Any] | None:
        candidates = source.list()
        if not candidates:
            return None
        failures: list[str] = []
        for path in candidates:
            try:
                state = source.load(path)
                if self._check is not None:
                    self._check(state, path)
            except _file.UnsafeCheckpoint:
                raise
            except CheckpointError as exc:
                failures.append(str(exc))
                continue
            if failures:
                warnings.warn(
                    f"skipped {len(failures)} invalid checkpoint(s) ({'; '.join(failures)}); "
                    f"resuming from {path} instead",
                    CheckpointWarning,
                    stacklevel=3,
                )
            self.resolved_path = path
            return state
        raise CheckpointError(
            f"resume=True but none of the {len(candidates)} checkpoints in {source.directory} is valid "
            f"({'; '.join(failures)}); refusing to start over silently: delete or move them to train "
            "from scratch (or resume=False), or pass resume=<path> to a good checkpoint"
        )


def _non_negative_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)


def _finite_or_none(metric: Any) -> float | None:
    if metric is None:
        return None
    value = float(metric)
    return value if math.isfinite(value) else None
