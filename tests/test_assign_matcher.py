"""Top-K + min-cost matcher, deterministic smallest-k and box geometry (hand-worked cases)."""

import math

import pytest
import torch
from torchvision.ops import box_iou, generalized_box_iou

from lla.assign import NEGATIVE, smallest_k_indices, topk_min_cost_match
from lla.assign.geometry import FLOAT32_EPS, pairwise_giou, pairwise_iou, points_inside_boxes
from lla.assign.matcher import gt_chunks


def test_each_gt_takes_its_k_cheapest_and_a_contested_anchor_goes_to_the_column_minimum():
    # K = 2. GT0 picks a0 (1), a1 (2); GT1 picks a2 (0.5), a1 (1.5).
    # a1 is contested: column [2, 1.5] -> GT1. a3 is picked by nobody -> negative.
    cost = torch.tensor([[1.0, 2.0, 3.0, 9.0], [9.0, 1.5, 0.5, 2.0]])
    matched, candidates = topk_min_cost_match(cost, 2)
    assert matched.tolist() == [0, 1, 1, NEGATIVE]
    assert candidates.tolist() == [1, 2, 1, 0]


def test_contested_anchor_can_go_to_a_gt_whose_own_topk_missed_it():
    # K = 1. GT0 and GT1 both pick a0 (1.0 and 2.0); GT2 picks a1 (0.1), not a0, but its
    # cost at a0 (0.5) is the column minimum, so a0 goes to GT2 (released-code behaviour).
    cost = torch.tensor([[1.0, 9.0, 9.0], [2.0, 9.0, 9.0], [0.5, 0.1, 9.0]])
    matched, candidates = topk_min_cost_match(cost, 1)
    assert matched.tolist() == [2, 2, NEGATIVE]
    assert candidates.tolist() == [2, 1, 0]


def test_cost_ties_take_lowest_anchor_then_lowest_gt():
    # Row tie: K = 2 on [1, 0.5, 1, 1] -> a1 plus the lowest-index of the three 1.0s (a0).
    assert smallest_k_indices(torch.tensor([[1.0, 0.5, 1.0, 1.0]]), 2).tolist() == [[0, 1]]
    # A tie on both sides of the cut: K = 3 among five equal values -> the first three.
    assert smallest_k_indices(torch.zeros(1, 5), 3).tolist() == [[0, 1, 2]]
    # Column tie: both GTs pick a0 at cost 0.5 -> the lower GT index wins.
    matched, candidates = topk_min_cost_match(torch.tensor([[0.5, 3.0], [0.5, 4.0]]), 1)
    assert matched.tolist() == [0, NEGATIVE]
    assert candidates.tolist() == [2, 0]


def test_k_larger_than_the_number_of_anchors_takes_them_all():
    # Two anchors, K = 10: both GTs pick both; a0 column [1, 3] -> GT0, a1 column [2, 0] -> GT1.
    matched, candidates = topk_min_cost_match(torch.tensor([[1.0, 2.0], [3.0, 0.0]]), 10)
    assert matched.tolist() == [0, 1]
    assert candidates.tolist() == [2, 2]


def test_smallest_k_matches_a_sort_on_random_rows_with_many_ties():
    generator = torch.Generator().manual_seed(0)
    values = torch.randint(0, 5, (50, 40), generator=generator).float()  # heavy ties
    got = smallest_k_indices(values, 7)
    # Reference: stable sort by value keeps index order among equals.
    expected = torch.sort(values, dim=1, stable=True).indices[:, :7].sort(dim=1).values
    assert torch.equal(got, expected)
    # Row-independence: any split into blocks gives the same rows.
    assert torch.equal(torch.cat([smallest_k_indices(values[s], 7) for s in gt_chunks(50, 40, 3 * 40)]), got)


def test_smallest_k_rejects_k_out_of_range():
    with pytest.raises(ValueError, match="k must lie"):
        smallest_k_indices(torch.zeros(2, 3), 4)
    with pytest.raises(ValueError, match="topk must be >= 1"):
        topk_min_cost_match(torch.zeros(2, 3), 0)


def test_gt_chunks_bound_the_block_size():
    assert [(s.start, s.stop) for s in gt_chunks(7, 10, 30)] == [(0, 3), (3, 6), (6, 7)]
    assert [(s.start, s.stop) for s in gt_chunks(7, 10, None)] == [(0, 7)]
    assert [(s.start, s.stop) for s in gt_chunks(2, 10, 1)] == [(0, 1), (1, 2)]  # at least one row
    assert list(gt_chunks(0, 10, 30)) == []


def test_iou_and_giou_by_hand_and_against_torchvision():
    gt = torch.tensor([[0.0, 0.0, 20.0, 20.0]])
    boxes = torch.tensor([[0.0, 0.0, 20.0, 10.0],    # inside half: IoU 200/400 = 0.5
                          [30.0, 0.0, 40.0, 20.0],   # disjoint: IoU 0, enclosure 40x20 = 800,
                          [5.0, 5.0, 5.0, 5.0]])     # union 600 -> GIoU = -200/800 = -0.25
    assert pairwise_iou(gt, boxes).tolist() == [[0.5, 0.0, 0.0]]  # degenerate box: 0, not NaN
    assert pairwise_giou(gt, boxes)[0, :2].tolist() == [0.5, -0.25]
    generator = torch.Generator().manual_seed(1)
    a = torch.rand(30, 2, generator=generator) * 50
    a = torch.cat([a, a + 1 + torch.rand(30, 2, generator=generator) * 30], 1)
    b = torch.rand(40, 2, generator=generator) * 50
    b = torch.cat([b, b + 1 + torch.rand(40, 2, generator=generator) * 30], 1)
    torch.testing.assert_close(pairwise_iou(a, b), box_iou(a, b))
    torch.testing.assert_close(pairwise_giou(a, b), generalized_box_iou(a, b))


def test_inside_needs_more_than_the_margin_on_every_side():
    gt = torch.tensor([[0.0, 0.0, 20.0, 20.0]])
    points = torch.tensor([[10.0, 10.0],   # centre: inside
                           [0.005, 10.0],  # 0.005 px from the left side: not inside
                           [0.02, 10.0],   # 0.02 px: inside
                           [10.0, 20.0]])  # on the bottom side: not inside
    assert points_inside_boxes(points, gt).tolist() == [[True, False, True, False]]
    assert FLOAT32_EPS == pytest.approx(1.1920929e-07) and math.isfinite(-math.log(FLOAT32_EPS))
