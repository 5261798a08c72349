"""The dense prediction head shared by RetinaNet and FCOS variants.

Two towers (classification, box) of ``num_convs`` x [conv3x3 -> norm -> ReLU], shared
over the FPN levels, then:

* ``cls``: A*C logits per location (bias initialised to the prior probability);
* ``box``: A*4 outputs per location, multiplied by a learnable per-level scale.
  ``box_output="deltas"`` returns RetinaNet box-coder deltas; ``"ltrb"`` returns FCOS
  distances ``act(scale * conv) * stride`` in pixels, ``act`` being ``relu`` (the released
  FCOS / LLA code) or ``exp`` (the FCOS paper's form; a side never gets stuck at zero);
* ``aux`` (optional): A logits per location on the box tower -- FCOS centerness or
  the IoU branch (PAA / LLA.FCOS).

Convolutions are initialised N(0, 0.01) with zero bias (the paper's recipe).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lla.models.backbone import norm_layer

AUX_KINDS = (None, "centerness", "iou")
BOX_OUTPUTS = ("deltas", "ltrb")
LTRB_ACTIVATIONS = ("relu", "exp")
# exp(x) is capped at x = 10, so a runaway output gives a huge but finite side (e^10 strides,
# far past any image) instead of inf, which would turn the IoU losses into NaN.
MAX_LOG_DISTANCE = 10.0


class Scale(nn.Module):
    """A learnable scalar multiplier (one per FPN level)."""

    def __init__(self, init: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


@dataclass
class HeadOutputs:
    """Head outputs flattened over levels, locations and anchors (see ``lla.models.anchors``).

    Attributes:
        cls_logits: (N, J, C).
        box: (N, J, 4) deltas (``box_output="deltas"``) or ltrb distances in pixels.
        aux: (N, J) logits of the centerness / IoU branch, or None.
    """

    cls_logits: Tensor
    box: Tensor
    aux: Tensor | None


def flatten_level(x: Tensor, per_anchor: int) -> Tensor:
    """(N, A*K, H, W) -> (N, H*W*A, K) with the order location -> anchor."""
    n, _, h, w = x.shape
    return x.view(n, -1, per_anchor, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, per_anchor)


class DenseHead(nn.Module):
    """Args:
        in_channels: FPN width (= tower width).
        num_classes: C (1 here: person).
        num_anchors: A per location.
        strides: stride of each level (used for FCOS ltrb and for the number of scales).
        num_convs: convolutions per tower (4 in the paper).
        norm: "gn", "bn" or "none" inside the towers.
        gn_groups: GroupNorm groups (must divide ``in_channels``).
        box_output: "deltas" or "ltrb".
        ltrb_activation: "relu" or "exp" on the scaled ltrb output (``box_output="ltrb"``).
            With relu a side whose output turns negative everywhere gets no gradient and
            stays at zero for good; exp cannot die.
        aux: None, "centerness" or "iou".
        prior_prob: initial foreground probability of every class logit (0.01).
        per_level_scale: learnable scale per level on the box output.
        init_std: standard deviation of the conv weight init.
    """

    def __init__(self, *, in_channels: int, num_classes: int, num_anchors: int,
                 strides: Sequence[int], num_convs: int = 4, norm: str = "gn", gn_groups: int = 32,
                 box_output: str = "ltrb", ltrb_activation: str = "relu", aux: str | None = None,
                 prior_prob: float = 0.01, per_level_scale: bool = True, init_std: float = 0.01):
        super().__init__()
        if box_output not in BOX_OUTPUTS:
            raise ValueError(f"box_output must be one of {BOX_OUTPUTS}, got {box_output!r}")
        if ltrb_activation not in LTRB_ACTIVATIONS:
            raise ValueError(f"ltrb_activation must be one of {LTRB_ACTIVATIONS}, got {ltrb_activation!r}")
        if aux not in AUX_KINDS:
            raise ValueError(f"aux must be one of {AUX_KINDS}, got {aux!r}")
        if not 0.0 < prior_prob < 1.0:
            raise ValueError(f"prior_prob must lie in (0, 1), got {prior_prob}")
        self.num_classes = num_classes
        self.num_anchors = num_anchors
        self.strides = tuple(int(s) for s in strides)
        self.box_output = box_output
        self.ltrb_activation = ltrb_activation
        self.aux_kind = aux

        def tower() -> nn.Sequential:
            layers: list[nn.Module] = []
            for _ in range(num_convs):
                layers += [nn.Conv2d(in_channels, in_channels, 3, 1, 1),
                           norm_layer(norm, in_channels, gn_groups), nn.ReLU(inplace=True)]
            return nn.Sequential(*layers)

        self.cls_tower = tower()
        self.box_tower = tower()
        self.cls_logits = nn.Conv2d(in_channels, num_anchors * num_classes, 3, 1, 1)
        self.box_pred = nn.Conv2d(in_channels, num_anchors * 4, 3, 1, 1)
        self.aux_pred = (nn.Conv2d(in_channels, num_anchors, 3, 1, 1) if aux is not None
                         else None)
        self.scales = nn.ModuleList(Scale(1.0) if per_level_scale else nn.Identity()
                                    for _ in self.strides)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=init_std)
                nn.init.zeros_(m.bias)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, features: Sequence[Tensor]) -> HeadOutputs:
        """``features``: [P3..P7], each (N, in_channels, H_l, W_l). Returns :class:`HeadOutputs`."""
        if len(features) != len(self.strides):
            raise ValueError(f"head built for {len(self.strides)} levels, got {len(features)}")
        cls_all, box_all, aux_all = [], [], []
        for feat, scale, stride in zip(features, self.scales, self.strides):
            cls_feat = self.cls_tower(feat)
            box_feat = self.box_tower(feat)
            box = scale(self.box_pred(box_feat))
            if self.box_output == "ltrb":
                box = (torch.relu(box) if self.ltrb_activation == "relu"
                       else torch.exp(box.clamp(max=MAX_LOG_DISTANCE))) * stride
            cls_all.append(flatten_level(self.cls_logits(cls_feat), self.num_classes))
            box_all.append(flatten_level(box, 4))
            if self.aux_pred is not None:
                aux_all.append(flatten_level(self.aux_pred(box_feat), 1).squeeze(-1))
        return HeadOutputs(cls_logits=torch.cat(cls_all, dim=1), box=torch.cat(box_all, dim=1),
                           aux=torch.cat(aux_all, dim=1) if aux_all else None)
