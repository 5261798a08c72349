"""COCO-style AP and AP50 (faster-coco-eval), reported next to the protocol metrics on request.

These numbers are an extra for comparison with tools that report COCO AP; they never
replace the CrowdHuman / CityPersons protocol metrics. Ignore boxes of our dataset json
(``ignore == 1``) are passed as ``iscrowd`` regions, so detections on them are neither
true nor false positives.

faster-coco-eval runs pycocotools' algorithm in C++. On the evaluator tests' inputs its
AP / AP50 equal pycocotools' up to the last bit (``tests/test_eval_coco.py`` checks 1e-12):
pycocotools divides by ``tp + fp + np.spacing(1)`` where faster-coco-eval divides by
``tp + fp``, which moves a precision by one unit in the last place.

faster-coco-eval is imported lazily: importing this module stays cheap.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

DEFAULT_MAX_DETS = 100  # the standard COCO cap on detections per image


def coco_metrics(gt: dict, dt: list, *, max_dets: int = DEFAULT_MAX_DETS) -> dict[str, float]:
    """COCO AP@[.5:.95] and AP@.5 of detections ``dt`` against the dataset json ``gt``.

    Args:
        gt: our dataset json (``images`` with ``id``/``width``/``height``; ``annotations``
            with ``image_id``, ``bbox`` [x, y, w, h] and ``ignore``; optional ``area``).
            Not modified.
        dt: COCO results list ``[{"image_id", "bbox": [x, y, w, h], "score", ...}]``, every
            ``image_id`` present in ``gt``. Not modified.
        max_dets: detections per image considered (highest scores first), 100 in COCO.

    Returns:
        ``{"coco_AP": float, "coco_AP50": float}`` as fractions; 0.0 for both when there
        are no detections, and -1.0 when ``gt`` has no non-ignored box.
    """
    if len(dt) == 0:
        return {"coco_AP": 0.0, "coco_AP50": 0.0}
    return coco_metrics_of_arrays(_clean_gt(gt), _results_array(dt), max_dets=max_dets)


def coco_metrics_of_arrays(gt: dict[str, Any], results: np.ndarray, *,
                           max_dets: int = DEFAULT_MAX_DETS) -> dict[str, float]:
    """:func:`coco_metrics` of a GT already in COCO form (``images``, ``annotations`` with
    ``id``, ``image_id``, ``category_id`` 1, ``bbox``, ``area``, ``iscrowd``; ``categories``)
    and detections as an (N, 7) array of rows [image_id, x, y, w, h, score, 1]."""
    if len(results) == 0:
        return {"coco_AP": 0.0, "coco_AP50": 0.0}
    from faster_coco_eval import COCO, COCOeval_faster

    logging.getLogger("faster_coco_eval").setLevel(logging.WARNING)  # progress messages
    coco_gt = COCO(gt)
    coco_dt = coco_gt.loadRes(results)
    evaluator = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=logging.debug)
    params = evaluator.params
    params.imgIds = sorted(coco_gt.getImgIds())
    params.catIds = [1]
    # AP and AP50 use only the "all" area range at the largest maxDets: evaluating the
    # other ranges would take longer for numbers we do not report.
    params.areaRng, params.areaRngLbl = [[0.0, 1e10]], ["all"]
    params.maxDets = [int(max_dets)]
    evaluator.evaluate()
    evaluator.accumulate()
    precision = evaluator.eval["precision"][:, :, 0, 0, 0]  # (IoU thresholds, recall points)
    return {"coco_AP": _mean_defined(precision), "coco_AP50": _mean_defined(precision[0])}


def _mean_defined(precision: np.ndarray) -> float:
    """Mean over the defined (> -1) entries, as COCOeval.summarize; -1.0 if none."""
    defined = precision[precision > -1]
    return float(defined.mean()) if defined.size else -1.0


def coco_ground_truth(image_ids: list, image_index: np.ndarray, boxes: np.ndarray,
                      ignore: np.ndarray, annotation_ids: np.ndarray | None = None,
                      areas: np.ndarray | None = None) -> dict[str, Any]:
    """The COCO form of a GT given as columns: I image ids; for each of the N boxes its
    image (index into ``image_ids``), bbox (N, 4) [x, y, w, h], ignore flag, and
    optionally its annotation id (default 1..N) and area (default w * h)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    ids = np.arange(1, len(boxes) + 1) if annotation_ids is None else annotation_ids
    areas = boxes[:, 2] * boxes[:, 3] if areas is None else areas
    flags = np.asarray(ignore).astype(bool).astype(int).tolist()
    annotations = [{"id": int(i), "image_id": image_ids[k], "category_id": 1, "bbox": b,
                    "area": a, "iscrowd": f, "ignore": f}
                   for i, k, b, a, f in zip(np.asarray(ids).tolist(), image_index.tolist(),
                                            boxes.tolist(), np.asarray(areas).tolist(), flags)]
    return {"images": [{"id": i, "width": None, "height": None} for i in image_ids],
            "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}


def results_array(image_ids: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """COCO results as the (N, 7) array [image_id, x, y, w, h, score, category 1]."""
    rows = np.empty((len(scores), 7), dtype=np.float64)
    rows[:, 0] = image_ids
    rows[:, 1:5] = boxes
    rows[:, 5] = scores
    rows[:, 6] = 1
    return rows


def _clean_gt(gt: dict) -> dict[str, Any]:
    """A fresh copy of ``gt`` with only what the COCO evaluation reads (it mutates
    annotations)."""
    annotations = gt["annotations"]
    image_ids = [im["id"] for im in gt["images"]]
    position = {image_id: k for k, image_id in enumerate(image_ids)}
    boxes = [[float(v) for v in ann["bbox"]] for ann in annotations]
    return coco_ground_truth(
        image_ids, np.array([position[ann["image_id"]] for ann in annotations], dtype=np.int64),
        np.array(boxes, dtype=np.float64).reshape(-1, 4),
        np.array([bool(ann.get("ignore", 0) or ann.get("iscrowd", 0)) for ann in annotations]),
        np.array([int(ann.get("id", index + 1)) for index, ann in enumerate(annotations)]),
        np.array([float(ann.get("area", b[2] * b[3])) for ann, b in zip(annotations, boxes)]))


def _results_array(dt: list) -> np.ndarray:
    """COCO results as the (N, 7) array [image_id, x, y, w, h, score, category]."""
    rows = np.empty((len(dt), 7), dtype=np.float64)
    for i, det in enumerate(dt):
        x, y, w, h = det["bbox"]
        rows[i] = (det["image_id"], x, y, w, h, det["score"], 1)
    return rows
