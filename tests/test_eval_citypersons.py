"""Tests of lla.eval.citypersons: the official CityPersons MR protocol (evaluation.md §3).

Hand-worked cases first (the reasoning is next to each), then a randomized comparison with
the loop-by-loop oracle in tests/citypersons_reference.py, then the command line and bad input.
"""

from __future__ import annotations

import copy
import json
import math
import re

import numpy as np
import pytest

from citypersons_reference import reference_details
from lla.cli import main
from lla.errors import DataError
from lla.eval import citypersons as cp
from lla.eval.citypersons import FALSE_POSITIVE as FP
from lla.eval.citypersons import IGNORED as IG
from lla.eval.citypersons import REMOVED as RM
from lla.eval.citypersons import TRUE_POSITIVE as TP

SETUP = {setup.name: setup for setup in cp.SETUPS}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def make_gt(annotations, image_ids=(1,), categories=(1,)):
    """A dataset json; annotations are (image_id, box, extra-fields) built by ``ann``."""
    anns = [dict(a, id=k + 1) for k, a in enumerate(annotations)]
    return {"images": [{"id": i, "width": 2048, "height": 1024} for i in image_ids],
            "annotations": anns, "categories": [{"id": c} for c in categories]}


def ann(box, *, image_id=1, height=None, vis=1.0, ignore=0, category=1):
    return {"image_id": image_id, "category_id": category, "bbox": list(box),
            "height": box[3] if height is None else height, "vis_ratio": vis,
            "ignore": ignore}


def det(box, score, *, image_id=1, category=1):
    return {"image_id": image_id, "category_id": category, "bbox": list(box), "score": score}


def labels(gt, dt, setup="Reasonable"):
    ground_truth = cp.parse_ground_truth(gt)
    return cp.CityPersonsEval(ground_truth, cp.parse_detections(dt, ground_truth)) \
        .labels(SETUP[setup]).tolist()


def mr(gt, dt, setup="Reasonable"):
    return cp.evaluate(gt, dt, coco=False)[setup]


FAR = [1000, 0, 20, 100]   # a box that overlaps nothing used below


# --------------------------------------------------------------------------------------------
# matching rules
# --------------------------------------------------------------------------------------------

def test_iou_exactly_half_is_a_match():
    # GT [0,0,10,100] (area 1000) vs detection [0,0,10,50] (area 500): intersection 500,
    # union 500 + 1000 - 500 = 1000, IoU = 0.5 exactly -> a match (`>=`; CrowdHuman's `>`
    # would reject it). One image, one valid GT, one TP: recall 1 at every FPPI -> MR 0.
    gt = make_gt([ann([0, 0, 10, 100])])
    assert labels(gt, [det([0, 0, 10, 50], 0.9)]) == [TP]
    assert mr(gt, [det([0, 0, 10, 50], 0.9)]) == 0.0
    # Height 49.9: IoU 499/1000 < 0.5 -> FP; recall stays 0 -> miss rate 1 everywhere.
    assert labels(gt, [det([0, 0, 10, 49.9], 0.9)]) == [FP]
    assert mr(gt, [det([0, 0, 10, 49.9], 0.9)]) == 1.0


def test_ioa_exactly_half_is_absorbed_by_ignored_gt():
    # Ignored GT [0,0,20,100]; detection [10,0,20,100] (area 2000) covers 10x100 = 1000 of
    # it: IoA = 1000 / 2000 = 0.5 -> absorbed (neither TP nor FP). Shifted by one pixel the
    # IoA is 900/2000 = 0.45 -> FP. The valid GT far away keeps the setup evaluable.
    gt = make_gt([ann([0, 0, 20, 100], ignore=1), ann([500, 0, 20, 100])])
    assert labels(gt, [det([10, 0, 20, 100], 0.9), det([11, 0, 20, 100], 0.8)]) == [IG, FP]


def test_exact_iou_tie_goes_to_the_last_gt():
    # GT1 [0,0,10,100] and GT2 [2,0,10,100]. Detection A [1,0,10,100] (score 0.9) overlaps
    # both by 9x100: IoU 900/1100 with each, an exact tie -> the LAST GT (GT2) wins.
    # Detection B [-3,0,10,100] (0.8): IoU with GT1 = 700/1300 = 0.54, with GT2 = 500/1500.
    # Last-wins: A->GT2, B->GT1, two TPs, MR 0. (First-wins would give A->GT1 and B an FP.)
    gt = make_gt([ann([0, 0, 10, 100]), ann([2, 0, 10, 100])])
    dt = [det([1, 0, 10, 100], 0.9), det([-3, 0, 10, 100], 0.8)]
    assert labels(gt, dt) == [TP, TP]
    assert mr(gt, dt) == 0.0


