"""Tests of lla.eval.crowdhuman: hand-worked cases, randomized comparison with the literal
reference (tests/crowdhuman_reference.py), JI, COCO extras, input formats and errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from crowdhuman_reference import reference_metrics
from lla.cli import main
from lla.errors import DataError
from lla.eval import crowdhuman_protocol as protocol
from lla.eval.coco import coco_metrics
from lla.eval.crowdhuman import CrowdHumanEvaluator, evaluate
from lla.eval.crowdhuman_io import load_detections, load_ground_truth

W = H = 1000  # default image size: large enough that nothing is clipped


def person(x, y, w, h, **extra):
    box = {"tag": "person", "fbox": [x, y, w, h], "hbox": [x, y, 1, 1], "vbox": [x, y, w, h]}
    if extra:
        box["extra"] = extra
    return box


def mask(x, y, w, h):
    return {"tag": "mask", "fbox": [x, y, w, h], "hbox": [x, y, w, h], "vbox": [x, y, w, h],
            "extra": {"ignore": 1}}


def det(x, y, w, h, score):
    return {"box": [x, y, w, h], "score": score, "tag": 1}


def gt_rec(image_id, *boxes):
    return {"ID": image_id, "gtboxes": list(boxes)}


def dt_rec(image_id, *dets, width=W, height=H):
    return {"ID": image_id, "width": width, "height": height, "dtboxes": list(dets)}


def empty_images(n):
    """n images without any box: they only add to the FPPI denominator."""
    return [gt_rec(f"empty{k}") for k in range(n)]


def metrics(gt, dt):
    return evaluate(gt, dt, ji=False, coco=False)


def pooled(gt, dt):
    """The pooled TP (1) / FP (0) list, dropped detections left out."""
    g = load_ground_truth(gt)
    prep = protocol.prepare(g, load_detections(dt, g))
    return protocol.pooled_labels(prep, protocol.label_detections(prep)).tolist()


def assert_metrics(got, mr, ap, recall):
    assert got["MR"] == pytest.approx(mr, abs=1e-12)
    assert got["AP"] == pytest.approx(ap, abs=1e-12)
    assert got["Recall"] == pytest.approx(recall, abs=1e-12)


# --------------------------------------------------------------------------- matching rules


def test_iou_exactly_half_is_not_a_match():
    # GT 100x100; det [0,0,50,100] lies inside it: inter 5000, union 10000 -> IoU 0.5, and
    # the +1e-6 makes it just below 0.5 -> FP. One FP in one image: fppi 1 >= every
    # reference at k=0 with miss rate 1 -> MR 1; a single point -> AP 0; Recall 0.
    gt = [gt_rec("a", person(0, 0, 100, 100))]
    assert pooled(gt, [dt_rec("a", det(0, 0, 50, 100, 0.9))]) == [0]
    assert_metrics(metrics(gt, [dt_rec("a", det(0, 0, 50, 100, 0.9))]), 1.0, 0.0, 0.0)
    # Width 51: IoU 0.51 -> TP; fppi stays 0 so every reference takes the last point,
    # miss rate 0 -> MR 0 (log 0); one point -> AP 0; Recall 1.
    assert_metrics(metrics(gt, [dt_rec("a", det(0, 0, 51, 100, 0.9))]), 0.0, 0.0, 1.0)


def test_the_eps_rejects_iou_just_above_half():
    # Width 50 + 1e-9: inter 5000 + 1e-7, union 10000 -> IoU 0.5 + 1e-11 in exact terms,
    # but inter / (union + 1e-6) < 0.5 -> still an FP (the official eps at work).
    gt = [gt_rec("a", person(0, 0, 100, 100))]
    dt = [dt_rec("a", det(0, 0, 50 + 1e-9, 100, 0.9))]
    assert pooled(gt, dt) == [0]
    assert metrics(gt, dt) == pytest.approx(reference_metrics(gt, dt), abs=1e-12)


def test_ioa_exactly_half_does_not_ignore():
    # Det [0,0,100,100] half inside mask [50,0,200,100]: IoA 5000/(10000+1e-6) < 0.5 -> FP.
    gt = [gt_rec("a", person(500, 500, 100, 100), mask(50, 0, 200, 100))]
    assert pooled(gt, [dt_rec("a", det(0, 0, 100, 100, 0.9))]) == [0]
    # Shifted 1 px into the mask: IoA 0.51 -> dropped.
    assert pooled(gt, [dt_rec("a", det(1, 0, 100, 100, 0.9))]) == []
    # Mask starting at 50 - 1e-9: IoA (5000 + 1e-7) / (10000 + 1e-6) is still < 0.5 -> FP.
    gt = [gt_rec("a", person(500, 500, 100, 100), mask(50 - 1e-9, 0, 200, 100))]
    assert pooled(gt, [dt_rec("a", det(0, 0, 100, 100, 0.9))]) == [0]


def _ignore_scene(with_mask):
    # Persons A, B, C (C never detected) on one image plus 99 empty images (FPPI = FP/100).
    boxes = [person(0, 0, 100, 200), person(200, 0, 100, 200), person(400, 0, 100, 200)]
    if with_mask:
        boxes.append(mask(600, 0, 300, 300))
    gt = [gt_rec("scene", *boxes)] + empty_images(99)
    dt = [dt_rec("scene", det(0, 0, 100, 200, 0.9), det(610, 10, 100, 100, 0.8),
                 det(700, 50, 100, 100, 0.7), det(750, 100, 100, 100, 0.6),
                 det(200, 0, 100, 200, 0.5))]
    return gt, dt


def test_ignore_region_absorbs_several_detections():
    # The three detections inside the mask are dropped: pooled [TP, TP] with 3 valid GTs,
    # recall [1/3, 2/3], precision [1, 1], fppi 0 throughout -> every reference takes the
    # last point: MR = miss rate 1/3; AP = (2/3 - 1/3) * (1 + 1) / 2 = 1/3; Recall 2/3.
    gt, dt = _ignore_scene(with_mask=True)
    assert pooled(gt, dt) == [1, 1]
    assert_metrics(metrics(gt, dt), 1 / 3, 1 / 3, 2 / 3)


def test_same_detections_without_mask_are_fps_and_fppi_lands_on_reference():
    # Without the mask: pooled [TP, FP, FP, FP, TP]; fp [0,1,2,3,3] / 100 images
    # = fppi [0, .01, .02, .03, .03]; recall [1/3]*4 + [2/3].
    # References: 0.01 -> first fppi >= 0.01 is k=1 (fppi lands exactly on 0.0100) ->
    # miss 2/3; 0.0178 -> k=2 -> 2/3; 0.0316 and above are never reached -> last point,
    # miss 1/3 (7 references). MR = exp((2 ln 2/3 + 7 ln 1/3) / 9).
    # AP: only the last step gains recall: (1/3) * (1/4 + 2/5) / 2 = 0.108333...
    gt, dt = _ignore_scene(with_mask=False)
    assert pooled(gt, dt) == [1, 0, 0, 0, 1]
    mr = math.exp((2 * math.log(2 / 3) + 7 * math.log(1 / 3)) / 9)
    assert_metrics(metrics(gt, dt), mr, (1 / 3) * (0.25 + 0.4) / 2, 2 / 3)


def test_mr_uses_the_rounded_reference_literals():
    # 2500 images, so 79 FPs give fppi 79/2500 = 0.0316, the literal reference point,
    # while 10 ** -1.5 = 0.031623 would need 80 FPs. Pooled: 79 FPs, the TP on A (B is
    # never found), 1 FP. Miss rate at each reference (first k with fppi >= r):
    # 0.01 (25 FPs), 0.0178 (45), 0.0316 (79): before the TP -> 1; 0.0562 and above are
    # never reached -> last point -> 0.5. MR = 0.5 ** (6 / 9). With the unrounded points
    # 0.0316 would move past the TP and MR would be 0.5 ** (7 / 9).
    gt = [gt_rec("scene", person(0, 0, 100, 200), person(200, 0, 100, 200))]
    gt += empty_images(2499)
    fps = [det(10 * (k % 50), 500 + 10 * (k // 50), 5, 5, 0.99 - k / 1000) for k in range(80)]
    fps[79]["score"] = 0.4
    dt = [dt_rec("scene", *fps, det(0, 0, 100, 200, 0.5))]
    assert pooled(gt, dt) == [0] * 79 + [1, 0]
    assert metrics(gt, dt)["MR"] == pytest.approx(0.5 ** (6 / 9), abs=1e-12)
    assert metrics(gt, dt) == pytest.approx(reference_metrics(gt, dt), abs=1e-12)


def test_valid_gt_beats_ignore_and_duplicate_inside_mask_is_dropped():
    # Person A lies inside mask M; C is never detected; B detected last.
    # d1 on A: IoU 1 with A wins over IoA 1 with M -> TP. d2, a duplicate of A: A is
    # matched, so only M remains and IoA 1 > 0.5 -> dropped (not an FP). d3 on B -> TP.
    # pooled [TP, TP], 3 valid GTs -> AP = (2/3 - 1/3) * 1 = 1/3, MR 1/3, Recall 2/3.
    gt = [gt_rec("a", person(100, 100, 100, 200), mask(50, 50, 400, 400),
                 person(600, 0, 100, 200), person(800, 0, 100, 200))]
    dt = [dt_rec("a", det(100, 100, 100, 200, 0.9), det(100, 100, 100, 200, 0.8),
                 det(600, 0, 100, 200, 0.5))]
    assert pooled(gt, dt) == [1, 1]
    assert_metrics(metrics(gt, dt), 1 / 3, 1 / 3, 2 / 3)


def test_duplicate_detections_are_false_positives():
    # Both detections have IoU 1 with A; the higher score takes it, the other is an FP.
    gt = [gt_rec("a", person(0, 0, 100, 200))]
    assert pooled(gt, [dt_rec("a", det(0, 0, 100, 200, 0.8), det(0, 0, 100, 200, 0.9))]) \
        == [1, 0]


def test_iou_tie_goes_to_the_first_gt():
    # G1 [0,0,100,100], G2 [20,0,100,100]; d1 [10,0,100,100] has IoU 9000/11000 with both
    # (bit-identical) -> the first GT, G1. d2 [40,0,100,100]: IoU 8000/12000 = 0.67 with G2
    # -> TP. Had the tie gone to G2, d2 would face G1 with IoU 6000/14000 -> FP.
    gt = [gt_rec("a", person(0, 0, 100, 100), person(20, 0, 100, 100))]
    dt = [dt_rec("a", det(10, 0, 100, 100, 0.9), det(40, 0, 100, 100, 0.8))]
    assert pooled(gt, dt) == [1, 1]


def test_best_iou_wins_over_gt_order():
    # d [5,0,100,100]: IoU 9500/10500 with G2 = [0,0,100,100] beats 9000/11000 with
    # G1 = [10,0,100,100] (first in the file); then d' = G1 exactly is still a TP.
    gt = [gt_rec("a", person(10, 0, 100, 100), person(0, 0, 100, 100))]
    dt = [dt_rec("a", det(5, 0, 100, 100, 0.9), det(10, 0, 100, 100, 0.8))]
    assert pooled(gt, dt) == [1, 1]


def test_tied_scores_across_images_follow_gt_file_order():
    # X has an FP and Y a TP, both with score 0.5; a third valid GT in Y is missed.
    x = gt_rec("x")
    y = gt_rec("y", person(0, 0, 100, 200), person(300, 0, 100, 200))
    dt = [dt_rec("x", det(600, 600, 100, 100, 0.5)), dt_rec("y", det(0, 0, 100, 200, 0.5))]
    # GT order X, Y -> pooled [FP, TP]: fppi [0.5, 0.5], recall [0, 0.5], precision [0, .5].
    # References up to 0.3162 -> k=0, miss 1; 0.5623 and 1.0 unreached -> last, miss 0.5:
    # MR = 0.5 ** (2/9). AP = 0.5 * (0 + 0.5) / 2 = 0.125.
    assert_metrics(metrics([x, y], dt), 0.5 ** (2 / 9), 0.125, 0.5)
    # GT order Y, X -> pooled [TP, FP]: all references -> k=1 or last, miss 0.5 -> MR 0.5;
    # recall does not move at k=1 -> AP 0.
    assert_metrics(metrics([y, x], dt), 0.5, 0.0, 0.5)


def test_tied_scores_within_an_image_follow_file_order():
    # Equal scores: the detection first in the file is matched first. Person A 100x100,
    # mask M [0,0,50,100]. d1 [0,0,60,100]: IoU 0.6 with A, IoA 5000/6000 with M.
    # d2 [0,0,100,100]: IoU 1 with A, IoA 5000/10000 (not > 0.5) with M.
    # Order d1, d2: d1 takes A, d2 finds A matched and M not covering it -> [TP, FP].
    # Order d2, d1: d2 takes A, d1 finds A matched and M covering it -> dropped -> [TP].
    gt = [gt_rec("a", person(0, 0, 100, 100), mask(0, 0, 50, 100))]
    d1, d2 = det(0, 0, 60, 100, 0.5), det(0, 0, 100, 100, 0.5)
    assert pooled(gt, [dt_rec("a", d1, d2)]) == [1, 0]
    assert pooled(gt, [dt_rec("a", d2, d1)]) == [1]


def test_image_without_gt_and_image_with_only_ignore_boxes():
    # "e" has no GT: its detection is an FP. "i" has only a mask: the detection inside is
    # dropped, the one outside is an FP. "p": one TP. 3 images, 1 valid GT.
    gt = [gt_rec("p", person(0, 0, 100, 200)), gt_rec("e"), gt_rec("i", mask(0, 0, 500, 500))]
    dt = [dt_rec("p", det(0, 0, 100, 200, 0.9)), dt_rec("e", det(0, 0, 50, 50, 0.8)),
          dt_rec("i", det(10, 10, 50, 50, 0.7), det(700, 700, 50, 50, 0.6))]
    assert pooled(gt, dt) == [1, 0, 0]
    # fppi [0, 1/3, 2/3]; recall 1 from k=0 -> miss 0 everywhere -> MR 0; AP 0; Recall 1.
    assert_metrics(metrics(gt, dt), 0.0, 0.0, 1.0)


def test_no_detections_at_all():
    gt = [gt_rec("a", person(0, 0, 100, 200))]
    assert_metrics(metrics(gt, [dt_rec("a")]), 1.0, 0.0, 0.0)
    assert_metrics(metrics(gt, []), 1.0, 0.0, 0.0)  # image missing from the file


def test_only_dropped_detections_count_as_none():
    gt = [gt_rec("a", person(0, 0, 100, 200), mask(500, 500, 200, 200))]
    assert_metrics(metrics(gt, [dt_rec("a", det(550, 550, 50, 50, 0.9))]), 1.0, 0.0, 0.0)


def test_boxes_past_the_border_are_clipped():
    # Images 100x100. "a": GT [-50,0,100,100] is clipped to [0,0,50,100], so det
    # [0,0,50,100] has IoU 1 (0.5 unclipped: no match). "b": det [0,0,200,100], past the
    # right border, is clipped to [0,0,100,100] and matches GT [0,0,100,100] (IoU 0.5
    # unclipped).
    gt = [gt_rec("a", person(-50, 0, 100, 100)), gt_rec("b", person(0, 0, 100, 100))]
    dt = [dt_rec("a", det(0, 0, 50, 100, 0.9), width=100, height=100),
          dt_rec("b", det(0, 0, 200, 100, 0.8), width=100, height=100)]
    assert pooled(gt, dt) == [1, 1]


def test_clip_quirk_x1_at_most_width_minus_one():
    # A GT entirely right of a 100-px image: x1 = min(150, W-1) = 99, x2 = min(250, W) = 100
    # -> a 1-px box [99, 0, 100, 100], which the 1-px det [99, 0, 1, 100] matches (IoU 1).
    gt = [gt_rec("a", person(150, 0, 100, 100))]
    dt = [dt_rec("a", det(99, 0, 1, 100, 0.9), width=100, height=100)]
    assert pooled(gt, dt) == [1]


def test_hundreds_of_gts_in_one_image_perfect_detector():
    # 300 persons on a 20 x 15 grid, each detected exactly, plus 300 duplicates with lower
    # scores. All 300 TPs come first: recall k/300, precision 1 -> AP = sum of 299 steps
    # of 1/300 = 1 - 1/300 (no (0, 1) anchor); duplicates are FPs after recall 1 -> AP
    # unchanged, miss rate 0 at every reference -> MR 0; Recall 1.
    boxes = [person(50 * (k % 20), 100 * (k // 20), 50, 100) for k in range(300)]
    dets = [det(*b["fbox"], 0.5 + k / 1000) for k, b in enumerate(boxes)]
    dups = [det(b["fbox"][0] + 1, b["fbox"][1], 50, 100, 0.1 + k / 10000)
            for k, b in enumerate(boxes)]
    gt = [gt_rec("a", *boxes)]
    dt = [dt_rec("a", *(dups + dets), width=1000, height=1500)]
    assert_metrics(metrics(gt, dt), 0.0, 1 - 1 / 300, 1.0)
    assert metrics(gt, dt) == pytest.approx(reference_metrics(gt, dt), abs=1e-12)


def test_background_tag_counts_as_valid_but_matches_like_ignore():
    # Official quirk: tag 'background' -> tag 0: counted in the valid GT number but taken
    # in the ignore branch. One person (TP) + one 'background' box covering a det (dropped).
    gt = [gt_rec("a", person(0, 0, 100, 200),
                 {"tag": "background", "fbox": [500, 0, 100, 200], "hbox": [0, 0, 1, 1]})]
    dt = [dt_rec("a", det(0, 0, 100, 200, 0.9), det(500, 0, 100, 200, 0.8))]
    assert pooled(gt, dt) == [1]
    assert metrics(gt, dt)["Recall"] == pytest.approx(0.5)  # 1 TP of 2 "valid" GTs


def test_extra_ignore_marks_a_person_as_ignore():
    gt = [gt_rec("a", person(0, 0, 100, 200), person(500, 0, 100, 200, ignore=1))]
    dt = [dt_rec("a", det(0, 0, 100, 200, 0.9), det(500, 0, 100, 200, 0.8))]
    assert pooled(gt, dt) == [1]
    assert metrics(gt, dt)["Recall"] == 1.0


def test_repeated_ids_follow_the_official_dict_semantics():
    # GT: the second "a" line replaces the first but keeps its position (before "b").
    # Detections: the second "b" line replaces the first.
    gt = [gt_rec("a", person(0, 0, 10, 10)), gt_rec("b", person(0, 0, 100, 200)),
          gt_rec("a", person(300, 0, 100, 200))]
    dt = [dt_rec("b", det(600, 600, 50, 50, 0.5)), dt_rec("a", det(300, 0, 100, 200, 0.5)),
          dt_rec("b", det(0, 0, 100, 200, 0.5))]
    assert metrics(gt, dt) == pytest.approx(reference_metrics(gt, dt), abs=1e-12)
    assert metrics(gt, dt)["Recall"] == 1.0


# --------------------------------------------------------------------------- randomized


def _random_case(rng, near_threshold):
    """Small odgt GT/DT records with every quirk: borders, masks, tags, ties, gaps."""
    gts, dts = [], []
    for i in range(int(rng.integers(1, 7))):
        width, height = int(rng.integers(20, 80)), int(rng.integers(20, 80))
        boxes = []
        for _ in range(int(rng.integers(0, 9))):
            xywh = [float(rng.integers(-15, width)), float(rng.integers(-15, height)),
                    float(rng.integers(1, 40)), float(rng.integers(1, 40))]
            if near_threshold:
                xywh = [v + float(rng.random()) for v in xywh]
            kind = rng.random()
            if kind < 0.7:
                boxes.append(person(*xywh, **({"ignore": 1} if rng.random() < 0.05 else {})))
            elif kind < 0.95:
                boxes.append(mask(*xywh))
            else:
                boxes.append({"tag": "background", "fbox": xywh, "hbox": xywh})
        gts.append(gt_rec(f"im{i}", *boxes))
        dets = []
        for _ in range(int(rng.integers(0, 14))):
            if boxes and rng.random() < 0.7:
                x, y, w, h = boxes[int(rng.integers(len(boxes)))]["fbox"]
                if near_threshold:  # a shift giving IoU close to 0.5 on one axis
                    x += w * float(rng.choice([1 / 3, -1 / 3])) * float(rng.uniform(0.98, 1.02))
                    w *= float(rng.uniform(0.95, 1.05))
                else:
                    x, y = x + float(rng.integers(-4, 5)), y + float(rng.integers(-4, 5))
                    # Sizes down to 0 (a degenerate box is valid input), never negative.
                    w = max(w + float(rng.integers(-4, 5)), 0.0)
                    h = max(h + float(rng.integers(-4, 5)), 0.0)
            else:
                x, y = float(rng.integers(-10, width)), float(rng.integers(-10, height))
                w, h = float(rng.integers(1, 30)), float(rng.integers(1, 30))
            score = float(rng.integers(0, 6)) / 5 if rng.random() < 0.5 else float(rng.random())
            dets.append(det(x, y, w, h, score))
        if rng.random() < 0.9:  # some images have no detection line at all
            dts.append(dt_rec(f"im{i}", *dets, width=width, height=height))
    rng.shuffle(dts)
    return gts, dts


@pytest.mark.parametrize("near_threshold", [False, True])
def test_random_inputs_equal_the_reference(near_threshold):
    rng = np.random.default_rng(1234 + near_threshold)
    compared = 0
    for _ in range(300):
        gts, dts = _random_case(rng, near_threshold)
        if not any(b["tag"] != "mask" and not b.get("extra", {}).get("ignore")
                   for g in gts for b in g["gtboxes"]):
            with pytest.raises(DataError, match="no valid"):
                metrics(gts, dts)
            continue
        want, got = reference_metrics(gts, dts), metrics(gts, dts)
        for key in ("MR", "AP", "Recall"):
            assert got[key] == pytest.approx(want[key], abs=1e-9), (key, gts, dts)
        compared += 1
    assert compared > 250


def test_dataset_json_and_coco_results_give_the_odgt_numbers():
    rng = np.random.default_rng(7)
    for _ in range(40):
        gts, dts = _random_case(rng, near_threshold=False)
        sizes = {d["ID"]: (d["width"], d["height"]) for d in dts}
        images, annotations, results = [], [], []
        for k, g in enumerate(gts):
            w, h = sizes.get(g["ID"], (50, 50))
            images.append({"id": k + 1, "width": w, "height": h, "record_id": g["ID"]})
            for b in g["gtboxes"]:
                ignore = int(b["tag"] != "person" or bool(b.get("extra", {}).get("ignore")))
                annotations.append({"id": len(annotations) + 1, "image_id": k + 1,
                                    "bbox": b["fbox"], "ignore": ignore, "iscrowd": ignore})
        ids = {g["ID"]: k + 1 for k, g in enumerate(gts)}
        for d in dts:
            results += [{"image_id": ids[d["ID"]], "category_id": 1, "bbox": b["box"],
                         "score": b["score"]} for b in d["dtboxes"]]
        # The json GT has no 'background' tag: compare only cases without it.
        if any(b["tag"] == "background" for g in gts for b in g["gtboxes"]):
            continue
        if not any(a["ignore"] == 0 for a in annotations):
            continue
        gt_json = {"images": images, "annotations": annotations}
        want = metrics(gts, dts)
        assert metrics(gt_json, results) == pytest.approx(want, abs=1e-12)
        assert metrics(gt_json, dts) == pytest.approx(want, abs=1e-12)   # odgt DT, json GT
        # COCO results with an odgt GT: image_id k = k-th GT record (sizes from the DT
        # odgt are then unavailable, so give them in the GT lines).
        gts_sized = [dict(g, width=images[k]["width"], height=images[k]["height"])
                     for k, g in enumerate(gts)]
        assert metrics(gts_sized, results) == pytest.approx(want, abs=1e-12)


def test_greedy_rounds_on_a_long_conflict_chain():
    # 60 persons [10k, 0, 40, 100]; det k = [10k+6, 0, 40, 100] has IoU 36/44 with GT k+1
    # and 34/46 with GT k, and higher k scores higher. Det 59 takes GT 59; det 58 prefers
    # GT 59, finds it taken, falls back to GT 58; and so on down the chain: every
    # detection's choice depends on the previous one (one decision per round).
    boxes = [person(10 * k, 0, 40, 100) for k in range(60)]
    dets = [det(10 * k + 6, 0, 40, 100, 0.1 + k / 100) for k in range(60)]
    gt, dt = [gt_rec("a", *boxes)], [dt_rec("a", *dets)]
    assert pooled(gt, dt) == [1] * 60
    assert metrics(gt, dt) == pytest.approx(reference_metrics(gt, dt), abs=1e-12)


# --------------------------------------------------------------------------- JI


def test_ji_takes_the_best_score_threshold():
    # A, B persons; dA (0.95), FP f (0.95), dB (0.05, kept only at threshold 0.0).
    # t = 0.0: k 2, m 2, n 3 -> 2 / 3. t >= 0.1: k 1, m 2, n 2 -> 1 / 3. JI = max.
    gt = [gt_rec("a", person(0, 0, 100, 200), person(300, 0, 100, 200))]
    dt = [dt_rec("a", det(0, 0, 100, 200, 0.95), det(700, 700, 50, 50, 0.95),
                 det(300, 0, 100, 200, 0.05))]
    assert evaluate(gt, dt, coco=False)["JI"] == pytest.approx(2 / (3 + 1e-6), abs=1e-12)


def test_ji_ignores_unmatched_boxes_covered_by_ignore_regions():
    # Det in the mask (IoF 1) is not counted in n; person C inside the mask, unmatched,
    # is not counted in m: k 1, m 1, n 1 -> 1 / (1 + 1e-6).
    gt = [gt_rec("a", person(0, 0, 100, 200), mask(500, 500, 300, 300),
                 person(550, 550, 50, 100))]
    dt = [dt_rec("a", det(0, 0, 100, 200, 0.9), det(600, 600, 50, 50, 0.9))]
    assert evaluate(gt, dt, coco=False)["JI"] == pytest.approx(1 / (1 + 1e-6), abs=1e-12)


def test_ji_uses_a_maximum_matching_not_a_greedy_one():
    # d1 [15,0,100,100] has IoU 0.74 with both G1 [0,0,100,100] and G2 [30,0,100,100];
    # d2 [-20,0,100,100], clipped to [0,0,80,100], has IoU 0.8 with G1 only. A maximum
    # matching pairs d1-G2 and d2-G1: k 2, m 2, n 2 -> 2 / (2 + 1e-6).
    gt = [gt_rec("a", person(0, 0, 100, 100), person(30, 0, 100, 100))]
    dt = [dt_rec("a", det(15, 0, 100, 100, 0.9), det(-20, 0, 100, 100, 0.8))]
    assert evaluate(gt, dt, coco=False)["JI"] == pytest.approx(2 / (2 + 1e-6), abs=1e-12)


def test_ji_iou_of_exactly_half_is_an_edge():
    # JI keeps pairs with IoU >= 0.5 (mmdetection): det [0,0,50,100] vs GT 100x100 -> 1/1.
    gt = [gt_rec("a", person(0, 0, 100, 100))]
    dt = [dt_rec("a", det(0, 0, 50, 100, 0.9))]
    assert evaluate(gt, dt, coco=False)["JI"] == pytest.approx(1 / (1 + 1e-6), abs=1e-12)


def _literal_ji(gts, dts):
    """JI the plain way (for the test only): per threshold and image, float32 overlaps row
    by row, a dense -> CSR graph for scipy's matching, sets of unmatched indices."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    def overlaps(a, b, iof):
        a, b = a.astype(np.float32), b.astype(np.float32)
        out = np.zeros((len(a), len(b)), dtype=np.float32)
        for i in range(len(a)):
            iw = np.maximum(np.minimum(a[i, 2], b[:, 2]) - np.maximum(a[i, 0], b[:, 0]), 0)
            ih = np.maximum(np.minimum(a[i, 3], b[:, 3]) - np.maximum(a[i, 1], b[:, 1]), 0)
            area_a = (a[i, 2] - a[i, 0]) * (a[i, 3] - a[i, 1])
            area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
            union = area_a if iof else area_a + area_b - iw * ih
            out[i] = iw * ih / np.maximum(union, np.float32(1e-6))
        return out

    def covered(boxes, ignore):
        if len(boxes) == 0 or len(ignore) == 0:
            return 0
        return int((overlaps(boxes, ignore, True).max(axis=1) > 0.5).sum())

    g = load_ground_truth(gts)
    d = load_detections(dts, g)
    width, height = protocol.image_sizes(g, d)
    gt_xyxy = protocol.clip_to_images(protocol.xywh_to_xyxy(g.boxes), width[g.image_index],
                                      height[g.image_index])
    dt_xyxy = protocol.clip_to_images(protocol.xywh_to_xyxy(d.boxes), width[d.image_index],
                                      height[d.image_index])
    best = []
    for t in range(10):
        ratios, counted = [], 0
        for i in range(g.num_images):
            gi, di = g.image_index == i, (d.image_index == i) & (d.scores > 0.1 * t)
            valid, ignore = gt_xyxy[gi][g.tags[gi] != -1], gt_xyxy[gi][g.tags[gi] == -1]
            dets = dt_xyxy[di]
            matches = []
            if len(dets) and len(valid):
                iou = overlaps(dets, valid, False)
                iou[iou < 0.5] = 0
                match = maximum_bipartite_matching(csr_matrix(iou), perm_type="column")
                matches = [(r, c) for r, c in enumerate(match) if c != -1]
            free_dt = sorted(set(range(len(dets))) - {r for r, _ in matches})
            free_gt = sorted(set(range(len(valid))) - {c for _, c in matches})
            k = len(matches)
            m = len(valid) - covered(valid[free_gt], ignore)
            n = len(dets) - covered(dets[free_dt], ignore)
            ratios.append(k / (m + n - k + 1e-6))
            counted += m != 0 or n != 0
        best.append(sum(ratios) / counted if counted else 0.0)
    return max(best)


