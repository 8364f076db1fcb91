"""The validated TOML config behind ``cleanfit train``, ``repro`` and ``compare``.

A config names only what differs from the defaults; the smallest useful one is::

    [data]
    path = "patients.csv"
    target = "outcome"

:func:`load_config` reads a TOML file (or a dict), applies ``--set section.key=value`` overrides and
validates everything at once. Mistakes raise :class:`~cleanfit.errors.ConfigError` naming the file,
the key, the line it is on, the bad value and the fix:

>>> load_config({"data": {"path": "d.csv", "target": "y"}, "train": {"lr": 3e-4}}).train.lr
0.0003
>>> load_config({"data": {"path": "d.csv", "target": "y"}}, ["train.epochs=5"]).train.epochs
5
>>> load_config({"data": {"path": "d.csv", "target": "y"}, "train": {"batchsize": 8}})
Traceback (most recent call last):
...
cleanfit.errors.ConfigError: config: unknown key 'train.batchsize'; did you mean 'batch_size'?
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from cleanfit._util.args import SEED_LIMIT
from cleanfit._util.columns import close_names
from cleanfit.auditing.ooc_scan import memory_budget
from cleanfit.errors import ConfigError

__all__ = [
    "Config",
    "DataConfig",
    "SplitConfig",
    "PreprocessConfig",
    "ModelConfig",
    "TrainConfig",
    "CheckpointConfig",
    "TrackingConfig",
    "AuditConfig",
    "load_config",
    "parse_override",
]


class _Section(BaseModel):
    # allow_inf_nan=False: ``lr = inf`` (TOML has inf and nan) is a config mistake, not a run that diverges.
    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True, allow_inf_nan=False)


class DataConfig(_Section):
    """``[data]``: the table, the column to predict, and columns with a special role."""

    path: str
    target: str
    time: str | None = None
    group: str | None = None
    drop: list[str] = Field(default_factory=list)
    task: Literal["auto", "classification", "regression"] = "auto"
    # rows without a target value: "error" stops the run, "drop" drops them (and says how many)
    missing_target: Literal["error", "drop"] = "error"


class SplitConfig(_Section):
    """``[split]``: how rows are cut into train/val/test, before anything looks at them.

    ``by = "auto"`` means ``"time"`` when ``data.time`` is set, ``"group"`` when ``data.group`` is
    set, else ``"stratify"`` for classification and ``"random"`` for regression.
    """

    by: Literal["auto", "random", "stratify", "group", "time"] = "auto"
    test: float = Field(0.2, gt=0.0, lt=1.0)
    val: float = Field(0.1, ge=0.0, lt=1.0)
    gap: int = Field(0, ge=0)
    seed: int = Field(0, ge=0, lt=SEED_LIMIT)


class PreprocessConfig(_Section):
    """``[preprocess]``: fit on the train rows only (scikit-learn's ColumnTransformer)."""

    impute: Literal["median", "mean", "most_frequent", "none"] = "median"
    scale: Literal["standard", "minmax", "robust", "none"] = "standard"
    categorical: Literal["onehot", "ordinal", "none"] = "onehot"


class ModelConfig(_Section):
    """``[model]``: an MLP, or ``module = "pkg.mod:factory"`` with ``factory(n_features, n_outputs)``."""

    kind: Literal["mlp"] = "mlp"
    hidden: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [128, 64])
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    module: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class TrainConfig(_Section):
    """``[train]``: the training loop (see :class:`cleanfit.Trainer`)."""

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    accumulate: int = Field(1, ge=1)
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    schedule: Literal["warmup_cosine", "warmup_linear", "constant"] = "warmup_cosine"
    warmup: float = Field(0.05, ge=0.0, lt=1.0)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    clip_grad: float = Field(1.0, ge=0.0)
    seed: int = Field(0, ge=0, lt=SEED_LIMIT)
    early_stopping: int = Field(0, ge=0)


class CheckpointConfig(_Section):
    """``[checkpoint]``: ``dir`` defaults to ``<out>/checkpoints``; ``every = 0`` means each epoch."""

    dir: str | None = None
    every: int = Field(0, ge=0)
    keep_last: int = Field(3, ge=1)


class TrackingConfig(_Section):
    """``[tracking]``: ``backend = "mlflow"`` or ``"none"``; ``experiment`` defaults to the data file's stem."""

    backend: Literal["mlflow", "none"] = "mlflow"
    experiment: str | None = None
    uri: str | None = None


