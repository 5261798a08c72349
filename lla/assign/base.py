"""The assigner interface: one result type, one call signature, one registry.

Every label assigner maps J anchors of one image onto its I ground-truth boxes and
returns an :class:`Assignment`. Losses and analyses (AAR, FPN-level allocation) read
only that object, so they never care which strategy produced it.

Label encoding of ``Assignment.matched_gt`` (int64, shape (J,)):

* ``>= 0``        index of the matched GT box. If that GT is an *ignore* box
  (CrowdHuman ``extra.ignore``), the anchor is thereby ignored: it takes part in no loss.
* ``NEGATIVE``    (-1) background anchor.
* ``IGNORED``     (-2) ignored for another reason (e.g. RetinaNet's IoU between
  its negative and positive thresholds).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

NEGATIVE = -1
IGNORED = -2

_REGISTRY: dict[str, type["Assigner"]] = {}


@dataclass(frozen=True)
class Assignment:
    """Result of assigning the J anchors of one image.

    Attributes:
        matched_gt: int64 (J,). ``>= 0`` GT index, ``NEGATIVE`` (-1), ``IGNORED`` (-2).
        num_candidates: int64 (J,) or None. How many GTs claimed each anchor before the
            tie-break (AAR, Table 5): an anchor with ``num_candidates > 1`` was contested.
        weights: float (J,) or None. Per-anchor loss weights (PISA, Noisy Anchor).
    """

    matched_gt: Tensor
    num_candidates: Tensor | None = None
    weights: Tensor | None = None

    def __post_init__(self) -> None:
        if self.matched_gt.dim() != 1 or self.matched_gt.dtype != torch.int64:
            raise ValueError("matched_gt must be an int64 tensor of shape (J,), got "
                             f"{self.matched_gt.dtype} {tuple(self.matched_gt.shape)}")
        num_anchors = self.matched_gt.shape[0]
        if self.num_candidates is not None and (
                self.num_candidates.shape != (num_anchors,) or self.num_candidates.dtype != torch.int64):
            raise ValueError(f"num_candidates must be int64 of shape ({num_anchors},), got "
                             f"{self.num_candidates.dtype} {tuple(self.num_candidates.shape)}")
        if self.weights is not None and (
                self.weights.shape != (num_anchors,) or not self.weights.is_floating_point()):
            raise ValueError(f"weights must be floating point of shape ({num_anchors},), got "
                             f"{self.weights.dtype} {tuple(self.weights.shape)}")

    @property
    def num_anchors(self) -> int:
        return self.matched_gt.shape[0]

    def matched_mask(self) -> Tensor:
        """bool (J,): anchors matched to any GT, ignore GTs included.

        The released LLA code counts these in the positive-count normaliser."""
        return self.matched_gt >= 0

    def positive_mask(self, gt_ignore: Tensor) -> Tensor:
        """bool (J,): anchors matched to a GT that is not an ignore box."""
        matched = self.matched_mask()
        return matched & ~_ignore_flags_of(self.matched_gt, gt_ignore)

    def ignore_mask(self, gt_ignore: Tensor) -> Tensor:
        """bool (J,): anchors removed from every loss (``IGNORED`` or matched to an ignore GT)."""
        return (self.matched_gt == IGNORED) | (
            self.matched_mask() & _ignore_flags_of(self.matched_gt, gt_ignore))

    def negative_mask(self) -> Tensor:
        """bool (J,): background anchors."""
        return self.matched_gt == NEGATIVE

    def contested_mask(self) -> Tensor:
        """bool (J,): matched anchors that more than one GT claimed before the tie-break."""
        if self.num_candidates is None:
            raise ValueError("this assignment carries no num_candidates")
        return self.matched_mask() & (self.num_candidates > 1)


def _ignore_flags_of(matched_gt: Tensor, gt_ignore: Tensor) -> Tensor:
    """bool (J,): ``gt_ignore[matched_gt]`` where matched, False elsewhere."""
    if gt_ignore.dim() != 1 or gt_ignore.dtype != torch.bool:
        raise ValueError(f"gt_ignore must be a bool tensor of shape (I,), got "
                         f"{gt_ignore.dtype} {tuple(gt_ignore.shape)}")
    if gt_ignore.numel() == 0:
        return torch.zeros_like(matched_gt, dtype=torch.bool)
    if matched_gt.numel() and int(matched_gt.max()) >= gt_ignore.numel():
        raise ValueError(f"matched_gt refers to GT {int(matched_gt.max())} but gt_ignore "
                         f"has only {gt_ignore.numel()} entries")
    return (matched_gt >= 0) & gt_ignore[matched_gt.clamp(min=0)]


# --------------------------------------------------------------------------- registry

def register(name: str) -> Callable[[type["Assigner"]], type["Assigner"]]:
    """Class decorator: make an assigner buildable by ``build_assigner(name, ...)``."""

    def decorator(cls: type["Assigner"]) -> type["Assigner"]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"assigner name {name!r} is already registered by "
                             f"{_REGISTRY[name].__name__}")
        _REGISTRY[name] = cls
        cls.name = name
        return cls

    return decorator


def build_assigner(name: str, **kwargs) -> "Assigner":
    """Build the assigner registered as ``name`` with keyword arguments (e.g. from params.yaml)."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown assigner {name!r}; known: {', '.join(available_assigners())}") from None
    return cls(**kwargs)


