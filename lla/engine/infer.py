"""`lla infer`: run a checkpoint over a dataset split and write its detections.

    lla infer --checkpoint runs/mini/lla_fcos_r50/model_final.pt --split val --out dets.json \\
        [--odgt-out dets.odgt] [--profile P] [--data JSON]
    torchrun --nproc_per_node=8 -m lla.cli infer --checkpoint ... --split val --out dets.json

:func:`infer` does the work; the command and ``lla train --infer-out`` (which runs it on
the final model in the training processes) both call it. The detector is rebuilt from the
experiment stored in the checkpoint (``model_final.pt`` or any training checkpoint), so
params.yaml only locates the data. Images are batched
by aspect-ratio group without repeats; under torchrun rank ``r`` runs batches
``r, r + W, ...`` and rank 0 gathers every image's detections and writes them in the
dataset json's image order.

Outputs (boxes in original-image pixels, ``[x, y, w, h]``; per image sorted by score):

* ``--out``: a COCO results list ``[{"image_id", "category_id", "bbox", "score"}]``
  (``image_id`` = the dataset json's ``images[].id``; ``category_id`` = class index + 1);
* ``--odgt-out``: the CrowdHuman detection odgt, one JSON object per line and image:
  ``{"ID": record_id, "width", "height", "dtboxes": [{"box", "score", "tag"}]}``.

A checkpoint of a run that diverged (:mod:`lla.diverged`) has no detections: ``--out``
then holds its record, ``{"diverged": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from lla import layout
from lla.config import DEFAULT_PARAMS, load_params, section
from lla.console import progress
from lla.data.dataset import CrowdDataset, PadCollate
from lla.data.sampler import aspect_ratio_groups
from lla.diverged import checkpoint_divergence, write_diverged_detections
from lla.engine import checkpoint as ckpt
from lla.engine.distributed import (DistInfo, all_gather_objects, cleanup_distributed,
                                    pick_device, setup_distributed)
from lla.engine.experiment import Experiment
from lla.engine.model import FULL_PRECISION, Amp, load_model, model_inputs
from lla.errors import DataError
from lla.io import atomic_write_json, atomic_write_text, read_json

logger = logging.getLogger(__name__)

# Decimals kept in the output files: 1/100 px for boxes, 1e-6 for scores.
BOX_DECIMALS = 2
SCORE_DECIMALS = 6


def inference_batches(group_ids: Sequence[int], batch_size: int, *, rank: int = 0,
                      world_size: int = 1) -> list[list[int]]:
    """This rank's batches of dataset indices: each batch one aspect-ratio group, every
    index exactly once over all ranks, groups and indices in dataset order."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    by_group: dict[int, list[int]] = {}
    for index, group in enumerate(group_ids):
        by_group.setdefault(int(group), []).append(index)
    batches = [members[k:k + batch_size] for _, members in sorted(by_group.items())
               for k in range(0, len(members), batch_size)]
    return batches[rank::world_size]


def image_detections(index: int, target: dict[str, Any],
                     output: dict[str, torch.Tensor]) -> dict[str, Any]:
    """One image's detections as numpy arrays: ``boxes`` (D, 4) xywh float32, ``scores`` (D,),
    ``labels`` (D,) int64, with its dataset ``index`` and json ``image_id``."""
    boxes = output["boxes"].float().cpu().numpy().reshape(-1, 4)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    return {"index": index, "image_id": int(target["image_id"]), "boxes": xywh,
            "scores": output["scores"].float().cpu().numpy(),
            "labels": output["labels"].cpu().numpy().astype(np.int64)}


