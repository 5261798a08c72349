"""CrowdHuman evaluation: MR (mMR^-2), AP and Recall identical to the official
CrowdDet/cvpods evaluator and the Jaccard index (JI) of mmdetection's CrowdHumanMetric,
plus COCO AP on request.

    lla eval crowdhuman --gt annotation_val.odgt --dt detections.odgt --out metrics.json

Python::

    from lla.eval.crowdhuman import evaluate
    metrics = evaluate("data/crowdhuman/val.json", "detections.json")

The protocol is implemented in :mod:`lla.eval.crowdhuman_protocol`, input reading in
:mod:`lla.eval.crowdhuman_io`, the Jaccard index in :mod:`lla.eval.ji`, COCO AP in
:mod:`lla.eval.coco`. All metrics are fractions (MR 0.42 = 42 %).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lla.errors import DataError
from lla.eval import crowdhuman_protocol as protocol
from lla.eval.crowdhuman_io import (Detections, GroundTruth, detections_from_arrays,
                                    load_detections, load_ground_truth)
from lla.eval.phases import phase

log = logging.getLogger(__name__)


def evaluate(gt: str | Path | dict | Sequence[dict], dt: str | Path | Sequence[dict], *,
             ji: bool = True, coco: bool = False) -> dict[str, float]:
    """Evaluate detections on CrowdHuman (full body).

    Args:
        gt: our dataset json or the official GT ``.odgt`` (path or loaded object: a dict,
            or a list of odgt records).
        dt: COCO results list or detection ``.odgt`` records (path or loaded list).
        ji: also compute the Jaccard index ("JI").
        coco: also compute COCO AP / AP50 ("coco_AP", "coco_AP50").

    Returns:
        ``{"MR", "AP", "Recall"}`` (+ "JI", "coco_AP", "coco_AP50") as floats.

    Raises:
        DataError: bad input, naming the file and record.
    """
    with phase("parsing"):
        ground_truth = load_ground_truth(gt)
        detections = load_detections(dt, ground_truth)
    return evaluate_loaded(ground_truth, detections, ji=ji, coco=coco)


def evaluate_loaded(gt: GroundTruth, dets: Detections, *, ji: bool = True,
                    coco: bool = False) -> dict[str, float]:
    """:func:`evaluate` on already loaded inputs."""
    protocol.require_valid_gt(gt)
    matching = protocol.match(gt, dets, ji_edges=ji)
    metrics = protocol.protocol_metrics(gt, dets, matching)
    if ji:
        with phase("JI"):
            metrics["JI"] = jaccard_index(gt, dets, matching)
    if coco:
        with phase("COCO"):
            metrics.update(coco_metrics(gt, dets))
    return metrics


def jaccard_index(gt: GroundTruth, dets: Detections,
                  matching: protocol.Matching | None = None) -> float:
    """The JI of :mod:`lla.eval.ji` over every GT image (boxes clipped, file order).

    ``matching``: the result of ``protocol.match(gt, dets, ji_edges=True)`` if already
    computed (the JI reuses its clipped boxes and edges)."""
    from lla.eval import ji as ji_module

    if matching is None:
        matching = protocol.match(gt, dets, ji_edges=True)
    prep, pairs = matching.prep, matching.pairs
    if pairs.ji_dt is None:
        raise ValueError("the matching has no JI edges: make it with ji_edges=True")
    # Back to file order: the matching's rows and columns are taken in file order.
    gt_xyxy, dt_xyxy = np.empty_like(prep.gt_xyxy), np.empty_like(prep.dt_xyxy)
    gt_xyxy[prep.gt_source] = prep.gt_xyxy
    dt_xyxy[prep.dt_source] = prep.dt_xyxy
    edge_dt = prep.dt_source[pairs.ji_dt]
    valid_rank = np.cumsum(gt.tags != -1) - 1    # index among the valid GTs, file order
    edge_gt = valid_rank[prep.gt_source[pairs.ji_gt]]
    order = np.argsort(edge_dt * len(gt.tags) + edge_gt)
    terms = ji_module.ji_terms(gt_xyxy, gt.image_index, gt.tags, dt_xyxy, dets.image_index,
                               dets.scores, prep.width, (edge_dt[order], edge_gt[order]))
    return ji_module.jaccard_index(terms)


def coco_metrics(gt: GroundTruth, dets: Detections) -> dict[str, float]:
    """COCO AP / AP50 (:mod:`lla.eval.coco`) of the unclipped boxes; images numbered 1..I,
    every box whose tag is not 1 an ignore (crowd) region."""
    from lla.eval.coco import coco_ground_truth, coco_metrics_of_arrays, results_array

    coco_gt = coco_ground_truth(list(range(1, gt.num_images + 1)), gt.image_index, gt.boxes,
                                gt.tags != 1)
    return coco_metrics_of_arrays(coco_gt, results_array(dets.image_index + 1, dets.boxes,
                                                         dets.scores))


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
                 coco: bool = False):
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
        "crowdhuman", help="CrowdHuman MR/AP/Recall (official protocol) and JI",
        description="Evaluate detections on CrowdHuman (full body) exactly as the official "
                    "CrowdDet/cvpods evaluator: MR (mMR^-2), AP, Recall; and the Jaccard "
                    "index (JI) of mmdetection's CrowdHumanMetric. COCO AP/AP50 on request. "
                    "Metrics are printed and written as fractions. Bad input stops with "
                    "'error: FILE[:LINE]: reason' and exit code 2.")
    parser.add_argument("--gt", required=True, type=Path,
                        help="ground truth: our dataset json or the official .odgt")
    parser.add_argument("--dt", required=True, type=Path,
                        help="detections: COCO results json, or a CrowdHuman detection .odgt "
                             "(or a JSON list of its records)")
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="write the metrics json here (atomically)")
    parser.add_argument("--ji", action=argparse.BooleanOptionalAction, default=True,
                        help="the Jaccard index (default: on; it adds about 0.5 s on "
                             "CrowdHuman val)")
    parser.add_argument("--coco", action=argparse.BooleanOptionalAction, default=False,
                        help="COCO AP/AP50 through faster-coco-eval (default: off; it adds "
                             "about 8 s and 1 GB of memory on CrowdHuman val)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from lla.eval.command import check_paths, reuse_freed_memory
    from lla.diverged import pass_on_detections_divergence

    check_paths([args.gt, args.dt], args.out)
    reuse_freed_memory()
    if pass_on_detections_divergence(args.dt, args.out):  # stopped on a non-finite loss
        return 0
    metrics = evaluate(args.gt, args.dt, ji=args.ji, coco=args.coco)
    text = json.dumps(metrics, indent=2)
    if args.out is not None:
        from lla.io import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    sys.stdout.write(text + "\n")
    return 0
