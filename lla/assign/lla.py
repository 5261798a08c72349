"""LLA: loss-aware label assignment (paper section 3.3; method.md section 1).

Each GT takes the K anchors of lowest cost (classification loss + lambda x regression loss
+ in-box penalty) over all anchors of all FPN levels; an anchor taken by several GTs goes
to the GT with the smallest cost in its column; the rest are negatives.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Assigner, AssignInputs, Assignment, register
from .cost import FOCAL_ALPHA, FOCAL_GAMMA, LLACost, PreparedPredictions
from .geometry import INSIDE_MARGIN, paired_inside
from .matcher import DEFAULT_CHUNK_ELEMENTS, gt_chunks, resolve_topk, smallest_k_indices

DEFAULT_TOPK = 10

#: Named settings. ``paper``: P = 1e2 and lambda per detector (RetinaNet 1.0, FCOS 1.3,
#: section 4.2). ``official_code``: the released LLA.FCOS code (P = 1e3, lambda = 1.5).
LLA_PRESETS: dict[str, dict[str, dict[str, float]]] = {
    "paper": {
        "retinanet": {"topk": 10, "reg_weight": 1.0, "inbox_cost": 1e2},
        "fcos": {"topk": 10, "reg_weight": 1.3, "inbox_cost": 1e2},
    },
    "official_code": {
        "retinanet": {"topk": 10, "reg_weight": 1.5, "inbox_cost": 1e3},
        "fcos": {"topk": 10, "reg_weight": 1.5, "inbox_cost": 1e3},
    },
}


@register("lla")
class LLAAssigner(Assigner):
    """Loss-aware label assignment.

    Args (keyword-only):
        topk: K, anchors each GT picks (Table 4 sweeps 1..16).
        reg_weight: lambda, weight of the regression cost.
        inbox_cost: P, finite penalty for an anchor point outside the GT.
        cls_cost: "focal" (alpha, gamma below) or "bce".
        reg_cost: "iou" (-ln IoU) or "giou" (1 - GIoU), Table 3.
        use_cls, use_reg, use_inbox: cost terms on/off, Table 2.
        focal_alpha, focal_gamma: focal parameters of the classification cost.
        inside_margin: a point is inside a GT when it is farther than this from every side (px).
        chunk_elements: the (I, J) cost is built in blocks of GT rows of at most this many
            elements (2**21 -> 8 MB per float32 temporary); None builds it at once. The
            result is bit-identical either way.
        prune_outside: compute a GT's costs only for the anchors inside it whenever that
            provably yields the same top-K (its K-th inside cost is below any outside
            cost); other GTs get the full row. Exact, much faster; False = always full rows.
        inside_only: the paper's Eq. 3 with P = +inf instead of the finite penalty: a GT
            picks its K cheapest anchors *inside* it, fewer when it holds fewer than K, and
            only its single cheapest anchor when it holds none (an anchor outside it).
            Contested anchors are still resolved on the finite-P cost (with P above every
            in-box cost, the same GT as under +inf). Off by default (method.md, selection
            rule 4: the released code's finite P).

    ``assign`` needs ``cls_logits`` (J, C) and ``box_pred`` (J, 4, decoded xyxy). The
    anchor point of an anchor box is its centre; (J, 2) points are accepted as they are.

    Returns an :class:`Assignment` whose ``num_candidates[j]`` is the number of GTs whose
    top-K contains anchor j (AAR counts matched anchors with more than one).

    Example::

        result = LLAAssigner(topk=10, reg_weight=1.5, inbox_cost=1e3).assign(
            anchors, gt_boxes, gt_ignore, cls_logits, box_pred)
        result.matched_gt  # int64 (J,): GT index, or -1 negative
    """

    needs_predictions = True

    def __init__(self, *, topk: int = DEFAULT_TOPK, reg_weight: float, inbox_cost: float,
                 cls_cost: str = "focal", reg_cost: str = "iou", use_cls: bool = True, use_reg: bool = True,
                 use_inbox: bool = True, focal_alpha: float = FOCAL_ALPHA, focal_gamma: float = FOCAL_GAMMA,
                 inside_margin: float = INSIDE_MARGIN, chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS,
                 prune_outside: bool = True, inside_only: bool = False):
        if int(topk) != topk or topk < 1:
            raise ValueError(f"topk must be a positive integer, got {topk}")
        if chunk_elements is not None and chunk_elements < 1:
            raise ValueError(f"chunk_elements must be >= 1 or None, got {chunk_elements}")
        self.topk = int(topk)
        self.cost = LLACost(reg_weight=reg_weight, inbox_cost=inbox_cost, cls_cost=cls_cost, reg_cost=reg_cost,
                            use_cls=use_cls, use_reg=use_reg, use_inbox=use_inbox, focal_alpha=focal_alpha,
                            focal_gamma=focal_gamma, inside_margin=inside_margin)
        self.chunk_elements = chunk_elements
        self.prune_outside = prune_outside
        if inside_only and not self.cost.use_inbox:
            raise ValueError("inside_only needs the in-box term (use_inbox)")
        self.inside_only = inside_only

    @classmethod
    def from_preset(cls, preset: str, detector: str, **overrides) -> "LLAAssigner":
        """Build from a named preset (``paper`` or ``official_code``) for ``retinanet`` or ``fcos``."""
        try:
            settings = dict(LLA_PRESETS[preset][detector])
        except KeyError:
            raise ValueError(f"unknown LLA preset {preset!r}/{detector!r}; presets: "
                             + ", ".join(f"{p}/{d}" for p in LLA_PRESETS for d in LLA_PRESETS[p])) from None
        settings.update(overrides)
        return cls(**settings)

    def _assign(self, inputs: AssignInputs) -> Assignment:
        prepared = self.cost.prepare(inputs.cls_logits, inputs.box_pred, inputs.anchors)
        gt_boxes, gt_labels = inputs.gt_boxes.float(), inputs.gt_labels
        topk_indices = self._topk_per_gt(prepared, gt_boxes, gt_labels)
        valid = None
        if self.inside_only:
            topk_indices, valid = self._inside_picks(prepared, gt_boxes, gt_labels, topk_indices)

        def column_cost(rows: slice, anchors: Tensor) -> Tensor:
            return self.cost.rows(prepared.select(anchors), gt_boxes[rows], gt_labels[rows])

        matched_gt, num_candidates = resolve_topk(topk_indices, inputs.num_anchors, column_cost,
                                                  self.chunk_elements, valid=valid)
        return Assignment(matched_gt=matched_gt, num_candidates=num_candidates)

    def _inside_picks(self, prepared: PreparedPredictions, gt_boxes: Tensor, gt_labels: Tensor,
                      topk_indices: Tensor) -> tuple[Tensor, Tensor]:
        """The picks under P = +inf (``inside_only``) from the finite-P top-K.

        A GT whose K finite-P picks all lie inside it keeps them: they are then its K
        cheapest inside anchors. Every other GT is recomputed with outside costs at +inf:
        its cheapest min(K, inside) inside anchors, or, holding none, its single cheapest
        anchor. Returns the (I, K) picks and a bool (I, K) mask of the picks that count.
        """
        points = prepared.points
        margin = self.cost.inside_margin
        valid = paired_inside(points[topk_indices], gt_boxes[:, None], margin=margin)
        redo = (~valid.all(dim=1)).nonzero().squeeze(1)
        topk_indices = topk_indices.clone()
        picks = topk_indices.shape[1]
        for block in gt_chunks(redo.numel(), points.shape[0], self.chunk_elements):
            rows = redo[block]
            cost = self.cost.rows(prepared, gt_boxes[rows], gt_labels[rows])      # finite P
            inside = paired_inside(points[None], gt_boxes[rows, None], margin=margin)  # (r, J)
            chosen = smallest_k_indices(cost.masked_fill(~inside, float("inf")), picks)
            chosen_inside = inside.gather(1, chosen)
            empty = ~inside.any(dim=1)
            if empty.any():  # no anchor inside: the single cheapest anchor of the row
                chosen[empty, 0] = cost[empty].argmin(dim=1)
                chosen_inside[empty] = False
                chosen_inside[empty, 0] = True
            topk_indices[rows] = chosen
            valid[rows] = chosen_inside
        return topk_indices, valid

    def _topk_per_gt(self, prepared: PreparedPredictions, gt_boxes: Tensor, gt_labels: Tensor) -> Tensor:
        """int64 (I, k): every GT's k = min(K, J) lowest-cost anchors, ascending indices."""
        num_gts, num_anchors = gt_boxes.shape[0], prepared.points.shape[0]
        picks = min(self.topk, num_anchors)
        topk_indices = torch.empty(num_gts, picks, dtype=torch.int64, device=gt_boxes.device)
        needs_dense = torch.ones(num_gts, dtype=torch.bool, device=gt_boxes.device)
        if self.prune_outside and self.cost.use_inbox and picks < num_anchors:
            self._topk_inside_only(prepared, gt_boxes, gt_labels, picks, topk_indices, needs_dense)
        dense_rows = needs_dense.nonzero().squeeze(1)
        for block in gt_chunks(dense_rows.numel(), num_anchors, self.chunk_elements):
            rows = dense_rows[block]
            topk_indices[rows] = smallest_k_indices(self.cost.rows(prepared, gt_boxes[rows], gt_labels[rows]), picks)
        return topk_indices

    def _topk_inside_only(self, prepared: PreparedPredictions, gt_boxes: Tensor, gt_labels: Tensor, picks: int,
                          topk_indices: Tensor, needs_dense: Tensor) -> None:
        """Fill the top-k of every GT whose top-k provably consists of anchors inside it.

        Every anchor outside a GT costs at least ``bound`` (>= min cls cost + P, less a
        rounding margin). If a GT holds >= k inside anchors, the k-th smallest inside cost
        is < bound and no inside cost ties across the cut, the dense top-k of its row
        equals the top-k of its inside anchors, and only those need a cost. Rows failing
        the test keep ``needs_dense`` and are computed densely by the caller.

        Inside anchors are found from the anchors sorted by x: for each GT a contiguous
        range holds every point with x1 < x < x2, and the exact in-box test filters it.
        """
        points, num_anchors = prepared.points, prepared.points.shape[0]
        order = torch.argsort(points[:, 0], stable=True)
        sorted_points = points[order]
        first = torch.searchsorted(sorted_points[:, 0].contiguous(), gt_boxes[:, 0].contiguous(), right=True)
        stop = torch.searchsorted(sorted_points[:, 0].contiguous(), gt_boxes[:, 2].contiguous(), right=False)
        span = (stop - first).clamp_(min=0)
        bound = self.cost.outside_cost_lower_bound(prepared)
        candidates = (span >= picks).nonzero().squeeze(1)
        candidates = candidates[torch.argsort(span[candidates], stable=True)]  # similar spans pad little
        spans = span[candidates].tolist()
        budget = self.chunk_elements or max(1, sum(spans))
        start = 0
        while start < len(spans):
            stop_row = start + 1
            while stop_row < len(spans) and (stop_row + 1 - start) * spans[stop_row] <= budget:
                stop_row += 1
            rows = candidates[start:stop_row]
            width = spans[stop_row - 1]
            start = stop_row
            offsets = torch.arange(width, device=points.device)
            position = (first[rows, None] + offsets).clamp_(max=num_anchors - 1)  # (r, width) into sorted order
            inside = paired_inside(sorted_points[position], gt_boxes[rows, None], margin=self.cost.inside_margin)
            inside &= offsets < span[rows, None]
            row, column = inside.nonzero().unbind(1)
            anchor = order[position[row, column]]
            cls_cost = None
            if self.cost.use_cls:
                table = prepared.cls_cost_per_class
                cls_cost = table[0 if table.shape[0] == 1 else gt_labels[rows][row], anchor]
            cost = self.cost.pair_cost(cls_cost, prepared.box_pred[anchor], points[anchor], gt_boxes[rows][row])
            # Compact every row's inside anchors to the left of a (r, n_max + 1) matrix padded with +inf.
            slot = inside.cumsum(dim=1)[row, column] - 1
            compact_width = max(int(inside.sum(dim=1).max()), picks) + 1
            compact_cost = torch.full((len(rows), compact_width), float("inf"), device=points.device)
            compact_cost[row, slot] = cost
            compact_anchor = torch.zeros((len(rows), compact_width), dtype=torch.int64, device=points.device)
            compact_anchor[row, slot] = anchor
            values, slots = compact_cost.topk(picks + 1, dim=1, largest=False, sorted=True)
            kth = values[:, picks - 1]
            proven = ((kth < bound) & (values[:, picks] != kth)).nonzero().squeeze(1)
            chosen = compact_anchor[proven].gather(1, slots[proven, :picks])
            topk_indices[rows[proven]] = chosen.sort(dim=1).values
            needs_dense[rows[proven]] = False
