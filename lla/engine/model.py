"""The detector of an experiment: built from its settings, loaded from a checkpoint, fed a batch.

Training, inference and the analyses of trained models all go through here, so they build
the same detector, feed it the same tensors and run it at the same precision:

* :func:`build_model`: the :class:`~lla.models.detector.DenseDetector` of a resolved
  :class:`~lla.engine.experiment.Experiment` (fresh weights);
* :func:`load_model`: the detector and experiment of a loaded checkpoint (``model_final.pt``
  or a training checkpoint), which stores its resolved experiment under ``config``;
* :func:`model_inputs`: a collated :class:`~lla.data.dataset.Batch` as the detector's inputs;
* :class:`Amp`: mixed precision (``train.amp``, ``train.amp_dtype``), on CUDA only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lla.config import DEFAULT_PARAMS, deep_merge
from lla.data.dataset import Batch
from lla.engine.experiment import Experiment
from lla.errors import DataError
from lla.models.build import detector_from_config

#: ``train.amp_dtype`` -> the autocast dtype; float16 also scales the gradients.
AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Amp:
    """Mixed precision of one process.

    Attributes:
        enabled: ``train.amp`` and a CUDA device (the CPU always runs in float32).
        dtype: the autocast dtype of ``train.amp_dtype`` (whether enabled or not).
    """

    enabled: bool
    dtype: torch.dtype

    @classmethod
    def from_train_settings(cls, train: dict[str, Any], device: torch.device) -> "Amp":
        """The precision of ``train`` (an experiment's train block) on ``device``.

        Raises:
            ValueError: ``amp_dtype`` is not a key of :data:`AMP_DTYPES`.
        """
        name = train.get("amp_dtype", "float16")
        if name not in AMP_DTYPES:
            raise ValueError(f"train.amp_dtype must be one of {list(AMP_DTYPES)}, got {name!r}")
        return cls(enabled=bool(train.get("amp", False)) and device.type == "cuda",
                   dtype=AMP_DTYPES[name])

    @property
    def scales_gradients(self) -> bool:
        """float16 needs a GradScaler (bfloat16 has float32's exponent range)."""
        return self.enabled and self.dtype == torch.float16

    def autocast(self, device: torch.device) -> torch.autocast:
        """The autocast context of a forward pass on ``device`` (a no-op when disabled)."""
        return torch.autocast(device_type=device.type, dtype=self.dtype, enabled=self.enabled)


#: no autocast: float32 throughout.
FULL_PRECISION = Amp(enabled=False, dtype=torch.float32)


def build_model(exp: Experiment, pretrained: bool = True) -> torch.nn.Module:
    """The detector of ``exp``, freshly initialised (a bad setting: :class:`DataError`).

    ``pretrained=False`` leaves the backbone's ImageNet weights unread (a checkpoint's
    weights replace them anyway)."""
    model = exp.model if pretrained else deep_merge(exp.model, {"backbone": {"weights": None}})
    try:
        return detector_from_config(model)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        message = f"missing setting {e}" if isinstance(e, KeyError) else str(e)
        raise DataError(DEFAULT_PARAMS, f"cannot build the detector of experiment "
                                        f"'{exp.name}' ({exp.variant}, {exp.profile}): {message}",
                        record=f"experiments.{exp.name}") from e


def load_model(state: dict[str, Any], device: torch.device) -> tuple[torch.nn.Module, Experiment]:
    """``(model on device in eval mode, its experiment)`` of a loaded checkpoint ``state``."""
    exp = Experiment.from_dict(state["config"])
    model = build_model(exp, pretrained=False)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), exp


def model_inputs(batch: Batch, device: torch.device) -> tuple[list[torch.Tensor], list[dict]]:
    """Per-image tensors (3, h, w) without the collate padding, and the model's targets.

    The detector normalises and pads itself; dataset labels are 1-based category ids,
    the detector's are 0-based class indices.
    """
    images = [batch.images[k, :, :h, :w].to(device, non_blocking=True)
              for k, (h, w) in enumerate(batch.image_sizes)]
    targets = [{"boxes": t["boxes"].to(device, non_blocking=True),
                "ignore_boxes": t["ignore_boxes"].to(device, non_blocking=True),
                "labels": (t["labels"] - 1).to(device, non_blocking=True)}
               for t in batch.targets]
    return images, targets
