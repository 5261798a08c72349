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
  every term of that anchor; an assignment that carries ``soft_labels``
  (:class:`~lla.assign.noisy_anchor.SoftLabelAssignment`, Noisy Anchor) gives its positives
  those targets instead of 1, with the soft-target focal loss
  ``t * FL_pos + (1 - t) * FL_neg``;
* PISA options (``isr``, ``carl``; :mod:`lla.assign.pisa`): ISR-P factors on the positives'
  classification weights, and the extra CARL box term ``loss_carl``;
* ``mode="free_anchor"`` replaces all of this by FreeAnchor's bag losses
  (:mod:`lla.models.free_anchor`), with the same inputs and normaliser machinery.

Every term is divided by one normaliser: the number of positives (optionally plus the
anchors matched to ignore GTs, as the released LLA code counts them), summed over the
batch, averaged over DDP ranks with ONE all-reduce per batch, clamped at >= 1. (With
``box_weighting="centerness"`` the box term is instead divided by the batch's sum of
centerness targets, and with ``box_weighting="iou"`` (PAA's released code) each positive's
box loss is weighted by the IoU of its detached prediction with its GT and divided by the
batch's sum of those IoUs; either sum rides in the same all-reduce.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from lla.assign.base import Assignment
from lla.assign.pisa import CARL_DEFAULT, ISR_DEFAULT, ReweightConfig, carl_weights, isr_p_weights
from lla.models.free_anchor import FreeAnchorConfig, free_anchor_loss

BOX_LOSSES = ("giou", "iou", "linear_iou", "smooth_l1")
NORMALIZERS = ("positives", "matched")
BOX_WEIGHTINGS = ("none", "centerness", "iou")
MODES = ("standard", "free_anchor")
# Lower bound of the centerness/IoU-sum normaliser (a batch without positives gives 0 / bound = 0).
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
        box_weighting: "none", "centerness" (FCOS/ATSS original code: each positive's box
            loss weighted by its centerness target, normalised by the batch's sum of them) or
            "iou" (PAA original code: the same with the IoU of the detached prediction).
        mode: "standard", or "free_anchor" (FreeAnchor's bag losses replace cls/box terms).
        free_anchor: settings of :class:`~lla.models.free_anchor.FreeAnchorConfig` (a dict in
            params.yaml); only with ``mode="free_anchor"``.
        isr: PISA's ISR-P ``{k, bias}`` (None: off).
        carl: PISA's CARL ``{k, bias}`` (None: off); adds ``loss_carl``.
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
    mode: str = "standard"
    free_anchor: FreeAnchorConfig | dict | None = None
    isr: ReweightConfig | dict | None = None
    carl: ReweightConfig | dict | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"loss.mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "free_anchor":
            object.__setattr__(self, "free_anchor", _as_config(FreeAnchorConfig, self.free_anchor or {}))
        elif self.free_anchor is not None:
            raise ValueError("loss.free_anchor is set but loss.mode is not 'free_anchor'")
        if self.isr is not None:
            object.__setattr__(self, "isr", _as_config(ReweightConfig, self.isr, ISR_DEFAULT))
        if self.carl is not None:
            object.__setattr__(self, "carl", _as_config(ReweightConfig, self.carl, CARL_DEFAULT))
        if self.box not in BOX_LOSSES:
            raise ValueError(f"loss.box must be one of {BOX_LOSSES}, got {self.box!r}")
        if self.normalizer not in NORMALIZERS:
            raise ValueError(f"loss.normalizer must be one of {NORMALIZERS}, got {self.normalizer!r}")
        if self.box_weighting not in BOX_WEIGHTINGS:
            raise ValueError(f"loss.box_weighting must be one of {BOX_WEIGHTINGS}, "
                             f"got {self.box_weighting!r}")


def _as_config(cls, value, default=None):
    """A settings dataclass from itself or from a dict of its fields (over ``default``)."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of {cls.__name__} settings, got {value!r}")
    fields = {} if default is None else dict(vars(default))
    unknown = set(value) - set(cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings: {', '.join(sorted(unknown))}")
    fields.update(value)
    return cls(**fields)


def soft_sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float, gamma: float) -> Tensor:
    """Focal loss with targets in [0, 1]: ``t * FL(p, 1) + (1 - t) * FL(p, 0)`` elementwise.

    ``FL(p, 1) = alpha (1 - p)^gamma (-ln p)``, ``FL(p, 0) = (1 - alpha) p^gamma (-ln(1 - p))``;
    equal to torchvision's ``sigmoid_focal_loss`` for 0/1 targets.
    """
    p = torch.sigmoid(logits)
    positive = alpha * (1.0 - p).pow(gamma) * -F.logsigmoid(logits)
    negative = (1.0 - alpha) * p.pow(gamma) * -F.logsigmoid(-logits)
    return targets * positive + (1.0 - targets) * negative


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
        ({"loss_cls", "loss_box"[, "loss_aux"][, "loss_carl"]} weighted scalar losses, normaliser).
    """
    num_images, num_anchors, _ = cls_logits.shape
    if not len(targets) == len(assignments) == num_images:
        raise ValueError(f"{num_images} images, {len(targets)} targets, {len(assignments)} assignments")
    for image, assignment in enumerate(assignments):
        if assignment.num_anchors != num_anchors:
            raise ValueError(f"image {image}: assignment covers {assignment.num_anchors} anchors, "
                             f"the head predicts {num_anchors}")
    if cfg.mode == "free_anchor":
        return free_anchor_loss(cls_logits=cls_logits, box_out=box_out, pred_boxes=pred_boxes, anchors=anchors,
                                targets=targets, assignments=assignments, box_coder=box_coder, cfg=cfg,
                                normalizer_fn=batch_normalizer)
    cls_parts, cls_target_parts, cls_weight_parts = [], [], []
    soft = False
    # Per positive: its image, its anchor row, its GT index and box, its class, its weight,
    # and its row among the concatenated classification rows.
    pos_parts: dict[str, list[Tensor]] = {"image": [], "anchor": [], "gt": [], "gt_box": [], "label": [],
                                          "weight": [], "cls_row": []}
    count = cls_logits.new_zeros(())
    cls_rows_before = 0
    for image, (tgt, assignment) in enumerate(zip(targets, assignments)):
        positive = assignment.positive_mask(tgt.ignore)
        valid = ~assignment.ignore_mask(tgt.ignore)
        weights = (assignment.weights if assignment.weights is not None
                   else cls_logits.new_ones(num_anchors)).to(cls_logits.dtype)
        count = count + positive.sum()
        if cfg.normalizer == "matched":
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
        pos_parts["gt_box"].append(tgt.boxes[matched[pos_idx]].to(pred_boxes.dtype))
        pos_parts["label"].append(pos_labels)
        pos_parts["weight"].append(weights[pos_idx])
        pos_parts["cls_row"].append(cls_rows_before + torch.cumsum(valid, 0)[pos_idx] - 1)
        cls_rows_before += int(valid.sum())

    pos = {key: torch.cat(parts) for key, parts in pos_parts.items()}
    img_idx, anchor_idx, gt_boxes, pos_weights = pos["image"], pos["anchor"], pos["gt_box"], pos["weight"]
    pos_anchors = anchors[anchor_idx]                                     # (P, 4)
    pos_centers = (pos_anchors[:, :2] + pos_anchors[:, 2:]) / 2           # (P, 2)
    boxes = pred_boxes[img_idx, anchor_idx]                               # (P, 4)
    with torch.no_grad():
        pred_iou = elementwise_iou(boxes.detach(), gt_boxes)              # (P,)
    box_weights = pos_weights
    if cfg.box_weighting != "none":
        quality = (centerness_target(pos_centers, gt_boxes) if cfg.box_weighting == "centerness"
                   else pred_iou.clamp(min=IOU_EPS))
        box_weights = pos_weights * quality
        # One all-reduce per batch carries both totals.
        normalizer, quality_sum = mean_over_ranks(torch.stack((count.float(), quality.sum())))
        normalizer, box_normalizer = normalizer.clamp(min=1.0), quality_sum.clamp(min=MIN_CENTERNESS_SUM)
    else:
        normalizer = box_normalizer = batch_normalizer(count)

    cls_inputs, cls_targets = torch.cat(cls_parts), torch.cat(cls_target_parts)
    if soft:
        cls_loss = soft_sigmoid_focal_loss(cls_inputs, cls_targets, cfg.focal_alpha, cfg.focal_gamma)
    else:
        cls_loss = sigmoid_focal_loss(cls_inputs, cls_targets, alpha=cfg.focal_alpha, gamma=cfg.focal_gamma,
                                      reduction="none")
    cls_loss = cls_loss.sum(1)
    cls_weights = torch.cat(cls_weight_parts)
    if cfg.isr is not None and pos["cls_row"].numel():
        rows = pos["cls_row"]
        groups = img_idx * (int(pos["gt"].max()) + 1) + pos["gt"]
        with torch.no_grad():
            factors = isr_p_weights(pred_iou, groups, pos["label"], cls_loss[rows].detach(), cfg.isr,
                                    base_weights=cls_weights[rows])
        cls_weights = cls_weights.clone()
        cls_weights[rows] = cls_weights[rows] * factors
    losses = {"loss_cls": cfg.cls_weight * (cls_loss * cls_weights).sum() / normalizer}

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

    if cfg.carl is not None:
        class_probs = torch.sigmoid(cls_logits[img_idx, anchor_idx, pos["label"]])
        carl = carl_weights(class_probs, cfg.carl)
        losses["loss_carl"] = cfg.box_weight * (carl * box_loss * pos_weights).sum() / normalizer

    if aux_kind is not None:
        if aux_logits is None:
            raise ValueError(f"aux branch {aux_kind!r} configured but the head gave no aux output")
        with torch.no_grad():
            if aux_kind == "centerness":
                aux_target = centerness_target(pos_centers, gt_boxes)
            else:
                aux_target = pred_iou
        aux_loss = F.binary_cross_entropy_with_logits(aux_logits[img_idx, anchor_idx], aux_target,
                                                      reduction="none")
        losses["loss_aux"] = cfg.aux_weight * (aux_loss * pos_weights).sum() / normalizer
    return losses, normalizer
