"""`lla report table`: one of the paper's tables, the reproduced value next to the paper's.

    lla report table table1 --profile mini     # -> results/mini/tables/table1.{md,csv}
    lla report table table1 --profile mini --results DIR --out-dir DIR

The layout of every table lives in ``params.yaml`` (``tables.<name>``: columns, rows and
which experiment fills which cell); the paper's numbers in ``paper_values.yaml`` next to
this module (by table, row id and column). The renderer itself knows no table.

Cell values are read from the per-experiment json files of the pipeline:

* ``source: metrics``  -> ``<results>/metrics/<experiment>.json`` (``lla eval``)
* ``source: analysis`` -> ``<results>/analysis/aar_<experiment>.json`` (``lla analyze aar``)

Both hold fractions; tables show percent, like the paper. An experiment trained with
several seeds (``seeds`` in params.yaml, run ids from :mod:`lla.runs`) reads one json per
run and shows ``mean ± std`` (sample standard deviation, n - 1) in the markdown; the csv
keeps the mean, the std and every run's value. A result json with ``"diverged": true`` (a
training run stopped on a non-finite loss) is shown as "—" with a footnote, as is the
paper's own "-" (``null`` in ``paper_values.yaml``); when only some seeds diverged, the
others are averaged and the cell is marked. A negative value (CityPersons: a setup
without valid ground truth) is shown as "n/a".

One pandas DataFrame holds a table (:func:`load_table_frame`: one row per cell, the seeds
aggregated with a groupby); it is rendered once to markdown, csv and HTML here, and the
claims (:mod:`lla.report.claims`) and the paper report read the same frame.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from lla import layout, options
from lla.config import DEFAULT_PARAMS, dataset_source, load_params, selected_profile
from lla.errors import DataError
from lla.io import atomic_write_text, read_json
from lla.report import markup
from lla.runs import run_ids

PAPER_VALUES = Path(__file__).with_name("paper_values.yaml")
SOURCES = ("metrics", "analysis")
DIVERGED_MARK = "—"
PARTLY_DIVERGED_MARK = "†"
NOT_AVAILABLE = "n/a"
DIGITS = 2
CSV_DECIMALS = 6


# ---------------------------------------------------------------------------- layout

def table_spec(params: dict[str, Any], name: str) -> dict[str, Any]:
    """The ``tables.<name>`` block (validated with params: lla.config.validate_params)."""
    tables = params.get("tables") or {}
    if name not in tables:
        raise DataError(getattr(params, "path", DEFAULT_PARAMS),
                        f"unknown table '{name}' (known: {', '.join(tables) or 'none'})",
                        record=f"tables.{name}")
    return tables[name]


def cell_experiments(spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(row id, column label, experiment)`` of every cell, in table order."""
    out = []
    for row_id, row in spec["rows"].items():
        for column in spec["columns"]:
            experiment = row["cells"][column] if "cells" in row else row["experiment"]
            out.append((row_id, column, experiment))
    return out


def table_experiments(params: dict[str, Any], name: str) -> list[str]:
    """The experiments a table reads, each once, in table order."""
    return list(dict.fromkeys(e for _, _, e in cell_experiments(table_spec(params, name))))


def table_runs(params: dict[str, Any], profile: str) -> list[str]:
    """Every run (run id, :mod:`lla.runs`) the tables read, each once, in table order."""
    experiments = dict.fromkeys(e for table in params.get("tables") or {}
                                for e in table_experiments(params, table))
    return [run for experiment in experiments for run in run_ids(params, experiment, profile)]


def result_path(results_dir: str | Path, source: str, experiment: str) -> Path:
    """Where the pipeline writes ``experiment``'s json for a table ``source``."""
    files = layout.Results(Path(results_dir))
    if source == "metrics":
        return files.metrics(experiment)
    if source == "analysis":
        return files.analysis("aar", experiment)
    raise ValueError(f"source must be one of {SOURCES}, got {source!r}")


# ---------------------------------------------------------------------------- values

