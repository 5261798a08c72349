"""Anchor boxes and anchor points over the FPN levels.

Every dense detector here predicts, for each location of each level, A anchors
(A = 9 or 1 for RetinaNet, A = 1 for point-based FCOS). All tensors that describe
"one row per anchor" use the same flattening as the head outputs:

    level (P3 first) -> row y -> column x -> anchor a

so row ``j`` of the anchors, of the flattened class logits and of the flattened
box outputs always refer to the same anchor.

Locations sit at ``(x * stride, y * stride)`` with no half-stride offset (the
authors' code does the same). Strides are explicit: torchvision's
``AnchorGenerator`` infers them as ``image_size // grid_size``, which is wrong
whenever the padded size is not a multiple of 128.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Anchors:
    """The anchors of one padded batch (identical for every image of the batch).

    Attributes:
        boxes: (J, 4) float xyxy in input-image pixels. For anchor points the box is
            degenerate (x, y, x, y).
        centers: (J, 2) float (x, y) of the anchor point / anchor-box centre.
        strides: (J,) float, the stride of each anchor's level.
        levels: (J,) long, the level index (0 = P3).
        num_per_level: anchors per level (sums to J).
        level_strides: stride of each level.
        is_point: True for anchor points (FCOS family), False for anchor boxes.
    """

    boxes: Tensor
    centers: Tensor
    strides: Tensor
    levels: Tensor
    num_per_level: tuple[int, ...]
    level_strides: tuple[int, ...]
    is_point: bool

    def __len__(self) -> int:
        return self.boxes.shape[0]


def grid_centers(height: int, width: int, stride: int, *, device=None,
                 dtype=torch.float32) -> Tensor:
    """Centres of an ``height x width`` feature map: (height*width, 2) (x, y), row-major.

    Centre of cell (y, x) is ``(x * stride, y * stride)``.
    """
    xs = torch.arange(width, device=device, dtype=dtype) * stride
    ys = torch.arange(height, device=device, dtype=dtype) * stride
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((xx.reshape(-1), yy.reshape(-1)), dim=1)


def cell_anchor_shapes(stride: int, base_size_per_stride: float, scales: Sequence[float],
                       aspect_ratios: Sequence[float]) -> Tensor:
    """Anchor boxes of one location centred at the origin: (A, 4) xyxy, A = len(ratios)*len(scales).

    Side of the square anchor = ``base_size_per_stride * stride * scale``; an aspect
    ratio ``r = h / w`` keeps the area: ``w = side / sqrt(r)``, ``h = side * sqrt(r)``.
    Order: ratio outer, scale inner (the head's A channels follow the same order).
    """
    shapes = []
    for ratio in aspect_ratios:
        for scale in scales:
            side = base_size_per_stride * stride * scale
            w = side / math.sqrt(ratio)
            h = side * math.sqrt(ratio)
            shapes.append((-w / 2, -h / 2, w / 2, h / 2))
    return torch.tensor(shapes, dtype=torch.float32)


class AnchorGenerator:
    """Builds :class:`Anchors` from the feature-map sizes of P3..P7.

    Args:
        strides: stride of each level, e.g. (8, 16, 32, 64, 128).
        kind: "box" (RetinaNet-style anchor boxes) or "point" (FCOS-style points).
        base_size_per_stride: anchor side in units of the level stride (4 for RetinaNet).
        scales: octave scales, e.g. (1, 2**(1/3), 2**(2/3)); (1,) for A = 1.
        aspect_ratios: h / w ratios, e.g. (0.5, 1, 2); (1,) for A = 1.
    """

    def __init__(self, *, strides: Sequence[int], kind: str = "box",
                 base_size_per_stride: float = 4.0, scales: Sequence[float] = (1.0,),
                 aspect_ratios: Sequence[float] = (1.0,)):
        if kind not in ("box", "point"):
            raise ValueError(f"anchor kind must be 'box' or 'point', got {kind!r}")
        if kind == "point" and (len(scales) != 1 or len(aspect_ratios) != 1):
            raise ValueError("anchor points have one anchor per location: "
                             "scales and aspect_ratios must have one entry each")
        if any(r <= 0 for r in aspect_ratios) or any(s <= 0 for s in scales):
            raise ValueError("anchor scales and aspect ratios must be positive")
        self.strides = tuple(int(s) for s in strides)
        self.kind = kind
        self.base_size_per_stride = float(base_size_per_stride)
        self.scales = tuple(float(s) for s in scales)
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)

    @property
    def num_anchors_per_location(self) -> int:
        return len(self.scales) * len(self.aspect_ratios)

    def __call__(self, feature_sizes: Sequence[tuple[int, int]], *, device=None) -> Anchors:
        """``feature_sizes``: (H_l, W_l) per level, P3 first. Returns the anchors of all levels."""
        if len(feature_sizes) != len(self.strides):
            raise ValueError(f"{len(feature_sizes)} feature maps for {len(self.strides)} strides")
        boxes, centers, strides, levels, counts = [], [], [], [], []
        for level, ((h, w), stride) in enumerate(zip(feature_sizes, self.strides)):
            ctr = grid_centers(h, w, stride, device=device)                      # (HW, 2)
            if self.kind == "point":
                cell = torch.zeros(1, 4, device=device)
            else:
                cell = cell_anchor_shapes(stride, self.base_size_per_stride, self.scales,
                                          self.aspect_ratios).to(device)          # (A, 4)
            num_a = cell.shape[0]
            ctr_rep = ctr.repeat_interleave(num_a, dim=0)                       # (HW*A, 2)
            level_boxes = (ctr[:, None, :].repeat(1, 1, 2) + cell[None]).reshape(-1, 4)
            boxes.append(level_boxes)
            centers.append(ctr_rep)
            strides.append(torch.full((ctr_rep.shape[0],), float(stride), device=device))
            levels.append(torch.full((ctr_rep.shape[0],), level, dtype=torch.long, device=device))
            counts.append(ctr_rep.shape[0])
        return Anchors(boxes=torch.cat(boxes), centers=torch.cat(centers),
                       strides=torch.cat(strides), levels=torch.cat(levels),
                       num_per_level=tuple(counts), level_strides=self.strides,
                       is_point=self.kind == "point")