class AuditConfig(_Section):
    """``[audit]``: which findings stop training (``"never"`` trains anyway), and the memory budget above which
    a Parquet table is audited out of core and split by row number (``"auto"``, ``"2GB"``, bytes)."""

    fail_on: Literal["critical", "warning", "never"] = "critical"
    memory: str | int = "auto"

    @model_validator(mode="after")
    def _memory_is_a_size(self) -> AuditConfig:
        memory_budget(self.memory, "audit.memory")  # raises ConfigError naming the field
        return self


class Config(_Section):
    """A whole, validated config. Build it with :func:`load_config`."""

    data: DataConfig
    split: SplitConfig = Field(default_factory=SplitConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    _base_dir: Path | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path:
        """The folder the config file is in (the working directory for a config built from a mapping)."""
        return self._base_dir if self._base_dir is not None else Path.cwd()

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        if self.split.test + self.split.val >= 1.0:
            raise ValueError(
                f"split.test + split.val must leave rows to train on, got {self.split.test} + {self.split.val}"
            )
        if self.train.early_stopping and self.split.val == 0:
            raise ValueError("train.early_stopping needs validation rows; set split.val > 0")
        if self.split.by == "time" and self.data.time is None:
            raise ValueError('split.by = "time" needs data.time (the time column)')
        if self.split.by == "group" and self.data.group is None:
            raise ValueError('split.by = "group" needs data.group (the group column)')
        return self

    def identity(self) -> str:
        """A short hash of everything that decides the trained result (not how it is checkpointed or tracked).

        >>> a = load_config({"data": {"path": "d.csv", "target": "y"}})
        >>> b = load_config({"data": {"path": "d.csv", "target": "y"}, "tracking": {"backend": "none"}})
        >>> a.identity() == b.identity(), a.identity() == a.model_copy(update={"train": TrainConfig(lr=0.1)}).identity()
        (True, False)
        """
        fields = self.model_dump(mode="json", exclude={"tracking", "checkpoint"})
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def flat(self) -> dict[str, Any]:
        """Every field as ``{"section.key": value}`` (lists as their JSON text), e.g. for MLflow params."""
        out: dict[str, Any] = {}
        for section, values in self.model_dump(mode="json").items():
            for key, value in values.items():
                out[f"{section}.{key}"] = json.dumps(value) if isinstance(value, list) else value
        return out


_SECTIONS: dict[str, type[BaseModel]] = {
    name: info.annotation  # type: ignore[misc]
    for name, info in Config.model_fields.items()
}
_SECTION_EXAMPLE = {"data": '[data] path = "table.csv" and target = "label" (the column to predict)'}


def parse_override(text: str) -> tuple[tuple[str, str], Any]:
    """Split ``"section.key=value"`` into its key and value; the value is read as TOML, else as text.

    >>> parse_override("train.lr=3e-4")
    (('train', 'lr'), 0.0003)
    >>> parse_override("model.hidden=[32, 16]")
    (('model', 'hidden'), [32, 16])
    >>> parse_override("data.target=price")
    (('data', 'target'), 'price')
    """
    key, sep, raw = text.partition("=")
    parts = tuple(part.strip() for part in key.strip().split("."))
    if not sep or len(parts) != 2 or not all(parts):
        raise ConfigError(
            f"--set {text!r}: expected section.key=value, e.g. --set train.lr=3e-4"
        )
    raw = raw.strip()
    try:
        value: Any = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return (parts[0], parts[1]), value


def load_config(source: str | Path | Mapping[str, Any], overrides: Sequence[str] = ()) -> Config:
    """Read, override and validate a config.

    ``source`` is a TOML file or a mapping of sections. ``overrides`` are ``"section.key=value"``
    strings (the command line's ``--set``). A relative ``data.path`` (or ``checkpoint.dir``) resolves
    against the config file's directory (against the working directory for a mapping or an override).
    """
    if isinstance(source, Mapping):
        raw: dict[str, Any] = json.loads(json.dumps(source, default=str))
        where, text, base = "config", None, Path.cwd()
    else:
        path = Path(source)
        where, text, base = str(path), _read_text(path), path.resolve().parent
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc}); check the quoting and brackets there") from None

    overridden: dict[tuple[str, ...], str] = {}
    for item in overrides:
        (section, key), value = parse_override(item)
        if section not in raw:
            overridden.setdefault((section,), item)
        table = raw.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"--set {item!r}: '{section}' is a value, not a section, in {where}")
        table[key] = value
        overridden[(section, key)] = item

    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, where, text, overridden)) from None

    def resolve(value: str, key: tuple[str, str]) -> str:
        p = Path(value).expanduser()
        return os.path.normpath(p if p.is_absolute() else (Path.cwd() if key in overridden else base) / p)

    config.data.path = resolve(config.data.path, ("data", "path"))
    if config.checkpoint.dir is not None:
        config.checkpoint.dir = resolve(config.checkpoint.dir, ("checkpoint", "dir"))
    if config.tracking.experiment is None:
        config.tracking.experiment = Path(config.data.path).stem or "cleanfit"
    config._base_dir = base
    return config


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: editors on Windows start the file with a BOM
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a TOML config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc.__class__.__name__}: {exc})") from None