def load_paper_values(path: str | Path = PAPER_VALUES) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            values = yaml.safe_load(f)
    except FileNotFoundError:
        raise DataError(path, "paper values file not found") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise DataError(path, f"invalid YAML: {getattr(e, 'problem', e)}",
                        line=None if mark is None else mark.line + 1) from None
    if not isinstance(values, dict):
        raise DataError(path, "expected a mapping {table: {row id: {column: value}}}")
    return values


def paper_value(values: dict[str, Any], table: str, row_id: str, column: str,
                source: str | Path = PAPER_VALUES) -> tuple[float | None, bool]:
    """``(value, diverged)``: the paper's number, or (None, True) for its "-", or
    (None, False) when the cell is not recorded (not legible in the paper)."""
    row = (values.get(table) or {}).get(row_id) or {}
    if column not in row:
        return None, False
    value = row[column]
    if value is None:
        return None, True
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(source, f"expected a number or null, got {value!r}",
                        record=f"{table}.{row_id}.{column}")
    return float(value), False


def reproduced_value(path: Path, metric: str) -> tuple[float | None, bool]:
    """``(percent, diverged)`` of ``metric`` in a result json (see the module docstring)."""
    result = read_json(path)
    if not isinstance(result, dict):
        raise DataError(path, "expected a json object of metrics")
    if result.get("diverged") is True:
        return None, True
    if metric not in result:
        raise DataError(path, f"no metric '{metric}' (has: {', '.join(result) or 'nothing'})")
    value = result[metric]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(path, f"metric '{metric}' is {value!r}, expected a number")
    if value < 0:
        return None, False
    return 100.0 * float(value), False


# ---------------------------------------------------------------------------- the frame

def run_frame(spec: dict[str, Any], results_dir: str | Path,
              runs_of: Callable[[str], list[str]] | None = None) -> pd.DataFrame:
    """One row per cell and run, in table order: ``row_id, column, experiment, run,
    value`` (percent; NaN when the run gave no number) and ``diverged``.
    ``runs_of(experiment)`` lists the run ids whose jsons are read (default: the
    experiment alone)."""
    runs_of = runs_of or (lambda experiment: [experiment])
    records = []
    for row_id, column, experiment in cell_experiments(spec):
        for run in runs_of(experiment):
            value, diverged = reproduced_value(result_path(results_dir, spec["source"], run),
                                               spec["columns"][column])
            records.append({"row_id": row_id, "column": column, "experiment": experiment,
                            "run": run, "value": math.nan if value is None else value,
                            "diverged": diverged})
    return pd.DataFrame.from_records(
        records, columns=["row_id", "column", "experiment", "run", "value", "diverged"])


def _status(has_number: bool, diverged: bool) -> str:
    return "ok" if has_number else ("diverged" if diverged else "missing")


