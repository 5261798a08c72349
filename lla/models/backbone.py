"""Backbones with a P3-P7 feature pyramid.

Two bodies share one FPN wrapper:

* :func:`resnet_body` -- torchvision ResNet-50/101, for the ``paper`` profile:
  FrozenBatchNorm, frozen stem and first stage, ImageNet weights from a local file
  (``weights: imagenet`` in params.yaml is resolved to torchvision's file, fetched once by
  ``lla data weights``: :mod:`lla.data.weights`).
* :class:`TinyBody` -- a ~1 M-parameter convolutional body trained from scratch
  (GroupNorm or BatchNorm, nothing frozen) for the ``mini``/``micro`` profiles.

:class:`BackboneFPN` runs a body, builds P3-P5 with :class:`torchvision.ops.FeaturePyramidNetwork`
and adds P6/P7 from C5 (RetinaNet) or from P5 (FCOS) -- chosen explicitly, not
inferred from channel counts as torchvision's ``LastLevelP6P7`` does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock
from torchvision.ops.misc import FrozenBatchNorm2d

from lla.errors import DataError

RESNET_BUILDERS = {50: resnet.resnet50, 101: resnet.resnet101}


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with ``groups`` groups; a clear error when they do not divide ``channels``."""
    if groups <= 0 or channels % groups:
        raise ValueError(f"GroupNorm: {groups} groups do not divide {channels} channels; "
                         "choose a gn_groups value that divides the width")
    return nn.GroupNorm(groups, channels)


def norm_layer(kind: str, channels: int, gn_groups: int) -> nn.Module:
    """A normalisation layer by name: "gn", "bn", "frozen_bn" or "none" (identity)."""
    if kind == "gn":
        return group_norm(channels, gn_groups)
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "frozen_bn":
        return FrozenBatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r} (known: gn, bn, frozen_bn, none)")


# ----------------------------------------------------------------------------- ResNet

class ResNetBody(nn.Module):
    """A torchvision ResNet cut after ``layer4``; returns C3, C4, C5 (strides 8, 16, 32), or
    C2..C5 (from stride 4) with ``finest_level=2``."""

    def __init__(self, net: resnet.ResNet, finest_level: int = 3):
        super().__init__()
        _check_finest_level(finest_level)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1, net.layer2, net.layer3, net.layer4)
        self.finest_level = finest_level
        layers = (self.layer1, self.layer2, self.layer3, self.layer4)[finest_level - 2:]
        self.out_channels = [layer[-1].conv3.out_channels for layer in layers]

    def forward(self, x: Tensor) -> list[Tensor]:
        c2 = self.layer1(self.stem(x))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        return [c2, c3, c4, self.layer4(c4)][self.finest_level - 2:]


def _check_finest_level(level: int) -> None:
    if level not in (2, 3):
        raise ValueError(f"finest_level must be 2 (C2, stride 4) or 3 (C3, stride 8), got {level}")


def load_resnet_weights(net: nn.Module, depth: int, weights: str) -> None:
    """Load ImageNet weights into ``net`` from a local ``.pth`` state dict (nothing is fetched)."""
    if weights == "imagenet":
        raise ValueError("backbone weights 'imagenet' must first be resolved to their local file "
                         "(lla.data.weights.resolve; build_detector and resolve_experiment do it)")
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: backbone weights file not found (models.backbone.weights in params.yaml; "
            f"`lla data weights resnet{depth}` fetches the `imagenet` file into <data_root>/pretrained)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise RuntimeError(f"ResNet-{depth} weights {weights}: missing keys {missing[:5]}, "
                           f"unexpected keys {unexpected[:5]}")


def resnet_body(*, depth: int, norm: str = "frozen_bn", weights: str | None = None,
                frozen_stages: int = 1, gn_groups: int = 32, finest_level: int = 3) -> ResNetBody:
    """ResNet-``depth`` body.

    Args:
        norm: "frozen_bn" (pretrained runs), "bn" or "gn".
        weights: None (random init) or a local state-dict path.
        frozen_stages: -1 nothing frozen, 0 the stem, k >= 1 the stem and layer1..layerk.
    """
    if depth not in RESNET_BUILDERS:
        raise ValueError(f"ResNet depth must be one of {sorted(RESNET_BUILDERS)}, got {depth}")
    net = RESNET_BUILDERS[depth](weights=None, norm_layer=lambda c: norm_layer(norm, c, gn_groups))
    if weights:
        load_resnet_weights(net, depth, weights)
    body = ResNetBody(net, finest_level)
    frozen = [] if frozen_stages < 0 else [body.stem] + [
        getattr(body, f"layer{i}") for i in range(1, frozen_stages + 1)]
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
    return body