def test_ji_equals_a_literal_computation_on_random_inputs():
    rng = np.random.default_rng(99)
    for _ in range(40):
        gts, dts = _random_case(rng, near_threshold=bool(rng.random() < 0.5))
        if not any(b["tag"] == "person" for g in gts for b in g["gtboxes"]):
            continue
        got = evaluate(gts, dts, coco=False)["JI"]
        assert got == pytest.approx(_literal_ji(gts, dts), abs=1e-12)


# --------------------------------------------------------------------------- COCO extras


def test_coco_metrics_treat_ignore_boxes_as_crowd():
    gt = {"images": [{"id": 1, "width": 1000, "height": 1000}],
          "annotations": [{"id": 1, "image_id": 1, "bbox": [0, 0, 100, 200], "ignore": 0},
                          {"id": 2, "image_id": 1, "bbox": [500, 500, 300, 300], "ignore": 1}]}
    # The perfect detection is the only TP; the one on the crowd region is neither TP nor
    # FP (even with the higher score), so AP = AP50 = 1.
    dt = [{"image_id": 1, "bbox": [0, 0, 100, 200], "score": 0.5},
          {"image_id": 1, "bbox": [550, 550, 100, 100], "score": 0.9}]
    assert coco_metrics(gt, dt) == pytest.approx({"coco_AP": 1.0, "coco_AP50": 1.0})
    assert coco_metrics(gt, []) == {"coco_AP": 0.0, "coco_AP50": 0.0}
    # Without the crowd flag the higher-scored FP halves the precision at the only recall
    # level: 101-point interpolated AP = 0.5.
    gt["annotations"] = gt["annotations"][:1]
    assert coco_metrics(gt, dt)["coco_AP50"] == pytest.approx(0.5)


