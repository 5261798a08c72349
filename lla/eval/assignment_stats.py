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

from lla.config import DEFAULT_PARAMS, converted_json, load_params, section, selected_profile
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
    import torch
    from torch.utils.data import DataLoader, Subset

    from lla.data.dataset import CrowdDataset, PadCollate
    from lla.engine.infer import load_model
    from lla.engine.train import model_inputs

    device = torch.device("cpu")
    model, exp = load_model(state, device)
    dataset = CrowdDataset.from_config(json_path, input_cfg, train=False)
    count = len(dataset) if max_images is None else min(max_images, len(dataset))
    if count == 0:
        raise DataError(json_path, "no images to analyse")
    loader = DataLoader(Subset(dataset, range(count)), batch_size=batch_size, shuffle=False,
                        collate_fn=PadCollate(int(exp.model["input"]["size_divisibility"])))
    ambiguous = positives = 0
    with torch.no_grad():
        for batch in loader:
            images, targets = model_inputs(batch, device)
            _, diagnostics = model.compute_losses(images, targets, return_assignments=True)
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
    parser.add_argument("--checkpoint", type=Path, required=True, help="model_final.pt")
    parser.add_argument("--profile", help="profile locating the data and the input sizes "
                                          "(default: the top-level 'profile' of the params)")
    parser.add_argument("--split", default="train", help="split to assign (default: train)")
    parser.add_argument("--max-images", type=int, metavar="N",
                        help="only the first N images of the split (default: all)")
    parser.add_argument("--batch-size", type=int, default=2, help="images per forward pass")
    parser.add_argument("--out", type=Path, required=True, help="json to write")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS,
                        help="parameter file (default: params.yaml)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.max_images is not None and args.max_images < 1:
        raise DataError(args.params, f"--max-images must be >= 1, got {args.max_images}")
    if args.batch_size < 1:
        raise DataError(args.params, f"--batch-size must be >= 1, got {args.batch_size}")
    params = load_params(args.params)
    profile = selected_profile(params, args.profile)
    from lla.engine import checkpoint as ckpt  # imports torch: only when the command runs

    state = ckpt.load_checkpoint(args.checkpoint)
    json_path = converted_json(params, profile, state["config"]["dataset"], args.split)
    result = measure(state, args.checkpoint, json_path, section(params, "input", profile),
                     max_images=args.max_images, batch_size=args.batch_size)
    result.update(profile=profile, split=args.split, checkpoint=str(args.checkpoint))
    atomic_write_json(args.out, result)
    logger.info("AAR %s (%d ambiguous / %d positives, %d images) -> %s",
                "n/a" if result["AAR"] is None else f"{100 * result['AAR']:.2f}%",
                result["ambiguous"], result["positives"], result["images"], args.out)
    return 0
