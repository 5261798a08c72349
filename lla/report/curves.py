"""`lla report curves`: every run's training curves as one csv each, for `dvc plots`.

    lla report curves --profile mini     # every run the tables read -> results/mini/curves/
    lla report curves --runs runs/mini/retinanet_r50 runs/mini/lla_fcos_r50 --out-dir DIR

DVCLive writes one tsv per logged value into each run directory
(``<run>/dvclive/plots/metrics/train/<name>.tsv``: columns ``step`` and ``<name>``; see
:mod:`lla.engine.progress`). This command joins a run's tsvs on ``step`` into
``<out-dir>/<run>.csv`` with columns ``step, loss, loss_cls, ... , lr`` (the loss terms a
detector logs differ: ``loss_aux`` only with a centerness/IoU branch). One directory of
such files is what ``dvc.yaml``'s top-level ``plots`` draws (x: step, y: loss), one curve
per run, comparable across git revisions with ``dvc plots diff``.

A run without DVCLive files is an error naming it; a tsv whose rows do not parse is an
error naming the file and line.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
from pathlib import Path

from lla import layout, options
from lla.config import load_params, selected_profile
from lla.errors import DataError
from lla.io import atomic_write_text
from lla.report import tables

logger = logging.getLogger(__name__)

METRICS_DIR = Path("dvclive") / "plots" / "metrics" / "train"


def read_metric(path: Path) -> dict[int, float]:
    """``{step: value}`` of one DVCLive tsv (columns ``step`` and the metric's name)."""
    name = path.stem
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if reader.fieldnames is None or "step" not in reader.fieldnames or name not in reader.fieldnames:
            raise DataError(path, f"expected tab-separated columns 'step' and '{name}', "
                                  f"got {reader.fieldnames}", line=1)
        values = {}
        for line, row in enumerate(reader, start=2):
            try:
                values[int(row["step"])] = float(row[name])
            except (TypeError, ValueError):
                raise DataError(path, f"not a step and a number: {row}", line=line) from None
    return values


def run_curves(run_dir: Path) -> tuple[list[str], list[list[float | int | None]]]:
    """``(columns, rows)`` of a run: ``step`` then ``loss``, the other loss terms (sorted)
    and ``lr``; one row per logged step, ascending; a value missing at a step is None."""
    metrics_dir = run_dir / METRICS_DIR
    files = sorted(metrics_dir.glob("*.tsv")) if metrics_dir.is_dir() else []
    if not files:
        raise DataError(run_dir, f"no training curves ({METRICS_DIR}/*.tsv): not a trained run?")
    metrics = {path.stem: read_metric(path) for path in files}
    order = sorted(metrics, key=lambda n: (n != "loss", n == "lr", n))
    steps = sorted(set().union(*(m.keys() for m in metrics.values())))
    rows = [[step] + [metrics[name].get(step) for name in order] for step in steps]
    return ["step"] + order, rows


def render_csv(columns: list[str], rows: list[list[float | int | None]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return out.getvalue()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "curves", parents=[options.SETTINGS],
        help="training curves of runs (DVCLive tsvs) as one csv per run, for dvc plots",
        description="Join each run's DVCLive tsv files on step into <out-dir>/<run>.csv.")
    parser.add_argument("--runs", type=Path, nargs="+", metavar="RUN_DIR",
                        help="run directories (default: runs/<profile>/<run> of every run the "
                             "tables read)")
    options.add_out_dir(parser, "directory of the csv files", default="results/<profile>/curves")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_dirs, out_dir = args.runs, args.out_dir
    if run_dirs is None or out_dir is None:  # the profile's defaults
        params = load_params(args.params)
        profile = selected_profile(params, args.profile)
        run_dirs = run_dirs or [layout.run_dir(profile, run)
                                for run in tables.table_runs(params, profile)]
        out_dir = out_dir or layout.results(profile).curves_dir
    curves = {run_dir.name: run_curves(run_dir) for run_dir in run_dirs}  # all checked first
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (columns, rows) in curves.items():
        atomic_write_text(out_dir / f"{name}.csv", render_csv(columns, rows))
    logger.info("%d runs' curves -> %s", len(curves), out_dir)
    return 0
