"""`lla report claims`: the paper's claims, checked on a run's results with the seeds' spread.

    lla report claims --profile mini     # -> results/mini/tables/claims.{md,csv}
    lla report claims --profile mini --results DIR --out-dir DIR

``params.yaml`` ``claims:`` holds one entry per claim sentence of the paper that its tables
or figures quantify. Table cells come from the table frames
(:func:`lla.report.tables.load_table_frame`: every run's value, at the csv's precision), the
paper's numbers from the same frames (``paper_values.yaml``), so the paper's own difference
is computed, never typed in. Each row shows our difference (method - reference, points),
the paper's, their ratio (ours / paper's: 1 = the paper's magnitude, negative = the other
way) and a verdict. Kinds:

* ``compare`` (default): ``method`` vs ``baseline`` (row ids of ``table``; ``baseline_table``
  when the baseline is in another table) in ``column``, ``better: lower | higher``, optional
  ``margin`` (points: "by more than 5 MR"). With runs ``a`` (method) and ``b`` (baseline):
  the difference of the means ``d = mean(a) - mean(b)``, the gain ``g`` (``-d`` when lower is
  better, else ``d``) and the standard error ``se = sqrt(var(a)/n_a + var(b)/n_b)`` (sample
  variances, Welch) give the verdict: ``holds`` when ``g - margin >= 2 se`` (and > 0);
  ``reversed`` when ``g <= -2 se`` (and < 0); ``below margin`` when ``g - margin <= -2 se``
  but the direction is not reversed; ``within noise`` otherwise. With a single run on either
  side the spread is unknown: the sign of ``g - margin`` (``g`` for reversed) decides, marked
  ``(1 run)``. ``baseline`` may be a list: the claim is checked against each, the row shows
  the closest rival (the smallest gain) and the weakest of the verdicts; a rival whose every
  run diverged counts as beaten. The paper's difference is against the paper's closest
  rival; when the paper's own numbers do not support the claim, the row says so.
* ``flat``: the rows of ``table`` (``rows``) in ``column`` vary little: their range
  ``max - min`` of the means against the seed noise, ``noise`` = the pooled sample std of
  the same column over the multi-run cells of ``noise_table``. ``holds`` when
  ``range <= 2 × noise`` (as flat as two runs of one setting may differ), else ``varies``.
  The paper's range is over the rows it gives a number for.
* ``diverges``: the paper's "-" (did not converge) for ``row`` of ``table``. Each run is
  *diverged* (training stopped on a non-finite loss: the result json says so), *collapsed*
  (``column`` below ``collapsed_below`` percent) or *converged*. ``reproduced`` when no run
  converged (the verdict says which happened), ``not reproduced`` when every run converged,
  ``partly`` otherwise. A collapse says something only where training works: ``converged``
  names the row of the same table that the paper trained successfully (e.g. the full cost),
  and when that row collapsed too (a run too short for any model to learn) the verdict is
  ``inconclusive`` instead.
* ``finer_levels`` (Figure 3): the mean FPN level (0 = P3) of the GTs with positives of
  ``method`` is below ``baseline``'s, from ``<results>/figure_data/levels_<experiment>.csv``
  (``lla analyze levels``, run 0 of each experiment: the sign alone).
* ``empty_level`` (Figure 3): no GT of ``experiment`` has ``level`` (``P7``) as its level.
* ``visible``: this project's own measure, not a number of the paper (which shows it in
  Figure 2): like ``compare`` on the share of an occluded GT's positives inside its visible
  box (``occluded.mean_fraction`` of ``lla analyze visible``), ``method`` and ``baseline``
  being experiments.

Values are percent (tables) or percent of positives (visible). The table is an honest summary
of what a run shows, not a pass/fail test: the pipeline succeeds whatever the verdicts.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lla import layout, options
from lla.config import DEFAULT_PARAMS, load_params, selected_profile
from lla.errors import DataError
from lla.io import atomic_write_text
from lla.report import markup, tables

NOISE_FACTOR = 2.0   # |difference| >= 2 standard errors: about a 95 % two-sided level
OWN_MEASURE = "this project's measure, not a paper claim"
# Verdicts of one comparison, from the best to the worst (a list of rivals shows the worst).
RANKS = ("holds", "equal", "within noise", "below margin", "reversed")
SINGLE_RUN = " (1 run)"


@dataclass(frozen=True)
class Verdict:
    """One checked claim. ``ours`` / ``reference``: the texts of the two sides (our runs);
    ``difference``: method - reference in points (the range for ``flat``), and
    ``paper_difference`` the same from the paper's numbers; ``paper_note``: what the paper
    says where it gives no difference, or which rival it is against; ``scale``: the
    standard error (compare) or the seed noise (flat)."""

    claim: str
    kind: str
    ours: str
    reference: str
    difference: float | None
    paper_difference: float | None
    paper_note: str
    scale: float | None
    verdict: str

    @property
    def ratio(self) -> float | None:
        """ours / the paper's difference (1: the paper's magnitude)."""
        if self.difference is None or not self.paper_difference:
            return None
        return self.difference / self.paper_difference


@dataclass(frozen=True)
class Side:
    """One side of a claim: a table cell over the runs (or an experiment's analyses)."""

    label: str
    values: list[float]        # the number of every run that gave one (percent)
    runs: int = 1              # every run
    diverged: int = 0          # runs stopped on a non-finite loss
    paper: float | None = None  # the paper's number (None: its "-", or not legible)
    paper_diverged: bool = False  # the paper's "-" (did not converge)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None


# ---------------------------------------------------------------------------- statistics

def mean_std_text(values: list[float]) -> str:
    if not values:
        return "n/a"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.2f} (1 run)"
    return f"{mean:.2f} ± {statistics.stdev(values):.2f} ({len(values)} runs)"


