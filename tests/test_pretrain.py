"""`lla pretrain` (lla.engine.pretrain) and its crops (lla.data.crops): the crop geometry by
hand, a micro pretraining run end to end, and the detector loading the pretrained body."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from lla.cli import main
from lla.config import load_params
from lla.data.crops import BACKGROUND, PERSON, CropSampler, CropSettings, covered_fraction
from lla.engine.experiment import resolve_experiment
from lla.engine.model import build_model
from lla.errors import DataError
from lla.models.backbone import build_body, load_body_weights

REPO = Path(__file__).resolve().parents[1]


def test_covered_fraction_by_hand():
    crop = np.array([0.0, 0.0, 10.0, 10.0])
    boxes = np.array([[5.0, 5.0, 15.0, 15.0],    # a quarter of it inside
                      [2.0, 2.0, 4.0, 4.0],      # all of it
                      [20.0, 0.0, 30.0, 10.0]])  # none
    assert covered_fraction(crop, boxes).tolist() == [0.25, 1.0, 0.0]
    assert covered_fraction(crop, np.zeros((0, 4))).shape == (0,)


@pytest.fixture
def crop_json(tmp_path: Path) -> Path:
    """Two 128 x 128 images: a white 20 x 40 person on black, and black with a grey ignore box."""
    (tmp_path / "images").mkdir()
    pixels = np.zeros((128, 128, 3), np.uint8)
    pixels[40:80, 50:70] = 255
    Image.fromarray(pixels).save(tmp_path / "images" / "a.png")
    Image.new("RGB", (128, 128)).save(tmp_path / "images" / "b.png")

    def ann(ann_id, image_id, bbox, ignore=0):
        return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": bbox,
                "vis_box": bbox, "ignore": ignore, "iscrowd": ignore}

    data = {"info": {"image_root": "images"},
            "images": [{"id": 1, "file_name": "a.png", "width": 128, "height": 128},
                       {"id": 2, "file_name": "b.png", "width": 128, "height": 128}],
            "annotations": [ann(1, 1, [50, 40, 20, 40]), ann(2, 2, [0, 0, 64, 64], ignore=1)],
            "categories": [{"id": 1, "name": "person"}]}
    path = tmp_path / "train.json"
    path.write_text(json.dumps(data))
    return path


def test_crops_by_hand(crop_json):
    # No jitter: a person crop is the square of side 1.25 x 40 = 50 around the box centre
    # (60, 60); resized to 10 x 10 px its white 20 x 40 body covers columns 3..6 fully.
    exact = CropSettings(size=10, context=1.25, jitter=0.0, scale_jitter=1.0, background_fraction=0.0)
    sampler = CropSampler(crop_json, exact, seed=0)
    assert len(sampler) == 1
    images, labels = sampler.batch(0, 4)
    assert images.shape == (4, 3, 10, 10) and labels.tolist() == [PERSON] * 4
    column_means = images[0, 0].mean(dim=0)
    assert bool((column_means[3:7] > 0.75).all()) and bool((column_means[[0, 9]] < 0.05).all())
    # Only background: crops of side 50 placed where they cover <= 20 % of the person and
    # of the ignore box [0, 0, 64, 64]; the images are black there.
    background = CropSampler(crop_json, CropSettings(size=10, background_fraction=1.0), seed=0)
    images, labels = background.batch(3, 6)
    assert labels.tolist() == [BACKGROUND] * 6
    assert float(images.mean()) < 0.1
    # A batch is a pure function of (seed, step).
    assert torch.equal(background.batch(3, 6)[0], images)
    assert not torch.equal(background.batch(4, 6)[0], images)


def test_bad_crop_settings():
    with pytest.raises(ValueError):
        CropSettings(scale_jitter=0.9)
    with pytest.raises(ValueError):
        CropSettings(background_fraction=1.5)


def micro_params(tmp_path: Path) -> Path:
    """params.yaml with data_root in tmp_path and a hand-made micro crowdhuman train/val."""
    params = load_params(REPO / "params.yaml")
    params["data_root"] = str(tmp_path / "data")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(dict(params), sort_keys=False))
    converted = tmp_path / "data" / "synthcrowd" / "micro" / "crowdhuman" / "converted"
    (converted / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("one.png", "two.png"):
        pixels = rng.integers(0, 60, (96, 96, 3), dtype=np.uint8)
        pixels[20:70, 30:50] = 220
        Image.fromarray(pixels).save(converted / "images" / name)
    person = {"category_id": 1, "bbox": [30, 20, 20, 50], "vis_box": [30, 20, 20, 50],
              "ignore": 0, "iscrowd": 0}
    for split in ("train", "val"):
        data = {"info": {"image_root": "images"},
                "images": [{"id": 1, "file_name": "one.png", "width": 96, "height": 96},
                           {"id": 2, "file_name": "two.png", "width": 96, "height": 96}],
                "annotations": [dict(person, id=1, image_id=1), dict(person, id=2, image_id=2)],
                "categories": [{"id": 1, "name": "person"}]}
        (converted / f"{split}.json").write_text(json.dumps(data))
    return path


def test_pretrain_end_to_end_and_the_detector_loads_the_body(tmp_path):
    params_path = micro_params(tmp_path)
    out = tmp_path / "body.pt"
    assert main(["pretrain", "--profile", "micro", "--params", str(params_path), "--out", str(out)]) == 0
    saved = torch.load(out, weights_only=True)
    assert saved["format"] == "lla-pretrained-body-1" and saved["profile"] == "micro"
    assert [h["iteration"] for h in saved["history"]] == [2, 4, 6]
    assert 0.0 <= saved["val_accuracy"] <= 1.0
    # Deterministic: a second run writes the same weights.
    again = tmp_path / "again.pt"
    assert main(["pretrain", "--profile", "micro", "--params", str(params_path), "--out", str(again),
                 "--val-data", "none"]) == 0
    repeat = torch.load(again, weights_only=True)
    assert repeat["val_accuracy"] is None
    assert all(torch.equal(saved["body"][k], repeat["body"][k]) for k in saved["body"])
    # The pretrained body differs from a fresh one, and a detector built with
    # backbone.weights starts from it (FPN and head as without it).
    params = load_params(params_path)
    exp = resolve_experiment(params, "lla_fcos_r50", "micro")
    torch.manual_seed(0)
    plain = build_model(exp)
    exp.model["backbone"]["weights"] = str(out)
    torch.manual_seed(0)
    pretrained = build_model(exp)
    body = pretrained.backbone.body.state_dict()
    assert all(torch.equal(body[k], saved["body"][k]) for k in saved["body"])
    assert not all(torch.equal(body[k], plain.backbone.body.state_dict()[k]) for k in body)
    head, plain_head = pretrained.head.state_dict(), plain.head.state_dict()
    assert all(torch.equal(head[k], plain_head[k]) for k in head)
    # {depth: file}: the depth's file, no file for another depth
    exp.model["backbone"]["weights"] = {50: str(out)}
    assert torch.equal(build_model(exp).backbone.body.state_dict()["stem.0.0.weight"],
                       saved["body"]["stem.0.0.weight"])


def test_body_weights_that_do_not_fit(tmp_path):
    params = load_params(REPO / "params.yaml")
    cfg = dict(params["models"]["micro"]["backbone"], name="tiny", weights=None)
    with pytest.raises(DataError, match="not found"):
        load_body_weights(build_body(cfg), tmp_path / "missing.pt")
    torch.save({"body": {}}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="not a body file"):
        load_body_weights(build_body(cfg), tmp_path / "other.pt")
    wider = build_body(dict(cfg, widths=[16, 32, 64, 128]))
    torch.save({"format": "lla-pretrained-body-1", "body": wider.state_dict()}, tmp_path / "wide.pt")
    with pytest.raises(DataError, match="does not fit"):
        load_body_weights(build_body(cfg), tmp_path / "wide.pt")


def test_pretrain_refuses_a_resnet_profile(tmp_path, capsys):
    assert main(["pretrain", "--profile", "paper", "--out", str(tmp_path / "x.pt"),
                 "--data", str(tmp_path / "none.json"), "--val-data", "none"]) == 2
    assert "tiny body" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
