"""RetinaNet's max-IoU assignment (method.md section 4; paper section 3.1).

Each anchor box is compared with every GT; with m = its highest IoU:

* m >= ``pos_iou_thr`` (0.5): matched to that GT (an ignore GT makes it ignored);
* m <  ``neg_iou_thr`` (0.4): negative;
* otherwise: ``IGNORED`` (-2).

With ``allow_low_quality_matches`` (off by default, as in the paper's RetinaNet) an anchor
that has a GT's highest IoU (> 0) is matched to its own best GT even below ``pos_iou_thr``
(detectron2's ``Matcher`` semantics).
"""

from __future__ import annotations

import torch

from .base import IGNORED, NEGATIVE, Assigner, AssignInputs, Assignment, register
from .geometry import pairwise_iou
from .matcher import DEFAULT_CHUNK_ELEMENTS, gt_chunks

POS_IOU_THRESHOLD = 0.5
NEG_IOU_THRESHOLD = 0.4


@register("max_iou")
class MaxIoUAssigner(Assigner):
    """Max-IoU assignment of anchor boxes.

    Args (keyword-only):
        pos_iou_thr: IoU at or above which an anchor is positive.
        neg_iou_thr: IoU below which an anchor is negative (<= pos_iou_thr).
        allow_low_quality_matches: also match each GT's best anchors below pos_iou_thr.
        chunk_elements: GT rows x J per IoU block (None = all at once); result identical.

    Needs (J, 4) anchor boxes. ``num_candidates[j]`` = number of GTs with IoU >= pos_iou_thr.
    Ties in an anchor's IoU go to the lowest GT index.
    """

    def __init__(self, *, pos_iou_thr: float = POS_IOU_THRESHOLD, neg_iou_thr: float = NEG_IOU_THRESHOLD,
                 allow_low_quality_matches: bool = False,
                 chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS):
        if not 0.0 <= neg_iou_thr <= pos_iou_thr <= 1.0:
            raise ValueError(f"need 0 <= neg_iou_thr <= pos_iou_thr <= 1, got {neg_iou_thr}, {pos_iou_thr}")
        self.pos_iou_thr = pos_iou_thr
        self.neg_iou_thr = neg_iou_thr
        self.allow_low_quality_matches = allow_low_quality_matches
        self.chunk_elements = chunk_elements

    def _assign(self, inputs: AssignInputs) -> Assignment:
        anchors = inputs.anchors
        if anchors.shape[1] != 4:
            raise ValueError("the max_iou assigner needs (J, 4) anchor boxes, not points")
        anchors = anchors.float()
        num_anchors = inputs.num_anchors
        device = anchors.device
        best_iou = torch.full((num_anchors,), -1.0, device=device)
        best_gt = torch.zeros(num_anchors, dtype=torch.int64, device=device)
        num_candidates = torch.zeros(num_anchors, dtype=torch.int64, device=device)
        best_of_some_gt = torch.zeros(num_anchors, dtype=torch.bool, device=device)
        for rows in gt_chunks(inputs.num_gts, num_anchors, self.chunk_elements):
            iou = pairwise_iou(inputs.gt_boxes[rows].float(), anchors)  # (n, J)
            block_best, block_gt = iou.max(dim=0)
            improved = block_best > best_iou  # strict: earlier GT keeps ties
            best_iou = torch.where(improved, block_best, best_iou)
            best_gt = torch.where(improved, block_gt + rows.start, best_gt)
            num_candidates += (iou >= self.pos_iou_thr).sum(dim=0)
            if self.allow_low_quality_matches:
                gt_best = iou.max(dim=1, keepdim=True).values
                best_of_some_gt |= ((iou == gt_best) & (gt_best > 0)).any(dim=0)
        matched_gt = torch.full((num_anchors,), IGNORED, dtype=torch.int64, device=device)
        matched_gt[best_iou < self.neg_iou_thr] = NEGATIVE
        positive = (best_iou >= self.pos_iou_thr) | best_of_some_gt
        matched_gt[positive] = best_gt[positive]
        return Assignment(matched_gt=matched_gt, num_candidates=num_candidates)
