"""The CrowdHuman protocol (CrowdDet/cvpods evaluator, full body), vectorised with numpy.

Normative description: shared/spec/evaluation.md §2. In short, per image: boxes are
clipped to the image (x1 <= W-1, x2 <= W, detections and GT alike); detections are taken
in descending score order and each is greedily matched to the unmatched valid GT of highest
IoU > 0.5 (first GT in file order on a tie); one that finds none but has IoA > 0.5 with a
non-valid GT box is dropped, otherwise it is a false positive. The per-image lists are then
pooled and stably sorted by score (ties: GT-file image order, then detection file order),
giving the MR (CALTECH_-2), AP (trapezoid) and final Recall.

The greedy matching is sequential by nature. It is resolved exactly, for all images at
once, in rounds over the candidate (detection, GT) pairs with IoU > 0.5: a detection whose
preferred GT (best IoU among the GTs still free) is not a candidate of any earlier
unresolved detection gets it in the sequential loop too, so it is decided; detections left
without free candidates are decided as well. The earliest unresolved detection of an image
always qualifies, so every round makes progress; real data needs a handful of rounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lla.errors import DataError
from lla.eval.box_pairs import (box_columns, centre_candidates, float32_columns,
                                group_ranges, mmdet_iou, official_ioa, official_iou,
                                range_pairs, repeat_rows, take_rows)
from lla.eval.crowdhuman_io import Detections, GroundTruth
from lla.eval.ji import JI_IOU_THRESHOLD
from lla.eval.phases import phase

IOU_THRESHOLD = 0.5     # strict: IoU > 0.5 matches, IoA > 0.5 ignores
# CALTECH_-2 reference FPPI points exactly as the official literals (not 10 ** (-2 + k / 4)).
MR_REFERENCE_FPPI = np.array([0.0100, 0.0178, 0.03160, 0.0562, 0.1000, 0.1778, 0.3162,
                              0.5623, 1.000])

LABEL_TP, LABEL_FP, LABEL_DROPPED = 1, 0, -1


@dataclass
class PreparedImages:
    """Clipped boxes in matching order, grouped by image (I images, G GTs, D detections).

    gt_xyxy (G, 4), gt_image (G,), gt_valid (G,) bool, gt_tags (G,): GTs grouped by image,
      inside an image sorted by tag, descending (stable): valid ones first.
    gt_source (G,): the index of each in the GroundTruth arrays (file order).
    dt_xyxy (D, 4), dt_image (D,): detections grouped by image, inside an image sorted by
      score, descending (stable; ties in file order).
    dt_source (D,): the index of each in the Detections arrays (file order).
    pooled_order (D,): the detections in pooled order (score descending; ties by image,
      then file order), as indices into the prepared arrays.
    width, height (I,): image sizes used for clipping (NaN: unknown, image has no detection).
    """

    gt_xyxy: np.ndarray
    gt_image: np.ndarray
    gt_valid: np.ndarray
    gt_tags: np.ndarray
    gt_source: np.ndarray
    dt_xyxy: np.ndarray
    dt_image: np.ndarray
    dt_source: np.ndarray
    pooled_order: np.ndarray
    width: np.ndarray
    height: np.ndarray


def xywh_to_xyxy(boxes: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """(N, 4) [x, y, w, h] -> (N, 4) [x1, y1, x2, y2] (x2 = x + w, as the official loader);
    ``in_place`` converts ``boxes`` itself."""
    out = boxes if in_place else boxes.copy()
    out[:, 2:4] += out[:, 0:2]
    return out


def clip_to_images(xyxy: np.ndarray, width: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Official ``clip_all_boader``: x1 in [0, W-1], x2 in [0, W] (same for y).

    xyxy: (N, 4); width, height: (N,) size of each box's image; NaN size = leave unclipped.
    """
    out = np.empty_like(xyxy)
    np.minimum(np.maximum(xyxy[:, 0], 0), width - 1, out=out[:, 0])
    np.minimum(np.maximum(xyxy[:, 1], 0), height - 1, out=out[:, 1])
    np.maximum(np.minimum(xyxy[:, 2], width), 0, out=out[:, 2])
    np.maximum(np.minimum(xyxy[:, 3], height), 0, out=out[:, 3])
    unknown = np.isnan(width) | np.isnan(height)
    if unknown.any():
        out[unknown] = xyxy[unknown]
    return out


