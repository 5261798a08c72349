"""The one loss entry point of every dense detector variant.

:func:`dense_detection_loss` gathers the batch (:mod:`.batch`), computes the normalisers
with one all-reduce (:mod:`.normalizer`), then calls the term functions the ``loss``
block selects:

====================  ==========================================  =======================
key                   term                                        chosen by
====================  ==========================================  =======================
``loss_cls``          focal loss, hard or soft targets            always (soft: Noisy Anchor's
                      (:mod:`.classification`); ISR-P             assignment); ``isr``
                      re-weighting of positives (:mod:`.pisa`)
``loss_box``          per-positive box loss (:mod:`.box`),        ``box``, ``box_weighting``,
                      optionally quality-weighted                 ``box_weighting_normalizer``
``loss_carl``         CARL (:mod:`.pisa`)                         ``carl``
``loss_aux``          centerness / IoU-branch BCE                 the head's ``aux``
                      (:mod:`.auxiliary`)
====================  ==========================================  =======================

``mode: free_anchor`` replaces all of them by FreeAnchor's bag losses
(:mod:`.free_anchor`; keys ``loss_cls`` and ``loss_box``).
"""

from __future__ import annotations

from torch import Tensor

from lla.assign.base import Assignment

from .auxiliary import auxiliary_loss
from .batch import ImageTargets, check_batch, gather_batch
from .box import box_losses, box_quality
from .classification import classification_losses
from .config import LossConfig
from .free_anchor import free_anchor_loss
from .normalizer import batch_normalizers, normalized_sum
from .pisa import carl_loss, isr_p_reweighted


def dense_detection_loss(*, cls_logits: Tensor, box_out: Tensor, pred_boxes: Tensor,
                         aux_logits: Tensor | None, aux_kind: str | None, anchors: Tensor,
                         targets: list[ImageTargets], assignments: list[Assignment],
                         box_coder, cfg: LossConfig) -> tuple[dict[str, Tensor], Tensor]:
    """Loss of one batch.

    Args:
        cls_logits: (N, J, C) class logits.
        box_out: (N, J, 4) raw box output (deltas or ltrb); used by smooth-L1.
        pred_boxes: (N, J, 4) decoded xyxy boxes (IoU-type losses, IoU-branch target).
        aux_logits: (N, J) centerness / IoU-branch logits, or None.
        aux_kind: None, "centerness" or "iou".
        anchors: (J, 4) xyxy anchor boxes (points as degenerate boxes).
        targets: per image :class:`ImageTargets`.
        assignments: per image :class:`Assignment` over the J anchors.
        box_coder: the coder of ``box_out`` (encodes smooth-L1 targets).
        cfg: :class:`LossConfig`.

    Returns:
        ({"loss_cls", "loss_box"[, "loss_carl"][, "loss_aux"]} weighted scalar losses, the
        scalar normaliser of the classification term).
    """
    check_batch(cls_logits, targets, assignments)
    if cfg.mode == "free_anchor":
        return free_anchor_loss(cls_logits=cls_logits, box_out=box_out, pred_boxes=pred_boxes, anchors=anchors,
                                targets=targets, assignments=assignments, box_coder=box_coder,
                                settings=cfg.free_anchor, smooth_l1_beta=cfg.smooth_l1_beta,
                                cls_weight=cfg.cls_weight, box_weight=cfg.box_weight)
    batch = gather_batch(cls_logits=cls_logits, pred_boxes=pred_boxes, anchors=anchors, targets=targets,
                         assignments=assignments, normalizer=cfg.normalizer)
    positives = batch.positives
    quality = box_quality(cfg.box_weighting, positives)                      # (P,) or None
    divide_by_weights = quality is not None and cfg.box_weighting_normalizer == "weight_sum"
    normalizer, box_normalizer = batch_normalizers(batch.count, quality.sum() if divide_by_weights else None)

    cls_losses = classification_losses(batch.rows, cfg.focal_alpha, cfg.focal_gamma)
    cls_weights = batch.rows.weights
    if cfg.isr is not None:
        cls_weights = isr_p_reweighted(cls_weights, cls_losses, positives, cfg.isr)
    losses = {"loss_cls": normalized_sum(cfg.cls_weight, cls_losses, cls_weights, normalizer)}

    per_box = box_losses(cfg.box, positives, box_out=box_out, box_coder=box_coder,
                         smooth_l1_beta=cfg.smooth_l1_beta)
    box_weights = positives.weights if quality is None else positives.weights * quality
    losses["loss_box"] = normalized_sum(cfg.box_weight, per_box, box_weights, box_normalizer)
    if cfg.carl is not None:
        losses["loss_carl"] = carl_loss(cls_logits, positives, per_box, cfg.carl, scale=cfg.box_weight,
                                        normalizer=normalizer)
    if aux_kind is not None:
        losses["loss_aux"] = auxiliary_loss(aux_kind, aux_logits, positives, scale=cfg.aux_weight,
                                            normalizer=normalizer)
    return losses, normalizer
