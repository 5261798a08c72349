"""Every detector variant of params.yaml builds and trains; detector plumbing and builders."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet
from torchvision.ops.misc import FrozenBatchNorm2d

from lla.assign.base import NEGATIVE
from lla.config import load_params
from lla.errors import DataError
from lla.models import build_detector, resolve_variant, variant_names
from lla.models.backbone import TinyBody, resnet_body
from lla.models.detector import to_image_targets

PARAMS_PATH = Path(__file__).resolve().parents[1] / "params.yaml"
PARAMS = load_params(PARAMS_PATH)
VARIANTS = variant_names(PARAMS, "micro")



def micro_batch():
    """2 images of 128 x 128 (the second one 120 x 100, padded): GTs, an ignore box, an empty image."""
    torch.manual_seed(0)
    images = [torch.rand(3, 128, 128), torch.rand(3, 120, 100)]
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 50.0, 110.0], [40.0, 30.0, 90.0, 120.0]]),
                "ignore_boxes": torch.tensor([[0.0, 0.0, 20.0, 20.0]])},
               {"boxes": torch.zeros(0, 4)}]
    return images, targets


def test_params_define_the_paper_rows():
    expected = {"retinanet", "retinanet_star", "retinanet_star_a1", "lla_retinanet_star_a1", "fcos",
                "fcos_ctr", "atss", "atss_ctr", "lla_fcos", "lla_fcos_iou"}
    assert expected <= set(VARIANTS)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_trains_and_predicts_on_a_micro_batch(variant):
    torch.manual_seed(0)
    model = build_detector(PARAMS, variant, "micro")
    images, targets = micro_batch()
    losses, diag = model(images, targets, return_assignments=True)
    assert {"loss_cls", "loss_box"} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    for name, param in trainable:
        assert param.grad is not None, f"{variant}: no gradient for {name}"
        assert torch.isfinite(param.grad).all(), f"{variant}: non-finite gradient for {name}"
    # Diagnostics for the analyses: one assignment per image over all anchors, levels per anchor.
    j = len(diag.anchors)
    assert [a.matched_gt.shape for a in diag.assignments] == [(j,), (j,)]
    assert diag.anchors.levels.shape == (j,) and int(diag.anchors.levels.max()) == 4
    assert (diag.assignments[1].matched_gt == NEGATIVE).all()   # the image without GT
    assert diag.normalizer >= 1.0
    model.eval()
    # At initialisation every p is 0.01 (the prior), below 0.05: nothing is detected.
    assert all(len(d["boxes"]) == 0 for d in model(images))
    # Threshold 0 lets every anchor through: the NMS/cap/rescale path runs for real.
    model.postprocess_cfg = dataclasses.replace(model.postprocess_cfg, score_thresh=0.0)
    detections = model(images, original_sizes=[(256, 256), (240, 200)], scales=[(0.5, 0.5), (0.5, 0.5)])
    assert len(detections) == 2
    for det, (h, w) in zip(detections, [(256, 256), (240, 200)]):
        assert 0 < det["boxes"].shape[0] == det["scores"].shape[0] <= 300
        assert torch.isfinite(det["boxes"]).all() and (det["scores"][:-1] >= det["scores"][1:]).all()
        assert det["boxes"][:, 2].max() <= w and det["boxes"][:, 3].max() <= h
        assert det["boxes"].min() >= 0


def test_variant_settings_resolve_through_base_chain():
    cfg = resolve_variant(PARAMS, "lla_fcos_iou", "paper")
    # lla_fcos_iou -> lla_fcos -> fcos: points, P6 from P5, LLA with lambda 1.3, IoU branch.
    assert cfg["anchors"]["kind"] == "point" and cfg["p6p7_source"] == "p5"
    assert cfg["assigner"] == {"name": "lla", "topk": 10, "reg_weight": 1.3, "inbox_cost": 100.0,
                               "cls_cost": "focal", "reg_cost": "iou"}
    assert cfg["head"]["aux"] == "iou" and cfg["loss"]["aux_weight"] == 0.5
    assert cfg["loss"]["box"] == "giou" and cfg["loss"]["box_weight"] == 2.0
    assert cfg["inference"]["nms_thresh"] == 0.6 and cfg["inference"]["score_thresh"] == 0.05
    # The released-code preset changes lambda, P and the normaliser; the IoU variant inherits them.
    official = resolve_variant(PARAMS, "lla_fcos_iou", "official_code")
    assert official["assigner"]["reg_weight"] == 1.5 and official["assigner"]["inbox_cost"] == 1000.0
    assert official["loss"]["normalizer"] == "matched"
    # A named assigner replaces the inherited one instead of merging max-IoU thresholds into LLA.
    lla_retina = resolve_variant(PARAMS, "lla_retinanet_star_a1", "paper")
    assert "pos_iou_thr" not in lla_retina["assigner"] and lla_retina["assigner"]["reg_weight"] == 1.0
    assert resolve_variant(PARAMS, "retinanet", "paper")["inference"]["nms_thresh"] == 0.5


def test_retinanet_has_nine_anchors_and_a1_one():
    assert build_detector(PARAMS, "retinanet", "micro").head.num_anchors == 9
    assert build_detector(PARAMS, "lla_retinanet_star_a1", "micro").head.num_anchors == 1


def test_unknown_variant_and_inheritance_loop_name_the_record():
    with pytest.raises(DataError, match=r"params.yaml \[models.variants.nope\].*no 'nope'"):
        build_detector(PARAMS, "nope", "micro")
    params = copy.deepcopy(PARAMS)
    params["models"]["defaults"]["variants"]["a"] = {"base": "b"}
    params["models"]["defaults"]["variants"]["b"] = {"base": "a"}
    with pytest.raises(DataError, match="inheritance loop: a -> b -> a"):
        build_detector(params, "a", "micro")


def test_bad_variant_setting_is_a_data_error_naming_the_variant():
    params = copy.deepcopy(PARAMS)
    params["models"]["micro"]["head"]["gn_groups"] = 5
    with pytest.raises(DataError, match=r"\[models.variants.fcos\].*5 groups do not divide 32"):
        build_detector(params, "fcos", "micro")
    params = copy.deepcopy(PARAMS)
    params["models"]["defaults"]["variants"]["fcos_ctr"]["loss"].pop("aux_weight")
    with pytest.raises(DataError, match="aux_weight is not set"):
        build_detector(params, "fcos_ctr", "micro")


# ----------------------------------------------------------------------------- backbones

def test_tiny_backbone_size_and_levels():
    cfg = resolve_variant(PARAMS, "fcos", "mini")["backbone"]
    body = TinyBody(widths=cfg["widths"], norm=cfg["norm"], gn_groups=cfg["gn_groups"])
    params = sum(p.numel() for p in body.parameters())
    # widths 16, 32, 64, 128, one residual block per stage: the two residual 3x3 convs of
    # C5 alone are 2 x 9 x 128^2 = 295k weights; everything together about half a million
    assert 0.4e6 < params < 0.6e6
    assert all(p.requires_grad for p in body.parameters())      # trained from scratch
    feats = body(torch.zeros(1, 3, 128, 128))
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 16), (8, 8), (4, 4)]   # C3-C5


@pytest.mark.parametrize("variant, p6_in", [("retinanet", 2048), ("fcos", 256)])
def test_resnet50_paper_backbone_frozen_and_p6_source(variant, p6_in):
    params = copy.deepcopy(PARAMS)
    params["models"]["defaults"]["backbone"]["weights"] = None   # never download in tests
    model = build_detector(params, variant, "paper")
    body = model.backbone.body
    assert isinstance(body.stem[1], FrozenBatchNorm2d)
    assert not any(p.requires_grad for p in body.stem.parameters())
    assert not any(p.requires_grad for p in body.layer1.parameters())
    assert all(p.requires_grad for p in body.layer2.parameters())
    # RetinaNet: P6 from C5 (2048 channels); FCOS: P6 from P5 (256 channels).
    assert model.backbone.fpn.extra_blocks.p6.in_channels == p6_in
    assert model.head.cls_tower[0].out_channels == 256
    with torch.no_grad():
        feats = model.backbone(torch.zeros(1, 3, 128, 128))
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]


def test_resnet_weights_from_a_local_file(tmp_path):
    reference = resnet.resnet50(weights=None)
    torch.nn.init.constant_(reference.conv1.weight, 0.5)
    path = tmp_path / "r50.pth"
    torch.save(reference.state_dict(), path)
    body = resnet_body(depth=50, weights=str(path))
    assert torch.equal(body.stem[0].weight, reference.conv1.weight)
    with pytest.raises(FileNotFoundError, match="missing.pth: backbone weights file not found"):
        resnet_body(depth=50, weights=str(tmp_path / "missing.pth"))


def test_resnet_body_never_fetches_weights(monkeypatch):
    # `imagenet` is resolved to a local file before the model is built (lla.data.weights);
    # the body itself reads files only and never goes online.
    def online(*args, **kwargs):
        raise AssertionError("the backbone must not fetch weights")

    monkeypatch.setattr(resnet.ResNet50_Weights, "get_state_dict", online)
    with pytest.raises(ValueError, match="'imagenet' must first be resolved to their local file"):
        resnet_body(depth=50, weights="imagenet")


# ----------------------------------------------------------------------------- detector plumbing

def test_preprocess_pads_to_128_and_keeps_sizes():
    model = build_detector(PARAMS, "fcos", "micro")
    batch, sizes = model.preprocess([torch.zeros(3, 100, 130), torch.zeros(3, 64, 64)])
    assert batch.shape == (2, 3, 128, 256) and sizes == [(100, 130), (64, 64)]
    # Pixels are normalised ((0 - mean) / std); padding stays 0.
    assert batch[1, 0, 0, 0].item() == pytest.approx(-0.485 / 0.229)
    assert batch[1, 0, 100, 100].item() == 0.0
    with pytest.raises(ValueError, match=r"images\[0\]: expected a float \(3, H, W\)"):
        model.preprocess([torch.zeros(1, 64, 64)])


def test_targets_concatenate_ignore_boxes_with_flag():
    t = to_image_targets({"boxes": [[0, 0, 5, 5]], "ignore_boxes": [[1, 1, 2, 2], [3, 3, 4, 4]]}, 0, "cpu")
    assert t.boxes.tolist() == [[0, 0, 5, 5], [1, 1, 2, 2], [3, 3, 4, 4]]
    assert t.ignore.tolist() == [False, True, True] and t.labels.tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match=r"targets\[3\]\['boxes'\]: expected \(n, 4\)"):
        to_image_targets({"boxes": [[0, 0, 5]]}, 3, "cpu")
    with pytest.raises(ValueError, match=r"targets\[1\]: missing 'boxes'"):
        to_image_targets({}, 1, "cpu")


def test_all_ignore_image_has_zero_box_loss():
    model = build_detector(PARAMS, "lla_fcos_iou", "micro")
    images = [torch.rand(3, 128, 128)]
    losses = model(images, [{"boxes": torch.zeros(0, 4), "ignore_boxes": [[10.0, 10.0, 90.0, 120.0]]}])
    assert losses["loss_box"].item() == 0.0 and losses["loss_aux"].item() == 0.0
    assert torch.isfinite(losses["loss_cls"])