# --------------------------------------------------------------------------- interfaces


def _write_case(tmp_path):
    gt, dt = _ignore_scene(with_mask=False)
    gt_path, dt_path = tmp_path / "gt.odgt", tmp_path / "dt.odgt"
    gt_path.write_text("".join(json.dumps(r) + "\n" for r in gt))
    dt_path.write_text("".join(json.dumps(r) + "\n" for r in dt))
    return gt, dt, gt_path, dt_path


def test_cli_writes_all_metrics(tmp_path, capsys):
    gt, dt, gt_path, dt_path = _write_case(tmp_path)
    out = tmp_path / "sub" / "metrics.json"
    assert main(["eval", "crowdhuman", "--gt", str(gt_path), "--dt", str(dt_path),
                 "--out", str(out), "--coco"]) == 0
    written = json.loads(out.read_text())
    assert set(written) == {"MR", "AP", "Recall", "JI", "coco_AP", "coco_AP50"}
    assert written == json.loads(capsys.readouterr().out)
    assert written["MR"] == pytest.approx(metrics(gt, dt)["MR"], abs=1e-15)
    assert main(["eval", "crowdhuman", "--gt", str(gt_path), "--dt", str(dt_path),
                 "--no-ji", "--no-coco", "--out", str(out)]) == 0
    assert set(json.loads(out.read_text())) == {"MR", "AP", "Recall"}
    assert [p.name for p in out.parent.iterdir()] == ["metrics.json"]  # no temp files left
    # The default: what CrowdHuman papers report.
    assert main(["eval", "crowdhuman", "--gt", str(gt_path), "--dt", str(dt_path),
                 "--out", str(out)]) == 0
    assert set(json.loads(out.read_text())) == {"MR", "AP", "Recall", "JI"}