def test_valid_gt_first_then_ignored_gt_absorbs_duplicates():
    # The ignored GT comes first in the file but GTs are sorted valid-first, so the first
    # detection matches the valid GT (IoU 1) although it also has IoA 1 with the ignored one.
    # The duplicate finds the valid GT taken and is absorbed by the ignored GT: not an FP.
    # A third detection far from every box is an FP. (`ignore: true` reads like 1.)
    dt = [det([0, 0, 20, 100], 0.9), det([0, 0, 20, 100], 0.8), det(FAR, 0.7)]
    for flag in (1, True):
        gt = make_gt([ann([0, 0, 20, 100], ignore=flag), ann([0, 0, 20, 100])])
        assert labels(gt, dt) == [TP, IG, FP]


def test_highest_iou_wins_and_matched_gt_is_skipped():
    # GT1 [0,0,20,100], GT2 [10,0,20,100]. Detection A [8,0,20,100] (0.9): IoU with GT1
    # 1200/2800 = 0.43 (< 0.5), with GT2 1800/2200 = 0.82 -> GT2. Detection B [9,0,20,100]
    # (0.8): GT2 is taken, GT1 gives 1100/2900 = 0.38 -> FP. Detection C [1,0,20,100] (0.7):
    # GT1 1900/2100 -> TP.
    gt = make_gt([ann([0, 0, 20, 100]), ann([10, 0, 20, 100])])
    dt = [det([9, 0, 20, 100], 0.8), det([1, 0, 20, 100], 0.7), det([8, 0, 20, 100], 0.9)]
    assert labels(gt, dt) == [FP, TP, TP]


def test_boxes_are_not_clipped():
    # GT and detection extend past the left border (x < 0): compared as given. Clipping both
    # at 0 would give [0,0,20,100] vs [0,0,5,100], IoU 0.25; unclipped IoU is 1.
    gt = make_gt([ann([-15, 0, 20, 100])])
    assert labels(gt, [det([-15, 0, 20, 100], 0.9)]) == [TP]


# --------------------------------------------------------------------------------------------
# setups: GT ranges and the detection height filter
# --------------------------------------------------------------------------------------------

def test_visibility_065_is_valid_in_reasonable_and_heavy():
    # vis 0.65 is inside [0.65, 1e10] (Reasonable) and [0.2, 0.65] (Heavy): both inclusive.
    # Height 100 > 75 is outside Reasonable_small -> -1 there. The exact detection is a TP.
    dt = [det([0, 0, 41, 100], 0.9)]
    result = cp.evaluate(make_gt([ann([0, 0, 41, 100], vis=0.65)]), dt, coco=False)
    assert result == {"Reasonable": 0.0, "Reasonable_small": -1.0, "Heavy": 0.0, "All": 0.0}
    # vis 0.649: heavy only; vis 0.19: below every range -> -1 everywhere.
    result = cp.evaluate(make_gt([ann([0, 0, 41, 100], vis=0.649)]), dt, coco=False)
    assert result == {"Reasonable": -1.0, "Reasonable_small": -1.0, "Heavy": 0.0, "All": 0.0}
    result = cp.evaluate(make_gt([ann([0, 0, 41, 100], vis=0.19)]), dt, coco=False)
    assert set(result.values()) == {-1.0}


def test_gt_height_ranges_are_inclusive_and_use_the_height_field():
    # Reasonable_small keeps heights 50..75 inclusive; the `height` field decides, not the
    # box (the first box is 200 tall but its height field says 50).
    heights = [50, 75, 49.99, 75.01]
    gt = make_gt([ann([0, 0, 80, 200], height=heights[0])]
                 + [ann([100 * k, 0, 20, h]) for k, h in enumerate(heights[1:], 1)])
    ground_truth = cp.parse_ground_truth(gt)
    ev = cp.CityPersonsEval(ground_truth, cp.parse_detections([], ground_truth))
    assert ev.num_valid_gt(SETUP["Reasonable_small"]) == 2            # 50 and 75
    assert ev.num_valid_gt(SETUP["Reasonable"]) == 3                  # 50, 75, 75.01
    assert ev.num_valid_gt(SETUP["All"]) == 4                         # all >= 20


