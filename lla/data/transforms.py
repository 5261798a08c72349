"""Geometric transforms of the training input: resize, horizontal flip, clip, with their boxes.

Conventions: images are tensors (C, H, W); boxes are float tensors (N, 4) in xyxy pixel
coordinates with continuous extents (a box covering the whole W×H image is
``[0, 0, W, H]``), so a horizontal flip maps ``x`` to ``W - x``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def resize_scale(height: int, width: int, *, min_size: int, max_size: int) -> float:
    """Factor that brings the short side to ``min_size`` unless the long side then exceeds
    ``max_size``, in which case the long side is brought to ``max_size`` (paper: 800/1400)."""
    if min(height, width) <= 0:
        raise ValueError(f"image size must be positive, got {height}×{width}")
    return min(min_size / min(height, width), max_size / max(height, width))


def resized_size(height: int, width: int, *, min_size: int, max_size: int) -> tuple[int, int]:
    """``(new_height, new_width)`` after :func:`resize_scale`, rounded to whole pixels (≥ 1).

    Rounding (not flooring) keeps the short side at exactly ``min_size`` when
    ``short · (min_size / short)`` lands a hair below the integer in floating point.
    """
    scale = resize_scale(height, width, min_size=min_size, max_size=max_size)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_image(image: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear (antialiased) resize of a (C, H, W) uint8 or float image to ``size`` = (H', W')."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    from torchvision.transforms.v2 import functional as F

    return F.resize(image, list(size), antialias=True)


def scale_boxes(boxes: Tensor, scale_x: float, scale_y: float) -> Tensor:
    """(N, 4) xyxy boxes multiplied by ``scale_x`` along x and ``scale_y`` along y."""
    factors = torch.tensor([scale_x, scale_y, scale_x, scale_y], dtype=boxes.dtype)
    return boxes * factors


def hflip_boxes(boxes: Tensor, width: int) -> Tensor:
    """(N, 4) xyxy boxes mirrored in an image of ``width``: x1' = W − x2, x2' = W − x1."""
    flipped = boxes.clone()
    flipped[:, 0] = width - boxes[:, 2]
    flipped[:, 2] = width - boxes[:, 0]
    return flipped


def clip_boxes(boxes: Tensor, height: int, width: int) -> Tensor:
    """(N, 4) xyxy boxes clamped to ``[0, width] × [0, height]``."""
    from torchvision.ops import clip_boxes_to_image

    return clip_boxes_to_image(boxes, (height, width))


def nonempty(boxes: Tensor) -> Tensor:
    """(N,) bool: boxes with positive width and height."""
    return (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
