"""The anchor regime: how many anchor points a person's box holds, and where LLA's positives go.

LLA gives every GT its K cheapest anchors over all FPN levels, with a *finite* penalty for
anchors outside the GT (method.md, selection rule 4). When a person's box holds fewer than
K anchor points, some of its K positives necessarily lie outside it. Whether that is rare
(the paper's 800-pixel CrowdHuman input) or common (small images) is a property of the
dataset, the input transform and the strides alone, computed here without a model:

* :func:`points_inside` -- per box and FPN level, the anchor points ``(i·s, j·s)`` of the
  padded input grid strictly inside the box (more than ``margin`` px from every side, the
  assigner's in-box test), counted in closed form;
* :func:`anchor_regime` -- the same for every valid person of a converted dataset json
  after the training input transform (resize to ``min_size`` / ``max_size``, clip, pad to
  ``size_divisibility``), summarised by :class:`RegimeStats`: the median and quartile of
  the points per person, the share of persons with fewer than K, the median height.

And, from a model pass over a checkpoint (its own assigner on its own predictions, as in
training, no augmentation), :func:`positives_outside` -- the share of the positives that lie
outside their GT's box, overall and by person height (:class:`OutsideStats`).

Lengths are in network-input pixels. The command::

    lla analyze regime --profile mini [--split val | --data JSON] [--min-size N --max-size N]
        [--strides 8 16 32 64 128] [--k 10] [--per-person persons.csv]
        [--checkpoint CKPT [--max-images N]] --out regime.json

takes the input transform and strides of the profile (``input.<profile>``,
``models.<profile>``) unless given, and writes ``{"regime": RegimeStats, "positives_outside":
OutsideStats | null, "input", "strides", "json", "profile", "split", "checkpoint"}``;
``--per-person`` adds a csv of every valid person's points per level (:func:`person_points`).
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lla import layout
from lla.analysis.checkpoint_pass import require_at_least_one
from lla.assign.geometry import INSIDE_MARGIN   # the in-box test of the assigners
from lla.assign.lla import DEFAULT_TOPK as DEFAULT_K
from lla.config import load_params, section, selected_profile
from lla.data import transforms as T
from lla.data.dataset import load_records
from lla.errors import DataError
from lla.io import atomic_path, atomic_write_json

logger = logging.getLogger(__name__)

#: Person-height bins (input pixels) of :class:`OutsideStats`: [0, 32), [32, 64), [64, inf).
HEIGHT_EDGES = (32.0, 64.0)


@dataclass(frozen=True)
class InputTransform:
    """The training input transform: short side to ``min_size``, long side at most
    ``max_size``, zero padding to a multiple of ``size_divisibility``."""

    min_size: int
    max_size: int
    size_divisibility: int = 128

    def __post_init__(self) -> None:
        if not 0 < self.min_size <= self.max_size:
            raise ValueError(f"need 0 < min_size <= max_size, got {self.min_size}, {self.max_size}")
        if self.size_divisibility < 1:
            raise ValueError(f"size_divisibility must be >= 1, got {self.size_divisibility}")

    def padded(self, height: int, width: int) -> tuple[int, int]:
        d = self.size_divisibility
        return math.ceil(height / d) * d, math.ceil(width / d) * d


def _points_along_axis(low: np.ndarray, high: np.ndarray, stride: int, grid: int,
                       margin: float) -> np.ndarray:
    """Number of integers i in [0, grid) with low + margin < i·stride < high − margin."""
    first = np.floor((low + margin) / stride) + 1        # smallest i with i·s > low + margin
    last = np.ceil((high - margin) / stride) - 1         # largest i with i·s < high − margin
    first = np.maximum(first, 0)
    last = np.minimum(last, grid - 1)
    return np.maximum(last - first + 1, 0).astype(np.int64)


def points_inside(boxes: np.ndarray, padded_size: tuple[int, int], strides: Sequence[int], *,
                  margin: float = INSIDE_MARGIN) -> np.ndarray:
    """Anchor points of each level strictly inside each box.

    Args:
        boxes: float (N, 4) xyxy in input pixels.
        padded_size: (H, W) of the padded input; level l has a ceil(H/s) x ceil(W/s) grid
            of points at (i·s, j·s), s = strides[l] (no half-stride offset).
        strides: the levels' strides, e.g. (8, 16, 32, 64, 128).
        margin: a point must be more than this from every side of the box.

    Returns:
        int64 (N, L) counts.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    height, width = padded_size
    counts = np.zeros((boxes.shape[0], len(strides)), dtype=np.int64)
    for level, stride in enumerate(strides):
        stride = int(stride)
        nx = _points_along_axis(boxes[:, 0], boxes[:, 2], stride, math.ceil(width / stride), margin)
        ny = _points_along_axis(boxes[:, 1], boxes[:, 3], stride, math.ceil(height / stride), margin)
        counts[:, level] = nx * ny
    return counts


