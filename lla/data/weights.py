"""`lla data weights resnet50|resnet101`: the ImageNet weights of a ResNet backbone, fetched
once into ``<data_root>/pretrained/`` (:func:`lla.layout.pretrained_dir`), where training reads them.

``backbone: {name: resnet, weights: imagenet}`` in params.yaml means torchvision's
``IMAGENET1K_V1`` weights of the backbone's depth. The file keeps torchvision's name, e.g.
``resnet50-0676ba61.pth``, whose suffix is the start of the file's sha256 (torch.hub's
convention): a fetched or hand-placed file is accepted only when its sha256 starts with it.
The transfer is the dataset downloader's (:mod:`lla.data.download`: resumed after a dropped
connection, verified, recorded in ``<dir>/download_manifest.json`` so a verified file is not
read again).

:func:`resolve` turns ``weights: imagenet`` into the path of that file when an experiment is
resolved (and the tiny body's ``weights: pretrain`` into the file ``lla pretrain`` writes),
so a training job only reads a local file and never goes online. The pipeline
fetches the files the profile's experiments need in a local step before any training job
(``workflow/rules/data.smk``); where that machine is offline too, one message names the file,
its URL and the directory to put it in, and the command exits with status 1.
"""

from __future__ import annotations

import argparse
import copy
import functools
import logging
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable

from lla import layout, options
from lla.config import selected_profile
from lla.data.download import (FileSpec, Manifest, MissingFile, TransferSettings,
                               ensure_file, format_missing)

log = logging.getLogger(__name__)

#: the params.yaml value of ``backbone.weights`` that names torchvision's ImageNet weights
IMAGENET = "imagenet"
#: the params.yaml value of the tiny body's ``backbone.weights`` that names the body
#: ``lla pretrain`` writes for the profile and depth (the CPU profiles' stand-in for ImageNet)
PRETRAIN = "pretrain"
#: backbone name -> depth of the ResNets with ImageNet weights
BACKBONES = {"resnet50": 50, "resnet101": 101}
#: torch.hub's file names: ``<name>-<first hex digits of the sha256>.<ext>``
HASH_PREFIX = re.compile(r"-([a-f0-9]{6,})\.")
WHAT = "the ImageNet backbone weights"
#: transfer settings of `lla data weights` (the downloader's defaults)
SETTINGS = TransferSettings()


@functools.lru_cache(maxsize=None)
def torchvision_url(depth: int) -> str:
    """torchvision's URL of the ``IMAGENET1K_V1`` weights of ResNet-``depth``."""
    from torchvision.models import resnet  # lazily: `lla data --help` does not import torch

    enums = {50: resnet.ResNet50_Weights, 101: resnet.ResNet101_Weights}
    if depth not in enums:
        raise ValueError(f"no ImageNet weights for ResNet-{depth} (known: 50, 101)")
    return enums[depth].IMAGENET1K_V1.url


def weights_file(url: str, note: str | None = None) -> FileSpec:
    """The downloader's description of the weights file at ``url``: its name is the URL's
    last part, its checksum the hash prefix in that name."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    match = HASH_PREFIX.search(name)
    if match is None:
        raise ValueError(f"{url}: the file name carries no hash prefix (name-<hex>.pth)")
    return FileSpec(name=name, urls=(url,), sha256_prefix=match.group(1), note=note)


def imagenet_file(depth: int) -> FileSpec:
    """torchvision's ImageNet weights file of ResNet-``depth``."""
    url = torchvision_url(depth)
    return weights_file(url, note=f"torchvision's ResNet-{depth} ImageNet weights "
                                  f"(IMAGENET1K_V1); on a machine online: wget {url}")


def imagenet_path(params: dict[str, Any], depth: int) -> Path:
    """Where the ImageNet weights of ResNet-``depth`` live (and the training jobs read them)."""
    return layout.pretrained_weights(params, imagenet_file(depth).name)


def resolve(params: dict[str, Any], model: dict[str, Any], profile: str | None = None) -> dict[str, Any]:
    """``model`` (a resolved detector config of ``profile``, default: params' profile) with
    its backbone's keyword weights replaced by a local file: ``imagenet`` on a ResNet by
    torchvision's file of its depth (:func:`imagenet_path`); ``pretrain`` on the tiny body by
    the body that ``lla pretrain --profile <profile> --depth <depth>`` writes
    (:func:`lla.layout.pretrained_body`). Any other config is returned unchanged."""
    backbone = model.get("backbone") or {}
    weights, name = backbone.get("weights"), str(backbone.get("name", ""))
    if weights == IMAGENET and name.startswith("resnet"):
        depth = int(backbone.get("depth", 50)) if name == "resnet" else int(name[len("resnet"):])
        path = imagenet_path(params, depth)
    elif weights == PRETRAIN and name == "tiny":
        profile = selected_profile(params, profile)
        path = layout.pretrained_body(profile, int(backbone.get("depth", 50)))
    else:
        return model
    resolved = copy.deepcopy(model)
    resolved["backbone"]["weights"] = str(path)
    return resolved


def pretrained_file(model: dict[str, Any]) -> str | None:
    """The weights file the backbone of a resolved model starts from (None: from scratch):
    a ResNet's ImageNet or own file, or the tiny body's file of its depth."""
    backbone = model.get("backbone") or {}
    weights = backbone.get("weights")
    if isinstance(weights, dict):  # the tiny body: one file per backbone depth
        weights = weights.get(int(backbone.get("depth", 50)))
    return str(weights) if weights else None


def fetch(files: list[FileSpec], directory: Path, settings: TransferSettings = TransferSettings(),
          sleep: Callable[[float], None] = time.sleep) -> list[MissingFile]:
    """Make each of ``files`` present and verified in ``directory``; return those missing."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(directory)
    missing = []
    for spec in files:
        path, entry, reasons = ensure_file(spec, directory, manifest, settings, sleep)
        if entry is None:
            missing.append(MissingFile(spec, directory, reasons))
        else:
            log.info("%s: present and verified in %s", spec.name, directory)
    return missing


def _command(args: argparse.Namespace) -> int:
    from lla.config import load_params

    directory = Path(args.out_dir) if args.out_dir else layout.pretrained_dir(load_params(args.params))
    missing = fetch([imagenet_file(BACKBONES[name]) for name in args.backbones], directory,
                    SETTINGS)
    if missing:
        rerun = " ".join(["lla data weights", *args.backbones]
                         + (["--out-dir", shlex.quote(str(args.out_dir))] if args.out_dir else []))
        print(format_missing(WHAT, missing, rerun), file=sys.stderr)
        return 1
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "weights", parents=[options.PARAMS],
        help="fetch and verify the ImageNet weights of the ResNet backbones",
        description="Fetch torchvision's ImageNet weights of ResNet-50/101 (the paper's "
                    "backbones, `weights: imagenet` in params.yaml) into the directory the "
                    "training jobs read, verified by the hash prefix in their file names.",
        epilog="Offline, the command names each missing file, its URL and the directory to put "
               "it in, and exits with status 1; rerun it after placing them.")
    parser.add_argument("backbones", nargs="+", choices=list(BACKBONES), metavar="BACKBONE",
                        help=f"which backbone's weights: {', '.join(BACKBONES)}")
    options.add_out_dir(parser, "where to put them", default="<data_root>/pretrained of params")
    parser.set_defaults(func=_command)
