"""`lla infer`: run a checkpoint over a dataset split and write its detections.

    lla infer --checkpoint runs/mini/lla_fcos_r50/model_final.pt --split val --out dets.json \\
        [--odgt-out dets.odgt] [--profile P] [--data JSON]
    torchrun --nproc_per_node=8 -m lla.cli infer --checkpoint ... --split val --out dets.json

The detector is rebuilt from the experiment stored in the checkpoint (``model_final.pt``
or any training checkpoint), so params.yaml only locates the data. Images are batched
by aspect-ratio group without repeats; under torchrun rank ``r`` runs batches
``r, r + W, ...`` and rank 0 gathers every image's detections and writes them in the
dataset json's image order.

Outputs (boxes in original-image pixels, ``[x, y, w, h]``; per image sorted by score):

* ``--out``: a COCO results list ``[{"image_id", "category_id", "bbox", "score"}]``
  (``image_id`` = the dataset json's ``images[].id``; ``category_id`` = class index + 1);
* ``--odgt-out``: the CrowdHuman detection odgt, one JSON object per line and image:
  ``{"ID": record_id, "width", "height", "dtboxes": [{"box", "score", "tag"}]}``.
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

from lla.config import DEFAULT_PARAMS, converted_json, load_params, section
from lla.data.dataset import CrowdDataset, PadCollate
from lla.data.sampler import aspect_ratio_groups
from lla.engine import checkpoint as ckpt
from lla.engine.distributed import (DistInfo, all_gather_objects, cleanup_distributed,
                                    setup_distributed)
from lla.engine.experiment import Experiment
from lla.engine.train import AMP_DTYPES, build_model, model_inputs
from lla.errors import DataError
from lla.eval.diverged import checkpoint_divergence, write_diverged_detections
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
                    amp_dtype: torch.dtype | None = None) -> list[dict[str, Any]]:
    """Detections of the images in ``batches`` (see :func:`image_detections`), batch order."""
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=PadCollate(size_divisible),
                        num_workers=num_workers, pin_memory=device.type == "cuda")
    model.eval()
    results = []
    for indices, batch in zip(batches, loader):
        images, _ = model_inputs(batch, device)
        with torch.autocast(device_type=device.type, dtype=amp_dtype or torch.float32,
                            enabled=amp_dtype is not None):
            outputs = model(images, original_sizes=[t["orig_size"].tolist() for t in batch.targets],
                            scales=[t["scale"].tolist() for t in batch.targets])
        results.extend(image_detections(i, t, o) for i, t, o in zip(indices, batch.targets, outputs))
    return results


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


def load_model(state: dict[str, Any], device: torch.device) -> tuple[torch.nn.Module, Experiment]:
    exp = Experiment.from_dict(state["config"])
    model = build_model(exp)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), exp


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "infer", help="run a trained checkpoint over a split and write detections",
        description="Detections of a checkpoint on one split: a COCO results json and "
                    "optionally the CrowdHuman detection odgt. Works under torchrun.")
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="model_final.pt or a training checkpoint")
    parser.add_argument("--split", default="val", help="split of the experiment's dataset (val)")
    parser.add_argument("--out", type=Path, required=True, help="COCO results json to write")
    parser.add_argument("--odgt-out", type=Path, help="also write the CrowdHuman detection odgt")
    parser.add_argument("--profile", help="profile locating the data and the input sizes "
                                          "(default: the checkpoint's)")
    parser.add_argument("--data", type=Path, help="a converted dataset json instead of the split's")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS,
                        help="parameter file (default: params.yaml)")
    parser.add_argument("--images-per-device", type=int,
                        help="batch size per process (default: train.infer_images_per_device)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    info = setup_distributed(args.device)
    try:
        return infer(args, info)
    finally:
        cleanup_distributed()


def infer(args: argparse.Namespace, info: DistInfo) -> int:
    state = ckpt.load_checkpoint(args.checkpoint)
    record = checkpoint_divergence(state)
    if record is not None:  # a recorded divergence: no detections, the record passed on
        if info.is_main:
            write_diverged_detections(args.out, record)
            logger.warning("%s: the run diverged at iteration %s: no detections -> %s",
                           args.checkpoint, record.get("iteration"), args.out)
        return 0
    model, exp = load_model(state, info.device)
    if args.profile is None or args.profile == exp.profile:
        profile, input_cfg = exp.profile, exp.input
    else:
        profile = args.profile
        input_cfg = section(load_params(args.params), "input", profile)
    json_path = args.data or converted_json(load_params(args.params), profile, exp.dataset,
                                            args.split)
    dataset = CrowdDataset.from_config(json_path, input_cfg, train=False)
    data = read_json(json_path)
    images = {image["id"]: image for image in data["images"]}
    category_names = {c["id"]: c["name"] for c in data.get("categories", [])}
    num_classes = int(exp.model["num_classes"])
    missing = [k + 1 for k in range(num_classes) if k + 1 not in category_names]
    if missing:
        raise DataError(json_path, f"categories lack ids {missing} for the detector's "
                                   f"{num_classes} classes (class index k = category id k + 1)")

    batch_size = args.images_per_device or int(exp.train["infer_images_per_device"])
    groups = aspect_ratio_groups(dataset.aspect_ratios(), input_cfg["aspect_ratio_bins"])
    batches = inference_batches(groups, batch_size, rank=info.rank, world_size=info.world_size)
    amp = bool(exp.train.get("amp", False)) and info.device.type == "cuda"
    start = time.perf_counter()
    amp_dtype = AMP_DTYPES[exp.train.get("amp_dtype", "float16")] if amp else None
    mine = predict_dataset(model, dataset, batches, device=info.device,
                           num_workers=int(exp.train["num_workers"]),
                           size_divisible=int(exp.model["input"]["size_divisibility"]),
                           amp_dtype=amp_dtype)
    gathered = all_gather_objects(mine, info)
    if info.is_main:
        detections = sorted((d for part in gathered for d in part), key=lambda d: d["index"])
        atomic_write_json(args.out, coco_results(detections))
        if args.odgt_out is not None:
            lines = odgt_lines(detections, images, category_names)
            atomic_write_text(args.odgt_out, "".join(line + "\n" for line in lines))
        seconds = time.perf_counter() - start
        logger.info("%d images, %d detections in %.1f s (%.1f images/s, %d process(es)) -> %s",
                    len(detections), sum(len(d["scores"]) for d in detections), seconds,
                    len(detections) / max(seconds, 1e-9), info.world_size, args.out)
    return 0