@pytest.mark.parametrize("setup, kept, removed", [
    ("Reasonable", 40, 39.99),          # 50 / 1.25 = 40 is kept (>=)
    ("Heavy", 40, 39.99),
    ("All", 16, 15.99),                 # 20 / 1.25 = 16
    ("Reasonable_small", 93.74, 93.75),  # 75 * 1.25 = 93.75 is removed (<)
])
def test_detection_height_filter(setup, kept, removed):
    # Two detections far from the only GT: the one inside [h0/1.25, h1*1.25) is an FP, the
    # other vanishes (REMOVED: neither matched nor counted as FP).
    gt = make_gt([ann([0, 0, 25, 60], vis=0.3 if setup == "Heavy" else 1.0)])
    dt = [det([500, 0, 10, kept], 0.9), det([600, 0, 10, removed], 0.9)]
    assert labels(gt, dt, setup) == [FP, RM]


def test_top_1000_cut_comes_before_the_height_filter():
    # 1000 detections of height 10 (score 0.9) outrank the TP (score 0.5): the TP is number
    # 1001 of its image and is cut, although the 1000 are then removed by the height filter.
    # No detection survives -> MR 1 (the official bare `except` leaves recall at 0).
    gt = make_gt([ann([0, 0, 41, 100])])
    tiny = [det([500, 0, 4, 10], 0.9) for _ in range(1000)]
    tp = det([0, 0, 41, 100], 0.5)
    assert labels(gt, tiny + [tp])[-1] == RM
    assert mr(gt, tiny + [tp]) == 1.0
    # With 999 of them the TP is number 1000 and counts: recall 1 -> MR 0.
    assert mr(gt, tiny[:999] + [tp]) == 0.0


def test_setup_without_valid_gt_is_minus_one():
    # Every GT is 30 px tall: valid only in All (>= 20). The other setups report -1.
    gt = make_gt([ann([0, 0, 12, 30]), ann([100, 0, 12, 30])])
    result = cp.evaluate(gt, [det([0, 0, 12, 30], 0.9)], coco=False)
    # All: one TP, one missed GT, no FP -> recall 0.5 at every point -> MR 0.5.
    assert result == {"Reasonable": -1.0, "Reasonable_small": -1.0, "Heavy": -1.0, "All": 0.5}


def test_no_surviving_detection_gives_one():
    gt = make_gt([ann([0, 0, 41, 100]), ann([0, 0, 12, 30])])
    # Empty list (official: IndexError; adopted: 1.0) -> 1 where valid GT exists, else -1.
    assert cp.evaluate(gt, [], coco=False) == {
        "Reasonable": 1.0, "Reasonable_small": -1.0, "Heavy": -1.0, "All": 1.0}
    # Only detections absorbed by ignored GT or removed by height: also 1.0.
    gt = make_gt([ann([0, 0, 41, 100]), ann([500, 0, 41, 100], ignore=1)])
    assert mr(gt, [det([500, 0, 41, 100], 0.9), det([0, 0, 41, 30], 0.8)]) == 1.0


def test_only_category_1_counts():
    # A category-2 GT box and a category-2 detection change nothing: the category-1 result
    # is one TP on one valid GT (MR 0); a category-2 "GT" would otherwise be a missed box.
    base = [ann([0, 0, 41, 100])]
    gt = make_gt(base + [ann([300, 0, 41, 100], category=2)], categories=(1, 2))
    dt = [det([700, 0, 41, 100], 0.95, category=2), det([0, 0, 41, 100], 0.9)]
    assert cp.evaluate(gt, dt, coco=False) == cp.evaluate(make_gt(base), dt[1:], coco=False)
    # A GT whose categories lack id 1: nothing is accumulated -> -1 everywhere (official).
    gt = make_gt(base, categories=(2,))
    assert set(cp.evaluate(gt, dt, coco=False).values()) == {-1.0}


# --------------------------------------------------------------------------------------------
# curve, sampling and the log average
# --------------------------------------------------------------------------------------------

