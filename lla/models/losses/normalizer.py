"""The batch normalisers of the loss terms, with ONE all-reduce per batch under DDP.

Every term is ``scale * sum(weight_i * loss_i) / normaliser`` (:func:`normalized_sum`).
The normaliser is this rank's count (positives, or positives plus anchors matched to
ignore GTs, or FreeAnchor's GTs) averaged over the ranks and clamped at >= 1. A weighted
box term may divide by the batch's sum of its weights instead; that sum then rides in the
same all-reduce as the count (:func:`batch_normalizers`).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

# Lower bound of a weight-sum normaliser (a batch without positives gives 0 / bound = 0).
MIN_WEIGHT_SUM = 1e-6


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
    """The count ``count`` (scalar) averaged over ranks, clamped at >= 1."""
    return mean_over_ranks(count).clamp(min=1.0)


def batch_normalizers(count: Tensor, weight_sum: Tensor | None) -> tuple[Tensor, Tensor]:
    """(normaliser, box normaliser) of one batch from one all-reduce.

    Args:
        count: scalar, this rank's count (see the module docstring).
        weight_sum: scalar, this rank's sum of the box-term weights, or None when the box
            term divides by the normaliser too.

    Returns:
        Two scalars: the count averaged over ranks (>= 1), and the weight sum averaged over
        ranks (>= ``MIN_WEIGHT_SUM``), or the first again when ``weight_sum`` is None.
    """
    if weight_sum is None:
        normalizer = batch_normalizer(count)
        return normalizer, normalizer
    normalizer, total = mean_over_ranks(torch.stack((count.float(), weight_sum)))
    return normalizer.clamp(min=1.0), total.clamp(min=MIN_WEIGHT_SUM)


def normalized_sum(scale: float, losses: Tensor, weights: Tensor, normalizer: Tensor) -> Tensor:
    """``scale * sum(losses * weights) / normalizer`` over (K,) per-anchor losses and weights -> scalar."""
    return scale * (losses * weights).sum() / normalizer
