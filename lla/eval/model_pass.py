"""The loop every analysis of a trained model shares: its own label assignment, on its own
predictions, over dataset images (no augmentation), as in training.

Used by ``lla analyze aar`` (:mod:`lla.eval.assignment_stats`), ``visible``
(:mod:`lla.eval.visible`), ``levels`` and ``positives`` (:mod:`lla.eval.positives`).
Torch is imported inside the functions, so the command modules stay light to import.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any


def load_run_model(state: dict[str, Any]) -> tuple[Any, Any]:
    """``(model, experiment)`` of a loaded checkpoint, on the CPU in eval mode."""
    import torch

    from lla.engine.model import load_model

    return load_model(state, torch.device("cpu"))


def assignment_batches(model: Any, dataset: Any, indices: Sequence[int], *, batch_size: int,
                       size_divisibility: int) -> Iterator[tuple[Any, Any, list[int]]]:
    """Assign the anchors of ``dataset[indices]`` with ``model`` (a DenseDetector in eval mode).

    Yields per batch ``(batch, diagnostics, batch_indices)``: the :class:`lla.data.dataset.Batch`
    (its ``targets`` carry the dataset's per-image fields, e.g. ``scale``, ``vis_boxes``,
    ``annotation_ids``), the :class:`lla.models.detector.TrainingDiagnostics` (anchors, one
    ``Assignment`` and one ``ImageTargets`` per image) and the dataset indices of its images.
    """
    import torch
    from torch.utils.data import DataLoader, Subset

    from lla.data.dataset import PadCollate
    from lla.engine.model import model_inputs

    indices = list(indices)
    loader = DataLoader(Subset(dataset, indices), batch_size=batch_size, shuffle=False,
                        collate_fn=PadCollate(size_divisibility))
    position = 0
    with torch.no_grad():
        for batch in loader:
            images, targets = model_inputs(batch, torch.device("cpu"))
            _, diagnostics = model.compute_losses(images, targets, return_assignments=True)
            count = len(batch.targets)
            yield batch, diagnostics, indices[position:position + count]
            position += count


# ------------------------------------------------------------------ the commands' options

def add_checkpoint_pass_arguments(parser: Any) -> None:
    """The options of an analysis that runs one checkpoint over a split's first images:
    ``--checkpoint --profile --split --data --max-images --batch-size --out --params``."""
    from pathlib import Path

    from lla.config import DEFAULT_PARAMS

    parser.add_argument("--checkpoint", type=Path, required=True, help="model_final.pt")
    parser.add_argument("--profile", help="profile locating the data and the input sizes "
                                          "(default: the top-level 'profile' of the params)")
    parser.add_argument("--split", default="train", help="split to assign (default: train)")
    parser.add_argument("--data", type=Path,
                        help="the converted json to use (default: the profile's json of the "
                             "checkpoint's dataset and --split)")
    parser.add_argument("--max-images", type=int, metavar="N",
                        help="only the first N images of the split (default: all)")
    parser.add_argument("--batch-size", type=int, default=2, help="images per forward pass")
    parser.add_argument("--out", type=Path, required=True, help="json to write")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS,
                        help="parameter file (default: params.yaml)")


def require_at_least_one(source: Any, options: dict[str, int | None]) -> None:
    """A :class:`~lla.errors.DataError` (naming ``source``) for any count option below 1;
    ``None`` (not given) passes."""
    from lla.errors import DataError

    for option, value in options.items():
        if value is not None and value < 1:
            raise DataError(source, f"{option} must be >= 1, got {value}")


def check_checkpoint_pass_arguments(args: Any) -> None:
    """A :class:`~lla.errors.DataError` for a ``--max-images`` or ``--batch-size`` below 1."""
    require_at_least_one(args.params, {"--max-images": args.max_images,
                                       "--batch-size": args.batch_size})
