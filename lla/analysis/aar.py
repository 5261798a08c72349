"""`lla analyze aar`: the ambiguous assignment ratio of a trained model (Table 5).

    lla analyze aar --checkpoint runs/mini/retinanet_r50/model_final.pt --profile mini \\
        --split train [--max-images N] --out results/mini/analysis/aar_retinanet_r50.json

AAR = #ambiguous positive anchors / #positive anchors (paper eq. 6), where a positive
anchor (matched to a non-ignore GT) is ambiguous when more than one GT claimed it before
the assigner's tie-break (``Assignment.num_candidates > 1``). The anchors are assigned
by the checkpoint's own assigner on its own predictions (LLA's cost depends on them),
over the training split without augmentation, counts summed over all images.

Output json: ``{"AAR": fraction, "ambiguous": int, "positives": int, "images": int,
"experiment", "profile", "split", "checkpoint"}``. ``AAR`` is null when no anchor is
positive.

The loop over the images is :mod:`lla.analysis.checkpoint_pass`'s; this module counts.
Torch is imported inside the command, so `lla analyze --help` stays light.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Sequence

from lla.analysis.checkpoint_pass import CHECKPOINT_PASS_OPTIONS, AssignedImage, run_on_split
from lla.errors import DataError

logger = logging.getLogger(__name__)


def ambiguous_counts(assignments: Sequence[Any], gt_ignore: Sequence[Any]) -> tuple[int, int]:
    """``(ambiguous, positives)`` summed over images.

    Args:
        assignments: one :class:`lla.assign.base.Assignment` per image, with
            ``num_candidates`` (J,) int64.
        gt_ignore: per image, bool (I,): which GTs are ignore boxes (their anchors are
            not positives).
    Raises:
        ValueError: an assignment without ``num_candidates`` (e.g. FreeAnchor, which
            assigns nothing before its loss).
    """
    ambiguous = positives = 0
    for assignment, ignore in zip(assignments, gt_ignore, strict=True):
        if assignment.num_candidates is None:
            raise ValueError("the assigner reports no num_candidates: AAR is undefined for it")
        positive = assignment.positive_mask(ignore)
        positives += int(positive.sum())
        ambiguous += int((positive & (assignment.num_candidates > 1)).sum())
    return ambiguous, positives


def aar(ambiguous: int, positives: int) -> float | None:
    return ambiguous / positives if positives else None


class AmbiguityCount:
    """AAR's accumulation: ambiguous and positive anchors, summed over the images.

    Args:
        checkpoint, variant: named by the error for an assigner without candidates.
    """

    def __init__(self, checkpoint: Path, variant: str):
        self.checkpoint, self.variant = checkpoint, variant
        self.ambiguous = self.positives = 0

    def add(self, image: AssignedImage) -> None:
        try:
            ambiguous, positives = ambiguous_counts([image.assignment], [image.gt.ignore])
        except ValueError as e:
            raise DataError(self.checkpoint, f"{self.variant}: {e}") from None
        self.ambiguous += ambiguous
        self.positives += positives

    def result(self) -> dict[str, Any]:
        return {"AAR": aar(self.ambiguous, self.positives), "ambiguous": self.ambiguous,
                "positives": self.positives}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "aar", parents=[CHECKPOINT_PASS_OPTIONS],
        help="ambiguous assignment ratio of a checkpoint's assigner (Table 5)",
        description="AAR = positive anchors claimed by more than one GT before the tie-break "
                    "/ positive anchors, over a split, with the checkpoint's assigner.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = run_on_split(args, lambda state, json_path: AmbiguityCount(
        args.checkpoint, state["config"]["variant"]))
    if result is not None:
        logger.info("AAR %s (%d ambiguous / %d positives, %d images) -> %s",
                    "n/a" if result["AAR"] is None else f"{100 * result['AAR']:.2f}%",
                    result["ambiguous"], result["positives"], result["images"], args.out)
    return 0
