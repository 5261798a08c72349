"""`lla report paper`: one document with everything the pipeline reproduced.

    lla report paper --profile mini     # -> reports/mini/paper.{md,html}
    lla report paper --profile mini --results DIR --figures PNG... --out-dir DIR

Sections, in order:

1. **Run**: the profile, its description and where each dataset came from (params.yaml
   ``profiles``); the git commit of the code and whether the working tree had changes to
   tracked files ("unknown" outside a git checkout); two sha256 digests of the settings; the
   date (UTC; ``SOURCE_DATE_EPOCH`` fixes it for reproducible builds).
2. **The paper's claims** on this run (:mod:`lla.report.claims`).
3. **Tables 1-7**: every table of params.yaml ``tables``, from the same frames
   ``lla report table`` renders (:func:`lla.report.tables.load_table_frame`, read from the
   run's result jsons), with the dataset the table came from.
4. **Figures**: the PNGs given with ``--figures`` (files, or directories: their PNGs;
   default ``<results>/figures``), each
   with the caption of its figure number (the number in a name like ``fig3_levels.png``).
   The markdown links them (paths relative to the report); the HTML embeds them as base64
   data, so the HTML file stands alone.
5. **Occluded persons**: the ``lla analyze visible`` results of the comparisons in
   ``analysis.<profile>.visible`` (one json per run: ``<results>/analysis/visible_<run>.json``).

The report is a list of parts, each in markdown and HTML: prose goes through the markdown
renderer (markdown-it-py), tables through pandas (:mod:`lla.report.markup`), so the two
files say the same.

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
import hashlib
import html
import json
import os
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lla import layout, options
from lla.analysis import visible
from lla.config import dataset_source, deep_merge, load_params, selected_profile
from lla.data import registry
from lla.errors import DataError
from lla.io import atomic_write_text
from lla.report import claims as lla_claims
from lla.report import markup
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
    root = layout.dataset_root(params, profile, role)
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
        ("datasets", "; ".join(dataset_text(params, profile, r) for r in registry.names())),
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
    cells: pd.DataFrame   # lla.report.tables.load_table_frame
    data_source: str      # download | synthcrowd


def load_table(params: dict[str, Any], profile: str, name: str, results_dir: Path,
               paper_values: Path = report_tables.PAPER_VALUES) -> TableInput:
    spec = report_tables.table_spec(params, name)
    cells = report_tables.load_table_frame(params, name, results_dir, profile, paper_values)
    return TableInput(name, spec, cells, dataset_source(params, profile, spec["dataset"]))


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


# ---------------------------------------------------------------------------- the document

@dataclass(frozen=True)
class Part:
    """A piece of the report in both forms."""

    markdown: str
    html: str


def prose(text: str) -> Part:
    """Markdown text; its HTML from the markdown renderer."""
    return Part(text, markup.markdown_to_html(text))


def table_part(frame: pd.DataFrame, numeric: Sequence[str] | None = None) -> Part:
    return Part(markup.markdown_table(frame, numeric), markup.html_table(frame))


def visible_intro(settings: dict[str, Any]) -> str:
    return (f"Does LLA move the positive anchors of occluded persons onto their visible body? "
            f"This is this project's own measure, not a claim the paper quantifies: the paper "
            f"shows the effect in Figure 2 and gives no number. For each person GT (not "
            f"ignore) of the first "
            f"{settings['max_images'] or 'all'} images of the `{settings['split']}` split, the "
            f"share of its positive anchors (the trained model's own assignment) whose centre "
            f"lies inside its visible box, in percent. Occluded: vis_ratio < "
            f"{settings['max_vis_ratio']}; the non-occluded GTs are the reference. *mean*: "
            f"averaged over GTs with positives; *pooled*: all their positives together. "
            f"Several seeds: mean ± sample std over runs.")


def figure_part(figure: FigureInput, out_md: Path) -> Part:
    """The figure linked (markdown, path relative to the report) and embedded (HTML)."""
    name = f"Figure {figure.number}" if figure.number else figure.path.name
    link = Path(os.path.relpath(figure.path.resolve(), out_md.resolve().parent)).as_posix()
    data = base64.b64encode(figure.png).decode("ascii")
    return Part(f"### {name}\n\n![{name}]({link})\n\n*{name}. {figure.caption}*",
                f"<figure id=\"{html.escape(figure.path.stem)}\">"
                f"<img src=\"data:image/png;base64,{data}\" alt=\"{html.escape(name)}\">"
                f"<figcaption>{html.escape(name)}. {html.escape(figure.caption)}"
                f"</figcaption></figure>")


def report_parts(facts: list[tuple[str, str]], tables: list[TableInput],
                 figures: list[FigureInput], visible_settings: dict[str, Any],
                 visible_rows: list[list[str]], out_md: Path, profile: str,
                 claims: list[lla_claims.Verdict]) -> list[Part]:
    """The report, section by section (see the module docstring)."""
    parts = [prose(f"# {TITLE}"), prose("## Run"),
             prose("\n".join(f"- **{label}**: {text}" for label, text in facts)),
             prose(f"## {lla_claims.TITLE}"), prose(lla_claims.intro(profile)),
             table_part(lla_claims.display_frame(claims), lla_claims.NUMBER_COLUMNS),
             prose("## Tables")]
    for table in tables:
        parts.append(Part(
            report_tables.render_markdown(table.spec, table.cells, profile=profile,
                                          data_source=table.data_source).rstrip("\n"),
            report_tables.render_html(table.spec, table.cells, profile=profile,
                                      data_source=table.data_source)))
    parts.append(prose("## Figures"))
    parts += [figure_part(figure, out_md) for figure in figures]
    parts += [prose("## Occluded persons: positives on the visible body"),
              prose(visible_intro(visible_settings))]
    if visible_rows:
        parts.append(table_part(pd.DataFrame(visible_rows, columns=visible.COMPARISON_HEADER)))
    else:
        parts.append(prose("No comparison is configured "
                           "(params.yaml `analysis.visible.comparisons`)."))
    return parts


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #222; }
h1 { font-size: 1.6rem; } h2 { border-bottom: 1px solid #ccc; margin-top: 2.5rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #bbb; padding: 0.25rem 0.5rem; }
td:not(:first-child) { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f0f0f0; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-style: italic; margin-top: 0.3rem; }
code { background: #f4f4f4; padding: 0 0.2rem; }
"""


