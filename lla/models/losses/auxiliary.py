"""The auxiliary term: BCE of the head's centerness or IoU-branch logit over the positives.

Targets carry no gradient: the FCOS centerness of the anchor point in its GT box
(``head.aux: centerness``), or the IoU of the detached predicted box with its GT
(``head.aux: iou``, LLA.FCOS and PAA's IoU branch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .batch import Positives
from .geometry import centerness_target
from .normalizer import normalized_sum


def auxiliary_loss(kind: str, aux_logits: Tensor | None, positives: Positives, *, scale: float,
                   normalizer: Tensor) -> Tensor:
    """``scale * sum_i w_i BCE(aux_i, target_i) / normalizer`` over the positives -> scalar.

    Args:
        kind: "centerness" or "iou" (the head's ``aux_kind``).
        aux_logits: (N, J) aux logits; None raises (the head has no aux branch).
        positives: the batch's :class:`Positives`.
        scale: ``loss.aux_weight``.
        normalizer: scalar batch normaliser.
    """
    if aux_logits is None:
        raise ValueError(f"aux branch {kind!r} configured but the head gave no aux output")
    with torch.no_grad():
        if kind == "centerness":
            target = centerness_target(positives.centers, positives.gt_boxes)
        else:
            target = positives.pred_iou
    bce = F.binary_cross_entropy_with_logits(aux_logits[positives.image, positives.anchor], target,
                                             reduction="none")
    return normalized_sum(scale, bce, positives.weights, normalizer)