def aggregate_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Seeds aggregated per cell (groupby row and column, table order kept):
    ``reproduced`` (mean of the runs that gave a number), ``reproduced_std`` (their sample
    std, n - 1; NaN below two), ``run_values`` (those numbers, a tuple), ``runs`` (every
    run), ``diverged_runs`` and ``reproduced_status``: ok, or diverged when no run gave a
    number and at least one diverged (else missing)."""
    cells = runs.groupby(["row_id", "column"], sort=False).agg(
        experiment=("experiment", "first"),
        reproduced=("value", "mean"),
        reproduced_std=("value", "std"),
        run_values=("value", lambda v: tuple(float(x) for x in v.dropna())),
        runs=("run", "size"),
        diverged_runs=("diverged", "sum"),
    ).reset_index()
    cells["diverged_runs"] = cells["diverged_runs"].astype(int)
    cells["reproduced_status"] = [
        _status(bool(values), diverged > 0)
        for values, diverged in zip(cells["run_values"], cells["diverged_runs"])]
    return cells


def table_frame(spec: dict[str, Any], table: str, results_dir: str | Path,
                paper: dict[str, Any], paper_source: str | Path = PAPER_VALUES,
                runs_of: Callable[[str], list[str]] | None = None) -> pd.DataFrame:
    """Every cell of ``table``, one row each in table order, with the columns of
    :data:`FRAME_COLUMNS`: the reproduced value (seeds aggregated, :func:`aggregate_runs`),
    the paper's (``paper``: the loaded paper values, read from ``paper_source``; NaN for
    its "-", status diverged, or a cell it does not have, status missing) and
    ``difference`` = reproduced - paper (percentage points). Values in percent."""
    cells = aggregate_runs(run_frame(spec, results_dir, runs_of))
    paper_cells = [paper_value(paper, table, row_id, column, paper_source)
                   for row_id, column in zip(cells["row_id"], cells["column"])]
    cells["method"] = [spec["rows"][row_id]["label"] for row_id in cells["row_id"]]
    cells["paper"] = [math.nan if value is None else value for value, _ in paper_cells]
    cells["paper_status"] = [_status(value is not None, diverged)
                             for value, diverged in paper_cells]
    cells["difference"] = cells["reproduced"] - cells["paper"]
    return cells[list(FRAME_COLUMNS)]


FRAME_COLUMNS = ("row_id", "method", "column", "experiment", "reproduced", "paper",
                 "difference", "reproduced_status", "paper_status", "reproduced_std", "runs",
                 "diverged_runs", "run_values")


def load_table_frame(params: dict[str, Any], name: str, results_dir: str | Path,
                     profile: str, paper_values: str | Path = PAPER_VALUES) -> pd.DataFrame:
    """The frame of table ``name`` from a run's result jsons (every run of each
    experiment, :func:`lla.runs.run_ids`): what `lla report table`, the claims and the
    paper report all read."""
    spec = table_spec(params, name)
    return table_frame(spec, name, results_dir, load_paper_values(paper_values), paper_values,
                       runs_of=lambda experiment: run_ids(params, experiment, profile))


# ---------------------------------------------------------------------------- rendering

def _number(value: float, status: str) -> str:
    if status != "ok":
        return DIVERGED_MARK if status == "diverged" else NOT_AVAILABLE
    return f"{value:.{DIGITS}f}"


def _reproduced(cell: Any) -> str:
    text = _number(cell.reproduced, cell.reproduced_status)
    if not math.isnan(cell.reproduced_std):
        text += f" ± {cell.reproduced_std:.{DIGITS}f}"
    if cell.reproduced_status == "ok" and cell.diverged_runs:
        text += PARTLY_DIVERGED_MARK
    return text


def _difference(value: float) -> str:
    return "" if math.isnan(value) else f"{value:+.{DIGITS}f}"


def display_frame(cells: pd.DataFrame) -> pd.DataFrame:
    """The table as shown: one row per method, per column the reproduced value (mean ±
    std over seeds), the paper's and the difference, as text."""
    shown = pd.DataFrame({
        "row_id": cells["row_id"], "Method": cells["method"], "column": cells["column"],
        "ours": [_reproduced(cell) for cell in cells.itertuples()],
        "paper": [_number(v, s) for v, s in zip(cells["paper"], cells["paper_status"])],
        "Δ": [_difference(v) for v in cells["difference"]]})
    wide = shown.pivot(index=["row_id", "Method"], columns="column",
                       values=["ours", "paper", "Δ"])
    columns = list(dict.fromkeys(cells["column"]))
    rows = list(dict.fromkeys(zip(cells["row_id"], cells["method"])))
    wide = wide.reindex(index=pd.MultiIndex.from_tuples(rows, names=["row_id", "Method"]),
                        columns=[(part, column) for column in columns
                                 for part in ("ours", "paper", "Δ")])
    labels = {"ours": "(ours)", "paper": "(paper)", "Δ": "Δ"}
    wide.columns = [f"{column} {labels[part]}" for part, column in wide.columns]
    return wide.reset_index(level="Method").reset_index(drop=True)


def table_header(spec: dict[str, Any], cells: pd.DataFrame, *, profile: str,
                 data_source: str) -> str:
    """The table's title and the paragraph under it (markdown)."""
    dataset = spec["dataset"] if data_source == "download" else f"synthcrowd ({spec['dataset']} layout)"
    seeds = sorted(set(int(n) for n in cells["runs"]))
    seed_note = "" if seeds == [1] else (
        f" Experiments with several seeds show mean ± sample std over "
        f"{' or '.join(map(str, seeds))} seeds (Δ from the mean).")
    return (f"#### {spec['title']}\n\nProfile `{profile}`, dataset: {dataset}. Values in "
            f"percent (reproduced | paper | reproduced - paper).{seed_note}")


