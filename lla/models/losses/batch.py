"""From per-image assignments to the rows the loss terms read.

After assignment each anchor of each image is a positive (matched to a non-ignore GT),
a negative, or ignored (``IGNORED``, or matched to an ignore GT). :func:`gather_batch`
collects, over the images of the batch in order,

* :class:`ClassificationRows` -- every non-ignored anchor with its class target (the
  one-hot class of its GT for a positive, zeros for a negative; a
  :class:`~lla.assign.noisy_anchor.SoftLabelAssignment` gives its positives their soft
  labels instead of 1) and its per-anchor weight;
* :class:`Positives` -- the positive anchors with their GT, predicted box and weight;
* this rank's count for the normaliser (``normalizer: positives | matched``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lla.assign.base import Assignment

from .geometry import elementwise_iou


@dataclass
class ImageTargets:
    """GT of one image as the assigner sees it.

    Attributes:
        boxes: (I, 4) xyxy, valid persons first, then ignore boxes.
        ignore: (I,) bool.
        labels: (I,) int64 class index (ignore boxes carry their class too).
    """

    boxes: Tensor
    ignore: Tensor
    labels: Tensor


@dataclass
class ClassificationRows:
    """The R non-ignored anchors of the batch (images concatenated in order).

    Attributes:
        logits: (R, C) class logits (with gradient).
        targets: (R, C) targets in [0, 1].
        weights: (R,) per-anchor weights (1 unless the assignment carries weights).
        soft: True when some image's targets are soft labels (Noisy Anchor).
    """

    logits: Tensor
    targets: Tensor
    weights: Tensor
    soft: bool


@dataclass
class Positives:
    """The P positive anchors of the batch (images in order, anchors ascending).

    Attributes:
        image, anchor, gt: int64 (P,) image index, anchor row and GT index.
        gt_boxes: (P, 4) xyxy box of the matched GT.
        labels: int64 (P,) class of the matched GT.
        weights: (P,) per-anchor weights.
        cls_row: int64 (P,) row of the positive in :class:`ClassificationRows`.
        anchors: (P, 4) xyxy anchor boxes (points as degenerate boxes); centers (P, 2).
        pred_boxes: (P, 4) decoded predicted boxes (with gradient).
        pred_iou: (P,) IoU of the detached prediction with its GT (no gradient).
    """

    image: Tensor
    anchor: Tensor
    gt: Tensor
    gt_boxes: Tensor
    labels: Tensor
    weights: Tensor
    cls_row: Tensor
    anchors: Tensor
    centers: Tensor
    pred_boxes: Tensor
    pred_iou: Tensor


@dataclass
class LossBatch:
    """What :func:`gather_batch` returns: the rows, the positives and this rank's count (scalar)."""

    rows: ClassificationRows
    positives: Positives
    count: Tensor


def check_batch(cls_logits: Tensor, targets: list[ImageTargets], assignments: list[Assignment]) -> None:
    """Raise ValueError unless there is one target and one assignment over all J anchors per image."""
    num_images, num_anchors, _ = cls_logits.shape
    if not len(targets) == len(assignments) == num_images:
        raise ValueError(f"{num_images} images, {len(targets)} targets, {len(assignments)} assignments")
    for image, assignment in enumerate(assignments):
        if assignment.num_anchors != num_anchors:
            raise ValueError(f"image {image}: assignment covers {assignment.num_anchors} anchors, "
                             f"the head predicts {num_anchors}")


def gather_batch(*, cls_logits: Tensor, pred_boxes: Tensor, anchors: Tensor, targets: list[ImageTargets],
                 assignments: list[Assignment], normalizer: str) -> LossBatch:
    """Classification rows, positives and count of one batch.

    Args:
        cls_logits: (N, J, C) class logits.
        pred_boxes: (N, J, 4) decoded xyxy boxes.
        anchors: (J, 4) xyxy anchor boxes (points as degenerate boxes).
        targets, assignments: one :class:`ImageTargets` and one :class:`Assignment` per image.
        normalizer: "positives" counts positives; "matched" adds the anchors matched to
            ignore GTs (as the released LLA code counts them).
    """
    num_anchors = cls_logits.shape[1]
    cls_parts, cls_target_parts, cls_weight_parts = [], [], []
    soft = False
    pos_parts: dict[str, list[Tensor]] = {"image": [], "anchor": [], "gt": [], "gt_boxes": [], "labels": [],
                                          "weights": [], "cls_row": []}
    count = cls_logits.new_zeros(())
    cls_rows_before = 0
    for image, (tgt, assignment) in enumerate(zip(targets, assignments)):
        positive = assignment.positive_mask(tgt.ignore)
        valid = ~assignment.ignore_mask(tgt.ignore)
        weights = (assignment.weights if assignment.weights is not None
                   else cls_logits.new_ones(num_anchors)).to(cls_logits.dtype)
        count = count + positive.sum()
        if normalizer == "matched":
            count = count + (assignment.matched_mask() & ~positive).sum()

        matched = assignment.matched_gt.clamp(min=0)
        pos_idx = positive.nonzero().squeeze(1)
        pos_labels = tgt.labels[matched[pos_idx]]
        cls_target = torch.zeros_like(cls_logits[image])
        soft_labels = getattr(assignment, "soft_labels", None)
        if soft_labels is not None:
            soft = True
            cls_target[pos_idx, pos_labels] = soft_labels[pos_idx].to(cls_target.dtype)
        else:
            cls_target[pos_idx, pos_labels] = 1.0
        cls_parts.append(cls_logits[image][valid])
        cls_target_parts.append(cls_target[valid])
        cls_weight_parts.append(weights[valid])

        pos_parts["image"].append(torch.full_like(pos_idx, image))
        pos_parts["anchor"].append(pos_idx)
        pos_parts["gt"].append(matched[pos_idx])
        pos_parts["gt_boxes"].append(tgt.boxes[matched[pos_idx]].to(pred_boxes.dtype))
        pos_parts["labels"].append(pos_labels)
        pos_parts["weights"].append(weights[pos_idx])
        pos_parts["cls_row"].append(cls_rows_before + torch.cumsum(valid, 0)[pos_idx] - 1)
        cls_rows_before += int(valid.sum())

    pos = {key: torch.cat(parts) for key, parts in pos_parts.items()}
    pos_anchors = anchors[pos["anchor"]]
    boxes = pred_boxes[pos["image"], pos["anchor"]]
    with torch.no_grad():
        pred_iou = elementwise_iou(boxes.detach(), pos["gt_boxes"])
    positives = Positives(**pos, anchors=pos_anchors, centers=(pos_anchors[:, :2] + pos_anchors[:, 2:]) / 2,
                          pred_boxes=boxes, pred_iou=pred_iou)
    rows = ClassificationRows(logits=torch.cat(cls_parts), targets=torch.cat(cls_target_parts),
                              weights=torch.cat(cls_weight_parts), soft=soft)
    return LossBatch(rows=rows, positives=positives, count=count)
