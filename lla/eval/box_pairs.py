"""Pairs of boxes of one image and their overlaps, as the CrowdHuman metrics compute them.

Boxes are handled as columns (x1, y1, x2, y2, area) of float64 arrays. Pairs are produced
in chunks (:func:`range_pairs`) so that no (detections x GTs) matrix is ever built; the
candidates for an IoU test are found by a search on sorted x-centres
(:func:`centre_candidates`).

Two overlap conventions are implemented, each bit for bit:
  * the official CrowdHuman evaluator's (float64): IoU = inter / (a1 + a2 - inter + 1e-6),
    IoA = inter / (a1 + 1e-6);
  * mmdetection's ``bbox_overlaps`` in float32 (the JI): IoU = inter / max(a1 + a2 - inter,
    1e-6), IoF = inter / max(a1, 1e-6), on the float32 roundings of the boxes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

OFFICIAL_EPS = 1e-6     # added to the denominators, as the official box_overlap_opr does
MMDET_EPS = np.float32(1e-6)  # lower bound of the denominators in bbox_overlaps
PAIR_CHUNK = 1 << 16  # box pairs handled at once: bounds the memory, stays in cache

Columns = tuple  # (x1, y1, x2, y2, area): five (N,) arrays


def box_columns(xyxy: np.ndarray) -> Columns:
    """(N, 4) xyxy -> contiguous float64 columns and the area (x2 - x1) * (y2 - y1)."""
    x1, y1, x2, y2 = (np.ascontiguousarray(xyxy[:, k]) for k in range(4))
    return x1, y1, x2, y2, (x2 - x1) * (y2 - y1)


def float32_columns(columns: Columns) -> Columns:
    """The float32 roundings of float64 box columns, with the area recomputed in float32."""
    x1, y1, x2, y2 = (c.astype(np.float32) for c in columns[:4])
    return x1, y1, x2, y2, (x2 - x1) * (y2 - y1)


def take_rows(columns: Columns, index: np.ndarray) -> Columns:
    return tuple(c[index] for c in columns)


def repeat_rows(columns: Columns, start: int, stop: int, counts: np.ndarray) -> Columns:
    return tuple(np.repeat(c[start:stop], counts) for c in columns)


def range_pairs(lo: np.ndarray, hi: np.ndarray, max_pairs: int = PAIR_CHUNK
                ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """All (row, k) with lo[row] <= k < hi[row], in chunks of about ``max_pairs`` pairs.

    lo, hi: (R,) int64. Yields (start, stop, counts, k): rows start..stop-1 with
    counts (stop - start,) pairs each, and k (P,) for those pairs, by row then k.
    """
    counts = np.maximum(hi - lo, 0)
    ends = np.cumsum(counts)
    start = 0
    while start < len(lo):
        done = int(ends[start - 1]) if start else 0
        stop = max(int(np.searchsorted(ends, done + max_pairs, side="right")), start + 1)
        c = counts[start:stop]
        first = np.cumsum(c) - c
        k = np.arange(int(c.sum()), dtype=np.int64)
        k += np.repeat(lo[start:stop] - first, c)
        yield start, stop, c, k
        start = stop


def group_ranges(group_of_item: np.ndarray, num_groups: int) -> np.ndarray:
    """(num_groups + 1,) start of each group in ``group_of_item`` (non-decreasing)."""
    return np.searchsorted(group_of_item, np.arange(num_groups + 1))


# --------------------------------------------------------------------------- overlaps


def _intersection(d: Columns, g: Columns) -> np.ndarray:
    """max(0, iw) * max(0, ih) of paired float64 boxes, (P,)."""
    iw = np.minimum(d[2], g[2])
    iw -= np.maximum(d[0], g[0])
    ih = np.minimum(d[3], g[3])
    ih -= np.maximum(d[1], g[1])
    np.maximum(iw, 0, out=iw)
    np.maximum(ih, 0, out=ih)
    iw *= ih
    return iw


def official_iou(d: Columns, g: Columns) -> np.ndarray:
    """Official IoU of paired boxes: inter / (a_dt + a_gt - inter + 1e-6), in this operation
    order, so every value is bit-identical to ``box_overlap_opr``."""
    inter = _intersection(d, g)
    denominator = d[4] + g[4]
    denominator -= inter
    denominator += OFFICIAL_EPS
    inter /= denominator
    return inter


def official_ioa(d: Columns, g: Columns) -> np.ndarray:
    """Official IoA of paired boxes: inter / (a_dt + 1e-6)."""
    inter = _intersection(d, g)
    inter /= d[4] + OFFICIAL_EPS
    return inter


def _intersection_f32(a: Columns, b: Columns) -> np.ndarray:
    """max(0, iw) * max(0, ih) of paired float32 boxes, (P,)."""
    iw = np.minimum(a[2], b[2]) - np.maximum(a[0], b[0])
    ih = np.minimum(a[3], b[3]) - np.maximum(a[1], b[1])
    return np.maximum(iw, np.float32(0)) * np.maximum(ih, np.float32(0))


def mmdet_iou(a: Columns, b: Columns) -> np.ndarray:
    """float32 IoU of paired float32 boxes: inter / max(area_a + area_b - inter, 1e-6)."""
    inter = _intersection_f32(a, b)
    return inter / np.maximum(a[4] + b[4] - inter, MMDET_EPS)


def mmdet_iof(a: Columns, b: Columns) -> np.ndarray:
    """float32 IoF of paired float32 boxes over ``a``'s area: inter / max(area_a, 1e-6)."""
    return _intersection_f32(a, b) / np.maximum(a[4], MMDET_EPS)


