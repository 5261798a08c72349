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

Torch is imported inside the command, so `lla analyze --help` stays light.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Sequence

from lla.config import converted_json, load_params, section, selected_profile
from lla.diverged import pass_on_checkpoint_divergence
from lla.eval.model_pass import (add_checkpoint_pass_arguments, assignment_batches,
                                 check_checkpoint_pass_arguments, load_run_model)
from lla.errors import DataError
from lla.io import atomic_write_json

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


def measure(state: dict[str, Any], checkpoint: Path, json_path: Path, input_cfg: dict[str, Any],
            *, max_images: int | None, batch_size: int) -> dict[str, Any]:
    """Assign every image of ``json_path`` (the first ``max_images``) with the model of a
    loaded checkpoint ``state`` (read from ``checkpoint``) and count ambiguous / positive
    anchors."""
    from lla.data.dataset import CrowdDataset

    model, exp = load_run_model(state)
    dataset = CrowdDataset.from_config(json_path, input_cfg, train=False)
    count = len(dataset) if max_images is None else min(max_images, len(dataset))
    if count == 0:
        raise DataError(json_path, "no images to analyse")
    ambiguous = positives = 0
    for _, diagnostics, _ in assignment_batches(
            model, dataset, range(count), batch_size=batch_size,
            size_divisibility=int(exp.model["input"]["size_divisibility"])):
        try:
            counts = ambiguous_counts(diagnostics.assignments,
                                      [t.ignore for t in diagnostics.targets])
        except ValueError as e:
            raise DataError(checkpoint, f"{exp.variant}: {e}") from None
        ambiguous += counts[0]
        positives += counts[1]
    return {"AAR": aar(ambiguous, positives), "ambiguous": ambiguous, "positives": positives,
            "images": count, "experiment": exp.name}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "aar", help="ambiguous assignment ratio of a checkpoint's assigner (Table 5)",
        description="AAR = positive anchors claimed by more than one GT before the tie-break "
                    "/ positive anchors, over a split, with the checkpoint's assigner.")
    add_checkpoint_pass_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_checkpoint_pass_arguments(args)
    params = load_params(args.params)
    profile = selected_profile(params, args.profile)
    from lla.engine import checkpoint as ckpt  # imports torch: only when the command runs

    state = ckpt.load_checkpoint(args.checkpoint)
    if pass_on_checkpoint_divergence(state, args.checkpoint, args.out, profile=profile,
                                     split=args.split):  # the tables' "—"
        return 0
    json_path = args.data or converted_json(params, profile, state["config"]["dataset"], args.split)
    result = measure(state, args.checkpoint, json_path, section(params, "input", profile),
                     max_images=args.max_images, batch_size=args.batch_size)
    result.update(profile=profile, split=args.split, checkpoint=str(args.checkpoint))
    atomic_write_json(args.out, result)
    logger.info("AAR %s (%d ambiguous / %d positives, %d images) -> %s",
                "n/a" if result["AAR"] is None else f"{100 * result['AAR']:.2f}%",
                result["ambiguous"], result["positives"], result["images"], args.out)
    return 0
