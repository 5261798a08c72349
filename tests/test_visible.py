"""`lla analyze visible`: share of an occluded GT's positives centred in its visible box."""

import json
from pathlib import Path

import pytest
import yaml
import torch
from PIL import Image

from lla.analysis.visible import (VisibleStats, comparison_rows, experiment_row,
                                  positives_inside_visible, visible_settings)
from lla.cli import main
from lla.config import load_params, validate_params
from lla.engine import checkpoint as ckpt
from lla.engine.experiment import resolve_experiment
from lla.engine.model import build_model
from lla.errors import DataError

REPO = Path(__file__).resolve().parents[1]
NEG, IGN = -1, -2  # Assignment's NEGATIVE and IGNORED


def _counts(centers, matched_gt, gt_ignore, vis_boxes):
    positives, inside = positives_inside_visible(
        torch.tensor(centers, dtype=torch.float32), torch.tensor(matched_gt, dtype=torch.int64),
        torch.tensor(gt_ignore, dtype=torch.bool),
        torch.tensor(vis_boxes, dtype=torch.float32).reshape(-1, 4))
    return positives.tolist(), inside.tolist()


def test_three_of_four_positives_inside_the_visible_box():
    # GT 0: full box elsewhere, visible box [0, 0, 10, 10]. Its four positives are centred at
    #   (5, 5) inside, (10, 3) on the right edge -> inside (the box is closed),
    #   (0, 10) on the bottom-left corner -> inside, (12, 5) 2 px to the right -> outside.
    # GT 1 (visible box [20, 20, 30, 30]) has one positive at (25, 25), inside.
    # GT 2 is an ignore box: its anchor at (5, 5) is no positive of anyone.
    # Anchors 6 and 7 are negative / ignored.
    centers = [[5, 5], [10, 3], [0, 10], [12, 5], [25, 25], [5, 5], [6, 6], [7, 7]]
    matched = [0, 0, 0, 0, 1, 2, NEG, IGN]
    positives, inside = _counts(centers, matched, [False, False, True],
                                [[0, 0, 10, 10], [20, 20, 30, 30]])
    assert positives == [4, 1] and inside == [3, 1]
    stats = VisibleStats(max_vis_ratio=0.7)
    stats.add_image(positives, inside, [0.4, 0.9])  # GT 0 occluded, GT 1 not
    summary = stats.summary()
    assert summary["occluded"] == {"gts": 1, "gts_with_positives": 1, "positives": 4,
                                   "inside": 3, "mean_fraction": 0.75, "pooled_fraction": 0.75}
    assert summary["non_occluded"]["gts"] == 1
    assert summary["non_occluded"]["mean_fraction"] == 1.0


def test_just_outside_the_edge_is_outside():
    # Closed box: x = 10 is in [0, 10], x = 10.001 is not.
    _, inside = _counts([[10.0, 5.0], [10.001, 5.0]], [0, 0], [False], [[0, 0, 10, 10]])
    assert inside == [1]


def test_mean_over_gts_and_pooled_fraction_differ():
    # Occluded GTs: A 3 of 4 inside, B 1 of 1, C no positive at all.
    # mean over GTs with positives = (0.75 + 1) / 2 = 0.875; pooled = 4 / 5 = 0.8;
    # C counts as a GT but not in either fraction.
    # vis_ratio exactly 0.7 is not occluded (occluded: < 0.7): D goes to the reference group.
    stats = VisibleStats(max_vis_ratio=0.7)
    stats.add_image([4, 1], [3, 1], [0.1, 0.69])
    stats.add_image([0, 2], [0, 0], [0.5, 0.7])
    summary = stats.summary()
    occluded = summary["occluded"]
    assert (occluded["gts"], occluded["gts_with_positives"], occluded["positives"],
            occluded["inside"]) == (3, 2, 5, 4)
    assert occluded["mean_fraction"] == pytest.approx(0.875)
    assert occluded["pooled_fraction"] == pytest.approx(0.8)
    assert summary["non_occluded"] == {"gts": 1, "gts_with_positives": 1, "positives": 2,
                                       "inside": 0, "mean_fraction": 0.0, "pooled_fraction": 0.0}


