"""``cleanfit compare A.toml B.toml``: train both configs over paired seeds and say which is better."""

from __future__ import annotations

from pathlib import Path

import click

from cleanfit._util.files import check_writable, write_json_output
from cleanfit.comparison.compare import compare as run_compare
from cleanfit.errors import ConfigError


@click.command("compare")
@click.argument("config_a", metavar="A.toml", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("config_b", metavar="B.toml", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seeds", type=int, default=10, show_default=True, help="Paired seeds to train each config on (2 or more).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the comparison (per-seed scores, interval, verdict) as JSON to this file.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Save the per-seed paired-scores plot (PNG) to this file.")
@click.option("--require", type=click.Choice(["a", "b", "tie"]),
              help="Exit with code 1 unless the verdict is this (use as a gate in CI).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a field of both configs, e.g. --set train.epochs=5 (repeatable).")
@click.option("--metric", help="Metric to compare, e.g. val_auc (default: accuracy for classification, rmse for regression).")
@click.option("--split", "split_name", type=click.Choice(["val", "test"]), default="val", show_default=True,
              help="Measure the metric on the validation or the test rows.")
@click.option("--vary-split", is_flag=True, help="Also vary split.seed with the seed (split noise included).")
@click.option("--workers", type=int, default=1, show_default=True, help="Run seeds in this many processes.")
@click.option("--quiet", "-q", is_flag=True, help="Do not print a line per finished run.")
@click.pass_context
def compare(
    ctx: click.Context,
    config_a: Path,
    config_b: Path,
    seeds: int,
    json_path: Path | None,
    plot_path: Path | None,
    require: str | None,
    overrides: tuple[str, ...],
    metric: str | None,
    split_name: str,
    vary_split: bool,
    workers: int,
    quiet: bool,
) -> None:
    """Train A.toml and B.toml on the same seeds and compare them pair by pair.

    Prints the per-seed scores, the 95% paired t interval of the mean difference (b - a) and the
    verdict: a, b, or tie when the interval contains 0. Exit code 0; with --require X, 1 unless the
    verdict is X; 2 for bad input. Tracking follows A's [tracking] section.
    """
    # an output that cannot be written fails now, not after every seed has trained
    check_writable(json_path, "--json", make_folder=True)
    check_writable(plot_path, "--plot", make_folder=True)
    result = run_compare(
        config_a, config_b, seeds=seeds, metric=metric, split=split_name, vary_split=vary_split,
        overrides=overrides, workers=workers, progress=not quiet,
    )
    click.echo(str(result))
    if json_path is not None:
        write_json_output(json_path, result.to_dict())
    if plot_path is not None:
        try:
            result.plot(plot_path)
        except OSError as exc:
            raise ConfigError(f"--plot {plot_path}: cannot write it ({exc.strerror})") from None
    if require is not None and result.verdict != require:
        click.echo(f"cleanfit compare: --require {require} failed: the verdict is {result.verdict}", err=True)
        ctx.exit(1)
    ctx.exit(0)
