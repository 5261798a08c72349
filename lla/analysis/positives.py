"""`lla analyze positives`: the positive anchors of each GT on fixed images (Figs. 1, 2, 4).

    lla analyze positives --run-dir runs/mini/lla_retinanet_star_a1_r50 --profile mini \\
        --split train --images 3 --iterations 50 150 300 final --out positives.json

The fixed images are the ``--images`` most crowded images of the split (most person pairs
overlapping at IoU > 0.5, then most persons, then the json's order; see
:func:`most_crowded_images`), the same for every checkpoint and every run. Each checkpoint
(``final`` = ``model_final.pt``, a number = ``checkpoints/iter_<N>.pt``) assigns their
anchors with its own assigner on its own predictions, as in training (as ``lla analyze aar``
does), without augmentation.

Output json (coordinates in original-image pixels, boxes ``[x1, y1, x2, y2]``; levels are
indices into ``strides``, 0 = P3)::

    {"experiment", "profile", "split", "data": dataset json, "run_dir",
     "strides": [8, 16, ...], "level_names": ["P3", ...],
     "images": [{"image_id", "file_name", "width", "height",
                 "annotation_ids": [...], "gt_boxes": [[...], ...],   # persons the model sees
                 "ignore_boxes": [[...], ...]}],
     "checkpoints": [{"label": "150" | "final", "iteration", "path",
                      "images": [{"image_id", "gt": [...], "level": [...],
                                  "center": [[x, y], ...], "box": [[...], ...]}]}]}

``gt`` indexes the image's ``gt_boxes``. An iteration with no checkpoint file is an
error, unless it lies beyond the run's last iteration (the schedule ended before it):
that one is skipped with a warning.

The helpers here (per-level counts, the dominant level, the crowded-image choice, an
image's assignment as numpy arrays) are shared with ``lla analyze levels``
(:mod:`lla.analysis.fpn_levels`) and the figures that draw both. The loop over the images is
:mod:`lla.analysis.checkpoint_pass`'s. Torch is imported inside the functions that run a model.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lla import options
from lla.analysis.checkpoint_pass import (ANALYSIS_OPTIONS, AssignedImage, analyse_checkpoint,
                                         analysis_dataset, load_analysed_checkpoint,
                                         require_at_least_one, split_json)
from lla.config import DEFAULT_PARAMS, load_params, selected_profile
from lla.errors import DataError
from lla.io import atomic_write_json, read_json

logger = logging.getLogger(__name__)

FINAL = "final"
CROWD_IOU = 0.5  # a pair of persons overlapping at least this much counts as crowded
COORD_DECIMALS = 2


# ------------------------------------------------------------------ counting positives

def positives_per_level(matched_gt: np.ndarray, anchor_levels: np.ndarray,
                        gt_ignore: np.ndarray, num_levels: int) -> np.ndarray:
    """Positive anchors of each GT on each FPN level.

    Args:
        matched_gt: int (J,), the assignment: GT index, or < 0 (negative / ignored).
        anchor_levels: int (J,), each anchor's level index (0 = P3).
        gt_ignore: bool (I,), ignore boxes (their anchors are not positives).
        num_levels: L.
    Returns:
        int64 (I, L); rows of ignore GTs are zero.
    """
    matched_gt = np.asarray(matched_gt, dtype=np.int64)
    anchor_levels = np.asarray(anchor_levels, dtype=np.int64)
    gt_ignore = np.asarray(gt_ignore, dtype=bool)
    counts = np.zeros((gt_ignore.shape[0], num_levels), dtype=np.int64)
    positive = matched_gt >= 0
    positive[positive] = ~gt_ignore[matched_gt[positive]]
    np.add.at(counts, (matched_gt[positive], anchor_levels[positive]), 1)
    return counts


def dominant_level(counts: np.ndarray) -> np.ndarray:
    """int64 (I,): the level holding most of each GT's positives, from (I, L) counts.

    Ties go to the finer level (lower index); a GT without positives gets -1.
    """
    counts = np.asarray(counts)
    if counts.ndim != 2:
        raise ValueError(f"counts must be (I, L), got shape {counts.shape}")
    level = np.argmax(counts, axis=1).astype(np.int64)  # first maximum = finest level
    level[counts.sum(axis=1) == 0] = -1
    return level


def level_names(strides: Sequence[int]) -> list[str]:
    """FPN names of the levels: stride 8 -> 'P3'."""
    return [f"P{int(round(math.log2(s)))}" for s in strides]


# ------------------------------------------------------------------ choosing the images

def box_iou(boxes: np.ndarray) -> np.ndarray:
    """(K, K) IoU of xyxy boxes (K, 4) with each other."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    lt = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    union = area[:, None] + area[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def most_crowded_images(dataset: dict[str, Any], count: int) -> list[int]:
    """Ids of the ``count`` most crowded images of a converted dataset json (all if fewer).

    Crowdedness: pairs of persons (non-ignore annotations, full boxes) with IoU > 0.5,
    then the number of persons; ties keep the json's image order. Deterministic.
    """
    persons: dict[int, list[list[float]]] = {image["id"]: [] for image in dataset["images"]}
    for ann in dataset["annotations"]:
        if not ann["ignore"] and ann["image_id"] in persons:
            x, y, w, h = ann["bbox"]
            persons[ann["image_id"]].append([x, y, x + w, y + h])
    keys = []
    for order, image in enumerate(dataset["images"]):
        boxes = persons[image["id"]]
        iou = box_iou(np.asarray(boxes))
        pairs = int(np.triu(iou > CROWD_IOU, k=1).sum())
        keys.append((-pairs, -len(boxes), order, image["id"]))
    return [image_id for *_, image_id in sorted(keys)[:count]]


