"""The one loss path of every dense detector variant.

After assignment, each anchor of each image is a positive (matched to a non-ignore
GT), a negative, or ignored (``IGNORED`` or matched to an ignore GT). Then

* classification: sigmoid focal loss over all non-ignored anchors (positives carry
  the one-hot class of their GT, negatives zeros), summed over classes;
* box: over positives -- GIoU loss ``1 - GIoU``, IoU loss ``-ln(IoU)``, linear IoU
  loss ``1 - IoU`` on decoded boxes, or smooth-L1 on box-coder deltas (RetinaNet);
* aux (optional, over positives): BCE of the centerness logit against the FCOS
  centerness target, or of the IoU-branch logit against the IoU of the (detached)
  predicted box with its GT;
* optional per-anchor weights from the :class:`~lla.assign.base.Assignment` multiply
  every term of that anchor.

Every term is divided by one normaliser: the number of positives (optionally plus the
anchors matched to ignore GTs, as the released LLA code counts them), summed over the
batch, averaged over DDP ranks with ONE all-reduce per batch, clamped at >= 1. (With
``box_weighting="centerness"`` the box term is instead divided by the batch's sum of
centerness targets, carried in the same all-reduce.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from lla.assign.base import Assignment

BOX_LOSSES = ("giou", "iou", "linear_iou", "smooth_l1")
NORMALIZERS = ("positives", "matched")
BOX_WEIGHTINGS = ("none", "centerness")
# Lower bound of the centerness-sum normaliser (a batch without positives gives 0 / bound = 0).
MIN_CENTERNESS_SUM = 1e-6
IOU_EPS = torch.finfo(torch.float32).eps


@dataclass(frozen=True)
class LossConfig:
    """Settings of :func:`dense_detection_loss` (the ``loss`` block of a variant).

    Attributes:
        box: "giou", "iou" (-ln IoU), "linear_iou" (1 - IoU) or "smooth_l1" (deltas).
        cls_weight, box_weight, aux_weight: multipliers of the three terms.
        focal_alpha, focal_gamma: focal-loss parameters.
        smooth_l1_beta: transition point of smooth-L1.
        normalizer: "positives" or "matched" (positives + anchors matched to ignore GTs).
        box_weighting: "none", or "centerness" (FCOS/ATSS original code: each positive's box
            loss weighted by its centerness target, normalised by the batch's sum of them).
    """

    box: str = "giou"
    cls_weight: float = 1.0
    box_weight: float = 2.0
    aux_weight: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    smooth_l1_beta: float = 0.1
    normalizer: str = "positives"
    box_weighting: str = "none"

    def __post_init__(self) -> None:
        if self.box not in BOX_LOSSES:
            raise ValueError(f"loss.box must be one of {BOX_LOSSES}, got {self.box!r}")
        if self.normalizer not in NORMALIZERS:
            raise ValueError(f"loss.normalizer must be one of {NORMALIZERS}, got {self.normalizer!r}")
        if self.box_weighting not in BOX_WEIGHTINGS:
            raise ValueError(f"loss.box_weighting must be one of {BOX_WEIGHTINGS}, "
                             f"got {self.box_weighting!r}")


def elementwise_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of row pairs: (P, 4) x (P, 4) xyxy -> (P,); union clamped at float32 eps."""
    wh = (torch.minimum(boxes1[:, 2:], boxes2[:, 2:])
          - torch.maximum(boxes1[:, :2], boxes2[:, :2])).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    area1 = (boxes1[:, 2] - boxes1[:, 0]).clamp(min=0) * (boxes1[:, 3] - boxes1[:, 1]).clamp(min=0)
    area2 = (boxes2[:, 2] - boxes2[:, 0]).clamp(min=0) * (boxes2[:, 3] - boxes2[:, 1]).clamp(min=0)
    return inter / (area1 + area2 - inter).clamp(min=IOU_EPS)


def centerness_target(points: Tensor, gt_boxes: Tensor) -> Tensor:
    """FCOS centerness of points (P, 2) in their GT boxes (P, 4) -> (P,) in [0, 1].

    ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))``; a point outside its box
    (possible with LLA) gets 0.
    """
    left = (points[:, 0] - gt_boxes[:, 0]).clamp(min=0)
    top = (points[:, 1] - gt_boxes[:, 1]).clamp(min=0)
    right = (gt_boxes[:, 2] - points[:, 0]).clamp(min=0)
    bottom = (gt_boxes[:, 3] - points[:, 1]).clamp(min=0)
    lr = torch.minimum(left, right) / torch.maximum(left, right).clamp(min=IOU_EPS)
    tb = torch.minimum(top, bottom) / torch.maximum(top, bottom).clamp(min=IOU_EPS)
    return torch.sqrt(lr * tb)


def mean_over_ranks(values: Tensor) -> Tensor:
    """Average this rank's batch totals ``values`` (any shape) over DDP ranks.

    One all-reduce when torch.distributed is initialised; the identity otherwise.
    """
    values = values.detach().float()
    if dist.is_available() and dist.is_initialized():
        values = values.clone()
        dist.all_reduce(values)
        values = values / dist.get_world_size()
    return values


def batch_normalizer(count: Tensor) -> Tensor:
    """The positive count ``count`` (scalar) averaged over ranks, clamped at >= 1."""
    return mean_over_ranks(count).clamp(min=1.0)


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


def dense_detection_loss(*, cls_logits: Tensor, box_out: Tensor, pred_boxes: Tensor,
                         aux_logits: Tensor | None, aux_kind: str | None, anchors: Tensor,
                         targets: list[ImageTargets], assignments: list[Assignment],
                         box_coder, cfg: LossConfig) -> tuple[dict[str, Tensor], Tensor]:
    """Loss of one batch.

    Args:
        cls_logits: (N, J, C) class logits.
        box_out: (N, J, 4) raw box output (deltas or ltrb); used by smooth-L1.
        pred_boxes: (N, J, 4) decoded xyxy boxes (IoU-type losses, IoU-branch target).
        aux_logits: (N, J) centerness / IoU-branch logits, or None.
        aux_kind: None, "centerness" or "iou".
        anchors: (J, 4) xyxy anchor boxes (points as degenerate boxes).
        targets: per image :class:`ImageTargets`.
        assignments: per image :class:`Assignment` over the J anchors.
        box_coder: the coder of ``box_out`` (encodes smooth-L1 targets).
        cfg: :class:`LossConfig`.

    Returns:
        ({"loss_cls", "loss_box"[, "loss_aux"]} weighted scalar losses, normaliser).
    """
    num_images, num_anchors, _ = cls_logits.shape
    if not len(targets) == len(assignments) == num_images:
        raise ValueError(f"{num_images} images, {len(targets)} targets, {len(assignments)} assignments")
    cls_parts, cls_target_parts, cls_weight_parts = [], [], []
    # Per positive: its image, its anchor row, its GT box, its weight.
    pos_parts: dict[str, list[Tensor]] = {"image": [], "anchor": [], "gt_box": [], "weight": []}
    count = cls_logits.new_zeros(())
    for image, (tgt, assignment) in enumerate(zip(targets, assignments)):
        if assignment.num_anchors != num_anchors:
            raise ValueError(f"image {image}: assignment covers {assignment.num_anchors} anchors, "
                             f"the head predicts {num_anchors}")
        positive = assignment.positive_mask(tgt.ignore)
        valid = ~assignment.ignore_mask(tgt.ignore)
        weights = (assignment.weights if assignment.weights is not None
                   else cls_logits.new_ones(num_anchors)).to(cls_logits.dtype)
        count = count + positive.sum()
        if cfg.normalizer == "matched":
            count = count + (assignment.matched_mask() & ~positive).sum()

        matched = assignment.matched_gt.clamp(min=0)
        cls_target = torch.zeros_like(cls_logits[image])
        pos_idx = positive.nonzero().squeeze(1)
        cls_target[pos_idx, tgt.labels[matched[pos_idx]]] = 1.0
        cls_parts.append(cls_logits[image][valid])
        cls_target_parts.append(cls_target[valid])
        cls_weight_parts.append(weights[valid])

        pos_parts["image"].append(torch.full_like(pos_idx, image))
        pos_parts["anchor"].append(pos_idx)
        pos_parts["gt_box"].append(tgt.boxes[matched[pos_idx]].to(pred_boxes.dtype))
        pos_parts["weight"].append(weights[pos_idx])

    img_idx, anchor_idx = torch.cat(pos_parts["image"]), torch.cat(pos_parts["anchor"])
    gt_boxes, pos_weights = torch.cat(pos_parts["gt_box"]), torch.cat(pos_parts["weight"])
    pos_anchors = anchors[anchor_idx]                                     # (P, 4)
    pos_centers = (pos_anchors[:, :2] + pos_anchors[:, 2:]) / 2           # (P, 2)
    box_weights = pos_weights
    if cfg.box_weighting == "centerness":
        ctr = centerness_target(pos_centers, gt_boxes)
        box_weights = pos_weights * ctr
        # One all-reduce per batch carries both totals.
        normalizer, ctr_sum = mean_over_ranks(torch.stack((count.float(), ctr.sum())))
        normalizer, box_normalizer = normalizer.clamp(min=1.0), ctr_sum.clamp(min=MIN_CENTERNESS_SUM)
    else:
        normalizer = box_normalizer = batch_normalizer(count)

    cls_loss = sigmoid_focal_loss(torch.cat(cls_parts), torch.cat(cls_target_parts),
                                  alpha=cfg.focal_alpha, gamma=cfg.focal_gamma, reduction="none")
    losses = {"loss_cls": cfg.cls_weight * (cls_loss.sum(1) * torch.cat(cls_weight_parts)).sum()
              / normalizer}

    boxes = pred_boxes[img_idx, anchor_idx]                               # (P, 4)
    if cfg.box == "giou":
        box_loss = generalized_box_iou_loss(boxes, gt_boxes, reduction="none")
    elif cfg.box == "iou":
        box_loss = -torch.log(elementwise_iou(boxes, gt_boxes).clamp(min=IOU_EPS))
    elif cfg.box == "linear_iou":
        box_loss = 1.0 - elementwise_iou(boxes, gt_boxes)
    else:
        deltas = box_out[img_idx, anchor_idx]
        box_loss = F.smooth_l1_loss(deltas, box_coder.encode(gt_boxes, pos_anchors),
                                    beta=cfg.smooth_l1_beta, reduction="none").sum(1)
    losses["loss_box"] = cfg.box_weight * (box_loss * box_weights).sum() / box_normalizer

    if aux_kind is not None:
        if aux_logits is None:
            raise ValueError(f"aux branch {aux_kind!r} configured but the head gave no aux output")
        with torch.no_grad():
            if aux_kind == "centerness":
                aux_target = centerness_target(pos_centers, gt_boxes)
            else:
                aux_target = elementwise_iou(boxes.detach(), gt_boxes)
        aux_loss = F.binary_cross_entropy_with_logits(aux_logits[img_idx, anchor_idx], aux_target,
                                                      reduction="none")
        losses["loss_aux"] = cfg.aux_weight * (aux_loss * pos_weights).sum() / normalizer
    return losses, normalizer
