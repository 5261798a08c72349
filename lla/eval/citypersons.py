"""CityPersons log-average miss rate (MR) for the four official setups.

The protocol is the one of the dataset authors' ``eval_MR_multisetup.py`` (evaluation.md §3),
reproduced number for number, quirks included:

* per setup, a GT box is ignored when its ``ignore`` flag is set or its ``height`` /
  ``vis_ratio`` lies outside the setup's ranges (both ends inclusive);
* per image, detections are sorted by score (stable), cut to the first 1000, then those with
  a box height outside ``[h0 / 1.25, h1 * 1.25)`` vanish; nothing is clipped;
* the overlap with a valid GT is IoU, with an ignored GT IoA (intersection over the
  detection's area), no epsilon; a match needs overlap >= 0.5, an exact tie between valid
  GTs goes to the *last* one, and the first ignored GT with IoA >= 0.5 absorbs a detection
  that matched no free valid GT;
* only category 1 counts; the curve pools all images (sorted by image id, stable sort by
  score), FPPI divides by the number of GT images, and recall is sampled at the last point
  with FPPI <= each reference (an index of -1 reads the *final* recall);
* MR is -1 for a setup without valid GT, and 1 when no detection survives (also for an empty
  detection list, where the official code crashes).

Instead of the official per-image Python loops this module computes all detection/GT overlaps
at once and runs the greedy matching in "rounds": round r matches the r-th candidate detection
of every image together, which is exact because matches in different images never interact.
The inputs are never modified (the official driver reloads the GT for each setup).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import msgspec
import numpy as np

from lla.errors import DataError
from lla.eval.json_input import (box_column, check_dataset, decode_typed, float_column,
                                 gc_paused, int_column, parse_json, read_bytes)
from lla.eval.phases import phase
from lla.io import atomic_write_json

log = logging.getLogger(__name__)

PERSON_CATEGORY = 1          # only this category is accumulated (hard-coded `catIds = [1]`)
MATCH_THRESHOLD = 0.5        # IoU for valid GT, IoA for ignored GT; `>=` (min(0.5, 1 - 1e-10))
MAX_DETECTIONS_PER_IMAGE = 1000
HEIGHT_TOLERANCE = 1.25      # `expFilter`: detection heights kept in [h0 / 1.25, h1 * 1.25)
NO_UPPER_BOUND = 1e5 ** 2    # the official "infinity" of the height and visibility ranges
# FPPI reference points of the log-average miss rate: the official rounded literals.
FPPI_POINTS = np.array([0.0100, 0.0178, 0.0316, 0.0562, 0.1000, 0.1778, 0.3162, 0.5623, 1.0000])
NO_VALID_GT = -1.0           # MR reported for a setup without any valid GT box

# Detection labels of one setup (see `CityPersonsEval.labels`).
TRUE_POSITIVE = 1
FALSE_POSITIVE = 0
IGNORED = -1                 # absorbed by an ignored GT: neither TP nor FP
REMOVED = -2                 # beyond the top 1000 of its image or outside the height range


@dataclass(frozen=True)
class Setup:
    """One evaluation setup: which GT boxes count as valid, which detections are evaluated."""

    name: str
    height_range: tuple[float, float]       # valid GT height, both ends inclusive
    visibility_range: tuple[float, float]   # valid GT vis_ratio, both ends inclusive

    @property
    def detection_height_range(self) -> tuple[float, float]:
        """Detection box heights evaluated: ``[low, high)``."""
        low, high = self.height_range
        return low / HEIGHT_TOLERANCE, high * HEIGHT_TOLERANCE


SETUPS: tuple[Setup, ...] = (
    Setup("Reasonable", (50, NO_UPPER_BOUND), (0.65, NO_UPPER_BOUND)),
    Setup("Reasonable_small", (50, 75), (0.65, NO_UPPER_BOUND)),
    Setup("Heavy", (50, NO_UPPER_BOUND), (0.2, 0.65)),   # official label "Reasonable_occ=heavy"
    Setup("All", (20, NO_UPPER_BOUND), (0.2, NO_UPPER_BOUND)),
)
SETUP_NAMES = tuple(setup.name for setup in SETUPS)


# --------------------------------------------------------------------------------------------
# Input: validated numpy views of the GT json and the detections list
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GroundTruth:
    """The category-1 GT boxes of a dataset json, grouped by image.

    ``image_ids`` (I,) are all image ids of the json, sorted; ``num_images`` = I is the FPPI
    denominator. The N boxes are ordered by image (in ``image_ids`` order), file order within
    an image; ``image`` (N,) indexes ``image_ids``; ``boxes`` (N, 4) are ``[x, y, w, h]``;
    ``height``, ``vis_ratio`` (N,) float64; ``ignore`` (N,) bool is the file's own flag.
    ``image_start`` (I + 1,) delimits the boxes of each image. ``has_person_category`` is
    False when the json's categories lack id 1 (every setup is then -1, as officially).
    """

    image_ids: np.ndarray
    image: np.ndarray
    boxes: np.ndarray
    height: np.ndarray
    vis_ratio: np.ndarray
    ignore: np.ndarray
    image_start: np.ndarray
    has_person_category: bool

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    def setup_ignore(self, setup: Setup) -> np.ndarray:
        """(N,) bool: boxes ignored under ``setup`` (flag, or height/visibility out of range)."""
        (h0, h1), (v0, v1) = setup.height_range, setup.visibility_range
        return (self.ignore | (self.height < h0) | (self.height > h1)
                | (self.vis_ratio < v0) | (self.vis_ratio > v1))


@dataclass(frozen=True)
class Detections:
    """The M category-1 detections of a COCO results list, in file order.

    ``image`` (M,) indexes ``GroundTruth.image_ids``; ``boxes`` (M, 4) ``[x, y, w, h]``;
    ``scores`` (M,) float64.
    """

    image: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def _source_name(source: str | Path | None) -> str | None:
    return None if source is None else str(source)


def _load(data: Any, kind: type, what: str) -> tuple[Any, str | None]:
    """(loaded object, file name or None) from a path or an already-loaded object."""
    if isinstance(data, (str, Path)):
        loaded = parse_json(read_bytes(data), data)
        if not isinstance(loaded, kind):
            raise DataError(data, f"{what} must be a JSON {'object' if kind is dict else 'list'}")
        return loaded, str(data)
    if not isinstance(data, kind):
        raise DataError(None, f"{what} must be a {'dict' if kind is dict else 'list'}, "
                              f"got {type(data).__name__}")
    return data, None


_KIND_TEXT = {"int": "an integer", "flag": "0, 1 or a boolean", "number": "a finite number",
              "box": "a finite number"}


def _type_fits(kind_of_value: type, kind: str) -> bool:
    """Whether values of this Python type can be of ``kind``: "int" an integer (not a
    boolean), "flag" an integer or a boolean (not a fraction: the official code reads it both
    as a truth value and through int(), which disagree on 0.5), "number" / "box" an integer
    or a float (not a boolean, nor a string)."""
    if issubclass(kind_of_value, bool):
        return kind == "flag"
    if kind in ("int", "flag"):
        return issubclass(kind_of_value, int)
    return issubclass(kind_of_value, (int, float))


def _check_value(value: Any, kind: str, source: str | None, record: str, name: str) -> None:
    """Raise DataError unless ``value`` is of ``kind`` ("int", "flag" or "number")."""
    ok = _type_fits(type(value), kind)
    if ok and kind in ("number", "box"):
        ok = bool(np.isfinite(value))
    if not ok:
        raise DataError(source, f"'{name}' must be {_KIND_TEXT[kind]}, got {value!r}",
                        record=record)


@dataclass(frozen=True)
class _Field:
    """A field read from every record.

    ``kind``: "int", "flag" (int or bool), "number" (finite) or "box" (4 finite numbers).

    ``default`` (a number) makes the field optional.
    """

    key: str
    kind: str
    default: float | None = None


def _find_bad_record(records: Sequence[Any], fields: Sequence[_Field], source: str | None,
                     label: str) -> None:
    """Raise a DataError for the first record with a missing or malformed field.

    Used only after the vectorised fast path failed, to name the offending record
    (``label`` and its 0-based index in the file, plus its ``id`` when it has one).
    """
    for k, rec in enumerate(records):
        record = f"{label} {k}"
        if not isinstance(rec, Mapping):
            raise DataError(source, f"must be a JSON object, got {rec!r}", record=record)
        if "id" in rec:
            record = f"{label} {k} (id {rec['id']!r})"
        for field in fields:
            if field.key not in rec:
                if field.default is not None:
                    continue
                raise DataError(source, f"missing '{field.key}'", record=record)
            value = rec[field.key]
            if field.kind == "box":
                if not isinstance(value, (list, tuple)) or len(value) != 4:
                    raise DataError(source, f"'{field.key}' must be 4 numbers [x, y, w, h], "
                                            f"got {value!r}", record=record)
                for v in value:
                    _check_value(v, "number", source, record, field.key)
            else:
                _check_value(value, field.kind, source, record, field.key)


def _column(records: Sequence[Mapping], field: _Field) -> np.ndarray:
    """One field of all records as an array: int64 (n,), float64 (n,) or float64 (n, 4).

    Raises KeyError, TypeError, ValueError or AttributeError when any record is malformed.
    """
    if field.default is None:
        values = [r[field.key] for r in records]
    else:
        values = [r.get(field.key, field.default) for r in records]
    types = set(map(type, itertools.chain.from_iterable(values) if field.kind == "box"
                    else values))
    if not all(_type_fits(t, field.kind) for t in types):
        raise ValueError(field.key)
    values = np.asarray(values)
    n = len(records)
    if n == 0:
        return np.zeros((0, 4) if field.kind == "box" else 0,
                        dtype=np.int64 if field.kind in ("int", "flag") else np.float64)
    if field.kind in ("int", "flag"):
        if values.dtype.kind not in ("iu" if field.kind == "int" else "biu") \
                or values.shape != (n,):
            raise ValueError(field.key)
        return values.astype(np.int64)
    shape = (n, 4) if field.kind == "box" else (n,)
    if values.dtype.kind not in "biuf" or values.shape != shape:
        raise ValueError(field.key)
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError(field.key)
    return values


def _columns(records: Sequence[Any], fields: Sequence[_Field], source: str | None,
             label: str) -> dict[str, np.ndarray]:
    """Extract ``fields`` of all records as arrays, or raise DataError naming the bad record."""
    try:
        return {field.key: _column(records, field) for field in fields}
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        _find_bad_record(records, fields, source, label)
        raise DataError(source, f"malformed {label} records") from None


_IMAGE_FIELDS = (_Field("id", "int"),)
_GT_FIELDS = (_Field("id", "int"), _Field("image_id", "int"), _Field("category_id", "int"),
              _Field("bbox", "box"), _Field("height", "number"), _Field("vis_ratio", "number"),
              _Field("ignore", "flag", default=0))
_DT_FIELDS = (_Field("image_id", "int"), _Field("category_id", "int"), _Field("bbox", "box"),
              _Field("score", "number"))


def parse_ground_truth(gt: Mapping, source: str | Path | None = None) -> GroundTruth:
    """Validate a dataset json (or the official ``val_gt.json``) and keep its category-1 boxes.

    Raises DataError (naming ``source`` and the record) for: a json converted for
    CrowdHuman (``info.dataset``), missing ``images`` /
    ``annotations`` / ``categories``, no image, duplicate or non-integer image ids, an
    annotation without an integer ``id`` >= 1, duplicate annotation ids, an unknown
    ``image_id``, a missing or non-finite ``bbox`` / ``height`` / ``vis_ratio``, or an
    ``ignore`` flag that is not an integer or boolean (it defaults to 0).
    """
    source = _source_name(source)
    for key in ("images", "annotations", "categories"):
        if not isinstance(gt.get(key), list):
            raise DataError(source, f"ground truth needs a list '{key}'")
    check_dataset(gt.get("info"), "citypersons", source)
    if not gt["images"]:
        raise DataError(source, "ground truth has no images")
    image_ids = _columns(gt["images"], _IMAGE_FIELDS, source, "image")["id"]
    cols = _columns(gt["annotations"], _GT_FIELDS, source, "annotation")
    categories = {c.get("id") for c in gt["categories"] if isinstance(c, Mapping)}
    return _ground_truth_of_columns(image_ids, cols, PERSON_CATEGORY in categories, source)


def _ground_truth_of_columns(image_ids: np.ndarray, cols: dict[str, np.ndarray],
                             has_person_category: bool, source: str | None) -> GroundTruth:
    """GroundTruth of the (I,) image ids and the annotation columns of ``_GT_FIELDS``."""
    if len(image_ids) == 0:
        raise DataError(source, "ground truth has no images")
    sorted_ids, first = np.unique(image_ids, return_index=True)
    if len(sorted_ids) != len(image_ids):
        dup = np.setdiff1d(np.arange(len(image_ids)), first)[0]
        raise DataError(source, f"duplicate image id {int(image_ids[dup])}", record=f"image {dup}")

    ann_ids = cols["id"]
    ignore = cols["ignore"] != 0
    if len(ann_ids):
        bad_ids = np.flatnonzero(ann_ids < 1)
        if len(bad_ids):
            k = int(bad_ids[0])
            raise DataError(source, f"annotation id must be >= 1 (a matched GT id of 0 reads as "
                                    f"'unmatched' in the official code), got {int(ann_ids[k])}",
                            record=f"annotation {k}")
        unique_ids, first_ann = np.unique(ann_ids, return_index=True)
        if len(unique_ids) != len(ann_ids):
            k = int(np.setdiff1d(np.arange(len(ann_ids)), first_ann)[0])
            raise DataError(source, f"duplicate annotation id {int(ann_ids[k])}",
                            record=f"annotation {k}")
    image = _image_index(sorted_ids, cols["image_id"], source, "annotation")

    keep = cols["category_id"] == PERSON_CATEGORY
    kept = np.flatnonzero(keep)
    order = kept[np.argsort(image[kept], kind="stable")]   # by image, file order within
    image = image[order]
    return GroundTruth(
        image_ids=sorted_ids,
        image=image,
        boxes=cols["bbox"][order],
        height=cols["height"][order],
        vis_ratio=cols["vis_ratio"][order],
        ignore=ignore[order],
        image_start=np.searchsorted(image, np.arange(len(sorted_ids) + 1)),
        has_person_category=has_person_category,
    )


def _image_index(sorted_ids: np.ndarray, image_id: np.ndarray, source: str | None,
                 label: str) -> np.ndarray:
    """(n,) index of each ``image_id`` in ``sorted_ids``; DataError for an unknown id."""
    index = np.searchsorted(sorted_ids, image_id)
    known = index < len(sorted_ids)
    known[known] = sorted_ids[index[known]] == image_id[known]
    if not known.all():
        k = int(np.flatnonzero(~known)[0])
        raise DataError(source, f"image_id {int(image_id[k])} is not an image of the ground "
                                f"truth", record=f"{label} {k}")
    return index


def parse_detections(dt: Sequence, gt: GroundTruth, source: str | Path | None = None
                     ) -> Detections:
    """Validate a COCO results list and keep its category-1 detections.

    Raises DataError (naming ``source`` and the 0-based record index) for a detection whose
    ``image_id`` is not a GT image, whose ``bbox`` / ``score`` is missing, not a number (a
    string or a boolean) or not finite, or whose box has a negative width or height (a zero
    one is valid).
    """
    source = _source_name(source)
    return _detections_of_columns(_columns(dt, _DT_FIELDS, source, "detection"), gt, source)


def _detections_of_columns(cols: dict[str, np.ndarray], gt: GroundTruth, source: str | None
                           ) -> Detections:
    """Detections of the columns of ``_DT_FIELDS``."""
    negative = np.flatnonzero((cols["bbox"][:, 2:] < 0).any(axis=1))
    if len(negative):
        k = int(negative[0])
        raise DataError(source, f"'bbox' has a negative width or height: "
                                f"{cols['bbox'][k].tolist()}", record=f"detection {k}")
    image = _image_index(gt.image_ids, cols["image_id"], source, "detection")
    keep = cols["category_id"] == PERSON_CATEGORY
    return Detections(image=image[keep], boxes=cols["bbox"][keep], scores=cols["score"][keep])


# --------------------------------------------------------------------------------------------
# Fast path: typed decoding of the two files into the same columns
# --------------------------------------------------------------------------------------------

class _TypedImage(msgspec.Struct, gc=False):
    id: int


class _TypedAnnotation(msgspec.Struct, gc=False):
    id: int
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]
    height: float
    vis_ratio: float
    ignore: Union[int, bool] = 0


class _TypedGroundTruth(msgspec.Struct, gc=False):
    images: list[_TypedImage]
    annotations: list[_TypedAnnotation]
    categories: list[Any]
    info: Any = None


class _TypedDetection(msgspec.Struct, gc=False):
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]
    score: float


_TYPED_GT = msgspec.json.Decoder(_TypedGroundTruth)
_TYPED_DT = msgspec.json.Decoder(list[_TypedDetection])


def _fast_inputs(gt_path: Path, dt_path: Path) -> tuple[GroundTruth, Detections] | None:
    """The parsed inputs when both files decode into their typed records and are valid;
    None otherwise (the caller then reads them the slow way, which names the problem)."""
    with gc_paused():
        gt = decode_typed(read_bytes(gt_path), _TYPED_GT)
        dt = decode_typed(read_bytes(dt_path), _TYPED_DT)
        if gt is None or dt is None:
            return None
        try:
            check_dataset(gt.info, "citypersons", str(gt_path))
            anns = gt.annotations
            cols = {"id": int_column([a.id for a in anns]),
                    "image_id": int_column([a.image_id for a in anns]),
                    "category_id": int_column([a.category_id for a in anns]),
                    "bbox": box_column([a.bbox for a in anns]),
                    "height": float_column([a.height for a in anns]),
                    "vis_ratio": float_column([a.vis_ratio for a in anns]),
                    "ignore": int_column([int(a.ignore) for a in anns])}
            categories = {c.get("id") for c in gt.categories if isinstance(c, Mapping)}
            ground_truth = _ground_truth_of_columns(
                int_column([im.id for im in gt.images]), cols,
                PERSON_CATEGORY in categories, str(gt_path))
            detections = _detections_of_columns(
                {"image_id": int_column([d.image_id for d in dt]),
                 "category_id": int_column([d.category_id for d in dt]),
                 "bbox": box_column([d.bbox for d in dt]),
                 "score": float_column([d.score for d in dt])}, ground_truth, str(dt_path))
        except (DataError, OverflowError):
            return None
    return ground_truth, detections


# --------------------------------------------------------------------------------------------
# Matching and the miss-rate curve
# --------------------------------------------------------------------------------------------

class CityPersonsEval:
    """Evaluates one set of detections against one GT under any of the setups.

    What does not depend on the setup is computed once here: the evaluation order of the
    detections, their top-1000 cut and the overlaps of every detection with every GT box of
    its image that it intersects.
    """

    def __init__(self, gt: GroundTruth, detections: Detections):
        self.gt = gt
        self.detections = detections
        m = len(detections)
        # Pooled order of the curve: score descending, then image id order, then file order
        # (the official stable sort of the per-image lists concatenated in image id order).
        by_image = np.argsort(detections.image, kind="stable")
        self.pooled_order = by_image[np.argsort(-detections.scores[by_image], kind="stable")]
        # Per-image evaluation order: by image, score descending, file order on ties.
        self.image_order = self.pooled_order[
            np.argsort(detections.image[self.pooled_order], kind="stable")]
        rank = np.empty(m, dtype=np.int64)   # rank of each detection within its image
        image_sorted = detections.image[self.image_order]
        first_of_image = np.searchsorted(image_sorted, image_sorted)
        rank[self.image_order] = np.arange(m) - first_of_image
        self.in_top = rank < MAX_DETECTIONS_PER_IMAGE
        # Position of each detection in the per-image order: the greedy processing order.
        self.position = np.empty(m, dtype=np.int64)
        self.position[self.image_order] = np.arange(m)
        self._pairs = _intersecting_pairs(gt, detections, np.flatnonzero(self.in_top))

    def evaluated(self, setup: Setup) -> np.ndarray:
        """(M,) bool: detections evaluated under ``setup`` (top 1000, height in range)."""
        low, high = setup.detection_height_range
        height = self.detections.boxes[:, 3]
        return self.in_top & (height >= low) & (height < high)

    def labels(self, setup: Setup) -> np.ndarray:
        """(M,) int8 label of each detection (file order) under ``setup``.

        TRUE_POSITIVE, FALSE_POSITIVE, IGNORED (absorbed by an ignored GT) or REMOVED.
        """
        m = len(self.detections)
        evaluated = self.evaluated(setup)
        gt_ignored = self.gt.setup_ignore(setup)
        det, gt_box, iou, ioa = self._pairs
        pair_ignored = gt_ignored[gt_box]
        overlap = np.where(pair_ignored, ioa, iou)
        hit = evaluated[det] & (overlap >= MATCH_THRESHOLD)

        absorbed = np.zeros(m, dtype=bool)
        absorbed[det[hit & pair_ignored]] = True
        valid_hit = hit & ~pair_ignored
        matched = _greedy_match(det[valid_hit], gt_box[valid_hit], overlap[valid_hit],
                                self.position, self.detections.image, len(gt_ignored))
        labels = np.full(m, FALSE_POSITIVE, dtype=np.int8)
        labels[absorbed] = IGNORED
        labels[matched] = TRUE_POSITIVE     # a free valid GT always wins over an ignored one
        labels[~evaluated] = REMOVED
        return labels

    def num_valid_gt(self, setup: Setup) -> int:
        """Valid GT boxes under ``setup`` (0 also when the GT has no category 1)."""
        if not self.gt.has_person_category:
            return 0
        return int(np.count_nonzero(~self.gt.setup_ignore(setup)))

    def outcomes(self, setup: Setup) -> np.ndarray:
        """(K,) bool: is-TP of the TP/FP detections in pooled order (the curve's points)."""
        labels = self.labels(setup)[self.pooled_order]
        return labels[labels >= FALSE_POSITIVE] == TRUE_POSITIVE

    def recall_at_fppi(self, setup: Setup) -> np.ndarray | None:
        """(9,) recall sampled at FPPI_POINTS, or None when the setup has no valid GT."""
        num_valid = self.num_valid_gt(setup)
        if num_valid == 0:
            return None
        return sample_recall(self.outcomes(setup), num_valid, self.gt.num_images)

    def miss_rate(self, setup: Setup) -> float:
        """Log-average miss rate of ``setup`` as a fraction; -1 without valid GT."""
        recall = self.recall_at_fppi(setup)
        return NO_VALID_GT if recall is None else log_average_miss_rate(recall)


def _intersecting_pairs(gt: GroundTruth, detections: Detections, candidates: np.ndarray,
                        max_pairs_per_chunk: int = 1 << 20
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All (detection, GT box of the same image) pairs with a positive intersection.

    Args:
        candidates: (C,) indices of the detections to pair.
    Returns:
        det (P,), gt (P,) indices, and iou (P,), ioa (P,) float64 computed exactly as the
        official ``iou``: IoU = t / (a_det + a_gt - t), IoA = t / a_det, no epsilon.
    Pairs are built in chunks of about ``max_pairs_per_chunk`` to bound memory.
    """
    image = detections.image[candidates]
    start = gt.image_start[image]
    count = gt.image_start[image + 1] - start
    # Corners and areas with the official arithmetic (x2 = x + w, area = w * h), per box once.
    d_x1, d_y1, d_w, d_h = detections.boxes.T
    g_x1, g_y1, g_w, g_h = gt.boxes.T
    d_x2, d_y2, d_area = d_x1 + d_w, d_y1 + d_h, d_w * d_h
    g_x2, g_y2, g_area = g_x1 + g_w, g_y1 + g_h, g_w * g_h

    ends = np.cumsum(count)
    chunk_bounds = np.searchsorted(ends, np.arange(0, ends[-1] if len(ends) else 0,
                                                   max_pairs_per_chunk), side="right")
    chunk_bounds = np.unique(np.concatenate([[0], chunk_bounds, [len(candidates)]]))
    out: list[tuple[np.ndarray, ...]] = []
    for lo, hi in zip(chunk_bounds[:-1], chunk_bounds[1:]):
        n = count[lo:hi]
        det = np.repeat(candidates[lo:hi], n)
        g = np.repeat(start[lo:hi] - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))
        # Horizontal overlap first: it rules out most pairs before the rest is computed.
        inter_w = np.minimum(d_x2[det], g_x2[g]) - np.maximum(d_x1[det], g_x1[g])
        keep = inter_w > 0
        det, g, inter_w = det[keep], g[keep], inter_w[keep]
        inter_h = np.minimum(d_y2[det], g_y2[g]) - np.maximum(d_y1[det], g_y1[g])
        keep = inter_h > 0
        det, g = det[keep], g[keep]
        inter = inter_w[keep] * inter_h[keep]
        a_det = d_area[det]                   # > 0 whenever the intersection is
        out.append((det, g, inter / (a_det + g_area[g] - inter), inter / a_det))
    if not out:
        empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0)
        return empty_i, empty_i, empty_f, empty_f
    return tuple(np.concatenate(parts) for parts in zip(*out))  # type: ignore[return-value]


def _greedy_match(det: np.ndarray, gt_box: np.ndarray, overlap: np.ndarray,
                  position: np.ndarray, image: np.ndarray, num_gt: int) -> np.ndarray:
    """Greedy matching of detections to valid GT boxes, the official way.

    Args:
        det, gt_box, overlap: (H,) the "hits": pairs of an evaluated detection and a valid GT
            box of its image with IoU >= 0.5.
        position: (M,) processing position of every detection (by image, score descending).
        image: (M,) image index of every detection.
        num_gt: number of GT boxes (size of the matched state).
    Returns:
        (K,) indices of the detections that matched (true positives).

    Detections are processed in ``position`` order; each takes, among its still unmatched
    hits, the highest IoU, an exact tie going to the later GT box (file order). Detections of
    different images never compete, so the r-th candidate detection of every image is
    matched in the same vectorised round r.
    """
    if len(det) == 0:
        return np.zeros(0, dtype=np.int64)
    # Hits sorted by (processing position, GT index): one segment per candidate detection,
    # segments in processing order, hence grouped by image.
    order = np.lexsort((gt_box, position[det]))
    det, gt_box, overlap = det[order], gt_box[order], overlap[order]
    seg_start = np.flatnonzero(np.concatenate([[True], det[1:] != det[:-1]]))
    seg_length = np.diff(np.append(seg_start, len(det)))
    seg_image = image[det[seg_start]]
    # Round of a candidate detection = its rank among the candidates of its image.
    seg_round = np.arange(len(seg_start)) - np.searchsorted(seg_image, seg_image)
    by_round = np.argsort(np.repeat(seg_round, seg_length), kind="stable")
    det, gt_box, overlap = det[by_round], gt_box[by_round], overlap[by_round]
    round_size = np.bincount(seg_round, weights=seg_length).astype(np.int64)
    round_bounds = np.concatenate([[0], np.cumsum(round_size)])

    matched_gt = np.zeros(num_gt, dtype=bool)
    winners: list[np.ndarray] = []
    for lo, hi in zip(round_bounds[:-1], round_bounds[1:]):
        d, g, o = det[lo:hi], gt_box[lo:hi], overlap[lo:hi]
        starts = np.flatnonzero(np.concatenate([[True], d[1:] != d[:-1]]))
        value = np.where(matched_gt[g], -np.inf, o)           # taken GT boxes are skipped
        best = np.maximum.reduceat(value, starts)
        won = best >= MATCH_THRESHOLD
        if not won.any():
            continue
        lengths = np.diff(np.append(starts, len(d)))
        is_best = value == np.repeat(best, lengths)
        last_best = np.maximum.reduceat(np.where(is_best, np.arange(len(d)), -1), starts)
        matched_gt[g[last_best[won]]] = True
        winners.append(d[starts[won]])
    return np.concatenate(winners) if winners else np.zeros(0, dtype=np.int64)


def sample_recall(is_tp: np.ndarray, num_valid_gt: int, num_images: int) -> np.ndarray:
    """Recall at the FPPI reference points, sampled the official way.

    Args:
        is_tp: (K,) bool, the surviving (TP or FP) detections in pooled score order.
        num_valid_gt: valid GT boxes of the setup (> 0).
        num_images: FPPI denominator, all images of the GT json.
    Returns:
        (9,) float64: for each reference r the recall at the last point with FPPI <= r;
        where even the first point has FPPI > r the index is -1, which reads the *final*
        recall (official quirk). All zeros when no detection survives.
    """
    if len(is_tp) == 0:
        return np.zeros(len(FPPI_POINTS))
    recall = np.cumsum(is_tp).astype(np.float64) / num_valid_gt
    fppi = np.cumsum(~is_tp).astype(np.float64) / num_images
    index = np.searchsorted(fppi, FPPI_POINTS, side="right") - 1
    return recall[index]


def log_average_miss_rate(recall: np.ndarray) -> float:
    """exp(mean(log(1 - recall))) over the (9,) sampled recalls; 0 if any miss rate is 0."""
    with np.errstate(divide="ignore"):
        return float(np.exp(np.mean(np.log(1.0 - recall))))


# --------------------------------------------------------------------------------------------
# Public API and command line
# --------------------------------------------------------------------------------------------

def evaluate(gt: str | Path | Mapping, dt: str | Path | Sequence, *, coco: bool = False
             ) -> dict[str, float]:
    """CityPersons MR of detections ``dt`` against ground truth ``gt``, all four setups.

    Args:
        gt: dataset json (our contract, or the official ``val_gt.json``): a path or the loaded
            dict. Annotations need ``id`` >= 1, ``image_id``, ``category_id``, ``bbox``,
            ``height``, ``vis_ratio`` and optionally ``ignore``.
        dt: COCO results list ``[{"image_id", "category_id", "bbox", "score"}]``: a path or
            the loaded list.
        coco: also report ``coco_AP`` and ``coco_AP50`` (:mod:`lla.eval.coco`).
    Returns:
        ``{"Reasonable", "Reasonable_small", "Heavy", "All"}`` as fractions (-1 for a setup
        without valid GT), plus ``coco_AP`` / ``coco_AP50`` when ``coco``. The inputs are
        not modified.
    Raises:
        DataError: naming the file and the record for malformed input.
    """
    with phase("parsing"):
        fast = None
        if isinstance(gt, (str, Path)) and isinstance(dt, (str, Path)) and not coco:
            fast = _fast_inputs(Path(gt), Path(dt))
        if fast is not None:
            ground_truth, detections = fast
        else:
            gt_json, gt_source = _load(gt, dict, "ground truth")
            dt_json, dt_source = _load(dt, list, "detections")
            ground_truth = parse_ground_truth(gt_json, gt_source)
            detections = parse_detections(dt_json, ground_truth, dt_source)
    metrics = _miss_rates(ground_truth, detections)
    if coco:
        with phase("COCO"):
            metrics.update(_coco(gt_json, dt_json))
    return metrics


def _miss_rates(ground_truth: GroundTruth, detections: Detections) -> dict[str, float]:
    with phase("matching"):
        evaluator = CityPersonsEval(ground_truth, detections)
    with phase("MR"):
        return {setup.name: evaluator.miss_rate(setup) for setup in SETUPS}


def _coco(gt_json: Mapping, dt_json: Sequence) -> dict[str, float]:
    """COCO AP / AP50 of the same category-1 boxes as the MR (every box a person there)."""
    from lla.eval.coco import coco_metrics

    gt_person = dict(gt_json, annotations=[a for a in gt_json["annotations"]
                                           if a["category_id"] == PERSON_CATEGORY])
    dt_person = [d for d in dt_json if d["category_id"] == PERSON_CATEGORY]
    return coco_metrics(gt_person, dt_person)


class CityPersonsEvaluator:
    """Streaming form for inference loops: ``process(results)`` per batch, then ``compute()``.

    ``results`` are COCO result dicts as in :func:`evaluate`; the GT is validated once.
    """

    def __init__(self, gt: str | Path | Mapping, *, coco: bool = False):
        self._gt_json, gt_source = _load(gt, dict, "ground truth")
        self._ground_truth = parse_ground_truth(self._gt_json, gt_source)
        self._coco = coco
        self._results: list[Mapping] = []

    def process(self, results: Sequence[Mapping]) -> None:
        """Add a batch of COCO result dicts."""
        self._results.extend(results)

    def compute(self) -> dict[str, float]:
        """The metrics of all results processed so far (see :func:`evaluate`)."""
        metrics = _miss_rates(self._ground_truth,
                              parse_detections(self._results, self._ground_truth))
        if self._coco:
            metrics.update(_coco(self._gt_json, self._results))
        return metrics


def format_metrics(metrics: Mapping[str, float]) -> str:
    """Human-readable summary, MR in percent like the official script."""
    lines = []
    for setup in SETUPS:
        mr = metrics[setup.name]
        value = "n/a (no valid GT)" if mr == NO_VALID_GT else f"{100 * mr:.2f}%"
        lines.append(f"{setup.name:<17} MR = {value}")
    for key in ("coco_AP", "coco_AP50"):
        if key in metrics:
            lines.append(f"{key:<17}    = {metrics[key]:.4f}")
    return "\n".join(lines)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "citypersons", help="CityPersons MR (Reasonable, Reasonable_small, Heavy, All)",
        description="Log-average miss rate of the official CityPersons script "
                    "(eval_MR_multisetup.py) for its four setups; COCO AP/AP50 on request. "
                    "Bad input stops with 'error: FILE[:LINE] [record]: reason' and exit "
                    "code 2.")
    parser.add_argument("--gt", required=True, type=Path,
                        help="dataset json (lla data convert output or official val_gt.json)")
    parser.add_argument("--dt", required=True, type=Path,
                        help="detections: COCO results list json")
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="write the metrics json here (atomically)")
    parser.add_argument("--coco", action=argparse.BooleanOptionalAction, default=False,
                        help="coco_AP / coco_AP50 through faster-coco-eval (default: off; "
                             "it adds about 0.6 s on CityPersons val)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from lla.eval.command import check_paths, reuse_freed_memory
    from lla.diverged import pass_on_detections_divergence

    check_paths([args.gt, args.dt], args.out)
    reuse_freed_memory()
    if pass_on_detections_divergence(args.dt, args.out):  # stopped on a non-finite loss
        return 0
    metrics = evaluate(args.gt, args.dt, coco=args.coco)
    log.info("CityPersons evaluation of %s\n%s", args.dt, format_metrics(metrics))
    print(json.dumps(metrics, indent=2))
    if args.out is not None:
        atomic_write_json(args.out, metrics, indent=2)
    return 0