def image_sizes(gt: GroundTruth, dets: Detections) -> tuple[np.ndarray, np.ndarray]:
    """(I,) width and height: the GT's where it has one, else the detection records'.

    Raises DataError for an image that has detections but no known size (its boxes
    cannot be clipped as the protocol requires).
    """
    width = np.where(np.isnan(gt.width), dets.width, gt.width)
    height = np.where(np.isnan(gt.height), dets.height, gt.height)
    unknown = np.isnan(width) | np.isnan(height)
    if dets.num_detections and unknown[dets.image_index].any():
        i = int(dets.image_index[unknown[dets.image_index]][0])
        raise DataError(dets.source, "image size unknown: the ground truth has no width/height "
                        "and no detection record carries one; pass our dataset json as GT or "
                        "a detection .odgt with 'width'/'height'",
                        record=f"image {gt.image_keys[i]!r}")
    return width, height


def prepare(gt: GroundTruth, dets: Detections) -> PreparedImages:
    """Clip every box and put GTs and detections in the official matching order."""
    width, height = image_sizes(gt, dets)

    gt_order = np.lexsort((-gt.tags.astype(np.int64), gt.image_index))  # stable
    gt_image = gt.image_index[gt_order]
    gt_xyxy = clip_to_images(xywh_to_xyxy(gt.boxes[gt_order], in_place=True),
                             width[gt_image], height[gt_image])

    # ``dets`` is grouped by image in file order, so a stable sort by score gives the
    # pooled order, and a stable sort of that by image the per-image matching order.
    by_score = stable_argsort_descending(dets.scores)
    dt_order = by_score[np.argsort(_small_int(dets.image_index[by_score], gt.num_images),
                                   kind="stable")]
    position = np.empty_like(dt_order)
    position[dt_order] = np.arange(len(dt_order))
    dt_image = dets.image_index[dt_order]
    dt_xyxy = clip_to_images(xywh_to_xyxy(dets.boxes[dt_order], in_place=True),
                             width[dt_image], height[dt_image])
    gt_tags = gt.tags[gt_order]
    return PreparedImages(gt_xyxy=gt_xyxy, gt_image=gt_image, gt_valid=gt_tags > 0,
                          gt_tags=gt_tags, gt_source=gt_order, dt_xyxy=dt_xyxy,
                          dt_image=dt_image, dt_source=dt_order,
                          pooled_order=position[by_score], width=width, height=height)


def stable_argsort_descending(values: np.ndarray) -> np.ndarray:
    """Indices sorting ``values`` descending, ties in index order (as Python's stable
    ``sorted(..., reverse=True)``)."""
    return np.argsort(-values, kind="stable")


def _small_int(index: np.ndarray, bound: int) -> np.ndarray:
    """``index`` as uint16 when it fits, so numpy's stable sort uses a radix sort."""
    return index.astype(np.uint16) if bound <= np.iinfo(np.uint16).max else index


# --------------------------------------------------------------------------- overlaps


@dataclass
class CandidatePairs:
    """The (detection, GT) pairs that pass an IoU test, as indices into prepared arrays.

    pair_dt, pair_gt, pair_iou (P,): official IoU > 0.5 with a valid GT (tag 1), sorted
      by detection, then GT.
    ji_dt, ji_gt (E,): float32 IoU >= 0.5 with a GT of tag != -1, the JI's edges, in no
      particular order (None unless asked for).
    """

    pair_dt: np.ndarray
    pair_gt: np.ndarray
    pair_iou: np.ndarray
    ji_dt: np.ndarray | None = None
    ji_gt: np.ndarray | None = None


