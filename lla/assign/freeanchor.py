"""FreeAnchor's geometry side (Zhang et al., NeurIPS 2019; method.md section 4).

FreeAnchor has no hard assignment: every GT gets a *bag* of the ``bag_size`` (50)
anchors of highest IoU with it, and the loss (:mod:`lla.models.losses.free_anchor`) lets the
network pick, through the mean-max of the bag, which of them explains the GT. This
module supplies what does not depend on predictions:

* :func:`anchor_bags` -- the bags (I, k) of anchor indices;
* :class:`FreeAnchorAssigner` -- the :class:`Assignment` the loss path reads for the
  *negative* bag loss: an anchor whose IoU with an ignore GT is >= ``ignore_iou_thr``
  (0.5, our choice: FreeAnchor's code has no ignore boxes) is matched to that ignore GT
  and thereby left out of the negative loss; every other anchor is ``NEGATIVE``.
  ``num_candidates[j]`` = number of bags of non-ignore GTs that contain anchor j.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import NEGATIVE, Assigner, AssignInputs, Assignment, register
from .geometry import pairwise_iou
from .matcher import DEFAULT_CHUNK_ELEMENTS, gt_chunks, smallest_k_indices

DEFAULT_BAG_SIZE = 50
DEFAULT_IGNORE_IOU_THRESHOLD = 0.5


def anchor_bags(anchors: Tensor, gt_boxes: Tensor, bag_size: int = DEFAULT_BAG_SIZE, *,
                chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS) -> Tensor:
    """Every GT's bag: the ``min(bag_size, J)`` anchors of highest IoU with it.

    Args:
        anchors: float (J, 4) xyxy anchor boxes.
        gt_boxes: float (I, 4) xyxy.

    Returns:
        int64 (I, k), each row in ascending anchor order; among equal IoUs at the cut the
        lowest anchor indices are taken.
    """
    if int(bag_size) != bag_size or bag_size < 1:
        raise ValueError(f"bag_size must be a positive integer, got {bag_size}")
    k = min(int(bag_size), anchors.shape[0])
    blocks = [smallest_k_indices(pairwise_iou(gt_boxes[rows].float(), anchors.float()).neg_(), k)
              for rows in gt_chunks(gt_boxes.shape[0], anchors.shape[0], chunk_elements)]
    if not blocks:
        return torch.empty(0, k, dtype=torch.int64, device=anchors.device)
    return torch.cat(blocks)


@register("free_anchor")
class FreeAnchorAssigner(Assigner):
    """Marks the anchors FreeAnchor's negative bag loss must skip (see the module docstring).

    Args (keyword-only):
        bag_size: anchors per GT bag (only for ``num_candidates``; the loss builds the bags
            with the ``bag_size`` of its own settings).
        ignore_iou_thr: IoU with an ignore GT at or above which an anchor is left out of
            the negative loss.
        chunk_elements: GT rows x J per IoU block.
    """

    def __init__(self, *, bag_size: int = DEFAULT_BAG_SIZE,
                 ignore_iou_thr: float = DEFAULT_IGNORE_IOU_THRESHOLD,
                 chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS):
        if int(bag_size) != bag_size or bag_size < 1:
            raise ValueError(f"bag_size must be a positive integer, got {bag_size}")
        if not 0.0 <= ignore_iou_thr <= 1.0:
            raise ValueError(f"ignore_iou_thr must lie in [0, 1], got {ignore_iou_thr}")
        self.bag_size = int(bag_size)
        self.ignore_iou_thr = float(ignore_iou_thr)
        self.chunk_elements = chunk_elements

    def _assign(self, inputs: AssignInputs) -> Assignment:
        anchors = inputs.anchors
        if anchors.shape[1] != 4:
            raise ValueError("the free_anchor assigner needs (J, 4) anchor boxes, not points")
        num_anchors, device = inputs.num_anchors, anchors.device
        matched_gt = torch.full((num_anchors,), NEGATIVE, dtype=torch.int64, device=device)
        ignore_idx = inputs.gt_ignore.nonzero().squeeze(1)
        if ignore_idx.numel():
            best_iou = torch.full((num_anchors,), -1.0, device=device)
            best_gt = torch.zeros(num_anchors, dtype=torch.int64, device=device)
            for rows in gt_chunks(ignore_idx.numel(), num_anchors, self.chunk_elements):
                iou = pairwise_iou(inputs.gt_boxes[ignore_idx[rows]].float(), anchors.float())
                block_best, block_arg = iou.max(dim=0)
                improved = block_best > best_iou
                best_iou = torch.where(improved, block_best, best_iou)
                best_gt = torch.where(improved, ignore_idx[rows][block_arg], best_gt)
            covered = best_iou >= self.ignore_iou_thr
            matched_gt[covered] = best_gt[covered]
        valid_gts = (~inputs.gt_ignore).nonzero().squeeze(1)
        bags = anchor_bags(anchors, inputs.gt_boxes[valid_gts], self.bag_size, chunk_elements=self.chunk_elements)
        num_candidates = torch.bincount(bags.reshape(-1), minlength=num_anchors)
        return Assignment(matched_gt=matched_gt, num_candidates=num_candidates)