# ----------------------------------------------------------------------------- tiny body

class ConvNormAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int, norm: str, gn_groups: int):
        super().__init__(nn.Conv2d(cin, cout, 3, stride, 1, bias=norm == "none"),
                         norm_layer(norm, cout, gn_groups), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """Two 3x3 conv-norm layers with an identity shortcut."""

    def __init__(self, channels: int, norm: str, gn_groups: int):
        super().__init__()
        self.conv1 = ConvNormAct(channels, channels, 1, norm, gn_groups)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=norm == "none")
        self.norm2 = norm_layer(norm, channels, gn_groups)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.norm2(self.conv2(self.conv1(x))))


class TinyBody(nn.Module):
    """A small from-scratch body: stem to stride 4, then three stride-2 stages -> C3, C4, C5.

    Args:
        widths: (stem, C3, C4, C5) channel counts, e.g. (32, 64, 128, 192).
        blocks_per_stage: residual blocks after each stride-2 conv.
        finest_level: 3 returns C3..C5; 2 also returns the stem output as C2 (stride 4).
            The parameters are the same either way.
    """

    def __init__(self, *, widths: Sequence[int], blocks_per_stage: int = 1, norm: str = "gn",
                 gn_groups: int = 8, finest_level: int = 3):
        super().__init__()
        _check_finest_level(finest_level)
        self.finest_level = finest_level
        if len(widths) != 4:
            raise ValueError(f"tiny backbone widths must be (stem, C3, C4, C5), got {list(widths)}")
        stem_w = widths[0]
        self.stem = nn.Sequential(ConvNormAct(3, stem_w, 2, norm, gn_groups),
                                  ConvNormAct(stem_w, stem_w, 2, norm, gn_groups))
        stages, cin = [], stem_w
        for cout in widths[1:]:
            stages.append(nn.Sequential(ConvNormAct(cin, cout, 2, norm, gn_groups),
                                        *[ResidualBlock(cout, norm, gn_groups)
                                          for _ in range(blocks_per_stage)]))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.out_channels = list(widths[finest_level - 2:])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        feats = [x] if self.finest_level == 2 else []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


# ----------------------------------------------------------------------------- FPN

class P6P7(ExtraFPNBlock):
    """P6 = conv3x3/2(C5 or P5), P7 = conv3x3/2(relu(P6)); the source is explicit.
    ``levels=1`` adds P6 only (a pyramid that starts at P2)."""

    def __init__(self, in_channels: int, out_channels: int, source: str, levels: int = 2):
        super().__init__()
        if source not in ("c5", "p5"):
            raise ValueError(f"P6/P7 source must be 'c5' or 'p5', got {source!r}")
        if levels not in (1, 2):
            raise ValueError(f"P6/P7 adds 1 or 2 levels, got {levels}")
        self.source = source
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, 2, 1) if levels == 2 else None
        for conv in (self.p6, self.p7):
            if conv is not None:
                nn.init.kaiming_uniform_(conv.weight, a=1)
                nn.init.zeros_(conv.bias)

    def forward(self, results: list[Tensor], x: list[Tensor],
                names: list[str]) -> tuple[list[Tensor], list[str]]:
        p6 = self.p6(results[-1] if self.source == "p5" else x[-1])
        if self.p7 is None:
            return results + [p6], names + ["p6"]
        p7 = self.p7(F.relu(p6))
        return results + [p6, p7], names + ["p6", "p7"]