def candidate_pairs(prep: PreparedImages, *, ji_edges: bool = False) -> CandidatePairs:
    """The pairs of every image that pass the protocol's IoU test (and, with ``ji_edges``,
    the JI's), computed only for the candidates of :func:`centre_candidates`."""
    empty = np.zeros(0, dtype=np.int64)
    searched = np.flatnonzero((prep.gt_tags != -1 if ji_edges else prep.gt_valid)
                              & ~np.isnan(prep.width[prep.gt_image]))
    search = centre_candidates(prep.dt_xyxy, prep.dt_image, prep.gt_xyxy, prep.gt_image,
                               searched, prep.width)
    if search is None:
        return CandidatePairs(empty, empty.copy(), np.zeros(0),
                              *((empty.copy(), empty.copy()) if ji_edges else ()))
    gt_cols = box_columns(prep.gt_xyxy[search.gt_order])
    gt_valid = prep.gt_valid[search.gt_order]
    dt_cols = box_columns(prep.dt_xyxy)

    found: dict[str, list[np.ndarray]] = {"dt": [], "gt": [], "iou": [], "ji_dt": [],
                                          "ji_gt": []}
    all_valid = bool(gt_valid.all())
    for start, stop, counts, k in range_pairs(search.lo, search.hi):
        d_cols, g_cols = repeat_rows(dt_cols, start, stop, counts), take_rows(gt_cols, k)
        rows = np.repeat(np.arange(start, stop), counts)
        iou = official_iou(d_cols, g_cols)
        hit = iou > IOU_THRESHOLD
        hit = np.flatnonzero(hit if all_valid else hit & gt_valid[k])
        found["dt"].append(rows[hit])
        found["gt"].append(search.gt_order[k[hit]])
        found["iou"].append(iou[hit])
        if ji_edges:
            edge = np.flatnonzero(mmdet_iou(float32_columns(d_cols), float32_columns(g_cols))
                                  >= JI_IOU_THRESHOLD)
            found["ji_dt"].append(rows[edge])
            found["ji_gt"].append(search.gt_order[k[edge]])

    def sorted_by_dt_then_gt(dt: list, gt: list, *values: list) -> tuple[np.ndarray, ...]:
        if not dt:
            return (empty.copy(), empty.copy()) + tuple(np.zeros(0) for _ in values)
        dt_index, gt_index = np.concatenate(dt), np.concatenate(gt)
        order = np.argsort(dt_index * len(prep.gt_image) + gt_index)  # keys are unique
        return (dt_index[order], gt_index[order]) + tuple(np.concatenate(v)[order]
                                                          for v in values)

    pair_dt, pair_gt, pair_iou = sorted_by_dt_then_gt(found["dt"], found["gt"], found["iou"])
    if not ji_edges:
        return CandidatePairs(pair_dt, pair_gt, pair_iou)
    return CandidatePairs(pair_dt, pair_gt, pair_iou,
                          np.concatenate(found["ji_dt"]), np.concatenate(found["ji_gt"]))


def covered_by_ignore(prep: PreparedImages) -> np.ndarray:
    """(D,) bool: the detection has official IoA > 0.5 with a non-valid GT of its image."""
    covered = np.zeros(len(prep.dt_image), dtype=bool)
    ignored = np.flatnonzero(~prep.gt_valid)  # grouped by image
    if len(ignored) == 0 or len(covered) == 0:
        return covered
    ign_start = group_ranges(prep.gt_image[ignored], len(prep.width))
    lo, hi = ign_start[prep.dt_image], ign_start[prep.dt_image + 1]
    has = np.flatnonzero(hi > lo)
    dt_cols = box_columns(prep.dt_xyxy[has])
    ign_cols = box_columns(prep.gt_xyxy[ignored])
    for start, stop, counts, k in range_pairs(lo[has], hi[has]):
        ioa = official_ioa(repeat_rows(dt_cols, start, stop, counts), take_rows(ign_cols, k))
        rows = np.repeat(np.arange(start, stop), counts)
        covered[has[rows[ioa > IOU_THRESHOLD]]] = True
    return covered


# --------------------------------------------------------------------------- matching


def greedy_match(pair_dt: np.ndarray, pair_gt: np.ndarray, pair_iou: np.ndarray,
                 num_dt: int, num_gt: int) -> np.ndarray:
    """The official sequential greedy matching, resolved in parallel rounds.

    Detection indices must increase in processing order (score order within an image) and
    GT indices in GT order; pairs sorted by (detection, GT); only pairs within one image.

    Returns (num_dt,) int64: the GT each detection matches, or -1.
    """
    matched = np.full(num_dt, -1, dtype=np.int64)
    gt_taken = np.zeros(num_gt, dtype=bool)
    first_claim = np.empty(num_gt, dtype=np.int64)
    d, g, v = pair_dt, pair_gt, pair_iou
    while d.size:
        # The preferred GT of each detection: highest IoU, the first GT on a tie.
        new_run = np.empty(d.size, dtype=bool)
        new_run[0] = True
        np.not_equal(d[1:], d[:-1], out=new_run[1:])
        starts = np.flatnonzero(new_run)
        run_of_pair = np.cumsum(new_run) - 1
        best_iou = np.maximum.reduceat(v, starts)
        best_pos = np.flatnonzero(v == best_iou[run_of_pair])
        keep_first = np.empty(best_pos.size, dtype=bool)
        keep_first[0] = True
        np.not_equal(run_of_pair[best_pos[1:]], run_of_pair[best_pos[:-1]], out=keep_first[1:])
        best_pos = best_pos[keep_first]  # one per run, in run order
        run_dt, preferred = d[starts], g[best_pos]

        # A detection is decided if no earlier unresolved detection could claim its GT.
        first_claim[g] = np.iinfo(np.int64).max
        np.minimum.at(first_claim, g, d)
        wins = first_claim[preferred] == run_dt
        matched[run_dt[wins]] = preferred[wins]
        gt_taken[preferred[wins]] = True

        alive = (matched[d] < 0) & ~gt_taken[g]
        d, g, v = d[alive], g[alive], v[alive]
    return matched


