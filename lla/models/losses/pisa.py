"""PISA: prime-sample attention on RetinaNet (Cao et al., CVPR 2020; method.md section 4).

Two re-weightings of the positives of a max-IoU RetinaNet, computed over the batch
(the positives of all images of this rank together, as mmdetection's PISA head does):

* ISR-P (importance-based sample re-weighting of positives), classification term only:
  the positives are ranked by **IoU-HLR** (:func:`iou_hierarchical_local_rank`): within
  each GT by the IoU of their (detached) predicted box with the GT, then all positives
  of a class by that local rank first and the IoU second. Rank r of n_max (the largest
  positive count of any class) gets ``u = (n_max - r) / n_max``, weight
  ``(bias + (1 - bias) u) ** k`` (k = 2, bias = 0), rescaled so that the positives'
  summed classification loss is unchanged.
* CARL (classification-aware regression loss): an extra box term
  ``sum_i w_i * box_loss_i / normaliser`` with ``w_i = (bias + (1 - bias) p_i) ** k``
  (k = 1, bias = 0.2), p_i the predicted probability of the positive's GT class
  *with* gradient (so regression quality trains the classifier), and the w_i rescaled
  to sum to the number of positives.

:func:`~lla.models.losses.dense_detection_loss` applies ISR-P through
:func:`isr_p_reweighted` and adds CARL's term :func:`carl_loss` (key ``loss_carl``) when the
variant's ``loss`` block carries ``isr`` / ``carl`` settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .batch import Positives
from .normalizer import normalized_sum


@dataclass(frozen=True)
class ReweightConfig:
    """``(bias + (1 - bias) x) ** k`` settings (ISR-P: k 2, bias 0; CARL: k 1, bias 0.2)."""

    k: float
    bias: float

    def __post_init__(self) -> None:
        if self.k < 0 or not 0.0 <= self.bias <= 1.0:
            raise ValueError(f"need k >= 0 and 0 <= bias <= 1, got k={self.k}, bias={self.bias}")

    def curve(self, x: Tensor) -> Tensor:
        return (self.bias + (1.0 - self.bias) * x).pow(self.k)


ISR_DEFAULT = ReweightConfig(k=2.0, bias=0.0)
CARL_DEFAULT = ReweightConfig(k=1.0, bias=0.2)


def _rank_within(sorted_keys: Tensor) -> Tensor:
    """Position of every entry of a sorted key vector inside its run of equal keys."""
    starts = torch.searchsorted(sorted_keys, sorted_keys, right=False)
    return torch.arange(sorted_keys.numel(), device=sorted_keys.device) - starts


def iou_hierarchical_local_rank(ious: Tensor, groups: Tensor, labels: Tensor) -> Tensor:
    """IoU-HLR of P positives, 0 = most important, counted within each class.

    Args:
        ious: float (P,) IoU of each positive's predicted box with its GT.
        groups: int64 (P,) identifier of each positive's GT (unique over the batch).
        labels: int64 (P,) class of each positive.

    Returns:
        int64 (P,). Order inside a class: local rank (position by descending IoU inside the
        GT) ascending, then IoU descending, then index ascending.
    """
    num = ious.numel()
    if num == 0:
        return torch.zeros(0, dtype=torch.int64, device=ious.device)
    # Local rank inside every GT: sort by (group, -iou, index).
    order = torch.argsort(-ious, stable=True)
    order = order[torch.argsort(groups[order], stable=True)]
    local = torch.empty(num, dtype=torch.int64, device=ious.device)
    local[order] = _rank_within(groups[order])
    # Rank inside every class: sort by (label, local rank, -iou, index).
    order = torch.argsort(-ious, stable=True)
    order = order[torch.argsort(local[order], stable=True)]
    order = order[torch.argsort(labels[order], stable=True)]
    rank = torch.empty(num, dtype=torch.int64, device=ious.device)
    rank[order] = _rank_within(labels[order])
    return rank


def isr_p_weights(ious: Tensor, groups: Tensor, labels: Tensor, cls_losses: Tensor,
                  cfg: ReweightConfig = ISR_DEFAULT, base_weights: Tensor | None = None) -> Tensor:
    """ISR-P factors of P positives (multiply their classification-loss weights).

    Args:
        ious, groups, labels: see :func:`iou_hierarchical_local_rank`.
        cls_losses: float (P,) classification loss of each positive (summed over classes).
        base_weights: float (P,) the positives' weights before ISR-P (None: 1).

    Returns:
        float (P,) factors f with ``sum(base * f * loss) == sum(base * loss)`` (no rescaling
        when the weighted sum is 0).
    """
    if ious.numel() == 0:
        return ious.new_ones(0)
    rank = iou_hierarchical_local_rank(ious, groups, labels).to(ious.dtype)
    n_max = torch.bincount(labels).max().to(ious.dtype)
    factors = cfg.curve((n_max - rank) / n_max)
    base = torch.ones_like(cls_losses) if base_weights is None else base_weights
    before = (base * cls_losses).sum()
    after = (base * factors * cls_losses).sum()
    if float(after) > 0:
        factors = factors * (before / after)
    return factors


def carl_weights(class_probs: Tensor, cfg: ReweightConfig = CARL_DEFAULT) -> Tensor:
    """CARL weights of P positives from their GT-class probabilities (P,), keeping the gradient.

    ``w = (bias + (1 - bias) p) ** k`` rescaled so that ``w.sum() == P``.
    """
    if class_probs.numel() == 0:
        return class_probs.clone()
    weights = cfg.curve(class_probs)
    return weights * (class_probs.numel() / weights.sum())


def isr_p_reweighted(cls_weights: Tensor, cls_losses: Tensor, positives: Positives,
                     cfg: ReweightConfig) -> Tensor:
    """Classification-row weights (R,) with the positives' rows multiplied by their ISR-P factors.

    Args:
        cls_weights: (R,) weights of the classification rows.
        cls_losses: (R,) their focal losses (read detached).
        positives: the batch's :class:`Positives` (rows, GTs, classes, prediction IoUs).
        cfg: ISR-P ``{k, bias}``.

    Returns:
        A new (R,) tensor; ``cls_weights`` itself when the batch has no positive.
    """
    if not positives.cls_row.numel():
        return cls_weights
    rows = positives.cls_row
    groups = positives.image * (int(positives.gt.max()) + 1) + positives.gt      # one id per GT of the batch
    with torch.no_grad():
        factors = isr_p_weights(positives.pred_iou, groups, positives.labels, cls_losses[rows].detach(), cfg,
                                base_weights=cls_weights[rows])
    cls_weights = cls_weights.clone()
    cls_weights[rows] = cls_weights[rows] * factors
    return cls_weights


def carl_loss(cls_logits: Tensor, positives: Positives, box_losses: Tensor, cfg: ReweightConfig, *,
              scale: float, normalizer: Tensor) -> Tensor:
    """CARL's term ``scale * sum_i carl_i * box_loss_i * w_i / normalizer`` -> scalar.

    Args:
        cls_logits: (N, J, C) class logits (CARL's weights keep their gradient).
        positives: the batch's :class:`Positives`.
        box_losses: (P,) per-positive box losses.
        cfg: CARL ``{k, bias}``.
        scale: ``loss.box_weight``.
        normalizer: scalar batch normaliser.
    """
    class_probs = torch.sigmoid(cls_logits[positives.image, positives.anchor, positives.labels])
    return normalized_sum(scale, carl_weights(class_probs, cfg) * box_losses, positives.weights, normalizer)
