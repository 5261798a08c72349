"""`lla report table`: one of the paper's tables, the reproduced value next to the paper's.

    lla report table table1 --profile mini --results results/mini \\
        --md results/mini/tables/table1.md --csv results/mini/tables/table1.csv

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
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lla.config import DEFAULT_PARAMS, dataset_source, load_params, selected_profile
from lla.errors import DataError
from lla.io import atomic_write_text, read_json
from lla.runs import run_ids

PAPER_VALUES = Path(__file__).with_name("paper_values.yaml")
SOURCES = ("metrics", "analysis")
TABLE_KEYS = ("title", "dataset", "source", "columns", "rows")
DIVERGED_MARK = "—"
PARTLY_DIVERGED_MARK = "†"
NOT_AVAILABLE = "n/a"
DIGITS = 2


@dataclass(frozen=True)
class Cell:
    """One cell: the reproduced value and the paper's, in percent.

    ``reproduced`` / ``paper`` are None when there is no number: then ``*_diverged`` says
    whether that is because the run(s) did not converge (else: not available).
    ``reproduced`` is the mean over the experiment's runs that gave a number
    (``run_values``), ``reproduced_std`` their sample std (None for fewer than two);
    ``runs`` counts every run, ``diverged_runs`` those that stopped on a non-finite loss.
    """

    row_id: str
    row_label: str
    column: str
    experiment: str
    reproduced: float | None
    reproduced_diverged: bool
    paper: float | None
    paper_diverged: bool
    reproduced_std: float | None = None
    run_values: tuple[float, ...] = ()
    runs: int = 1
    diverged_runs: int = 0

    @property
    def difference(self) -> float | None:
        """reproduced - paper (percentage points), when both are numbers."""
        if self.reproduced is None or self.paper is None:
            return None
        return self.reproduced - self.paper


# ---------------------------------------------------------------------------- layout

def table_spec(params: dict[str, Any], name: str) -> dict[str, Any]:
    """The validated ``tables.<name>`` block (a DataError names the record otherwise)."""
    source = getattr(params, "path", DEFAULT_PARAMS)
    tables = params.get("tables") or {}
    record = f"tables.{name}"
    if name not in tables:
        raise DataError(source, f"unknown table '{name}' (known: {', '.join(tables) or 'none'})",
                        record=record)
    spec = tables[name]

    def fail(message: str):
        raise DataError(source, message, record=record)

    if not isinstance(spec, dict):
        fail("expected a mapping")
    missing = [key for key in TABLE_KEYS if key not in spec]
    if missing:
        fail(f"missing {', '.join(missing)}")
    if spec["source"] not in SOURCES:
        fail(f"source must be one of {', '.join(SOURCES)}, got {spec['source']!r}")
    columns, rows = spec["columns"], spec["rows"]
    if not isinstance(columns, dict) or not columns:
        fail("columns must be a non-empty mapping {label: metric key}")
    if not isinstance(rows, dict) or not rows:
        fail("rows must be a non-empty mapping {row id: {label, experiment | cells}}")
    experiments = params.get("experiments") or {}
    for row_id, row in rows.items():
        if not isinstance(row, dict) or "label" not in row or (
                ("experiment" in row) == ("cells" in row)):
            fail(f"row '{row_id}' needs a label and exactly one of experiment, cells")
        cells = row.get("cells") or {}
        unknown_columns = sorted(set(cells) - set(columns))
        if unknown_columns or ("cells" in row and set(cells) != set(columns)):
            fail(f"row '{row_id}': cells must name every column ({', '.join(columns)}) "
                 f"and no other")
        for experiment in ([row["experiment"]] if "experiment" in row else cells.values()):
            if experiment not in experiments:
                fail(f"row '{row_id}': unknown experiment '{experiment}'")
            if experiments[experiment].get("dataset") != spec["dataset"]:
                fail(f"row '{row_id}': experiment '{experiment}' is on "
                     f"{experiments[experiment].get('dataset')}, the table on {spec['dataset']}")
    return spec


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


def result_path(results_dir: str | Path, source: str, experiment: str) -> Path:
    """Where the pipeline writes ``experiment``'s json for a table ``source``."""
    results_dir = Path(results_dir)
    if source == "metrics":
        return results_dir / "metrics" / f"{experiment}.json"
    if source == "analysis":
        return results_dir / "analysis" / f"aar_{experiment}.json"
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