# --------------------------------------------------------------------------- candidates


@dataclass
class CentreCandidates:
    """For every detection, the GT boxes of its image whose x-centre lies in the
    detection's x-range widened by 1e-3 of the image width: a superset of the GTs with
    which it can have an IoU of 0.499 or more (see :func:`centre_candidates`).

    gt_order (K,): the searched GT boxes, sorted by their x-centre.
    lo, hi (D,): the candidates of detection d are ``gt_order[lo[d]:hi[d]]``.
    """

    gt_order: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def centre_candidates(dt_xyxy: np.ndarray, dt_image: np.ndarray, gt_xyxy: np.ndarray,
                      gt_image: np.ndarray, searched: np.ndarray, width: np.ndarray
                      ) -> CentreCandidates | None:
    """The candidate GTs of every detection, for an IoU test at 0.5.

    IoU >= 0.5 implies a horizontal overlap of at least half of each box's width, so the
    GT's x-centre lies inside the detection's x-range. That range is widened by 1e-3 of
    the image width, which covers IoU > 0.499 and the rounding of the boxes to float32
    and of any overlap arithmetic; with all images laid side by side on one axis and GT
    centres sorted, two ``searchsorted`` calls bound every detection's candidates.

    dt_xyxy (D, 4), dt_image (D,) grouped by image; gt_xyxy (G, 4), gt_image (G,): boxes
    clipped to their image, and the image of each; ``searched`` (K,) indices of the GTs to
    search (none of an image of unknown size); width (I,) image widths (NaN: unknown, an
    image without detections). Returns None when there is no detection or no searched GT.
    """
    if len(searched) == 0 or len(dt_image) == 0:
        return None
    width = np.nan_to_num(width)
    margin = 1e-3 * (width + 1.0)
    span = width + 4 * margin + 1.0
    base = np.cumsum(span) - span + 2 * margin  # image i occupies [base_i - 2m, base_i + W + 2m]

    gt_key = (gt_xyxy[searched, 0] + gt_xyxy[searched, 2]) * 0.5 + base[gt_image[searched]]
    by_key = np.argsort(gt_key)
    gt_key = gt_key[by_key]
    # Detections grouped by image search one small range of keys after the other.
    lo = np.searchsorted(gt_key, dt_xyxy[:, 0] + (base - margin)[dt_image], side="left")
    hi = np.searchsorted(gt_key, dt_xyxy[:, 2] + (base + margin)[dt_image], side="right")
    return CentreCandidates(gt_order=searched[by_key], lo=lo, hi=hi)