def gain(difference: float, better: str) -> float:
    """The difference in the claimed direction (positive: the claim's way)."""
    return -difference if better == "lower" else difference


def compare_runs(method: list[float], baseline: list[float], better: str, margin: float = 0.0
                 ) -> tuple[float | None, float | None, str]:
    """``(difference, standard error, verdict)`` of method vs baseline (module docstring)."""
    if not method or not baseline:
        return None, None, "no value"
    difference = statistics.fmean(method) - statistics.fmean(baseline)
    g = gain(difference, better)
    if len(method) < 2 or len(baseline) < 2:
        if g == 0 and margin == 0:
            return difference, None, "equal" + SINGLE_RUN
        if g - margin > 0:
            return difference, None, "holds" + SINGLE_RUN
        return difference, None, ("reversed" if g < 0 else "below margin") + SINGLE_RUN
    se = math.sqrt(statistics.variance(method) / len(method)
                   + statistics.variance(baseline) / len(baseline))
    if g - margin > 0 and g - margin >= NOISE_FACTOR * se:
        return difference, se, "holds"
    if g < 0 and g <= -NOISE_FACTOR * se:
        return difference, se, "reversed"
    if margin > 0 and g - margin < 0 and g - margin <= -NOISE_FACTOR * se:
        return difference, se, "below margin"
    return difference, se, "within noise"


def verdict_rank(verdict: str) -> tuple[int, bool]:
    """Orders verdicts from the best to the worst; a single-run verdict is weaker."""
    single = verdict.endswith(SINGLE_RUN)
    base = verdict[:-len(SINGLE_RUN)] if single else verdict
    return RANKS.index(base), single


def compare_sides(method: Side, rivals: list[Side], better: str, margin: float = 0.0
                  ) -> tuple[Side | None, float | None, float | None, str]:
    """``(closest rival, difference, standard error, verdict)`` of ``method`` against
    every rival (module docstring: a rival whose every run diverged is beaten)."""
    if not method.values:
        return None, None, None, ("no value (did not converge)" if method.diverged
                                  else "no value")
    measured = [rival for rival in rivals if rival.values]
    if not measured:
        beaten = all(rival.diverged for rival in rivals)
        return None, None, None, ("holds (the others did not converge)" if beaten
                                  else "no value")
    results = [(rival, *compare_runs(method.values, rival.values, better, margin))
               for rival in measured]
    closest = min(results, key=lambda r: gain(r[1], better))
    worst = max(results, key=lambda r: verdict_rank(r[3]))
    verdict = worst[3]
    if len(rivals) > 1 and verdict_rank(verdict)[0] > 0:
        verdict += f" vs {worst[0].label}"
    return closest[0], closest[1], closest[2], verdict


