"""`lla pretrain`: pretrain the tiny backbone body on person / background crops.

    lla pretrain --profile mini --out runs/mini/pretrain/body_r50.pt [--depth 50]

The paper's detectors start from ImageNet weights; the CPU profiles' tiny body has none.
This stage stands in for ImageNet: the body of ``models.<profile>.backbone`` (the same
widths, blocks and norm as the detectors'), global average pooling of C5 and a linear
layer learn to tell square crops around persons from background crops of the detection
training split (:mod:`lla.data.crops`). Settings: the ``pretrain`` block of params.yaml
(``defaults`` + the profile). Inputs are normalised with ``models.input.pixel_mean/std``,
as the detector normalises them.

Optimizer and schedule use the training engine's parts (:func:`lla.engine.optim.build_optimizer`,
linear warm-up and steps of :class:`lla.engine.schedule.WarmupMultiStepLR`). The output is
``{"format", "body" (state dict), "backbone" (its config), "settings", "val_accuracy",
"history"}``, written atomically; a detector uses it with ``models.<profile>.backbone.weights:
<file>`` (or ``{depth: file}``), the way the paper profile uses ImageNet weights. The FPN and
the head start from scratch, as in the paper. Deterministic for a seed on the CPU.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lla.config import load_params, section, selected_profile
from lla.data.crops import CropSampler, CropSettings
from lla.engine.optim import build_optimizer
from lla.engine.schedule import WarmupMultiStepLR
from lla.errors import DataError
from lla.io import atomic_path
from lla.layout import converted_json, pretrained_body
from lla.models.backbone import PRETRAINED_BODY_FORMAT, build_body

logger = logging.getLogger(__name__)

NUM_CLASSES = 2  # background, person


class CropClassifier(nn.Module):
    """body -> C5 -> global average pool -> linear (2 classes); input RGB in [0, 1]."""

    def __init__(self, body: nn.Module, pixel_mean, pixel_std):
        super().__init__()
        self.body = body
        self.fc = nn.Linear(int(body.out_channels[-1]), NUM_CLASSES)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        features = self.body((images - self.pixel_mean) / self.pixel_std)[-1]
        return self.fc(features.mean(dim=(2, 3)))


@dataclass(frozen=True)
class PretrainSettings:
    """The ``pretrain`` block (see params.yaml)."""

    crops: CropSettings
    batch: int
    iterations: int
    base_lr: float
    optimizer: dict[str, Any]
    warmup: dict[str, Any]
    steps: tuple[int, ...]
    gamma: float
    val_crops: int
    print_every: int
    seed: int

    @classmethod
    def from_block(cls, block: dict[str, Any]) -> "PretrainSettings":
        settings = cls(crops=CropSettings(**block.get("crops", {})), batch=int(block["batch"]),
                       iterations=int(block["iterations"]), base_lr=float(block["base_lr"]),
                       optimizer=dict(block["optimizer"]), warmup=dict(block.get("warmup") or {}),
                       steps=tuple(int(s) for s in block.get("steps", [])),
                       gamma=float(block.get("gamma", 0.1)), val_crops=int(block.get("val_crops", 0)),
                       print_every=int(block.get("print_every", 100)), seed=int(block.get("seed", 0)))
        if settings.batch < 1 or settings.iterations < 1 or settings.val_crops < 0:
            raise ValueError("pretrain: batch and iterations must be >= 1, val_crops >= 0")
        return settings


def body_config(params: dict[str, Any], profile: str, depth: int) -> dict[str, Any]:
    """``models.<profile>.backbone`` for ``depth``, without pretrained weights."""
    cfg = dict(section(params, "models", profile)["backbone"], depth=depth, weights=None)
    if cfg["name"] != "tiny":
        raise ValueError(f"models.{profile}.backbone is {cfg['name']!r}: lla pretrain trains the "
                         "tiny body of the CPU profiles (the paper profile uses ImageNet weights)")
    return cfg


@torch.no_grad()
def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch: int) -> float:
    model.eval()
    correct = sum(int((model(images[k:k + batch]).argmax(1) == labels[k:k + batch]).sum())
                  for k in range(0, len(labels), batch))
    model.train()
    return correct / max(len(labels), 1)


def pretrain(params: dict[str, Any], profile: str, *, train_json: Path, val_json: Path | None,
             out: Path, depth: int = 50) -> dict[str, Any]:
    """Train the body on crops and save it to ``out``; returns the saved record (no ``body``)."""
    backbone = body_config(params, profile, depth)
    settings = PretrainSettings.from_block(section(params, "pretrain", profile))
    inputs = section(params, "models", profile)["input"]
    torch.manual_seed(settings.seed)
    model = CropClassifier(build_body(backbone), inputs["pixel_mean"], inputs["pixel_std"])
    sampler = CropSampler(train_json, settings.crops, seed=settings.seed)
    validation = None
    if val_json is not None and settings.val_crops:
        validation = CropSampler(val_json, settings.crops, seed=settings.seed + 1,
                                 cache_images=False).batch(0, settings.val_crops)
    optimizer = build_optimizer(model, settings.optimizer, settings.base_lr)
    scheduler = WarmupMultiStepLR(optimizer, milestones=settings.steps, gamma=settings.gamma,
                                  warmup_iters=int(settings.warmup.get("iterations", 0)),
                                  warmup_factor=float(settings.warmup.get("factor", 1.0)))
    logger.info("pretraining the %s body (depth %d) on %d person crops of %s: %d iterations of %d "
                "crops, lr %g", backbone["name"], depth, len(sampler), train_json,
                settings.iterations, settings.batch, settings.base_lr)
    history, losses, hits, seen = [], 0.0, 0, 0
    start = time.perf_counter()
    model.train()
    for step in range(settings.iterations):
        images, labels = sampler.batch(step, settings.batch)
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        if not torch.isfinite(loss):
            raise RuntimeError(f"non-finite pretraining loss at iteration {step + 1}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses += float(loss.detach()) * len(labels)
        hits += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
        if (step + 1) % settings.print_every == 0 or step + 1 == settings.iterations:
            entry = {"iteration": step + 1, "loss": losses / seen, "train_accuracy": hits / seen}
            history.append(entry)
            logger.info("iter %d/%d  loss %.4f  accuracy %.3f  %.2f s/it", step + 1,
                        settings.iterations, entry["loss"], entry["train_accuracy"],
                        (time.perf_counter() - start) / (step + 1))
            losses, hits, seen = 0.0, 0, 0
    val_accuracy = None if validation is None else accuracy(model, *validation, settings.batch)
    if val_accuracy is not None:
        logger.info("val accuracy on %d crops of %s: %.3f", settings.val_crops, val_json, val_accuracy)
    record = {"format": PRETRAINED_BODY_FORMAT, "backbone": backbone, "profile": profile,
              "settings": section(params, "pretrain", profile), "train_json": str(train_json),
              "val_accuracy": val_accuracy, "history": history}
    with atomic_path(out, suffix=".pt") as tmp:
        torch.save({**record, "body": model.body.state_dict()}, tmp)
    logger.info("wrote %s", out)
    return record


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    profile = selected_profile(params, args.profile)
    train_json = args.data or converted_json(params, profile, "crowdhuman", "train")
    val_json = (None if str(args.val_data) == "none"
                else args.val_data or converted_json(params, profile, "crowdhuman", "val"))
    if val_json is not None and not Path(val_json).is_file():
        raise DataError(val_json, "validation json not found (--val-data none to skip)")
    out = args.out or pretrained_body(profile, args.depth)
    try:
        pretrain(params, profile, train_json=Path(train_json), val_json=val_json, out=out,
                 depth=args.depth)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(args.params, f"invalid pretrain settings: {e}",
                        record=f"pretrain.{profile}") from e
    return 0