def test_cli_reports_bad_input(tmp_path, capsys):
    _, _, gt_path, dt_path = _write_case(tmp_path)
    dt_path.write_text(dt_path.read_text() + "{not json\n")
    assert main(["eval", "crowdhuman", "--gt", str(gt_path), "--dt", str(dt_path)]) == 2
    assert f"{dt_path}:2: malformed JSON" in capsys.readouterr().err


def test_streaming_evaluator_equals_file_evaluation():
    gt, dt = _ignore_scene(with_mask=True)
    # Streaming has no detection records to carry image sizes: give them in the GT.
    gt = [dict(g, width=W, height=H) for g in gt]
    evaluator = CrowdHumanEvaluator(gt, coco=False)
    boxes = np.array([d["box"] for d in dt[0]["dtboxes"]], dtype=float)
    boxes[:, 2:] += boxes[:, :2]  # xyxy, as torchvision models return them
    scores = np.array([d["score"] for d in dt[0]["dtboxes"]])
    # Image ids of an odgt GT are 1-based record numbers; "scene" is record 1.
    evaluator.process([1], [{"boxes": boxes[:2], "scores": scores[:2]}])
    evaluator.process([1, 2], [{"boxes": boxes[2:], "scores": scores[2:]},
                               {"boxes": np.zeros((0, 4)), "scores": np.zeros(0)}])
    assert evaluator.compute() == pytest.approx(evaluate(gt, dt, coco=False), abs=1e-12)
    with pytest.raises(DataError, match="unknown image id 0"):
        evaluator.process([0], [{"boxes": boxes, "scores": scores}])