def paper_comparison(method: Side, rivals: list[Side], better: str, margin: float
                     ) -> tuple[float | None, str]:
    """The paper's difference against its closest rival, and a note: which rival (for a
    list), or that the paper's own numbers do not support the claim."""
    numbered = [rival for rival in rivals if rival.paper is not None]
    if method.paper is None or not numbered:
        return None, "n/a (not in the paper)"
    closest = min(numbered, key=lambda r: gain(method.paper - r.paper, better))
    difference = method.paper - closest.paper
    notes = [f"vs {closest.label}"] if len(rivals) > 1 else []
    if gain(difference, better) <= margin:
        notes.append("the paper's own numbers do not support it")
    return difference, "; ".join(notes)


def pooled_std(groups: list[list[float]]) -> float | None:
    """Pooled sample std of several groups of runs (groups of one run are skipped)."""
    groups = [g for g in groups if len(g) >= 2]
    if not groups:
        return None
    squares = sum((len(g) - 1) * statistics.variance(g) for g in groups)
    return math.sqrt(squares / sum(len(g) - 1 for g in groups))


def convergence(side: Side, collapsed_below: float) -> tuple[int, int, int]:
    """``(diverged, collapsed, converged)`` runs of a side: a run with a number below
    ``collapsed_below`` collapsed."""
    collapsed = sum(1 for v in side.values if v < collapsed_below)
    return side.diverged, collapsed, len(side.values) - collapsed


def did_not_converge(side: Side, column: str, collapsed_below: float,
                     reference: Side | None = None) -> str:
    """The verdict of a ``diverges`` claim (module docstring); ``reference``: the row that
    must converge for a collapse to count."""
    diverged, collapsed, converged = convergence(side, collapsed_below)
    failed = diverged + collapsed
    if not failed and not converged:
        return "no value"
    if collapsed and reference is not None:
        ref_diverged, ref_collapsed, ref_converged = convergence(reference, collapsed_below)
        if not ref_converged:
            return (f"inconclusive: the reference {reference.label} did not converge either "
                    f"({column} < {collapsed_below:g} or diverged)")
    if not converged:
        if not collapsed:
            how = "diverged"
        elif not diverged:
            how = f"collapsed, {column} < {collapsed_below:g}"
        else:
            how = f"{diverged} diverged, {collapsed} collapsed ({column} < {collapsed_below:g})"
        return f"reproduced: {how} ({failed} of {failed} runs)"
    if not failed:
        return f"not reproduced: converged ({converged} of {converged} runs)"
    return f"partly: {converged} of {failed + converged} runs converged"


# ---------------------------------------------------------------------------- inputs

def published(values: Iterable[float]) -> list[float]:
    """Run values at the precision the table csv publishes them."""
    return [round(v, tables.CSV_DECIMALS) for v in values]


class RunResults:
    """The results of one run of the pipeline that the claims read, each loaded once."""

    def __init__(self, params: dict[str, Any], profile: str, results_dir: Path,
                 paper_values: Path = tables.PAPER_VALUES):
        self.params, self.profile = params, profile
        self.results_dir, self.paper_values = Path(results_dir), paper_values
        self._frames: dict[str, pd.DataFrame] = {}

    def frame(self, table: str) -> pd.DataFrame:
        if table not in self._frames:
            self._frames[table] = tables.load_table_frame(
                self.params, table, self.results_dir, self.profile, self.paper_values
            ).set_index(["row_id", "column"])
        return self._frames[table]

    def cell(self, table: str, row: str, column: str, record: str) -> Side:
        """A table cell: every run's number at the precision the table csv publishes
        (6 decimals), so that the claims can be recomputed from the csv exactly."""
        frame = self.frame(table)
        if (row, column) not in frame.index:
            raise DataError(getattr(self.params, "path", DEFAULT_PARAMS),
                            f"{table} has no cell row '{row}', column '{column}'", record=record)
        cell = frame.loc[(row, column)]
        return Side(label=cell["method"], values=published(cell["run_values"]),
                    runs=int(cell["runs"]), diverged=int(cell["diverged_runs"]),
                    paper=None if cell["paper_status"] != "ok" else float(cell["paper"]),
                    paper_diverged=cell["paper_status"] == "diverged")

    def column_runs(self, table: str, column: str) -> list[list[float]]:
        """Every cell's run values in ``column`` of ``table``."""
        return [published(values) for (_, name), values in
                self.frame(table)["run_values"].items() if name == column]

    def visible(self, experiment: str) -> Side:
        """The occluded GTs' mean share (percent) of positives inside the visible box, per
        run (runs that diverged or had no occluded positive give no number)."""
        from lla.analysis.visible import load_result, result_path
        from lla.runs import run_ids

        values, diverged = [], 0
        runs = run_ids(self.params, experiment, self.profile)
        for run in runs:
            result = load_result(result_path(layout.Results(self.results_dir).analysis_dir, run))
            if result.get("diverged") is True:
                diverged += 1
            elif result["occluded"]["mean_fraction"] is not None:
                values.append(100.0 * result["occluded"]["mean_fraction"])
        return Side(experiment, values, len(runs), diverged)

    def levels(self, experiment: str) -> pd.DataFrame:
        """``lla analyze levels``'s csv of ``experiment``: one row per sampled GT."""
        path = levels_path(self.results_dir, experiment)
        try:
            frame = pd.read_csv(path)
        except FileNotFoundError:
            raise DataError(path, "file not found (made by lla analyze levels)") from None
        missing = {"level", "level_name"} - set(frame.columns)
        if missing:
            raise DataError(path, f"not a levels csv (no {', '.join(sorted(missing))})", line=1)
        return frame