@dataclass
class RegimeStats:
    """The anchor regime of one dataset under one input transform.

    Attributes:
        persons: valid persons counted (non-empty after the transform).
        images: images of the split.
        k: the K of ``share_below_k``.
        median_points, p25_points: median and 25th percentile of the points inside a person
            (all levels).
        share_below_k: fraction of persons with fewer than K points inside.
        share_without_points: fraction of persons with none.
        median_height: median person height in input pixels.
        mean_points_per_level: per level, the mean number of points inside a person.
        input_sizes: the distinct (H, W) network-input sizes (before padding).
    """

    persons: int
    images: int
    k: int
    median_points: float
    p25_points: float
    share_below_k: float
    share_without_points: float
    median_height: float
    mean_points_per_level: list[float]
    input_sizes: list[tuple[int, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def transformed_person_boxes(json_path: str | Path, transform: InputTransform
                             ) -> Iterable[tuple[int, np.ndarray, tuple[int, int], tuple[int, int]]]:
    """Per image of a converted dataset json: its id, the valid persons' full boxes after the
    input transform (float64 (n, 4), resized, clipped, empty ones dropped, as ``CrowdDataset``
    without a flip), the input size (H, W) and the padded size."""
    for record in load_records(json_path):
        height, width = T.resized_size(record.height, record.width, min_size=transform.min_size,
                                       max_size=transform.max_size)
        scale_x, scale_y = width / record.width, height / record.height
        boxes = record.boxes.astype(np.float64) * np.array([scale_x, scale_y, scale_x, scale_y])
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        yield record.image_id, boxes[keep], (height, width), transform.padded(height, width)


def anchor_regime(json_path: str | Path, transform: InputTransform, strides: Sequence[int], *,
                  k: int = DEFAULT_K, margin: float = INSIDE_MARGIN) -> RegimeStats:
    """:class:`RegimeStats` of the valid persons of ``json_path`` (see the module docstring)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    per_level, heights, sizes, images = [], [], set(), 0
    for _, boxes, size, padded in transformed_person_boxes(json_path, transform):
        images += 1
        sizes.add(size)
        per_level.append(points_inside(boxes, padded, strides, margin=margin))
        heights.append(boxes[:, 3] - boxes[:, 1])
    if not per_level or sum(len(c) for c in per_level) == 0:
        raise DataError(json_path, "no valid person boxes")
    counts = np.concatenate(per_level)
    totals = counts.sum(axis=1)
    height = np.concatenate(heights)
    return RegimeStats(
        persons=int(len(totals)), images=images, k=k,
        median_points=float(np.median(totals)), p25_points=float(np.percentile(totals, 25)),
        share_below_k=float(np.mean(totals < k)), share_without_points=float(np.mean(totals == 0)),
        median_height=float(np.median(height)),
        mean_points_per_level=[float(v) for v in counts.mean(axis=0)],
        input_sizes=sorted(sizes))


def person_points(json_path: str | Path, transform: InputTransform, strides: Sequence[int], *,
                  margin: float = INSIDE_MARGIN) -> "pandas.DataFrame":
    """One row per valid person of ``json_path`` after the transform: ``image_id``,
    ``height`` (input px), ``points_s<stride>`` per level and ``points`` in all."""
    import pandas as pd

    frames = []
    for image_id, boxes, _, padded in transformed_person_boxes(json_path, transform):
        counts = points_inside(boxes, padded, strides, margin=margin)
        frame = pd.DataFrame(counts, columns=[f"points_s{int(s)}" for s in strides])
        frame.insert(0, "height", boxes[:, 3] - boxes[:, 1])
        frame.insert(0, "image_id", image_id)
        frame["points"] = counts.sum(axis=1)
        frames.append(frame)
    if not frames:
        raise DataError(json_path, "no images")
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------ the model pass

@dataclass
class OutsideStats:
    """Where a trained model's assigner puts the positives of valid persons.

    Attributes:
        gts: valid persons seen.
        positives: their positive anchors.
        outside: positives whose anchor point is not inside their GT box (the assigner's
            in-box test, margin 0.01 px).
        by_height: per height bin (``HEIGHT_EDGES``, input pixels) a dict with ``gts``,
            ``positives``, ``outside``, ``share_outside``.
        gts_below_k_inside: persons with fewer than K anchor points inside their box.
    """

    gts: int
    positives: int
    outside: int
    by_height: dict[str, dict[str, float]]
    gts_below_k_inside: int
    k: int

    @property
    def share_outside(self) -> float:
        return self.outside / self.positives if self.positives else 0.0

    @property
    def positives_per_gt(self) -> float:
        return self.positives / self.gts if self.gts else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(share_outside=self.share_outside, positives_per_gt=self.positives_per_gt)
        return out


def height_bin_labels(edges: Sequence[float] = HEIGHT_EDGES) -> list[str]:
    bounds = [0.0, *edges, math.inf]
    return [f"[{lo:g}, {hi:g})" for lo, hi in zip(bounds, bounds[1:])]


def count_outside(matched_gt: np.ndarray, anchor_points: np.ndarray, gt_boxes: np.ndarray,
                  gt_ignore: np.ndarray, *, margin: float = INSIDE_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """Per GT, its positives and how many of them lie outside its box.

    Args:
        matched_gt: int (J,) the assignment (GT index, or < 0 for negatives / ignored).
        anchor_points: float (J, 2) anchor points (anchor-box centres).
        gt_boxes: float (I, 4) xyxy; gt_ignore: bool (I,) (ignore GTs hold no positives).

    Returns:
        int64 (I,) positives, int64 (I,) of them outside (zero for ignore GTs).
    """
    matched_gt = np.asarray(matched_gt, dtype=np.int64)
    gt_ignore = np.asarray(gt_ignore, dtype=bool)
    num_gts = gt_ignore.shape[0]
    positive = matched_gt >= 0
    positive[positive] = ~gt_ignore[matched_gt[positive]]
    anchor = np.nonzero(positive)[0]
    gt = matched_gt[anchor]
    points = np.asarray(anchor_points, dtype=np.float64)[anchor]
    boxes = np.asarray(gt_boxes, dtype=np.float64)[gt]
    inside = ((points[:, 0] - boxes[:, 0] > margin) & (points[:, 1] - boxes[:, 1] > margin)
              & (boxes[:, 2] - points[:, 0] > margin) & (boxes[:, 3] - points[:, 1] > margin))
    return (np.bincount(gt, minlength=num_gts).astype(np.int64),
            np.bincount(gt[~inside], minlength=num_gts).astype(np.int64))


def positives_outside(checkpoint: str | Path, json_path: str | Path,
                      input_cfg: dict[str, Any] | None = None, *, max_images: int | None = None,
                      batch_size: int = 2, k: int = DEFAULT_K,
                      edges: Sequence[float] = HEIGHT_EDGES) -> OutsideStats:
    """:class:`OutsideStats` of a checkpoint's assigner over the first ``max_images`` images
    of ``json_path`` under the input block ``input_cfg`` (min_size, max_size, flip_prob;
    default: the checkpoint's own, the input it trained with)."""
    import torch

    from lla.analysis.checkpoint_pass import assigned_images, load_run_model
    from lla.data.dataset import CrowdDataset
    from lla.engine import checkpoint as ckpt

    model, exp = load_run_model(ckpt.load_checkpoint(checkpoint))
    dataset = CrowdDataset.from_config(json_path, exp.input if input_cfg is None else input_cfg,
                                       train=False)
    count = len(dataset) if max_images is None else min(max_images, len(dataset))
    strides = [int(s) for s in exp.model["strides"]]
    divisibility = int(exp.model["input"]["size_divisibility"])
    labels = height_bin_labels(edges)
    bins = {label: {"gts": 0, "positives": 0, "outside": 0} for label in labels}
    gts = positives = outside = below_k = 0
    with torch.no_grad():
        for image in assigned_images(model, dataset, range(count), batch_size=batch_size,
                                     size_divisibility=divisibility):
            # The image's own padded grid: the batch's extra padding holds no point inside a box.
            height, width = (int(v) for v in image.target["size"])
            padded = (-(-height // divisibility) * divisibility, -(-width // divisibility) * divisibility)
            points = image.anchors.centers.numpy()
            ignore = image.gt.ignore.numpy()
            boxes = image.gt.boxes.numpy()
            per_gt, per_gt_outside = count_outside(image.assignment.matched_gt.numpy(), points,
                                                   boxes, ignore)
            valid = ~ignore
            heights = boxes[valid, 3] - boxes[valid, 1]
            which = np.searchsorted(np.asarray(edges), heights, side="right")
            for b, label in enumerate(labels):
                sel = which == b
                bins[label]["gts"] += int(sel.sum())
                bins[label]["positives"] += int(per_gt[valid][sel].sum())
                bins[label]["outside"] += int(per_gt_outside[valid][sel].sum())
            gts += int(valid.sum())
            positives += int(per_gt[valid].sum())
            outside += int(per_gt_outside[valid].sum())
            below_k += int((points_inside(boxes[valid], padded, strides).sum(axis=1) < k).sum())
    for entry in bins.values():
        entry["share_outside"] = entry["outside"] / entry["positives"] if entry["positives"] else 0.0
    return OutsideStats(gts=gts, positives=positives, outside=outside, by_height=bins,
                        gts_below_k_inside=below_k, k=k)


# ------------------------------------------------------------------ the command
# (its options: lla.analysis.commands, which loads without torch)

def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    profile = selected_profile(params, args.profile)
    json_path = args.data or layout.converted_json(params, profile, args.dataset, args.split)
    if not Path(json_path).is_file():
        raise DataError(json_path, "dataset json not found (--data, or convert the profile's data)")
    require_at_least_one(args.params, {"--k": args.k, "--max-images": args.max_images,
                                       "--batch-size": args.batch_size,
                                       "--min-size": args.min_size, "--max-size": args.max_size})
    if args.strides is not None and min(args.strides) < 1:
        raise DataError(args.params, f"--strides must be >= 1, got {args.strides}")
    input_cfg, models = section(params, "input", profile), section(params, "models", profile)
    try:
        transform = InputTransform(args.min_size or int(input_cfg["min_size"]),
                                   args.max_size or int(input_cfg["max_size"]),
                                   int(models["input"]["size_divisibility"]))
    except ValueError as e:
        raise DataError(args.params, f"input transform: {e}") from None
    strides = [int(s) for s in (args.strides or models["strides"])]
    k = DEFAULT_K if args.k is None else args.k
    stats = anchor_regime(json_path, transform, strides, k=k)
    outside = None
    if args.checkpoint is not None:
        if not args.checkpoint.is_file():
            raise DataError(args.checkpoint, "checkpoint not found")
        outside = positives_outside(args.checkpoint, json_path, max_images=args.max_images,
                                    batch_size=args.batch_size, k=k).to_dict()
    if args.per_person is not None:
        frame = person_points(json_path, transform, strides)
        with atomic_path(args.per_person) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.2f")
    result = {"regime": stats.to_dict(), "positives_outside": outside,
              "input": {"min_size": transform.min_size, "max_size": transform.max_size,
                        "size_divisibility": transform.size_divisibility},
              "strides": strides, "json": str(json_path), "profile": profile,
              "split": None if args.data else args.split,
              "checkpoint": None if args.checkpoint is None else str(args.checkpoint)}
    atomic_write_json(args.out, result, indent=1)
    logger.info("%d persons: median %g points inside (25th pct %g), %.1f %% below K = %d%s -> %s",
                stats.persons, stats.median_points, stats.p25_points, 100 * stats.share_below_k,
                k, "" if outside is None else
                f"; {100 * outside['share_outside']:.1f} % of the positives outside their person",
                args.out)
    return 0