def test_fewer_than_100_images_top_fp_reads_final_recall():
    # One image, two valid GTs; an FP (0.9) then a TP on GT1 (0.8). fppi = [1, 1],
    # recall = [0, 0.5]. For every reference r < 1, searchsorted(side='right') - 1 = -1,
    # which reads recall[-1] = 0.5 (quirk); at r = 1 the index is 1 -> 0.5. MR = 0.5.
    # (Reading index 0 instead would give miss rate 1 at 8 points: 0.5 ** (1/9) = 0.926.)
    gt = make_gt([ann([0, 0, 41, 100]), ann([100, 0, 41, 100])])
    dt = [det(FAR, 0.9), det([0, 0, 41, 100], 0.8)]
    assert mr(gt, dt) == pytest.approx(0.5, abs=1e-12)


def test_images_without_annotations_count_in_fppi():
    # Image 1 has two valid GTs (GT1 found, GT2 missed); 99 more images have nothing, so
    # I0 = 100. Curve: FP 0.9, FP 0.8, TP 0.7 -> fppi [0.01, 0.02, 0.02], recall
    # [0, 0, 0.5]. r = 0.01: last fppi <= r is index 0 (fppi lands exactly on r; side
    # 'right' includes it) -> miss 1; r = 0.0178 -> index 0 -> miss 1; r >= 0.0316 -> index
    # 2 -> miss 0.5. MR = exp((2 log 1 + 7 log 0.5) / 9) = 0.5 ** (7/9).
    # (I0 = 1 would give 0.5 ** (8/9); side='left' would also give 0.5 ** (8/9).)
    gt = make_gt([ann([0, 0, 41, 100]), ann([100, 0, 41, 100])], image_ids=range(1, 101))
    dt = [det(FAR, 0.9), det([1200, 0, 41, 100], 0.8), det([0, 0, 41, 100], 0.7)]
    assert mr(gt, dt) == pytest.approx(0.5 ** (7 / 9), abs=1e-12)


def test_score_ties_are_pooled_in_image_id_order():
    # Images listed as [5, 3, 100..197] -> I0 = 100, pooled in sorted id order (3 first).
    # Image 3: valid GT2 (missed) and two FPs; image 5: valid GT1 and its TP. All scores
    # 0.7, the TP first in the file. Stable pooling by image id puts [FP, FP, TP] -> as in
    # the test above MR = 0.5 ** (7/9); file order [TP, FP, FP] would give 0.5.
    gt = make_gt([ann([0, 0, 41, 100], image_id=5), ann([0, 0, 41, 100], image_id=3)],
                 image_ids=[5, 3] + list(range(100, 198)))
    dt = [det([0, 0, 41, 100], 0.7, image_id=5),
          det(FAR, 0.7, image_id=3), det([1200, 0, 41, 100], 0.7, image_id=3)]
    assert mr(gt, dt) == pytest.approx(0.5 ** (7 / 9), abs=1e-12)


def test_sample_recall_and_log_average():
    # 4 images, 2 valid GT; outcomes TP, FP, FP, TP, FP: recall [.5,.5,.5,1,1],
    # fppi [0,.25,.5,.5,.75]. r < .25 -> index 0 (0.5); .25 <= r < .5 -> index 1 (0.5);
    # r = .5623 -> index 3 (1.0); r = 1 -> index 4 (1.0).
    recall = cp.sample_recall(np.array([True, False, False, True, False]), 2, 4)
    assert recall.tolist() == [0.5] * 7 + [1.0, 1.0]
    # A zero miss rate anywhere makes the log average 0 (no warning escapes).
    assert cp.log_average_miss_rate(recall) == 0.0
    assert cp.log_average_miss_rate(np.full(9, 0.75)) == pytest.approx(0.25, abs=1e-15)
    misses = np.array([1, 1, .8, .8, .5, .5, .5, .4, .4])
    assert cp.log_average_miss_rate(1 - misses) == pytest.approx(
        math.exp(sum(math.log(m) for m in misses) / 9), abs=1e-15)
    # No surviving detection: zeros.
    assert cp.sample_recall(np.zeros(0, dtype=bool), 3, 10).tolist() == [0.0] * 9


# --------------------------------------------------------------------------------------------
# randomized comparison with the loop-by-loop oracle
# --------------------------------------------------------------------------------------------

HEIGHTS = np.array([10, 15.99, 16, 20, 39.99, 40, 49.99, 50, 60, 75, 75.01, 93.74, 93.75, 100,
                    200])