def render_markdown(parts: list[Part]) -> str:
    return "\n\n".join(part.markdown for part in parts) + "\n"


def render_html(parts: list[Part]) -> str:
    """A standalone page: the parts' HTML under the style sheet."""
    return "\n".join(["<!DOCTYPE html>", "<html lang=\"en\">", "<head>",
                      "<meta charset=\"utf-8\">", f"<title>{html.escape(TITLE)}</title>",
                      f"<style>{STYLE}</style>", "</head>", "<body>",
                      *(part.html for part in parts), "</body>", "</html>"]) + "\n"


# ---------------------------------------------------------------------------- CLI

def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "paper", parents=[report_tables.REPORT_OPTIONS],
        help="assemble the report: run facts, Tables 1-7, Figures 1-5, analyses",
        description="Write <out-dir>/paper.md and a standalone <out-dir>/paper.html from the "
                    "results' tables, the figure PNGs and the visible-box analyses.")
    parser.add_argument("--figures", type=Path, nargs="+", metavar="PATH",
                        help="figure PNGs, or directories whose PNGs are the figures "
                             "(default: <results>/figures)")
    options.add_out_dir(parser, "directory receiving paper.md and paper.html",
                        default="reports/<profile>")
    parser.set_defaults(func=run)

def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    profile = selected_profile(params, args.profile)
    results = args.results or layout.results(profile).root
    tables = [load_table(params, profile, name, results, args.paper_values)
              for name in params.get("tables") or {}]
    figures = load_figures(list(args.figures or [layout.Results(results).figures_dir]))
    settings, visible_rows = load_visible(params, profile, layout.Results(results).analysis_dir)
    claims = lla_claims.check_claims(params, profile, results, args.paper_values)
    out_dir = args.out_dir or layout.report_dir(profile)
    out_md = layout.report_file(out_dir, "md")
    parts = report_parts(run_facts(params, args.params, profile), tables, figures, settings,
                         visible_rows, out_md, profile, claims)
    atomic_write_text(out_md, render_markdown(parts))
    atomic_write_text(layout.report_file(out_dir, "html"), render_html(parts))
    return 0