# ------------------------------------------------------------------ running a checkpoint

class ImageAssignment(NamedTuple):
    """One image's assignment by a model, as numpy arrays.

    index: the dataset index; target: the dataset's target dict (resized-image pixels).
    matched_gt: int64 (J,) over the GTs of ``gt_ignore`` (persons first, then ignore boxes).
    gt_ignore: bool (I,). anchor_levels: int64 (J,). anchor_centers: float (J, 2) and
    anchor_boxes: float (J, 4), resized-image pixels. strides: of the levels.
    """

    index: int
    target: dict[str, Any]
    matched_gt: np.ndarray
    gt_ignore: np.ndarray
    anchor_levels: np.ndarray
    anchor_centers: np.ndarray
    anchor_boxes: np.ndarray
    strides: tuple[int, ...]

    @classmethod
    def of(cls, image: AssignedImage) -> "ImageAssignment":
        """The numpy view of an image the model assigned."""
        anchors = image.anchors
        return cls(index=image.index, target=image.target,
                   matched_gt=image.assignment.matched_gt.cpu().numpy(),
                   gt_ignore=image.gt.ignore.cpu().numpy(),
                   anchor_levels=anchors.levels.cpu().numpy(),
                   anchor_centers=anchors.centers.cpu().numpy(),
                   anchor_boxes=anchors.boxes.cpu().numpy(),
                   strides=tuple(int(s) for s in anchors.level_strides))


def image_positives(item: ImageAssignment) -> dict[str, list]:
    """The positive anchors of one image in original-image pixels (columns, one entry each).

    ``gt`` (P,) person index, ``level`` (P,), ``center`` (P, 2), ``box`` (P, 4).
    """
    matched = item.matched_gt
    positive = matched >= 0
    positive[positive] = ~item.gt_ignore[matched[positive]]
    scale_x, scale_y = (float(s) for s in item.target["scale"])
    factors = np.array([scale_x, scale_y])
    centers = item.anchor_centers[positive] / factors
    boxes = item.anchor_boxes[positive] / np.tile(factors, 2)
    return {"gt": matched[positive].tolist(), "level": item.anchor_levels[positive].tolist(),
            "center": np.round(centers, COORD_DECIMALS).tolist(),
            "box": np.round(boxes, COORD_DECIMALS).tolist()}


def original_boxes(boxes: Any, scale: Any) -> list[list[float]]:
    """xyxy boxes (K, 4) of resized-image pixels back in original pixels, rounded."""
    array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scale_x, scale_y = (float(s) for s in scale)
    array = array / np.array([scale_x, scale_y, scale_x, scale_y])
    return np.round(array, COORD_DECIMALS).tolist()


# ------------------------------------------------------------------ the command

def parse_iterations(values: Sequence[str]) -> list[int | str]:
    """``['500', 'final']`` -> ``[500, 'final']``; anything else is a :class:`DataError`."""
    parsed: list[int | str] = []
    for value in values:
        if value == FINAL:
            parsed.append(FINAL)
            continue
        try:
            iteration = int(value)
        except ValueError:
            iteration = -1
        if iteration < 0:
            raise DataError(DEFAULT_PARAMS, f"--iterations: expected iteration numbers or "
                                            f"'{FINAL}', got {value!r}")
        parsed.append(iteration)
    if not parsed:
        raise DataError(DEFAULT_PARAMS, "--iterations: give at least one")
    return parsed


def checkpoints_to_analyse(run_dir: Path, iterations: Sequence[int | str]
                           ) -> list[tuple[str, Path]]:
    """``(label, path)`` per requested iteration; see the module docstring on missing ones."""
    from lla.engine import checkpoint as ckpt

    final_path = run_dir / ckpt.FINAL_MODEL
    last_iteration = None
    if final_path.is_file():
        last_iteration = int(ckpt.load_checkpoint(final_path)["iteration"])
    chosen = []
    for iteration in iterations:
        if iteration == FINAL:
            if last_iteration is None:
                raise DataError(final_path, "no final model: is the run finished?")
            chosen.append((FINAL, final_path))
            continue
        path = ckpt.checkpoint_path(run_dir, int(iteration))
        if path.is_file():
            chosen.append((str(iteration), path))
        elif last_iteration is not None and int(iteration) >= last_iteration:
            logger.warning("skipping iteration %d: the run ended at iteration %d",
                           iteration, last_iteration)
        else:
            kept = ", ".join(str(i) for i, _ in ckpt.list_checkpoints(run_dir)) or "none"
            raise DataError(path, f"checkpoint of iteration {iteration} not found (kept: "
                                  f"{kept}; train.keep_checkpoints decides which are kept)")
    return chosen


