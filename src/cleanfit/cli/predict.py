"""``cleanfit predict RUN_DIR DATA [--out F]``: a trained run's predictions for new rows.

Without ``--out`` the predictions go to stdout as CSV; with it, to a CSV or Parquet file (by its suffix),
written only once every row has been checked and predicted. Notes (ignored columns, where the file went) go
to stderr, so stdout stays a clean CSV.
"""

from __future__ import annotations

from pathlib import Path

import click

from cleanfit._util.columns import shown
from cleanfit._util.files import check_writable
from cleanfit.pipeline.predict import out_format_ok, predict_file


@click.command("predict")
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(path_type=Path))
@click.argument("data", metavar="DATA", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path),
              help="Write the predictions to this .csv or .parquet file [default: CSV to stdout].")
def predict(run_dir: Path, data: Path, out: Path | None) -> int:
    """Predict DATA's rows (CSV/Parquet) with the model in RUN_DIR (the --out folder of `cleanfit train`).

    Writes `prediction` in the target's own values and, for classification, `proba_<label>` per class,
    in DATA's row order.
    """
    out_format_ok(out)
    check_writable(out, "--out")
    table, ignored = predict_file(run_dir, data, out)
    if ignored:
        click.echo(f"cleanfit: note: ignored {len(ignored)} column(s) the model does not use: {shown(ignored, 8)}",
                   err=True)
    if out is None:
        click.echo(table.to_csv(index=False), nl=False)
    else:
        click.echo(f"cleanfit: wrote {len(table)} predictions to {out}", err=True)
    return 0


__all__ = ["predict"]
