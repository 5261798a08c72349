"""`lla report paper`: one document with everything the pipeline reproduced.

    lla report paper --profile mini --tables results/mini/tables \\
        --figures results/mini/figures --analysis results/mini/analysis \\
        --out-md reports/mini/paper.md --out-html reports/mini/paper.html

Sections, in order:

1. **Run**: the profile, its description and where each dataset came from (params.yaml
   ``profiles``); the git commit of the code and whether the working tree had changes to
   tracked files ("unknown" outside a git checkout); two sha256 digests of the settings; the
   date (UTC; ``SOURCE_DATE_EPOCH`` fixes it for reproducible builds).
2. **Tables 1-7**: every table of params.yaml ``tables`` as ``lla report table`` rendered it:
   ``<tables>/<name>.md`` verbatim in the markdown, ``<tables>/<name>.csv`` (the same cells as
   data) as an HTML table, with the dataset the table came from.
3. **Figures**: the PNGs given with ``--figures`` (files, or directories: their PNGs), each
   with the caption of its figure number (the number in a name like ``fig3_levels.png``).
   The markdown links them (paths relative to the report); the HTML embeds them as base64
   data, so the HTML file stands alone.
4. **Occluded persons**: the ``lla analyze visible`` results of the comparisons in
   ``analysis.<profile>.visible`` (one json per run: ``<analysis>/visible_<run>.json``).

The two digests: ``params.yaml`` is the sha256 of the file's bytes (names exactly the file
used); *resolved settings* is the sha256 of the settings this profile runs with: every
per-profile block of params.yaml with the profile merged over its defaults
(:func:`lla.config.section`), other profiles' blocks dropped, as canonical JSON (sorted keys).
Two reports with equal resolved digests ran with the same settings even if the files differ
in comments or in other profiles.

Every input is required; a missing one is an error naming the file (exit 2).
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import html
import json
import os
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lla.analysis import visible
from lla.config import (DATASET_ROLES, DEFAULT_PARAMS, dataset_root, dataset_source, deep_merge,
                        load_params, selected_profile)
from lla.errors import DataError
from lla.io import atomic_write_text
from lla.report import claims as lla_claims
from lla.report import tables as report_tables

TITLE = "LLA: Loss-aware Label Assignment for Dense Pedestrian Detection — reproduction report"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Captions by figure number (the paper's Figures 1-5, as the pipeline draws them).
FIGURE_CAPTIONS = {
    1: "Positive anchors of hand-crafted assigners (RetinaNet, FCOS, ATSS) on crowded "
       "training images; anchors of the FPN level holding most positives.",
    2: "Positive anchors of LLA (LLA.RetinaNet, LLA.FCOS) on the same images.",
    3: "FPN level holding most of a GT's positives against the GT's area, RetinaNet vs "
       "LLA.RetinaNet.",
    4: "Positives of one LLA run on fixed images at several checkpoints during training.",
    5: "Predictions of RetinaNet, LLA.RetinaNet and LLA.FCOS on crowded validation images, "
       "misses and false positives marked.",
}
_FIGURE_NUMBER = re.compile(r"^fig(?:ure)?[_-]?(\d+)", re.IGNORECASE)
# The csv columns the HTML tables need (lla.report.tables.render_csv writes them).
TABLE_CSV_FIELDS = ("row_id", "method", "column", "reproduced", "paper", "difference",
                    "reproduced_status", "paper_status")


# ---------------------------------------------------------------------------- provenance

@dataclass(frozen=True)
class GitState:
    commit: str            # "unknown" outside a git checkout
    modified: int | None   # tracked files differing from the commit; None when unknown


def git_state(directory: Path) -> GitState:
    """The commit checked out in ``directory`` and how many tracked files differ from it.

    Untracked files are not counted (results not yet committed are expected there)."""
    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(["git", "-C", str(directory), *args], capture_output=True,
                                    text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return result.stdout if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return GitState("unknown", None)
    status = git("status", "--porcelain", "--untracked-files=no")
    return GitState(commit.strip(), None if status is None else len(status.splitlines()))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def resolved_settings(params: dict[str, Any], profile: str) -> dict[str, Any]:
    """The settings ``profile`` runs with (see the module docstring)."""
    out: dict[str, Any] = {}
    for name, block in params.items():
        if isinstance(block, dict) and "defaults" in block:
            out[name] = deep_merge(block["defaults"], block.get(profile) or {})
        else:
            out[name] = block
    out["profile"] = profile
    out["profiles"] = {profile: (params.get("profiles") or {}).get(profile)}
    return out


def settings_sha256(params: dict[str, Any], profile: str) -> str:
    text = json.dumps(resolved_settings(params, profile), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def report_date() -> str:
    """Now in UTC, or ``SOURCE_DATE_EPOCH`` when set (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = (datetime.fromtimestamp(int(epoch), timezone.utc) if epoch
              else datetime.now(timezone.utc))
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def dataset_text(params: dict[str, Any], profile: str, role: str) -> str:
    """Where ``role``'s data came from in ``profile``, in words."""
    root = dataset_root(params, profile, role)
    if dataset_source(params, profile, role) == "download":
        return f"{role}: the official dataset ({root})"
    return f"{role}: synthcrowd, generated in the {role} layout ({root})"


def run_facts(params: dict[str, Any], params_path: Path, profile: str) -> list[tuple[str, str]]:
    """``(label, text)`` lines of the Run section."""
    state = git_state(params_path.resolve().parent)
    if state.modified is None:
        tree = "" if state.commit == "unknown" else " (working tree state unknown)"
    elif state.modified:
        tree = f" (working tree dirty: {state.modified} tracked file(s) modified)"
    else:
        tree = " (working tree clean)"
    description = ((params.get("profiles") or {}).get(profile) or {}).get("description", "")
    return [
        ("profile", f"`{profile}`" + (f": {description}" if description else "")),
        ("datasets", "; ".join(dataset_text(params, profile, r) for r in DATASET_ROLES)),
        ("code", f"git commit `{state.commit}`{tree}"),
        ("params.yaml", f"sha256 `{file_sha256(params_path)}` (the file's bytes)"),
        ("resolved settings", f"sha256 `{settings_sha256(params, profile)}` (the settings of "
                              f"`{profile}`: per-profile blocks merged, canonical JSON)"),
        ("date", report_date()),
    ]


# ---------------------------------------------------------------------------- inputs

def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(path, f"{what} not found")
    return path


@dataclass(frozen=True)
class TableInput:
    name: str
    spec: dict[str, Any]
    markdown: str                # as `lla report table` rendered it
    rows: list[dict[str, str]]   # the csv, one dict per cell
    dataset: str                 # the dataset the values came from, in words


def load_table(params: dict[str, Any], profile: str, name: str, tables_dir: Path) -> TableInput:
    spec = report_tables.table_spec(params, name)
    md_path = _require(tables_dir / f"{name}.md", f"table (`lla report table {name}`)")
    csv_path = _require(tables_dir / f"{name}.csv", f"table (`lla report table {name}`)")
    with open(csv_path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [k for k in TABLE_CSV_FIELDS if k not in (reader.fieldnames or [])]
        if missing:
            raise DataError(csv_path, f"not a table csv: no column {', '.join(missing)}", line=1)
        rows = list(reader)
    source = dataset_source(params, profile, spec["dataset"])
    dataset = spec["dataset"] if source == "download" else f"synthcrowd ({spec['dataset']} layout)"
    return TableInput(name, spec, md_path.read_text(encoding="utf-8"), rows, dataset)


@dataclass(frozen=True)
class FigureInput:
    path: Path
    number: int | None
    caption: str
    png: bytes


def figure_number(path: Path) -> int | None:
    match = _FIGURE_NUMBER.match(path.stem)
    return int(match[1]) if match else None


def load_figures(paths: list[Path]) -> list[FigureInput]:
    """The PNGs of ``paths`` (files, or directories: every ``*.png`` in them), ordered by
    figure number, then name."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.png"))
            if not found:
                raise DataError(path, "no PNG figure in this directory")
            files += found
        else:
            files.append(_require(path, "figure"))
    figures = []
    for path in files:
        data = path.read_bytes()
        if not data.startswith(PNG_SIGNATURE):
            raise DataError(path, "not a PNG image")
        number = figure_number(path)
        caption = FIGURE_CAPTIONS.get(number, path.stem.replace("_", " ")) if number else \
            path.stem.replace("_", " ")
        figures.append(FigureInput(path, number, caption, data))
    return sorted(figures, key=lambda f: (f.number is None, f.number or 0, f.path.name))


def load_visible(params: dict[str, Any], profile: str, analysis_dir: Path
                 ) -> tuple[dict[str, Any], list[list[str]]]:
    """The visible-box settings and the rows of their table (one json per run)."""
    settings = visible.visible_settings(params, profile)
    results = {experiment: [visible.load_result(_require(path, "`lla analyze visible` result"))
                            for path in paths]
               for experiment, paths in visible.result_paths(params, profile,
                                                             analysis_dir).items()}
    return settings, visible.comparison_rows(settings, results)


# ---------------------------------------------------------------------------- markdown

def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def visible_intro(settings: dict[str, Any]) -> str:
    return (f"Does LLA move the positive anchors of occluded persons onto their visible body? "
            f"For each person GT (not ignore) of the first "
            f"{settings['max_images'] or 'all'} images of the `{settings['split']}` split, the "
            f"share of its positive anchors (the trained model's own assignment) whose centre "
            f"lies inside its visible box, in percent. Occluded: vis_ratio < "
            f"{settings['max_vis_ratio']}; the non-occluded GTs are the reference. *mean*: "
            f"averaged over GTs with positives; *pooled*: all their positives together. "
            f"Several seeds: mean ± sample std over runs.")


def render_markdown(facts: list[tuple[str, str]], tables: list[TableInput],
                    figures: list[FigureInput], visible_settings: dict[str, Any],
                    visible_rows: list[list[str]], out_md: Path,
                    claims_md: str | None = None) -> str:
    """The markdown report; ``claims_md``: :func:`lla.report.claims.render_markdown`'s text."""
    lines = [f"# {TITLE}", "", "## Run", ""]
    lines += [f"- **{label}**: {text}" for label, text in facts]
    if claims_md:
        lines += ["", claims_md.replace("#### ", "## ", 1).rstrip()]
    lines += ["", "## Tables", ""]
    for table in tables:
        lines += [table.markdown.rstrip("\n"), ""]
    lines += ["## Figures", ""]
    for figure in figures:
        name = f"Figure {figure.number}" if figure.number else figure.path.name
        link = Path(os.path.relpath(figure.path.resolve(), out_md.resolve().parent)).as_posix()
        lines += [f"### {name}", "", f"![{name}]({link})", "", f"*{name}. {figure.caption}*", ""]
    lines += ["## Occluded persons: positives on the visible body", "",
              visible_intro(visible_settings), ""]
    if visible_rows:
        lines += _md_table(visible.COMPARISON_HEADER, visible_rows)
    else:
        lines.append("No comparison is configured (params.yaml `analysis.visible.comparisons`).")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- HTML

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #222; }
h1 { font-size: 1.6rem; } h2 { border-bottom: 1px solid #ccc; margin-top: 2.5rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #bbb; padding: 0.25rem 0.5rem; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f0f0f0; } td.paper { color: #666; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-style: italic; margin-top: 0.3rem; }
code { background: #f4f4f4; padding: 0 0.2rem; } .note { font-size: 0.85rem; color: #555; }
"""


def _inline(text: str) -> str:
    """Escape ``text`` for HTML, turning markdown `code` and **bold** into tags."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _number(value: str, status: str, std: str = "") -> str:
    if status == "diverged":
        return report_tables.DIVERGED_MARK
    if status != "ok" or value == "":
        return report_tables.NOT_AVAILABLE
    text = f"{float(value):.{report_tables.DIGITS}f}"
    return text + (f" ± {float(std):.{report_tables.DIGITS}f}" if std else "")


def html_table(table: TableInput, profile: str) -> str:
    """A paper table from its csv: per column the reproduced value, the paper's and Δ."""
    columns = list(dict.fromkeys(row["column"] for row in table.rows))
    by_row: dict[str, dict[str, dict[str, str]]] = {}
    labels: dict[str, str] = {}
    for row in table.rows:
        by_row.setdefault(row["row_id"], {})[row["column"]] = row
        labels[row["row_id"]] = row["method"]
    seeds = any(row.get("reproduced_std") for row in table.rows)
    parts = [f"<h3>{_inline(table.spec['title'])}</h3>",
             f"<p>Profile <code>{html.escape(profile)}</code>, dataset: "
             f"{html.escape(table.dataset)}. Values in percent (reproduced | paper | "
             f"reproduced − paper)" + ("; several seeds: mean ± sample std" if seeds else "")
             + ".</p>", "<table>",
             "<tr><th rowspan=\"2\">Method</th>"
             + "".join(f"<th colspan=\"3\">{html.escape(c)}</th>" for c in columns) + "</tr>",
             "<tr>" + "<th>ours</th><th>paper</th><th>Δ</th>" * len(columns) + "</tr>"]
    marks = set()
    for row_id, cells in by_row.items():
        tds = [f"<td>{html.escape(labels[row_id])}</td>"]
        for column in columns:
            cell = cells.get(column)
            if cell is None:
                tds.append("<td></td>" * 3)
                continue
            ours = _number(cell["reproduced"], cell["reproduced_status"],
                           cell.get("reproduced_std", ""))
            partly_diverged = cell.get("diverged_runs", "0") not in ("", "0")
            if cell["reproduced_status"] == "ok" and partly_diverged:
                ours += report_tables.PARTLY_DIVERGED_MARK
                marks.add("partly diverged")
            paper = _number(cell["paper"], cell["paper_status"])
            marks.update({cell["reproduced_status"], cell["paper_status"]})
            difference = "" if cell["difference"] == "" else \
                f"{float(cell['difference']):+.{report_tables.DIGITS}f}"
            tds += [f"<td class=\"num\">{html.escape(ours)}</td>",
                    f"<td class=\"num paper\">{html.escape(paper)}</td>",
                    f"<td class=\"num\">{difference}</td>"]
        parts.append("<tr>" + "".join(tds) + "</tr>")
    parts.append("</table>")
    if "diverged" in marks:
        parts.append(f"<p class=\"note\">{report_tables.DIVERGED_MARK}: training did not "
                     f"converge (the paper's \"-\").</p>")
    if "partly diverged" in marks:
        parts.append(f"<p class=\"note\">{report_tables.PARTLY_DIVERGED_MARK}: some seeds did "
                     f"not converge; the value is over the others.</p>")
    if "missing" in marks:
        parts.append(f"<p class=\"note\">{report_tables.NOT_AVAILABLE}: no value.</p>")
    return "\n".join(parts)


def _html_simple_table(header: list[str], rows: list[list[str]]) -> str:
    head = "<tr>" + "".join(f"<th>{_inline(h)}</th>" for h in header) + "</tr>"
    body = ["<tr>" + "".join((f"<td class=\"num\">{_inline(v)}</td>" if k else
                              f"<td>{_inline(v)}</td>") for k, v in enumerate(row)) + "</tr>"
            for row in rows]
    return "\n".join(["<table>", head, *body, "</table>"])


def render_html(facts: list[tuple[str, str]], tables: list[TableInput],
                figures: list[FigureInput], visible_settings: dict[str, Any],
                visible_rows: list[list[str]], profile: str,
                claims: list[lla_claims.Verdict] | None = None) -> str:
    parts = ["<!DOCTYPE html>", "<html lang=\"en\">", "<head>", "<meta charset=\"utf-8\">",
             f"<title>{html.escape(TITLE)}</title>", f"<style>{STYLE}</style>", "</head>",
             "<body>", f"<h1>{html.escape(TITLE)}</h1>", "<h2>Run</h2>", "<table>"]
    parts += [f"<tr><th>{html.escape(label)}</th><td>{_inline(text)}</td></tr>"
              for label, text in facts]
    parts.append("</table>")
    if claims:
        parts += ["<h2>The paper's claims on this run</h2>",
                  f"<p>{_inline(lla_claims.intro(profile))}</p>",
                  _html_simple_table(lla_claims.HEADER,
                                     [lla_claims.verdict_cells(v) for v in claims])]
    parts.append("<h2>Tables</h2>")
    parts += [html_table(table, profile) for table in tables]
    parts.append("<h2>Figures</h2>")
    for figure in figures:
        name = f"Figure {figure.number}" if figure.number else figure.path.name
        data = base64.b64encode(figure.png).decode("ascii")
        parts.append(f"<figure id=\"{html.escape(figure.path.stem)}\">"
                     f"<img src=\"data:image/png;base64,{data}\" alt=\"{html.escape(name)}\">"
                     f"<figcaption>{html.escape(name)}. {html.escape(figure.caption)}"
                     f"</figcaption></figure>")
    parts += ["<h2>Occluded persons: positives on the visible body</h2>",
              f"<p>{_inline(visible_intro(visible_settings))}</p>"]
    if visible_rows:
        parts.append(_html_simple_table(visible.COMPARISON_HEADER, visible_rows))
    else:
        parts.append("<p>No comparison is configured.</p>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------- CLI

def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "paper", help="assemble the report: run facts, Tables 1-7, Figures 1-5, analyses",
        description="Write reports/<profile>/paper.md and a standalone paper.html from the "
                    "rendered tables, the figure PNGs and the visible-box analyses.")
    parser.add_argument("--profile", help="the profile the results belong to "
                                          "(default: the top-level 'profile' of the params)")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS,
                        help="parameter file (default: params.yaml)")
    parser.add_argument("--tables", type=Path, required=True,
                        help="directory of <table>.md and <table>.csv (lla report table)")
    parser.add_argument("--figures", type=Path, nargs="+", required=True, metavar="PATH",
                        help="figure PNGs, or directories whose PNGs are the figures")
    parser.add_argument("--analysis", type=Path, required=True,
                        help="directory of visible_<run>.json (lla analyze visible)")
    parser.add_argument("--out-md", type=Path, required=True, help="markdown report to write")
    parser.add_argument("--out-html", type=Path, required=True, help="HTML report to write")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    profile = selected_profile(params, args.profile)
    tables = [load_table(params, profile, name, args.tables) for name in params.get("tables") or {}]
    figures = load_figures(list(args.figures))
    settings, visible_rows = load_visible(params, profile, args.analysis)
    claims = lla_claims.check_claims(params, profile, args.tables, args.analysis)
    facts = run_facts(params, args.params, profile)
    atomic_write_text(args.out_md, render_markdown(facts, tables, figures, settings,
                                                   visible_rows, args.out_md,
                                                   lla_claims.render_markdown(claims, profile)))
    atomic_write_text(args.out_html, render_html(facts, tables, figures, settings,
                                                 visible_rows, profile, claims))
    return 0
