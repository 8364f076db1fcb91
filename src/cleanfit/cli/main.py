"""The ``cleanfit`` command.

Each subcommand lives in its own module under ``cleanfit.cli`` and is imported only when it runs.
User mistakes (any :class:`~cleanfit.errors.CleanfitError`, or a usage error) print one line to
stderr and exit with code 2; never a traceback. Exit code 1 is reserved for a gate that failed
(an audit with critical findings, a comparison that did not go the required way).
"""

from __future__ import annotations

import importlib
import sys

import click

from cleanfit import __version__
from cleanfit.errors import CleanfitError

# command name -> "module:attribute" of its click command
_COMMANDS: dict[str, str] = {
    "demo": "cleanfit.cli.train:demo",
    "audit": "cleanfit.cli.audit:audit",
    "train": "cleanfit.cli.train:train",
    "repro": "cleanfit.cli.train:repro",
    "compare": "cleanfit.cli.compare:compare",
    "predict": "cleanfit.cli.predict:predict",
    "init": "cleanfit.cli.init:init",
}

_HELP = {
    "demo": "The main job on a bundled real dataset.",
    "audit": "Audit a CSV/Parquet file for leakage.",
    "train": "Train from a TOML config.",
    "repro": "Train twice and report whether the results are identical.",
    "compare": "Compare two configs over paired seeds.",
    "predict": "Predict new rows with a trained run.",
    "init": "Write a starter cleanfit.toml for a table.",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = _COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, _HELP[name]) for name in _COMMANDS])


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cleanfit")
def cli() -> None:
    """cleanfit: train PyTorch models without fooling yourself."""


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; exits with 0, 1 (gate failed) or 2 (bad input)."""
    try:
        code = cli.main(args=argv, prog_name="cleanfit", standalone_mode=False)
    except CleanfitError as exc:
        click.echo(f"cleanfit: error: {_one_line(str(exc))}", err=True)
        sys.exit(2)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else "", err=True)
        sys.exit(2)
    except click.UsageError as exc:
        hint = f" (see 'cleanfit {exc.ctx.info_name} --help')" if exc.ctx and exc.ctx.parent else " (see 'cleanfit --help')"
        click.echo(f"cleanfit: error: {_one_line(exc.format_message())}{hint}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("cleanfit: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"cleanfit: error: {_one_line(exc.format_message())}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
