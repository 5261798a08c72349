"""The classification term: sigmoid focal loss over the non-ignored anchors.

Hard targets (0/1) go through ``torchvision.ops.sigmoid_focal_loss``. Soft targets
(Noisy Anchor: a positive's target is its cleanliness, from
:class:`~lla.assign.noisy_anchor.SoftLabelAssignment`) use the focal loss generalised to
targets in [0, 1], :func:`soft_sigmoid_focal_loss`, which equals torchvision's on 0/1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from .batch import ClassificationRows


def soft_sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float, gamma: float) -> Tensor:
    """Focal loss with targets in [0, 1]: ``t * FL(p, 1) + (1 - t) * FL(p, 0)`` elementwise.

    ``FL(p, 1) = alpha (1 - p)^gamma (-ln p)``, ``FL(p, 0) = (1 - alpha) p^gamma (-ln(1 - p))``;
    equal to torchvision's ``sigmoid_focal_loss`` for 0/1 targets. Any shape in, same shape out.
    """
    p = torch.sigmoid(logits)
    positive = alpha * (1.0 - p).pow(gamma) * -F.logsigmoid(logits)
    negative = (1.0 - alpha) * p.pow(gamma) * -F.logsigmoid(-logits)
    return targets * positive + (1.0 - targets) * negative


def classification_losses(rows: ClassificationRows, alpha: float, gamma: float) -> Tensor:
    """Focal loss of every classification row, summed over classes: (R, C) -> (R,)."""
    if rows.soft:
        losses = soft_sigmoid_focal_loss(rows.logits, rows.targets, alpha, gamma)
    else:
        losses = sigmoid_focal_loss(rows.logits, rows.targets, alpha=alpha, gamma=gamma, reduction="none")
    return losses.sum(1)
