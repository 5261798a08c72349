"""Unit tests of lla.models: anchors, head, box coders, losses, post-processing.

Every expected value is worked out by hand in the comment next to it.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lla.assign.base import IGNORED, NEGATIVE, Assignment
from lla.models.anchors import AnchorGenerator, cell_anchor_shapes, grid_centers
from lla.models.box_coders import DeltaBoxCoder, LTRBBoxCoder
from lla.models.heads import DenseHead, flatten_level
from lla.models.losses import ImageTargets, LossConfig, dense_detection_loss
from lla.models.losses import normalizer as normalizer_module
from lla.models.losses.geometry import centerness_target, elementwise_iou
from lla.models.losses.normalizer import batch_normalizer
from lla.models.postprocess import PostprocessConfig, postprocess_image

RETINA_SCALES = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))
RETINA_RATIOS = (0.5, 1.0, 2.0)



def logit(p: float) -> float:
    return math.log(p / (1 - p))


# ----------------------------------------------------------------------------- anchors

def test_grid_centers_have_no_half_stride_offset():
    # 2 rows x 3 columns at stride 8: x in {0, 8, 16}, y in {0, 8}, row-major.
    expected = [[0, 0], [8, 0], [16, 0], [0, 8], [8, 8], [16, 8]]
    assert grid_centers(2, 3, 8).tolist() == expected


def test_point_anchors_counts_levels_and_degenerate_boxes():
    gen = AnchorGenerator(strides=(8, 16), kind="point")
    anchors = gen([(2, 3), (1, 2)])
    # level 0: 2*3 = 6 points, level 1: 1*2 = 2 points.
    assert anchors.num_per_level == (6, 2)
    assert anchors.levels.tolist() == [0] * 6 + [1] * 2
    assert anchors.strides.tolist() == [8.0] * 6 + [16.0] * 2
    assert anchors.centers[6:].tolist() == [[0, 0], [16, 0]]
    # A point is the degenerate box (x, y, x, y).
    assert torch.equal(anchors.boxes, anchors.centers.repeat(1, 2))
    assert anchors.is_point and len(anchors) == 8


def test_nine_anchor_boxes_sizes_and_order():
    gen = AnchorGenerator(strides=(8, 16, 32, 64, 128), kind="box", base_size_per_stride=4.0,
                          scales=RETINA_SCALES, aspect_ratios=RETINA_RATIOS)
    assert gen.num_anchors_per_location == 9
    # 128 x 128 input: grids 16, 8, 4, 2, 1 -> (256 + 64 + 16 + 4 + 1) * 9 anchors.
    anchors = gen([(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)])
    assert anchors.num_per_level == (256 * 9, 64 * 9, 16 * 9, 4 * 9, 9)
    # First anchor of P3: ratio h/w = 0.5, scale 1, side 4 * 8 = 32, centred at (0, 0):
    # w = 32 / sqrt(0.5) = 45.2548, h = 32 * sqrt(0.5) = 22.6274.
    w, h = 32 / math.sqrt(0.5), 32 * math.sqrt(0.5)
    assert torch.allclose(anchors.boxes[0], torch.tensor([-w / 2, -h / 2, w / 2, h / 2]))
    # Row j = location * 9 + a. Location 1 of P3 is (x=8, y=0); a = 4 is ratio 1
    # (second ratio), scale 2^(1/3) (second scale): side 32 * 1.2599 = 40.3175.
    side = 32 * 2 ** (1 / 3)
    expected = torch.tensor([8 - side / 2, -side / 2, 8 + side / 2, side / 2])
    assert torch.allclose(anchors.boxes[1 * 9 + 4], expected)
    assert anchors.centers[1 * 9 + 4].tolist() == [8.0, 0.0]
    # Every anchor of one scale keeps the area (4 * stride * scale)^2 whatever its ratio.
    shapes = cell_anchor_shapes(128, 4.0, RETINA_SCALES, RETINA_RATIOS)
    areas = (shapes[:, 2] - shapes[:, 0]) * (shapes[:, 3] - shapes[:, 1])
    expected_areas = torch.tensor([(512 * s) ** 2 for _ in RETINA_RATIOS for s in RETINA_SCALES])
    assert torch.allclose(areas, expected_areas, rtol=1e-5)
    # The P7 anchor centre sits at (0, 0) with stride 128 (explicit, not image // grid).
    assert anchors.centers[-1].tolist() == [0.0, 0.0] and anchors.strides[-1] == 128


def test_anchor_generator_rejects_bad_settings():
    with pytest.raises(ValueError, match="one anchor per location"):
        AnchorGenerator(strides=(8,), kind="point", scales=(1.0, 2.0))
    with pytest.raises(ValueError, match="'box' or 'point'"):
        AnchorGenerator(strides=(8,), kind="boxes")
    with pytest.raises(ValueError, match="2 feature maps for 1 strides"):
        AnchorGenerator(strides=(8,))([(2, 2), (1, 1)])


# ----------------------------------------------------------------------------- head

def test_flatten_level_order_matches_anchor_rows():
    # Encode (a, k, y, x) in the value: 1000*a + 100*k + 10*y + x, A = 2, K = 3, H = 2, W = 3.
    a, k, y, x = torch.meshgrid(torch.arange(2), torch.arange(3), torch.arange(2), torch.arange(3),
                                indexing="ij")
    value = (1000 * a + 100 * k + 10 * y + x).reshape(1, 6, 2, 3).float()
    flat = flatten_level(value, 3)                 # (1, H*W*A, K)
    # Row j = (y * W + x) * A + a; column k.
    row = (1 * 3 + 2) * 2 + 1                      # y=1, x=2, a=1
    assert flat[0, row].tolist() == [1000 + 12, 1100 + 12, 1200 + 12]


def make_head(**kwargs) -> DenseHead:
    settings = dict(in_channels=16, num_classes=1, num_anchors=1, strides=(8, 16), num_convs=2,
                    norm="gn", gn_groups=4, box_output="ltrb", aux=None)
    settings.update(kwargs)
    return DenseHead(**settings)


def test_head_output_shapes():
    torch.manual_seed(0)
    head = make_head(num_anchors=9, box_output="deltas", aux="iou", norm="none")
    feats = [torch.randn(2, 16, 4, 4), torch.randn(2, 16, 2, 2)]
    out = head(feats)
    j = (16 + 4) * 9
    assert out.cls_logits.shape == (2, j, 1)
    assert out.box.shape == (2, j, 4)
    assert out.aux.shape == (2, j)
    assert make_head()(feats).aux is None


def test_head_init_prior_and_std():
    torch.manual_seed(0)
    head = make_head(in_channels=64, gn_groups=8, aux="centerness")
    # Bias prior: sigmoid(b) = 0.01  <=>  b = -ln(99) = -4.5951.
    assert torch.allclose(torch.sigmoid(head.cls_logits.bias), torch.tensor(0.01))
    assert head.box_pred.bias.abs().max() == 0 and head.aux_pred.bias.abs().max() == 0
    # Conv weights ~ N(0, 0.01): 64*64*9 = 36,864 samples per tower conv.
    w = head.cls_tower[0].weight
    assert abs(w.std().item() - 0.01) < 5e-4 and abs(w.mean().item()) < 5e-4
    assert [s.scale.item() for s in head.scales] == [1.0, 1.0]


def test_head_ltrb_is_relu_of_scaled_conv_times_stride():
    head = make_head()
    with torch.no_grad():
        head.box_pred.weight.zero_()
        head.box_pred.bias.copy_(torch.tensor([1.0, 1.0, -1.0, 0.5]))
        head.scales[1].scale.fill_(2.0)
    out = head([torch.randn(1, 16, 2, 2), torch.randn(1, 16, 1, 1)])
    # P3 (stride 8, scale 1): relu([1, 1, -1, 0.5]) * 8 = [8, 8, 0, 4];
    # P4 (stride 16, scale 2): relu([2, 2, -2, 1]) * 16 = [32, 32, 0, 16].
    assert out.box[0, 0].tolist() == [8.0, 8.0, 0.0, 4.0]
    assert out.box[0, 4].tolist() == [32.0, 32.0, 0.0, 16.0]


def test_head_ltrb_exp_of_scaled_conv_times_stride():
    head = make_head(ltrb_activation="exp")
    with torch.no_grad():
        head.box_pred.weight.zero_()
        head.box_pred.bias.copy_(torch.tensor([0.0, math.log(2.0), -1.0, 50.0]))
        head.scales[1].scale.fill_(2.0)
    out = head([torch.randn(1, 16, 2, 2), torch.randn(1, 16, 1, 1)])
    # P3 (stride 8): exp([0, ln 2, -1, min(50, 10)]) * 8; the exponent is capped at 10.
    expected_p3 = torch.tensor([8.0, 16.0, 8.0 * math.exp(-1.0), 8.0 * math.exp(10.0)])
    assert torch.allclose(out.box[0, 0], expected_p3)
    # P4 (stride 16, scale 2): exp([0, 2 ln 2, -2, 10]) * 16.
    expected_p4 = torch.tensor([16.0, 64.0, 16.0 * math.exp(-2.0), 16.0 * math.exp(10.0)])
    assert torch.allclose(out.box[0, 4], expected_p4)


@pytest.mark.parametrize("activation, grad_expected", [("relu", False), ("exp", True)])
def test_a_negative_ltrb_side_gets_gradient_only_with_exp(activation, grad_expected):
    """The mini profile's reason for exp: with relu, a side pushed below zero everywhere
    gives zero-width boxes and no gradient to recover from (found on synthcrowd, where
    AdamW killed whole sides of the FCOS-family heads)."""
    head = make_head(ltrb_activation=activation)
    with torch.no_grad():
        head.box_pred.weight.zero_()
        head.box_pred.bias.fill_(-3.0)
    out = head([torch.randn(1, 16, 2, 2), torch.randn(1, 16, 1, 1)])
    out.box.sum().backward()
    grad = head.box_pred.bias.grad
    assert bool((grad.abs() > 0).all()) is grad_expected
    assert bool((out.box > 0).all()) is grad_expected


def test_head_rejects_an_unknown_ltrb_activation():
    with pytest.raises(ValueError, match="ltrb_activation must be one of"):
        make_head(ltrb_activation="softplus")


def test_head_rejects_indivisible_group_norm():
    with pytest.raises(ValueError, match="6 groups do not divide 16 channels"):
        make_head(gn_groups=6)


# ----------------------------------------------------------------------------- box coders

def test_delta_coder_roundtrip_and_torchvision_semantics():
    anchors = torch.tensor([[0.0, 0.0, 10.0, 20.0], [5.0, 5.0, 45.0, 25.0]])
    gt = torch.tensor([[2.0, 1.0, 14.0, 17.0], [0.0, 10.0, 30.0, 40.0]])
    coder = DeltaBoxCoder()
    deltas = coder.encode(gt, anchors)
    # Anchor 0: centre (5, 10), size (10, 20); GT 0: centre (8, 9), size (12, 16):
    # dx = 3/10, dy = -1/20, dw = ln(1.2), dh = ln(0.8).
    assert torch.allclose(deltas[0], torch.tensor([0.3, -0.05, math.log(1.2), math.log(0.8)]))
    assert torch.allclose(coder.decode(deltas, anchors), gt, atol=1e-5)


def test_ltrb_coder_roundtrip():
    points = torch.tensor([[5.0, 6.0, 5.0, 6.0], [40.0, 0.0, 40.0, 0.0]])
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [30.0, -5.0, 60.0, 20.0]])
    coder = LTRBBoxCoder()
    ltrb = coder.encode(gt, points)
    # Point (5, 6) in [0, 0, 10, 10]: l = 5, t = 6, r = 5, b = 4.
    assert ltrb[0].tolist() == [5.0, 6.0, 5.0, 4.0]
    assert torch.equal(coder.decode(ltrb, points), gt)


# ----------------------------------------------------------------------------- losses

# One image, three point anchors, GT 0 = valid person [0, 0, 10, 10], GT 1 = ignore box.
# Anchor 0 -> GT 0 (positive), anchor 1 negative, anchor 2 -> the ignore GT (ignored).
POINTS = torch.tensor([[5.0, 2.5, 5.0, 2.5], [50.0, 50.0, 50.0, 50.0], [25.0, 25.0, 25.0, 25.0]])
TARGET = ImageTargets(boxes=torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]),
                      ignore=torch.tensor([False, True]), labels=torch.tensor([0, 0]))
# Predicted box of anchor 0: [0, 0, 10, 5] -> IoU 50 / 100 = 0.5; the enclosing box is
# the GT itself, so GIoU = 0.5 and the GIoU loss 1 - 0.5 = 0.5.
PRED_BOXES = torch.tensor([[[0.0, 0.0, 10.0, 5.0], [40.0, 40.0, 60.0, 60.0], [20.0, 20.0, 30.0, 30.0]]])
# Focal loss, logit 0 (p = 0.5): positive 0.25 * 0.5^2 * ln 2 = 0.0433217,
# negative 0.75 * 0.5^2 * ln 2 = 0.1299651.
FOCAL_POS = 0.25 * 0.25 * math.log(2)
FOCAL_NEG = 0.75 * 0.25 * math.log(2)


def run_loss(cfg: LossConfig, *, cls=None, aux=None, aux_kind=None, weights=None,
             matched=(0, NEGATIVE, 1), box_out=None, anchors=POINTS, pred=PRED_BOXES,
             target=TARGET, coder=None):
    cls = torch.tensor([[[0.0], [0.0], [5.0]]], requires_grad=True) if cls is None else cls
    assignment = Assignment(matched_gt=torch.tensor(matched), weights=weights)
    return dense_detection_loss(
        cls_logits=cls, box_out=pred if box_out is None else box_out, pred_boxes=pred,
        aux_logits=aux, aux_kind=aux_kind, anchors=anchors, targets=[target],
        assignments=[assignment], box_coder=coder or LTRBBoxCoder(), cfg=cfg)


def test_loss_hand_case_giou_and_ignored_anchor():
    cls = torch.tensor([[[0.0], [0.0], [5.0]]], requires_grad=True)
    losses, norm = run_loss(LossConfig(box="giou", box_weight=2.0), cls=cls)
    assert norm.item() == 1.0                                  # one positive
    assert losses["loss_cls"].item() == pytest.approx(FOCAL_POS + FOCAL_NEG, rel=1e-6)
    assert losses["loss_box"].item() == pytest.approx(2.0 * 0.5, rel=1e-6)
    losses["loss_cls"].backward()
    # The anchor on the ignore GT (logit 5) takes no part: zero gradient.
    assert cls.grad[0, 2, 0] == 0 and cls.grad[0, 0, 0] != 0


def test_loss_ignored_anchor_does_not_change_the_value():
    a = run_loss(LossConfig(), cls=torch.tensor([[[0.0], [0.0], [5.0]]]))[0]
    b = run_loss(LossConfig(), cls=torch.tensor([[[0.0], [0.0], [-3.0]]]))[0]
    assert a["loss_cls"].item() == b["loss_cls"].item()
    # IGNORED (-2) behaves the same as a match to an ignore GT.
    c = run_loss(LossConfig(), matched=(0, NEGATIVE, IGNORED))[0]
    assert c["loss_cls"].item() == a["loss_cls"].item()


def test_loss_normalizer_matched_counts_anchors_on_ignore_gts():
    losses, norm = run_loss(LossConfig(box="giou", box_weight=2.0, normalizer="matched"))
    # 1 positive + 1 anchor matched to the ignore GT = 2.
    assert norm.item() == 2.0
    assert losses["loss_box"].item() == pytest.approx(0.5, rel=1e-6)


def test_iou_and_linear_iou_box_losses():
    iou = run_loss(LossConfig(box="iou", box_weight=1.0))[0]["loss_box"]
    lin = run_loss(LossConfig(box="linear_iou", box_weight=1.0))[0]["loss_box"]
    assert iou.item() == pytest.approx(math.log(2), rel=1e-6)   # -ln 0.5
    assert lin.item() == pytest.approx(0.5, rel=1e-6)           # 1 - 0.5


def test_smooth_l1_on_deltas():
    # Anchor box 0 equals its GT, so the target deltas are 0; a predicted dx of 1
    # costs smooth_l1(1, beta=0.1) = 1 - 0.1 / 2 = 0.95.
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [40.0, 40.0, 60.0, 60.0], [20.0, 20.0, 30.0, 30.0]])
    box_out = torch.zeros(1, 3, 4)
    box_out[0, 0, 0] = 1.0
    losses, _ = run_loss(LossConfig(box="smooth_l1", box_weight=1.0, smooth_l1_beta=0.1),
                         box_out=box_out, anchors=anchors, coder=DeltaBoxCoder())
    assert losses["loss_box"].item() == pytest.approx(0.95, rel=1e-6)


def test_iou_branch_target_is_detached_iou():
    aux = torch.zeros(1, 3, requires_grad=True)
    pred = PRED_BOXES.clone().requires_grad_(True)
    losses, _ = run_loss(LossConfig(aux_weight=0.5), aux=aux, aux_kind="iou", pred=pred)
    # Target IoU 0.5, logit 0: BCE = -(0.5 ln 0.5 + 0.5 ln 0.5) = ln 2; x 0.5.
    assert losses["loss_aux"].item() == pytest.approx(0.5 * math.log(2), rel=1e-6)
    # With logit 1 the BCE gradient on the positive is sigmoid(1) - 0.5 = 0.2311 (x 0.5
    # weight); the target carries no gradient into the predicted box.
    aux = torch.tensor([[1.0, 1.0, 1.0]], requires_grad=True)
    losses, _ = run_loss(LossConfig(aux_weight=0.5), aux=aux, aux_kind="iou", pred=pred)
    losses["loss_aux"].backward()
    assert pred.grad is None or pred.grad.abs().sum() == 0
    expected = 0.5 * (torch.sigmoid(torch.tensor(1.0)).item() - 0.5)
    assert aux.grad[0].tolist() == pytest.approx([expected, 0.0, 0.0], rel=1e-5)


def test_centerness_target_and_loss():
    # Point (5, 2.5) in [0, 0, 10, 10]: l = r = 5, t = 2.5, b = 7.5 -> sqrt(1 * 1/3) = 0.57735.
    target = centerness_target(torch.tensor([[5.0, 2.5], [15.0, 5.0]]),
                               torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 2))
    assert target[0].item() == pytest.approx(math.sqrt(1 / 3), rel=1e-6)
    assert target[1].item() == 0.0                              # outside the box
    c = math.sqrt(1 / 3)
    losses, _ = run_loss(LossConfig(aux_weight=1.0), aux=torch.zeros(1, 3), aux_kind="centerness")
    # BCE(logit 0, target c) = ln 2 whatever c is (sigmoid(0) = 1/2): -(c + 1 - c) ln(1/2).
    assert losses["loss_aux"].item() == pytest.approx(math.log(2), rel=1e-6)
    losses, _ = run_loss(LossConfig(aux_weight=1.0), aux=torch.full((1, 3), 1.0), aux_kind="centerness")
    expected = -(c * math.log(torch.sigmoid(torch.tensor(1.0)).item())
                 + (1 - c) * math.log(1 - torch.sigmoid(torch.tensor(1.0)).item()))
    assert losses["loss_aux"].item() == pytest.approx(expected, rel=1e-5)


# Anchors 0 and 1 both match GT 0. Anchor 0: point (5, 2.5), centerness c = sqrt(1/3),
# GIoU loss 0.5. Anchor 1: point (5, 5), centerness 1, predicts the GT exactly (loss 0).
CTR_ANCHORS = torch.tensor([[5.0, 2.5, 5.0, 2.5], [5.0, 5.0, 5.0, 5.0], [25.0, 25.0, 25.0, 25.0]])
CTR_PRED = torch.tensor([[[0.0, 0.0, 10.0, 5.0], [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]])


def test_centerness_weighted_box_loss_divided_by_the_centerness_sum():
    # Weighted: 2 * (0.5 c + 0 * 1) / (c + 1) = 0.366025; unweighted: 2 * (0.5 + 0) / 2 = 0.5.
    c = math.sqrt(1 / 3)
    weighted, norm = run_loss(LossConfig(box_weighting="centerness", box_weighting_normalizer="weight_sum"),
                              matched=(0, 0, 1), anchors=CTR_ANCHORS, pred=CTR_PRED)
    plain, _ = run_loss(LossConfig(), matched=(0, 0, 1), anchors=CTR_ANCHORS, pred=CTR_PRED)
    assert weighted["loss_box"].item() == pytest.approx(2 * 0.5 * c / (c + 1), rel=1e-6)
    assert plain["loss_box"].item() == pytest.approx(0.5, rel=1e-6)
    assert norm.item() == 2.0                         # the cls term still divides by positives
    assert weighted["loss_cls"].item() == plain["loss_cls"].item()


def test_centerness_weighted_box_loss_divided_by_the_positives():
    # The authors' form: 2 * (0.5 c + 0 * 1) / 2 positives = 0.5 c = 0.288675.
    c = math.sqrt(1 / 3)
    weighted, norm = run_loss(LossConfig(box_weighting="centerness", box_weighting_normalizer="positives"),
                              matched=(0, 0, 1), anchors=CTR_ANCHORS, pred=CTR_PRED)
    assert weighted["loss_box"].item() == pytest.approx(0.5 * c, rel=1e-6)
    assert norm.item() == 2.0
    assert LossConfig().box_weighting_normalizer == "positives"
    # It divides by the same normaliser as the other terms, "matched" included: the anchor on
    # the ignore GT makes it 3 -> 2 * 0.5 c / 3.
    matched, norm = run_loss(LossConfig(box_weighting="centerness", normalizer="matched"),
                             matched=(0, 0, 1), anchors=CTR_ANCHORS, pred=CTR_PRED)
    assert norm.item() == 3.0
    assert matched["loss_box"].item() == pytest.approx(2 * 0.5 * c / 3, rel=1e-6)


def test_iou_weighted_box_loss_by_either_normalizer():
    # PAA's weighting: anchor 0's prediction has IoU 0.5 (GIoU loss 0.5), anchor 1's IoU 1 (loss 0).
    # weight_sum: 2 * (0.5 * 0.5 + 0 * 1) / (0.5 + 1) = 1/3; positives: 2 * 0.25 / 2 = 0.25.
    by_sum, _ = run_loss(LossConfig(box_weighting="iou", box_weighting_normalizer="weight_sum"),
                         matched=(0, 0, 1), anchors=CTR_ANCHORS, pred=CTR_PRED)
    by_count, _ = run_loss(LossConfig(box_weighting="iou", box_weighting_normalizer="positives"),
                           matched=(0, 0, 1), anchors=CTR_ANCHORS, pred=CTR_PRED)
    assert by_sum["loss_box"].item() == pytest.approx(1 / 3, rel=1e-6)
    assert by_count["loss_box"].item() == pytest.approx(0.25, rel=1e-6)


def test_per_anchor_weights_scale_their_terms():
    losses, _ = run_loss(LossConfig(box="giou", box_weight=2.0),
                         weights=torch.tensor([2.0, 1.0, 7.0]))
    assert losses["loss_cls"].item() == pytest.approx(2 * FOCAL_POS + FOCAL_NEG, rel=1e-6)
    assert losses["loss_box"].item() == pytest.approx(2.0 * 2 * 0.5, rel=1e-6)


def test_empty_gt_gives_zero_box_loss_and_finite_cls_loss():
    empty = ImageTargets(boxes=torch.zeros(0, 4), ignore=torch.zeros(0, dtype=torch.bool),
                         labels=torch.zeros(0, dtype=torch.int64))
    pred = PRED_BOXES.clone().requires_grad_(True)
    losses, norm = run_loss(LossConfig(aux_weight=0.5), matched=(NEGATIVE,) * 3, target=empty,
                            pred=pred, aux=torch.zeros(1, 3), aux_kind="iou")
    assert norm.item() == 1.0                                   # 0 positives clamped to 1
    assert losses["loss_box"].item() == 0.0 and losses["loss_aux"].item() == 0.0
    # cls: three negatives; logits 0, 0, 5: 0.75 * p^2 * -ln(1 - p) each.
    p = torch.sigmoid(torch.tensor(5.0)).item()
    expected = 2 * FOCAL_NEG + 0.75 * p ** 2 * -math.log(1 - p)
    assert losses["loss_cls"].item() == pytest.approx(expected, rel=1e-5)
    sum(losses.values()).backward()                             # still part of the graph
    assert torch.equal(pred.grad, torch.zeros_like(pred))


def test_normalizer_is_all_reduced_once_per_batch(monkeypatch):
    calls = []

    def fake_all_reduce(tensor):                                 # a second rank with 3 positives
        calls.append(tensor.item())
        tensor.add_(3.0)

    monkeypatch.setattr(normalizer_module.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(normalizer_module.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(normalizer_module.dist, "all_reduce", fake_all_reduce)
    assignment = Assignment(matched_gt=torch.tensor([0, NEGATIVE, 1]))
    _, norm = dense_detection_loss(
        cls_logits=torch.zeros(2, 3, 1), box_out=PRED_BOXES.repeat(2, 1, 1),
        pred_boxes=PRED_BOXES.repeat(2, 1, 1), aux_logits=None, aux_kind=None, anchors=POINTS,
        targets=[TARGET, TARGET], assignments=[assignment, assignment], box_coder=LTRBBoxCoder(),
        cfg=LossConfig())
    # This rank: 2 images x 1 positive = 2; ranks together 2 + 3 = 5; mean over 2 ranks 2.5.
    assert calls == [2.0]
    assert norm.item() == 2.5
    assert batch_normalizer(torch.tensor(0.0)).item() == 1.5   # (0 + 3) / 2
    # Centerness weighting divided by the centerness sum sends the positive count and that
    # sum in the same single all-reduce: a 2-vector, one call.
    calls.clear()
    monkeypatch.setattr(normalizer_module.dist, "all_reduce",
                        lambda t: calls.append(t.tolist()) or t.add_(3.0))
    dense_detection_loss(
        cls_logits=torch.zeros(1, 3, 1), box_out=PRED_BOXES, pred_boxes=PRED_BOXES,
        aux_logits=None, aux_kind=None, anchors=POINTS, targets=[TARGET], assignments=[assignment],
        box_coder=LTRBBoxCoder(), cfg=LossConfig(box_weighting="centerness", box_weighting_normalizer="weight_sum"))
    assert calls == [pytest.approx([1.0, math.sqrt(1 / 3)])]
    # Divided by the positives, it needs the count only: one scalar all-reduce.
    calls.clear()
    dense_detection_loss(
        cls_logits=torch.zeros(1, 3, 1), box_out=PRED_BOXES, pred_boxes=PRED_BOXES,
        aux_logits=None, aux_kind=None, anchors=POINTS, targets=[TARGET], assignments=[assignment],
        box_coder=LTRBBoxCoder(), cfg=LossConfig(box_weighting="centerness", box_weighting_normalizer="positives"))
    assert calls == [1.0]


def test_loss_config_rejects_unknown_names():
    with pytest.raises(ValueError, match="loss.box must be one of"):
        LossConfig(box="l2")
    with pytest.raises(ValueError, match="loss.normalizer"):
        LossConfig(normalizer="anchors")
    with pytest.raises(ValueError, match="loss.box_weighting_normalizer must be one of"):
        LossConfig(box_weighting="centerness", box_weighting_normalizer="centerness_sum")


def test_elementwise_iou_handles_degenerate_boxes():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 5.0, 5.0]])
    # Row 0 against [5, 0, 15, 10]: intersection 50, union 150 -> 1/3; a point gives 0, not NaN.
    other = torch.tensor([[5.0, 0.0, 15.0, 10.0], [5.0, 5.0, 5.0, 5.0]])
    assert elementwise_iou(boxes, other).tolist() == pytest.approx([1 / 3, 0.0])


# ----------------------------------------------------------------------------- postprocess

def one_level(points, ltrb, probs, aux=None, cfg=None, image_size=(100, 100), original_size=None,
              num_per_level=None):
    anchors = torch.tensor([[x, y, x, y] for x, y in points], dtype=torch.float32)
    return postprocess_image(
        cls_logits=torch.tensor([[logit(p)] for p in probs]),
        box_out=torch.tensor(ltrb, dtype=torch.float32),
        aux_logits=None if aux is None else torch.tensor([logit(a) for a in aux]),
        anchors=anchors, num_per_level=num_per_level or [len(points)], box_coder=LTRBBoxCoder(),
        image_size=image_size, original_size=original_size, cfg=cfg or PostprocessConfig())


def test_threshold_applies_to_p_before_fusion():
    # Anchor 0: p = 0.06 > 0.05 kept although sqrt(0.06 * 0.01) = 0.0245 < 0.05.
    # Anchor 1: p = 0.04 dropped although sqrt(0.04 * 0.99) = 0.199 > 0.05.
    det = one_level([(20, 20), (70, 70)], [[5, 5, 5, 5]] * 2, [0.06, 0.04], aux=[0.01, 0.99])
    assert det["scores"].tolist() == pytest.approx([math.sqrt(0.06 * 0.01)], rel=1e-5)
    assert det["boxes"].tolist() == [[15.0, 15.0, 25.0, 25.0]]
    assert det["labels"].tolist() == [0]


def test_nms_threshold_comes_from_config():
    # [0, 0, 10, 10] vs [0, 0, 10, 5.5]: IoU = 55 / 100 = 0.55.
    pts, ltrb = [(5, 5), (5, 2.75)], [[5, 5, 5, 5], [5, 2.75, 5, 2.75]]
    strict = one_level(pts, ltrb, [0.9, 0.8], cfg=PostprocessConfig(nms_thresh=0.5))
    loose = one_level(pts, ltrb, [0.9, 0.8], cfg=PostprocessConfig(nms_thresh=0.6))
    assert strict["scores"].tolist() == pytest.approx([0.9])
    assert loose["scores"].tolist() == pytest.approx([0.9, 0.8])


def test_topk_per_level_and_detection_cap():
    # 20 x 20 grid of disjoint 2x2 boxes with distinct p in (0.1, 0.9): 400 candidates.
    points = [(5 * i + 2, 5 * j + 2) for i in range(20) for j in range(20)]
    probs = torch.linspace(0.1, 0.9, 400).tolist()
    det = one_level(points, [[1, 1, 1, 1]] * 400, probs, image_size=(200, 200))
    # Cap 300: the 300 highest, in decreasing order.
    assert len(det["scores"]) == 300
    assert det["scores"].tolist() == pytest.approx(sorted(probs, reverse=True)[:300], rel=1e-5)
    # top-k is per level: two levels of 200 with topk_per_level = 50 -> 100 survive.
    det = one_level(points, [[1, 1, 1, 1]] * 400, probs, image_size=(200, 200),
                    num_per_level=[200, 200], cfg=PostprocessConfig(topk_per_level=50))
    expected = sorted(probs[:200], reverse=True)[:50] + sorted(probs[200:], reverse=True)[:50]
    assert sorted(det["scores"].tolist()) == pytest.approx(sorted(expected), rel=1e-5)


def test_rescale_to_original_size_and_clip():
    # Input image 100 (h) x 200 (w), original 200 (h) x 100 (w): x * 0.5, y * 2.
    # Box [10, 10, 50, 50] -> [5, 20, 25, 100]. Box [150, 60, 250, 120] is clipped to the
    # input first ([150, 60, 200, 100]) -> [75, 120, 100, 200].
    det = one_level([(30, 30), (200, 90)], [[20, 20, 20, 20], [50, 30, 50, 30]], [0.9, 0.8],
                    image_size=(100, 200), original_size=(200, 100))
    assert det["boxes"].tolist() == [[5.0, 20.0, 25.0, 100.0], [75.0, 120.0, 100.0, 200.0]]


def test_rescale_uses_the_exact_dataset_scale_when_given():
    # Original 1333 wide resized by 0.6 -> 799.8, rounded to 800 px. The exact factor maps
    # x = 600 back to 600 / 0.6 = 1000; the size ratio would give 600 * 1333 / 800 = 999.75.
    det = one_level([(600, 100)], [[0, 0, 0, 0]], [0.9], image_size=(480, 800),
                    original_size=(800, 1333))
    assert det["boxes"][0, 0].item() == pytest.approx(999.75)
    anchors = torch.tensor([[600.0, 100.0, 600.0, 100.0]])
    det = postprocess_image(cls_logits=torch.tensor([[logit(0.9)]]), box_out=torch.zeros(1, 4),
                            aux_logits=None, anchors=anchors, num_per_level=[1],
                            box_coder=LTRBBoxCoder(), image_size=(480, 800),
                            original_size=(800, 1333), cfg=PostprocessConfig(), scale=(0.6, 0.6))
    assert det["boxes"][0].tolist() == pytest.approx([1000.0, 100 / 0.6, 1000.0, 100 / 0.6])


def test_postprocess_with_nothing_above_threshold():
    det = one_level([(5, 5)], [[1, 1, 1, 1]], [0.01])
    assert det["boxes"].shape == (0, 4) and det["scores"].shape == (0,)


def test_tiny_backbone_depth_picks_the_blocks_per_stage():
    # {50: 1, 101: 2}: the ResNet-101 rows of the mini profile get two residual blocks after
    # each stride-2 conv of C3..C5, the ResNet-50 rows one; a depth without an entry fails.
    from lla.models.backbone import build_backbone

    cfg = {"name": "tiny", "widths": [8, 8, 16, 16], "blocks_per_stage": {50: 1, 101: 2},
           "norm": "gn", "gn_groups": 4}
    for depth, blocks in ((50, 1), (101, 2)):
        backbone = build_backbone(dict(cfg, depth=depth), p6p7_source="p5", out_channels=8)
        # each stage: the stride-2 ConvNormAct, then `blocks` residual blocks
        assert [len(stage) - 1 for stage in backbone.body.stages] == [blocks] * 3
    assert [len(s) - 1 for s in build_backbone(dict(cfg, blocks_per_stage=3), p6p7_source="p5",
                                                out_channels=8).body.stages] == [3] * 3
    with pytest.raises(ValueError, match="no entry for depth 152"):
        build_backbone(dict(cfg, depth=152), p6p7_source="p5", out_channels=8)


def test_finest_level_2_gives_a_p2_to_p6_pyramid():
    # finest_level 2: the body also returns its stem output (stride 4), the FPN builds P2..P5
    # and adds P6 only: five levels at strides 4..64 on a 128 x 256 input. The body's
    # parameters are those of finest_level 3, and finest_level 3 is the default.
    from lla.models.backbone import build_backbone

    cfg = {"name": "tiny", "widths": [8, 8, 16, 16], "norm": "gn", "gn_groups": 4}
    torch.manual_seed(0)
    p2 = build_backbone(dict(cfg, finest_level=2), p6p7_source="p5", out_channels=8)
    features = p2(torch.zeros(1, 3, 128, 256))
    assert [tuple(f.shape[-2:]) for f in features] == [(32, 64), (16, 32), (8, 16), (4, 8), (2, 4)]
    assert p2.fpn.extra_blocks.p7 is None
    torch.manual_seed(0)
    p3 = build_backbone(cfg, p6p7_source="p5", out_channels=8)
    torch.manual_seed(0)
    explicit = build_backbone(dict(cfg, finest_level=3), p6p7_source="p5", out_channels=8)
    assert all(torch.equal(a, b) for a, b in zip(p3.state_dict().values(),
                                                 explicit.state_dict().values()))
    assert p2.body.state_dict().keys() == p3.body.state_dict().keys()
    assert [tuple(f.shape[-2:]) for f in p3(torch.zeros(1, 3, 128, 256))] == \
        [(16, 32), (8, 16), (4, 8), (2, 4), (1, 2)]
    with pytest.raises(ValueError, match="finest_level"):
        build_backbone(dict(cfg, finest_level=4), p6p7_source="p5", out_channels=8)


def test_a_detector_on_strides_4_to_64_trains():
    # The micro LLA.FCOS with a P2..P6 pyramid: anchors at strides 4..64, a finite loss.
    from lla.config import load_params
    from lla.models.build import build_detector

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    params["models"]["micro"]["strides"] = [4, 8, 16, 32, 64]
    params["models"]["micro"]["backbone"]["finest_level"] = 2
    torch.manual_seed(0)
    model = build_detector(params, "lla_fcos", "micro")
    images = [torch.rand(3, 128, 128)]
    targets = [{"boxes": torch.tensor([[30.0, 20.0, 50.0, 80.0]]), "labels": torch.tensor([0])}]
    losses, diagnostics = model(images, targets, return_assignments=True)
    assert diagnostics.anchors.num_per_level == (32 * 32, 16 * 16, 8 * 8, 4 * 4, 2 * 2)
    assert all(torch.isfinite(v) for v in losses.values())
    # K = 10 positives, all on or near the person (the finest level holds 5 x 15 points in it)
    assert int((diagnostics.assignments[0].matched_gt == 0).sum()) == 10
