"""The ``cleanfit`` command.

Each subcommand lives in its own module under ``cleanfit.cli`` and is imported only when it runs.
User mistakes (any :class:`~cleanfit.errors.CleanfitError`, or a usage error) print one line to
stderr and exit with code 2; never a traceback. Exit code 1 is reserved for a gate that failed
(an audit with critical findings, a comparison that did not go the required way).
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading

import click

from cleanfit import __version__
from cleanfit._util.files import DiskFull, disk_full_message
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


# Errors raised by the Python API name its arguments; on the command line the same advice names the options.
_CLI_WORDS = (("fit(..., resume=True)", "--resume"), ("resume with resume=True", "run again with --resume"),
              ("resume=True", "--resume"), ("use by='random'", "use a random split (--by random, or split.by = \"random\")"),
              ("(or use by='random')", "(or use a random split: --by random, or split.by = \"random\")"))


def _one_line(message: str) -> str:
    text = " ".join(str(message).split())
    for api, cli in _CLI_WORDS:
        text = text.replace(api, cli)
    return text


class Terminated(KeyboardInterrupt):
    """SIGTERM (what ``kill`` and job schedulers send), raised where the process is, like Ctrl-C: the
    run is recorded as killed (``run.json`` "killed", the MLflow run KILLED) and the exit code is 143."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; exits with 0, 1 (gate failed), 2 (bad input), 130 (Ctrl-C)
    or 143 (SIGTERM)."""
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if on_main_thread else None
    try:
        _main(argv)
    finally:  # unless something chose otherwise since (a DDP rank stopping with an error ignores SIGTERM)
        if on_main_thread and signal.getsignal(signal.SIGTERM) is _terminate:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> None:
    try:
        code = cli.main(args=argv, prog_name="cleanfit", standalone_mode=False)
    except CleanfitError as exc:
        click.echo(f"cleanfit: error: {_one_line(str(exc))}", err=True)
        sys.exit(2)
    except DiskFull as exc:
        click.echo(f"cleanfit: error: {_one_line(disk_full_message(exc))}", err=True)
        sys.exit(2)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else "", err=True)
        sys.exit(2)
    except click.UsageError as exc:
        hint = f" (see 'cleanfit {exc.ctx.info_name} --help')" if exc.ctx and exc.ctx.parent else " (see 'cleanfit --help')"
        click.echo(f"cleanfit: error: {_one_line(exc.format_message())}{hint}", err=True)
        sys.exit(2)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, Terminated):
            click.echo("cleanfit: terminated (SIGTERM); resume with --resume", err=True)
            sys.exit(128 + signal.SIGTERM)
        click.echo("cleanfit: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"cleanfit: error: {_one_line(exc.format_message())}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
