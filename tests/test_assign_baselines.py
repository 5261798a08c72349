"""Max-IoU (RetinaNet), FCOS and ATSS assigners, and the shared Assignment/registry."""

import math

import pytest
import torch

from lla.assign import (IGNORED, NEGATIVE, ATSSAssigner, Assignment, FCOSAssigner, MaxIoUAssigner,
                        available_assigners, build_assigner, register)
from lla.assign.base import Assigner

NO_IGNORE = torch.tensor([False])


# ----------------------------------------------------------------------------- max-IoU

def test_max_iou_thresholds_by_hand():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0],    # IoU 1.0  -> positive
                            [0.0, 0.0, 10.0, 5.0],     # IoU 0.5  -> positive (>= 0.5)
                            [0.0, 0.0, 10.0, 4.5],     # IoU 0.45 -> between: ignored
                            [0.0, 0.0, 10.0, 3.9],     # IoU 0.39 -> negative
                            [50.0, 50.0, 60.0, 60.0]])  # IoU 0   -> negative
    result = MaxIoUAssigner().assign(anchors, gt, NO_IGNORE)
    assert result.matched_gt.tolist() == [0, 0, IGNORED, NEGATIVE, NEGATIVE]
    assert result.num_candidates.tolist() == [1, 1, 0, 0, 0]
    assert result.ignore_mask(NO_IGNORE).tolist() == [False, False, True, False, False]
    # Configurable thresholds: 0.45 now positive.
    assert MaxIoUAssigner(pos_iou_thr=0.45, neg_iou_thr=0.3).assign(anchors, gt, NO_IGNORE).matched_gt.tolist() \
        == [0, 0, 0, IGNORED, NEGATIVE]


def test_max_iou_ties_low_quality_and_ignore_gts():
    # Anchor (2.5, 0, 12.5, 10) vs GT0 (0..10) and GT1 (5..15): both 75 / 125 = 0.6 -> GT0.
    gts = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]])
    result = MaxIoUAssigner().assign(torch.tensor([[2.5, 0.0, 12.5, 10.0]]), gts, torch.tensor([False, False]))
    assert result.matched_gt.tolist() == [0] and result.num_candidates.tolist() == [2]
    # Low-quality matches (off by default): GT (0, 0, 10, 10)'s best anchor has IoU 0.4.
    anchors = torch.tensor([[0.0, 0.0, 10.0, 4.0], [0.0, 0.0, 10.0, 2.0]])
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    assert MaxIoUAssigner().assign(anchors, gt, NO_IGNORE).matched_gt.tolist() == [IGNORED, NEGATIVE]
    assert MaxIoUAssigner(allow_low_quality_matches=True).assign(anchors, gt, NO_IGNORE).matched_gt.tolist() \
        == [0, NEGATIVE]
    # An anchor matched to an ignore GT is ignored, not positive.
    result = MaxIoUAssigner().assign(gt.clone(), gt, torch.tensor([True]))
    assert result.matched_gt.tolist() == [0]
    assert result.positive_mask(torch.tensor([True])).tolist() == [False]
    assert result.ignore_mask(torch.tensor([True])).tolist() == [True]


def test_max_iou_chunks_equal_dense_and_points_are_rejected():
    generator = torch.Generator().manual_seed(0)
    anchors = torch.rand(500, 2, generator=generator) * 100
    anchors = torch.cat([anchors, anchors + torch.rand(500, 2, generator=generator) * 30 + 1], 1)
    gt = anchors[:60] + torch.randn(60, 4, generator=generator)
    gt[:, 2:] = torch.maximum(gt[:, 2:], gt[:, :2])
    ignore = torch.zeros(60, dtype=torch.bool)
    dense = MaxIoUAssigner(chunk_elements=None, allow_low_quality_matches=True).assign(anchors, gt, ignore)
    chunked = MaxIoUAssigner(chunk_elements=1000, allow_low_quality_matches=True).assign(anchors, gt, ignore)
    assert torch.equal(dense.matched_gt, chunked.matched_gt)
    assert torch.equal(dense.num_candidates, chunked.num_candidates)
    with pytest.raises(ValueError, match="needs \\(J, 4\\) anchor boxes"):
        MaxIoUAssigner().assign(anchors[:, :2], gt, ignore)
    with pytest.raises(ValueError, match="neg_iou_thr <= pos_iou_thr"):
        MaxIoUAssigner(pos_iou_thr=0.3, neg_iou_thr=0.4)


# ----------------------------------------------------------------------------- FCOS