def available_assigners() -> list[str]:
    return sorted(_REGISTRY)


# --------------------------------------------------------------------------- inputs

@dataclass(frozen=True)
class AssignInputs:
    """Validated inputs of one image (see :meth:`Assigner.assign` for shapes)."""

    anchors: Tensor
    gt_boxes: Tensor
    gt_ignore: Tensor
    gt_labels: Tensor
    cls_logits: Tensor | None
    box_pred: Tensor | None
    num_anchors_per_level: tuple[int, ...] | None
    strides: tuple[float, ...] | None

    @property
    def num_anchors(self) -> int:
        return self.anchors.shape[0]

    @property
    def num_gts(self) -> int:
        return self.gt_boxes.shape[0]

    def level_of_anchor(self) -> Tensor:
        """int64 (J,): FPN level index of every anchor."""
        sizes = torch.as_tensor(self.require_levels(), device=self.anchors.device)
        return torch.repeat_interleave(torch.arange(len(sizes), device=self.anchors.device), sizes)

    def level_slices(self) -> list[slice]:
        slices, start = [], 0
        for size in self.require_levels():
            slices.append(slice(start, start + size))
            start += size
        return slices

    def require_levels(self) -> tuple[int, ...]:
        if self.num_anchors_per_level is None:
            raise ValueError("this assigner needs num_anchors_per_level")
        return self.num_anchors_per_level

    def require_strides(self) -> tuple[float, ...]:
        if self.strides is None:
            raise ValueError("this assigner needs strides (one per FPN level)")
        return self.strides


def _check_inputs(anchors, gt_boxes, gt_ignore, cls_logits, box_pred, num_anchors_per_level,
                  strides, gt_labels) -> AssignInputs:
    def fail(message: str):
        raise ValueError(message)

    if not isinstance(anchors, Tensor) or anchors.dim() != 2 or anchors.shape[1] not in (2, 4):
        fail(f"anchors must be a (J, 4) box or (J, 2) point tensor, got {_describe(anchors)}")
    if not anchors.is_floating_point():
        fail(f"anchors must be floating point, got {anchors.dtype}")
    num_anchors = anchors.shape[0]
    device = anchors.device
    if not isinstance(gt_boxes, Tensor) or gt_boxes.dim() != 2 or gt_boxes.shape[1] != 4:
        fail(f"gt_boxes must be a (I, 4) tensor, got {_describe(gt_boxes)}")
    if not gt_boxes.is_floating_point():
        fail(f"gt_boxes must be floating point, got {gt_boxes.dtype}")
    num_gts = gt_boxes.shape[0]
    if gt_ignore is None:
        gt_ignore = torch.zeros(num_gts, dtype=torch.bool, device=device)
    if not isinstance(gt_ignore, Tensor) or gt_ignore.shape != (num_gts,) or gt_ignore.dtype != torch.bool:
        fail(f"gt_ignore must be a bool tensor of shape ({num_gts},), got {_describe(gt_ignore)}")
    if gt_labels is None:
        gt_labels = torch.zeros(num_gts, dtype=torch.int64, device=device)
    if not isinstance(gt_labels, Tensor) or gt_labels.shape != (num_gts,) or gt_labels.dtype != torch.int64:
        fail(f"gt_labels must be an int64 tensor of shape ({num_gts},), got {_describe(gt_labels)}")
    if cls_logits is not None:
        if not isinstance(cls_logits, Tensor) or cls_logits.dim() != 2 or cls_logits.shape[0] != num_anchors:
            fail(f"cls_logits must be a ({num_anchors}, C) tensor, got {_describe(cls_logits)}")
        if num_gts and (int(gt_labels.min()) < 0 or int(gt_labels.max()) >= cls_logits.shape[1]):
            fail(f"gt_labels must lie in [0, {cls_logits.shape[1]}) (ignore GTs count as their class)")
        if not torch.isfinite(cls_logits).all():
            fail("cls_logits contains NaN or infinite values")
    if box_pred is not None:
        if not isinstance(box_pred, Tensor) or box_pred.shape != (num_anchors, 4):
            fail(f"box_pred must be a ({num_anchors}, 4) tensor of decoded xyxy boxes, got "
                 f"{_describe(box_pred)}")
        if not torch.isfinite(box_pred).all():
            fail("box_pred contains NaN or infinite values")
    for name, tensor in (("gt_boxes", gt_boxes), ("gt_ignore", gt_ignore), ("gt_labels", gt_labels),
                         ("cls_logits", cls_logits), ("box_pred", box_pred)):
        if tensor is not None and tensor.device != device:
            fail(f"{name} is on {tensor.device} but anchors are on {device}")
    if not torch.isfinite(gt_boxes).all():
        fail("gt_boxes contains NaN or infinite values")
    if num_gts and bool(((gt_boxes[:, 2] < gt_boxes[:, 0]) | (gt_boxes[:, 3] < gt_boxes[:, 1])).any()):
        fail("gt_boxes must be xyxy with x2 >= x1 and y2 >= y1")
    levels = None
    if num_anchors_per_level is not None:
        levels = tuple(int(n) for n in num_anchors_per_level)
        if sum(levels) != num_anchors or any(n < 0 for n in levels):
            fail(f"num_anchors_per_level {list(levels)} does not add up to the {num_anchors} anchors")
    stride_tuple = None
    if strides is not None:
        stride_tuple = tuple(float(s) for s in strides)
        if levels is not None and len(stride_tuple) != len(levels):
            fail(f"got {len(stride_tuple)} strides for {len(levels)} levels")
        if any(s <= 0 for s in stride_tuple):
            fail(f"strides must be positive, got {list(stride_tuple)}")
    return AssignInputs(anchors, gt_boxes, gt_ignore, gt_labels, cls_logits, box_pred, levels,
                        stride_tuple)


