"""FCOS assignment with centre sampling and FPN scale ranges (method.md section 4).

A point (x, y) of FPN level l with stride s is a candidate for GT box (x1, y1, x2, y2) when

* spatial: with centre sampling, it lies strictly inside the centre region
  ``[cx - r*s, cx + r*s] x [cy - r*s, cy + r*s]`` clipped to the GT (r = 1.5);
  without, strictly inside the GT box;
* scale: ``lo_l <= max(x - x1, y - y1, x2 - x, y2 - y) <= hi_l`` for the level's
  regression range (-1, 64), (64, 128), (128, 256), (256, 512), (512, inf).

A point with several candidate GTs goes to the one of smallest area (ties: lowest index).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .base import NEGATIVE, Assigner, AssignInputs, Assignment, register
from .geometry import box_areas, box_centers
from .matcher import DEFAULT_CHUNK_ELEMENTS, gt_chunks

CENTER_SAMPLING_RADIUS = 1.5
REGRESSION_RANGES = ((-1.0, 64.0), (64.0, 128.0), (128.0, 256.0), (256.0, 512.0), (512.0, math.inf))


@register("fcos")
class FCOSAssigner(Assigner):
    """FCOS point assignment.

    Args (keyword-only):
        center_sampling: restrict candidates to the centre region (True) or the whole box.
        center_sampling_radius: r, in strides.
        regression_ranges: (lo, hi) per FPN level, as many as levels.
        chunk_elements: GT rows x J per block (None = all at once); result identical.

    ``assign`` needs ``num_anchors_per_level`` and ``strides``. Anchor boxes are reduced to
    their centres. ``num_candidates[j]`` = GTs satisfying both constraints.
    """

    needs_levels = True

    def __init__(self, *, center_sampling: bool = True, center_sampling_radius: float = CENTER_SAMPLING_RADIUS,
                 regression_ranges: Sequence[Sequence[float]] = REGRESSION_RANGES,
                 chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS):
        ranges = tuple((float(lo), float(hi)) for lo, hi in regression_ranges)
        if any(lo >= hi for lo, hi in ranges):
            raise ValueError(f"every regression range needs lo < hi, got {ranges}")
        if center_sampling_radius <= 0:
            raise ValueError(f"center_sampling_radius must be > 0, got {center_sampling_radius}")
        self.center_sampling = center_sampling
        self.center_sampling_radius = float(center_sampling_radius)
        self.regression_ranges = ranges
        self.chunk_elements = chunk_elements

    def _assign(self, inputs: AssignInputs) -> Assignment:
        levels = inputs.require_levels()
        if len(levels) != len(self.regression_ranges):
            raise ValueError(f"{len(levels)} FPN levels but {len(self.regression_ranges)} regression ranges")
        device = inputs.anchors.device
        points = box_centers(inputs.anchors.float())
        level = inputs.level_of_anchor()
        stride = torch.tensor(inputs.require_strides(), device=device)[level]  # (J,)
        ranges = torch.tensor(self.regression_ranges, device=device)[level]  # (J, 2)
        x, y = points[None, :, 0], points[None, :, 1]
        radius = stride[None, :] * self.center_sampling_radius
        gt_boxes = inputs.gt_boxes.float()
        gt_areas = box_areas(gt_boxes)

        num_anchors = inputs.num_anchors
        best_area = torch.full((num_anchors,), math.inf, device=device)
        best_gt = torch.zeros(num_anchors, dtype=torch.int64, device=device)
        num_candidates = torch.zeros(num_anchors, dtype=torch.int64, device=device)
        for rows in gt_chunks(inputs.num_gts, num_anchors, self.chunk_elements):
            boxes = gt_boxes[rows]
            x1, y1, x2, y2 = (boxes[:, k, None] for k in range(4))
            left, top, right, bottom = x - x1, y - y1, x2 - x, y2 - y  # (n, J) regression targets
            max_side = torch.maximum(torch.maximum(left, top), torch.maximum(right, bottom))
            candidate = (max_side >= ranges[None, :, 0]) & (max_side <= ranges[None, :, 1])
            if self.center_sampling:
                centers = box_centers(boxes)
                cx, cy = centers[:, 0, None], centers[:, 1, None]
                region_x1 = torch.maximum(cx - radius, x1)
                region_y1 = torch.maximum(cy - radius, y1)
                region_x2 = torch.minimum(cx + radius, x2)
                region_y2 = torch.minimum(cy + radius, y2)
                candidate &= (x - region_x1 > 0) & (y - region_y1 > 0) & (region_x2 - x > 0) & (region_y2 - y > 0)
            else:
                candidate &= (left > 0) & (top > 0) & (right > 0) & (bottom > 0)
            num_candidates += candidate.sum(dim=0)
            area = torch.where(candidate, gt_areas[rows, None], math.inf)
            block_area, block_gt = area.min(dim=0)
            improved = block_area < best_area  # strict: earlier GT keeps ties
            best_area = torch.where(improved, block_area, best_area)
            best_gt = torch.where(improved, block_gt + rows.start, best_gt)
        matched_gt = torch.where(num_candidates > 0, best_gt, torch.full_like(best_gt, NEGATIVE))
        return Assignment(matched_gt=matched_gt, num_candidates=num_candidates)