def label_detections(prep: PreparedImages, pairs: CandidatePairs | None = None) -> np.ndarray:
    """(D,) int8 label of each prepared detection: 1 TP, 0 FP, -1 dropped (ignore region).

    ``pairs``: the candidate pairs of ``prep`` if already computed."""
    pairs = candidate_pairs(prep) if pairs is None else pairs
    matched = greedy_match(pairs.pair_dt, pairs.pair_gt, pairs.pair_iou, len(prep.dt_image),
                           len(prep.gt_image))
    labels = np.where(covered_by_ignore(prep), LABEL_DROPPED, LABEL_FP).astype(np.int8)
    labels[matched >= 0] = LABEL_TP
    return labels


# --------------------------------------------------------------------------- metrics


def pooled_labels(prep: PreparedImages, labels: np.ndarray) -> np.ndarray:
    """(K,) TP/FP labels in pooled order (score descending; ties by GT-file image order,
    then detection file order), dropped detections removed."""
    pooled = labels[prep.pooled_order]
    return pooled[pooled != LABEL_DROPPED]


def curve_metrics(pooled: np.ndarray, num_valid_gt: int, num_images: int) -> dict[str, float]:
    """MR (CALTECH_-2), AP (trapezoid, no (0, 1) anchor) and final Recall of a pooled list.

    pooled: (K,) labels 1 (TP) / 0 (FP) in descending score order.
    With K == 0 (nothing left to rank) returns MR 1, AP 0, Recall 0 (adopted; the
    official code gives NaN or crashes).
    """
    if pooled.size == 0:
        return {"MR": 1.0, "AP": 0.0, "Recall": 0.0}
    tp = np.cumsum(pooled == LABEL_TP, dtype=np.float64)
    fp = np.cumsum(pooled == LABEL_FP, dtype=np.float64)
    recall = tp / float(num_valid_gt)
    precision = tp / (tp + fp)
    fppi = fp / num_images

    # First point with fppi >= r; the last point if fppi never reaches r.
    at = np.minimum(np.searchsorted(fppi, MR_REFERENCE_FPPI, side="left"), pooled.size - 1)
    with np.errstate(divide="ignore"):
        mr = float(np.exp(np.log(1.0 - recall[at]).mean()))
    # Sequential sum (np.cumsum), as the official loop adds the trapezoids.
    trapezoids = (recall[1:] - recall[:-1]) * ((precision[:-1] + precision[1:]) / 2)
    ap = float(np.cumsum(trapezoids)[-1]) if trapezoids.size else 0.0
    return {"MR": mr, "AP": ap, "Recall": float(recall[-1])}


def num_valid_gt(gt: GroundTruth) -> int:
    """Official ``_gtNum - _ignNum``: boxes whose tag is not -1 ('background' counts)."""
    return int(np.count_nonzero(gt.tags != -1))


def require_valid_gt(gt: GroundTruth) -> int:
    """The number of valid GT boxes; DataError if there is none."""
    valid = num_valid_gt(gt)
    if valid == 0:
        raise DataError(gt.source, "no valid (non-ignore) ground-truth box in the whole set: "
                        "MR, AP and Recall are undefined")
    return valid


@dataclass
class Matching:
    """The prepared images, their candidate pairs and the label of each detection."""

    prep: PreparedImages
    pairs: CandidatePairs
    labels: np.ndarray


def match(gt: GroundTruth, dets: Detections, *, ji_edges: bool = False) -> Matching:
    """Clip, order and match every detection (official rules); with ``ji_edges`` the
    pairs also hold the JI's edges."""
    with phase("matching"):
        prep = prepare(gt, dets)
        pairs = candidate_pairs(prep, ji_edges=ji_edges)
        return Matching(prep, pairs, label_detections(prep, pairs))


def protocol_metrics(gt: GroundTruth, dets: Detections,
                     matching: Matching | None = None) -> dict[str, float]:
    """MR, AP and Recall exactly as the official evaluator computes them (``matching``:
    the result of :func:`match` if already computed)."""
    valid = require_valid_gt(gt)
    matching = match(gt, dets) if matching is None else matching
    with phase("MR/AP/Recall"):
        return curve_metrics(pooled_labels(matching.prep, matching.labels), valid,
                             gt.num_images)
