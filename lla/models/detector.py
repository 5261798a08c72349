"""One dense detector for every variant: backbone + head + assigner + loss + postprocess.

The shape follows detectron2's ``DenseDetector``: this class owns preprocessing
(normalise, pad), the backbone/head pass, the per-level flattening (done by the head)
and box decoding. Variants differ only in the parts handed to the constructor --
anchors, head options, assigner, loss and inference settings -- never in a copied
forward pass.

Inputs:
    images: a list of N float tensors (3, H_i, W_i), RGB in [0, 1], already resized by
        the data pipeline (or one (N, 3, H, W) tensor of equally sized images).
    targets (training): one dict per image with
        ``boxes`` (n, 4) float xyxy valid persons in input pixels,
        ``ignore_boxes`` (m, 4) float xyxy ignore regions (optional),
        ``labels`` (n,) int64 (optional; default 0 = person).

Outputs:
    training: a dict of scalar losses ``loss_cls``, ``loss_box`` [, ``loss_carl``][, ``loss_aux``]
        (plus :class:`TrainingDiagnostics` with ``return_assignments=True``);
    inference: one dict per image ``boxes`` (D, 4) xyxy in original-image pixels,
        ``scores`` (D,), ``labels`` (D,). Pass the dataset's ``orig_size`` and ``scale`` as
        ``original_sizes`` / ``scales``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lla.assign.base import Assigner, Assignment
from lla.models.anchors import AnchorGenerator, Anchors
from lla.models.backbone import BackboneFPN
from lla.models.heads import DenseHead, HeadOutputs
from lla.models.losses import ImageTargets, LossConfig, dense_detection_loss
from lla.models.postprocess import PostprocessConfig, postprocess_image


@dataclass
class TrainingDiagnostics:
    """What the analyses (AAR, FPN-level allocation, positives over training) need.

    Attributes:
        anchors: the batch's :class:`Anchors` (boxes, centres, level index, strides).
        assignments: one :class:`Assignment` per image (matched_gt, num_candidates, weights).
        targets: one :class:`ImageTargets` per image (GT boxes with the ignore flag,
            the indices ``matched_gt`` refers to).
        normalizer: the loss normaliser of the batch (averaged over ranks, >= 1).
    """

    anchors: Anchors
    assignments: list[Assignment]
    targets: list[ImageTargets]
    normalizer: float


class DenseDetector(nn.Module):
    """Args:
        backbone: body + FPN producing P3..P7.
        head: the dense head (its ``box_output`` must match ``box_coder``).
        anchor_generator: anchors / points of the levels (explicit strides).
        box_coder: decodes head box outputs against anchors.
        assigner: label assigner (``lla.assign``).
        loss_cfg: :class:`LossConfig`.
        postprocess_cfg: :class:`PostprocessConfig`.
        pixel_mean, pixel_std: per-channel normalisation of [0, 1] RGB input.
        size_divisibility: pad the batch to a multiple of this (128 keeps every level exact).
    """

    def __init__(self, *, backbone: BackboneFPN, head: DenseHead,
                 anchor_generator: AnchorGenerator, box_coder, assigner: Assigner,
                 loss_cfg: LossConfig, postprocess_cfg: PostprocessConfig,
                 pixel_mean: Sequence[float], pixel_std: Sequence[float],
                 size_divisibility: int = 128):
        super().__init__()
        if head.num_anchors != anchor_generator.num_anchors_per_location:
            raise ValueError(f"head predicts {head.num_anchors} anchors per location, the anchor "
                             f"generator makes {anchor_generator.num_anchors_per_location}")
        if head.strides != anchor_generator.strides:
            raise ValueError(f"head strides {head.strides} != anchor strides "
                             f"{anchor_generator.strides}")
        self.backbone = backbone
        self.head = head
        self.anchor_generator = anchor_generator
        self.box_coder = box_coder
        self.assigner = assigner
        self.loss_cfg = loss_cfg
        self.postprocess_cfg = postprocess_cfg
        self.size_divisibility = int(size_divisibility)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), persistent=False)

    # ------------------------------------------------------------------ shared pass

    def preprocess(self, images: Sequence[Tensor] | Tensor) -> tuple[Tensor, list[tuple[int, int]]]:
        """Normalise and zero-pad (bottom/right) to a multiple of ``size_divisibility``.

        Returns the batch (N, 3, H, W) and each image's (h, w) before padding.
        """
        if isinstance(images, Tensor):
            if images.dim() != 4:
                raise ValueError(f"images: expected (N, 3, H, W), got shape {tuple(images.shape)}")
            images = list(images)
        if not images:
            raise ValueError("images: empty batch")
        sizes = []
        for i, img in enumerate(images):
            if img.dim() != 3 or img.shape[0] != 3 or not img.is_floating_point():
                raise ValueError(f"images[{i}]: expected a float (3, H, W) tensor, got "
                                 f"{img.dtype} {tuple(img.shape)}")
            sizes.append((int(img.shape[1]), int(img.shape[2])))
        div = self.size_divisibility
        pad_h = -(-max(h for h, _ in sizes) // div) * div
        pad_w = -(-max(w for _, w in sizes) // div) * div
        batch = torch.stack([
            F.pad((img.to(self.pixel_mean.device) - self.pixel_mean) / self.pixel_std,
                  (0, pad_w - img.shape[2], 0, pad_h - img.shape[1]))
            for img in images])
        return batch, sizes

    def run_head(self, batch: Tensor) -> tuple[HeadOutputs, Anchors, Tensor]:
        """Backbone + head on a padded batch.

        Returns head outputs (N, J, ·), the anchors (J rows) and the decoded boxes (N, J, 4).
        """
        features = self.backbone(batch)
        outputs = self.head(features)
        anchors = self.anchor_generator([tuple(f.shape[-2:]) for f in features],
                                        device=batch.device)
        n, j, _ = outputs.box.shape
        anchor_boxes = anchors.boxes.to(outputs.box.dtype)
        decoded = self.box_coder.decode(outputs.box.reshape(n * j, 4),
                                        anchor_boxes.repeat(n, 1)).view(n, j, 4)
        return outputs, anchors, decoded

    def forward(self, images: Sequence[Tensor] | Tensor, targets: Sequence[dict] | None = None, *,
                original_sizes: Sequence[tuple[int, int]] | None = None,
                scales: Sequence[tuple[float, float]] | None = None,
                return_assignments: bool = False):
        """Losses when ``targets`` are given, detections otherwise (see the module docstring)."""
        if targets is not None:
            return self.compute_losses(images, targets, return_assignments=return_assignments)
        return self.predict(images, original_sizes, scales)

    # ------------------------------------------------------------------ training

    def compute_losses(self, images: Sequence[Tensor] | Tensor, targets: Sequence[dict], *,
                       return_assignments: bool = False):
        """Assign every image's anchors, then the one loss path of :mod:`lla.models.losses`."""
        batch, _ = self.preprocess(images)
        if len(targets) != batch.shape[0]:
            raise ValueError(f"{len(targets)} targets for {batch.shape[0]} images")
        image_targets = [to_image_targets(t, i, batch.device) for i, t in enumerate(targets)]
        outputs, anchors, decoded = self.run_head(batch)
        assignments = self.assign(outputs, anchors, decoded, image_targets)
        losses, normalizer = dense_detection_loss(
            cls_logits=outputs.cls_logits, box_out=outputs.box, pred_boxes=decoded,
            aux_logits=outputs.aux, aux_kind=self.head.aux_kind, anchors=anchors.boxes,
            targets=image_targets, assignments=assignments, box_coder=self.box_coder,
            cfg=self.loss_cfg)
        if return_assignments:
            return losses, TrainingDiagnostics(anchors, assignments, image_targets,
                                               float(normalizer))
        return losses

    def assign(self, outputs: HeadOutputs, anchors: Anchors, decoded: Tensor,
               targets: Sequence[ImageTargets]) -> list[Assignment]:
        """One :class:`Assignment` per image; predictions are passed detached, in float32."""
        anchor_input = anchors.centers if anchors.is_point else anchors.boxes
        result = []
        for i, tgt in enumerate(targets):
            result.append(self.assigner.assign(
                anchor_input, tgt.boxes, tgt.ignore,
                outputs.cls_logits[i].detach().float(), decoded[i].detach().float(),
                num_anchors_per_level=anchors.num_per_level, strides=anchors.level_strides,
                gt_labels=tgt.labels))
        return result

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def predict(self, images: Sequence[Tensor] | Tensor,
                original_sizes: Sequence[tuple[int, int]] | None = None,
                scales: Sequence[tuple[float, float]] | None = None) -> list[dict[str, Tensor]]:
        """Detections per image.

        Args:
            original_sizes: per image (h0, w0) (the dataset's ``orig_size``): boxes are mapped
                back to the original image and clipped to it. None keeps input pixels.
            scales: per image (sx, sy) = resized / original (the dataset's ``scale``); exact
                factors instead of the ratio of the rounded sizes. Needs ``original_sizes``.
        """
        batch, sizes = self.preprocess(images)
        if original_sizes is not None and len(original_sizes) != len(sizes):
            raise ValueError(f"{len(original_sizes)} original sizes for {len(sizes)} images")
        if scales is not None and (original_sizes is None or len(scales) != len(sizes)):
            raise ValueError("scales need original_sizes and one (sx, sy) per image")
        outputs, anchors, _ = self.run_head(batch)
        return [postprocess_image(
            cls_logits=outputs.cls_logits[i], box_out=outputs.box[i],
            aux_logits=None if outputs.aux is None else outputs.aux[i],
            anchors=anchors.boxes, num_per_level=anchors.num_per_level,
            box_coder=self.box_coder, image_size=sizes[i],
            original_size=None if original_sizes is None else tuple(int(v) for v in original_sizes[i]),
            scale=None if scales is None else tuple(float(v) for v in scales[i]),
            cfg=self.postprocess_cfg) for i in range(len(sizes))]