@torch.no_grad()
def predict_dataset(model: torch.nn.Module, dataset: CrowdDataset, batches: list[list[int]], *,
                    device: torch.device, num_workers: int, size_divisible: int,
                    amp: Amp = FULL_PRECISION, show_progress: bool = True
                    ) -> list[dict[str, Any]]:
    """Detections of the images in ``batches`` (see :func:`image_detections`), batch order;
    ``amp``: the precision of the forward passes; ``show_progress``: a bar on a terminal."""
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=PadCollate(size_divisible),
                        num_workers=num_workers, pin_memory=device.type == "cuda")
    model.eval()
    results = []
    with progress(total=sum(len(b) for b in batches), desc="infer", unit="img",
                  enabled=show_progress) as bar:
        for indices, batch in zip(batches, loader):
            images, _ = model_inputs(batch, device)
            with amp.autocast(device):
                outputs = model(images,
                                original_sizes=[t["orig_size"].tolist() for t in batch.targets],
                                scales=[t["scale"].tolist() for t in batch.targets])
            results.extend(image_detections(i, t, o)
                           for i, t, o in zip(indices, batch.targets, outputs))
            bar.update(len(indices))
    return results


def predict_grouped(model: torch.nn.Module, exp: Experiment, dataset: CrowdDataset,
                    input_cfg: dict[str, Any], images_per_device: int | None,
                    info: DistInfo) -> list[dict[str, Any]]:
    """This rank's share of the detections of ``dataset`` (:func:`predict_dataset`), in
    aspect-ratio-grouped batches of ``images_per_device`` images (None: the experiment's
    ``train.infer_images_per_device``), with the experiment's workers and precision."""
    batch_size = images_per_device or int(exp.train["infer_images_per_device"])
    groups = aspect_ratio_groups(dataset.aspect_ratios(), input_cfg["aspect_ratio_bins"])
    batches = inference_batches(groups, batch_size, rank=info.rank, world_size=info.world_size)
    return predict_dataset(model, dataset, batches, device=info.device,
                           num_workers=int(exp.train["num_workers"]),
                           size_divisible=int(exp.model["input"]["size_divisibility"]),
                           amp=Amp.from_train_settings(exp.train, info.device),
                           show_progress=info.is_main)


def detect_images(checkpoint: Path, images: Sequence[Path], *, device: str = "auto",
                  images_per_device: int | None = None, source: Path | None = None
                  ) -> tuple[str, list[dict[str, Any]]]:
    """The detections of ``checkpoint`` on image files, one process (``lla detect``).

    The images are resized with the checkpoint's own input settings. Returns the
    checkpoint's experiment name and one dict per image, in ``images`` order
    (:func:`image_detections`: boxes (D, 4) xywh in the image's pixels, scores (D,),
    labels (D,), by decreasing score). A checkpoint that is not one,
    or whose run diverged, and a file that is not an image are :class:`DataError`s;
    ``source`` names the images' folder in messages.
    """
    state = ckpt.load_checkpoint(checkpoint)
    record = checkpoint_divergence(state)
    if record is not None:
        raise DataError(checkpoint, f"the run diverged at iteration {record.get('iteration')} "
                                    "(non-finite loss): no model to detect with")
    info = DistInfo(rank=0, local_rank=0, world_size=1, device=pick_device(device))
    model, exp = load_model(state, info.device)
    dataset = CrowdDataset.from_images(images, exp.input, source=source or Path("."))
    detections = predict_grouped(model, exp, dataset, exp.input, images_per_device, info)
    return exp.name, sorted(detections, key=lambda d: d["index"])


