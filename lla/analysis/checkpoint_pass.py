"""The skeleton every analysis of a trained model shares (`lla analyze ...`).

An analysis runs a checkpoint over dataset images as in training: the checkpoint's own
assigner assigns the anchors on the model's own predictions (LLA's cost depends on them),
on images without augmentation, on the CPU::

    load the checkpoint -> divergence check -> model -> dataset -> the chosen images, a
    batch at a time -> each image's assignment -> the analysis's accumulation -> its result

Here is everything but the analysis's own part, which is an :class:`ImageAnalysis`: what it
counts per :class:`AssignedImage` (``add``) and the result it makes of the counts.

* :func:`analyse_checkpoint` runs a loaded checkpoint over chosen images of a dataset;
* :func:`run_on_split` is a whole command that analyses one checkpoint over the first
  images of a split and writes one json (``aar``, ``visible``); ``levels`` and
  ``positives`` choose their images and write their files themselves.

Torch is imported inside the functions, so the command modules stay light to import.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from lla import layout, options
from lla.config import load_params, section, selected_profile
from lla.console import progress
from lla.diverged import checkpoint_divergence, pass_on_checkpoint_divergence
from lla.errors import DataError
from lla.io import atomic_write_json

logger = logging.getLogger(__name__)


class AssignedImage(NamedTuple):
    """One image as the model assigned it.

    index: its dataset index.
    target: the dataset's target dict (resized-image pixels): ``boxes`` (N, 4),
        ``ignore_boxes``, ``vis_boxes`` (N, 4), ``annotation_ids`` (N,), ``scale``, ...
    assignment: the :class:`lla.assign.base.Assignment` of its anchors (``matched_gt`` (J,)
        indexes the GTs of ``gt``; ``num_candidates`` (J,) or None).
    gt: the GTs the assigner saw (``TrainingDiagnostics.targets``): the N persons of
        ``target`` first, then the ignore boxes; ``gt.ignore`` bool (I,).
    anchors: the :class:`lla.models.anchors.Anchors` of its batch (``centers`` (J, 2),
        ``boxes`` (J, 4), ``levels`` (J,), ``level_strides``), resized-image pixels.
    """

    index: int
    target: dict[str, Any]
    assignment: Any
    gt: Any
    anchors: Any


class ImageAnalysis(Protocol):
    """What an analysis adds to the skeleton: its accumulation, image by image."""

    def add(self, image: AssignedImage) -> None:
        """Count one assigned image."""


class SplitAnalysis(ImageAnalysis, Protocol):
    """An analysis written as one json (:func:`run_on_split`)."""

    def result(self) -> dict[str, Any]:
        """The json's own keys (the skeleton adds the images, the run and the checkpoint)."""


# ------------------------------------------------------------------ the loop

def load_run_model(state: dict[str, Any]) -> tuple[Any, Any]:
    """``(model, experiment)`` of a loaded checkpoint, on the CPU in eval mode."""
    import torch

    from lla.engine.model import load_model

    return load_model(state, torch.device("cpu"))


def assigned_images(model: Any, dataset: Any, indices: Sequence[int], *, batch_size: int,
                    size_divisibility: int) -> Iterator[AssignedImage]:
    """Assign the anchors of ``dataset[indices]`` with ``model`` (a DenseDetector in eval
    mode), ``batch_size`` images per forward pass; one item per image, in ``indices`` order."""
    import torch
    from torch.utils.data import DataLoader, Subset

    from lla.data.dataset import PadCollate
    from lla.engine.model import model_inputs

    indices = list(indices)
    loader = DataLoader(Subset(dataset, indices), batch_size=batch_size, shuffle=False,
                        collate_fn=PadCollate(size_divisibility))
    position = 0
    with torch.no_grad(), progress(total=len(indices), desc="analyze", unit="img") as bar:
        for batch in loader:
            images, targets = model_inputs(batch, torch.device("cpu"))
            _, diagnostics = model.compute_losses(images, targets, return_assignments=True)
            for k, target in enumerate(batch.targets):
                yield AssignedImage(index=indices[position + k], target=target,
                                    assignment=diagnostics.assignments[k],
                                    gt=diagnostics.targets[k], anchors=diagnostics.anchors)
            position += len(batch.targets)
            bar.update(len(batch.targets))


def analyse_checkpoint(state: dict[str, Any], dataset: Any, indices: Sequence[int],
                       analysis: ImageAnalysis, *, batch_size: int) -> Any:
    """Add every image of ``dataset[indices]``, as the model of the loaded checkpoint
    ``state`` assigns it, to ``analysis``; returns the checkpoint's experiment."""
    model, exp = load_run_model(state)
    for image in assigned_images(model, dataset, indices, batch_size=batch_size,
                                 size_divisibility=int(exp.model["input"]["size_divisibility"])):
        analysis.add(image)
    return exp


