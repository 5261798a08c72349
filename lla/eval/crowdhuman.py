"""CrowdHuman evaluation: MR (mMR^-2), AP and Recall identical to the official
CrowdDet/cvpods evaluator, plus the Jaccard index and COCO AP as extras.

    lla eval crowdhuman --gt annotation_val.odgt --dt detections.odgt --out metrics.json

Python::

    from lla.eval.crowdhuman import evaluate
    metrics = evaluate("data/crowdhuman/val.json", "detections.json")

The protocol is implemented in :mod:`lla.eval.crowdhuman_protocol`, input reading in
:mod:`lla.eval.crowdhuman_io`, the Jaccard index in :mod:`lla.eval.ji`. All metrics are
fractions (MR 0.42 = 42 %).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lla.errors import DataError
from lla.eval import crowdhuman_protocol as protocol
from lla.eval.crowdhuman_io import (Detections, GroundTruth, detections_from_arrays,
                                    load_detections, load_ground_truth)

log = logging.getLogger(__name__)


def evaluate(gt: str | Path | dict | Sequence[dict], dt: str | Path | Sequence[dict], *,
             ji: bool = True, coco: bool = True) -> dict[str, float]:
    """Evaluate detections on CrowdHuman (full body).

    Args:
        gt: our dataset json or the official GT ``.odgt`` (path or loaded object: a dict,
            or a list of odgt records).
        dt: COCO results list or detection ``.odgt`` records (path or loaded list).
        ji: also compute the Jaccard index ("JI").
        coco: also compute COCO AP / AP50 through pycocotools ("coco_AP", "coco_AP50").

    Returns:
        ``{"MR", "AP", "Recall"}`` (+ "JI", "coco_AP", "coco_AP50") as floats.

    Raises:
        DataError: bad input, naming the file and record.
    """
    ground_truth = load_ground_truth(gt)
    detections = load_detections(dt, ground_truth)
    return evaluate_loaded(ground_truth, detections, ji=ji, coco=coco)


def evaluate_loaded(gt: GroundTruth, dets: Detections, *, ji: bool = True,
                    coco: bool = True) -> dict[str, float]:
    """:func:`evaluate` on already loaded inputs."""
    start = time.perf_counter()
    metrics = protocol.protocol_metrics(gt, dets)
    log.debug("MR/AP/Recall in %.3f s", time.perf_counter() - start)
    if ji:
        metrics["JI"] = jaccard_index(gt, dets)
    if coco:
        from lla.eval.coco import coco_metrics

        metrics.update(coco_metrics(*_as_coco(gt, dets)))
    return metrics


def jaccard_index(gt: GroundTruth, dets: Detections) -> float:
    """The JI of :mod:`lla.eval.ji` over every GT image (boxes clipped, file order)."""
    from lla.eval import ji as ji_module

    width, height = protocol.image_sizes(gt, dets)
    gt_xyxy = protocol.clip_to_images(protocol.xywh_to_xyxy(gt.boxes),
                                      width[gt.image_index], height[gt.image_index])
    dt_xyxy = protocol.clip_to_images(protocol.xywh_to_xyxy(dets.boxes),
                                      width[dets.image_index], height[dets.image_index])
    gt_start = np.searchsorted(gt.image_index, np.arange(gt.num_images + 1))
    dt_start = np.searchsorted(dets.image_index, np.arange(gt.num_images + 1))
    terms = []
    for i in range(gt.num_images):
        g = slice(gt_start[i], gt_start[i + 1])
        d = slice(dt_start[i], dt_start[i + 1])
        terms.append(ji_module.image_ji_terms(gt_xyxy[g], gt.tags[g], dt_xyxy[d],
                                              dets.scores[d]))
    return ji_module.jaccard_index(terms)


def _as_coco(gt: GroundTruth, dets: Detections) -> tuple[dict, list]:
    """Our dataset-json view of the inputs (image ids 1..I, unclipped boxes)."""
    boxes = gt.boxes.tolist()
    annotations = [{"id": k + 1, "image_id": int(i) + 1, "bbox": boxes[k],
                    "ignore": int(tag != 1), "area": boxes[k][2] * boxes[k][3]}
                   for k, (i, tag) in enumerate(zip(gt.image_index.tolist(), gt.tags.tolist()))]
    images = [{"id": i + 1, "width": None, "height": None} for i in range(gt.num_images)]
    results = [{"image_id": i + 1, "bbox": b, "score": s}
               for i, b, s in zip(dets.image_index.tolist(), dets.boxes.tolist(),
                                  dets.scores.tolist())]
    return {"images": images, "annotations": annotations}, results


class CrowdHumanEvaluator:
    """Streaming form: feed predictions batch by batch, then :meth:`compute`.

    ``process`` takes per-image predictions as torchvision detection models return them::

        evaluator = CrowdHumanEvaluator("data/crowdhuman/val.json")
        for images, targets in loader:
            outputs = model(images)   # [{"boxes": (N, 4) xyxy, "scores": (N,)}, ...]
            evaluator.process([t["image_id"] for t in targets], outputs)
        metrics = evaluator.compute()

    Image ids are those of the ground truth (json ``images[].id``; odgt: 1-based order).
    Boxes are [x1, y1, x2, y2] in original image pixels.
    """

    def __init__(self, gt: str | Path | dict | Sequence[dict], *, ji: bool = True,
                 coco: bool = True):
        self.gt = load_ground_truth(gt)
        self.ji = ji
        self.coco = coco
        if self.gt.from_odgt:
            self._index = {k + 1: k for k in range(self.gt.num_images)}
        else:
            self._index = {key: k for k, key in enumerate(self.gt.image_keys)}
        self._images: list[np.ndarray] = []
        self._boxes: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []

    def process(self, image_ids: Sequence[Any], predictions: Sequence[dict]) -> None:
        """Add predictions: ``predictions[k]`` = {"boxes": (N, 4) xyxy, "scores": (N,)}
        for image ``image_ids[k]`` (arrays or tensors)."""
        for image_id, pred in zip(image_ids, predictions, strict=True):
            image_id = image_id.item() if hasattr(image_id, "item") else image_id
            if image_id not in self._index:
                raise DataError(None, f"unknown image id {image_id!r}", record="process()")
            boxes = np.asarray(pred["boxes"], dtype=np.float64).reshape(-1, 4).copy()
            boxes[:, 2:4] -= boxes[:, 0:2]
            scores = np.asarray(pred["scores"], dtype=np.float64).reshape(-1)
            self._images.append(np.full(len(scores), self._index[image_id], dtype=np.int64))
            self._boxes.append(boxes)
            self._scores.append(scores)

    def compute(self) -> dict[str, float]:
        """Metrics of everything processed so far (images never processed: no detections)."""
        if self._scores:
            arrays = (np.concatenate(self._images), np.concatenate(self._boxes),
                      np.concatenate(self._scores))
        else:
            arrays = (np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0))
        dets = detections_from_arrays(self.gt, *arrays)
        return evaluate_loaded(self.gt, dets, ji=self.ji, coco=self.coco)


# --------------------------------------------------------------------------- command line


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "crowdhuman", help="CrowdHuman MR/AP/Recall (official protocol) + JI, COCO AP",
        description="Evaluate detections on CrowdHuman (full body) exactly as the official "
                    "CrowdDet/cvpods evaluator: MR (mMR^-2), AP, Recall; plus the Jaccard "
                    "index (JI) and COCO AP/AP50. Metrics are printed and written as "
                    "fractions.")
    parser.add_argument("--gt", required=True, type=Path,
                        help="ground truth: our dataset json or the official .odgt")
    parser.add_argument("--dt", required=True, type=Path,
                        help="detections: COCO results json, or a CrowdHuman detection .odgt "
                             "(or a JSON list of its records)")
    parser.add_argument("--out", type=Path, help="write the metrics json here (atomically)")
    parser.add_argument("--no-ji", dest="ji", action="store_false",
                        help="skip the Jaccard index (about 10 s on CrowdHuman val)")
    parser.add_argument("--no-coco", dest="coco", action="store_false",
                        help="skip COCO AP/AP50 (pycocotools: about 1 min on CrowdHuman val)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from lla.diverged import pass_on_detections_divergence

    if pass_on_detections_divergence(args.dt, args.out):  # stopped on a non-finite loss
        return 0
    metrics = evaluate(args.gt, args.dt, ji=args.ji, coco=args.coco)
    text = json.dumps(metrics, indent=2)
    if args.out is not None:
        from lla.io import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    sys.stdout.write(text + "\n")
    return 0
