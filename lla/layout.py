"""Every path of the pipeline, named once.

The Snakemake rules and the commands' defaults both read this module, so a file is always
where its reader looks for it. Paths are relative to the directory the pipeline runs in
(the repository root)::

    <data_root>/<dataset>/                         an official dataset (lla data download)
    <data_root>/synthcrowd/<profile>/<dataset>/    synthcrowd in that dataset's layout
    <data_root>/pretrained/<file>                  ImageNet backbone weights (lla data weights)
    <dataset root>/converted/<split>.json          the converted dataset json (lla data convert)
    runs/<profile>/<run>/model_final.pt            a trained run (lla train)
    runs/<profile>/pretrain/body_r<depth>.pt       a pretrained tiny body (lla pretrain)
    results/<profile>/data_manifest.json           the profile's data files, hashed (lla data manifest)
    results/<profile>/detections/<run>.json        detections on val (lla train --infer-out)
    results/<profile>/metrics/<run>.json           lla eval
    results/<profile>/analysis/<kind>_<run>.json   lla analyze aar | visible
    results/<profile>/figure_data/...              lla analyze positives | levels
    results/<profile>/figures/<figure>.png         lla report figure
    results/<profile>/tables/<table>.{md,csv}      lla report table (claims.{md,csv}: claims)
    results/<profile>/curves/<run>.csv             lla report curves
    reports/<profile>/paper.{md,html}              lla report paper
    logs/<profile>/<step>/<name>.log               each job's log

A run id is an experiment's name or ``<experiment>__seed<N>`` (:mod:`lla.runs`). Every
function takes strings, so the rules pass Snakemake wildcards (``"{profile}"``) and get
the pattern back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lla.config import dataset_source

DEFAULT_DATA_ROOT = "data"
RUNS = Path("runs")
RESULTS = Path("results")
REPORTS = Path("reports")
LOGS = Path("logs")
FINAL_CHECKPOINT = "model_final.pt"
CONVERTED = "converted"
SYNTHCROWD = "synthcrowd"
CLAIMS = "claims"
PRETRAINED = "pretrained"


# ---------------------------------------------------------------------------- data

def data_root(params: dict[str, Any]) -> Path:
    """params' ``data_root``: the directory holding every dataset."""
    return Path(str(params.get("data_root", DEFAULT_DATA_ROOT)))


def synthcrowd_dir(params: dict[str, Any], profile: str) -> Path:
    """Where ``lla data synth`` writes a profile's synthcrowd, one folder per dataset layout."""
    return data_root(params) / SYNTHCROWD / profile


def download_root(params: dict[str, Any], dataset: str) -> Path:
    """An official dataset's directory: ``<dataset>.root`` in params, else ``<data_root>/<dataset>``."""
    root = (params.get(dataset) or {}).get("root")
    return Path(root) if root else data_root(params) / dataset


def dataset_root(params: dict[str, Any], profile: str, dataset: str) -> Path:
    """The directory holding ``dataset`` in its official layout for ``profile``.

    Downloaded and generated data share the official layouts, so everything downstream is
    source-agnostic.
    """
    if dataset_source(params, profile, dataset) == "download":
        return download_root(params, dataset)
    return synthcrowd_dir(params, profile) / dataset


def pretrained_dir(params: dict[str, Any]) -> Path:
    """Where ``lla data weights`` puts the ImageNet weights of the backbones, which the
    training jobs read."""
    return data_root(params) / PRETRAINED


def pretrained_weights(params: dict[str, Any], file_name: str) -> Path:
    """One weights file of :func:`pretrained_dir` (torchvision's file name, e.g.
    ``resnet50-0676ba61.pth``)."""
    return pretrained_dir(params) / file_name


def converted_dir(root: str | Path) -> Path:
    """The folder of a dataset root's converted jsons (and the conversion log)."""
    return Path(root) / CONVERTED


def converted_json(params: dict[str, Any], profile: str, dataset: str, split: str) -> Path:
    """The converted dataset json of one split (the contract between data and models)."""
    return converted_dir(dataset_root(params, profile, dataset)) / f"{split}.json"


# ---------------------------------------------------------------------------- runs

def run_dir(profile: str, run: str) -> Path:
    """A training run's directory: checkpoints, DVCLive log, ``model_final.pt``."""
    return RUNS / profile / run


def final_checkpoint(profile: str, run: str) -> Path:
    return run_dir(profile, run) / FINAL_CHECKPOINT


def pretrained_body(profile: str, depth: int | str) -> Path:
    """The tiny backbone body that ``lla pretrain`` writes for a backbone depth."""
    return RUNS / profile / "pretrain" / f"body_r{depth}.pt"