def test_no_occluded_gt_gives_null_not_zero():
    stats = VisibleStats()
    stats.add_image([3], [3], [0.95])
    stats.add_image([], [], [])  # an image without persons
    occluded = stats.summary()["occluded"]
    assert occluded == {"gts": 0, "gts_with_positives": 0, "positives": 0, "inside": 0,
                        "mean_fraction": None, "pooled_fraction": None}
    # Occluded GTs that got no positive: still null (no fraction to average).
    stats.add_image([0], [0], [0.2])
    assert stats.summary()["occluded"]["gts"] == 1
    assert stats.summary()["occluded"]["mean_fraction"] is None


def test_only_ignore_boxes_and_no_gt():
    # Only an ignore box: no valid GT, nothing counted.
    assert _counts([[1, 1]], [0], [True], []) == ([], [])
    # No GT at all.
    assert _counts([[1, 1]], [NEG], [], []) == ([], [])


def test_valid_gts_must_come_first():
    with pytest.raises(ValueError, match="valid GTs followed by ignore"):
        _counts([[1, 1]], [0], [True, False], [[0, 0, 2, 2]])


def test_counts_and_ratios_must_agree():
    with pytest.raises(ValueError, match="visibility ratios"):
        VisibleStats().add_image([1], [1], [0.5, 0.6])


# ---------------------------------------------------------------------------- report rows

def _result(occluded_mean, occluded_pooled, reference_mean=0.9, gts=7):
    return {"occluded": {"gts": gts, "gts_with_positives": gts, "mean_fraction": occluded_mean,
                         "pooled_fraction": occluded_pooled},
            "non_occluded": {"gts": 3, "gts_with_positives": 3, "mean_fraction": reference_mean,
                             "pooled_fraction": reference_mean}}


def test_report_rows_average_seeds_and_show_the_difference():
    settings = {"comparisons": [{"lla": "l", "lla_label": "LLA", "baseline": "b",
                                 "baseline_label": "Base"}]}
    # Baseline, one run: 40 % / 50 %. LLA, two seeds: mean fractions 0.4 and 0.6 -> 50.0,
    # sample std sqrt(((0.1)^2 + (0.1)^2) / 1) = 0.1414 -> "50.0 ± 14.1"; pooled 0.5 and null
    # -> the null run is left out: 50.0. Differences: +10.0 and +0.0 points.
    rows = comparison_rows(settings, {"b": [_result(0.4, 0.5)],
                                      "l": [_result(0.4, 0.5), _result(0.6, None)]})
    assert rows[0] == ["Base", "1", "7", "40.0", "50.0", "90.0", "90.0"]
    assert rows[1] == ["LLA", "2", "7", "50.0 ± 14.1", "50.0", "90.0 ± 0.0", "90.0 ± 0.0"]
    assert rows[2][3:] == ["+10.0", "+0.0", "+0.0", "+0.0"]
    # Every run null -> n/a, and no difference.
    cells, means = experiment_row("X", [_result(None, None)])
    assert cells[3:5] == ["n/a", "n/a"] and means["occluded.mean_fraction"] is None
    rows = comparison_rows(settings, {"b": [_result(None, None)], "l": [_result(0.5, 0.5)]})
    assert rows[2][3:5] == ["n/a", "n/a"]


def test_diverged_runs_are_left_out_and_all_diverged_is_a_dash():
    diverged = {"diverged": True, "iteration": 4, "terms": ["loss_cls"]}
    # two seeds, one diverged: the other's values, and the row says so
    cells, means = experiment_row("X", [_result(0.4, 0.5), diverged])
    assert cells[:5] == ["X", "2 (1 diverged)", "7", "40.0", "50.0"]
    cells, means = experiment_row("X", [diverged])
    assert cells == ["X", "1 (1 diverged)", "—", "—", "—", "—", "—"]
    assert set(means.values()) == {None}


def test_settings_are_validated():
    params = load_params(REPO / "params.yaml")
    settings = visible_settings(params, "micro")
    assert settings["max_images"] == 4 and settings["max_vis_ratio"] == 0.7
    assert {(p["lla"], p["baseline"]) for p in settings["comparisons"]} == {
        ("lla_fcos_r50", "fcos_ctr_r50"), ("lla_retinanet_star_a1_r50", "retinanet_star_a1_r50")}
    params["analysis"]["defaults"]["visible"]["comparisons"][0]["lla"] = "no_such_run"
    with pytest.raises(DataError, match=r"\[analysis\.defaults\.visible\.comparisons\[0\]\.lla\]: "
                                        r"unknown experiment 'no_such_run'"):
        validate_params(params, [REPO / "params.yaml"])