def _describe(value) -> str:
    if isinstance(value, Tensor):
        return f"{value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


# --------------------------------------------------------------------------- base class

class Assigner(abc.ABC):
    """Base class: validates inputs, handles the empty cases, runs without gradient.

    Subclasses implement :meth:`_assign` for I >= 1 GTs and J >= 1 anchors and set
    ``needs_predictions`` when they read ``cls_logits``/``box_pred``.
    """

    name: str = "?"
    needs_predictions: bool = False
    needs_levels: bool = False

    def assign(self, anchors: Tensor, gt_boxes: Tensor, gt_ignore: Tensor | None = None,
               cls_logits: Tensor | None = None, box_pred: Tensor | None = None, *,
               num_anchors_per_level: Sequence[int] | None = None,
               strides: Sequence[float] | None = None,
               gt_labels: Tensor | None = None) -> Assignment:
        """Assign the anchors of one image.

        Args:
            anchors: float (J, 4) xyxy anchor boxes, or (J, 2) points (x, y). A point
                anchor may also be a degenerate box (x1 = x2, y1 = y2). All FPN levels
                concatenated, level by level.
            gt_boxes: float (I, 4) xyxy GT boxes (pixels of the network input).
            gt_ignore: bool (I,) True for ignore boxes; None means no ignore boxes.
            cls_logits: float (J, C) raw classification logits (cost-based assigners).
            box_pred: float (J, 4) decoded predicted boxes, xyxy (cost-based assigners).
            num_anchors_per_level: anchors per FPN level, adding up to J.
            strides: stride of every FPN level, same length as num_anchors_per_level.
            gt_labels: int64 (I,) class index per GT; None means class 0 (person) for all,
                ignore GTs included.

        Returns:
            :class:`Assignment` on the anchors' device. The inputs are never modified.
        """
        inputs = _check_inputs(anchors, gt_boxes, gt_ignore, cls_logits, box_pred,
                               num_anchors_per_level, strides, gt_labels)
        if self.needs_predictions and (cls_logits is None or box_pred is None):
            raise ValueError(f"the {self.name} assigner needs cls_logits and box_pred")
        if self.needs_levels:
            inputs.require_levels()
            inputs.require_strides()
        if inputs.num_gts == 0 or inputs.num_anchors == 0:
            return empty_assignment(inputs.num_anchors, anchors.device)
        with torch.no_grad():
            return self._assign(inputs)

    @abc.abstractmethod
    def _assign(self, inputs: AssignInputs) -> Assignment:
        """Assign with I >= 1 and J >= 1 (inputs already validated)."""

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in vars(self).items()
                             if not key.startswith("_"))
        return f"{type(self).__name__}({settings})"


def empty_assignment(num_anchors: int, device: torch.device | str) -> Assignment:
    """All anchors negative, no candidates (no GT in the image, or no anchors)."""
    return Assignment(
        matched_gt=torch.full((num_anchors,), NEGATIVE, dtype=torch.int64, device=device),
        num_candidates=torch.zeros(num_anchors, dtype=torch.int64, device=device),
    )
