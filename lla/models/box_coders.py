"""Box parametrisations of the head's box output.

* :class:`DeltaBoxCoder` -- RetinaNet: (dx, dy, dw, dh) relative to an anchor box,
  torchvision's ``BoxCoder`` semantics (weights, exp clamp at log(1000/16)).
* :class:`LTRBBoxCoder` -- FCOS: distances (left, top, right, bottom) in pixels from
  an anchor point to the four sides.

Both take the anchors as (J, 4) xyxy boxes (anchor points as degenerate boxes) and
work row by row: ``decode(box_out[j], anchors[j])``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.models.detection._utils import BoxCoder

DEFAULT_DELTA_CLIP = math.log(1000.0 / 16)


class DeltaBoxCoder:
    def __init__(self, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
                 clip: float = DEFAULT_DELTA_CLIP):
        self._coder = BoxCoder(tuple(float(w) for w in weights), bbox_xform_clip=clip)

    def decode(self, deltas: Tensor, anchors: Tensor) -> Tensor:
        """deltas (J, 4), anchors (J, 4) xyxy -> boxes (J, 4) xyxy."""
        return self._coder.decode_single(deltas, anchors)

    def encode(self, gt_boxes: Tensor, anchors: Tensor) -> Tensor:
        """gt_boxes (J, 4), anchors (J, 4) xyxy -> regression targets (J, 4)."""
        return self._coder.encode_single(gt_boxes, anchors)


class LTRBBoxCoder:
    def decode(self, ltrb: Tensor, anchors: Tensor) -> Tensor:
        """ltrb (J, 4) pixel distances, anchors (J, 4) (point = centre) -> boxes (J, 4) xyxy."""
        cx = (anchors[:, 0] + anchors[:, 2]) / 2
        cy = (anchors[:, 1] + anchors[:, 3]) / 2
        return torch.stack((cx - ltrb[:, 0], cy - ltrb[:, 1], cx + ltrb[:, 2], cy + ltrb[:, 3]), dim=1)

    def encode(self, gt_boxes: Tensor, anchors: Tensor) -> Tensor:
        """gt_boxes (J, 4), anchors (J, 4) -> ltrb (J, 4); negative where the point is outside."""
        cx = (anchors[:, 0] + anchors[:, 2]) / 2
        cy = (anchors[:, 1] + anchors[:, 3]) / 2
        return torch.stack((cx - gt_boxes[:, 0], cy - gt_boxes[:, 1],
                            gt_boxes[:, 2] - cx, gt_boxes[:, 3] - cy), dim=1)


def build_box_coder(box_output: str, cfg: dict | None = None):
    """The coder matching the head's ``box_output`` ("deltas" or "ltrb")."""
    cfg = cfg or {}
    if box_output == "deltas":
        return DeltaBoxCoder(weights=cfg.get("weights", (1.0, 1.0, 1.0, 1.0)),
                             clip=cfg.get("clip", DEFAULT_DELTA_CLIP))
    if box_output == "ltrb":
        return LTRBBoxCoder()
    raise ValueError(f"unknown box_output {box_output!r} (known: deltas, ltrb)")