def _explain(
    exc: ValidationError, where: str, text: str | None, overridden: Mapping[tuple[str, ...], str]
) -> str:
    """The first validation error as one sentence: where, which key, what is wrong, the fix."""
    error = exc.errors()[0]
    loc = tuple(str(part) for part in error["loc"])
    key = ".".join(part if not part.isdigit() else f"[{part}]" for part in loc).replace(".[", "[")
    origin = where
    if loc[:2] in overridden:
        origin = f"--set {overridden[loc[:2]]}"
    elif text is not None:
        line = _line_of(text, loc)
        if line is not None:
            origin = f"{where} line {line}"

    kind = error["type"]
    if kind == "extra_forbidden":
        if len(loc) == 1:
            known = list(_SECTIONS)
            what = f"unknown section [{loc[0]}]"
        else:
            model = _SECTIONS.get(loc[0])
            known = list(model.model_fields) if model is not None else []
            what = f"unknown key '{key}'"
        guess = close_names(loc[-1], known, n=1)
        fix = f"did you mean '{guess[0]}'?" if guess else f"known: {', '.join(known)}"
        return f"{origin}: {what}; {fix}"
    if kind == "missing":
        if len(loc) == 1:  # a whole section, e.g. [data]
            return f"{origin}: missing the [{loc[0]}] section; add it, e.g. {_SECTION_EXAMPLE.get(loc[0], f'[{loc[0]}]')}"
        return f"{origin}: missing required key '{key}'; add it, e.g. [{loc[0]}] {loc[-1]} = ..."
    if not loc:  # a cross-field rule: name the --set that took part in it, if one did
        message = error["msg"].removeprefix("Value error, ")
        sets = [item for key, item in overridden.items() if len(key) == 2 and ".".join(key) in message]
        if sets:
            origin = f"{where} with " + ", ".join(f"--set {item}" for item in dict.fromkeys(sets))
        return f"{origin}: {message}"
    bad = error.get("input")
    message = error["msg"].removeprefix("Value error, ").replace("Input should be", "expected")
    fix = ""
    if kind == "literal_error" and isinstance(bad, str):
        choices = re.findall(r"'([^']*)'", message)
        guess = close_names(bad, choices, n=1)
        fix = f"; did you mean '{guess[0]}'?" if guess else ""
    elif kind == "string_pattern_mismatch":
        message = 'expected "package.module:factory"'
    else:
        default = _default_of(loc)
        if default is not None:
            fix = f"; e.g. {loc[1]} = {json.dumps(default)} (the default)"
    return f"{origin}: {key} = {bad!r} is not valid: {message}{fix}"


def _default_of(loc: Sequence[str]) -> Any:
    model = _SECTIONS.get(loc[0]) if loc else None
    if model is None or len(loc) < 2 or loc[1] not in model.model_fields:
        return None
    field = model.model_fields[loc[1]]
    if field.is_required():
        return None
    return field.get_default(call_default_factory=True)


_HEADER = re.compile(r"^\s*\[\s*([^\]\[]+?)\s*\]\s*(#.*)?$")
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")


def _line_of(text: str, loc: Sequence[str]) -> int | None:
    """The 1-based line in ``text`` where the dotted key ``loc`` is set (tomllib gives no positions)."""
    target = [part for part in loc if not part.isdigit()]
    section: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            section = [part.strip().strip("\"'") for part in header.group(1).split(".")]
            if section == target:
                return number
            continue
        assign = _ASSIGN.match(line)
        if assign:
            key = section + [part.strip().strip("\"'") for part in assign.group(1).split(".")]
            if key[: len(target)] == target:  # also a dotted key below the one asked for
                return number
    # fall back to the section's header, e.g. for a missing key
    section = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header and [p.strip() for p in header.group(1).split(".")] == target[:1]:
            return number
    return None
