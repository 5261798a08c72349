"""Noisy Anchor (Li et al., "Learning from Noisy Anchors for One-stage Object Detection",
CVPR 2020; method.md section 4) on RetinaNet.

1. Positive candidates: every GT takes its ``topk`` anchors of highest IoU (IoU > 0);
   an anchor taken by several GTs goes to the one of highest IoU (ties: lowest GT
   index). Every other anchor is negative (hard label 0, weight 1). Anchors going to an
   ignore GT are ignored.
2. Cleanliness of a positive, from the detector's own (detached) outputs:
   ``c = alpha * loc + (1 - alpha) * cls`` with ``loc`` = IoU of the anchor's decoded
   predicted box with its GT and ``cls`` = sigmoid probability of the GT's class.
3. ``c`` is the positive's soft classification target (instead of 1).
4. Re-weighting of positives (classification and box terms):
   ``r = (alpha * f(loc) + (1 - alpha) * f(cls)) ** gamma`` with ``f(x) = 1 / (1 - x)``
   (x clamped at ``1 - max_score_eps``), rescaled so that the positives of the image
   have mean weight 1 -- cleaner anchors count more.

Defaults alpha = 0.75, gamma = 1 and topk = 50 are our reading of the paper (see
docs/models.md, "Noisy Anchor"). The result is a :class:`SoftLabelAssignment`: the usual
:class:`Assignment` (weights set) plus ``soft_labels``, which the classification term
(:mod:`lla.models.losses.classification`) uses as the positives' targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .base import NEGATIVE, Assigner, AssignInputs, Assignment, register
from .geometry import paired_iou, pairwise_iou
from .matcher import DEFAULT_CHUNK_ELEMENTS, gt_chunks, smallest_k_indices

DEFAULT_TOPK = 50
DEFAULT_ALPHA = 0.75
DEFAULT_GAMMA = 1.0
#: f(x) = 1 / (1 - x) is evaluated at min(x, 1 - MAX_SCORE_EPS) (a perfect box would give inf).
MAX_SCORE_EPS = 1e-6


@dataclass(frozen=True)
class SoftLabelAssignment(Assignment):
    """An :class:`Assignment` whose positives carry soft classification targets.

    Attributes:
        soft_labels: float (J,) target probability of the matched GT's class for positive
            anchors (read only there; 0 elsewhere).
    """

    soft_labels: Tensor | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.soft_labels is not None and (
                self.soft_labels.shape != (self.num_anchors,) or not self.soft_labels.is_floating_point()):
            raise ValueError(f"soft_labels must be floating point of shape ({self.num_anchors},), got "
                             f"{self.soft_labels.dtype} {tuple(self.soft_labels.shape)}")


def cleanliness(loc: Tensor, cls: Tensor, alpha: float) -> Tensor:
    """``alpha * loc + (1 - alpha) * cls`` elementwise (loc = IoU, cls = class probability)."""
    return alpha * loc + (1.0 - alpha) * cls


def reweighting(loc: Tensor, cls: Tensor, alpha: float, gamma: float, *, eps: float = MAX_SCORE_EPS) -> Tensor:
    """Positive weights ``(alpha f(loc) + (1 - alpha) f(cls)) ** gamma``, f(x) = 1 / (1 - x), mean 1.

    Args:
        loc, cls: float (P,) IoU and class probability of P positives of one image.

    Returns:
        float (P,) with mean 1 (empty in, empty out).
    """
    if loc.numel() == 0:
        return loc.clone()
    f_loc = 1.0 / (1.0 - loc.clamp(max=1.0 - eps))
    f_cls = 1.0 / (1.0 - cls.clamp(max=1.0 - eps))
    raw = (alpha * f_loc + (1.0 - alpha) * f_cls).pow(gamma)
    return raw * (raw.numel() / raw.sum())


@register("noisy_anchor")
class NoisyAnchorAssigner(Assigner):
    """Top-N IoU candidates, cleanliness soft labels and re-weighting (module docstring).

    Args (keyword-only):
        topk: positive candidates per GT (highest IoU, IoU > 0).
        alpha: weight of the localisation term in the cleanliness and the re-weighting.
        gamma: exponent of the re-weighting.
        chunk_elements: GT rows x J per IoU block.

    ``num_candidates[j]`` = GTs whose top-N contains anchor j.
    """

    needs_predictions = True

    def __init__(self, *, topk: int = DEFAULT_TOPK, alpha: float = DEFAULT_ALPHA, gamma: float = DEFAULT_GAMMA,
                 chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS):
        if int(topk) != topk or topk < 1:
            raise ValueError(f"topk must be a positive integer, got {topk}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.topk = int(topk)
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.chunk_elements = chunk_elements

    def _assign(self, inputs: AssignInputs) -> SoftLabelAssignment:
        anchors = inputs.anchors
        if anchors.shape[1] != 4:
            raise ValueError("the noisy_anchor assigner needs (J, 4) anchor boxes, not points")
        anchors = anchors.float()
        num_anchors, device = inputs.num_anchors, anchors.device
        k = min(self.topk, num_anchors)
        anchor_parts, gt_parts, iou_parts = [], [], []
        for rows in gt_chunks(inputs.num_gts, num_anchors, self.chunk_elements):
            iou = pairwise_iou(inputs.gt_boxes[rows].float(), anchors)                 # (n, J)
            top = smallest_k_indices(iou.neg(), k)                                      # (n, k)
            top_iou = iou.gather(1, top)
            picked = top_iou > 0
            gt_index = torch.arange(rows.start, rows.stop, device=device)[:, None].expand_as(top)
            anchor_parts.append(top[picked])
            gt_parts.append(gt_index[picked])
            iou_parts.append(top_iou[picked])
        anchor_of, gt_of, iou_of = torch.cat(anchor_parts), torch.cat(gt_parts), torch.cat(iou_parts)
        num_candidates = torch.bincount(anchor_of, minlength=num_anchors)
        # Contested anchors: highest IoU, then lowest GT index.
        best_iou = torch.full((num_anchors,), -1.0, device=device).scatter_reduce(
            0, anchor_of, iou_of, reduce="amax")
        is_best = iou_of == best_iou[anchor_of]
        matched_gt = torch.full((num_anchors,), inputs.num_gts, dtype=torch.int64, device=device)
        matched_gt = matched_gt.scatter_reduce(0, anchor_of[is_best], gt_of[is_best], reduce="amin")
        matched_gt[matched_gt == inputs.num_gts] = NEGATIVE
        weights = torch.ones(num_anchors, device=device)
        soft_labels = torch.zeros(num_anchors, device=device)
        positive = (matched_gt >= 0) & ~inputs.gt_ignore[matched_gt.clamp(min=0)]
        pos = positive.nonzero().squeeze(1)
        if pos.numel():
            gt_of_pos = matched_gt[pos]
            loc = paired_iou(inputs.box_pred[pos].float(), inputs.gt_boxes[gt_of_pos].float())
            cls = torch.sigmoid(inputs.cls_logits[pos, inputs.gt_labels[gt_of_pos]].float())
            soft_labels[pos] = cleanliness(loc, cls, self.alpha)
            weights[pos] = reweighting(loc, cls, self.alpha, self.gamma)
        return SoftLabelAssignment(matched_gt=matched_gt, num_candidates=num_candidates, weights=weights,
                                   soft_labels=soft_labels)
