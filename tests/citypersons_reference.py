"""Test oracle: a literal, loop-by-loop re-implementation of the official CityPersons evaluation.

It follows evaluation.md §3 step by step, the way ``eval_MR_multisetup.py`` and its driver
``eval_demo.py`` do it: COCO-style indexing of the GT and of the results (``loadRes`` adds
``height = bbox[3]`` and ``id = index + 1``), a fresh copy of the GT for each setup, a
per-image ``evaluate_image`` with the greedy Python loop, ``accumulate`` over the images in
sorted id order and the summary over the nine FPPI points. It is slow and simple on purpose:
``lla.eval.citypersons`` is compared against it on random inputs. Only the tests use it.
"""

from __future__ import annotations

import copy
from collections import defaultdict

import numpy as np

BIG = 1e5 ** 2
HEIGHT_RANGES = [[50, BIG], [50, 75], [50, BIG], [20, BIG]]
VIS_RANGES = [[0.65, BIG], [0.65, BIG], [0.2, 0.65], [0.2, BIG]]
SETUP_NAMES = ["Reasonable", "Reasonable_small", "Heavy", "All"]
FPPI_REFERENCES = np.array([0.0100, 0.0178, 0.0316, 0.0562, 0.1000, 0.1778, 0.3162, 0.5623,
                            1.0000])
EXP_FILTER = 1.25
MAX_DETS = 1000
IOU_THRESHOLD = 0.5


def reference_evaluate(gt_json: dict, results: list) -> dict[str, float]:
    """The four MRs (fractions) of ``results`` against ``gt_json``; -1 without valid GT.

    An empty result list gives 1.0 wherever GT exists (the adopted value; the official
    ``loadRes`` crashes on it).
    """
    return {name: mr for name, (mr, _) in reference_details(gt_json, results).items()}


def reference_details(gt_json: dict, results: list) -> dict[str, tuple[float, list[bool]]]:
    """Per setup: (MR, is-TP of every TP/FP detection of the curve in pooled order)."""
    out = {}
    for setup in range(4):
        gt = copy.deepcopy(gt_json)       # the official driver reloads the GT per setup
        dt = copy.deepcopy(results)
        out[SETUP_NAMES[setup]] = _evaluate_setup(gt, dt, setup)
    return out


def _evaluate_setup(gt: dict, results: list, setup: int) -> tuple[float, list[bool]]:
    image_ids = sorted({img["id"] for img in gt["images"]})
    cat_ids = sorted({c["id"] for c in gt["categories"]})

    # loadRes: every result gets height, area and a 1-based id
    for index, det in enumerate(results):
        det["height"] = det["bbox"][3]
        det["area"] = det["bbox"][2] * det["bbox"][3]
        det["id"] = index + 1

    # _prepare: annotations of the listed categories, grouped by (image, category) in file
    # order, the setup's ignore flag written into each (a fresh copy per setup)
    h_range, v_range = HEIGHT_RANGES[setup], VIS_RANGES[setup]
    gts, dts = defaultdict(list), defaultdict(list)
    for ann in gt["annotations"]:
        if cat_ids and ann["category_id"] not in cat_ids:
            continue
        ann["ignore"] = ann["ignore"] if "ignore" in ann else 0
        if (ann["height"] < h_range[0] or ann["height"] > h_range[1]
                or ann["vis_ratio"] < v_range[0] or ann["vis_ratio"] > v_range[1]):
            ann["ignore"] = 1
        gts[ann["image_id"], ann["category_id"]].append(ann)
    for det in results:
        if cat_ids and det["category_id"] not in cat_ids:
            continue
        dts[det["image_id"], det["category_id"]].append(det)

    # accumulate only looks at category 1, with the images in sorted id order
    if 1 not in cat_ids:
        return -1.0, []
    per_image = [_evaluate_image(gts[i, 1], dts[i, 1], h_range) for i in image_ids]
    per_image = [e for e in per_image if e is not None]
    if not per_image:
        return -1.0, []
    return _accumulate_and_summarize(per_image, len(image_ids))


