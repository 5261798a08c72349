"""params.yaml ``models`` block -> :class:`~lla.models.detector.DenseDetector`.

``models.defaults`` merged with ``models.<profile>`` (``lla.config.section``) holds the
shared settings and ``variants``. A variant's settings are resolved
(:func:`lla.config.resolve_variant`) as

    shared settings  <-  variant chain (``base: NAME`` first, then the variant's own keys)

with nested blocks merged key by key, except that a block which names its own
``name`` (e.g. ``assigner: {name: lla, ...}``) replaces the inherited block whole --
the keyword arguments of one assigner make no sense for another.
"""

from __future__ import annotations

from typing import Any

from lla.assign import build_assigner
from lla.config import DEFAULT_PARAMS, resolve_variant, variant_names  # noqa: F401 (re-exported)
from lla.data import weights as pretrained
from lla.errors import DataError
from lla.models.anchors import AnchorGenerator
from lla.models.backbone import build_backbone
from lla.models.box_coders import build_box_coder
from lla.models.detector import DenseDetector
from lla.models.heads import DenseHead
from lla.models.losses import LossConfig
from lla.models.postprocess import PostprocessConfig


def build_detector(params: dict[str, Any], variant: str, profile: str | None = None) -> DenseDetector:
    """Build the detector ``variant`` with the settings of ``profile`` (untrained; ImageNet
    weights are read from their local file, :mod:`lla.data.weights`)."""
    cfg = pretrained.resolve(params, resolve_variant(params, variant, profile), profile)
    record = f"models.variants.{variant}"
    try:
        return detector_from_config(cfg)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        message = f"missing setting {exc}" if isinstance(exc, KeyError) else str(exc)
        raise DataError(getattr(params, "path", DEFAULT_PARAMS), f"cannot build variant '{variant}' for profile "
                                        f"'{profile}': {message}", record=record) from exc


def detector_from_config(cfg: dict[str, Any]) -> DenseDetector:
    """Build from a resolved variant config (see :func:`resolve_variant`)."""
    strides = [int(s) for s in cfg["strides"]]
    head_cfg, anchor_cfg = cfg["head"], cfg["anchors"]
    anchor_generator = AnchorGenerator(
        strides=strides, kind=anchor_cfg["kind"],
        base_size_per_stride=anchor_cfg.get("base_size_per_stride", 4.0),
        scales=anchor_cfg.get("scales", [1.0]), aspect_ratios=anchor_cfg.get("aspect_ratios", [1.0]))
    backbone_cfg = dict(cfg["backbone"])
    if backbone_cfg["name"] == "resnet":
        backbone_cfg["name"] = f"resnet{backbone_cfg.pop('depth', 50)}"
    backbone = build_backbone(backbone_cfg, p6p7_source=cfg["p6p7_source"],
                              out_channels=int(head_cfg["channels"]))
    head = DenseHead(
        in_channels=int(head_cfg["channels"]), num_classes=int(cfg["num_classes"]),
        num_anchors=anchor_generator.num_anchors_per_location, strides=strides,
        num_convs=int(head_cfg["num_convs"]), norm=head_cfg["norm"],
        gn_groups=int(head_cfg["gn_groups"]), box_output=head_cfg["box_output"],
        # checkpoints written before the option existed carry no key: relu, as they trained
        ltrb_activation=head_cfg.get("ltrb_activation", "relu"), aux=head_cfg.get("aux"),
        prior_prob=float(head_cfg["prior_prob"]),
        per_level_scale=bool(head_cfg["per_level_scale"]), init_std=float(head_cfg["init_std"]))
    assigner_cfg = dict(cfg["assigner"])
    assigner = build_assigner(assigner_cfg.pop("name"), **assigner_cfg)
    loss_cfg = LossConfig(**cfg["loss"])
    if head.aux_kind is not None and "aux_weight" not in cfg["loss"]:
        raise ValueError(f"head.aux is {head.aux_kind!r} but loss.aux_weight is not set")
    return DenseDetector(
        backbone=backbone, head=head, anchor_generator=anchor_generator,
        box_coder=build_box_coder(head_cfg["box_output"], cfg.get("box_coder")),
        assigner=assigner, loss_cfg=loss_cfg, postprocess_cfg=PostprocessConfig(**cfg["inference"]),
        pixel_mean=cfg["input"]["pixel_mean"], pixel_std=cfg["input"]["pixel_std"],
        size_divisibility=int(cfg["input"]["size_divisibility"]))
