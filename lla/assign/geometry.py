"""Box geometry shared by the assigners.

Pairwise functions return (N, M) matrices without the (N, M, 2) temporaries of
``torchvision.ops.box_iou`` (at 500 GTs x 211k anchors one such temporary is 844 MB),
and clamp the union at float32 eps so that degenerate boxes (zero width or height,
point anchors) give IoU 0 instead of NaN. On ordinary boxes they agree with
``torchvision.ops.box_iou`` / ``generalized_box_iou`` (tested).

Every function is elementwise over (row, column) pairs, so evaluating a block of rows
gives bit-for-bit the rows of the full matrix; the chunked assigners rely on that.
"""

from __future__ import annotations

import torch
from torch import Tensor

FLOAT32_EPS = torch.finfo(torch.float32).eps
#: A point is inside a box when its distance to every side exceeds this (pixels),
#: as in the released LLA code and the original ATSS code.
INSIDE_MARGIN = 0.01


def box_centers(anchors: Tensor) -> Tensor:
    """(J, 2) centres of (J, 4) xyxy boxes; (J, 2) points are returned as they are.

    The centre of a degenerate box (x1 = x2) is exactly x1: (x + x) / 2 is exact.
    """
    if anchors.shape[-1] == 2:
        return anchors
    return torch.stack(((anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] + anchors[:, 3]) / 2), dim=1)


def box_areas(boxes: Tensor) -> Tensor:
    """(...) areas of (..., 4) xyxy boxes, negative extents counted as 0."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def _intersection_and_union(boxes1: Tensor, boxes2: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Intersection areas and unions (clamped at ``eps``) of broadcast (..., 4) box tensors.

    The one sequence of float operations behind every IoU here: pairwise (N, 1, 4) x
    (1, M, 4) and gathered pairs (P, 4) x (P, 4) give bit-identical values for a pair.
    """
    left = torch.maximum(boxes1[..., 0], boxes2[..., 0])
    width = torch.minimum(boxes1[..., 2], boxes2[..., 2]).sub_(left).clamp_(min=0)
    top = torch.maximum(boxes1[..., 1], boxes2[..., 1], out=left)
    height = torch.minimum(boxes1[..., 3], boxes2[..., 3]).sub_(top).clamp_(min=0)
    inter = width.mul_(height)
    union = torch.add(box_areas(boxes1), box_areas(boxes2), out=height)
    union.sub_(inter).clamp_(min=eps)
    return inter, union


def paired_iou(boxes1: Tensor, boxes2: Tensor, *, eps: float = FLOAT32_EPS) -> Tensor:
    """IoU of broadcast (..., 4) xyxy box tensors -> (...), union clamped at ``eps``."""
    inter, union = _intersection_and_union(boxes1, boxes2, eps)
    return inter.div_(union)


def paired_giou(boxes1: Tensor, boxes2: Tensor, *, eps: float = FLOAT32_EPS) -> Tensor:
    """Generalized IoU of broadcast (..., 4) xyxy box tensors -> (...).

    GIoU = IoU - (enclosure - union) / enclosure, union and enclosure clamped at eps.
    """
    inter, union = _intersection_and_union(boxes1, boxes2, eps)
    iou = inter.div_(union)
    enclose_w = torch.maximum(boxes1[..., 2], boxes2[..., 2]).sub_(torch.minimum(boxes1[..., 0], boxes2[..., 0]))
    enclose_h = torch.maximum(boxes1[..., 3], boxes2[..., 3]).sub_(torch.minimum(boxes1[..., 1], boxes2[..., 1]))
    enclosure = enclose_w.mul_(enclose_h).clamp_(min=eps)
    return iou.sub_(torch.sub(enclosure, union, out=union).div_(enclosure))


def pairwise_iou(boxes1: Tensor, boxes2: Tensor, *, eps: float = FLOAT32_EPS) -> Tensor:
    """IoU of every pair: (N, 4) x (M, 4) xyxy -> (N, M), union clamped at ``eps``."""
    return paired_iou(boxes1[:, None, :], boxes2[None, :, :], eps=eps)


def pairwise_giou(boxes1: Tensor, boxes2: Tensor, *, eps: float = FLOAT32_EPS) -> Tensor:
    """Generalized IoU of every pair: (N, 4) x (M, 4) xyxy -> (N, M)."""
    return paired_giou(boxes1[:, None, :], boxes2[None, :, :], eps=eps)


def paired_inside(points: Tensor, boxes: Tensor, *, margin: float = INSIDE_MARGIN) -> Tensor:
    """bool (...): min(x - x1, y - y1, x2 - x, y2 - y) > margin for broadcast (..., 2) points, (..., 4) boxes."""
    x, y = points[..., 0], points[..., 1]
    inside = (x - boxes[..., 0]) > margin
    inside &= (y - boxes[..., 1]) > margin
    inside &= (boxes[..., 2] - x) > margin
    inside &= (boxes[..., 3] - y) > margin
    return inside


def points_inside_boxes(points: Tensor, boxes: Tensor, *, margin: float = INSIDE_MARGIN) -> Tensor:
    """bool (N, J): point j (of (J, 2)) lies inside box i (of (N, 4)) by more than ``margin``."""
    return paired_inside(points[None, :, :], boxes[:, None, :], margin=margin)


def square_boxes_around(points: Tensor, sides: Tensor) -> Tensor:
    """(J, 4) xyxy squares of side ``sides`` (J,) centred on ``points`` (J, 2)."""
    half = sides / 2
    return torch.stack((points[:, 0] - half, points[:, 1] - half, points[:, 0] + half, points[:, 1] + half), dim=1)
