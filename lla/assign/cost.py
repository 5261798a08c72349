"""The LLA cost matrix (method.md section 1; paper Eq. 1-4).

``C[i, j] = C_cls[i, j] + reg_weight * C_reg[i, j] + C_inbox[i, j]`` with

* ``C_cls``: sigmoid focal loss (alpha 0.25, gamma 2) of anchor j's logits against GT
  i's one-hot class, summed over classes (or plain BCE). Ignore GTs count as their
  class (person). For C = 1: ``0.25 * (1 - p)**2 * -ln p``.
* ``C_reg``: IoU loss ``-ln(max(IoU(box_pred_j, gt_i), eps))``, eps = float32 eps, or
  GIoU loss ``1 - GIoU`` (Table 3).
* ``C_inbox``: ``inbox_cost`` (P) when anchor j's point is not inside GT i with the
  0.01 px margin, else 0. P stays finite: a GT containing fewer than K points still
  gets K picks.

Every term can be switched off (Table 2). The classification term depends on the GT
only through its class, so it is computed once per class (C, J) and gathered; the
other terms are built per block of GT rows (:meth:`LLACost.rows`), which gives
bit-for-bit the rows of the dense matrix (:func:`lla_cost`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from .geometry import FLOAT32_EPS, INSIDE_MARGIN, box_centers, paired_giou, paired_inside, paired_iou

FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0
CLS_COSTS = ("focal", "bce")
REG_COSTS = ("iou", "giou")
#: Relative slack of :meth:`LLACost.outside_cost_lower_bound` against float rounding.
_BOUND_SAFETY = 1e-4


@dataclass(frozen=True)
class PreparedPredictions:
    """Per-anchor quantities computed once per image.

    Attributes:
        cls_cost_per_class: float32 (C, J); row c = classification cost of every anchor
            against a GT of class c. None when the classification term is off.
        box_pred: float32 (J, 4) decoded xyxy predictions.
        points: float32 (J, 2) anchor points (anchor-box centres).
    """

    cls_cost_per_class: Tensor | None
    box_pred: Tensor
    points: Tensor

    def select(self, anchors: Tensor) -> "PreparedPredictions":
        """The same quantities for a subset of anchors (int64 indices)."""
        table = None if self.cls_cost_per_class is None else self.cls_cost_per_class[:, anchors]
        return PreparedPredictions(table, self.box_pred[anchors], self.points[anchors])


@dataclass(frozen=True)
class LLACost:
    """Settings of the LLA cost; :meth:`prepare` once per image, then :meth:`rows` per GT block.

    Attributes:
        reg_weight: lambda, weight of the regression term.
        inbox_cost: P, added when the anchor point is outside the GT (finite).
        cls_cost: "focal" or "bce".
        reg_cost: "iou" (-ln IoU) or "giou" (1 - GIoU).
        use_cls, use_reg, use_inbox: switch the three terms (Table 2).
        focal_alpha, focal_gamma: focal-loss parameters of the classification term.
        inside_margin: pixels a point must lie inside every side of the GT.
    """

    reg_weight: float
    inbox_cost: float
    cls_cost: str = "focal"
    reg_cost: str = "iou"
    use_cls: bool = True
    use_reg: bool = True
    use_inbox: bool = True
    focal_alpha: float = FOCAL_ALPHA
    focal_gamma: float = FOCAL_GAMMA
    inside_margin: float = INSIDE_MARGIN

    def __post_init__(self) -> None:
        if self.cls_cost not in CLS_COSTS:
            raise ValueError(f"cls_cost must be one of {CLS_COSTS}, got {self.cls_cost!r}")
        if self.reg_cost not in REG_COSTS:
            raise ValueError(f"reg_cost must be one of {REG_COSTS}, got {self.reg_cost!r}")
        if not (self.use_cls or self.use_reg or self.use_inbox):
            raise ValueError("at least one cost term must be switched on")
        if self.reg_weight < 0 or not torch.isfinite(torch.tensor(self.reg_weight)):
            raise ValueError(f"reg_weight must be finite and >= 0, got {self.reg_weight}")
        if self.inbox_cost < 0 or not torch.isfinite(torch.tensor(self.inbox_cost)):
            raise ValueError(f"inbox_cost must be finite and >= 0 (the paper's +inf is replaced by a "
                             f"large finite value), got {self.inbox_cost}")

    def prepare(self, cls_logits: Tensor, box_pred: Tensor, anchors: Tensor) -> PreparedPredictions:
        """Per-anchor precomputation: cls_logits (J, C), box_pred (J, 4), anchors (J, 4) or (J, 2)."""
        cls_table = self._cls_cost_per_class(cls_logits.float()) if self.use_cls else None
        return PreparedPredictions(cls_table, box_pred.float(), box_centers(anchors.float()))

    def rows(self, prepared: PreparedPredictions, gt_boxes: Tensor, gt_labels: Tensor) -> Tensor:
        """Cost rows of a block of GTs: gt_boxes float (n, 4), gt_labels int64 (n,) -> float32 (n, J)."""
        cls_rows = None
        if self.use_cls:
            table = prepared.cls_cost_per_class
            # One class: every row is the same, broadcast instead of gathering n copies.
            cls_rows = table if table.shape[0] == 1 else table[gt_labels]
        return self.pair_cost(cls_rows, prepared.box_pred[None], prepared.points[None], gt_boxes.float()[:, None])

    def pair_cost(self, cls_cost: Tensor | None, box_pred: Tensor, points: Tensor, gt_boxes: Tensor) -> Tensor:
        """Cost of anchor-GT pairs given as broadcast tensors.

        Args:
            cls_cost: float (...) classification cost of the anchor against the GT's class
                (None when that term is off).
            box_pred: float (..., 4) the anchor's predicted box.
            points: float (..., 2) the anchor point.
            gt_boxes: float (..., 4) the GT box.

        Returns:
            float32 (...). The same float operations in the same order for every layout,
            so a pair's cost does not depend on which other pairs are computed with it.
        """
        shape = torch.broadcast_shapes(box_pred.shape[:-1], points.shape[:-1], gt_boxes.shape[:-1])
        if self.use_reg:
            if self.reg_cost == "iou":
                reg = paired_iou(gt_boxes, box_pred).clamp_(min=FLOAT32_EPS).log_().neg_()
            else:
                reg = paired_giou(gt_boxes, box_pred).neg_().add_(1.0)
            reg = reg.expand(shape).contiguous() if reg.shape != shape else reg
            cost = reg.mul_(self.reg_weight)
            if self.use_cls:
                cost.add_(cls_cost)  # cls + lambda * reg
        elif self.use_cls:
            cost = cls_cost.expand(shape).clone()
        else:
            cost = torch.zeros(shape, device=gt_boxes.device)
        if self.use_inbox:
            outside = paired_inside(points, gt_boxes, margin=self.inside_margin).logical_not_()
            cost.add_(outside, alpha=self.inbox_cost)
        return cost

    def outside_cost_lower_bound(self, prepared: PreparedPredictions) -> float:
        """A value every cost of an anchor outside its GT is >= (needs ``use_inbox``).

        Outside cost = cls + lambda * reg + P with cls >= 0 and reg >= 0 (up to rounding
        for GIoU), so min(cls) + P minus a safety margin for float rounding is a bound.
        """
        min_cls = float(prepared.cls_cost_per_class.min()) if self.use_cls else 0.0
        return min_cls + self.inbox_cost - _BOUND_SAFETY * (1.0 + self.inbox_cost + self.reg_weight)

    def _cls_cost_per_class(self, logits: Tensor) -> Tensor:
        """float32 (C, J): classification cost of every anchor against each one-hot class."""
        num_classes = logits.shape[1]
        rows = []
        for class_index in range(num_classes):
            target = torch.zeros_like(logits)
            target[:, class_index] = 1.0
            if self.cls_cost == "focal":
                loss = sigmoid_focal_loss(logits, target, alpha=self.focal_alpha, gamma=self.focal_gamma,
                                          reduction="none")
            else:
                loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            rows.append(loss.sum(dim=1))
        return torch.stack(rows)


def lla_cost(cls_logits: Tensor, box_pred: Tensor, anchors: Tensor, gt_boxes: Tensor,
             gt_labels: Tensor | None = None, *, reg_weight: float, inbox_cost: float,
             cls_cost: str = "focal", reg_cost: str = "iou", use_cls: bool = True, use_reg: bool = True,
             use_inbox: bool = True) -> Tensor:
    """The dense LLA cost matrix.

    Args:
        cls_logits: float (J, C) raw logits.
        box_pred: float (J, 4) decoded predicted boxes, xyxy.
        anchors: float (J, 4) anchor boxes (their centres are the anchor points) or (J, 2) points.
        gt_boxes: float (I, 4) xyxy.
        gt_labels: int64 (I,) class per GT; None = class 0 for all (ignore GTs included).
        reg_weight, inbox_cost, cls_cost, reg_cost, use_*: see :class:`LLACost`.

    Returns:
        float32 (I, J) cost, computed without gradient.
    """
    settings = LLACost(reg_weight=reg_weight, inbox_cost=inbox_cost, cls_cost=cls_cost, reg_cost=reg_cost,
                       use_cls=use_cls, use_reg=use_reg, use_inbox=use_inbox)
    if gt_labels is None:
        gt_labels = torch.zeros(len(gt_boxes), dtype=torch.int64, device=gt_boxes.device)
    with torch.no_grad():
        return settings.rows(settings.prepare(cls_logits, box_pred, anchors), gt_boxes, gt_labels)
