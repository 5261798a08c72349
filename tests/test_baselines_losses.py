"""FreeAnchor bag losses, PISA weights, Noisy Anchor soft labels: hand-worked cases; the variants."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lla.assign import NEGATIVE, FreeAnchorAssigner, NoisyAnchorAssigner, anchor_bags, build_assigner
from lla.assign.base import Assignment
from lla.config import load_params
from lla.models import build_detector, resolve_variant, variant_names
from lla.models.box_coders import DeltaBoxCoder
from lla.models.losses import ImageTargets, LossConfig, dense_detection_loss
from lla.models.losses.classification import soft_sigmoid_focal_loss
from lla.models.losses.free_anchor import mean_max, positive_bag_loss, positive_probability
from lla.models.losses.pisa import ReweightConfig, carl_weights, iou_hierarchical_local_rank, isr_p_weights

PARAMS = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
LN2 = math.log(2.0)



def logit(p: float) -> float:
    return math.log(p / (1 - p))


# ----------------------------------------------------------------------------- FreeAnchor

def test_mean_max_weights_by_one_over_one_minus_p():
    # (0.5, 0.5, 0): weights 2, 2, 1 -> 0.4, 0.4, 0.2 -> 0.4 * 0.5 + 0.4 * 0.5 = 0.4 (the mean is 1/3).
    # (0.9, 0.1, 0.1): weights 10, 10/9, 10/9 -> (9 + 2/9) / (10 + 20/9) = 0.7545 (mean 0.367, max 0.9).
    values = mean_max(torch.tensor([[0.5, 0.5, 0.0], [0.9, 0.1, 0.1]]))
    assert values.tolist() == pytest.approx([0.4, (9 + 2 / 9) / (10 + 20 / 9)], rel=1e-6)
    loss = positive_bag_loss(torch.tensor([[0.5, 0.5, 0.0]]), torch.ones(1, 3), alpha=0.5)
    assert loss.item() == pytest.approx(-0.5 * math.log(0.4), rel=1e-6)


def free_anchor_case(ignore_box: bool = False):
    """1 GT, 3 anchors all equal to the GT box [0, 0, 10, 10] (bag = all 3 with bag_size 3).

    Deltas (coder weights 1): a0, a1 predict the GT exactly (smooth-L1 0, P_loc 1, IoU 1);
    a2 predicts dx = 1 -> box [10, 0, 20, 10] (IoU 0), smooth-L1 = 1 - 0.11 / 2 = 0.945,
    P_loc = exp(-0.75 * 0.945). P_cls = (0.5, 0.25, 0.5).
    """
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    box_out = torch.zeros(1, 3, 4)
    box_out[0, 2, 0] = 1.0
    coder = DeltaBoxCoder()
    pred = coder.decode(box_out[0], anchors)[None]
    cls = torch.tensor([[[0.0], [logit(0.25)], [0.0]]], requires_grad=True)
    boxes, ignore = [[0.0, 0.0, 10.0, 10.0]], [False]
    if ignore_box:
        boxes.append([10.0, 0.0, 20.0, 10.0])       # IoU 0 with every anchor: ignores nothing
        ignore.append(True)
    target = ImageTargets(torch.tensor(boxes), torch.tensor(ignore), torch.zeros(len(boxes), dtype=torch.int64))
    return anchors, box_out, pred, cls, target, coder


def run_free_anchor(anchors, box_out, pred, cls, target, coder, assignment=None):
    cfg = LossConfig(mode="free_anchor", smooth_l1_beta=0.11, box_weight=1.0,
                     free_anchor={"bag_size": 3, "bbox_thr": 0.6, "alpha": 0.5, "gamma": 2.0,
                                  "box_reg_weight": 0.75})
    if assignment is None:
        assignment = FreeAnchorAssigner(bag_size=3).assign(anchors, target.boxes, target.ignore)
    return dense_detection_loss(cls_logits=cls, box_out=box_out, pred_boxes=pred, aux_logits=None, aux_kind=None,
                                anchors=anchors, targets=[target], assignments=[assignment], box_coder=coder,
                                cfg=cfg)


def test_free_anchor_one_gt_three_anchors_by_hand():
    anchors, box_out, pred, cls, target, coder = free_anchor_case()
    losses, norm = run_free_anchor(anchors, box_out, pred, cls, target, coder)
    # Positive bag: x = (0.5, 0.25, 0.5 e^{-0.70875}); mean-max with weights 1 / (1 - x).
    x = [0.5, 0.25, 0.5 * math.exp(-0.75 * 0.945)]
    w = [1 / (1 - v) for v in x]
    bag = sum(wi * xi for wi, xi in zip(w, x)) / sum(w)
    assert norm.item() == 1.0
    assert losses["loss_box"].item() == pytest.approx(-0.5 * math.log(bag), rel=1e-5)
    # P{a in A+}: IoU(pred, gt) = 1, 1, 0; the GT's best is 1 -> (IoU - 0.6) / 0.4 clamped = 1, 1, 0.
    # Negative terms: p = P_cls (1 - P+) = 0, 0, 0.5 (0 is clamped to 1e-12: ~1e-36).
    # (1 - alpha) 0.5^2 (-ln 0.5) = 0.5 * 0.25 * ln 2, divided by 1 GT x bag_size 3.
    assert losses["loss_cls"].item() == pytest.approx(0.5 * 0.25 * LN2 / 3, rel=1e-5)
    # The positive bag loss trains the box branch of every bag member through P_loc.
    assert positive_probability(pred[0], target.boxes, target.labels, 1, 0.6)[:, 0].tolist() == [1.0, 1.0, 0.0]


def test_free_anchor_ignore_box_excludes_overlapping_anchors_from_the_negative_loss():
    anchors, box_out, pred, cls, target, coder = free_anchor_case(ignore_box=True)
    # An ignore box with IoU 0 leaves the loss unchanged (it forms no bag and ignores nothing).
    losses, _ = run_free_anchor(anchors, box_out, pred, cls, target, coder)
    assert losses["loss_cls"].item() == pytest.approx(0.5 * 0.25 * LN2 / 3, rel=1e-5)
    # Make the ignore box cover anchor 2 (IoU 1 >= 0.5): its negative term 0.5 * 0.25 ln 2 drops out.
    target.boxes[1] = torch.tensor([0.0, 0.0, 10.0, 10.0])
    assignment = FreeAnchorAssigner(bag_size=3).assign(anchors, target.boxes, target.ignore)
    assert assignment.matched_gt.tolist() == [1, 1, 1]          # all three anchors equal the ignore box
    assert assignment.ignore_mask(target.ignore).all()
    losses, _ = run_free_anchor(anchors, box_out, pred, cls, target, coder, assignment)
    assert losses["loss_cls"].item() == 0.0
    assert losses["loss_box"].item() > 0                         # the person's bag is untouched


def test_free_anchor_without_gt_keeps_the_graph_and_gives_zero_positive_loss():
    anchors, box_out, pred, cls, _, coder = free_anchor_case()
    box_out.requires_grad_(True)
    empty = ImageTargets(torch.zeros(0, 4), torch.zeros(0, dtype=torch.bool), torch.zeros(0, dtype=torch.int64))
    losses, norm = run_free_anchor(anchors, box_out, pred, cls, empty, coder)
    assert losses["loss_box"].item() == 0.0 and norm.item() == 1.0
    # No GT: P+ = 0, every anchor is a negative with p = P_cls: 0.5 * (0.25 ln2 + 0.0625 ln(4/3) + 0.25 ln2) / 3.
    expected = 0.5 * (0.25 * LN2 + 0.0625 * math.log(4 / 3) + 0.25 * LN2) / 3
    assert losses["loss_cls"].item() == pytest.approx(expected, rel=1e-5)
    sum(losses.values()).backward()
    assert box_out.grad is not None


def test_anchor_bags_take_highest_iou_lowest_index_on_ties():
    anchors = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 10, 10], [50, 50, 60, 60]])
    bags = anchor_bags(anchors, torch.tensor([[0.0, 0, 10, 10]]), bag_size=2)
    assert bags.tolist() == [[0, 2]]                               # IoU 1, 0.5, 1, 0
    assert anchor_bags(anchors, torch.tensor([[0.0, 0, 10, 10]]), bag_size=50).shape == (1, 4)


# ----------------------------------------------------------------------------- PISA

def test_iou_hlr_and_isr_p_weights_by_hand():
    # GT A: IoUs 0.9, 0.5, 0.7 (local ranks 0, 2, 1); GT B: 0.6, 0.8 (local ranks 1, 0).
    # HLR: local rank 0 first by IoU (0.9 -> 0, 0.8 -> 1), then rank 1 (0.7 -> 2, 0.6 -> 3), then 0.5 -> 4.
    ious = torch.tensor([0.9, 0.5, 0.7, 0.6, 0.8])
    groups = torch.tensor([0, 0, 0, 1, 1])
    labels = torch.zeros(5, dtype=torch.int64)
    rank = iou_hierarchical_local_rank(ious, groups, labels)
    assert rank.tolist() == [0, 4, 2, 3, 1]
    # u = (5 - r) / 5 = 1, .2, .6, .4, .8; k = 2, bias 0 -> u^2; equal losses -> rescaled by 5 / sum(u^2).
    factors = isr_p_weights(ious, groups, labels, torch.ones(5), ReweightConfig(k=2.0, bias=0.0))
    u2 = [1.0, 0.04, 0.36, 0.16, 0.64]
    assert factors.tolist() == pytest.approx([v * 5 / sum(u2) for v in u2], rel=1e-6)
    # The weighted positive loss keeps its sum.
    losses = torch.tensor([0.3, 1.0, 0.2, 0.5, 0.1])
    f = isr_p_weights(ious, groups, labels, losses, ReweightConfig(k=2.0, bias=0.0))
    assert (f * losses).sum().item() == pytest.approx(losses.sum().item(), rel=1e-6)
    # Two classes rank separately; n_max = the largest class count (3): u = (3 - r) / 3.
    two = iou_hierarchical_local_rank(ious, torch.arange(5), torch.tensor([0, 0, 0, 1, 1]))
    assert two.tolist() == [0, 2, 1, 1, 0]


def test_carl_weights_by_hand_and_they_carry_gradient():
    # p = (0.5, 0.25): 0.2 + 0.8 p = (0.6, 0.4), rescaled to sum 2 -> (1.2, 0.8).
    logits = torch.tensor([0.0, logit(0.25)], requires_grad=True)
    weights = carl_weights(torch.sigmoid(logits), ReweightConfig(k=1.0, bias=0.2))
    assert weights.tolist() == pytest.approx([1.2, 0.8], rel=1e-6)
    (weights * torch.tensor([1.0, 3.0])).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def pisa_case():
    """One image, 1 GT, anchors 0, 1 positive (smooth-L1 losses 0 and 0.945), anchor 2 negative."""
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    box_out = torch.zeros(1, 3, 4)
    box_out[0, 1, 0] = 1.0
    coder = DeltaBoxCoder()
    pred = coder.decode(box_out[0], anchors)[None]
    cls = torch.tensor([[[0.0], [logit(0.25)], [0.0]]], requires_grad=True)
    target = ImageTargets(torch.tensor([[0.0, 0.0, 10.0, 10.0]]), torch.tensor([False]),
                          torch.zeros(1, dtype=torch.int64))
    assignment = Assignment(matched_gt=torch.tensor([0, 0, NEGATIVE]))
    return dict(cls_logits=cls, box_out=box_out, pred_boxes=pred, aux_logits=None, aux_kind=None, anchors=anchors,
                targets=[target], assignments=[assignment], box_coder=coder)


def test_pisa_loss_options():
    plain, norm = dense_detection_loss(cfg=LossConfig(box="smooth_l1", box_weight=1.0, smooth_l1_beta=0.11),
                                       **pisa_case())
    case = pisa_case()
    pisa, _ = dense_detection_loss(cfg=LossConfig(box="smooth_l1", box_weight=1.0, smooth_l1_beta=0.11,
                                                  isr={"k": 2.0, "bias": 0.0}, carl={}), **case)
    # ISR-P preserves the positives' summed classification loss, so loss_cls is unchanged ...
    assert pisa["loss_cls"].item() == pytest.approx(plain["loss_cls"].item(), rel=1e-6)
    # ... but moves it between positives: a0 (IoU 1, HLR 0, u = 1) and a1 (IoU 0, HLR 1, u = 1/2)
    # get u^2 = 1, 1/4 times s = (L0 + L1) / (L0 + L1 / 4), L0 = .25 * .5^2 ln2, L1 = .25 * .75^2 ln4.
    plain_case = pisa_case()
    dense_detection_loss(cfg=LossConfig(box="smooth_l1"), **plain_case)[0]["loss_cls"].backward()
    pisa["loss_cls"].backward(retain_graph=True)
    l0, l1 = 0.25 * 0.25 * LN2, 0.25 * 0.75 ** 2 * math.log(4)
    s = (l0 + l1) / (l0 + l1 / 4)
    isr_grad, plain_grad = case["cls_logits"].grad[0, :2, 0], plain_case["cls_logits"].grad[0, :2, 0]
    assert (isr_grad / plain_grad).tolist() == pytest.approx([s, s / 4], rel=1e-5)
    case["cls_logits"].grad = None
    assert pisa["loss_box"].item() == pytest.approx(plain["loss_box"].item())
    # CARL (defaults k 1, bias 0.2): weights (1.2, 0.8) as above; box losses (0, 0.945); 2 positives.
    assert norm.item() == 2.0
    assert pisa["loss_carl"].item() == pytest.approx(0.8 * 0.945 / 2, rel=1e-5)
    pisa["loss_carl"].backward()
    assert case["cls_logits"].grad[0, :2].abs().sum() > 0        # regression quality trains the classifier


# ----------------------------------------------------------------------------- Noisy Anchor

def test_noisy_anchor_soft_labels_and_weights_by_hand():
    # GT [0,0,10,10]; anchors: a0 = the GT (IoU 1), a1 = [0,0,10,5] (IoU .5), a2 far (IoU 0, never a candidate).
    anchors = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30]])
    box_pred = torch.tensor([[0.0, 0, 10, 8], [0, 0, 10, 5], [20, 20, 30, 30]])  # IoU with GT .8, .5, 0
    logits = torch.tensor([[0.0], [logit(0.25)], [0.0]])                          # p = .5, .25
    result = NoisyAnchorAssigner(topk=50, alpha=0.75, gamma=1.0).assign(
        anchors, torch.tensor([[0.0, 0, 10, 10]]), None, logits, box_pred)
    assert result.matched_gt.tolist() == [0, 0, NEGATIVE]
    # c = .75 loc + .25 cls: .6 + .125 = .725; .375 + .0625 = .4375.
    assert result.soft_labels[:2].tolist() == pytest.approx([0.725, 0.4375], rel=1e-6)
    # r = .75 / (1 - loc) + .25 / (1 - cls): 3.75 + .5 = 4.25; 1.5 + 1/3 = 1.8333; mean 1 over positives.
    raw = [4.25, 1.5 + 1 / 3]
    assert result.weights.tolist() == pytest.approx([2 * raw[0] / sum(raw), 2 * raw[1] / sum(raw), 1.0], rel=1e-6)


def test_noisy_anchor_contested_anchor_goes_to_highest_iou_and_ignore_gt_ignores():
    anchors = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 20], [100, 100, 110, 110]])
    gt = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 20], [100, 100, 110, 110]])
    ignore = torch.tensor([False, False, True])
    # Anchor 0: IoU 1 with GT 0, 0.5 with GT 1 -> GT 0; anchor 1: 0.5 / 1 -> GT 1; anchor 2 -> the ignore GT.
    result = NoisyAnchorAssigner(topk=2).assign(anchors, gt, ignore, torch.zeros(3, 1), anchors.clone())
    assert result.matched_gt.tolist() == [0, 1, 2]
    assert result.num_candidates.tolist() == [2, 2, 1]
    assert result.ignore_mask(ignore).tolist() == [False, False, True]
    assert result.weights[2].item() == 1.0 and result.soft_labels[2].item() == 0.0


def test_soft_focal_equals_torchvision_on_hard_targets_and_soft_targets_reach_the_loss():
    from torchvision.ops import sigmoid_focal_loss
    x = torch.linspace(-4, 4, 9)[:, None]
    for t in (0.0, 1.0):
        y = torch.full_like(x, t)
        assert torch.allclose(soft_sigmoid_focal_loss(x, y, 0.25, 2.0), sigmoid_focal_loss(x, y, reduction="none"),
                              atol=1e-7)
    # One positive, logit 0 (p = .5), soft target .725:
    # .725 * .25 * .25 ln2 + .275 * .75 * .25 ln2.
    anchors = torch.tensor([[0.0, 0, 10, 10]])
    from lla.assign.noisy_anchor import SoftLabelAssignment
    assignment = SoftLabelAssignment(matched_gt=torch.tensor([0]), soft_labels=torch.tensor([0.725]))
    losses, _ = dense_detection_loss(
        cls_logits=torch.zeros(1, 1, 1), box_out=torch.zeros(1, 1, 4), pred_boxes=anchors[None], aux_logits=None,
        aux_kind=None, anchors=anchors, box_coder=DeltaBoxCoder(), cfg=LossConfig(box="smooth_l1"),
        targets=[ImageTargets(anchors.clone(), torch.tensor([False]), torch.zeros(1, dtype=torch.int64))],
        assignments=[assignment])
    expected = 0.725 * 0.25 * 0.25 * LN2 + 0.275 * 0.75 * 0.25 * LN2
    assert losses["loss_cls"].item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="soft_labels must be floating point of shape"):
        SoftLabelAssignment(matched_gt=torch.tensor([0]), soft_labels=torch.tensor([1, 0]))


# ----------------------------------------------------------------------------- configs and variants

def test_loss_config_rejects_bad_baseline_settings():
    with pytest.raises(ValueError, match="loss.mode must be one of"):
        LossConfig(mode="bags")
    with pytest.raises(ValueError, match="loss.mode is not 'free_anchor'"):
        LossConfig(free_anchor={"bag_size": 50})
    with pytest.raises(ValueError, match="unknown FreeAnchorConfig settings: bag"):
        LossConfig(mode="free_anchor", free_anchor={"bag": 50})
    with pytest.raises(ValueError, match="need k >= 0 and 0 <= bias <= 1"):
        LossConfig(carl={"bias": 2.0})
    assert LossConfig(isr={}).isr == ReweightConfig(2.0, 0.0)
    with pytest.raises(ValueError, match="alpha must lie in"):
        build_assigner("noisy_anchor", alpha=1.5)
    with pytest.raises(ValueError, match="ignore_iou_thr"):
        FreeAnchorAssigner(ignore_iou_thr=-0.1)


def test_table6_baseline_variants_are_defined_as_the_paper_runs_them():
    assert {"paa", "freeanchor", "pisa", "noisy_anchor"} <= set(variant_names(PARAMS, "micro"))
    for name in ("freeanchor", "pisa", "noisy_anchor"):               # on RetinaNet, 9 anchors
        assert build_detector(PARAMS, name, "micro").head.num_anchors == 9
    paa = resolve_variant(PARAMS, "paa", "paper")
    assert paa["head"]["norm"] == "gn" and paa["head"]["aux"] == "iou"     # Table 6: w/ IoU branch, GN
    assert paa["assigner"]["name"] == "paa" and paa["loss"]["box_weight"] == 1.3
    assert resolve_variant(PARAMS, "freeanchor", "paper")["loss"]["mode"] == "free_anchor"
    assert resolve_variant(PARAMS, "pisa", "paper")["loss"]["isr"] == {"k": 2.0, "bias": 0.0}


def test_centerness_baselines_divide_their_box_loss_as_the_released_code():
    # The LLA authors' released FCOS and ATSS baselines divide the centerness-weighted box loss by
    # the number of positives; PAA's released code divides its IoU-weighted one by the IoU sum.
    for profile in ("paper", "official_code", "mini", "micro"):
        for name in ("fcos_ctr", "atss_ctr"):
            loss = resolve_variant(PARAMS, name, profile)["loss"]
            assert (loss["box_weighting"], loss["box_weighting_normalizer"]) == ("centerness", "positives")
        loss = resolve_variant(PARAMS, "paa", profile)["loss"]
        assert (loss["box_weighting"], loss["box_weighting_normalizer"]) == ("iou", "weight_sum")
    assert build_detector(PARAMS, "fcos_ctr", "micro").loss_cfg.box_weighting_normalizer == "positives"
