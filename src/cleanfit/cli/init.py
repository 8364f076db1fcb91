"""``cleanfit init DATA --target COL [--time COL] [--group COL]``: write a starter ``cleanfit.toml``.

The file lists every section and setting with its default and a one-line comment, and what was inferred
from DATA (the task, the split, the columns; text columns a model should not use are already in ``drop``).
An existing file is never overwritten.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from cleanfit._util.files import write_atomic
from cleanfit.data.tables import read_table
from cleanfit.errors import ConfigError
from cleanfit.pipeline.init import starter_config


@click.command("init")
@click.argument("data", metavar="DATA", type=click.Path(path_type=Path))
@click.option("--target", required=True, metavar="COL", help="The column to predict.")
@click.option("--time", "time_column", metavar="COL", help="A time column (the split becomes by time).")
@click.option("--group", metavar="COL", help="An entity column (no entity in two parts).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("cleanfit.toml"), show_default=True,
              help="Where to write the config.")
def init(data: Path, target: str, time_column: str | None, group: str | None, out: Path) -> int:
    """Write a starter config for DATA with every setting, its default and what it does."""
    if out.exists():
        raise ConfigError(f"--out {out} already exists; pass --out NEW.toml, or delete it to write it again")
    if not out.parent.resolve().is_dir():
        raise ConfigError(f"--out {out}: the folder {out.parent} does not exist; create it first")
    frame = read_table(data)
    relative = os.path.relpath(data.resolve(), out.parent.resolve())
    text = starter_config(frame, Path(relative).as_posix(), target=target, time=time_column, group=group)
    write_atomic(out, text)
    click.echo(f"cleanfit: wrote {out}; train it with: cleanfit train {out}")
    return 0


__all__ = ["init"]
