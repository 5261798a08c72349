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

All images are evaluated at once. The edges (detection, valid GT) with float32 IoU >= 0.5
come from the CrowdHuman protocol's pass over candidate pairs
(:func:`lla.eval.crowdhuman_protocol.candidate_pairs`), which tests them on the same
pairs. The matching of every image is computed by one call of
scipy's Hopcroft-Karp on the disjoint union of the images' graphs (rows: detections in
file order, columns: valid GTs in file order, images one after the other). On a disjoint
union that implementation matches each component exactly as it would alone: its
breadth-first layers are the distances within the component, a phase augments a
component only along paths of the global shortest length, which then is the component's
own, and the depth-first searches of a phase visit each component's free rows in their
own order and touch no other component. Edges that are a component by themselves (a
detection and a GT that overlap nothing else), and stars (a detection whose GTs overlap no
other detection, a GT whose detections overlap no other GT), are matched without the call,
as scipy matches them.
"""

from __future__ import annotations

import numpy as np

from lla.eval.box_pairs import (box_columns, float32_columns, group_ranges, mmdet_iof,
                                range_pairs, repeat_rows, take_rows)

JI_SCORE_THRESHOLDS = tuple(1e-1 * i for i in range(10))
JI_IOU_THRESHOLD = 0.5   # edges: IoU >= 0.5; ignore coverage: IoF > 0.5
JI_EPS = 1e-6


def _covered(xyxy: np.ndarray, image: np.ndarray, ignore_xyxy: np.ndarray,
             ignore_start: np.ndarray) -> np.ndarray:
    """(N,) bool: float32 IoF of each box with some ignore box of its image > 0.5.

    xyxy (N, 4), image (N,); ignore_xyxy (R, 4) grouped by image, the ignore boxes of
    image i being ``ignore_start[i]:ignore_start[i + 1]``.
    """
    covered = np.zeros(len(image), dtype=bool)
    lo, hi = ignore_start[image], ignore_start[image + 1]
    has = np.flatnonzero(hi > lo)
    if len(has) == 0:
        return covered
    cols = float32_columns(box_columns(xyxy[has]))
    ignore_cols = float32_columns(box_columns(ignore_xyxy))
    for start, stop, counts, k in range_pairs(lo[has], hi[has]):
        iof = mmdet_iof(repeat_rows(cols, start, stop, counts), take_rows(ignore_cols, k))
        rows = np.repeat(np.arange(start, stop), counts)
        covered[has[rows[iof > JI_IOU_THRESHOLD]]] = True
    return covered


class _Edges:
    """The JI's graph: edges (detection, valid GT) sorted by detection, then GT, never
    joining two images, and what every threshold's matching needs of them.

    rows (R,): the detections with an edge (the graph's rows, in file order);
    row_of_edge (E,), gt (E,): each edge's row and column; level (E,): how many thresholds
    its detection's score exceeds (all edges of a row share it); first_of_row (E,): the
    edge is its row's first; row_degree (R,): edges of each row; column_degree (C, T + 1):
    edges of each column whose level is >= t, for each t.
    """

    def __init__(self, edge_dt: np.ndarray, edge_gt: np.ndarray, passed: np.ndarray,
                 num_gt: int, num_thresholds: int):
        self.first_of_row = np.ones(len(edge_dt), dtype=bool)
        np.not_equal(edge_dt[1:], edge_dt[:-1], out=self.first_of_row[1:])
        self.rows = edge_dt[self.first_of_row]
        self.row_of_edge = np.cumsum(self.first_of_row) - 1
        self.row_degree = np.bincount(self.row_of_edge, minlength=len(self.rows))
        self.gt = edge_gt
        self.num_gt = num_gt
        self.level = passed[edge_dt]
        degree = np.bincount(edge_gt * (num_thresholds + 1) + self.level,
                             minlength=num_gt * (num_thresholds + 1))
        degree = degree.reshape(num_gt, num_thresholds + 1)
        self.column_degree = np.cumsum(degree[:, ::-1], axis=1)[:, ::-1]

    def maximum_matching(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """scipy's maximum bipartite matching at threshold index ``t`` (the detections
        whose score exceeds threshold t), each image on its own: the matched pairs as (K,)
        detection and (K,) valid-GT indices.

        Stars are matched here: a row whose columns have no other edge gets its first
        column, a column whose rows have no other edge its first row, as scipy's first
        phase matches them (its searches take rows, and each row's columns, in order).
        The other components go to scipy, with only their rows and columns.
        """
        edges = np.flatnonzero(self.level > t)
        row, gt = self.row_of_edge[edges], self.gt[edges]
        column_degree = self.column_degree[:, t + 1]
        lone_column = column_degree[gt] == 1
        lone_row = self.row_degree[row] == 1
        row_star = (np.bincount(row, weights=lone_column, minlength=len(self.rows))
                    == self.row_degree)[row]
        column_star = (np.bincount(gt, weights=lone_row, minlength=self.num_gt)
                       == column_degree)[gt]
        # The first edge of a row star; the first edge (lowest row) of a column star.
        star_edges = edges[row_star & self.first_of_row[edges]]
        column_star_edges = edges[column_star & ~row_star]
        _, first = np.unique(self.gt[column_star_edges], return_index=True)
        star_edges = np.concatenate([star_edges, column_star_edges[first]])
        match_row, match_gt = self.row_of_edge[star_edges], self.gt[star_edges]

        rest = edges[~(row_star | column_star)]
        if len(rest):
            from scipy.sparse import csr_matrix
            from scipy.sparse.csgraph import maximum_bipartite_matching

            rest_row = self.row_of_edge[rest]          # non-decreasing
            new_row = np.ones(len(rest), dtype=bool)
            np.not_equal(rest_row[1:], rest_row[:-1], out=new_row[1:])
            rows = rest_row[new_row]
            used = np.zeros(self.num_gt, dtype=bool)
            used[self.gt[rest]] = True
            columns = np.flatnonzero(used)
            column_index = (np.cumsum(used) - 1)[self.gt[rest]]
            indptr = np.zeros(len(rows) + 1, dtype=np.int32)
            np.cumsum(np.bincount(np.cumsum(new_row) - 1, minlength=len(rows)),
                      out=indptr[1:])
            graph = csr_matrix((np.ones(len(rest), dtype=np.float32),
                                column_index.astype(np.int32), indptr),
                               shape=(len(rows), len(columns)))
            match = maximum_bipartite_matching(graph, perm_type="column")
            matched = np.flatnonzero(match >= 0)
            match_row = np.concatenate([match_row, rows[matched]])
            match_gt = np.concatenate([match_gt, columns[match[matched]]])
        return self.rows[match_row], match_gt


def ji_terms(gt_xyxy: np.ndarray, gt_image: np.ndarray, gt_tags: np.ndarray,
             dt_xyxy: np.ndarray, dt_image: np.ndarray, dt_scores: np.ndarray,
             width: np.ndarray, edges: tuple[np.ndarray, np.ndarray],
             thresholds: tuple[float, ...] = JI_SCORE_THRESHOLDS) -> np.ndarray:
    """Per-image, per-threshold (ratio, counted), shape (I, T, 2).

    gt_xyxy (G, 4), gt_image (G,), gt_tags (G,): clipped GT boxes grouped by image, file
    order inside; dt_xyxy (D, 4), dt_image (D,), dt_scores (D,): clipped detections
    grouped by image, file order inside; width (I,): the image widths; ``edges``: the
    (detection, valid GT) pairs with float32 IoU >= 0.5 as (E,) detection indices and (E,)
    indices among the valid (tag != -1) GTs, sorted by detection, then GT;
    ``thresholds`` increasing. ``counted`` is 1.0 where m > 0 or n > 0.
    """
    num_images, num_thresholds = len(width), len(thresholds)
    valid = gt_tags != -1
    ignore_xyxy = gt_xyxy[~valid]
    ignore_start = group_ranges(gt_image[~valid], num_images)
    valid_xyxy, valid_image = gt_xyxy[valid], gt_image[valid]
    # Detections / GTs that an ignore box covers: taken from n / m when left unmatched.
    covered_dt = np.flatnonzero(_covered(dt_xyxy, dt_image, ignore_xyxy, ignore_start))
    covered_gt = np.flatnonzero(_covered(valid_xyxy, valid_image, ignore_xyxy, ignore_start))
    num_valid = np.bincount(valid_image, minlength=num_images)
    # A detection is kept at threshold index t when it exceeds t + 1 or more thresholds.
    passed = np.searchsorted(np.asarray(thresholds, dtype=np.float64), dt_scores, side="left")
    kept_at = np.bincount(dt_image * (num_thresholds + 1) + passed,
                          minlength=num_images * (num_thresholds + 1))
    kept_at = np.cumsum(kept_at.reshape(num_images, num_thresholds + 1)[:, ::-1],
                        axis=1)[:, ::-1]
    graph = _Edges(*edges, passed, len(valid_xyxy), num_thresholds)

    terms = np.zeros((num_images, num_thresholds, 2))
    for t in range(num_thresholds):
        match_dt, match_gt = graph.maximum_matching(t)
        matched_dt = np.zeros(len(dt_scores), dtype=bool)
        matched_dt[match_dt] = True
        matched_gt = np.zeros(len(valid_xyxy), dtype=bool)
        matched_gt[match_gt] = True
        free_dt = covered_dt[(passed[covered_dt] > t) & ~matched_dt[covered_dt]]
        free_gt = covered_gt[~matched_gt[covered_gt]]
        k = np.bincount(dt_image[match_dt], minlength=num_images)
        n = kept_at[:, t + 1] - np.bincount(dt_image[free_dt], minlength=num_images)
        m = num_valid - np.bincount(valid_image[free_gt], minlength=num_images)
        terms[:, t, 0] = k / (m + n - k + JI_EPS)
        terms[:, t, 1] = (m != 0) | (n != 0)
    return terms


def jaccard_index(terms: np.ndarray) -> float:
    """JI from the (I, T, 2) terms of every image (see module docstring)."""
    if len(terms) == 0:
        return 0.0
    ratio_sum = terms[:, :, 0].sum(axis=0)       # (T,)
    counted = terms[:, :, 1].sum(axis=0)
    per_threshold = np.divide(ratio_sum, counted, out=np.zeros_like(ratio_sum),
                              where=counted > 0)
    return float(per_threshold.max())
