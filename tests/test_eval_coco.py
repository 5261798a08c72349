"""COCO AP / AP50 through faster-coco-eval (lla.eval.coco) against pycocotools itself.

pycocotools is the definition of COCO AP. faster-coco-eval runs the same algorithm in C++;
its precision lacks pycocotools' ``+ np.spacing(1)`` in the denominator, so a precision can
differ in the last bit: the metrics must agree to 1e-12 on every case of the evaluator
tests (both protocols) and on the hand-worked cases below.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from lla.eval.coco import coco_metrics
from lla.eval.crowdhuman import coco_metrics as crowdhuman_coco_metrics
from lla.eval.crowdhuman_io import load_detections, load_ground_truth
from test_eval_citypersons import random_case as citypersons_case
from test_eval_crowdhuman import _random_case as crowdhuman_case


def pycocotools_metrics(gt: dict, dt: list, max_dets: int = 100) -> dict[str, float]:
    """AP and AP50 by pycocotools with the parameters of lla.eval.coco (category 1, the
    "all" area range, ``max_dets`` detections per image, ignore boxes as crowd)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not dt:
        return {"coco_AP": 0.0, "coco_AP50": 0.0}
    annotations = []
    for k, ann in enumerate(gt["annotations"]):
        x, y, w, h = (float(v) for v in ann["bbox"])
        crowd = int(bool(ann.get("ignore", 0) or ann.get("iscrowd", 0)))
        annotations.append({"id": int(ann.get("id", k + 1)), "image_id": ann["image_id"],
                            "category_id": 1, "bbox": [x, y, w, h],
                            "area": float(ann.get("area", w * h)), "iscrowd": crowd,
                            "ignore": crowd})
    results = np.array([[d["image_id"], *d["bbox"], d["score"], 1] for d in dt], dtype=float)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": [{"id": im["id"]} for im in gt["images"]],
                           "annotations": annotations, "categories": [{"id": 1}]}
        coco_gt.createIndex()
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        evaluator.params.imgIds = sorted(coco_gt.getImgIds())
        evaluator.params.catIds = [1]
        evaluator.params.areaRng, evaluator.params.areaRngLbl = [[0.0, 1e10]], ["all"]
        evaluator.params.maxDets = [max_dets]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][:, :, 0, 0, 0]

    def mean(p):
        return float(p[p > -1].mean()) if (p > -1).any() else -1.0

    return {"coco_AP": mean(precision), "coco_AP50": mean(precision[0])}


def assert_same(got, want):
    assert got == pytest.approx(want, abs=1e-12, rel=0)


def test_hand_cases():
    gt = {"images": [{"id": 1}, {"id": 2}],
          "annotations": [{"id": 1, "image_id": 1, "bbox": [0, 0, 100, 200], "ignore": 0},
                          {"id": 2, "image_id": 1, "bbox": [500, 500, 300, 300], "ignore": 1}]}
    dt = [{"image_id": 1, "bbox": [0, 0, 100, 200], "score": 0.5},
          {"image_id": 1, "bbox": [550, 550, 100, 100], "score": 0.9},
          {"image_id": 2, "bbox": [0, 0, 10, 10], "score": 0.7}]
    assert_same(coco_metrics(gt, dt), pycocotools_metrics(gt, dt))
    # Only crowd regions: no defined precision -> -1 (pycocotools' "undefined").
    only_crowd = dict(gt, annotations=gt["annotations"][1:])
    assert coco_metrics(only_crowd, dt) == pycocotools_metrics(only_crowd, dt) == {
        "coco_AP": -1.0, "coco_AP50": -1.0}
    # More than 100 detections in an image: only the 100 best count in both.
    many = [{"image_id": 1, "bbox": [3 * k, 300, 20, 40], "score": 0.9 - k / 1000}
            for k in range(150)] + dt[:1]
    assert_same(coco_metrics(gt, many), pycocotools_metrics(gt, many))


def test_crowdhuman_cases_equal_pycocotools():
    rng = np.random.default_rng(31)
    compared = 0
    for _ in range(150):
        gts, dts = crowdhuman_case(rng, near_threshold=bool(rng.random() < 0.5))
        ground_truth = load_ground_truth(gts)
        detections = load_detections(dts, ground_truth)
        tags = ground_truth.tags.tolist()
        gt = {"images": [{"id": i + 1} for i in range(ground_truth.num_images)],
              "annotations": [{"id": k + 1, "image_id": int(i) + 1, "bbox": b,
                               "ignore": int(tag != 1)}
                              for k, (i, b, tag) in enumerate(zip(
                                  ground_truth.image_index, ground_truth.boxes.tolist(), tags))]}
        dt = [{"image_id": int(i) + 1, "bbox": b, "score": s}
              for i, b, s in zip(detections.image_index, detections.boxes.tolist(),
                                 detections.scores.tolist())]
        assert_same(crowdhuman_coco_metrics(ground_truth, detections), pycocotools_metrics(gt, dt))
        compared += 1
    assert compared == 150


def test_citypersons_cases_equal_pycocotools():
    for seed in range(150):
        gt, dt = citypersons_case(seed)
        gt = dict(gt, annotations=[a for a in gt["annotations"] if a["category_id"] == 1])
        dt = [d for d in dt if d["category_id"] == 1]
        assert_same(coco_metrics(gt, dt), pycocotools_metrics(gt, dt))
