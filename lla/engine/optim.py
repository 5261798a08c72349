"""Optimizer construction: SGD (the paper) with separate weight decay for norm and bias params.

Parameters are split into three groups, each with its own weight decay from the
``train.optimizer`` block:

* ``norm``: weights and biases of normalisation layers (GroupNorm, BatchNorm, LayerNorm,
  ...), decay ``norm_weight_decay`` (the paper: none on norm layers);
* ``bias``: the biases of every other layer, decay ``bias_weight_decay``;
* ``default``: everything else (conv/linear weights, the FCOS per-level scales), decay
  ``weight_decay``.

Frozen parameters (``requires_grad=False``: a frozen stem/stage, FrozenBatchNorm
buffers) are left out. Empty groups are dropped so the optimizer state stays minimal.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adamw")
# Module types whose parameters count as normalisation parameters.
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


def split_parameters(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Trainable parameters grouped as ``{"default", "norm", "bias"}`` (see module doc).

    Every trainable parameter lands in exactly one group, in ``model.parameters()`` order.
    """
    groups: dict[str, list[nn.Parameter]] = {"default": [], "norm": [], "bias": []}
    seen: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if isinstance(module, NORM_TYPES):
                groups["norm"].append(param)
            elif name == "bias":
                groups["bias"].append(param)
            else:
                groups["default"].append(param)
    return groups


def build_optimizer(model: nn.Module, cfg: dict[str, Any], lr: float) -> torch.optim.Optimizer:
    """The optimizer of ``train.optimizer`` at learning rate ``lr``.

    ``cfg`` keys: ``name`` (sgd | adamw), ``weight_decay``, ``norm_weight_decay``,
    ``bias_weight_decay``; SGD: ``momentum``; AdamW: ``betas`` (optional).
    """
    name = cfg.get("name", "sgd")
    if name not in OPTIMIZERS:
        raise ValueError(f"train.optimizer.name must be one of {OPTIMIZERS}, got {name!r}")
    decay = {"default": float(cfg["weight_decay"]),
             "norm": float(cfg.get("norm_weight_decay", 0.0)),
             "bias": float(cfg.get("bias_weight_decay", cfg["weight_decay"]))}
    param_groups = [{"params": params, "weight_decay": decay[group], "group": group}
                    for group, params in split_parameters(model).items() if params]
    if not param_groups:
        raise ValueError("the model has no trainable parameters")
    if name == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=float(cfg["momentum"]))
    betas = tuple(float(b) for b in cfg.get("betas", (0.9, 0.999)))
    return torch.optim.AdamW(param_groups, lr=lr, betas=betas)