def levels_path(results_dir: Path, experiment: str) -> Path:
    return layout.Results(Path(results_dir)).figure_data("levels", experiment)


def input_files(params: dict[str, Any], profile: str, results_dir: str | Path) -> list[str]:
    """Every file the claims read (for the workflow): the result jsons of the tables they
    name, the visible-box analyses and the FPN-level csvs."""
    from lla.analysis.visible import result_path
    from lla.runs import run_ids

    results_dir = Path(results_dir)
    paths: list[Path] = []
    for spec in params.get("claims") or []:
        kind = spec.get("kind", "compare")
        for table in {spec.get("table"), spec.get("baseline_table"), spec.get("noise_table")}:
            if table:
                table_spec = tables.table_spec(params, table)
                paths += [tables.result_path(results_dir, table_spec["source"], run)
                          for experiment in tables.table_experiments(params, table)
                          for run in run_ids(params, experiment, profile)]
        if kind == "visible":
            paths += [result_path(layout.Results(results_dir).analysis_dir, run)
                      for experiment in (spec["method"], spec["baseline"])
                      for run in run_ids(params, experiment, profile)]
        elif kind == "finer_levels":
            paths += [levels_path(results_dir, e) for e in (spec["method"], spec["baseline"])]
        elif kind == "empty_level":
            paths.append(levels_path(results_dir, spec["experiment"]))
    return [str(path) for path in dict.fromkeys(paths)]


# ---------------------------------------------------------------------------- claims

