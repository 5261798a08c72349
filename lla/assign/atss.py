"""ATSS: adaptive training sample selection (method.md section 4).

For every GT:

1. on each FPN level take the ``topk`` (9) anchors whose centres are nearest the GT
   centre (ties: lowest anchor index);
2. threshold = mean + standard deviation of the candidates' IoUs with the GT (the
   unbiased std of the original code; 0 when there is a single candidate);
3. a candidate is positive when its IoU >= threshold and its centre lies inside the GT
   (farther than 0.01 px from every side, as in the original code).

An anchor positive for several GTs goes to the one of highest IoU (ties: lowest GT index).

Anchor-free form (points): every point gets a virtual square anchor of side
``anchor_scale * stride`` (8 x stride) centred on it, used for the IoUs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import NEGATIVE, Assigner, AssignInputs, Assignment, register
from .geometry import INSIDE_MARGIN, box_centers, paired_inside, paired_iou, square_boxes_around
from .matcher import DEFAULT_CHUNK_ELEMENTS, gt_chunks, smallest_k_indices

DEFAULT_TOPK = 9
VIRTUAL_ANCHOR_SCALE = 8.0


@register("atss")
class ATSSAssigner(Assigner):
    """ATSS assignment for anchor boxes or points.

    Args (keyword-only):
        topk: candidates per level per GT (9).
        anchor_free: use virtual square anchors of side ``anchor_scale * stride`` around the
            anchor points (FCOS-style heads) instead of the given anchor boxes.
        anchor_scale: side of the virtual anchor in strides (8).
        inside_margin: pixels an anchor centre must lie inside every side of the GT.
        chunk_elements: GT rows x level anchors per distance block (None = all at once).

    ``assign`` needs ``num_anchors_per_level`` (and ``strides`` for the anchor-free form).
    ``num_candidates[j]`` = GTs for which anchor j passed the candidate test.
    """

    def __init__(self, *, topk: int = DEFAULT_TOPK, anchor_free: bool = False,
                 anchor_scale: float = VIRTUAL_ANCHOR_SCALE, inside_margin: float = INSIDE_MARGIN,
                 chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS):
        if int(topk) != topk or topk < 1:
            raise ValueError(f"topk must be a positive integer, got {topk}")
        if anchor_scale <= 0:
            raise ValueError(f"anchor_scale must be > 0, got {anchor_scale}")
        self.topk = int(topk)
        self.anchor_free = anchor_free
        self.anchor_scale = float(anchor_scale)
        self.inside_margin = inside_margin
        self.chunk_elements = chunk_elements

    def _assign(self, inputs: AssignInputs) -> Assignment:
        inputs.require_levels()
        anchor_boxes = self._anchor_boxes(inputs)
        centers = box_centers(anchor_boxes)
        gt_boxes = inputs.gt_boxes.float()
        gt_centers = box_centers(gt_boxes)

        candidates = self._nearest_candidates(inputs, centers, gt_centers)  # (I, Kc)
        iou = paired_iou(anchor_boxes[candidates], gt_boxes[:, None, :])  # (I, Kc)
        num_cands = candidates.shape[1]
        threshold = iou.mean(dim=1, keepdim=True)
        if num_cands > 1:
            threshold = threshold + iou.std(dim=1, keepdim=True)
        inside = paired_inside(centers[candidates], gt_boxes[:, None, :], margin=self.inside_margin)
        positive = (iou >= threshold) & inside  # (I, Kc)

        gt_index = torch.arange(inputs.num_gts, device=iou.device)[:, None].expand_as(candidates)
        anchor_of = candidates[positive]
        gt_of = gt_index[positive]
        iou_of = iou[positive]
        num_anchors = inputs.num_anchors
        num_candidates = torch.bincount(anchor_of, minlength=num_anchors)
        best_iou = torch.full((num_anchors,), -1.0, device=iou.device).scatter_reduce(
            0, anchor_of, iou_of, reduce="amax")
        is_best = iou_of == best_iou[anchor_of]
        matched_gt = torch.full((num_anchors,), inputs.num_gts, dtype=torch.int64, device=iou.device)
        matched_gt = matched_gt.scatter_reduce(0, anchor_of[is_best], gt_of[is_best], reduce="amin")
        matched_gt[matched_gt == inputs.num_gts] = NEGATIVE
        return Assignment(matched_gt=matched_gt, num_candidates=num_candidates)

    def _anchor_boxes(self, inputs: AssignInputs) -> Tensor:
        """float32 (J, 4): the given boxes, or virtual squares around points (anchor-free)."""
        if not self.anchor_free:
            if inputs.anchors.shape[1] != 4:
                raise ValueError("anchor-based ATSS needs (J, 4) anchor boxes; use anchor_free=True for points")
            return inputs.anchors.float()
        strides = torch.tensor(inputs.require_strides(), device=inputs.anchors.device)[inputs.level_of_anchor()]
        return square_boxes_around(box_centers(inputs.anchors.float()), strides * self.anchor_scale)

    def _nearest_candidates(self, inputs: AssignInputs, centers: Tensor, gt_centers: Tensor) -> Tensor:
        """int64 (I, Kc): per level the topk anchors nearest each GT centre, levels concatenated."""
        per_level = []
        for level in inputs.level_slices():
            level_centers = centers[level]
            k = min(self.topk, level_centers.shape[0])
            if k == 0:
                continue
            blocks = []
            for rows in gt_chunks(inputs.num_gts, level_centers.shape[0], self.chunk_elements):
                dx = gt_centers[rows, 0, None] - level_centers[None, :, 0]
                dy = gt_centers[rows, 1, None] - level_centers[None, :, 1]
                squared_distance = dx.mul_(dx).add_(dy.mul_(dy))  # ranks like the Euclidean distance
                blocks.append(smallest_k_indices(squared_distance, k))
            per_level.append(torch.cat(blocks) + level.start)
        return torch.cat(per_level, dim=1)

