"""PAA: the batched two-component EM and the assignment, on cases worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from lla.assign import NEGATIVE, PAAAssigner, build_assigner, fit_two_component_gmm
from lla.assign.paa import EM_REG_COVAR, paa_positive_counts



# ----------------------------------------------------------------------------- EM


def test_one_em_step_matches_the_hand_computation():
    # x = (0, 1, 3); start: means (0, 3) = (min, max), variances 1, weights 1/2.
    # E-step: r0(x) = 1 / (1 + exp(((x - 0)^2 - (x - 3)^2) / 2)) -> exponents -4.5, -1.5, +4.5.
    x = torch.tensor([[0.0, 1.0, 3.0]])
    fit = fit_two_component_gmm(x, max_iter=1)
    r0 = [1 / (1 + math.exp(e)) for e in (-4.5, -1.5, 4.5)]
    r1 = [1 - r for r in r0]
    tiny = 10 * torch.finfo(torch.float64).eps
    n0, n1 = sum(r0) + tiny, sum(r1) + tiny
    mu0 = sum(r * v for r, v in zip(r0, (0, 1, 3))) / n0
    mu1 = sum(r * v for r, v in zip(r1, (0, 1, 3))) / n1
    var0 = sum(r * (v - mu0) ** 2 for r, v in zip(r0, (0, 1, 3))) / n0 + EM_REG_COVAR
    var1 = sum(r * (v - mu1) ** 2 for r, v in zip(r1, (0, 1, 3))) / n1 + EM_REG_COVAR
    assert fit.means[0].tolist() == pytest.approx([mu0, mu1], rel=1e-12)
    assert fit.variances[0].tolist() == pytest.approx([var0, var1], rel=1e-12)
    assert fit.weights[0].tolist() == pytest.approx([n0 / 3, n1 / 3], rel=1e-12)
    assert fit.iterations.tolist() == [1] and not bool(fit.converged[0])


def test_two_clear_clusters_split_and_paa_keeps_up_to_the_densest_foreground():
    # Clusters {0.1, 0.15, 0.2} and {5.0, 5.1, 5.2}: EM ends at means 0.15 / 5.1, weights 1/2,
    # variances (2 * 0.05^2 / 3) + reg_covar (the other component's responsibility is ~0).
    scores = torch.tensor([[0.1, 0.15, 0.2, 5.0, 5.1, 5.2]], dtype=torch.float64)
    fit = fit_two_component_gmm(scores)
    assert fit.components.tolist() == [[0, 0, 0, 1, 1, 1]]
    assert fit.means[0].tolist() == pytest.approx([0.15, 5.1], abs=1e-9)
    assert fit.weights[0].tolist() == pytest.approx([0.5, 0.5], abs=1e-9)
    assert fit.variances[0, 0].item() == pytest.approx(2 * 0.05 ** 2 / 3 + EM_REG_COVAR, rel=1e-6)
    assert bool(fit.converged[0])
    # 0.15 sits on the foreground mean, so it has the highest likelihood: positives = the
    # sorted prefix up to it = the two lowest scores.
    assert int(fit.log_likelihood[0].argmax()) == 1
    assert paa_positive_counts(scores, torch.ones_like(scores, dtype=torch.bool)).tolist() == [2]


def test_degenerate_rows_one_candidate_and_identical_scores():
    # Row 0: one candidate -> kept without a fit (released code). Row 1: three equal scores ->
    # both components collapse onto 0.5 with variance reg_covar, the tie goes to component 0,
    # every likelihood is equal, so only the first sorted candidate is positive.
    scores = torch.tensor([[0.7, 0.0, 0.0], [0.5, 0.5, 0.5]])
    valid = torch.tensor([[True, False, False], [True, True, True]])
    assert paa_positive_counts(scores, valid).tolist() == [1, 1]
    fit = fit_two_component_gmm(scores[1:])
    assert fit.components.tolist() == [[0, 0, 0]]
    assert fit.means[0].tolist() == pytest.approx([0.5, 0.5])
    assert fit.variances[0].tolist() == pytest.approx([EM_REG_COVAR, EM_REG_COVAR])


def test_batched_fit_with_padding_equals_row_by_row():
    torch.manual_seed(0)
    a = torch.cat((torch.rand(4), 3 + torch.rand(2)))
    b = torch.cat((torch.rand(3) * 0.1, 1 + torch.rand(5)))
    padded = torch.zeros(2, 8)
    padded[0, :6], padded[1] = a, b
    valid = torch.zeros(2, 8, dtype=torch.bool)
    valid[0, :6], valid[1] = True, True
    both = fit_two_component_gmm(padded, valid)
    alone = [fit_two_component_gmm(a[None]), fit_two_component_gmm(b[None])]
    for row, single in enumerate(alone):
        n = int(valid[row].sum())
        assert torch.equal(both.means[row], single.means[0])
        assert torch.equal(both.variances[row], single.variances[0])
        assert torch.equal(both.components[row, :n], single.components[0])
        assert both.iterations[row] == single.iterations[0]
    assert both.components[0, 6:].tolist() == [-1, -1]


def test_gmm_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one sample"):
        fit_two_component_gmm(torch.zeros(1, 2), torch.zeros(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="finite"):
        fit_two_component_gmm(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match=r"\(G, N\)"):
        fit_two_component_gmm(torch.zeros(3))


# ----------------------------------------------------------------------------- assignment

GT = [0.0, 0.0, 10.0, 10.0]


def scene():
    """One person GT, one ignore GT; 8 anchors.

    Anchors 0-5 are the GT box itself (IoU 1); anchor 6 is far away (IoU 0); anchor 7 is the
    ignore box. With equal logits the scores differ only by 1.3 x (1 - GIoU) of the predictions:
      a0 exact             -> 0          a3 [20,20,30,30] -> 1 + 700/900 = 1.778
      a1 [0,0,10,9]  (IoU .9) -> 0.1     a4 [20,0,30,10]  -> 1 + 100/300 = 1.333
      a2 [0,0,10,8]  (IoU .8) -> 0.2     a5 [0,20,10,30]  -> 1.333
    """
    anchors = torch.tensor([GT] * 6 + [[50.0, 50.0, 60.0, 60.0], [100.0, 100.0, 140.0, 140.0]])
    box_pred = torch.tensor([GT, [0, 0, 10, 9], [0, 0, 10, 8], [20, 20, 30, 30], [20, 0, 30, 10],
                             [0, 20, 10, 30], [50, 50, 60, 60], [100, 100, 140, 140]], dtype=torch.float32)
    gt_boxes = torch.tensor([GT, [100.0, 100.0, 140.0, 140.0]])
    gt_ignore = torch.tensor([False, True])
    return anchors, gt_boxes, gt_ignore, torch.zeros(8, 1), box_pred


def test_paa_scene_expected_positives():
    anchors, gt_boxes, gt_ignore, logits, box_pred = scene()
    result = PAAAssigner().assign(anchors, gt_boxes, gt_ignore, logits, box_pred, num_anchors_per_level=[8])
    # Person GT: candidates 0-5 (anchor 6 has IoU 0). Sorted scores: a0 (f), a1 (f + .13), a2 (f + .26),
    # a4/a5 (f + 1.733), a3 (f + 2.311). Component 0 = {a0, a1, a2} with mean f + .13 = a1's score,
    # so a1 has the highest likelihood: positives a0, a1; a2-a5 negative.
    # Ignore GT: a single candidate (a7), kept -> matched to the ignore GT -> ignored by the loss.
    assert result.matched_gt.tolist() == [0, 0, NEGATIVE, NEGATIVE, NEGATIVE, NEGATIVE, NEGATIVE, 1]
    assert result.positive_mask(gt_ignore).nonzero().squeeze(1).tolist() == [0, 1]
    assert result.ignore_mask(gt_ignore).nonzero().squeeze(1).tolist() == [7]
    assert result.num_candidates.tolist() == [1, 1, 1, 1, 1, 1, 0, 1]


def test_paa_topk_is_per_level():
    anchors, gt_boxes, gt_ignore, logits, box_pred = scene()
    # Levels {a0..a3}, {a4..a7} and topk 3: level 0 keeps a0, a1, a2 and drops a3 (highest score);
    # level 1 keeps a4, a5 (a6 is no candidate). Component 0 = {a0, a1, a2} again -> a0, a1.
    result = build_assigner("paa", topk=3).assign(anchors, gt_boxes, gt_ignore, logits, box_pred,
                                                  num_anchors_per_level=[4, 4])
    assert result.matched_gt[:7].tolist() == [0, 0, NEGATIVE, NEGATIVE, NEGATIVE, NEGATIVE, NEGATIVE]
    # topk 1 per level: a0 (level 0) and a4 (level 1); the mixture separates them -> only a0.
    result = build_assigner("paa", topk=1).assign(anchors, gt_boxes, gt_ignore, logits, box_pred,
                                                  num_anchors_per_level=[4, 4])
    assert result.matched_gt[:7].tolist() == [0] + [NEGATIVE] * 6


def test_paa_score_is_focal_plus_weighted_giou_cost():
    anchors, gt_boxes, gt_ignore, logits, box_pred = scene()
    logits[1] = 2.0
    pairs = torch.tensor([0, 1, 4])
    scores = PAAAssigner().candidate_scores(logits[pairs], box_pred[pairs], anchors[pairs],
                                            gt_boxes[[0, 0, 0]], torch.zeros(3, dtype=torch.int64))
    # focal cost 0.25 (1 - p)^2 (-ln p); GIoU costs 0, 0.1 (IoU .9 inside the GT), 1 + 100/300.
    focal = lambda p: 0.25 * (1 - p) ** 2 * -math.log(p)  # noqa: E731
    expected = [focal(0.5), focal(1 / (1 + math.exp(-2))) + 1.3 * 0.1, focal(0.5) + 1.3 * (1 + 1 / 3)]
    assert scores.tolist() == pytest.approx(expected, rel=1e-5)


def test_paa_empty_and_bad_inputs():
    anchors, gt_boxes, gt_ignore, logits, box_pred = scene()
    empty = PAAAssigner().assign(anchors, torch.zeros(0, 4), None, logits, box_pred, num_anchors_per_level=[8])
    assert (empty.matched_gt == NEGATIVE).all()
    # No anchor reaches IoU 0.1 with a GT far from all of them (and low-quality matches off).
    far = build_assigner("paa", low_quality_matches=False).assign(
        anchors, torch.tensor([[300.0, 300.0, 310.0, 310.0]]), None, logits, box_pred, num_anchors_per_level=[8])
    assert (far.matched_gt == NEGATIVE).all()
    with pytest.raises(ValueError, match="needs cls_logits and box_pred"):
        PAAAssigner().assign(anchors, gt_boxes, gt_ignore, num_anchors_per_level=[8])
    with pytest.raises(ValueError, match="num_anchors_per_level"):
        PAAAssigner().assign(anchors, gt_boxes, gt_ignore, logits, box_pred)
    with pytest.raises(ValueError, match="anchor boxes, not points"):
        PAAAssigner().assign(anchors[:, :2], gt_boxes, gt_ignore, logits, box_pred, num_anchors_per_level=[8])
    with pytest.raises(ValueError, match="topk must be a positive integer"):
        PAAAssigner(topk=0)