class BackboneFPN(nn.Module):
    """Body + FPN: image (N, 3, H, W) -> [P3, ..., P7], each (N, out_channels, H/s, W/s);
    with a body that starts at C2 (``finest_level: 2``), [P2, ..., P6]: five levels either way."""

    NUM_LEVELS = 5

    def __init__(self, body: nn.Module, out_channels: int, p6p7_source: str):
        super().__init__()
        self.body = body
        in_channels = list(body.out_channels)
        self.finest_level = int(getattr(body, "finest_level", 3))
        self.fpn = FeaturePyramidNetwork(
            in_channels, out_channels,
            extra_blocks=P6P7(in_channels[-1] if p6p7_source == "c5" else out_channels,
                              out_channels, p6p7_source, levels=self.NUM_LEVELS - len(in_channels)))
        self.out_channels = out_channels

    def forward(self, images: Tensor) -> list[Tensor]:
        feats = self.body(images)
        named = OrderedDict((f"c{i + self.finest_level}", f) for i, f in enumerate(feats))
        return list(self.fpn(named).values())


def build_body(cfg: dict) -> nn.Module:
    """The body (C3, C4, C5) of the ``models.*.backbone`` config.

    ``cfg`` keys: ``name`` ("resnet50", "resnet101", "tiny"), ``norm``, ``gn_groups``,
    ``weights`` (ResNet: null or a path; tiny: null or a file written by ``lla pretrain``,
    or a mapping ``{depth: file}``), ``frozen_stages`` (ResNet), ``widths`` /
    ``blocks_per_stage`` (tiny), ``finest_level`` (3: C3..C5, the default; 2: C2..C5, for a
    pyramid P2..P6 with strides 4..64). The tiny body's ``blocks_per_stage`` may map
    the backbone ``depth`` to a block count (``{50: 1, 101: 2}``), so an experiment that
    asks for a deeper backbone (the paper's ResNet-101 rows) gets a deeper tiny body too.
    """
    name = cfg["name"]
    finest = int(cfg.get("finest_level", 3))
    if name.startswith("resnet"):
        return resnet_body(depth=int(name[len("resnet"):]), norm=cfg.get("norm", "frozen_bn"),
                           weights=cfg.get("weights"), frozen_stages=cfg.get("frozen_stages", 1),
                           gn_groups=cfg.get("gn_groups", 32), finest_level=finest)
    if name == "tiny":
        depth = cfg.get("depth", 50)
        blocks = cfg.get("blocks_per_stage", 1)
        if isinstance(blocks, dict):
            if depth not in blocks:
                raise ValueError(f"tiny backbone: blocks_per_stage has no entry for depth {depth} "
                                 f"(has: {', '.join(map(str, blocks))})")
            blocks = blocks[depth]
        body = TinyBody(widths=cfg["widths"], blocks_per_stage=int(blocks),
                        norm=cfg.get("norm", "gn"), gn_groups=cfg.get("gn_groups", 8),
                        finest_level=finest)
        weights = cfg.get("weights")
        if isinstance(weights, dict):
            weights = weights.get(depth)
        if weights:
            load_body_weights(body, weights)
        return body
    raise ValueError(f"unknown backbone {name!r} (known: resnet50, resnet101, tiny)")


#: ``format`` of the body files written by ``lla pretrain`` (lla.engine.pretrain).
PRETRAINED_BODY_FORMAT = "lla-pretrained-body-1"


def load_body_weights(body: nn.Module, path: str | Path) -> None:
    """Load a body state dict saved by ``lla pretrain`` (``{"format", "body", ...}``) into
    ``body``; every key must match (same widths, blocks and norm)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "backbone weights file not found (models.backbone.weights in "
                              "params.yaml; made by lla pretrain)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != PRETRAINED_BODY_FORMAT:
        raise DataError(path, f"not a body file of lla pretrain (format {PRETRAINED_BODY_FORMAT})")
    own, saved = body.state_dict(), state["body"]
    missing = [key for key in own if key not in saved]
    unexpected = [key for key in saved if key not in own]
    shapes = [key for key in saved if key in own and own[key].shape != saved[key].shape]
    if missing or unexpected or shapes:
        raise DataError(path, f"the pretrained body does not fit this backbone (missing keys "
                              f"{missing[:3]}, unexpected {unexpected[:3]}, other shapes "
                              f"{shapes[:3]}): pretrain with the same widths, blocks_per_stage "
                              "and norm")
    body.load_state_dict(saved)


def build_backbone(cfg: dict, *, p6p7_source: str, out_channels: int) -> BackboneFPN:
    """Backbone from the ``models.*.backbone`` config: :func:`build_body` + the FPN."""
    return BackboneFPN(build_body(cfg), out_channels, p6p7_source)