def coco_results(detections: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """COCO results list (``category_id`` = class index + 1), in the order of ``detections``."""
    out = []
    for det in detections:
        for box, score, label in zip(det["boxes"].tolist(), det["scores"].tolist(),
                                     det["labels"].tolist()):
            out.append({"image_id": det["image_id"], "category_id": label + 1,
                        "bbox": [round(v, BOX_DECIMALS) for v in box],
                        "score": round(score, SCORE_DECIMALS)})
    return out


def odgt_lines(detections: list[dict[str, Any]], images: dict[int, dict[str, Any]],
               category_names: dict[int, str]) -> list[str]:
    """CrowdHuman detection odgt lines, one per image of ``detections``.

    Args:
        images: the dataset json's image entries by id (``record_id``, ``width``, ``height``).
        category_names: category id -> name (the ``tag`` of each box).
    """
    lines = []
    for det in detections:
        image = images[det["image_id"]]
        dtboxes = [{"box": [round(v, BOX_DECIMALS) for v in box],
                    "score": round(score, SCORE_DECIMALS), "tag": category_names[label + 1]}
                   for box, score, label in zip(det["boxes"].tolist(), det["scores"].tolist(),
                                                det["labels"].tolist())]
        lines.append(json.dumps({"ID": image.get("record_id", str(image["id"])),
                                 "width": image["width"], "height": image["height"],
                                 "dtboxes": dtboxes}, separators=(",", ":")))
    return lines


def images_and_categories(json_path: Path, num_classes: int
                          ) -> tuple[dict[int, dict[str, Any]], dict[int, str]]:
    """The dataset json's image entries by id and its category names by id (the odgt's
    inputs), checked to name every class of a detector of ``num_classes`` classes."""
    data = read_json(json_path)
    images = {image["id"]: image for image in data["images"]}
    category_names = {c["id"]: c["name"] for c in data.get("categories", [])}
    missing = [k + 1 for k in range(num_classes) if k + 1 not in category_names]
    if missing:
        raise DataError(json_path, f"categories lack ids {missing} for the detector's "
                                   f"{num_classes} classes (class index k = category id k + 1)")
    return images, category_names


def run(args: argparse.Namespace) -> int:
    info = setup_distributed(args.device)
    try:
        infer(args.checkpoint, args.out, info=info, split=args.split, odgt_out=args.odgt_out,
              profile=args.profile, data=args.data, params=args.params,
              images_per_device=args.images_per_device)
        return 0
    finally:
        cleanup_distributed()


def infer(checkpoint: Path, out: Path, *, info: DistInfo, split: str = "val",
          odgt_out: Path | None = None, profile: str | None = None, data: Path | None = None,
          params: Path = DEFAULT_PARAMS, images_per_device: int | None = None) -> None:
    """Write the detections of ``checkpoint`` on one split (module docstring).

    Every rank of ``info``'s process group takes part; rank 0 writes.

    Args:
        checkpoint: ``model_final.pt`` or a training checkpoint.
        out: the COCO results json to write.
        split: the split of the checkpoint's dataset to run on.
        odgt_out: also write the CrowdHuman detection odgt here.
        profile: the profile locating the data and the input sizes (None: the checkpoint's).
        data: a converted dataset json to run on instead of the split's.
        params: the parameter file locating the data (and the input block of ``profile``).
        images_per_device: batch size per process (None: ``train.infer_images_per_device``).
    """
    state = ckpt.load_checkpoint(checkpoint)
    record = checkpoint_divergence(state)
    if record is not None:  # a recorded divergence: no detections, the record passed on
        if info.is_main:
            write_diverged_detections(out, record)
            logger.warning("%s: the run diverged at iteration %s: no detections -> %s",
                           checkpoint, record.get("iteration"), out)
        return
    model, exp = load_model(state, info.device)
    if profile is None or profile == exp.profile:
        profile, input_cfg = exp.profile, exp.input
    else:
        input_cfg = section(load_params(params), "input", profile)
    json_path = data or layout.converted_json(load_params(params), profile, exp.dataset, split)
    dataset = CrowdDataset.from_config(json_path, input_cfg, train=False)
    images, category_names = images_and_categories(json_path, int(exp.model["num_classes"]))
    start = time.perf_counter()
    mine = predict_grouped(model, exp, dataset, input_cfg, images_per_device, info)
    gathered = all_gather_objects(mine, info)
    if info.is_main:
        detections = sorted((d for part in gathered for d in part), key=lambda d: d["index"])
        atomic_write_json(out, coco_results(detections))
        if odgt_out is not None:
            lines = odgt_lines(detections, images, category_names)
            atomic_write_text(odgt_out, "".join(line + "\n" for line in lines))
        seconds = time.perf_counter() - start
        logger.info("%d images, %d detections in %.1f s (%.1f images/s, %d process(es)) -> %s",
                    len(detections), sum(len(d["scores"]) for d in detections), seconds,
                    len(detections) / max(seconds, 1e-9), info.world_size, out)