def _names(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def mean_level(frame: pd.DataFrame) -> tuple[float | None, int]:
    """Mean FPN level (0 = P3) of the GTs with positives, and their number."""
    levels = frame.loc[frame["level"] >= 0, "level"]
    return (float(levels.mean()) if len(levels) else None), int(len(levels))


def check_flat(results: RunResults, spec: dict[str, Any], record: str) -> Verdict:
    sides = [results.cell(spec["table"], row, spec["column"], record) for row in spec["rows"]]
    present = [side for side in sides if side.values]
    noise = pooled_std(results.column_runs(spec["noise_table"], spec["column"]))
    means = [side.mean for side in present]
    spread = max(means) - min(means) if present else None
    papers = [side.paper for side in sides if side.paper is not None]
    paper_spread = max(papers) - min(papers) if len(papers) >= 2 else None
    if spread is None or noise is None:
        verdict = "no value"
    else:
        verdict = "holds" if spread <= NOISE_FACTOR * noise else "varies"
    best = min(present, key=lambda side: side.mean) if present else None
    return Verdict(
        spec["claim"], "flat",
        ours=(f"{spec['column']} {min(means):.2f}–{max(means):.2f} over {len(present)} rows "
              f"(lowest: {best.label})") if present else "n/a",
        reference="seed noise (pooled std) " + ("n/a" if noise is None else f"{noise:.2f}"),
        difference=spread, paper_difference=paper_spread,
        paper_note="" if paper_spread is not None else "n/a (not in the paper)",
        scale=noise, verdict=verdict)


def check_diverges(results: RunResults, spec: dict[str, Any], record: str) -> Verdict:
    side = results.cell(spec["table"], spec["row"], spec["column"], record)
    reference = results.cell(spec["table"], spec["converged"], spec["column"], record)
    threshold = float(spec["collapsed_below"])
    ours = "; ".join(part for part in (
        f"{spec['column']} {mean_std_text(side.values)}" if side.values else "",
        f"{side.diverged} of {side.runs} runs diverged" if side.diverged else "") if part)
    paper_note = ("- (did not converge)" if side.paper_diverged
                  else "the paper gives a number" if side.paper is not None
                  else "n/a (not in the paper)")
    return Verdict(spec["claim"], "diverges", ours=ours or "n/a",
                   reference=f"collapsed: {spec['column']} < {threshold:g}",
                   difference=None, paper_difference=None, paper_note=paper_note,
                   scale=None,
                   verdict=did_not_converge(side, spec["column"], threshold, reference))


def check_finer_levels(results: RunResults, spec: dict[str, Any], record: str) -> Verdict:
    (method, n_method), (baseline, n_baseline) = (
        mean_level(results.levels(e)) for e in (spec["method"], spec["baseline"]))
    difference, _, verdict = compare_runs(
        [method] if method is not None else [], [baseline] if baseline is not None else [],
        "lower")
    return Verdict(spec["claim"], "finer_levels",
                   ours="n/a" if method is None else
                   f"mean level {method:.3f} (P3 = 0; {n_method} GTs)",
                   reference="n/a" if baseline is None else
                   f"mean level {baseline:.3f} ({n_baseline} GTs)",
                   difference=difference, paper_difference=None,
                   paper_note="lower (Figure 3 shows it, gives no number)",
                   scale=None, verdict=verdict)


def check_empty_level(results: RunResults, spec: dict[str, Any], record: str) -> Verdict:
    frame = results.levels(spec["experiment"])
    on_level = int((frame["level_name"] == spec["level"]).sum())
    return Verdict(spec["claim"], "empty_level",
                   ours=f"{on_level} of {len(frame)} GTs on {spec['level']}",
                   reference="", difference=None, paper_difference=None,
                   paper_note=f"no GT on {spec['level']} (Figure 3)", scale=None,
                   verdict="holds" if on_level == 0 else
                   f"fails ({on_level} GT{'s' * (on_level != 1)} on {spec['level']})")


def check_compare(results: RunResults, spec: dict[str, Any], record: str) -> Verdict:
    """``compare`` and ``visible`` claims (module docstring)."""
    kind, better = spec.get("kind", "compare"), spec.get("better", "lower")
    margin = float(spec.get("margin", 0.0))
    claim = spec["claim"]
    if kind == "visible":
        method = results.visible(spec["method"])
        rivals = [results.visible(spec["baseline"])]
        paper_difference, paper_note = None, "none (own measure)"
        claim = f"{claim} ({OWN_MEASURE})"
    else:
        method = results.cell(spec["table"], spec["method"], spec["column"], record)
        rivals = [results.cell(spec.get("baseline_table", spec["table"]), row, spec["column"],
                               record) for row in _names(spec["baseline"])]
        paper_difference, paper_note = paper_comparison(method, rivals, better, margin)
    closest, difference, se, verdict = compare_sides(method, rivals, better, margin)
    reference = mean_std_text(closest.values) if closest else (
        "did not converge" if rivals and all(r.diverged for r in rivals) else "n/a")
    if closest and len(rivals) > 1:
        reference = f"closest: {closest.label} {reference}"
    return Verdict(claim, kind, ours=mean_std_text(method.values), reference=reference,
                   difference=difference, paper_difference=paper_difference,
                   paper_note=paper_note, scale=se, verdict=verdict)


CHECKS = {"compare": check_compare, "visible": check_compare, "flat": check_flat,
          "diverges": check_diverges, "finer_levels": check_finer_levels,
          "empty_level": check_empty_level}


def check_claim(results: RunResults, spec: dict[str, Any], record: str) -> Verdict:
    """One claim of params.yaml (``record``: its place there, for errors; the claims are
    validated with params: lla.config.validate_params)."""
    return CHECKS[spec.get("kind", "compare")](results, spec, record)


def check_claims(params: dict[str, Any], profile: str, results_dir: Path,
                 paper_values: Path = tables.PAPER_VALUES) -> list[Verdict]:
    """Every claim of ``params`` checked on the run's results in ``results_dir``
    (``results/<profile>``): the table frames, ``analysis/visible_<run>.json`` and
    ``figure_data/levels_<experiment>.csv``."""
    results = RunResults(params, profile, results_dir, paper_values)
    return [check_claim(results, spec, f"claims[{index}]")
            for index, spec in enumerate(params.get("claims") or [])]


# ---------------------------------------------------------------------------- output

def _signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.2f}"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}".replace("-0.00", "0.00")