def to_image_targets(target: dict, index: int, device) -> ImageTargets:
    """Concatenate ``boxes`` and ``ignore_boxes`` of one image with an ignore flag."""
    def boxes_of(key: str) -> Tensor:
        value = target.get(key)
        if value is None:
            return torch.zeros((0, 4), device=device)
        value = torch.as_tensor(value, dtype=torch.float32, device=device)
        if value.numel() == 0:
            return value.reshape(0, 4)
        if value.dim() != 2 or value.shape[1] != 4:
            raise ValueError(f"targets[{index}]['{key}']: expected (n, 4) xyxy boxes, "
                             f"got shape {tuple(value.shape)}")
        return value

    if "boxes" not in target:
        raise ValueError(f"targets[{index}]: missing 'boxes'")
    valid, ignore = boxes_of("boxes"), boxes_of("ignore_boxes")
    labels = target.get("labels")
    labels = (torch.zeros(valid.shape[0], dtype=torch.int64, device=device) if labels is None
              else torch.as_tensor(labels, dtype=torch.int64, device=device).reshape(-1))
    if labels.shape[0] != valid.shape[0]:
        raise ValueError(f"targets[{index}]: {labels.shape[0]} labels for {valid.shape[0]} boxes")
    return ImageTargets(
        boxes=torch.cat([valid, ignore]),
        ignore=torch.cat([torch.zeros(valid.shape[0], dtype=torch.bool, device=device),
                          torch.ones(ignore.shape[0], dtype=torch.bool, device=device)]),
        labels=torch.cat([labels, torch.zeros(ignore.shape[0], dtype=torch.int64, device=device)]))
