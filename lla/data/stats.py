"""Crowdedness and occlusion statistics of a ground-truth file (``lla data stats``).

Reads a CrowdHuman ``.odgt`` or one of our converted COCO-style ``.json`` files and
reports the figures the CrowdHuman paper uses to compare datasets:

- persons per image and ignore boxes per image. A *person* is a box that counts in the
  evaluation: odgt ``tag == "person"`` without ``extra.ignore == 1``; json ``ignore == 0``.
  Every other box (``mask`` regions, ignored persons) is an *ignore box*, so an ``.odgt``
  and its converted ``.json`` give the same numbers;
- pair-wise overlap: unordered pairs of persons in the same image whose full boxes have
  IoU > t, per image, for t = 0.3 … 0.9;
- visibility: odgt ``area(vbox ∩ fbox) / area(fbox)``, json ``vis_ratio``; a histogram
  over ten bins [0, 0.1), …, [0.9, 1.0] and the paper's three occlusion levels
  (bare: vis >= 0.7, partial: 0.3 <= vis < 0.7, heavy: vis < 0.3);
- quantiles of the full-box height in pixels.

Boxes with a zero width or height are skipped and counted (``degenerate_boxes``); a
negative width or height, a NaN or infinite coordinate, or a file without images is an
error (``error: FILE[:LINE] [record]: reason``, exit code 2), as in ``lla data convert``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lla.errors import DataError

log = logging.getLogger(__name__)

IOU_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
VIS_BIN_EDGES = tuple(round(0.1 * k, 1) for k in range(11))
HEIGHT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
BARE_MIN_VIS, HEAVY_MAX_VIS = 0.7, 0.3          # the CrowdHuman paper's occlusion levels


@dataclass
class ImageBoxes:
    """The persons of one image: ``boxes`` (N, 4) full boxes [x, y, w, h], ``visibility``
    (N,) in [0, 1]; plus how many ignore boxes and degenerate boxes it had."""

    record: str
    boxes: np.ndarray
    visibility: np.ndarray
    n_ignore: int
    n_degenerate: int


def _box(value: Any, path: Path, line: int, record: str, key: str) -> list[float]:
    """``value`` as [x, y, w, h] floats; DataError unless it is 4 finite numbers with
    ``w >= 0`` and ``h >= 0`` (as the converters require)."""
    if not (isinstance(value, list) and len(value) == 4 and
            all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise DataError(path, f"'{key}' must be a list of 4 numbers, got {value!r}",
                        line=line, record=record)
    box = [float(v) for v in value]
    if not all(math.isfinite(v) for v in box):
        raise DataError(path, f"'{key}' has a NaN/inf value: {value!r}", line=line,
                        record=record)
    if box[2] < 0 or box[3] < 0:
        raise DataError(path, f"'{key}' has a negative width or height: {value!r}", line=line,
                        record=record)
    return box


def _visible_fraction(full: list[float], visible: list[float]) -> float:
    """area(visible ∩ full) / area(full) for [x, y, w, h] boxes with positive full area."""
    ix = min(full[0] + full[2], visible[0] + visible[2]) - max(full[0], visible[0])
    iy = min(full[1] + full[3], visible[1] + visible[3]) - max(full[1], visible[1])
    return max(ix, 0.0) * max(iy, 0.0) / (full[2] * full[3])


def _image(record: str, boxes: list[list[float]], vis: list[float], n_ignore: int,
           n_degenerate: int) -> ImageBoxes:
    return ImageBoxes(record, np.array(boxes, np.float64).reshape(-1, 4),
                      np.array(vis, np.float64), n_ignore, n_degenerate)


def read_odgt(path: str | Path) -> list[ImageBoxes]:
    """Persons and ignore counts of every line of a CrowdHuman ``.odgt`` file."""
    path = Path(path)
    images = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            entry = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(path, f"invalid JSON: {e.msg} (column {e.colno})", line=number) from None
        if not isinstance(entry, dict) or "ID" not in entry or \
                not isinstance(entry.get("gtboxes"), list):
            raise DataError(path, "expected an object with 'ID' and a 'gtboxes' list", line=number)
        record = str(entry["ID"])
        boxes, vis, n_ignore, n_degenerate = [], [], 0, 0
        for k, gt in enumerate(entry["gtboxes"]):
            where = f"{record} box {k}"
            if not isinstance(gt, dict):
                raise DataError(path, "a box must be an object", line=number, record=where)
            tag = gt.get("tag")
            if tag not in ("person", "mask"):
                raise DataError(path, f"unknown tag {tag!r} (expected 'person' or 'mask')",
                                line=number, record=where)
            full = _box(gt.get("fbox"), path, number, where, "fbox")
            if full[2] == 0 or full[3] == 0:
                n_degenerate += 1
                continue
            extra = gt.get("extra") or {}
            if tag == "mask" or extra.get("ignore", 0) == 1:
                n_ignore += 1
                continue
            visible = _box(gt.get("vbox"), path, number, where, "vbox")
            boxes.append(full)
            vis.append(_visible_fraction(full, visible))
        images.append(_image(record, boxes, vis, n_ignore, n_degenerate))
    return images


def read_converted(path: str | Path) -> list[ImageBoxes]:
    """Persons and ignore counts per image of a converted COCO-style json (our contract)."""
    from lla.io import read_json

    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or \
            not isinstance(data.get("annotations"), list):
        raise DataError(path, "expected an object with 'images' and 'annotations' lists")
    per_image: dict[Any, list[dict]] = {}
    order = []
    for k, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "id" not in image:
            raise DataError(path, "image without 'id'", record=f"images[{k}]")
        per_image[image["id"]] = []
        order.append((image["id"], str(image.get("record_id", image.get("file_name", k)))))
    for k, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise DataError(path, "annotation must be an object", record=f"annotations[{k}]")
        if ann.get("image_id") not in per_image:
            raise DataError(path, f"unknown image_id {ann.get('image_id')!r}",
                            record=f"annotations[{k}]")
        per_image[ann["image_id"]].append(ann)
    images = []
    for image_id, record in order:
        boxes, vis, n_ignore, n_degenerate = [], [], 0, 0
        for ann in per_image[image_id]:
            where = f"annotation {ann.get('id')}"
            full = _box(ann.get("bbox"), path, None, where, "bbox")
            if full[2] == 0 or full[3] == 0:
                n_degenerate += 1
                continue
            if ann.get("ignore", 0):
                n_ignore += 1
                continue
            ratio = ann.get("vis_ratio")
            if not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
                raise DataError(path, f"'vis_ratio' must be a number in [0, 1], got {ratio!r}",
                                record=where)
            boxes.append(full)
            vis.append(float(ratio))
        images.append(_image(record, boxes, vis, n_ignore, n_degenerate))
    return images


def load_ground_truth(path: str | Path) -> list[ImageBoxes]:
    """Dispatch on the suffix: ``.odgt`` (CrowdHuman) or ``.json`` (converted)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(path, "is a directory, expected a file")
    if path.suffix == ".odgt":
        images = read_odgt(path)
    elif path.suffix == ".json":
        images = read_converted(path)
    else:
        raise DataError(path, "expected a CrowdHuman .odgt or a converted .json file")
    if not images:
        raise DataError(path, "no images in the ground truth")
    return images