def aggregate_runs(values: list[tuple[float | None, bool]]
                   ) -> tuple[float | None, float | None, tuple[float, ...], bool, int]:
    """Combine the ``(percent, diverged)`` of an experiment's runs.

    Returns ``(mean, std, numbers, diverged, diverged_runs)``: the mean and sample std
    (None below two numbers) of the runs that gave a number; ``diverged`` is True when no
    run gave a number and at least one diverged (the cell shows "—").
    """
    numbers = tuple(v for v, _ in values if v is not None)
    diverged_runs = sum(1 for _, d in values if d)
    mean = statistics.fmean(numbers) if numbers else None
    std = statistics.stdev(numbers) if len(numbers) >= 2 else None
    return mean, std, numbers, (not numbers and diverged_runs > 0), diverged_runs


def build_cells(spec: dict[str, Any], table: str, results_dir: str | Path,
                paper: dict[str, Any], paper_source: str | Path = PAPER_VALUES,
                runs_of: Callable[[str], list[str]] | None = None) -> list[Cell]:
    """Every cell of ``table`` in table order (``paper``: the loaded paper values, read
    from ``paper_source``). ``runs_of(experiment)`` lists the run ids whose jsons are
    averaged (default: the experiment alone)."""
    runs_of = runs_of or (lambda experiment: [experiment])
    cells = []
    for row_id, column, experiment in cell_experiments(spec):
        runs = runs_of(experiment)
        mean, std, numbers, diverged, diverged_runs = aggregate_runs(
            [reproduced_value(result_path(results_dir, spec["source"], run),
                              spec["columns"][column]) for run in runs])
        paper_number, paper_diverged = paper_value(paper, table, row_id, column, paper_source)
        cells.append(Cell(row_id=row_id, row_label=spec["rows"][row_id]["label"], column=column,
                          experiment=experiment, reproduced=mean, reproduced_diverged=diverged,
                          paper=paper_number, paper_diverged=paper_diverged,
                          reproduced_std=std, run_values=numbers, runs=len(runs),
                          diverged_runs=diverged_runs))
    return cells


# ---------------------------------------------------------------------------- rendering

def _number(value: float | None, diverged: bool) -> str:
    if value is None:
        return DIVERGED_MARK if diverged else NOT_AVAILABLE
    return f"{value:.{DIGITS}f}"


def _reproduced(cell: Cell) -> str:
    text = _number(cell.reproduced, cell.reproduced_diverged)
    if cell.reproduced_std is not None:
        text += f" ± {cell.reproduced_std:.{DIGITS}f}"
    if cell.reproduced is not None and cell.diverged_runs:
        text += PARTLY_DIVERGED_MARK
    return text


def _difference(value: float | None) -> str:
    return "" if value is None else f"{value:+.{DIGITS}f}"


