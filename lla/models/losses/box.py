"""The box term over the positives: its per-positive loss and its optional quality weighting.

* ``loss.box``: ``giou`` (``1 - GIoU``, torchvision), ``iou`` (``-ln IoU``), ``linear_iou``
  (``1 - IoU``) on decoded boxes, or ``smooth_l1`` on the box coder's deltas (RetinaNet).
* ``loss.box_weighting``: ``centerness`` weights each positive by its FCOS centerness
  target (FCOS, ATSS), ``iou`` by the IoU of its detached prediction with its GT (PAA).
  ``loss.box_weighting_normalizer`` says what the weighted term divides by: the
  normaliser of the other terms (``positives``: the LLA authors' FCOS/ATSS baselines) or
  the batch's sum of the weights (``weight_sum``: the FCOS/mmdetection convention, PAA's
  released code); see :func:`~lla.models.losses.normalizer.batch_normalizers`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import generalized_box_iou_loss

from .batch import Positives
from .geometry import IOU_EPS, centerness_target, elementwise_iou


def box_losses(kind: str, positives: Positives, *, box_out: Tensor, box_coder, smooth_l1_beta: float) -> Tensor:
    """Per-positive box loss (P,) of kind ``loss.box``.

    Args:
        kind: "giou", "iou", "linear_iou" or "smooth_l1".
        positives: the batch's :class:`Positives` (decoded boxes, GT boxes, anchors).
        box_out: (N, J, 4) raw box output; read by "smooth_l1" only.
        box_coder: encodes the smooth-L1 targets against the anchors.
        smooth_l1_beta: transition point of smooth-L1.
    """
    boxes, gt_boxes = positives.pred_boxes, positives.gt_boxes
    if kind == "giou":
        return generalized_box_iou_loss(boxes, gt_boxes, reduction="none")
    if kind == "iou":
        return -torch.log(elementwise_iou(boxes, gt_boxes).clamp(min=IOU_EPS))
    if kind == "linear_iou":
        return 1.0 - elementwise_iou(boxes, gt_boxes)
    deltas = box_out[positives.image, positives.anchor]
    return F.smooth_l1_loss(deltas, box_coder.encode(gt_boxes, positives.anchors),
                            beta=smooth_l1_beta, reduction="none").sum(1)


def box_quality(weighting: str, positives: Positives) -> Tensor | None:
    """Per-positive quality weight (P,) of ``loss.box_weighting``, or None for "none".

    "centerness": the FCOS centerness target of the anchor point in its GT box;
    "iou": the IoU of the detached prediction with its GT, clamped at float32 eps.
    """
    if weighting == "none":
        return None
    if weighting == "centerness":
        return centerness_target(positives.centers, positives.gt_boxes)
    return positives.pred_iou.clamp(min=IOU_EPS)