def _overlaps(dets: list, gts: list, gt_ignored: list) -> np.ndarray:
    """(D, G) IoU, or IoA for ignored GT, with the official per-pair arithmetic."""
    out = np.zeros((len(dets), len(gts)))
    for j, g in enumerate(gts):
        gx1, gy1 = g["bbox"][0], g["bbox"][1]
        gx2, gy2 = g["bbox"][0] + g["bbox"][2], g["bbox"][1] + g["bbox"][3]
        g_area = g["bbox"][2] * g["bbox"][3]
        for i, d in enumerate(dets):
            dx1, dy1 = d["bbox"][0], d["bbox"][1]
            dx2, dy2 = d["bbox"][0] + d["bbox"][2], d["bbox"][1] + d["bbox"][3]
            d_area = d["bbox"][2] * d["bbox"][3]
            w = min(dx2, gx2) - max(dx1, gx1)
            if w <= 0:
                continue
            h = min(dy2, gy2) - max(dy1, gy1)
            if h <= 0:
                continue
            inter = w * h
            union = d_area if gt_ignored[j] else d_area + g_area - inter
            out[i, j] = float(inter) / union
    return out


def _evaluate_image(gts: list, dets: list, h_range: list):
    if len(gts) == 0 and len(dets) == 0:
        return None
    ignored = [1 if g["ignore"] else 0 for g in gts]
    gt_order = np.argsort(ignored, kind="mergesort")
    gts = [gts[i] for i in gt_order]
    gt_ignored = [ignored[i] for i in gt_order]
    det_order = np.argsort([-d["score"] for d in dets], kind="mergesort")
    dets = [dets[i] for i in det_order[:MAX_DETS]]
    dets = [d for d in dets
            if d["height"] >= h_range[0] / EXP_FILTER and d["height"] < h_range[1] * EXP_FILTER]

    overlaps = _overlaps(dets, gts, gt_ignored) if dets else np.zeros((0, len(gts)))
    gt_matched = [0] * len(gts)
    det_match = [0] * len(dets)       # id of the GT matched (0: none)
    det_ignored = [0] * len(dets)
    for di, det in enumerate(dets):
        best_value = min(IOU_THRESHOLD, 1 - 1e-10)
        best_gt, best_kind = -2, -2   # kind 1: valid GT, -1: ignored GT
        for gi, g in enumerate(gts):
            if gt_matched[gi] > 0:
                continue
            if best_kind != -2 and gt_ignored[gi] == 1:
                break
            if overlaps[di, gi] < best_value:
                continue
            best_value = overlaps[di, gi]
            best_gt = gi
            best_kind = 1 if gt_ignored[gi] == 0 else -1
        if best_gt == -2:
            continue
        det_ignored[di] = gt_ignored[best_gt]
        det_match[di] = gts[best_gt]["id"]
        if best_kind == 1:
            gt_matched[best_gt] = det["id"]
    return {"scores": [d["score"] for d in dets], "matches": det_match,
            "det_ignored": det_ignored, "gt_ignored": gt_ignored}


def _accumulate_and_summarize(per_image: list, num_images: int) -> tuple[float, list[bool]]:
    scores = np.concatenate([np.asarray(e["scores"], dtype=float) for e in per_image])
    order = np.argsort(-scores, kind="mergesort")
    matches = np.concatenate([np.asarray(e["matches"], dtype=float) for e in per_image])[order]
    det_ignored = np.concatenate([np.asarray(e["det_ignored"], dtype=float)
                                  for e in per_image])[order]
    gt_ignored = np.concatenate([np.asarray(e["gt_ignored"], dtype=float) for e in per_image])
    num_valid = int(np.count_nonzero(gt_ignored == 0))
    if num_valid == 0:
        return -1.0, []
    keep = np.where(det_ignored == 0)[0]
    tp = np.logical_and(matches, np.logical_not(det_ignored))[keep]
    fp = np.logical_and(np.logical_not(matches), np.logical_not(det_ignored))[keep]
    outcomes = [bool(v) for v in tp]
    tp = np.cumsum(tp).astype(float)
    fp = np.cumsum(fp).astype(float)
    fppi = fp / num_images
    recall = (tp / num_valid).tolist()
    sampled = [0.0] * len(FPPI_REFERENCES)
    indices = np.searchsorted(fppi, FPPI_REFERENCES, side="right") - 1
    try:
        for k, index in enumerate(indices):
            sampled[k] = recall[index]     # index -1 reads the final recall
    except IndexError:                     # no surviving detection: recall stays 0
        pass
    miss = 1 - np.array(sampled)
    with np.errstate(divide="ignore"):
        return float(np.exp(np.mean(np.log(miss[miss < 2])))), outcomes
