"""The ``loss`` block of a variant: :class:`LossConfig`, checked when it is built.

Each setting picks one term function (see :mod:`lla.models.losses`); the method extras
(``free_anchor``, ``isr``, ``carl``) take their own settings dataclasses, given in
params.yaml as mappings of their fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from .free_anchor import FreeAnchorConfig
from .pisa import CARL_DEFAULT, ISR_DEFAULT, ReweightConfig

BOX_LOSSES = ("giou", "iou", "linear_iou", "smooth_l1")
NORMALIZERS = ("positives", "matched")
BOX_WEIGHTINGS = ("none", "centerness", "iou")
BOX_WEIGHTING_NORMALIZERS = ("positives", "weight_sum")
MODES = ("standard", "free_anchor")


@dataclass(frozen=True)
class LossConfig:
    """Settings of :func:`~lla.models.losses.dense_detection_loss` (the ``loss`` block of a variant).

    Attributes:
        box: box term: "giou", "iou" (-ln IoU), "linear_iou" (1 - IoU) or "smooth_l1" (deltas).
        cls_weight, box_weight, aux_weight: multipliers of the three terms.
        focal_alpha, focal_gamma: focal-loss parameters.
        smooth_l1_beta: transition point of smooth-L1.
        normalizer: "positives" or "matched" (positives + anchors matched to ignore GTs).
        box_weighting: "none", "centerness" (FCOS/ATSS: each positive's box loss weighted by
            its centerness target) or "iou" (PAA: weighted by the IoU of the detached
            prediction with its GT).
        box_weighting_normalizer: what a weighted box term divides by: "positives" (the
            normaliser of the other terms; the LLA authors' released FCOS/ATSS baselines) or
            "weight_sum" (the batch's sum of the weights; the FCOS/mmdetection convention
            and PAA's released code). Read only when ``box_weighting`` is not "none".
        mode: "standard", or "free_anchor" (FreeAnchor's bag losses replace cls/box terms).
        free_anchor: settings of :class:`~lla.models.losses.free_anchor.FreeAnchorConfig` (a
            dict in params.yaml); only with ``mode="free_anchor"``.
        isr: PISA's ISR-P ``{k, bias}`` (None: off).
        carl: PISA's CARL ``{k, bias}`` (None: off); adds ``loss_carl``.
    """

    box: str = "giou"
    cls_weight: float = 1.0
    box_weight: float = 2.0
    aux_weight: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    smooth_l1_beta: float = 0.1
    normalizer: str = "positives"
    box_weighting: str = "none"
    box_weighting_normalizer: str = "positives"
    mode: str = "standard"
    free_anchor: FreeAnchorConfig | dict | None = None
    isr: ReweightConfig | dict | None = None
    carl: ReweightConfig | dict | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"loss.mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "free_anchor":
            object.__setattr__(self, "free_anchor", settings_from(FreeAnchorConfig, self.free_anchor or {}))
        elif self.free_anchor is not None:
            raise ValueError("loss.free_anchor is set but loss.mode is not 'free_anchor'")
        if self.isr is not None:
            object.__setattr__(self, "isr", settings_from(ReweightConfig, self.isr, ISR_DEFAULT))
        if self.carl is not None:
            object.__setattr__(self, "carl", settings_from(ReweightConfig, self.carl, CARL_DEFAULT))
        if self.box not in BOX_LOSSES:
            raise ValueError(f"loss.box must be one of {BOX_LOSSES}, got {self.box!r}")
        if self.normalizer not in NORMALIZERS:
            raise ValueError(f"loss.normalizer must be one of {NORMALIZERS}, got {self.normalizer!r}")
        if self.box_weighting not in BOX_WEIGHTINGS:
            raise ValueError(f"loss.box_weighting must be one of {BOX_WEIGHTINGS}, "
                             f"got {self.box_weighting!r}")
        if self.box_weighting_normalizer not in BOX_WEIGHTING_NORMALIZERS:
            raise ValueError(f"loss.box_weighting_normalizer must be one of {BOX_WEIGHTING_NORMALIZERS}, "
                             f"got {self.box_weighting_normalizer!r}")


def settings_from(cls, value, default=None):
    """A settings dataclass ``cls`` from itself or from a dict of its fields (over ``default``)."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of {cls.__name__} settings, got {value!r}")
    fields = {} if default is None else dict(vars(default))
    unknown = set(value) - set(cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings: {', '.join(sorted(unknown))}")
    fields.update(value)
    return cls(**fields)
