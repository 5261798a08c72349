"""`lla report claims`: the paper's claims, checked on a run's tables with the seeds' spread.

    lla report claims --profile mini --tables results/mini/tables --analysis results/mini/analysis \\
        --md results/mini/tables/claims.md --csv results/mini/tables/claims.csv

Each claim of ``params.yaml`` ``claims:`` compares cells of the rendered tables
(``<tables>/<table>.csv``, one value per run in ``run_values``, see
:mod:`lla.report.tables`) or the visible-box statistic (``<analysis>/visible_<run>.json``):

* ``compare`` (default): ``method`` vs ``baseline`` (row ids of ``table``) in ``column``;
  ``better: lower | higher``. With runs ``a`` (method) and ``b`` (baseline), the difference
  of the means ``d = mean(a) - mean(b)`` and its standard error
  ``se = sqrt(var(a)/n_a + var(b)/n_b)`` (sample variances, Welch) give the verdict:
  ``holds`` when ``d`` points the claimed way and ``|d| >= 2 se``; ``reversed`` when it
  points the other way and ``|d| >= 2 se``; ``within noise`` otherwise. With a single run
  on either side the spread is unknown: ``holds (1 run)`` / ``reversed (1 run)`` by the
  sign alone.
* ``flat``: the rows of ``table`` (``rows``) in ``column`` vary little: their range
  ``max - min`` of the means against the seed noise, ``noise`` = the pooled sample std of
  the same column over the multi-run cells of ``noise_table``. ``holds`` when
  ``range <= 2 × noise`` (as flat as two runs of one setting may differ), else ``varies``.
* ``visible``: like ``compare`` on the share of an occluded GT's positives inside its
  visible box (``occluded.mean_fraction`` of ``lla analyze visible``), ``method`` and
  ``baseline`` being experiments; ``better: higher``.

Values are percent (tables) or percent of positives (visible). The markdown states each
claim, our numbers (mean ± std, runs), the difference and the verdict: an honest summary of
what the run shows, not a pass/fail test.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lla.config import DEFAULT_PARAMS, load_params, selected_profile
from lla.errors import DataError
from lla.io import atomic_write_text

KINDS = ("compare", "flat", "visible")
NOISE_FACTOR = 2.0   # |difference| >= 2 standard errors: about a 95 % two-sided level


@dataclass(frozen=True)
class Verdict:
    """One checked claim: ``ours`` and ``reference`` are the texts of the two sides,
    ``difference`` in points (method - baseline, or the range for ``flat``)."""

    claim: str
    ours: str
    reference: str
    difference: float | None
    scale: float | None      # the standard error (compare) or the noise (flat)
    verdict: str


# ---------------------------------------------------------------------------- inputs

def table_runs(path: Path) -> dict[tuple[str, str], list[float]]:
    """``{(row id, column): [value of each run]}`` of a table csv written by `lla report table`."""
    if not path.is_file():
        raise DataError(path, "table csv not found (run `lla report table` first)")
    cells = {}
    with open(path, encoding="utf-8", newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                text = row["run_values"]
                cells[(row["row_id"], row["column"])] = [float(v) for v in text.split(";") if v]
            except (KeyError, ValueError) as e:
                raise DataError(path, f"not a table csv of `lla report table` ({e})",
                                line=line) from None
    return cells


def visible_runs(analysis_dir: Path, runs: list[str]) -> list[float]:
    """The occluded GTs' mean share (percent) of positives inside the visible box, per run
    (runs that diverged or had no occluded positive are left out)."""
    from lla.analysis.visible import load_result, result_path

    values = []
    for run in runs:
        result = load_result(result_path(analysis_dir, run))
        if result.get("diverged") is True:
            continue
        value = result["occluded"]["mean_fraction"]
        if value is not None:
            values.append(100.0 * value)
    return values


# ---------------------------------------------------------------------------- statistics

def mean_std_text(values: list[float]) -> str:
    if not values:
        return "n/a"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.2f} (1 run)"
    return f"{mean:.2f} ± {statistics.stdev(values):.2f} ({len(values)} runs)"


def compare_runs(method: list[float], baseline: list[float], better: str
                 ) -> tuple[float | None, float | None, str]:
    """``(difference, standard error, verdict)`` of method vs baseline (module docstring)."""
    if not method or not baseline:
        return None, None, "no value"
    difference = statistics.fmean(method) - statistics.fmean(baseline)
    improves = difference < 0 if better == "lower" else difference > 0
    if len(method) < 2 or len(baseline) < 2:
        if difference == 0:
            return difference, None, "equal (1 run)"
        return difference, None, "holds (1 run)" if improves else "reversed (1 run)"
    se = math.sqrt(statistics.variance(method) / len(method)
                   + statistics.variance(baseline) / len(baseline))
    if abs(difference) < NOISE_FACTOR * se or difference == 0:
        return difference, se, "within noise"
    return difference, se, "holds" if improves else "reversed"


def pooled_std(groups: list[list[float]]) -> float | None:
    """Pooled sample std of several groups of runs (groups of one run are skipped)."""
    groups = [g for g in groups if len(g) >= 2]
    if not groups:
        return None
    squares = sum((len(g) - 1) * statistics.variance(g) for g in groups)
    return math.sqrt(squares / sum(len(g) - 1 for g in groups))


# ---------------------------------------------------------------------------- claims

def check_claims(params: dict[str, Any], profile: str, tables_dir: Path,
                 analysis_dir: Path) -> list[Verdict]:
    from lla.runs import run_ids

    source = getattr(params, "path", DEFAULT_PARAMS)
    verdicts = []
    loaded: dict[str, dict[tuple[str, str], list[float]]] = {}

    def cells(table: str) -> dict[tuple[str, str], list[float]]:
        if table not in loaded:
            loaded[table] = table_runs(tables_dir / f"{table}.csv")
        return loaded[table]

    def cell(table: str, row: str, column: str, record: str) -> list[float]:
        key = (row, column)
        if key not in cells(table):
            raise DataError(source, f"{table} has no cell row '{row}', column '{column}'",
                            record=record)
        return cells(table)[key]

    for index, spec in enumerate(params.get("claims") or []):
        record = f"claims[{index}]"
        kind = spec.get("kind", "compare")
        if kind not in KINDS or "claim" not in spec:
            raise DataError(source, f"a claim needs `claim` and a kind among {', '.join(KINDS)}",
                            record=record)
        if kind == "flat":
            means = {row: cell(spec["table"], row, spec["column"], record) for row in spec["rows"]}
            present = [statistics.fmean(v) for v in means.values() if v]
            noise = pooled_std([values for (_, column), values in
                                cells(spec["noise_table"]).items() if column == spec["column"]])
            spread = max(present) - min(present) if present else None
            if spread is None or noise is None:
                verdict = "no value"
            else:
                verdict = "holds" if spread <= NOISE_FACTOR * noise else "varies"
            best = min(means, key=lambda r: statistics.fmean(means[r]) if means[r] else math.inf)
            verdicts.append(Verdict(
                claim=spec["claim"],
                ours=f"{spec['column']} {min(present):.2f}–{max(present):.2f} over "
                     f"{len(present)} rows (lowest: {best})" if present else "n/a",
                reference="seed noise (pooled std) "
                          + ("n/a" if noise is None else f"{noise:.2f}"),
                difference=spread, scale=noise, verdict=verdict))
            continue
        better = spec.get("better", "lower")
        if better not in ("lower", "higher"):
            raise DataError(source, f"better must be lower or higher, got {better!r}", record=record)
        if kind == "visible":
            method = visible_runs(analysis_dir, run_ids(params, spec["method"], profile))
            baseline = visible_runs(analysis_dir, run_ids(params, spec["baseline"], profile))
        else:
            method = cell(spec["table"], spec["method"], spec["column"], record)
            baseline = cell(spec["table"], spec["baseline"], spec["column"], record)
        difference, se, verdict = compare_runs(method, baseline, better)
        verdicts.append(Verdict(claim=spec["claim"], ours=mean_std_text(method),
                                reference=mean_std_text(baseline), difference=difference,
                                scale=se, verdict=verdict))
    return verdicts


# ---------------------------------------------------------------------------- output

def verdict_cells(v: Verdict) -> list[str]:
    """One table row: claim, method, reference, Δ, SE / noise, verdict."""
    return [v.claim, v.ours, v.reference, "" if v.difference is None else f"{v.difference:+.2f}",
            "" if v.scale is None else f"{v.scale:.2f}", v.verdict]


HEADER = ["Claim", "method", "reference", "Δ", "SE / noise", "verdict"]


def intro(profile: str) -> str:
    """The paragraph (markdown) explaining the claims table."""
    return (f"Profile `{profile}`. *method* and *reference* are mean ± sample std over the "
            "runs (seeds); Δ = method − reference in points (for a flatness claim: the range "
            f"of the rows). *holds* / *reversed*: |Δ| ≥ {NOISE_FACTOR:g} standard errors "
            "(Welch) in the claimed / the opposite direction; *within noise*: the seeds "
            "cannot tell; *(1 run)*: the sign alone, spread unknown.")


def render_markdown(verdicts: list[Verdict], profile: str) -> str:
    lines = ["#### The paper's claims on this run", "", intro(profile), "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(verdict_cells(v)) + " |" for v in verdicts]
    return "\n".join(lines) + "\n"


def render_csv(verdicts: list[Verdict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["claim", "method", "reference", "difference", "se_or_noise", "verdict"])
    for v in verdicts:
        writer.writerow([v.claim, v.ours, v.reference,
                         "" if v.difference is None else round(v.difference, 6),
                         "" if v.scale is None else round(v.scale, 6), v.verdict])
    return out.getvalue()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "claims", help="the paper's claims checked on the tables, with the seeds' spread",
        description="Check params.yaml `claims` on the rendered tables and the visible-box "
                    "analyses: difference, standard error over seeds, verdict.")
    parser.add_argument("--profile", help="default: the top-level 'profile' of the params")
    parser.add_argument("--tables", type=Path, required=True, help="results/<profile>/tables")
    parser.add_argument("--analysis", type=Path, required=True, help="results/<profile>/analysis")
    parser.add_argument("--md", type=Path, required=True, help="markdown to write")
    parser.add_argument("--csv", type=Path, required=True, help="csv to write")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS,
                        help="parameter file (default: params.yaml)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    profile = selected_profile(params, args.profile)
    verdicts = check_claims(params, profile, args.tables, args.analysis)
    atomic_write_text(args.md, render_markdown(verdicts, profile))
    atomic_write_text(args.csv, render_csv(verdicts))
    return 0