# ---------------------------------------------------------------------------- a checkpoint

def _annotation(ann_id, image_id, bbox, vis_box, vis_ratio, ignore=0):
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": bbox,
            "vis_box": vis_box, "head_box": None, "vis_ratio": vis_ratio, "height": bbox[3],
            "area": bbox[2] * bbox[3], "ignore": ignore, "iscrowd": ignore}


@pytest.fixture
def micro_checkpoint(tmp_path):
    """params.yaml with data_root in tmp_path, a hand-made crowdhuman train split and an
    untrained micro LLA.RetinaNet*(#A=1) checkpoint (each GT takes its K = 10 cheapest anchors,
    all centred inside the GT's full box: LLA's C_inbox)."""
    params = load_params(REPO / "params.yaml")
    params["data_root"] = str(tmp_path / "data")
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(dict(params), sort_keys=False))
    converted = tmp_path / "data" / "synthcrowd" / "micro" / "crowdhuman" / "converted"
    (converted / "images").mkdir(parents=True)
    for name in ("one.jpg", "two.jpg"):
        Image.new("RGB", (128, 128), (90, 120, 150)).save(converted / "images" / name)
    box = [32, 32, 64, 64]
    data = {"info": {"dataset": "crowdhuman", "split": "train", "image_root": "images"},
            "images": [{"id": 1, "file_name": "one.jpg", "width": 128, "height": 128},
                       {"id": 2, "file_name": "two.jpg", "width": 128, "height": 128}],
            "annotations": [
                # image 1: occluded, but its visible box is its full box -> 10 of 10 inside
                _annotation(1, 1, box, box, 0.3),
                # an ignore box: excluded although its vis_ratio is low
                _annotation(2, 1, [0, 0, 20, 20], [0, 0, 5, 5], 0.1, ignore=1),
                # image 2: occluded, its visible box a 0.1 px square between the anchor
                # centres (x2 input scale: 66.2..66.4; centres lie on multiples of 8) -> 0 of 10
                _annotation(3, 2, box, [33.1, 33.1, 0.1, 0.1], 0.5)],
            "categories": [{"id": 1, "name": "person"}]}
    (converted / "train.json").write_text(json.dumps(data))
    exp = resolve_experiment(params, "lla_retinanet_star_a1_r50", "micro")
    assert exp.model["assigner"]["topk"] == 10
    torch.manual_seed(0)
    checkpoint = tmp_path / "model_final.pt"
    ckpt.save_checkpoint(checkpoint, {"format": ckpt.CHECKPOINT_FORMAT, "iteration": 0,
                                      "model": build_model(exp).state_dict(),
                                      "config": exp.to_dict()})
    return params_path, checkpoint


def test_visible_fraction_of_a_checkpoint_end_to_end(micro_checkpoint, tmp_path):
    # Occluded GTs: 10 of 10 and 0 of 10 -> mean 0.5, pooled 10 / 20 = 0.5; no other GT.
    params_path, checkpoint = micro_checkpoint
    out = tmp_path / "visible.json"
    assert main(["analyze", "visible", "--checkpoint", str(checkpoint), "--profile", "micro",
                 "--params", str(params_path), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["occluded"] == {"gts": 2, "gts_with_positives": 2, "positives": 20,
                                  "inside": 10, "mean_fraction": 0.5, "pooled_fraction": 0.5}
    assert result["non_occluded"]["gts"] == 0 and result["non_occluded"]["mean_fraction"] is None
    assert (result["images"], result["max_vis_ratio"], result["split"]) == (2, 0.7, "train")
    # --max-vis-ratio 0.4: only the first GT (0.3) is occluded; the second is the reference.
    assert main(["analyze", "visible", "--checkpoint", str(checkpoint), "--profile", "micro",
                 "--params", str(params_path), "--max-vis-ratio", "0.4", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["occluded"]["mean_fraction"] == 1.0
    assert result["non_occluded"]["mean_fraction"] == 0.0


def test_bad_options_are_reported(micro_checkpoint, tmp_path, capsys):
    params_path, checkpoint = micro_checkpoint
    out = tmp_path / "visible.json"
    for option, value in (("--max-vis-ratio", "0"), ("--max-images", "0")):
        assert main(["analyze", "visible", "--checkpoint", str(checkpoint), "--profile",
                     "micro", "--params", str(params_path), option, value,
                     "--out", str(out)]) == 2
        assert option in capsys.readouterr().err
    assert not out.exists()