VIS = np.array([0.0, 0.1, 0.2, 0.3, 0.649, 0.65, 0.7, 1.0])
SCORES = np.array([0.9, 0.8, 0.5, 0.5, 0.3])


def random_box(rng, grid, step):
    """Boxes built to hit the protocol's edges: on a coarse grid (mode ``grid``) all persons
    have the same size, giving exact IoU ties, IoU/IoA of exactly 0.5 and duplicates; else
    heights sit on the setup boundaries and boxes cross the image border."""
    if grid:
        x = float(rng.integers(0, 7) * step)
        if rng.random() < 0.8:
            return [x, 0.0, 20.0, 100.0]
        return [x, float(rng.integers(0, 2) * 50), 20.0, float(rng.integers(1, 3) * 50)]
    h = float(HEIGHTS[rng.integers(len(HEIGHTS))])
    w = [h * 0.41, 10.0, 20.0, 4.0][rng.integers(4)]
    return [float(rng.integers(-2, 6) * 5), float(rng.integers(-1, 4) * 10), w, h]


def random_case(seed):
    """A small GT + detections: few images (so the sampling quirk occurs) or ~100, ignore
    flags, category 2 boxes, shuffled detections, tied scores, images without anything."""
    rng = np.random.default_rng(seed)
    n_images = int(rng.integers(1, 8)) if rng.random() < 0.7 else int(rng.integers(90, 130))
    image_ids = [int(i) for i in rng.permutation(np.arange(1, 3 * n_images))[:n_images]]
    grid = rng.random() < 0.5
    anns, dets = [], []
    for image_id in image_ids[:8]:
        for _ in range(rng.integers(0, 7)):
            box = random_box(rng, grid, 10)
            height = box[3] if rng.random() < 0.9 else float(HEIGHTS[rng.integers(len(HEIGHTS))])
            anns.append(ann(box, image_id=image_id, height=height,
                            vis=float(VIS[rng.integers(len(VIS))]),
                            ignore=int(rng.random() < 0.25),
                            category=1 if rng.random() < 0.8 else 2))
        for _ in range(rng.integers(0, 9)):
            dets.append(det(random_box(rng, grid, 5), float(SCORES[rng.integers(len(SCORES))]),
                            image_id=image_id, category=1 if rng.random() < 0.8 else 2))
    order = rng.permutation(len(dets))
    return make_gt(anns, image_ids, categories=(1, 2)), [dets[i] for i in order]


@pytest.mark.parametrize("first_seed", range(0, 500, 125))
def test_matches_the_reference_on_random_inputs(first_seed):
    for seed in range(first_seed, first_seed + 125):
        gt, dt = random_case(seed)
        expected = reference_details(gt, dt)
        ground_truth = cp.parse_ground_truth(gt)
        ev = cp.CityPersonsEval(ground_truth, cp.parse_detections(dt, ground_truth))
        for setup in cp.SETUPS:
            want_mr, want_outcomes = expected[setup.name]
            assert ev.miss_rate(setup) == pytest.approx(want_mr, abs=1e-9), (seed, setup.name)
            if want_mr != -1:   # the sequence of TP/FP along the curve, exactly
                assert ev.outcomes(setup).tolist() == want_outcomes, (seed, setup.name)


def test_evaluation_is_repeatable_and_does_not_modify_inputs():
    gt, dt = random_case(7)
    gt_before, dt_before = copy.deepcopy(gt), copy.deepcopy(dt)
    first = cp.evaluate(gt, dt, coco=True)
    second = cp.evaluate(gt, dt, coco=True)
    assert first == second
    assert gt == gt_before and dt == dt_before
    assert set(first) == {"Reasonable", "Reasonable_small", "Heavy", "All", "coco_AP",
                          "coco_AP50"}


def test_streaming_evaluator_equals_evaluate():
    gt, dt = random_case(11)
    evaluator = cp.CityPersonsEvaluator(gt, coco=False)
    evaluator.process(dt[:3])
    evaluator.process(dt[3:])
    assert evaluator.compute() == cp.evaluate(gt, dt, coco=False)


# --------------------------------------------------------------------------------------------
# command line and bad input
# --------------------------------------------------------------------------------------------