# ---------------------------------------------------------------------------- results

def _folder(name: str) -> property:
    return property(lambda self: self.root / name, doc=f"``<root>/{name}``")


@dataclass(frozen=True)
class Results:
    """The files of one results directory (``results/<profile>`` unless a command is given
    another with ``--results``)."""

    root: Path
    detections_dir = _folder("detections")
    metrics_dir = _folder("metrics")
    analysis_dir = _folder("analysis")
    figure_data_dir = _folder("figure_data")
    figures_dir = _folder("figures")
    tables_dir = _folder("tables")
    curves_dir = _folder("curves")

    @property
    def data_manifest(self) -> Path:
        """The data files the results were computed from, with hashes (lla data manifest)."""
        return self.root / "data_manifest.json"

    def detections(self, run: str) -> Path:
        """COCO results json of a run's final model on the validation split."""
        return self.detections_dir / f"{run}.json"

    def metrics(self, run: str) -> Path:
        return self.metrics_dir / f"{run}.json"

    def analysis(self, kind: str, run: str) -> Path:
        """``kind``: aar (Table 5) or visible (positives on the visible body)."""
        return analysis_file(self.analysis_dir, kind, run)

    def figure_data(self, kind: str, run: str) -> Path:
        """``kind``: positives or evolution (json), levels (csv)."""
        extension = "csv" if kind == "levels" else "json"
        return self.figure_data_dir / f"{kind}_{run}.{extension}"

    def levels_per_level(self, run: str) -> Path:
        """The per-level summary csv written next to ``figure_data("levels", run)``."""
        return levels_summary_of(self.figure_data("levels", run))

    def figure(self, name: str) -> Path:
        return self.figures_dir / f"{name}.png"

    def figure_csv(self, name: str) -> Path:
        """The data table a figure writes next to its PNG (fig3: GTs per level)."""
        return figure_csv_of(self.figure(name))

    def table(self, name: str, extension: str) -> Path:
        """``extension``: md or csv."""
        return table_file(self.tables_dir, name, extension)

    def claims(self, extension: str) -> Path:
        return claims_file(self.tables_dir, extension)

    def curves(self, run: str) -> Path:
        return self.curves_dir / f"{run}.csv"


def results(profile: str) -> Results:
    return Results(RESULTS / profile)


def analysis_file(analysis_dir: str | Path, kind: str, run: str) -> Path:
    """``<analysis_dir>/<kind>_<run>.json`` (for commands given the folder itself)."""
    return Path(analysis_dir) / f"{kind}_{run}.json"


def table_file(tables_dir: str | Path, name: str, extension: str) -> Path:
    """``<tables_dir>/<name>.<extension>`` (for commands given the folder itself)."""
    return Path(tables_dir) / f"{name}.{extension}"


def claims_file(tables_dir: str | Path, extension: str) -> Path:
    """``<tables_dir>/claims.<extension>``: the claims checked (md or csv)."""
    return table_file(tables_dir, CLAIMS, extension)


def levels_summary_of(levels_csv: str | Path) -> Path:
    """The per-level summary csv ``lla analyze levels`` writes beside its per-GT csv."""
    levels_csv = Path(levels_csv)
    return levels_csv.with_name(f"{levels_csv.stem}.per_level.csv")


def figure_csv_of(png: str | Path) -> Path:
    """The data table a figure writes beside its PNG (fig3: GTs per level)."""
    png = Path(png)
    return png.with_name(f"{png.stem}_levels.csv")


# ---------------------------------------------------------------------------- reports, logs

def report_dir(profile: str) -> Path:
    """The folder of a profile's paper report."""
    return REPORTS / profile


def report_file(report_folder: str | Path, extension: str) -> Path:
    """``<report_folder>/paper.<extension>``: the paper report, md or html."""
    return Path(report_folder) / f"paper.{extension}"


def report(profile: str, extension: str) -> Path:
    """The paper report: ``extension`` md or html."""
    return report_file(report_dir(profile), extension)


def log(profile: str | None, step: str, name: str | None = None) -> Path:
    """``logs/<profile>/<step>/<name>.log``; without ``name`` ``logs/<profile>/<step>.log``;
    without a profile (downloads) ``logs/<step>.log``."""
    base = LOGS if profile is None else LOGS / profile
    return base / (f"{step}.log" if name is None else f"{step}/{name}.log")


def convert_log(root: str | Path) -> Path:
    """The conversion log, next to the converted jsons of a dataset root."""
    return converted_dir(root) / "convert.log"
