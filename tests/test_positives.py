"""`lla analyze levels` / `lla analyze positives`: FPN level allocation (Fig. 3) and the
positive anchors of each GT (Figs. 1, 2, 4), on hand-worked cases."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
import torch
from PIL import Image

from lla.analysis.fpn_levels import level_rows, level_summary, sample_person_annotations
from lla.analysis.positives import (ImageAssignment, checkpoints_to_analyse, dominant_level,
                                    image_positives, level_names, most_crowded_images,
                                    parse_iterations, positives_per_level)
from lla.cli import main
from lla.config import load_params
from lla.engine import checkpoint as ckpt
from lla.engine.experiment import resolve_experiment
from lla.engine.model import build_model
from lla.errors import DataError

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ counting by hand

def test_positives_per_level_and_dominant_level_by_hand():
    # 4 GTs (GT 3 is an ignore box), 3 levels, 14 anchors:
    #   GT 0: 3 anchors on level 0, 2 on level 1           -> counts [3, 2, 0], level 0
    #   GT 1: 2 on level 1, 2 on level 2 (a tie)          -> counts [0, 2, 2], level 1 (finer)
    #   GT 2: nothing                                      -> counts [0, 0, 0], level -1
    #   GT 3 (ignore): 2 anchors                           -> not positives: row of zeros
    #   one negative (-1) and one ignored (-2) anchor      -> not counted
    matched = [0, 0, 0, 0, 0, 1, 1, 1, 1, 3, 3, -1, -2, 0]
    levels = [0, 0, 0, 1, 1, 1, 1, 2, 2, 0, 1, 0, 1, 2]
    # the last anchor moves GT 0 to [3, 2, 1]: still level 0
    ignore = [False, False, False, True]
    counts = positives_per_level(np.array(matched), np.array(levels), np.array(ignore), 3)
    assert counts.tolist() == [[3, 2, 1], [0, 2, 2], [0, 0, 0], [0, 0, 0]]
    assert dominant_level(counts).tolist() == [0, 1, -1, -1]
    # 2 on the finer level, 3 on the coarser: the majority wins, not the finer level.
    assert dominant_level(np.array([[2, 3, 0]])).tolist() == [1]
    assert dominant_level(np.zeros((0, 5), dtype=np.int64)).tolist() == []


def test_positives_per_level_without_gts_or_positives():
    counts = positives_per_level(np.array([-1, -1]), np.array([0, 1]), np.zeros(0, bool), 5)
    assert counts.shape == (0, 5)
    counts = positives_per_level(np.array([-1, -2]), np.array([0, 1]), np.array([False]), 2)
    assert counts.tolist() == [[0, 0]]


def test_level_names():
    assert level_names([8, 16, 32, 64, 128]) == ["P3", "P4", "P5", "P6", "P7"]


def _ann(ann_id, image_id, bbox, ignore=0):
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": bbox,
            "vis_box": bbox, "ignore": ignore}


def test_sample_excludes_ignore_boxes_and_caps_the_count():
    anns = [_ann(i, i // 4, [0, 0, 10, 10], ignore=int(i % 4 == 3)) for i in range(40)]
    persons = [a["id"] for a in anns if not a["ignore"]]  # 30 persons
    # Fewer persons than the cap: all of them, in order, ignore boxes left out.
    assert [a["id"] for a in sample_person_annotations(anns, 5000, seed=0)] == persons
    assert [a["id"] for a in sample_person_annotations(anns, 30, seed=0)] == persons
    # Capped: exactly 7 distinct persons, in json order, the same for the same seed.
    first = [a["id"] for a in sample_person_annotations(anns, 7, seed=0)]
    assert len(set(first)) == 7 and set(first) <= set(persons) and first == sorted(first)
    assert [a["id"] for a in sample_person_annotations(anns, 7, seed=0)] == first
    other_seeds = {tuple(a["id"] for a in sample_person_annotations(anns, 7, seed=s))
                   for s in range(1, 6)}
    assert other_seeds - {tuple(first)}  # another seed, another sample
    assert sample_person_annotations([_ann(1, 1, [0, 0, 5, 5], ignore=1)], 10, seed=0) == []


def test_level_rows_and_summary():
    # Two sampled GTs found by the model (counts 3/2 -> P3; tie 1/1 -> P3), one dropped by
    # the dataset (no pixel in the image: area 0, level none).
    sampled = [_ann(5, 1, [0, 0, 10, 10]), _ann(6, 1, [0, 0, 10, 10]), _ann(9, 2, [0, 0, 1, 1])]
    found = {5: {"area": 100.0, "counts": np.array([3, 2])},
             6: {"area": 64.0, "counts": np.array([1, 1])}}
    rows = level_rows(sampled, found, [8, 16])
    assert [(r["annotation_id"], r["level"], r["level_name"], r["positives"]) for r in rows] == [
        (5, 0, "P3", 5), (6, 0, "P3", 2), (9, -1, "none", 0)]
    assert rows[0]["positives_P4"] == 2 and rows[2]["area"] == 0.0
    assert level_summary(rows, [8, 16]) == [
        {"level": 0, "level_name": "P3", "gts": 2, "positives": 4},
        {"level": 1, "level_name": "P4", "gts": 0, "positives": 3},
        {"level": -1, "level_name": "none", "gts": 1, "positives": 0}]


def test_most_crowded_images():
    # image 1: 3 persons, no overlap              -> (0 pairs, 3 persons)
    # image 2: 2 persons at IoU 0.6 (+ 2 ignores) -> (1 pair, 2 persons)
    # image 3: 2 persons at IoU 0.6               -> (1 pair, 2 persons): after image 2 (order)
    # image 4: no annotation                      -> (0, 0)
    # [0,0,10,10] vs [0,0,10,6]: inter 60, union 100 -> IoU 0.6.
    data = {"images": [{"id": i} for i in (1, 2, 3, 4)],
            "annotations": [_ann(1, 1, [0, 0, 10, 10]), _ann(2, 1, [20, 0, 10, 10]),
                            _ann(3, 1, [40, 0, 10, 10]),
                            _ann(4, 2, [0, 0, 10, 10]), _ann(5, 2, [0, 0, 10, 6]),
                            _ann(6, 2, [0, 0, 10, 10], ignore=1),
                            _ann(7, 2, [0, 0, 10, 10], ignore=1),
                            _ann(8, 3, [0, 0, 10, 10]), _ann(9, 3, [0, 0, 10, 6])]}
    assert most_crowded_images(data, 2) == [2, 3]
    assert most_crowded_images(data, 10) == [2, 3, 1, 4]
    assert most_crowded_images({"images": [], "annotations": []}, 3) == []


def test_image_positives_maps_back_to_original_pixels():
    # Persons 0, 1 and an ignore box 2; the image was resized by 2 (x) and 4 (y).
    # Anchor 0 -> person 1, anchor 2 -> person 0, anchor 1 -> the ignore box (not a
    # positive), anchor 3 negative.
    item = ImageAssignment(
        index=0, target={"scale": torch.tensor([2.0, 4.0], dtype=torch.float64)},
        matched_gt=np.array([1, 2, 0, -1]), gt_ignore=np.array([False, False, True]),
        anchor_levels=np.array([0, 0, 1, 1]),
        anchor_centers=np.array([[8.0, 8.0], [0.0, 0.0], [32.0, 64.0], [4.0, 4.0]]),
        anchor_boxes=np.array([[4.0, 4.0, 12.0, 12.0], [0, 0, 1, 1], [16, 32, 48, 96],
                               [0, 0, 1, 1]], dtype=np.float64),
        strides=(8, 16))
    assert image_positives(item) == {"gt": [1, 0], "level": [0, 1],
                                     "center": [[4.0, 2.0], [16.0, 16.0]],
                                     "box": [[2.0, 1.0, 6.0, 3.0], [8.0, 8.0, 24.0, 24.0]]}


def test_parse_iterations():
    assert parse_iterations(["50", "final", "300"]) == [50, "final", 300]
    for bad in (["last"], ["-5"], []):
        with pytest.raises(DataError, match="--iterations"):
            parse_iterations(bad)


def _save(path, iteration):
    ckpt.save_checkpoint(path, {"format": ckpt.CHECKPOINT_FORMAT, "iteration": iteration,
                                "model": {}, "config": {}})


def test_checkpoints_to_analyse(tmp_path):
    run = tmp_path / "run"
    _save(ckpt.checkpoint_path(run, 4), 4)
    _save(run / ckpt.FINAL_MODEL, 8)
    assert checkpoints_to_analyse(run, [4, "final"]) == [
        ("4", ckpt.checkpoint_path(run, 4)), ("final", run / ckpt.FINAL_MODEL)]
    # 50 lies beyond the run's 8 iterations: skipped; 2 should exist but does not: error.
    assert checkpoints_to_analyse(run, [50, "final"]) == [("final", run / ckpt.FINAL_MODEL)]
    with pytest.raises(DataError, match="iteration 2 not found.*kept: 4"):
        checkpoints_to_analyse(run, [2])
    with pytest.raises(DataError, match="no final model"):
        checkpoints_to_analyse(tmp_path / "unfinished", ["final"])


# ------------------------------------------------------------------ the commands on a model

@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    """params.yaml with data_root in a scratch folder, a hand-made crowdhuman train split of
    three 128 x 128 images, and an untrained micro LLA.RetinaNet*(#A=1) run (K = 10) with a
    checkpoint at iteration 4 and a final model at 8.

    image 1: one person [32, 32, 64, 64] (xywh) and an ignore box elsewhere;
    image 2: two identical persons [32, 32, 64, 64] (the most crowded: one pair at IoU 1);
    image 3: one person [16, 16, 32, 96].
    """
    tmp_path = tmp_path_factory.mktemp("positives")
    params = load_params(REPO / "params.yaml")
    params["data_root"] = str(tmp_path / "data")
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(dict(params), sort_keys=False))
    converted = tmp_path / "data" / "synthcrowd" / "micro" / "crowdhuman" / "converted"
    (converted / "images").mkdir(parents=True)
    images = []
    for image_id in (1, 2, 3):
        Image.new("RGB", (128, 128), (90, 120, 150)).save(converted / "images" / f"{image_id}.jpg")
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 128, "height": 128})
    box = [32, 32, 64, 64]
    data = {"info": {"dataset": "crowdhuman", "split": "train", "image_root": "images"},
            "images": images,
            "annotations": [_ann(1, 1, box), _ann(2, 1, [100, 0, 20, 20], ignore=1),
                            _ann(3, 2, box), _ann(4, 2, box), _ann(5, 3, [16, 16, 32, 96])],
            "categories": [{"id": 1, "name": "person"}]}
    (converted / "train.json").write_text(json.dumps(data))
    exp = resolve_experiment(params, "lla_retinanet_star_a1_r50", "micro")
    torch.manual_seed(0)
    run_dir = tmp_path / "runs" / "lla"
    state = {"format": ckpt.CHECKPOINT_FORMAT, "model": build_model(exp).state_dict(),
             "config": exp.to_dict()}
    ckpt.save_checkpoint(ckpt.checkpoint_path(run_dir, 4), {**state, "iteration": 4})
    ckpt.save_checkpoint(run_dir / ckpt.FINAL_MODEL, {**state, "iteration": 8})
    return params_path, run_dir


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_levels_command(micro_run, tmp_path):
    # LLA gives every person exactly K = 10 positives, except where two identical GTs share
    # the same 10 cheapest anchors (image 2): there the 10 anchors are split between them.
    # The ignore box (annotation 2) is never sampled.
    params_path, run_dir = micro_run
    out = tmp_path / "levels.csv"
    assert main(["analyze", "levels", "--checkpoint", str(run_dir / "model_final.pt"),
                 "--profile", "micro", "--params", str(params_path), "--out", str(out)]) == 0
    rows = _read_csv(out)
    assert [int(r["annotation_id"]) for r in rows] == [1, 3, 4, 5]
    positives = {int(r["annotation_id"]): int(r["positives"]) for r in rows}
    assert positives[1] == positives[5] == 10 and positives[3] + positives[4] == 10
    for r in rows:
        per_level = [int(r[f"positives_P{k}"]) for k in range(3, 8)]
        assert sum(per_level) == int(r["positives"])
        expected = int(np.argmax(per_level)) if sum(per_level) else -1
        assert int(r["level"]) == expected
    # areas in network-input pixels: micro resizes 128 -> 256 (x2 per side, x4 in area)
    assert float(rows[0]["area"]) == pytest.approx(64 * 64 * 4)
    assert float(rows[3]["area"]) == pytest.approx(32 * 96 * 4)
    summary = _read_csv(tmp_path / "levels.per_level.csv")
    assert [s["level_name"] for s in summary] == ["P3", "P4", "P5", "P6", "P7", "none"]
    assert sum(int(s["gts"]) for s in summary) == 4
    assert sum(int(s["positives"]) for s in summary) == 30
    # --max-gts 2: two of the four persons, drawn with the seed.
    out = tmp_path / "two.csv"
    assert main(["analyze", "levels", "--checkpoint", str(run_dir / "model_final.pt"),
                 "--profile", "micro", "--params", str(params_path), "--max-gts", "2",
                 "--seed", "3", "--out", str(out)]) == 0
    chosen = [int(r["annotation_id"]) for r in _read_csv(out)]
    assert len(chosen) == 2 and set(chosen) <= {1, 3, 4, 5}
    assert sum(int(s["gts"]) for s in _read_csv(tmp_path / "two.per_level.csv")) == 2


def test_positives_command(micro_run, tmp_path):
    params_path, run_dir = micro_run
    out = tmp_path / "positives.json"
    assert main(["analyze", "positives", "--run-dir", str(run_dir), "--profile", "micro",
                 "--params", str(params_path), "--images", "2", "--iterations", "4", "final",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    # The two most crowded images: image 2 (one overlapping pair), then image 1 (one person
    # before image 3 by json order; image 1's ignore box does not count).
    assert [i["image_id"] for i in result["images"]] == [2, 1]
    assert result["images"][1]["gt_boxes"] == [[32.0, 32.0, 96.0, 96.0]]
    assert result["images"][1]["ignore_boxes"] == [[100.0, 0.0, 120.0, 20.0]]
    assert result["images"][0]["annotation_ids"] == [3, 4]
    assert [(c["label"], c["iteration"]) for c in result["checkpoints"]] == [("4", 4),
                                                                           ("final", 8)]
    assert result["level_names"] == ["P3", "P4", "P5", "P6", "P7"]
    for checkpoint in result["checkpoints"]:
        crowded, single = checkpoint["images"]
        # 10 positives per image (image 2: shared by its two GTs), each with a level, a
        # centre and a box; the inbox cost keeps centres inside the GT box, which shows they
        # are in original pixels (in the 256-px input they would lie in [64, 192]).
        assert len(single["gt"]) == len(crowded["gt"]) == 10
        assert set(single["gt"]) == {0} and set(crowded["gt"]) <= {0, 1}
        for image in (crowded, single):
            assert len(image["level"]) == len(image["center"]) == len(image["box"]) == 10
            for x, y in image["center"]:
                assert 32 <= x <= 96 and 32 <= y <= 96
    # the same (untrained) weights at both checkpoints: the same positives
    assert result["checkpoints"][0]["images"] == result["checkpoints"][1]["images"]


def test_bad_inputs_are_reported(micro_run, tmp_path, capsys):
    params_path, run_dir = micro_run
    out = tmp_path / "x.json"
    base = ["--profile", "micro", "--params", str(params_path)]
    assert main(["analyze", "positives", "--run-dir", str(run_dir), *base, "--images", "0",
                 "--out", str(out)]) == 2
    assert "--images must be >= 1" in capsys.readouterr().err
    assert main(["analyze", "positives", "--run-dir", str(run_dir), *base, "--iterations", "2",
                 "--out", str(out)]) == 2
    assert "iter_0000002.pt" in capsys.readouterr().err
    assert main(["analyze", "levels", "--checkpoint", str(run_dir / "model_final.pt"), *base,
                 "--max-gts", "0", "--out", str(tmp_path / "l.csv")]) == 2
    assert "--max-gts must be >= 1" in capsys.readouterr().err
    assert main(["analyze", "levels", "--checkpoint", str(tmp_path / "missing.pt"), *base,
                 "--out", str(tmp_path / "l.csv")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "l.csv").exists()