def test_cli_prints_and_writes_metrics(tmp_path, capsys):
    gt, dt = random_case(3)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    out = tmp_path / "sub" / "metrics.json"
    code = main(["eval", "citypersons", "--gt", str(tmp_path / "gt.json"),
                 "--dt", str(tmp_path / "dt.json"), "--out", str(out), "--no-coco"])
    assert code == 0
    written = json.loads(out.read_text())
    assert written == json.loads(capsys.readouterr().out)
    assert written == cp.evaluate(gt, dt, coco=False)       # paths == loaded objects
    assert list(tmp_path.joinpath("sub").iterdir()) == [out]  # no temporary file left


def _bad_case(kind):
    gt = make_gt([ann([0, 0, 41, 100]), ann([100, 0, 41, 100])], image_ids=[1, 2])
    dt = [det([0, 0, 41, 100], 0.9), det([100, 0, 41, 100], 0.8, image_id=2)]
    if kind == "unknown image":
        dt[1]["image_id"] = 9
    elif kind == "nan box":
        dt[1]["bbox"][2] = float("nan")
    elif kind == "inf score":
        dt[1]["score"] = float("inf")
    elif kind == "missing score":
        del dt[1]["score"]
    elif kind == "short box":
        dt[1]["bbox"] = [1, 2, 3]
    elif kind == "annotation id 0":
        gt["annotations"][1]["id"] = 0
    elif kind == "missing height":
        del gt["annotations"][1]["height"]
    elif kind == "missing vis_ratio":
        del gt["annotations"][1]["vis_ratio"]
    elif kind == "nan height":
        gt["annotations"][1]["height"] = float("nan")
    elif kind == "duplicate annotation id":
        gt["annotations"][1]["id"] = 1
    elif kind == "annotation on unknown image":
        gt["annotations"][1]["image_id"] = 7
    elif kind == "string ignore":
        gt["annotations"][1]["ignore"] = "no"
    elif kind == "fractional ignore":
        gt["annotations"][1]["ignore"] = 0.5
    return gt, dt


@pytest.mark.parametrize("kind, file, record, reason", [
    ("unknown image", "dt.json", "detection 1", "image_id 9 is not an image"),
    ("nan box", "dt.json", "detection 1", "'bbox' must be a finite number, got nan"),
    ("inf score", "dt.json", "detection 1", "'score' must be a finite number, got inf"),
    ("missing score", "dt.json", "detection 1", "missing 'score'"),
    ("short box", "dt.json", "detection 1", "'bbox' must be 4 numbers"),
    ("annotation id 0", "gt.json", "annotation 1", "annotation id must be >= 1"),
    ("missing height", "gt.json", "annotation 1 (id 2)", "missing 'height'"),
    ("missing vis_ratio", "gt.json", "annotation 1 (id 2)", "missing 'vis_ratio'"),
    ("nan height", "gt.json", "annotation 1 (id 2)", "'height' must be a finite number"),
    ("duplicate annotation id", "gt.json", "annotation 1", "duplicate annotation id 1"),
    ("annotation on unknown image", "gt.json", "annotation 1", "image_id 7 is not an image"),
    ("string ignore", "gt.json", "annotation 1 (id 2)", "'ignore' must be 0, 1 or a boolean"),
    ("fractional ignore", "gt.json", "annotation 1 (id 2)", "'ignore' must be 0, 1 or a bool"),
])
def test_bad_input_names_file_and_record(tmp_path, capsys, kind, file, record, reason):
    gt, dt = _bad_case(kind)
    (tmp_path / "gt.json").write_text(json.dumps(gt))   # json writes NaN/Infinity literally
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    code = main(["eval", "citypersons", "--gt", str(tmp_path / "gt.json"),
                 "--dt", str(tmp_path / "dt.json"), "--out", str(tmp_path / "m.json")])
    assert code == 2
    message = capsys.readouterr().err
    assert f"{tmp_path / file} [{record}]: " in message and reason in message, message
    assert not (tmp_path / "m.json").exists()
    with pytest.raises(DataError, match="not an image|must be|missing|duplicate"):
        cp.evaluate(gt, dt)   # the same check on loaded objects


