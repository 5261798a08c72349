"""Per-positive box geometry the loss terms share: the IoU of row pairs and FCOS centerness.

Both keep the autograd graph (the IoU-type box losses differentiate through
:func:`elementwise_iou`); degenerate boxes and points give 0, never NaN.
"""

from __future__ import annotations

import torch
from torch import Tensor

IOU_EPS = torch.finfo(torch.float32).eps


def elementwise_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of row pairs: (P, 4) x (P, 4) xyxy -> (P,); union clamped at float32 eps."""
    wh = (torch.minimum(boxes1[:, 2:], boxes2[:, 2:])
          - torch.maximum(boxes1[:, :2], boxes2[:, :2])).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    area1 = (boxes1[:, 2] - boxes1[:, 0]).clamp(min=0) * (boxes1[:, 3] - boxes1[:, 1]).clamp(min=0)
    area2 = (boxes2[:, 2] - boxes2[:, 0]).clamp(min=0) * (boxes2[:, 3] - boxes2[:, 1]).clamp(min=0)
    return inter / (area1 + area2 - inter).clamp(min=IOU_EPS)


def centerness_target(points: Tensor, gt_boxes: Tensor) -> Tensor:
    """FCOS centerness of points (P, 2) in their GT boxes (P, 4) -> (P,) in [0, 1].

    ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))``; a point outside its box
    (possible with LLA) gets 0.
    """
    left = (points[:, 0] - gt_boxes[:, 0]).clamp(min=0)
    top = (points[:, 1] - gt_boxes[:, 1]).clamp(min=0)
    right = (gt_boxes[:, 2] - points[:, 0]).clamp(min=0)
    bottom = (gt_boxes[:, 3] - points[:, 1]).clamp(min=0)
    lr = torch.minimum(left, right) / torch.maximum(left, right).clamp(min=IOU_EPS)
    tb = torch.minimum(top, bottom) / torch.maximum(top, bottom).clamp(min=IOU_EPS)
    return torch.sqrt(lr * tb)
