"""Inference post-processing (method spec section 3).

Per image and per FPN level: p = sigmoid(cls); keep the ``topk_per_level`` largest
p; keep p > ``score_thresh`` (the threshold is on p, before fusion with the aux
branch); decode only the kept anchors; score = sqrt(p * sigmoid(aux)) when the head
has a centerness / IoU branch, else p. Then, over all levels, class-aware NMS
(``torchvision.ops.batched_nms``), keep ``detections_per_image``, rescale from the
network input to the original image and clip to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import batched_nms, clip_boxes_to_image


@dataclass(frozen=True)
class PostprocessConfig:
    """The ``inference`` block of a variant (all thresholds come from params.yaml)."""

    score_thresh: float = 0.05
    topk_per_level: int = 1000
    nms_thresh: float = 0.5
    detections_per_image: int = 300

    def __post_init__(self) -> None:
        if self.topk_per_level < 1 or self.detections_per_image < 1:
            raise ValueError("inference.topk_per_level and detections_per_image must be >= 1")
        if not 0.0 <= self.nms_thresh <= 1.0:
            raise ValueError(f"inference.nms_thresh must lie in [0, 1], got {self.nms_thresh}")


def postprocess_image(*, cls_logits: Tensor, box_out: Tensor, aux_logits: Tensor | None,
                      anchors: Tensor, num_per_level: Sequence[int], box_coder,
                      image_size: tuple[int, int], original_size: tuple[int, int] | None,
                      cfg: PostprocessConfig,
                      scale: tuple[float, float] | None = None) -> dict[str, Tensor]:
    """Detections of one image.

    Args:
        cls_logits: (J, C) class logits, levels concatenated.
        box_out: (J, 4) raw box output (deltas or ltrb).
        aux_logits: (J,) centerness / IoU-branch logits, or None (score = p).
        anchors: (J, 4) xyxy anchors (points as degenerate boxes).
        num_per_level: anchors per level (sums to J).
        box_coder: decodes ``box_out`` rows against ``anchors`` rows.
        image_size: (h, w) of the image in the network input (before padding).
        original_size: (h, w) of the original image; None keeps input coordinates.
        scale: (sx, sy) = resized / original size per axis, exact (the dataset's ``scale``);
            None derives it from the two (rounded) sizes.

    Returns:
        {"boxes": (D, 4) xyxy in original-image pixels, "scores": (D,), "labels": (D,) int64},
        sorted by decreasing score, D <= ``cfg.detections_per_image``.
    """
    num_classes = cls_logits.shape[1]
    all_boxes, all_scores, all_labels = [], [], []
    start = 0
    for count in num_per_level:
        stop = start + count
        probs = torch.sigmoid(cls_logits[start:stop]).flatten()            # (count*C,)
        top_p, top_idx = probs.topk(min(cfg.topk_per_level, probs.numel()))
        keep = top_p > cfg.score_thresh
        top_p, top_idx = top_p[keep], top_idx[keep]
        anchor_idx = torch.div(top_idx, num_classes, rounding_mode="floor") + start
        labels = top_idx % num_classes
        boxes = box_coder.decode(box_out[anchor_idx], anchors[anchor_idx])
        scores = top_p
        if aux_logits is not None:
            scores = torch.sqrt(top_p * torch.sigmoid(aux_logits[anchor_idx]))
        all_boxes.append(boxes)
        all_scores.append(scores)
        all_labels.append(labels)
        start = stop

    boxes = clip_boxes_to_image(torch.cat(all_boxes), tuple(image_size))
    scores, labels = torch.cat(all_scores), torch.cat(all_labels)
    keep = batched_nms(boxes, scores, labels, cfg.nms_thresh)[:cfg.detections_per_image]
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    if original_size is not None:
        if scale is None:
            scale = (image_size[1] / original_size[1], image_size[0] / original_size[0])
        sx, sy = float(scale[0]), float(scale[1])
        boxes = boxes / boxes.new_tensor([sx, sy, sx, sy])
        boxes = clip_boxes_to_image(boxes, tuple(original_size))
    return {"boxes": boxes, "scores": scores, "labels": labels}
