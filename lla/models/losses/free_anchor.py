"""FreeAnchor's bag losses (Zhang et al., NeurIPS 2019; method.md section 4).

Selected by ``loss.mode: free_anchor``; :func:`~lla.models.losses.dense_detection_loss`
dispatches here, so the detector keeps its one forward pass and one loss entry point. The
assignment side -- the bags and the anchors left out for ignore boxes -- is
:mod:`lla.assign.freeanchor`; this module holds the losses.

For each non-ignore GT i with bag A_i (:func:`lla.assign.freeanchor.anchor_bags`, the
``bag_size`` anchors of highest IoU):

* ``P_cls[i, j]`` = sigmoid probability of GT i's class at anchor j;
* ``P_loc[i, j]`` = ``exp(-box_reg_weight * smoothL1(delta_j, encode(gt_i, anchor_j)))``
  (smooth-L1 summed over the 4 deltas, beta = ``loss.smooth_l1_beta``);
* positive bag loss ``alpha * BCE(mean-max_j(P_cls * P_loc), 1)`` with
  ``mean-max(x) = sum_j w_j x_j``, ``w_j = (1 / (1 - x_j)) / sum_j' 1 / (1 - x_j')``
  (a soft maximum that tends to the mean when all x are small and to the max when one
  x nears 1); summed over GTs and divided by the number of GTs.

For every anchor j not ignored (:class:`lla.assign.freeanchor.FreeAnchorAssigner`) and
class c:

* ``P{a_j in A+}`` (no gradient) = max over GTs i of class c of the saturated linear
  ``clamp((IoU(pred_j, gt_i) - t) / (max_j' IoU(pred_j', gt_i) - t), 0, 1)``, t = ``bbox_thr``;
* negative bag loss ``(1 - alpha) * FL(P_cls[j, c] * (1 - P{a_j in A+}))`` with
  ``FL(p) = p ** gamma * -ln(1 - p)`` (p clamped to [1e-12, 1 - 1e-12]), summed and
  divided by (number of GTs x ``bag_size``).

Both counts are batch totals averaged over DDP ranks with one all-reduce, clamped >= 1.
The loss dictionary keeps the keys of the other variants: ``loss_cls`` is the negative
bag loss (the background classification term), ``loss_box`` the positive bag loss (the
joint classification-localisation likelihood, the only term through which the box
branch learns).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from lla.assign.base import Assignment
from lla.assign.freeanchor import DEFAULT_BAG_SIZE, anchor_bags
from lla.assign.geometry import pairwise_iou
from lla.assign.matcher import DEFAULT_CHUNK_ELEMENTS, gt_chunks

from .batch import ImageTargets
from .normalizer import batch_normalizer

PROB_EPS = 1e-12


@dataclass(frozen=True)
class FreeAnchorConfig:
    """The ``loss.free_anchor`` block (FreeAnchor's released settings)."""

    bag_size: int = DEFAULT_BAG_SIZE
    bbox_thr: float = 0.6
    alpha: float = 0.5
    gamma: float = 2.0
    box_reg_weight: float = 0.75

    def __post_init__(self) -> None:
        if int(self.bag_size) != self.bag_size or self.bag_size < 1:
            raise ValueError(f"free_anchor.bag_size must be a positive integer, got {self.bag_size}")
        if not 0.0 <= self.alpha <= 1.0 or not 0.0 <= self.bbox_thr < 1.0:
            raise ValueError(f"free_anchor needs 0 <= alpha <= 1 and 0 <= bbox_thr < 1, got "
                             f"{self.alpha}, {self.bbox_thr}")


def mean_max(probs: Tensor) -> Tensor:
    """(I, k) probabilities -> (I,) ``sum_j w_j x_j`` with weights proportional to 1 / (1 - x_j)."""
    weights = 1.0 / torch.clamp(1.0 - probs, min=PROB_EPS)
    weights = weights / weights.sum(dim=1, keepdim=True)
    return (weights * probs).sum(dim=1)


def positive_bag_loss(cls_probs: Tensor, box_probs: Tensor, alpha: float) -> Tensor:
    """(I, k) P_cls and P_loc of every GT's bag -> (I,) ``alpha * -ln(mean-max(P_cls * P_loc))``."""
    bag_prob = mean_max(cls_probs * box_probs)
    return alpha * F.binary_cross_entropy(bag_prob, torch.ones_like(bag_prob), reduction="none")


def negative_bag_loss(cls_probs: Tensor, positive_probs: Tensor, alpha: float, gamma: float) -> Tensor:
    """Elementwise ``(1 - alpha) * p**gamma * -ln(1 - p)``, ``p = P_cls * (1 - P{a in A+})``."""
    p = (cls_probs * (1.0 - positive_probs)).clamp(min=PROB_EPS, max=1.0 - PROB_EPS)
    return (1.0 - alpha) * p.pow(gamma) * F.binary_cross_entropy(p, torch.zeros_like(p), reduction="none")


@torch.no_grad()
def positive_probability(pred_boxes: Tensor, gt_boxes: Tensor, gt_labels: Tensor, num_classes: int,
                         bbox_thr: float, *, chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS) -> Tensor:
    """``P{a_j in A+}`` for every anchor and class.

    Args:
        pred_boxes: float (J, 4) decoded predicted boxes.
        gt_boxes: float (I, 4) non-ignore GT boxes; gt_labels: int64 (I,).

    Returns:
        float32 (J, C), no gradient.
    """
    num_anchors = pred_boxes.shape[0]
    out = torch.zeros(num_classes, num_anchors, device=pred_boxes.device)
    for rows in gt_chunks(gt_boxes.shape[0], num_anchors, chunk_elements):
        iou = pairwise_iou(gt_boxes[rows].float(), pred_boxes.float())                 # (n, J)
        top = iou.max(dim=1, keepdim=True).values.clamp(min=bbox_thr + PROB_EPS)
        prob = ((iou - bbox_thr) / (top - bbox_thr)).clamp(min=0.0, max=1.0)
        out.scatter_reduce_(0, gt_labels[rows, None].expand_as(prob), prob, reduce="amax", include_self=True)
    return out.t()


def free_anchor_loss(*, cls_logits: Tensor, box_out: Tensor, pred_boxes: Tensor, anchors: Tensor,
                     targets: list[ImageTargets], assignments: list[Assignment], box_coder,
                     settings: FreeAnchorConfig, smooth_l1_beta: float, cls_weight: float,
                     box_weight: float) -> tuple[dict[str, Tensor], Tensor]:
    """FreeAnchor losses of one batch.

    Args:
        cls_logits: (N, J, C) class logits.
        box_out: (N, J, 4) box deltas.
        pred_boxes: (N, J, 4) decoded xyxy boxes (``P{a in A+}``, read detached).
        anchors: (J, 4) xyxy anchor boxes.
        targets, assignments: one :class:`ImageTargets` and one
            :class:`~lla.assign.freeanchor.FreeAnchorAssigner` result per image.
        box_coder: encodes the bag members' smooth-L1 targets.
        settings: the ``loss.free_anchor`` block.
        smooth_l1_beta, cls_weight, box_weight: the ``loss`` block's values.

    Returns:
        ({"loss_cls": negative bag loss, "loss_box": positive bag loss}, the batch's GT
        count averaged over ranks with one all-reduce, clamped >= 1).
    """
    num_classes = cls_logits.shape[2]
    cls_probs = torch.sigmoid(cls_logits)
    negative_total = cls_logits.new_zeros(())
    positive_parts = []
    count = cls_logits.new_zeros(())
    for image, (tgt, assignment) in enumerate(zip(targets, assignments)):
        valid_gt = ~tgt.ignore
        gt_boxes, gt_labels = tgt.boxes[valid_gt], tgt.labels[valid_gt]
        keep = ~assignment.ignore_mask(tgt.ignore)
        a_plus = positive_probability(pred_boxes[image].detach(), gt_boxes, gt_labels, num_classes,
                                      settings.bbox_thr)                                # (J, C)
        negative_total = negative_total + negative_bag_loss(
            cls_probs[image][keep], a_plus[keep], settings.alpha, settings.gamma).sum()
        count = count + gt_boxes.shape[0]
        if gt_boxes.shape[0] == 0:
            continue
        bags = anchor_bags(anchors, gt_boxes, settings.bag_size)                         # (I, k)
        num_gts, k = bags.shape
        bag_cls = cls_probs[image][bags, gt_labels[:, None].expand(-1, k)]              # (I, k)
        bag_anchors = anchors[bags].reshape(-1, 4)
        bag_targets = box_coder.encode(gt_boxes[:, None, :].expand(-1, k, -1).reshape(-1, 4).to(bag_anchors.dtype),
                                       bag_anchors)
        smooth_l1 = F.smooth_l1_loss(box_out[image][bags].reshape(-1, 4), bag_targets,
                                     beta=smooth_l1_beta, reduction="none").sum(dim=1)
        bag_box = torch.exp(-settings.box_reg_weight * smooth_l1).view(num_gts, k)
        positive_parts.append(positive_bag_loss(bag_cls, bag_box, settings.alpha))
    normalizer = batch_normalizer(count)
    if positive_parts:
        positive = torch.cat(positive_parts).sum() / normalizer
    else:  # keep the box branch in the graph with a zero loss
        positive = box_out.sum() * 0.0
    negative = negative_total / (normalizer * settings.bag_size)
    return {"loss_cls": cls_weight * negative, "loss_box": box_weight * positive}, normalizer
