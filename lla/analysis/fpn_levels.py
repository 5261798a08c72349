"""`lla analyze levels`: which FPN level each GT is assigned to, vs its area (Fig. 3).

    lla analyze levels --checkpoint runs/mini/retinanet_r50/model_final.pt --profile mini \\
        --split train --max-gts 5000 --seed 0 --out results/mini/figure_data/levels_retinanet_r50.csv

Up to ``--max-gts`` person GTs (non-ignore annotations) are drawn from the split without
replacement by ``numpy.random.default_rng(seed)`` (all of them when there are fewer), so
every model sees the same GTs. The images holding them are assigned by the checkpoint's own
assigner on its own predictions (no augmentation), and for each drawn GT the positives
(anchors matched to it) are counted per level. Its level is the one holding most of them;
ties go to the finer level; a GT without positives gets level -1.

Outputs:

* ``--out``: one row per drawn GT: ``annotation_id, image_id, area`` (of the full box
  clipped to the image, in network-input pixels: the frame the FPN levels live in),
  ``level`` (0 = P3, -1 = none), ``level_name``, ``positives`` and ``positives_<P3..P7>``.
  A GT with no pixel inside the image (dropped by the dataset) has area 0 and level -1.
* ``<out stem>.per_level.csv`` beside it: one row per level, then
  ``none``: ``level, level_name, gts, positives``.

The loop over the images is :mod:`lla.analysis.checkpoint_pass`'s.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from lla import layout, options
from lla.analysis.checkpoint_pass import (ANALYSIS_OPTIONS, AssignedImage, analyse_checkpoint,
                                         analysis_dataset, load_analysed_checkpoint,
                                         require_at_least_one, split_json)
from lla.analysis.positives import (ImageAssignment, dominant_level, level_names,
                                    positives_per_level)
from lla.config import load_params, selected_profile
from lla.errors import DataError
from lla.io import atomic_write_text, read_json

logger = logging.getLogger(__name__)

NO_LEVEL = -1


def sample_person_annotations(annotations: Sequence[dict[str, Any]], max_gts: int,
                              seed: int) -> list[dict[str, Any]]:
    """Up to ``max_gts`` non-ignore annotations, drawn without replacement with ``seed``,
    in the json's order (all of them, in order, when there are no more than ``max_gts``)."""
    persons = [ann for ann in annotations if not ann["ignore"]]
    if len(persons) <= max_gts:
        return persons
    chosen = np.random.default_rng(seed).choice(len(persons), size=max_gts, replace=False)
    return [persons[i] for i in sorted(chosen.tolist())]


class LevelAllocation:
    """The accumulation: the per-level positives of the chosen GTs.

    ``found``: ``{annotation_id: {"area", "counts": int64 (L,)}}`` for the chosen GTs the
    dataset keeps (a GT with no pixel in the image is absent); ``strides``: of the levels.
    """

    def __init__(self, annotation_ids: Sequence[int]):
        self.wanted = set(int(i) for i in annotation_ids)
        self.found: dict[int, dict[str, Any]] = {}
        self.strides: list[int] = []

    def images(self, dataset: Any) -> list[int]:
        """The dataset indices of the images holding a chosen GT."""
        return [i for i, record in enumerate(dataset.records)
                if self.wanted.intersection(record.annotation_ids.tolist())]

    def add(self, image: AssignedImage) -> None:
        item = ImageAssignment.of(image)
        self.strides = list(item.strides)
        counts = positives_per_level(item.matched_gt, item.anchor_levels, item.gt_ignore,
                                     len(self.strides))
        boxes = item.target["boxes"].numpy()
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        # persons come first among the assigner's GTs, in the target's order
        for k, annotation_id in enumerate(item.target["annotation_ids"].tolist()):
            if annotation_id in self.wanted:
                self.found[annotation_id] = {"area": float(areas[k]), "counts": counts[k]}


def level_rows(sampled: Sequence[dict[str, Any]], found: dict[int, dict[str, Any]],
               strides: Sequence[int]) -> list[dict[str, Any]]:
    """The per-GT csv rows (module docstring) in the sample's order."""
    names = level_names(strides)
    rows = []
    for ann in sampled:
        entry = found.get(ann["id"])
        counts = entry["counts"] if entry else np.zeros(len(strides), dtype=np.int64)
        level = int(dominant_level(counts[None])[0])
        row = {"annotation_id": ann["id"], "image_id": ann["image_id"],
               "area": round(entry["area"], 2) if entry else 0.0, "level": level,
               "level_name": names[level] if level >= 0 else "none",
               "positives": int(counts.sum())}
        row.update({f"positives_{name}": int(c) for name, c in zip(names, counts)})
        rows.append(row)
    return rows


def level_summary(rows: Sequence[dict[str, Any]], strides: Sequence[int]) -> list[dict[str, Any]]:
    """GTs per level (by dominant level) and positives per level, then the GTs with none."""
    names = level_names(strides)
    summary = [{"level": k, "level_name": name,
                "gts": sum(1 for r in rows if r["level"] == k),
                "positives": sum(r[f"positives_{name}"] for r in rows)}
               for k, name in enumerate(names)]
    summary.append({"level": NO_LEVEL, "level_name": "none",
                    "gts": sum(1 for r in rows if r["level"] == NO_LEVEL), "positives": 0})
    return summary


def csv_text(rows: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "levels", parents=[options.CHECKPOINT, ANALYSIS_OPTIONS],
        help="FPN level holding most positives of sampled GTs vs their area (Fig. 3)",
        description="For up to --max-gts sampled person GTs of a split: the GT's area and the "
                    "FPN level holding most of its positives under the checkpoint's assigner. "
                    "The per-level summary is written beside --out as <stem>.per_level.csv.")
    parser.add_argument("--max-gts", type=int, default=5000, metavar="N",
                        help="GTs to sample (default: 5000, the paper's; all when fewer)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default: 0)")
    options.add_out(parser, "per-GT csv to write")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_at_least_one(args.params, {"--max-gts": args.max_gts,
                                       "--batch-size": args.batch_size})
    params = load_params(args.params)
    profile = selected_profile(params, args.profile)
    state = load_analysed_checkpoint(
        args.checkpoint,
        nothing="no level allocation to draw; pick another experiment in params `figures`")
    json_path = split_json(params, profile, state, args.split, args.data)
    sampled = sample_person_annotations(read_json(json_path)["annotations"], args.max_gts,
                                        args.seed)
    if not sampled:
        raise DataError(json_path, "no person annotations to sample")
    dataset = analysis_dataset(json_path, params, profile)
    allocation = LevelAllocation([ann["id"] for ann in sampled])
    exp = analyse_checkpoint(state, dataset, allocation.images(dataset), allocation,
                             batch_size=args.batch_size)
    strides = allocation.strides or list(exp.model["strides"])
    rows = level_rows(sampled, allocation.found, strides)
    summary = level_summary(rows, strides)
    summary_path = layout.levels_summary_of(args.out)
    atomic_write_text(args.out, csv_text(rows))
    atomic_write_text(summary_path, csv_text(summary))
    logger.info("%s: %d GTs by level %s -> %s", exp.name, len(rows),
                ", ".join(f"{s['level_name']} {s['gts']}" for s in summary), args.out)
    return 0