def paper_cell(v: Verdict) -> str:
    if v.paper_difference is None:
        return v.paper_note
    return _signed(v.paper_difference) + (f" ({v.paper_note})" if v.paper_note else "")


HEADER = ["Claim", "ours", "reference", "Δ", "paper Δ", "Δ / paper Δ", "SE / noise", "verdict"]
NUMBER_COLUMNS = ("Δ", "Δ / paper Δ", "SE / noise")


def display_frame(verdicts: Iterable[Verdict]) -> pd.DataFrame:
    """The claims table as shown (text cells)."""
    return pd.DataFrame([[v.claim, v.ours, v.reference, _signed(v.difference), paper_cell(v),
                          _ratio(v.ratio),
                          "" if v.scale is None else f"{v.scale:.2f}", v.verdict]
                         for v in verdicts], columns=HEADER)


def intro(profile: str) -> str:
    """The paragraph (markdown) explaining the claims table."""
    return (f"Profile `{profile}`. *ours* and *reference*: mean ± sample std over the runs "
            "(seeds) of the two sides (for a list of rivals: the closest one). Δ = ours − "
            "reference in points (a flatness claim: the range of the rows; Figure 3: FPN "
            "levels); *paper Δ*: the same from the paper's numbers; *Δ / paper Δ*: 1 is the "
            f"paper's magnitude, a negative ratio the other way. *holds* / *reversed*: the "
            f"gain is ≥ {NOISE_FACTOR:g} standard errors (Welch) in the claimed / the opposite "
            "direction (beyond the margin, for \"by more than\"); *below margin*: short of "
            "the margin by as much; *within noise*: the seeds cannot tell; *(1 run)*: the "
            "sign alone, spread unknown. The paper's \"-\" (did not converge) is reproduced by "
            "a run that diverged or collapsed. Rows marked as this project's measure are not "
            "claims the paper quantifies.")


TITLE = "The paper's claims on this run"


def render_markdown(verdicts: list[Verdict], profile: str) -> str:
    table = markup.markdown_table(display_frame(verdicts), numeric=NUMBER_COLUMNS)
    return "\n\n".join([f"#### {TITLE}", intro(profile), table]) + "\n"


def render_csv(verdicts: list[Verdict]) -> str:
    def rounded(value: float | None) -> float | None:
        # + 0.0: no "-0.0" for a zero
        return None if value is None else round(value, tables.CSV_DECIMALS) + 0.0

    frame = pd.DataFrame({
        "claim": [v.claim for v in verdicts], "kind": [v.kind for v in verdicts],
        "ours": [v.ours for v in verdicts], "reference": [v.reference for v in verdicts],
        "difference": [rounded(v.difference) for v in verdicts],
        "paper_difference": [rounded(v.paper_difference) for v in verdicts],
        "ratio": [rounded(v.ratio) for v in verdicts],
        "se_or_noise": [rounded(v.scale) for v in verdicts],
        "verdict": [v.verdict for v in verdicts],
        "paper_note": [v.paper_note for v in verdicts]})
    return frame.to_csv(index=False, lineterminator="\n", na_rep="")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "claims", parents=[tables.REPORT_OPTIONS],
        help="the paper's claims checked on a run's results, with the seeds' spread",
        description="Check params.yaml `claims` on the run's tables, FPN-level and "
                    "visible-box analyses: our difference beside the paper's, their ratio, "
                    "the standard error over seeds, a verdict. Writes <out-dir>/claims.md and "
                    "<out-dir>/claims.csv.")
    options.add_out_dir(parser, "directory receiving claims.md and claims.csv",
                        default="results/<profile>/tables")
    parser.set_defaults(func=run)

def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    profile = selected_profile(params, args.profile)
    verdicts = check_claims(params, profile, args.results or layout.results(profile).root,
                            args.paper_values)
    out_dir = args.out_dir or layout.results(profile).tables_dir
    atomic_write_text(layout.claims_file(out_dir, "md"), render_markdown(verdicts, profile))
    atomic_write_text(layout.claims_file(out_dir, "csv"), render_csv(verdicts))
    return 0