def pairwise_iou(boxes: np.ndarray) -> np.ndarray:
    """(N, N) IoU matrix of (N, 4) [x, y, w, h] boxes."""
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    iw = np.clip(np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None]), 0, None)
    ih = np.clip(np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None]), 0, None)
    inter = iw * ih
    area = boxes[:, 2] * boxes[:, 3]
    return inter / (area[:, None] + area[None] - inter)


def overlap_pair_counts(boxes: np.ndarray, thresholds=IOU_THRESHOLDS) -> list[int]:
    """Number of unordered pairs i < j with IoU > t, for each threshold t."""
    if len(boxes) < 2:
        return [0] * len(thresholds)
    iou = pairwise_iou(boxes)[np.triu_indices(len(boxes), k=1)]
    return [int(np.count_nonzero(iou > t)) for t in thresholds]


def compute_stats(images: list[ImageBoxes]) -> dict[str, Any]:
    """The statistics listed in the module docstring, as a JSON-ready dict."""
    n_images = len(images)
    if n_images == 0:
        raise DataError(None, "no images in the ground truth")
    pairs = np.zeros(len(IOU_THRESHOLDS))
    for image in images:
        pairs += overlap_pair_counts(image.boxes)
    vis = np.concatenate([image.visibility for image in images])
    heights = np.concatenate([image.boxes[:, 3] for image in images])
    n_persons = len(vis)
    counts, _ = np.histogram(vis, bins=VIS_BIN_EDGES)           # last bin includes 1.0
    fraction = counts / max(n_persons, 1)
    return {
        "images": n_images,
        "persons": n_persons,
        "persons_per_image": n_persons / n_images,
        "ignore_boxes_per_image": sum(i.n_ignore for i in images) / n_images,
        "degenerate_boxes": sum(i.n_degenerate for i in images),
        "pairs_per_image": {f"{t:.1f}": float(p / n_images) for t, p in zip(IOU_THRESHOLDS, pairs)},
        "mean_visibility": float(vis.mean()) if n_persons else None,
        "visibility_histogram": {"edges": list(VIS_BIN_EDGES),
                                 "fraction": [float(f) for f in fraction]},
        "occlusion_levels": {
            "bare": float(np.mean(vis >= BARE_MIN_VIS)) if n_persons else None,
            "partial": float(np.mean((vis >= HEAVY_MAX_VIS) & (vis < BARE_MIN_VIS)))
            if n_persons else None,
            "heavy": float(np.mean(vis < HEAVY_MAX_VIS)) if n_persons else None},
        "height_quantiles": {f"{q:g}": float(np.quantile(heights, q)) if n_persons else None
                             for q in HEIGHT_QUANTILES},
    }