# ------------------------------------------------------------------ checkpoints and data

def load_analysed_checkpoint(path: Path, *, nothing: str) -> dict[str, Any]:
    """The loaded checkpoint; a run that diverged is refused with a :class:`DataError`
    saying ``nothing`` (what there is not to analyse, and what to do)."""
    from lla.engine import checkpoint as ckpt  # imports torch: only when the command runs

    state = ckpt.load_checkpoint(path)
    if checkpoint_divergence(state) is not None:
        raise DataError(path, f"the run diverged (non-finite loss): {nothing}")
    return state


def split_json(params: dict[str, Any], profile: str, state: dict[str, Any], split: str,
               data: Path | None) -> Path:
    """``data``, else the profile's converted json of the checkpoint's dataset and ``split``."""
    return data or layout.converted_json(params, profile, state["config"]["dataset"], split)


def analysis_dataset(json_path: Path, params: dict[str, Any], profile: str) -> Any:
    """The :class:`~lla.data.dataset.CrowdDataset` of ``json_path`` with the profile's input
    sizes, without augmentation."""
    from lla.data.dataset import CrowdDataset

    return CrowdDataset.from_config(json_path, section(params, "input", profile), train=False)


def first_images(dataset: Any, max_images: int | None, json_path: Path) -> range:
    """The indices of the first ``max_images`` images (all when None); none is an error."""
    count = len(dataset) if max_images is None else min(max_images, len(dataset))
    if count == 0:
        raise DataError(json_path, "no images to analyse")
    return range(count)


# ------------------------------------------------------------------ one checkpoint, one json

def run_on_split(args: argparse.Namespace,
                 make_analysis: Callable[[dict[str, Any], Path], SplitAnalysis], *,
                 indent: int | None = None) -> dict[str, Any] | None:
    """The command of an analysis of one checkpoint over a split's first images.

    ``args`` holds :data:`CHECKPOINT_PASS_OPTIONS`. A checkpoint of a run
    that diverged gets the diverged result (:mod:`lla.diverged`: the tables' "—"). Else
    ``make_analysis(state, json_path)`` is fed the first ``--max-images`` images and
    ``--out`` gets its result, then ``images``, ``experiment``, ``profile``, ``split`` and
    ``checkpoint``. Returns that json, or None for a diverged run.
    """
    check_checkpoint_pass_arguments(args)
    params = load_params(args.params)
    profile = selected_profile(params, args.profile)
    from lla.engine import checkpoint as ckpt  # imports torch: only when the command runs

    state = ckpt.load_checkpoint(args.checkpoint)
    if pass_on_checkpoint_divergence(state, args.checkpoint, args.out, profile=profile,
                                     split=args.split):
        return None
    json_path = split_json(params, profile, state, args.split, args.data)
    dataset = analysis_dataset(json_path, params, profile)
    indices = first_images(dataset, args.max_images, json_path)
    analysis = make_analysis(state, json_path)
    exp = analyse_checkpoint(state, dataset, indices, analysis, batch_size=args.batch_size)
    result = {**analysis.result(), "images": len(indices), "experiment": exp.name,
              "profile": profile, "split": args.split, "checkpoint": str(args.checkpoint)}
    atomic_write_json(args.out, result, indent=indent)
    return result


# ------------------------------------------------------------------ the commands' options

def _analysis_options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False,
                                     parents=[options.SETTINGS, options.split_and_data("train")])
    parser.add_argument("--batch-size", type=int, default=2, metavar="N",
                        help="images per forward pass (default: 2)")
    return parser


ANALYSIS_OPTIONS = _analysis_options()
"""The options of every analysis: ``--params --profile --split (train) --data --batch-size``
(the profile locates the data and the input sizes)."""


def _checkpoint_pass_options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False,
                                     parents=[options.CHECKPOINT, ANALYSIS_OPTIONS])
    parser.add_argument("--max-images", type=int, metavar="N",
                        help="only the first N images of the split (default: all)")
    options.add_out(parser, "json to write")
    return parser


CHECKPOINT_PASS_OPTIONS = _checkpoint_pass_options()
"""The options of an analysis of one checkpoint over a split's first images
(:func:`run_on_split`): :data:`ANALYSIS_OPTIONS`, ``--checkpoint --max-images --out``."""


def require_at_least_one(source: Any, options: dict[str, int | None]) -> None:
    """A :class:`~lla.errors.DataError` (naming ``source``) for any count option below 1;
    ``None`` (not given) passes."""
    for option, value in options.items():
        if value is not None and value < 1:
            raise DataError(source, f"{option} must be >= 1, got {value}")


def check_checkpoint_pass_arguments(args: Any) -> None:
    """A :class:`~lla.errors.DataError` for a ``--max-images`` or ``--batch-size`` below 1."""
    require_at_least_one(args.params, {"--max-images": args.max_images,
                                       "--batch-size": args.batch_size})