def test_malformed_json_and_structure(tmp_path, capsys):
    (tmp_path / "gt.json").write_text('{"images": [\n{"id": 1},,]}')
    (tmp_path / "dt.json").write_text("[]")
    code = main(["eval", "citypersons", "--gt", str(tmp_path / "gt.json"),
                 "--dt", str(tmp_path / "dt.json")])
    assert code == 2 and f"{tmp_path / 'gt.json'}:2: invalid JSON" in capsys.readouterr().err
    # A results list that is not a list, and a GT without images.
    (tmp_path / "gt.json").write_text(json.dumps(make_gt([ann([0, 0, 41, 100])])))
    (tmp_path / "dt.json").write_text('{"image_id": 1}')
    assert main(["eval", "citypersons", "--gt", str(tmp_path / "gt.json"),
                 "--dt", str(tmp_path / "dt.json")]) == 2
    assert "detections must be a JSON list" in capsys.readouterr().err
    with pytest.raises(DataError, match="ground truth has no images"):
        cp.evaluate(make_gt([], image_ids=[]), [])


@pytest.mark.parametrize("field, value, record, reason", [
    ("bbox", [100, 0, -41, 100], "detection 1", "'bbox' has a negative width or height"),
    ("bbox", [100, 0, 41, -1], "detection 1", "'bbox' has a negative width or height"),
    ("score", True, "detection 1", "'score' must be a finite number, got True"),
    ("score", "0.8", "detection 1", "'score' must be a finite number, got '0.8'"),
    ("bbox", [100, 0, False, 100], "detection 1", "'bbox' must be a finite number, got False"),
])
def test_bad_detection_values(tmp_path, capsys, field, value, record, reason):
    # Negative sizes are malformed (a zero one is valid: it matches nothing); booleans and
    # strings are not numbers. Files and loaded objects give the same error.
    gt, dt = _bad_case(None)
    dt[1][field] = value
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    code = main(["eval", "citypersons", "--gt", str(tmp_path / "gt.json"),
                 "--dt", str(tmp_path / "dt.json"), "--out", str(tmp_path / "m.json")])
    assert code == 2
    message = capsys.readouterr().err
    assert f"{tmp_path / 'dt.json'} [{record}]: {reason}" in message, message
    assert not (tmp_path / "m.json").exists()
    with pytest.raises(DataError, match=re.escape(f"[{record}]: {reason}")):
        cp.evaluate(gt, dt)


def test_zero_width_detection_is_a_false_positive():
    # On the second GT's left edge, zero wide: no overlap, so an FP (not an error).
    gt, dt = _bad_case(None)
    dt[1].update(bbox=[100, 0, 0, 100], image_id=1)
    assert labels(gt, dt) == [TP, FP]


@pytest.mark.parametrize("which", ["--gt", "--dt"])
@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_missing_or_directory_input(tmp_path, capsys, which, kind):
    gt, dt = _bad_case(None)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    bad = tmp_path / ("missing.json" if kind == "missing" else "folder")
    if kind == "directory":
        bad.mkdir()
    paths = {"--gt": tmp_path / "gt.json", "--dt": tmp_path / "dt.json", which: bad}
    assert main(["eval", "citypersons", "--gt", str(paths["--gt"]), "--dt", str(paths["--dt"]),
                 "--out", str(tmp_path / "m.json")]) == 2
    reason = "file not found" if kind == "missing" else "is a directory, expected a file"
    assert capsys.readouterr().err == f"error: {bad}: {reason}\n"
    assert not (tmp_path / "m.json").exists()


def test_dataset_json_converted_for_crowdhuman_is_refused(tmp_path, capsys):
    # Our CrowdHuman json has every field the CityPersons protocol reads, so it would be
    # evaluated without a word: info.dataset (written by the converters) tells them apart.
    gt, dt = _bad_case(None)
    gt["info"] = {"dataset": "crowdhuman", "split": "val"}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    assert main(["eval", "citypersons", "--gt", str(tmp_path / "gt.json"),
                 "--dt", str(tmp_path / "dt.json"), "--out", str(tmp_path / "m.json")]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: {tmp_path / 'gt.json'}: this dataset json was converted for crowdhuman "
        "(info.dataset 'crowdhuman'), not citypersons: evaluate it with `lla eval crowdhuman`")
    assert not (tmp_path / "m.json").exists()
    with pytest.raises(DataError, match="converted for crowdhuman"):
        cp.evaluate(gt, dt)
    expected = cp.evaluate(dict(gt, info={}), dt)
    gt["info"]["dataset"] = "citypersons"   # its own: evaluated
    assert cp.evaluate(gt, dt) == expected