def render_markdown(spec: dict[str, Any], cells: list[Cell], *, profile: str,
                    data_source: str) -> str:
    """A markdown table: per column the reproduced value, the paper's and the difference."""
    columns = list(spec["columns"])
    dataset = spec["dataset"] if data_source == "download" else f"synthcrowd ({spec['dataset']} layout)"
    seeds = sorted({c.runs for c in cells})
    seed_note = "" if seeds == [1] else (
        f" Experiments with several seeds show mean ± sample std over "
        f"{' or '.join(map(str, seeds))} seeds (Δ from the mean).")
    lines = [f"#### {spec['title']}", "",
             f"Profile `{profile}`, dataset: {dataset}. Values in percent "
             f"(reproduced | paper | reproduced - paper).{seed_note}", ""]
    header = ["Method"] + [f"{c} {part}" for c in columns for part in ("(ours)", "(paper)", "Δ")]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    by_row: dict[str, list[Cell]] = {}
    for cell in cells:
        by_row.setdefault(cell.row_id, []).append(cell)
    for row_cells in by_row.values():
        parts = [row_cells[0].row_label]
        for cell in row_cells:
            parts += [_reproduced(cell),
                      _number(cell.paper, cell.paper_diverged), _difference(cell.difference)]
        lines.append("| " + " | ".join(parts) + " |")
    notes = []
    if any(c.reproduced_diverged or c.paper_diverged for c in cells):
        notes.append(f"{DIVERGED_MARK}: training did not converge (stopped on a non-finite loss; "
                     "the paper's \"-\").")
    if any(c.reproduced is not None and c.diverged_runs for c in cells):
        notes.append(f"{PARTLY_DIVERGED_MARK}: some of the experiment's seeds did not converge; "
                     "the value is over the others (csv: runs, diverged_runs).")
    if any((c.reproduced is None and not c.reproduced_diverged)
           or (c.paper is None and not c.paper_diverged) for c in cells):
        notes.append(f"{NOT_AVAILABLE}: no value (no valid ground truth in the setup, or the "
                     "paper's cell is not legible).")
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"


CSV_FIELDS = ("row_id", "method", "column", "experiment", "reproduced", "paper", "difference",
              "reproduced_status", "paper_status", "reproduced_std", "runs", "diverged_runs",
              "run_values")


def _status(value: float | None, diverged: bool) -> str:
    return "ok" if value is not None else ("diverged" if diverged else "missing")


def render_csv(cells: list[Cell]) -> str:
    """One line per cell; numbers in percent with full precision, empty when absent."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for cell in cells:
        writer.writerow({
            "row_id": cell.row_id, "method": cell.row_label, "column": cell.column,
            "experiment": cell.experiment,
            "reproduced": "" if cell.reproduced is None else round(cell.reproduced, 6),
            "paper": "" if cell.paper is None else cell.paper,
            "difference": "" if cell.difference is None else round(cell.difference, 6),
            "reproduced_status": _status(cell.reproduced, cell.reproduced_diverged),
            "paper_status": _status(cell.paper, cell.paper_diverged),
            "reproduced_std": "" if cell.reproduced_std is None else round(cell.reproduced_std, 6),
            "runs": cell.runs, "diverged_runs": cell.diverged_runs,
            "run_values": ";".join(f"{v:.6f}" for v in cell.run_values)})
    return out.getvalue()


# ---------------------------------------------------------------------------- CLI

def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "table", help="render one paper table (reproduced | paper | difference) as md + csv",
        description="Fill a table of params.yaml's `tables` block from the per-experiment "
                    "result jsons and the paper's values.")
    parser.add_argument("name", help="a key of the tables block (table1 ... table7)")
    parser.add_argument("--profile", help="the profile the results belong to "
                                          "(default: the top-level 'profile' of the params)")
    parser.add_argument("--results", type=Path,
                        help="results directory holding metrics/ and analysis/ "
                             "(default: results/<profile>)")
    parser.add_argument("--md", type=Path, required=True, help="markdown table to write")
    parser.add_argument("--csv", type=Path, required=True, help="csv table to write")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS,
                        help="parameter file (default: params.yaml)")
    parser.add_argument("--paper-values", type=Path, default=PAPER_VALUES,
                        help="the paper's numbers (default: the packaged paper_values.yaml)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    profile = selected_profile(params, args.profile)
    spec = table_spec(params, args.name)
    results = args.results or Path("results") / profile
    cells = build_cells(spec, args.name, results, load_paper_values(args.paper_values),
                        args.paper_values, runs_of=lambda e: run_ids(params, e, profile))
    source = dataset_source(params, profile, spec["dataset"])
    atomic_write_text(args.md, render_markdown(spec, cells, profile=profile, data_source=source))
    atomic_write_text(args.csv, render_csv(cells))
    return 0