def test_fcos_scale_ranges_and_smallest_area_tie_break():
    # Two levels: stride 8 with range (-1, 64), stride 16 with range (64, inf).
    # Point (20, 20) on both levels. GT0 (0, 0, 40, 40): max side 20 -> level 0 only.
    # GT1 (0, 0, 120, 40): max(l, t, r, b) = 100 -> level 1 only, but centre sampling
    # (radius 1.5 x 16 = 24 around (60, 20) -> x in (36, 84)) excludes x = 20: negative;
    # without centre sampling the level-1 point belongs to GT1.
    anchors = torch.tensor([[20.0, 20.0], [20.0, 20.0]])
    gts = torch.tensor([[0.0, 0.0, 40.0, 40.0], [0.0, 0.0, 120.0, 40.0]])
    levels = dict(num_anchors_per_level=[1, 1], strides=[8, 16])
    ranges = [(-1.0, 64.0), (64.0, math.inf)]
    sampled = FCOSAssigner(regression_ranges=ranges).assign(anchors, gts, torch.tensor([False, False]), **levels)
    assert sampled.matched_gt.tolist() == [0, NEGATIVE]
    whole_box = FCOSAssigner(regression_ranges=ranges, center_sampling=False).assign(
        anchors, gts, torch.tensor([False, False]), **levels)
    assert whole_box.matched_gt.tolist() == [0, 1]
    # Both GTs valid for one point -> the smaller area wins; equal areas -> lower index.
    gts = torch.tensor([[0.0, 0.0, 40.0, 40.0], [10.0, 10.0, 30.0, 30.0], [10.0, 10.0, 30.0, 30.0]])
    result = FCOSAssigner(regression_ranges=[(-1.0, math.inf)]).assign(
        torch.tensor([[20.0, 20.0]]), gts, torch.zeros(3, dtype=torch.bool), num_anchors_per_level=[1], strides=[8])
    assert result.matched_gt.tolist() == [1] and result.num_candidates.tolist() == [3]


def test_fcos_needs_levels_and_matching_ranges():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    with pytest.raises(ValueError, match="needs num_anchors_per_level"):
        FCOSAssigner().assign(torch.zeros(2, 2), gt, NO_IGNORE)
    with pytest.raises(ValueError, match="regression ranges"):
        FCOSAssigner().assign(torch.zeros(2, 2), gt, NO_IGNORE, num_anchors_per_level=[2], strides=[8])
    with pytest.raises(ValueError, match="does not add up"):
        FCOSAssigner().assign(torch.zeros(2, 2), gt, NO_IGNORE, num_anchors_per_level=[1], strides=[8])


# ----------------------------------------------------------------------------- ATSS

ROW_ANCHORS = torch.tensor([[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 20.0, 10.0],
                            [20.0, 0.0, 30.0, 10.0], [30.0, 0.0, 40.0, 10.0]])


def test_atss_threshold_by_hand():
    # GT (2, 0, 12, 10), centre (7, 5); anchor centres x = 5, 15, 25, 35 -> nearest 3: a0, a1, a2.
    # IoUs: a0 80/120 = 0.667, a1 20/180 = 0.111, a2 0. mean 0.259, unbiased std 0.357 ->
    # threshold 0.616: only a0 passes, and its centre (5, 5) is inside the GT.
    result = ATSSAssigner(topk=3).assign(ROW_ANCHORS, torch.tensor([[2.0, 0.0, 12.0, 10.0]]), NO_IGNORE,
                                         num_anchors_per_level=[4])
    assert result.matched_gt.tolist() == [0, NEGATIVE, NEGATIVE, NEGATIVE]
    assert result.num_candidates.tolist() == [1, 0, 0, 0]


def test_atss_anchor_claimed_by_two_gts_goes_to_the_higher_iou():
    # GT0 as above takes a0 with IoU 0.667. GT1 (0, 0, 9, 10): IoUs 0.9, 0, 0 -> threshold
    # 0.3 + 0.520 = 0.820 -> a0 passes again (centre inside). a0 goes to GT1 (0.9 > 0.667).
    gts = torch.tensor([[2.0, 0.0, 12.0, 10.0], [0.0, 0.0, 9.0, 10.0]])
    result = ATSSAssigner(topk=3).assign(ROW_ANCHORS, gts, torch.tensor([False, False]), num_anchors_per_level=[4])
    assert result.matched_gt.tolist() == [1, NEGATIVE, NEGATIVE, NEGATIVE]
    assert result.num_candidates.tolist() == [2, 0, 0, 0]


