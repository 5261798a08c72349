"""`lla analyze visible`: do a model's positives of occluded persons lie on their visible parts?

    lla analyze visible --checkpoint runs/mini/lla_fcos_r50/model_final.pt --profile mini \\
        --split train [--max-images N] [--max-vis-ratio 0.7] \\
        --out results/mini/analysis/visible_lla_fcos_r50.json

The paper argues that LLA, whose cost includes the classification loss, moves the positive
anchors of an occluded person from its full box onto the body parts that can be seen. This
measures it: for every non-ignore GT, the fraction of its positive anchors whose anchor
centre (the point of an anchor point, the centre of an anchor box) lies inside the GT's
visible box. The anchors are assigned by the checkpoint's own assigner on its own
predictions, over a split without augmentation, as for ``lla analyze aar``.

GTs are split by the dataset json's ``vis_ratio``: *occluded* when ``vis_ratio <
max_vis_ratio`` (0.7: CrowdHuman's "partial" and "heavy" occlusion), *non-occluded*
otherwise (the reference: there the visible box is about the full box). Per group:

* ``gts``: GTs of the group; ``gts_with_positives``: those with at least one positive;
* ``positives``: their positive anchors; ``inside``: those with the centre in the visible box;
* ``mean_fraction``: the mean over GTs with positives of ``inside / positives`` (a GT
  without positives has no fraction and is left out, so every person weighs the same);
* ``pooled_fraction``: ``sum(inside) / sum(positives)`` (large people, which get more
  positives, weigh more).

A fraction is null, not 0, when its group has no positive. The visible box is closed: a
centre exactly on its border counts as inside (the border is the edge of the outermost
visible pixels). The visible box is the one the dataset returns: scaled with the image and
clipped to it, like the full box.

Output json: ``{"occluded": {...}, "non_occluded": {...}, "max_vis_ratio", "images",
"experiment", "profile", "split", "checkpoint"}``.

The loop over the images is :mod:`lla.analysis.checkpoint_pass`'s. The module also holds
what the pipeline and the report read of these jsons: the settings, the paths of a profile's
runs, and the LLA-vs-baseline rows. Torch is imported inside the functions that need it, so
`lla analyze --help` stays light.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from lla import layout
from lla.analysis.checkpoint_pass import CHECKPOINT_PASS_OPTIONS, AssignedImage, run_on_split
from lla.config import section
from lla.errors import DataError
from lla.io import read_json

if TYPE_CHECKING:
    from torch import Tensor

logger = logging.getLogger(__name__)

DEFAULT_MAX_VIS_RATIO = 0.7
GROUPS = ("occluded", "non_occluded")


# ---------------------------------------------------------------------------- per image

def positives_inside_visible(centers: "Tensor", matched_gt: "Tensor", gt_ignore: "Tensor",
                             vis_boxes: "Tensor") -> tuple["Tensor", "Tensor"]:
    """Per valid GT of one image: its positive anchors, and those centred in its visible box.

    Args:
        centers: float (J, 2) anchor centres (x, y), in the pixels of ``vis_boxes``.
        matched_gt: int64 (J,) the assignment (``>= 0`` a GT index, < 0 not matched).
        gt_ignore: bool (I,) the ignore flags of the GTs ``matched_gt`` indexes. The N valid
            GTs come first (``lla.models.detector.to_image_targets``), the ignore boxes after.
        vis_boxes: float (N, 4) xyxy visible boxes of the valid GTs, in the same order.
    Returns:
        ``(positives, inside)``: int64 (N,) each. Anchors of ignore GTs are not positives.
    Raises:
        ValueError: the valid GTs are not the first N of ``gt_ignore``.
    """
    import torch

    num_valid = vis_boxes.shape[0]
    if gt_ignore.shape[0] < num_valid or bool(gt_ignore[:num_valid].any()) or bool(
            (~gt_ignore[num_valid:]).any()):
        raise ValueError(f"expected {num_valid} valid GTs followed by ignore boxes, got ignore "
                         f"flags {gt_ignore.tolist()}")
    positive = (matched_gt >= 0) & (matched_gt < num_valid)
    gt = matched_gt[positive]                            # (P,) GT of each positive
    x, y = centers[positive].unbind(-1)                  # (P,) each
    box = vis_boxes[gt]                                  # (P, 4)
    inside = (x >= box[:, 0]) & (x <= box[:, 2]) & (y >= box[:, 1]) & (y <= box[:, 3])
    positives = torch.bincount(gt, minlength=num_valid)
    inside_counts = torch.bincount(gt[inside], minlength=num_valid)
    return positives, inside_counts


# ---------------------------------------------------------------------------- summary

@dataclass
class GroupStats:
    """Counts of one group of GTs (occluded or not) and the per-GT fractions."""

    gts: int = 0
    gts_with_positives: int = 0
    positives: int = 0
    inside: int = 0
    fraction_sum: float = 0.0   # sum over GTs with positives of inside / positives

    def add(self, positives: Sequence[int], inside: Sequence[int]) -> None:
        """Add GTs: ``positives[k]`` positive anchors of GT k, ``inside[k]`` of them inside."""
        for count, hits in zip(positives, inside, strict=True):
            self.gts += 1
            self.positives += int(count)
            self.inside += int(hits)
            if count:
                self.gts_with_positives += 1
                self.fraction_sum += int(hits) / int(count)

    def summary(self) -> dict[str, Any]:
        return {"gts": self.gts, "gts_with_positives": self.gts_with_positives,
                "positives": self.positives, "inside": self.inside,
                "mean_fraction": (self.fraction_sum / self.gts_with_positives
                                  if self.gts_with_positives else None),
                "pooled_fraction": self.inside / self.positives if self.positives else None}


@dataclass
class VisibleStats:
    """Both groups; GTs are routed by ``vis_ratio < max_vis_ratio``."""

    max_vis_ratio: float = DEFAULT_MAX_VIS_RATIO
    occluded: GroupStats = field(default_factory=GroupStats)
    non_occluded: GroupStats = field(default_factory=GroupStats)

    def add_image(self, positives: Sequence[int], inside: Sequence[int],
                  vis_ratios: Sequence[float]) -> None:
        """One image's valid GTs: counts from :func:`positives_inside_visible`, their
        ``vis_ratio`` from the dataset json."""
        if not len(positives) == len(inside) == len(vis_ratios):
            raise ValueError(f"{len(positives)} positive counts, {len(inside)} inside counts, "
                             f"{len(vis_ratios)} visibility ratios")
        for count, hits, ratio in zip(positives, inside, vis_ratios):
            group = self.occluded if ratio < self.max_vis_ratio else self.non_occluded
            group.add([count], [hits])

    def summary(self) -> dict[str, Any]:
        return {"occluded": self.occluded.summary(), "non_occluded": self.non_occluded.summary(),
                "max_vis_ratio": self.max_vis_ratio}


# ---------------------------------------------------------------------------- a checkpoint

def visibility_ratios(json_path: Path) -> dict[int, float]:
    """``{annotation id: vis_ratio}`` of the valid persons of a converted dataset json."""
    data = read_json(json_path)
    try:
        return {int(ann["id"]): float(ann["vis_ratio"])
                for ann in data["annotations"] if not ann["ignore"]}
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(json_path, f"annotations need 'id', 'ignore' and a numeric "
                                   f"'vis_ratio' ({type(e).__name__}: {e})") from None


class VisibleCount:
    """The accumulation of one checkpoint: each valid GT's positives and those inside its
    visible box, into :class:`VisibleStats`.

    Args:
        vis_ratio: ``{annotation id: vis_ratio}`` (:func:`visibility_ratios`).
        max_vis_ratio: GTs below it are occluded.
    """

    def __init__(self, vis_ratio: dict[int, float], max_vis_ratio: float):
        self.vis_ratio = vis_ratio
        self.stats = VisibleStats(max_vis_ratio)

    def add(self, image: AssignedImage) -> None:
        positives, inside = positives_inside_visible(
            image.anchors.centers, image.assignment.matched_gt, image.gt.ignore,
            image.target["vis_boxes"])
        self.stats.add_image(positives.tolist(), inside.tolist(),
                             [self.vis_ratio[int(i)] for i in image.target["annotation_ids"]])

    def result(self) -> dict[str, Any]:
        return self.stats.summary()


# ---------------------------------------------------------------------------- settings, report

def visible_settings(params: dict[str, Any], profile: str) -> dict[str, Any]:
    """The ``analysis.<profile>.visible`` block (params.yaml; validated with params:
    lla.config.validate_params)."""
    return section(params, "analysis", profile)["visible"]


def compared_experiments(settings: dict[str, Any]) -> list[str]:
    """The experiments of the comparisons, each once: baseline, then LLA, in order."""
    return list(dict.fromkeys(e for pair in settings["comparisons"]
                              for e in (pair["baseline"], pair["lla"])))


def result_path(analysis_dir: str | Path, run: str) -> Path:
    """Where the pipeline writes the json of a run (an experiment, or one of its seeds)."""
    return layout.analysis_file(analysis_dir, "visible", run)


def result_paths(params: dict[str, Any], profile: str,
                 analysis_dir: str | Path) -> dict[str, list[Path]]:
    """``{experiment: [json of each of its runs]}`` for the compared experiments of
    ``profile``: what the report reads (and the workflow builds)."""
    from lla.runs import run_ids

    settings = visible_settings(params, profile)
    return {experiment: [result_path(analysis_dir, run)
                         for run in run_ids(params, experiment, profile)]
            for experiment in compared_experiments(settings)}


FRACTIONS = ("mean_fraction", "pooled_fraction")


def load_result(path: Path) -> dict[str, Any]:
    """A json written by ``lla analyze visible``, checked for the keys the report reads."""
    result = read_json(path)
    if isinstance(result, dict) and result.get("diverged") is True:
        return result  # a run that stopped on a non-finite loss (lla.diverged)
    try:
        for group in GROUPS:
            for key in (*FRACTIONS, "gts", "gts_with_positives"):
                value = result[group][key]
                if value is not None and (isinstance(value, bool)
                                          or not isinstance(value, (int, float))):
                    raise TypeError(f"{group}.{key} is {value!r}")
    except (KeyError, TypeError) as e:
        raise DataError(path, f"not an `lla analyze visible` result ({e})") from None
    return result


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample std (n - 1; None below two values) of the non-null values."""
    import statistics

    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _percent_cell(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "n/a"
    return f"{100 * mean:.1f}" + ("" if std is None else f" ± {100 * std:.1f}")


def experiment_row(label: str, results: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """One report row for an experiment's runs, and the means behind it.

    Fractions are averaged over the runs (± sample std for several seeds); a run whose
    fraction is null (no positive in the group) is left out of that average, as is a run
    that diverged (its cells read "—" when every run did)."""
    means: dict[str, Any] = {}
    diverged = sum(1 for r in results if r.get("diverged") is True)
    results = [r for r in results if r.get("diverged") is not True]
    runs = str(len(results) + diverged) + (f" ({diverged} diverged)" if diverged else "")
    if not results:
        means.update({f"{group}.{key}": None for group in GROUPS for key in FRACTIONS})
        return [label, runs, "—"] + ["—"] * (len(GROUPS) * len(FRACTIONS)), means
    gts = sorted({int(r["occluded"]["gts"]) for r in results})   # runs see the same images
    cells = [label, runs, str(gts[0]) if len(gts) == 1 else f"{gts[0]}–{gts[-1]}"]
    for group in GROUPS:
        for key in FRACTIONS:
            mean, std = _mean_std([r[group][key] for r in results if r[group][key] is not None])
            means[f"{group}.{key}"] = mean
            cells.append(_percent_cell(mean, std))
    return cells, means


COMPARISON_HEADER = ["Method", "runs", "occluded GTs",
                     "occluded: mean", "occluded: pooled",
                     "non-occluded: mean", "non-occluded: pooled"]


def comparison_rows(settings: dict[str, Any],
                    results: dict[str, list[dict[str, Any]]]) -> list[list[str]]:
    """Rows of the report's table: per comparison the baseline, LLA and LLA - baseline
    (percentage points). ``results``: experiment -> the results of its runs."""
    rows = []
    for pair in settings["comparisons"]:
        baseline, base_means = experiment_row(pair["baseline_label"], results[pair["baseline"]])
        lla, lla_means = experiment_row(pair["lla_label"], results[pair["lla"]])
        delta = [f"Δ {pair['lla_label']} − {pair['baseline_label']} (pp)", "", ""]
        for key in base_means:
            a, b = lla_means[key], base_means[key]
            delta.append("n/a" if a is None or b is None else f"{100 * (a - b):+.1f}")
        rows += [baseline, lla, delta]
    return rows


# ---------------------------------------------------------------------------- CLI

def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "visible", parents=[CHECKPOINT_PASS_OPTIONS],
        help="fraction of occluded GTs' positives centred in their visible box",
        description="For occluded (vis_ratio < --max-vis-ratio) and other non-ignore GTs: the "
                    "fraction of each GT's positive anchors, assigned by the checkpoint's "
                    "assigner, whose centre lies inside the GT's visible box.")
    parser.add_argument("--max-vis-ratio", type=float, default=DEFAULT_MAX_VIS_RATIO,
                        metavar="R", help="a GT is occluded when its vis_ratio is below R "
                                          f"(default: {DEFAULT_MAX_VIS_RATIO})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0.0 < args.max_vis_ratio <= 1.0:
        raise DataError(args.params, f"--max-vis-ratio must be in (0, 1], got {args.max_vis_ratio}")
    result = run_on_split(args, lambda state, json_path: VisibleCount(
        visibility_ratios(json_path), args.max_vis_ratio), indent=1)
    if result is None:
        return 0
    occluded = result["occluded"]
    logger.info("occluded GTs: %s of positives inside the visible box (mean over %d GTs), "
                "%s pooled (%d / %d); %d images -> %s",
                _percent(occluded["mean_fraction"]), occluded["gts_with_positives"],
                _percent(occluded["pooled_fraction"]), occluded["inside"], occluded["positives"],
                result["images"], args.out)
    return 0


def _percent(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:.2f}%"