class CheckpointPositives:
    """The accumulation of one checkpoint: each image's positives, and its GTs.

    Args:
        dataset: the analysed :class:`~lla.data.dataset.CrowdDataset` (its records).
        file_names: ``{image id: file_name}`` of the dataset json.
    """

    def __init__(self, dataset: Any, file_names: dict[int, str]):
        self.dataset, self.file_names = dataset, file_names
        self.images: list[dict[str, Any]] = []      # the GTs: the same for every checkpoint
        self.positives: list[dict[str, Any]] = []
        self.strides: tuple[int, ...] | None = None

    def add(self, image: AssignedImage) -> None:
        item = ImageAssignment.of(image)
        self.strides = item.strides
        record = self.dataset.records[item.index]
        target = item.target
        self.images.append({
            "image_id": record.image_id, "file_name": self.file_names[record.image_id],
            "width": record.width, "height": record.height,
            "annotation_ids": target["annotation_ids"].tolist(),
            "gt_boxes": original_boxes(target["boxes"], target["scale"]),
            "ignore_boxes": original_boxes(target["ignore_boxes"], target["scale"])})
        self.positives.append({"image_id": record.image_id, **image_positives(item)})


def analyse_run(checkpoints: Sequence[tuple[str, Path]], json_path: Path,
                params: dict[str, Any], profile: str, *, num_images: int, batch_size: int
                ) -> dict[str, Any]:
    """The positives json (module docstring) of the checkpoints on the fixed images."""
    data = read_json(json_path)
    chosen_ids = most_crowded_images(data, num_images)
    dataset = analysis_dataset(json_path, params, profile)
    position = {record.image_id: i for i, record in enumerate(dataset.records)}
    indices = [position[image_id] for image_id in chosen_ids]
    if not indices:
        raise DataError(json_path, "no images to analyse")
    files = {image["id"]: image["file_name"] for image in data["images"]}

    images: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    experiment = strides = None
    for label, path in checkpoints:
        state = load_analysed_checkpoint(
            path, nothing="no positives to draw; pick another experiment in params `figures`")
        collected = CheckpointPositives(dataset, files)
        experiment = analyse_checkpoint(state, dataset, indices, collected,
                                        batch_size=batch_size).name
        strides = collected.strides or strides
        images = images or collected.images
        results.append({"label": label, "iteration": int(state["iteration"]), "path": str(path),
                        "images": collected.positives})
        logger.info("%s: %d positives on %d images", path,
                    sum(len(i["gt"]) for i in collected.positives), len(collected.positives))
    return {"experiment": experiment, "data": str(json_path), "strides": list(strides),
            "level_names": level_names(strides), "images": images, "checkpoints": results}


def evolution_iterations(params: dict[str, Any], profile: str, experiment: str) -> list[str]:
    """``--iterations`` of the positives over training (Fig. 4): the checkpoints the
    experiment's run keeps (``train.keep_checkpoints``), then ``final``."""
    from lla.engine.experiment import resolve_experiment

    kept = resolve_experiment(params, experiment, profile).train.get("keep_checkpoints") or []
    return [str(i) for i in sorted(set(int(i) for i in kept))] + [FINAL]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "positives", parents=[ANALYSIS_OPTIONS],
        help="positive anchors of each GT on the most crowded images (Figs. 1, 2, 4)",
        description="The positive anchors (centre, box, level, matched GT) of the N most crowded "
                    "images of a split, at chosen checkpoints of one run, each assigned by the "
                    "checkpoint's own assigner on its own predictions.")
    parser.add_argument("--run-dir", type=Path, required=True, metavar="DIR",
                        help="the run's directory, runs/<profile>/<run>")
    parser.add_argument("--images", type=int, default=3, metavar="N",
                        help="the N most crowded images (default: 3)")
    parser.add_argument("--iterations", nargs="+", default=[FINAL], metavar="IT",
                        help=f"checkpoint iterations and/or '{FINAL}' (default: {FINAL})")
    options.add_out(parser, "json to write")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_at_least_one(args.params, {"--images": args.images, "--batch-size": args.batch_size})
    iterations = parse_iterations(args.iterations)
    params = load_params(args.params)
    profile = selected_profile(params, args.profile)
    checkpoints = checkpoints_to_analyse(args.run_dir, iterations)
    if not checkpoints:
        raise DataError(args.run_dir, "none of the requested checkpoints exists")
    from lla.engine import checkpoint as ckpt

    first = ckpt.load_checkpoint(checkpoints[0][1])
    json_path = split_json(params, profile, first, args.split, args.data)
    result = analyse_run(checkpoints, json_path, params, profile, num_images=args.images,
                         batch_size=args.batch_size)
    result.update(profile=profile, split=args.split, run_dir=str(args.run_dir))
    atomic_write_json(args.out, result)
    logger.info("positives of %d checkpoint(s) on %d image(s) -> %s", len(checkpoints),
                len(result["images"]), args.out)
    return 0