def table_notes(cells: pd.DataFrame) -> str:
    """The footnotes of the marks the table uses (markdown; empty when none)."""
    statuses = set(cells["reproduced_status"]) | set(cells["paper_status"])
    notes = []
    if "diverged" in statuses:
        notes.append(f"{DIVERGED_MARK}: training did not converge (stopped on a non-finite loss; "
                     "the paper's \"-\").")
    if ((cells["reproduced_status"] == "ok") & (cells["diverged_runs"] > 0)).any():
        notes.append(f"{PARTLY_DIVERGED_MARK}: some of the experiment's seeds did not converge; "
                     "the value is over the others (csv: runs, diverged_runs).")
    if "missing" in statuses:
        notes.append(f"{NOT_AVAILABLE}: no value (no valid ground truth in the setup, or the "
                     "paper's cell is not legible).")
    return "\n".join(notes)


def render_markdown(spec: dict[str, Any], cells: pd.DataFrame, *, profile: str,
                    data_source: str) -> str:
    """A markdown table: per column the reproduced value, the paper's and the difference."""
    parts = [table_header(spec, cells, profile=profile, data_source=data_source),
             markup.markdown_table(display_frame(cells))]
    notes = table_notes(cells)
    return "\n\n".join(parts + ([notes] if notes else [])) + "\n"


def render_html(spec: dict[str, Any], cells: pd.DataFrame, *, profile: str,
                data_source: str) -> str:
    """The same table as HTML (title, paragraph and notes through the markdown renderer)."""
    notes = table_notes(cells)
    return "\n".join([
        markup.markdown_to_html(table_header(spec, cells, profile=profile,
                                             data_source=data_source)),
        markup.html_table(display_frame(cells)),
        markup.markdown_to_html(notes) if notes else ""])


def render_csv(cells: pd.DataFrame) -> str:
    """One line per cell; numbers in percent rounded to 6 decimals, empty when absent;
    ``run_values``: every run's number, ``;``-separated."""
    out = cells.copy()
    for column in ("reproduced", "difference", "reproduced_std"):
        out[column] = out[column].map(lambda v: round(v, CSV_DECIMALS))
    out["run_values"] = out["run_values"].map(
        lambda values: ";".join(f"{v:.{CSV_DECIMALS}f}" for v in values))
    return out.to_csv(index=False, lineterminator="\n", na_rep="")


# ---------------------------------------------------------------------------- CLI

def _report_options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False, parents=[options.SETTINGS, options.RESULTS])
    parser.add_argument("--paper-values", type=Path, default=PAPER_VALUES, metavar="FILE",
                        help="the paper's numbers (default: the packaged paper_values.yaml)")
    return parser


REPORT_OPTIONS = _report_options()
"""The inputs of the report commands that read the results and the paper's numbers:
``--params --profile --results --paper-values``."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "table", parents=[REPORT_OPTIONS],
        help="render one paper table (reproduced | paper | difference) as md + csv",
        description="Fill a table of params.yaml's `tables` block from the per-experiment "
                    "result jsons and the paper's values; write <out-dir>/<name>.md and "
                    "<out-dir>/<name>.csv.")
    parser.add_argument("name", help="a key of the tables block (table1 ... table7)")
    options.add_out_dir(parser, "directory receiving <name>.md and <name>.csv",
                        default="results/<profile>/tables")
    parser.set_defaults(func=run)

def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    profile = selected_profile(params, args.profile)
    spec = table_spec(params, args.name)
    results = args.results or layout.results(profile).root
    cells = load_table_frame(params, args.name, results, profile, args.paper_values)
    source = dataset_source(params, profile, spec["dataset"])
    out_dir = args.out_dir or layout.results(profile).tables_dir
    atomic_write_text(layout.table_file(out_dir, args.name, "md"),
                      render_markdown(spec, cells, profile=profile, data_source=source))
    atomic_write_text(layout.table_file(out_dir, args.name, "csv"), render_csv(cells))
    return 0