def test_atss_anchor_free_uses_virtual_anchors_of_eight_strides():
    # Points (4, 4), (12, 4), (20, 4), stride 1 -> virtual squares of side 8:
    # (0, 0, 8, 8), (8, 0, 16, 8), (16, 0, 24, 8). GT (1, 0, 9, 8): IoUs 56/72 = 0.778,
    # 8/120 = 0.067, 0 -> threshold 0.282 + 0.431 = 0.713 -> only p0 (centre inside).
    points = torch.tensor([[4.0, 4.0], [12.0, 4.0], [20.0, 4.0]])
    result = ATSSAssigner(anchor_free=True).assign(points, torch.tensor([[1.0, 0.0, 9.0, 8.0]]), NO_IGNORE,
                                                   num_anchors_per_level=[3], strides=[1])
    assert result.matched_gt.tolist() == [0, NEGATIVE, NEGATIVE]
    with pytest.raises(ValueError, match="needs strides"):
        ATSSAssigner(anchor_free=True).assign(points, torch.tensor([[1.0, 0.0, 9.0, 8.0]]), NO_IGNORE,
                                              num_anchors_per_level=[3])


def test_atss_distance_ties_take_the_lowest_anchor_index():
    # GT centre (20, 5) is equidistant from a1 (15) and a2 (25); topk = 1 keeps a1.
    # A single candidate: std 0, threshold = its IoU (50 / 150) -> passes; centre inside.
    result = ATSSAssigner(topk=1).assign(ROW_ANCHORS, torch.tensor([[10.0, 0.0, 30.0, 10.0]]), NO_IGNORE,
                                         num_anchors_per_level=[4])
    assert result.matched_gt.tolist() == [NEGATIVE, 0, NEGATIVE, NEGATIVE]


# ----------------------------------------------------------------------------- shared

ALL = [(MaxIoUAssigner, {}), (FCOSAssigner, {"regression_ranges": [(-1.0, math.inf)]}), (ATSSAssigner, {})]


@pytest.mark.parametrize("cls,kwargs", ALL)
def test_empty_gt_no_anchors_and_untouched_inputs(cls, kwargs):
    assigner = cls(**kwargs)
    anchors = ROW_ANCHORS.clone()
    levels = dict(num_anchors_per_level=[4], strides=[8])
    result = assigner.assign(anchors, torch.zeros(0, 4), torch.zeros(0, dtype=torch.bool), **levels)
    assert result.matched_gt.tolist() == [NEGATIVE] * 4 and result.num_candidates.tolist() == [0] * 4
    result = assigner.assign(torch.zeros(0, 4), torch.tensor([[0.0, 0.0, 5.0, 5.0]]), NO_IGNORE,
                             num_anchors_per_level=[0], strides=[8])
    assert result.matched_gt.shape == (0,)
    gt = torch.tensor([[1.0, 0.0, 12.0, 10.0]])
    before = (anchors.clone(), gt.clone())
    result = assigner.assign(anchors, gt, NO_IGNORE, **levels)
    assert torch.equal(anchors, before[0]) and torch.equal(gt, before[1])
    assert result.matched_gt.dtype == torch.int64 and result.matched_gt.shape == (4,)


def test_registry_and_assignment_helpers():
    assert {"lla", "max_iou", "fcos", "atss"} <= set(available_assigners())
    assert isinstance(build_assigner("atss", topk=3), ATSSAssigner)
    with pytest.raises(ValueError, match="unknown assigner 'nope'"):
        build_assigner("nope")
    with pytest.raises(ValueError, match="already registered"):
        register("atss")(type("Other", (Assigner,), {"_assign": lambda self, inputs: None}))
    result = Assignment(matched_gt=torch.tensor([0, 1, NEGATIVE, IGNORED]), num_candidates=torch.tensor([2, 1, 0, 0]))
    ignore = torch.tensor([False, True])
    assert result.positive_mask(ignore).tolist() == [True, False, False, False]
    assert result.ignore_mask(ignore).tolist() == [False, True, False, True]
    assert result.negative_mask().tolist() == [False, False, True, False]
    assert result.contested_mask().tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="matched_gt must be an int64"):
        Assignment(matched_gt=torch.tensor([0.0]))
    with pytest.raises(ValueError, match="weights must be floating point"):
        Assignment(matched_gt=torch.tensor([0]), weights=torch.tensor([1]))


def test_bad_inputs_are_named():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    assigner = MaxIoUAssigner()
    with pytest.raises(ValueError, match=r"anchors must be a \(J, 4\) box"):
        assigner.assign(torch.zeros(3), gt, NO_IGNORE)
    with pytest.raises(ValueError, match="gt_ignore must be a bool tensor of shape \\(1,\\)"):
        assigner.assign(ROW_ANCHORS, gt, torch.tensor([0]))
    with pytest.raises(ValueError, match="x2 >= x1"):
        assigner.assign(ROW_ANCHORS, torch.tensor([[10.0, 0.0, 0.0, 10.0]]), NO_IGNORE)
    with pytest.raises(ValueError, match="got 2 strides for 1 levels"):
        assigner.assign(ROW_ANCHORS, gt, NO_IGNORE, num_anchors_per_level=[4], strides=[8, 16])
