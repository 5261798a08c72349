"""Top-K + minimum-cost matching, shared by the cost-based assigners (LLA, PAA).

Given a cost matrix C (I GTs x J anchors):

1. every GT row picks its K smallest costs over all J anchors;
2. an anchor picked by one GT goes to that GT; an anchor picked by several GTs goes to
   the GT with the smallest cost in its column *over all rows* (the released LLA code
   does this, so a contested anchor can go to a GT whose own top-K did not include it);
3. anchors picked by nobody are negative.

Ties are broken deterministically: among equal costs a row keeps the lowest anchor
indices, and a column goes to the lowest GT index.

The matching is split so that the full (I, J) matrix never has to exist: the caller
finds each GT's top-K however it likes (in blocks of rows, or over a provably
sufficient subset of anchors), then :func:`resolve_topk` evaluates only the columns of
anchors picked several times. :func:`topk_min_cost_match` is the dense reference.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch import Tensor

from .base import NEGATIVE

#: Elements of one (rows, J) temporary built per GT chunk: 2**21 float32 = 8 MB.
DEFAULT_CHUNK_ELEMENTS = 2 ** 21


def gt_chunks(num_gts: int, num_anchors: int, chunk_elements: int | None) -> Iterator[slice]:
    """Slices of GT rows such that rows x num_anchors <= chunk_elements (at least 1 row).

    ``chunk_elements=None`` yields one slice over all rows (the dense computation).
    """
    if chunk_elements is None:
        rows = max(num_gts, 1)
    else:
        if chunk_elements < 1:
            raise ValueError(f"chunk_elements must be >= 1 or None, got {chunk_elements}")
        rows = max(1, chunk_elements // max(num_anchors, 1))
    for start in range(0, num_gts, rows):
        yield slice(start, min(start + rows, num_gts))


def smallest_k_indices(values: Tensor, k: int) -> Tensor:
    """Column indices of the k smallest values of every row, in ascending index order.

    Args:
        values: float (R, N), finite.
        k: 0 <= k <= N.

    Returns:
        int64 (R, k). Among values equal to a row's k-th smallest value, the lowest
        indices are taken, so the result does not depend on ``torch.topk``'s tie order
        (nor on how many rows are processed together).
    """
    num_rows, num_cols = values.shape
    if not 0 <= k <= num_cols:
        raise ValueError(f"k must lie in [0, {num_cols}], got {k}")
    if k == num_cols:
        return torch.arange(num_cols, device=values.device).expand(num_rows, num_cols).clone()
    if k == 0:
        return torch.empty(num_rows, 0, dtype=torch.int64, device=values.device)
    # One more than needed: a tie across the cut exists iff the (k+1)-th equals the k-th.
    sorted_values, indices = values.topk(k + 1, dim=1, largest=False, sorted=True)
    kth_value = sorted_values[:, k - 1]
    indices = indices[:, :k]
    tied_rows = (sorted_values[:, k] == kth_value).nonzero().squeeze(1)
    if tied_rows.numel():
        rows = values[tied_rows]
        cut = kth_value[tied_rows, None]
        below = rows < cut
        at_cut = rows == cut
        still_needed = k - below.sum(dim=1, keepdim=True)
        chosen = below | (at_cut & (at_cut.cumsum(dim=1) <= still_needed))
        # nonzero() lists row-major, so every row has exactly k ascending indices.
        indices[tied_rows] = chosen.nonzero()[:, 1].view(-1, k)
    return indices.sort(dim=1).values


ColumnCost = Callable[[slice, Tensor], Tensor]


def resolve_topk(topk_indices: Tensor, num_anchors: int, column_cost: ColumnCost,
                 chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS,
                 valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Turn every GT's top-K picks into one GT per anchor.

    Args:
        topk_indices: int64 (I, K), the anchors each GT picked.
        num_anchors: J.
        column_cost: ``column_cost(rows, anchors)`` -> float (len(rows), len(anchors)), the
            cost of GT rows ``rows`` (a slice) at the given anchor columns. Called only for
            anchors picked by several GTs, in blocks of GT rows.
        chunk_elements: rows x contested anchors per block (None = all rows at once).
        valid: bool (I, K) or None. Only the picks marked True count (a GT may then pick
            fewer than K anchors); None: all.

    Returns:
        matched_gt int64 (J,): the single picking GT; for an anchor picked by several GTs
        the GT of minimum cost in its column over *all* rows (lowest index on ties);
        ``NEGATIVE`` where nobody picked. num_candidates int64 (J,): how many GTs picked it.
    """
    num_gts = topk_indices.shape[0]
    device = topk_indices.device
    picked = topk_indices.flatten()
    picking_gt = torch.arange(num_gts, device=device).repeat_interleave(topk_indices.shape[1])
    if valid is not None:
        keep = valid.flatten()
        picked, picking_gt = picked[keep], picking_gt[keep]
    num_candidates = torch.bincount(picked, minlength=num_anchors)
    # Scatter order only matters where several GTs picked, and those are overwritten below.
    matched_gt = torch.full((num_anchors,), NEGATIVE, dtype=torch.int64, device=device)
    matched_gt.scatter_(0, picked, picking_gt)
    contested = (num_candidates > 1).nonzero().squeeze(1)
    if contested.numel():
        column_min = None
        column_argmin = torch.zeros(contested.numel(), dtype=torch.int64, device=device)
        for rows in gt_chunks(num_gts, contested.numel(), chunk_elements):
            block_min, block_argmin = column_cost(rows, contested).min(dim=0)
            if column_min is None:
                column_min, column_argmin = block_min, block_argmin + rows.start
                continue
            improved = block_min < column_min  # strict: an earlier row keeps ties, as argmin does
            column_min = torch.where(improved, block_min, column_min)
            column_argmin = torch.where(improved, block_argmin + rows.start, column_argmin)
        matched_gt[contested] = column_argmin
    return matched_gt, num_candidates


def topk_min_cost_match(cost: Tensor, topk: int) -> tuple[Tensor, Tensor]:
    """Match a full cost matrix at once (the dense reference).

    Args:
        cost: float (I, J), finite.
        topk: K >= 1 (with fewer than K anchors every GT picks all of them).

    Returns:
        matched_gt int64 (J,) (GT index or ``NEGATIVE``), num_candidates int64 (J,).
    """
    if topk < 1:
        raise ValueError(f"topk must be >= 1, got {topk}")
    num_anchors = cost.shape[1]
    topk_indices = smallest_k_indices(cost, min(topk, num_anchors))
    return resolve_topk(topk_indices, num_anchors, lambda rows, anchors: cost[rows][:, anchors], None)