def format_stats(stats: dict[str, Any], reference: dict[str, Any] | None = None,
                 reference_name: str = "reference") -> str:
    """A plain-text table of ``stats`` (with a second column from ``reference``, a dict of
    the same shape where known values are present)."""
    reference = reference or {}

    def get(d: dict, *keys):
        for key in keys:
            if not isinstance(d, dict) or key not in d:
                return None
            d = d[key]
        return d

    rows: list[tuple[str, tuple[str, ...]]] = [
        ("images", ("images",)), ("persons / image", ("persons_per_image",)),
        ("ignore boxes / image", ("ignore_boxes_per_image",)),
        *[(f"pairs IoU>{t:.1f} / image", ("pairs_per_image", f"{t:.1f}")) for t in IOU_THRESHOLDS],
        ("mean visibility", ("mean_visibility",)),
        ("bare  (vis >= 0.7)", ("occlusion_levels", "bare")),
        ("partial (0.3-0.7)", ("occlusion_levels", "partial")),
        ("heavy (vis < 0.3)", ("occlusion_levels", "heavy")),
        *[(f"height q{q:g} (px)", ("height_quantiles", f"{q:g}")) for q in HEIGHT_QUANTILES],
    ]

    def fmt(value) -> str:
        if value is None:
            return "-"
        return f"{value:d}" if isinstance(value, int) else f"{value:.3f}"

    lines = [f"{'statistic':<26}{'this file':>12}" + (f"{reference_name:>14}" if reference else "")]
    for label, keys in rows:
        line = f"{label:<26}{fmt(get(stats, *keys)):>12}"
        if reference:
            line += f"{fmt(get(reference, *keys)):>14}"
        lines.append(line)
    hist = stats["visibility_histogram"]
    lines.append("visibility histogram (fraction of persons):")
    edges = hist["edges"]
    for k, f in enumerate(hist["fraction"]):
        closing = "]" if k == len(hist["fraction"]) - 1 else ")"
        lines.append(f"  [{edges[k]:.1f}, {edges[k + 1]:.1f}{closing} {f:6.3f} {'#' * round(f * 50)}")
    return "\n".join(lines)


def run_stats(args: argparse.Namespace) -> int:
    from lla.io import atomic_write_json

    stats = compute_stats(load_ground_truth(args.gt))
    stats = {"source": str(args.gt), **stats}
    print(format_stats(stats))
    if args.out is not None:
        atomic_write_json(args.out, stats, indent=2)
        log.info("wrote %s", args.out)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "stats", help="crowdedness/occlusion statistics of a ground-truth file",
        description="Print persons/image, ignore boxes/image, pair-wise full-box overlap "
                    "(pairs with IoU > 0.3 ... 0.9 per image), a visibility histogram and "
                    "full-box height quantiles of a CrowdHuman .odgt or a converted .json.")
    p.add_argument("--gt", required=True, type=Path, help=".odgt or converted .json file")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="also write the statistics to this JSON file")
    p.set_defaults(func=run_stats)
