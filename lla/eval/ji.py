"""CrowdHuman Jaccard index (JI), with mmdetection's CrowdHumanMetric semantics.

For each score threshold t in 0.0, 0.1, ..., 0.9 (``0.1 * i``), per image:
  * keep the detections with score > t;
  * match them to the valid GT boxes (tag != -1) by a maximum-cardinality bipartite
    matching on the pairs with IoU >= 0.5 (scipy's ``maximum_bipartite_matching``, the
    algorithm mmdetection uses, so the same pairs are matched);
  * k = matched pairs; n = kept detections, m = valid GTs, each less its unmatched boxes
    whose IoF (intersection over the box's own area) with some ignore box is > 0.5;
  * ratio = k / (m + n - k + 1e-6).
JI(t) = sum of ratios / number of images with m > 0 or n > 0 (0 if there is none), and
JI = max over t. Overlaps are computed in float32 from the clipped boxes, as
mmdetection's ``bbox_overlaps`` does, so borderline IoU decisions agree with it.
"""

from __future__ import annotations

import numpy as np

JI_SCORE_THRESHOLDS = tuple(1e-1 * i for i in range(10))
JI_IOU_THRESHOLD = 0.5   # edges: IoU >= 0.5; ignore coverage: IoF > 0.5
JI_EPS = 1e-6


def _overlaps_f32(a: np.ndarray, b: np.ndarray, *, over_first: bool) -> np.ndarray:
    """(n, 4) x (m, 4) xyxy -> (n, m) float32 IoU, or IoF over ``a``'s area."""
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(iw, np.float32(0)) * np.maximum(ih, np.float32(0))
    if over_first:
        union = np.broadcast_to(area_a[:, None], inter.shape)
    else:
        union = area_a[:, None] + area_b[None, :] - inter
    return inter / np.maximum(union, np.float32(JI_EPS))


def _covered(boxes: np.ndarray, ignore_boxes: np.ndarray) -> np.ndarray:
    """(n,) bool: IoF of each box with some ignore box > 0.5."""
    if len(boxes) == 0 or len(ignore_boxes) == 0:
        return np.zeros(len(boxes), dtype=bool)
    return (_overlaps_f32(boxes, ignore_boxes, over_first=True) > JI_IOU_THRESHOLD).any(axis=1)


def _max_matching(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum bipartite matching of a (n, m) bool edge matrix -> matched (rows, cols).

    scipy's Hopcroft-Karp on the CSR graph with the rows and columns of ``edges`` (what
    mmdetection passes); when the edges already form a matching it is the unique answer.
    """
    rows, cols = np.nonzero(edges)
    if len(rows) == 0:
        return rows, cols
    if len(np.unique(rows)) == len(rows) and len(np.unique(cols)) == len(cols):
        return rows, cols
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    indptr = np.zeros(edges.shape[0] + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=edges.shape[0]), out=indptr[1:])
    graph = csr_matrix((np.ones(len(cols), dtype=np.float32), cols.astype(np.int32), indptr),
                       shape=edges.shape)
    match = maximum_bipartite_matching(graph, perm_type="column")
    matched_rows = np.flatnonzero(match >= 0)
    return matched_rows, match[matched_rows].astype(np.int64)


def image_ji_terms(gt_xyxy: np.ndarray, gt_tags: np.ndarray, dt_xyxy: np.ndarray,
                   dt_scores: np.ndarray,
                   thresholds: tuple[float, ...] = JI_SCORE_THRESHOLDS) -> np.ndarray:
    """Per-threshold (ratio, counted) of one image, shape (T, 2).

    gt_xyxy (G, 4) and gt_tags (G,) in file order, clipped; dt_xyxy (D, 4), dt_scores (D,)
    in file order, clipped. ``counted`` is 1.0 where m > 0 or n > 0.
    """
    valid = gt_tags != -1
    gt_valid, gt_ignore = gt_xyxy[valid], gt_xyxy[~valid]
    num_valid = len(gt_valid)
    dt_covered = _covered(dt_xyxy, gt_ignore)
    gt_covered = _covered(gt_valid, gt_ignore)
    if len(dt_xyxy) and num_valid:
        edges = _overlaps_f32(dt_xyxy, gt_valid, over_first=False) >= JI_IOU_THRESHOLD
    else:
        edges = np.zeros((len(dt_xyxy), num_valid), dtype=bool)

    out = np.zeros((len(thresholds), 2))
    previous_kept = -1
    for t, threshold in enumerate(thresholds):
        keep = dt_scores > threshold
        num_kept = int(np.count_nonzero(keep))
        if num_kept == previous_kept:  # thresholds keep nested sets: same set, same terms
            out[t] = out[t - 1]
            continue
        previous_kept = num_kept
        rows, cols = _max_matching(edges[keep])
        k = len(rows)
        dt_unmatched = np.ones(num_kept, dtype=bool)
        dt_unmatched[rows] = False
        gt_unmatched = np.ones(num_valid, dtype=bool)
        gt_unmatched[cols] = False
        n = num_kept - int(np.count_nonzero(dt_unmatched & dt_covered[keep]))
        m = num_valid - int(np.count_nonzero(gt_unmatched & gt_covered))
        out[t, 0] = k / (m + n - k + JI_EPS)
        out[t, 1] = float(m != 0 or n != 0)
    return out


def jaccard_index(per_image_terms: list[np.ndarray]) -> float:
    """JI from the (T, 2) terms of every image (see module docstring)."""
    if not per_image_terms:
        return 0.0
    terms = np.stack(per_image_terms)            # (I, T, 2)
    ratio_sum = terms[:, :, 0].sum(axis=0)       # (T,)
    counted = terms[:, :, 1].sum(axis=0)
    per_threshold = np.divide(ratio_sum, counted, out=np.zeros_like(ratio_sum),
                              where=counted > 0)
    return float(per_threshold.max())
