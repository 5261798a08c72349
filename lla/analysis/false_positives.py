"""What a detector's false positives are, where MR counts them.

MR averages the miss rate at nine FPPI points from 10^-2 to 10^0, so the false positives
that set it are those ranked above the score at which the detector reaches FPPI = 1 (one
false positive per image). :func:`false_positive_kinds` labels the detections exactly as
the CrowdHuman protocol does (:mod:`lla.eval.crowdhuman_protocol`: greedy matching at
IoU > 0.5, detections inside ignore regions dropped), walks the pooled ranking down to
``fppi`` false positives per image and sorts those false positives into

* ``duplicate``: IoU > 0.5 with a valid person that a higher-scoring detection took
  (what NMS failed to suppress);
* ``mislocalised``: best IoU with a valid person in (``loc_iou``, 0.5];
* ``background``: best IoU with every valid person <= ``loc_iou`` (0.1).

IoU is the protocol's (clipped boxes, +1e-6 in the union).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lla.eval import crowdhuman_protocol as protocol
from lla.eval.box_pairs import box_columns, official_iou
from lla.eval.crowdhuman_io import load_detections, load_ground_truth

KINDS = ("duplicate", "mislocalised", "background")
LOCALISATION_IOU = 0.1


@dataclass
class FalsePositiveKinds:
    """False positives ranked above FPPI = ``fppi``, by kind (counts), and what else lies there.

    Attributes:
        images: images in the ground truth.
        fppi: the operating point (false positives per image).
        false_positives: false positives counted (<= fppi x images).
        duplicate, mislocalised, background: their kinds (sum = false_positives).
        true_positives: matched detections ranked above the same point.
        recall: true_positives / valid persons.
        score: the score of the last false positive counted (0 when the list ends first).
    """

    images: int
    fppi: float
    false_positives: int
    duplicate: int
    mislocalised: int
    background: int
    true_positives: int
    recall: float
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def best_valid_iou(prep: protocol.PreparedImages, detections: np.ndarray) -> np.ndarray:
    """(len(detections),) the protocol IoU of each prepared detection with the valid GT of
    its image that it overlaps most (0 when the image has none)."""
    best = np.zeros(len(detections))
    gt_cols = box_columns(prep.gt_xyxy)
    for row, d in enumerate(detections):
        gts = np.flatnonzero((prep.gt_image == prep.dt_image[d]) & prep.gt_valid)
        if len(gts):
            dt_cols = box_columns(np.repeat(prep.dt_xyxy[d:d + 1], len(gts), axis=0))
            best[row] = official_iou(dt_cols, tuple(c[gts] for c in gt_cols)).max()
    return best


def false_positive_kinds(gt: str | Path | dict | Sequence[dict], dt: str | Path | Sequence[dict], *,
                         fppi: float = 1.0, loc_iou: float = LOCALISATION_IOU) -> FalsePositiveKinds:
    """:class:`FalsePositiveKinds` of detections ``dt`` against ``gt`` (see the module docstring)."""
    if fppi <= 0:
        raise ValueError(f"fppi must be > 0, got {fppi}")
    ground_truth = load_ground_truth(gt)
    dets = load_detections(dt, ground_truth)
    prep = protocol.prepare(ground_truth, dets)
    labels = protocol.label_detections(prep)
    scores = np.empty(len(prep.dt_image))              # per prepared detection
    scores[prep.pooled_order] = dets.scores[protocol.stable_argsort_descending(dets.scores)]
    ranked = prep.pooled_order[labels[prep.pooled_order] != protocol.LABEL_DROPPED]  # prepared indices
    is_fp = labels[ranked] == protocol.LABEL_FP
    budget = int(np.floor(fppi * ground_truth.num_images + 1e-9))
    fp_rank = np.cumsum(is_fp)
    # everything ranked before the (budget + 1)-th false positive
    above = np.ones(len(ranked), dtype=bool) if fp_rank.size == 0 or fp_rank[-1] <= budget \
        else np.arange(len(ranked)) < int(np.searchsorted(fp_rank, budget + 1, side="left"))
    fps = ranked[above & is_fp]
    iou = best_valid_iou(prep, fps)
    duplicate = int((iou > protocol.IOU_THRESHOLD).sum())
    mislocalised = int(((iou > loc_iou) & (iou <= protocol.IOU_THRESHOLD)).sum())
    true_positives = int((above & ~is_fp).sum())
    return FalsePositiveKinds(
        images=ground_truth.num_images, fppi=fppi, false_positives=len(fps), duplicate=duplicate,
        mislocalised=mislocalised, background=len(fps) - duplicate - mislocalised,
        true_positives=true_positives,
        recall=true_positives / max(protocol.num_valid_gt(ground_truth), 1),
        score=float(scores[fps[-1]]) if len(fps) else 0.0)