# --------------------------------------------------------------------------- bad input


def test_unknown_image_id_in_detections(tmp_path):
    gt, dt, gt_path, _ = _write_case(tmp_path)
    dt_path = tmp_path / "dt.json"
    dt_path.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1],
                                    "score": 0.5},
                                   {"image_id": 999, "category_id": 1, "bbox": [0, 0, 1, 1],
                                    "score": 0.5}]))
    with pytest.raises(DataError, match=r"dt\.json \[record 1\]: unknown image_id 999"):
        evaluate(gt_path, dt_path)
    bad = [dict(dt[0], ID="nope")]
    with pytest.raises(DataError, match="ID 'nope' is not in the ground truth"):
        evaluate(gt, bad)


def test_nan_box_or_inf_score(tmp_path):
    gt = [gt_rec("a", person(0, 0, 100, 200))]
    gt_json = {"images": [{"id": 1, "width": 100, "height": 100}],
               "annotations": [{"id": 1, "image_id": 1, "bbox": [0, 0, 10, 10], "ignore": 0}]}
    with pytest.raises(DataError, match=r"\[record 1\].*NaN/inf"):
        evaluate(gt_json, [{"image_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5},
                           {"image_id": 1, "bbox": [0, float("nan"), 1, 1], "score": 0.5}])
    dt_path = tmp_path / "dt.odgt"
    dt_path.write_text(json.dumps(dt_rec("a", det(0, 0, 1, 1, 0.5))) + "\n"
                       + json.dumps(dt_rec("a", det(0, 0, 1, 1, float("inf")))) + "\n")
    with pytest.raises(DataError, match=r"dt\.odgt:2: .*NaN/inf"):
        evaluate(gt, dt_path)


def test_gt_box_without_hbox(tmp_path):
    path = tmp_path / "gt.odgt"
    path.write_text(json.dumps(gt_rec("a", person(0, 0, 1, 1))) + "\n\n"
                    + json.dumps(gt_rec("b", {"tag": "person", "fbox": [0, 0, 1, 1]})) + "\n")
    with pytest.raises(DataError, match=r"gt\.odgt:3: gtboxes\[0\] of ID 'b' has no 'hbox'"):
        evaluate(path, [])


def test_missing_image_size():
    gt = [gt_rec("a", person(0, 0, 100, 200))]
    dt = [{"ID": "a", "dtboxes": [det(0, 0, 100, 200, 0.9)]}]
    with pytest.raises(DataError, match=r"\[image 'a'\]: image size unknown"):
        evaluate(gt, dt)
    gt_json = {"images": [{"id": 1}], "annotations": []}
    with pytest.raises(DataError, match=r"\[images\[0\]\]: image 1 has no width/height"):
        evaluate(gt_json, [])


def test_empty_gt_set_and_zero_valid_gt(tmp_path):
    path = tmp_path / "gt.odgt"
    path.write_text("\n")
    with pytest.raises(DataError, match=r"gt\.odgt: the ground truth has no images"):
        evaluate(path, [])
    with pytest.raises(DataError, match="no valid"):
        evaluate([gt_rec("a", mask(0, 0, 10, 10))], [])


def test_malformed_gt_line_and_wrong_category(tmp_path):
    path = tmp_path / "gt.odgt"
    path.write_text(json.dumps(gt_rec("a", person(0, 0, 1, 1))) + "\n{\"ID\": \n")
    with pytest.raises(DataError, match=r"gt\.odgt:2: malformed JSON"):
        evaluate(path, [])
    gt = [dict(gt_rec("a", person(0, 0, 100, 200)), width=W, height=H)]
    with pytest.raises(DataError, match=r"\[record 0\]: category_id must be 1"):
        evaluate(gt, [{"image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1], "score": 1}])


def test_malformed_boxes_name_their_record(tmp_path):
    gt = [gt_rec("a", person(0, 0, 100, 200)), gt_rec("b")]
    dt_path = tmp_path / "dt.odgt"
    dt_path.write_text(json.dumps(dt_rec("a", det(0, 0, 1, 1, 0.5))) + "\n"
                       + json.dumps(dt_rec("b", {"box": [0, 0, 1], "score": 0.5})) + "\n")
    with pytest.raises(DataError, match=r"dt\.odgt:2: a dtboxes box of ID 'b' must be a list"):
        evaluate(gt, dt_path)
    with pytest.raises(DataError, match=r"\[record 0\]: gtboxes\[0\] of ID 'a' has no 'tag'"):
        evaluate([gt_rec("a", {"fbox": [0, 0, 1, 1], "hbox": [0, 0, 1, 1]})], [])
    gt_json = {"images": [{"id": 1, "width": 9, "height": 9}],
               "annotations": [{"id": 1, "image_id": 1, "bbox": [0, 0, 1, 1]},
                               {"id": 2, "image_id": 7, "bbox": [0, 0, 1, 1]}]}
    with pytest.raises(DataError, match=r"\[annotations\[1\]\]: unknown image_id 7"):
        evaluate(gt_json, [])


# --------------------------------------------------------------------------- fast paths


def test_ji_matching_of_all_images_at_once_equals_scipy_image_by_image():
    # Random dense graphs on several images; per image, the reference is scipy on that
    # image alone, built as mmdetection builds it (a dense matrix of the kept detections
    # in file order by the image's valid GTs, then CSR).
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    from lla.eval import ji

    rng = np.random.default_rng(8)
    for _ in range(150):
        dt_start, gt_start, blocks = [0], [0], []
        for _ in range(int(rng.integers(1, 7))):
            n_dt, n_gt = int(rng.integers(0, 7)), int(rng.integers(0, 7))
            blocks.append(rng.random((n_dt, n_gt)) < rng.uniform(0.1, 0.8))
            dt_start.append(dt_start[-1] + n_dt)
            gt_start.append(gt_start[-1] + n_gt)
        passed = rng.integers(0, 11, dt_start[-1])
        edge_dt, edge_gt = [], []
        for b, block in enumerate(blocks):
            rows, cols = np.nonzero(block)
            edge_dt += (rows + dt_start[b]).tolist()
            edge_gt += (cols + gt_start[b]).tolist()
        graph = ji._Edges(np.array(edge_dt, dtype=np.int64), np.array(edge_gt, dtype=np.int64),
                          passed, gt_start[-1], 10)
        for t in range(10):
            got = set(zip(*(a.tolist() for a in graph.maximum_matching(t))))
            want = set()
            for b, block in enumerate(blocks):
                kept = np.flatnonzero(passed[dt_start[b]:dt_start[b + 1]] > t)
                if len(kept) == 0 or block.shape[1] == 0:
                    continue
                match = maximum_bipartite_matching(csr_matrix(block[kept].astype(float)),
                                                   perm_type="column")
                want |= {(dt_start[b] + int(kept[r]), gt_start[b] + int(c))
                         for r, c in enumerate(match) if c >= 0}
            assert got == want


def _arrays(loaded):
    return {k: v for k, v in vars(loaded).items() if isinstance(v, np.ndarray)}


def test_valid_files_are_decoded_typed_into_the_same_arrays(tmp_path, monkeypatch):
    # The typed decoding of well-formed files gives exactly the arrays of the standard
    # parser (here: the records passed as objects); the latter is never called for them.
    from lla.eval import crowdhuman_io

    rng = np.random.default_rng(3)
    cases = []
    for _ in range(20):
        gts, dts = _random_case(rng, near_threshold=bool(rng.random() < 0.5))
        gt_path, dt_path = tmp_path / "gt.odgt", tmp_path / "dt.odgt"
        gt_path.write_text("".join(json.dumps(r) + "\n" for r in gts))
        dt_path.write_text("".join(json.dumps(r) + "\n" for r in dts))
        list_path = tmp_path / "dt_list.json"
        list_path.write_text(json.dumps(dts))
        cases.append((gts, dts, gt_path.read_bytes(), dt_path.read_bytes(),
                      list_path.read_bytes()))
    want = []
    for gts, dts, *_ in cases:
        g = load_ground_truth(gts)
        want.append((_arrays(g), _arrays(load_detections(dts, g))))

    def no_standard_parser(*args):
        raise AssertionError("well-formed input must not need the standard parser")

    monkeypatch.setattr(crowdhuman_io, "_parse", no_standard_parser)
    for (gts, dts, gt_bytes, dt_bytes, list_bytes), (want_gt, want_dt) in zip(cases, want):
        (tmp_path / "gt.odgt").write_bytes(gt_bytes)
        g = load_ground_truth(tmp_path / "gt.odgt")
        for name, data in (("dt.odgt", dt_bytes), ("dt_list.json", list_bytes)):
            (tmp_path / name).write_bytes(data)
            d = load_detections(tmp_path / name, g)
            for key, value in want_dt.items():
                np.testing.assert_array_equal(_arrays(d)[key], value)
        for key, value in want_gt.items():
            np.testing.assert_array_equal(_arrays(g)[key], value)


# --------------------------------------------------------------------------- bad input: files


@pytest.mark.parametrize("which", ["--gt", "--dt"])
@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_cli_missing_or_directory_input(tmp_path, capsys, which, kind):
    _, _, gt_path, dt_path = _write_case(tmp_path)
    bad = tmp_path / ("missing.json" if kind == "missing" else "folder.json")
    if kind == "directory":
        bad.mkdir()
    paths = {"--gt": gt_path, "--dt": dt_path, which: bad}
    out = tmp_path / "out" / "metrics.json"
    assert main(["eval", "crowdhuman", "--gt", str(paths["--gt"]), "--dt", str(paths["--dt"]),
                 "--out", str(out)]) == 2
    reason = "file not found" if kind == "missing" else "is a directory, expected a file"
    assert capsys.readouterr().err == f"error: {bad}: {reason}\n"
    assert not out.parent.exists()


def test_cli_input_that_is_not_text(tmp_path, capsys):
    _, _, gt_path, dt_path = _write_case(tmp_path)
    dt_path.write_bytes(b"\xff\xfe\x00[")
    assert main(["eval", "crowdhuman", "--gt", str(gt_path), "--dt", str(dt_path)]) == 2
    assert capsys.readouterr().err == f"error: {dt_path}: not UTF-8 text: invalid start byte\n"


def test_cli_out_is_a_directory(tmp_path, capsys):
    _, _, gt_path, dt_path = _write_case(tmp_path)
    assert main(["eval", "crowdhuman", "--gt", str(gt_path), "--dt", str(dt_path),
                 "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path}: is a directory")


# --------------------------------------------------------------------------- bad input: values


def _one_person_case():
    """One person found exactly (MR 0, AP 0, Recall 1) and a second, far detection."""
    gt_json = {"images": [{"id": 1, "width": W, "height": H, "record_id": "a"}],
               "annotations": [{"id": 1, "image_id": 1, "bbox": [0, 0, 100, 200],
                                "ignore": 0}]}
    dt = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 200], "score": 0.9},
          {"image_id": 1, "category_id": 1, "bbox": [500, 500, 50, 50], "score": 0.5}]
    return gt_json, dt


def test_negative_width_or_height_is_rejected(tmp_path, capsys):
    # A box [500, 500, -50, 50] (x2 < x1) would count as a false positive: it is malformed
    # input, named with its record, and nothing is written.
    gt_json, dt = _one_person_case()
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt_json))
    for k, box in ((2, [500, 500, -50, 50]), (3, [500, 500, 50, -1e-9])):
        bad = [dict(d) for d in dt]
        bad[1] = dict(bad[1], bbox=box)
        dt_path, out = tmp_path / "dt.json", tmp_path / "m.json"
        dt_path.write_text(json.dumps(bad))
        assert main(["eval", "crowdhuman", "--gt", str(gt_path), "--dt", str(dt_path),
                     "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {dt_path} [record 1]: bbox has a negative width or "
                              f"height: {box!r}"), err
        assert not out.exists()
        with pytest.raises(DataError, match=r"\[record 1\]: bbox has a negative"):
            evaluate(gt_json, bad)
    # The same in a detection .odgt (line 1) and in the streaming evaluator.
    records = [{"ID": "a", "width": W, "height": H,
                "dtboxes": [{"box": [0, 0, 100, 200], "score": 0.9},
                            {"box": [500, 500, -50, 50], "score": 0.5}]}]
    odgt = tmp_path / "dt.odgt"
    odgt.write_text(json.dumps(records[0]) + "\n")
    with pytest.raises(DataError, match=r"dt\.odgt:1: a dtboxes box of ID 'a' has a negative"):
        evaluate(gt_json, odgt)
    evaluator = CrowdHumanEvaluator(gt_json)
    evaluator.process([1], [{"boxes": np.array([[550.0, 500, 500, 550]]),
                             "scores": np.array([0.5])}])
    with pytest.raises(DataError, match=r"\[image 1\]: detection 0 has a negative width"):
        evaluator.compute()


def test_zero_width_or_height_is_a_valid_detection(tmp_path):
    # A degenerate box overlaps nothing: it is a false positive, as in the official code.
    # Pooled [TP 0.9, FP 0.5]: fppi [0, 1]; recall 1 from the start -> MR 0; Recall 1.
    gt_json, dt = _one_person_case()
    dt[1]["bbox"] = [500, 500, 0, 50]
    (tmp_path / "gt.json").write_text(json.dumps(gt_json))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    got = evaluate(tmp_path / "gt.json", tmp_path / "dt.json", ji=False)
    assert_metrics(got, 0.0, 0.0, 1.0)
    assert pooled(gt_json, dt) == [1, 0]


@pytest.mark.parametrize("field, value, message", [
    ("score", True, "score must be a number, got True"),
    ("score", "0.5", "score must be a number, got '0.5'"),
    ("score", None, "score must be a number, got None"),
    ("bbox", [0, 0, "100", 200], "bbox has a non-numeric entry: [0, 0, '100', 200]"),
    ("bbox", [0, 0, True, 200], "bbox has a non-numeric entry: [0, 0, True, 200]"),
])
def test_non_numeric_values_are_rejected(tmp_path, field, value, message):
    gt_json, dt = _one_person_case()
    dt[1][field] = value
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    for source in (tmp_path / "dt.json", dt):
        with pytest.raises(DataError) as info:
            evaluate(gt_json, source)
        assert "[record 1]: " + message in str(info.value)


def test_dataset_json_converted_for_citypersons_is_refused(tmp_path, capsys):
    gt_json, dt = _one_person_case()
    gt_json["info"] = {"dataset": "citypersons", "split": "val"}
    (tmp_path / "gt.json").write_text(json.dumps(gt_json))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    assert main(["eval", "crowdhuman", "--gt", str(tmp_path / "gt.json"), "--dt",
                 str(tmp_path / "dt.json"), "--out", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'gt.json'}: this dataset json was converted for "
                          "citypersons (info.dataset 'citypersons'), not crowdhuman: evaluate "
                          "it with `lla eval citypersons`"), err
    assert not (tmp_path / "m.json").exists()
    with pytest.raises(DataError, match="converted for citypersons"):
        evaluate(gt_json, dt)
    gt_json["info"]["dataset"] = "crowdhuman"   # its own: evaluated
    assert evaluate(gt_json, dt)["Recall"] == 1.0


def test_coco_results_decoded_in_parts_give_the_whole_file(tmp_path, monkeypatch):
    # A results file is decoded in parts cut between records: parts of a few records
    # (cuts everywhere, with any spacing) give exactly the arrays of one part. A cut inside
    # a string (here a "note" holding "}, {") makes its part invalid: the file is then
    # read the standard way, with the same result.
    from lla.eval import crowdhuman_io, json_input

    rng = np.random.default_rng(12)
    gts, dts = _random_case(rng, near_threshold=False)
    while sum(len(d["dtboxes"]) for d in dts) < 5:
        gts, dts = _random_case(rng, near_threshold=False)
    g = load_ground_truth([dict(r, width=W, height=H) for r in gts])
    ids = {r["ID"]: k + 1 for k, r in enumerate(gts)}
    results = [{"image_id": ids[d["ID"]], "category_id": 1, "bbox": b["box"],
                "score": b["score"]} for d in dts for b in d["dtboxes"]]
    noted = [dict(r, note="}, {") for r in results]
    whole = _arrays(load_detections(results, g))
    path = tmp_path / "dt.json"
    standard_parse = crowdhuman_io._parse
    for records, parsed_standard_way in ((results, False), (noted, True)):
        for text in (json.dumps(records), json.dumps(records, indent=2),
                     json.dumps(records, separators=(",", ":"))):
            path.write_text(text)
            for part_bytes in (1, 37, 10 ** 9):
                parsed = []
                monkeypatch.setattr(crowdhuman_io, "_parse",
                                    lambda *a: parsed.append(1) or standard_parse(*a))
                monkeypatch.setattr(crowdhuman_io, "decode_typed_list_parts",
                                    lambda raw, decoder, n=part_bytes:
                                    json_input.decode_typed_list_parts(raw, decoder, n))
                got = _arrays(load_detections(path, g))
                for key, value in whole.items():
                    np.testing.assert_array_equal(got[key], value)
                if not parsed_standard_way:
                    assert not parsed
                elif part_bytes == 1:
                    assert parsed
