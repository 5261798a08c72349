"""The anchor-regime statistic (lla.analysis.regime) on hand-worked boxes and a hand-made
dataset, cross-checked against the detector's own anchor points and in-box test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lla.analysis.regime import (InputTransform, anchor_regime, count_outside, height_bin_labels,
                                 points_inside)
from lla.assign.geometry import points_inside_boxes
from lla.models.anchors import AnchorGenerator


def test_points_inside_by_hand():
    # Grid points at 0, 8, 16, 24 (stride 8) and 0, 16 (stride 16) on a 32 x 32 input.
    # Box x in (0.5, 16.5): 8, 16; y in (0.5, 8.5): 8 -> 2 points at stride 8.
    # Stride 16: x 16; y none (16 > 8.49) -> 0.
    counts = points_inside(np.array([[0.5, 0.5, 16.5, 8.5]]), (32, 32), [8, 16])
    assert counts.tolist() == [[2, 0]]


def test_points_on_the_border_are_outside():
    boxes = np.array([[8.0, 8.0, 24.0, 24.0],       # 8 and 24 lie on the sides: only 16
                      [7.995, 7.995, 24.0, 24.0],   # 0.005 px from the side: still outside
                      [7.98, 7.98, 24.02, 24.02]])  # 0.02 px: 8, 16, 24 on both axes
    assert points_inside(boxes, (32, 32), [8])[:, 0].tolist() == [1, 1, 9]


def test_grid_stops_at_the_padded_size():
    # Padded 16 x 128: stride-8 columns 0..120, rows 0, 8. Box x in (100, 200): 104, 112, 120.
    assert points_inside(np.array([[100.0, 0.0, 200.0, 10.0]]), (16, 128), [8]).tolist() == [[3]]
    # An empty box holds nothing.
    assert points_inside(np.array([[10.0, 10.0, 10.0, 30.0]]), (64, 64), [8]).tolist() == [[0]]


def test_points_inside_agrees_with_the_detector_anchors():
    generator = AnchorGenerator(strides=[8, 16, 32, 64, 128], kind="point")
    height, width = 256, 384
    anchors = generator([(height // s, width // s) for s in generator.strides])
    rng = np.random.default_rng(0)
    x1 = rng.uniform(-20, width, 300)
    y1 = rng.uniform(-20, height, 300)
    boxes = np.stack([x1, y1, x1 + rng.uniform(0, 200, 300), y1 + rng.uniform(0, 300, 300)], 1)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    boxes = boxes.astype(np.float32)
    inside = points_inside_boxes(anchors.centers, torch.from_numpy(boxes))        # (N, J)
    expected = torch.stack([inside[:, anchors.levels == level].sum(1)
                            for level in range(5)], 1).numpy()
    assert np.array_equal(points_inside(boxes, (height, width), generator.strides), expected)


def person(ann_id, image_id, bbox, ignore=0):
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": bbox,
            "vis_box": bbox, "ignore": ignore, "iscrowd": ignore}


@pytest.fixture
def dataset_json(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    Image.new("RGB", (200, 100)).save(tmp_path / "images" / "a.jpg")
    Image.new("RGB", (100, 100)).save(tmp_path / "images" / "b.jpg")
    data = {"info": {"image_root": "images"},
            "images": [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 100},
                       {"id": 2, "file_name": "b.jpg", "width": 100, "height": 100}],
            "annotations": [person(1, 1, [10, 10, 40, 80]),
                            person(2, 1, [150, -50, 60, 100]),      # past the top and right
                            person(3, 1, [0, 0, 200, 100], ignore=1),
                            person(4, 2, [20, 20, 10, 10])],
            "categories": [{"id": 1, "name": "person"}]}
    path = tmp_path / "val.json"
    path.write_text(json.dumps(data))
    return path


def test_anchor_regime_by_hand(dataset_json):
    # min 50 / max 80: image a (100 x 200) -> 40 x 80 (scale 0.4), image b (100 x 100) -> 50 x 50
    # (scale 0.5); padded to 64: a 64 x 128, b 64 x 64. Strides 8 and 16.
    # person 1: [10,10,50,90] x 0.4 = [4,4,20,36]; x 8,16 | y 8..32 (4) -> 8 at s=8;
    #           s=16: x 16 | y 16, 32 -> 2.                                    total 10
    # person 2: [150,-50,210,50] x 0.4 = [60,-20,84,20] -> clipped [60,0,80,20];
    #           s=8: x 64, 72 | y 8, 16 -> 4; s=16: x 64 | y 16 -> 1.          total 5
    # person 3 is an ignore box: not counted.
    # person 4: [20,20,30,30] x 0.5 = [10,10,15,15]: no point of either grid.  total 0
    stats = anchor_regime(dataset_json, InputTransform(50, 80, 64), [8, 16], k=5)
    assert stats.persons == 3 and stats.images == 2
    assert stats.median_points == 5.0
    assert stats.p25_points == 2.5                      # linear between 0 and 5
    assert stats.share_below_k == pytest.approx(1 / 3)  # only person 4 has < 5
    assert stats.share_without_points == pytest.approx(1 / 3)
    assert stats.median_height == pytest.approx(20.0)   # heights 32, 20, 5
    assert stats.mean_points_per_level == pytest.approx([4.0, 1.0])
    assert stats.input_sizes == [(40, 80), (50, 50)]


def test_count_outside_by_hand():
    points = np.array([[5.0, 5.0], [15.0, 5.0], [25.0, 5.0], [5.0, 25.0], [12.0, 12.0]])
    boxes = np.array([[0.0, 0.0, 20.0, 20.0],    # GT 0: anchors 0 (in), 1 (in), 2 (out)
                      [0.0, 20.0, 10.0, 40.0],   # GT 1: anchor 3 (in)
                      [10.0, 10.0, 14.0, 14.0]])  # GT 2: ignore box, anchor 4
    matched = np.array([0, 0, 0, 1, 2])
    per_gt, outside = count_outside(matched, points, boxes, np.array([False, False, True]))
    assert per_gt.tolist() == [3, 1, 0] and outside.tolist() == [1, 0, 0]
    # negatives and ignored anchors are nobody's positives
    per_gt, outside = count_outside(np.array([-1, -2, 0, -1, -1]), points, boxes,
                                    np.array([False, False, True]))
    assert per_gt.tolist() == [1, 0, 0] and outside.tolist() == [1, 0, 0]


def test_height_bins():
    assert height_bin_labels() == ["[0, 32)", "[32, 64)", "[64, inf)"]


def test_bad_input(dataset_json):
    with pytest.raises(ValueError):
        InputTransform(100, 50)
    with pytest.raises(ValueError):
        anchor_regime(dataset_json, InputTransform(50, 80), [8], k=0)


def _checkpoint(tmp_path: Path, experiment: str) -> Path:
    """An untrained micro checkpoint of ``experiment``."""
    from lla.config import load_params
    from lla.engine import checkpoint as ckpt
    from lla.engine.experiment import resolve_experiment
    from lla.engine.train import build_model

    exp = resolve_experiment(load_params(Path(__file__).resolve().parents[1] / "params.yaml"),
                             experiment, "micro")
    torch.manual_seed(0)
    path = tmp_path / f"{experiment}.pt"
    ckpt.save_checkpoint(path, {"format": ckpt.CHECKPOINT_FORMAT, "iteration": 0,
                                "model": build_model(exp).state_dict(), "config": exp.to_dict()})
    return path


@pytest.fixture
def small_person_json(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    Image.new("RGB", (128, 128), (90, 120, 150)).save(tmp_path / "images" / "a.jpg")
    Image.new("RGB", (128, 128), (90, 120, 150)).save(tmp_path / "images" / "b.jpg")
    data = {"info": {"image_root": "images"},
            "images": [{"id": 1, "file_name": "a.jpg", "width": 128, "height": 128},
                       {"id": 2, "file_name": "b.jpg", "width": 128, "height": 128}],
            # a: 12 x 20 px person [40, 40, 52, 60]: P3 points (48, 48), (48, 56), P4 (48, 48)
            #    -> 3 points inside, fewer than K = 10.
            # b: 96 x 96 px person: 121 P3 points inside, plenty.
            "annotations": [person(1, 1, [40, 40, 12, 20]), person(2, 2, [16, 16, 96, 96])],
            "categories": [{"id": 1, "name": "person"}]}
    path = tmp_path / "train.json"
    path.write_text(json.dumps(data))
    return path


def test_positives_outside_of_lla_and_fcos(tmp_path, small_person_json):
    from lla.analysis.regime import positives_outside

    input_cfg = {"min_size": 128, "max_size": 128, "flip_prob": 0.5}
    # LLA: each person takes its K = 10 cheapest anchors over all levels. Outside anchors pay
    # P = 100, so the small person takes its 3 inside anchors and 7 outside; the large one
    # 10 inside. (Untrained weights: which outside anchors does not matter here.)
    stats = positives_outside(_checkpoint(tmp_path, "lla_fcos_r50"), small_person_json, input_cfg)
    assert (stats.gts, stats.positives, stats.outside) == (2, 20, 7)
    assert stats.share_outside == pytest.approx(0.35) and stats.positives_per_gt == 10
    assert stats.gts_below_k_inside == 1
    assert stats.by_height["[0, 32)"] == {"gts": 1, "positives": 10, "outside": 7,
                                          "share_outside": 0.7}
    assert stats.by_height["[64, inf)"]["outside"] == 0
    # FCOS takes only points inside the (centre region of the) box.
    stats = positives_outside(_checkpoint(tmp_path, "fcos_r50"), small_person_json, input_cfg)
    assert stats.outside == 0 and stats.positives > 0
    # --max-images 1: the small person only.
    stats = positives_outside(_checkpoint(tmp_path, "lla_fcos_r50"), small_person_json, input_cfg,
                              max_images=1)
    assert (stats.gts, stats.positives, stats.outside) == (1, 10, 7)


# ------------------------------------------------------------------ lla analyze regime

def test_regime_command_by_hand(tmp_path, dataset_json):
    """The hand-worked case of test_anchor_regime_by_hand through `lla analyze regime`."""
    import pandas as pd

    from lla.cli import main

    out, csv = tmp_path / "regime.json", tmp_path / "persons.csv"
    assert main(["analyze", "regime", "--profile", "micro", "--data", str(dataset_json),
                 "--min-size", "50", "--max-size", "80", "--strides", "8", "16", "--k", "5",
                 "--per-person", str(csv), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    regime = result["regime"]
    assert (regime["persons"], regime["median_points"], regime["p25_points"]) == (3, 5.0, 2.5)
    assert regime["share_below_k"] == pytest.approx(1 / 3) and regime["k"] == 5
    assert regime["mean_points_per_level"] == pytest.approx([4.0, 1.0])
    assert result["strides"] == [8, 16] and result["positives_outside"] is None
    assert result["input"] == {"min_size": 50, "max_size": 80, "size_divisibility": 128}
    persons = pd.read_csv(csv)
    assert list(persons.columns) == ["image_id", "height", "points_s8", "points_s16", "points"]
    assert persons["points"].tolist() == [10, 5, 0] and persons["image_id"].tolist() == [1, 1, 2]
    assert persons["points_s8"].tolist() == [8, 4, 0]
    assert persons["height"].tolist() == pytest.approx([32.0, 20.0, 5.0])


def test_regime_command_defaults_to_the_profile_and_adds_the_model_pass(tmp_path, small_person_json):
    from lla.analysis.regime import positives_outside
    from lla.cli import main
    from lla.engine import checkpoint as ckpt

    checkpoint = _checkpoint(tmp_path, "lla_fcos_r50")
    out = tmp_path / "regime.json"
    assert main(["analyze", "regime", "--profile", "micro", "--data", str(small_person_json),
                 "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    # micro's input (256 / 256), strides and K
    assert result["input"] == {"min_size": 256, "max_size": 256, "size_divisibility": 128}
    assert result["strides"] == [8, 16, 32, 64, 128] and result["regime"]["k"] == 10
    expected = positives_outside(checkpoint, small_person_json,
                                 ckpt.load_checkpoint(checkpoint)["config"]["input"])
    assert result["positives_outside"] == json.loads(json.dumps(expected.to_dict()))
    assert result["positives_outside"]["positives"] == 20   # K = 10 for each of 2 persons


@pytest.mark.parametrize("extra, reason", [
    (["--k", "0"], "--k must be >= 1"),
    (["--min-size", "300", "--max-size", "200"], "need 0 < min_size <= max_size"),
    (["--strides", "0", "8"], "--strides must be >= 1"),
])
def test_regime_command_bad_options(tmp_path, dataset_json, capsys, extra, reason):
    from lla.cli import main

    out = tmp_path / "regime.json"
    code = main(["analyze", "regime", "--profile", "micro", "--data", str(dataset_json),
                 "--out", str(out), *extra])
    assert code == 2 and reason in capsys.readouterr().err and not out.exists()


def test_regime_command_missing_inputs(tmp_path, dataset_json, capsys):
    from lla.cli import main

    out = tmp_path / "regime.json"
    assert main(["analyze", "regime", "--profile", "micro", "--data", str(tmp_path / "no.json"),
                 "--out", str(out)]) == 2
    assert f"error: {tmp_path / 'no.json'}: dataset json not found" in capsys.readouterr().err
    assert main(["analyze", "regime", "--profile", "micro", "--data", str(dataset_json),
                 "--checkpoint", str(tmp_path / "no.pt"), "--out", str(out)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err and not out.exists()
