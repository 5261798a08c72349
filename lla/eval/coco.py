"""COCO-style AP and AP50 through pycocotools, reported next to the protocol metrics.

These numbers are an extra for comparison with tools that report COCO AP; they never
replace the CrowdHuman / CityPersons protocol metrics. Ignore boxes of our dataset json
(``ignore == 1``) are passed to pycocotools as ``iscrowd`` regions, so detections on them
are neither true nor false positives.

pycocotools is imported lazily: importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import io
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
        are no detections, and pycocotools' -1.0 when ``gt`` has no non-ignored box.
    """
    if len(dt) == 0:
        return {"coco_AP": 0.0, "coco_AP50": 0.0}

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = _clean_gt(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(_results_array(dt))
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        params = evaluator.params
        params.imgIds = sorted(coco_gt.getImgIds())
        params.catIds = [1]
        # AP and AP50 use only the "all" area range at the largest maxDets: evaluating the
        # other ranges would quadruple the time for numbers we do not report.
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


def _clean_gt(gt: dict) -> dict[str, Any]:
    """A fresh copy of ``gt`` with only what pycocotools reads (it mutates annotations)."""
    annotations = []
    for index, ann in enumerate(gt["annotations"]):
        x, y, w, h = (float(v) for v in ann["bbox"])
        ignore = int(bool(ann.get("ignore", 0) or ann.get("iscrowd", 0)))
        annotations.append({
            "id": int(ann.get("id", index + 1)), "image_id": ann["image_id"],
            "category_id": 1, "bbox": [x, y, w, h],
            "area": float(ann.get("area", w * h)), "iscrowd": ignore, "ignore": ignore,
        })
    images = [{"id": im["id"], "width": im.get("width"), "height": im.get("height")}
              for im in gt["images"]]
    return {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person"}]}


def _results_array(dt: list) -> np.ndarray:
    """COCO results as pycocotools' (N, 7) array [image_id, x, y, w, h, score, category]."""
    rows = np.empty((len(dt), 7), dtype=np.float64)
    for i, det in enumerate(dt):
        x, y, w, h = det["bbox"]
        rows[i] = (det["image_id"], x, y, w, h, det["score"], 1)
    return rows
