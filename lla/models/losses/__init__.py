"""Losses of the dense detectors: one entry point, one module per term.

The detector calls ``dense_detection_loss(cls_logits=..., box_out=..., pred_boxes=...,
aux_logits=..., aux_kind=..., anchors=..., targets=..., assignments=..., box_coder=...,
cfg=LossConfig(**variant["loss"]))`` and gets ``(losses, normalizer)``.

Modules (each method's loss-side extra lives in one of them; its assignment side is in
:mod:`lla.assign`):

* :mod:`.dense` -- :func:`dense_detection_loss`, the entry point;
* :mod:`.config` -- :class:`LossConfig`, the ``loss`` block;
* :mod:`.batch` -- :class:`ImageTargets` and the gathering of rows and positives;
* :mod:`.normalizer` -- the batch normalisers (one all-reduce per batch);
* :mod:`.classification` -- focal loss, with soft targets for Noisy Anchor;
* :mod:`.box` -- the box losses and the centerness / IoU weighting (FCOS, ATSS, PAA);
* :mod:`.auxiliary` -- the centerness / IoU-branch BCE;
* :mod:`.pisa` -- PISA's ISR-P and CARL;
* :mod:`.free_anchor` -- FreeAnchor's bag losses;
* :mod:`.geometry` -- elementwise IoU and the FCOS centerness target.
"""

from .batch import ImageTargets
from .config import LossConfig
from .dense import dense_detection_loss

__all__ = ["ImageTargets", "LossConfig", "dense_detection_loss"]
