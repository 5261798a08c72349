"""Person / background crops of a detection split: the data of the backbone pretraining.

The paper's detectors start from an ImageNet-pretrained ResNet; the CPU profiles train a
tiny body that no public weights exist for. ``lla pretrain`` (:mod:`lla.engine.pretrain`)
stands in for ImageNet with a classification task on the detection training images:
square crops around persons (class 1) against crops of background (class 0).

* A **person crop** is a square of side ``context × max(w, h)`` of a valid person's full
  box, its centre jittered by up to ``jitter × side`` and its side by a factor in
  ``[1 / scale_jitter, scale_jitter]``; parts outside the image are zeros.
* A **background crop** has the side of a random person crop of the split and a uniform
  random position inside the image, drawn until it overlaps no person and no ignore box
  by more than ``max_overlap`` of that box's area (up to ``attempts`` tries; an image
  without such a place gives no background crop and the draw moves to another image).

Both are resized to ``size × size`` (bilinear, ``torchvision.ops.roi_align``) and flipped
horizontally with probability 1/2. A batch is a pure function of ``(seed, step)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lla.data.dataset import decode_rgb, load_records
from lla.errors import DataError

BACKGROUND, PERSON = 0, 1


@dataclass(frozen=True)
class CropSettings:
    """How crops are drawn (the ``pretrain`` block of params.yaml).

    Attributes:
        size: output side in pixels.
        context: crop side / the person box's longer side.
        jitter: centre shift, fraction of the crop side (uniform in [-jitter, jitter]).
        scale_jitter: side factor, log-uniform in [1 / scale_jitter, scale_jitter] (>= 1).
        background_fraction: expected share of background crops in a batch.
        max_overlap: a background crop may cover at most this fraction of any box.
        attempts: background positions tried per image.
    """

    size: int = 64
    context: float = 1.25
    jitter: float = 0.1
    scale_jitter: float = 1.15
    background_fraction: float = 0.5
    max_overlap: float = 0.2
    attempts: int = 20

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"crop size must be >= 8, got {self.size}")
        if self.context <= 0 or self.scale_jitter < 1 or not 0 <= self.jitter < 0.5:
            raise ValueError("need context > 0, scale_jitter >= 1, 0 <= jitter < 0.5")
        if not 0 <= self.background_fraction <= 1 or not 0 <= self.max_overlap <= 1:
            raise ValueError("background_fraction and max_overlap must lie in [0, 1]")
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")


def covered_fraction(crop: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Fraction of each box (K, 4) xyxy covered by the square ``crop`` (4,) xyxy -> (K,)."""
    if len(boxes) == 0:
        return np.zeros(0)
    width = (np.minimum(crop[2], boxes[:, 2]) - np.maximum(crop[0], boxes[:, 0])).clip(0)
    height = (np.minimum(crop[3], boxes[:, 3]) - np.maximum(crop[1], boxes[:, 1])).clip(0)
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clip(1e-6)
    return width * height / area


class CropSampler:
    """Batches of person / background crops from a converted dataset json.

    Args:
        json_path: the converted split (``lla data convert`` / ``lla data synth``).
        settings: :class:`CropSettings`.
        seed: base seed; batch ``step`` draws from ``numpy.random.default_rng([seed, step])``.
        cache_images: keep the decoded images in memory.

    ``batch(step, n)`` returns ``(images float32 (n, 3, size, size) in [0, 1], labels
    int64 (n,))``.
    """

    def __init__(self, json_path: str | Path, settings: CropSettings, *, seed: int = 0,
                 cache_images: bool = True):
        self.settings = settings
        self.seed = seed
        self.records = records = load_records(json_path)
        self._cache: dict[int, Tensor] | None = {} if cache_images else None
        self.person_index = [(i, k) for i, r in enumerate(records) for k in range(len(r.boxes))
                             if r.boxes[k, 2] > r.boxes[k, 0] and r.boxes[k, 3] > r.boxes[k, 1]]
        if not self.person_index:
            raise DataError(json_path, "no person boxes to crop")
        self._blockers = [np.concatenate([r.boxes, r.ignore_boxes]).astype(np.float64)
                          for r in records]

    def image(self, index: int) -> Tensor:
        """float32 (1, 3, H, W) in [0, 1]: image ``index`` as stored (the crops' source)."""
        if self._cache is not None and index in self._cache:
            pixels = self._cache[index]
        else:
            record = self.records[index]
            pixels = decode_rgb(record.path)
            if tuple(pixels.shape[-2:]) != (record.height, record.width):
                raise DataError(record.path, f"decoded size {tuple(pixels.shape[-2:])} differs "
                                             f"from the json's {(record.height, record.width)}")
            if self._cache is not None:
                self._cache[index] = pixels
        return pixels.float().div_(255.0)[None]

    def __len__(self) -> int:
        """Person crops in one pass over the split."""
        return len(self.person_index)

    def _person_crop(self, rng: np.random.Generator, image: int, box: np.ndarray) -> np.ndarray:
        s = self.settings
        side = s.context * max(box[2] - box[0], box[3] - box[1])
        side *= float(np.exp(rng.uniform(-np.log(s.scale_jitter), np.log(s.scale_jitter))))
        cx = (box[0] + box[2]) / 2 + rng.uniform(-s.jitter, s.jitter) * side
        cy = (box[1] + box[3]) / 2 + rng.uniform(-s.jitter, s.jitter) * side
        return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])

    def _background_crop(self, rng: np.random.Generator, image: int, side: float) -> np.ndarray | None:
        record = self.records[image]
        side = min(side, record.width, record.height)
        for _ in range(self.settings.attempts):
            x = rng.uniform(0, record.width - side)
            y = rng.uniform(0, record.height - side)
            crop = np.array([x, y, x + side, y + side])
            if not (covered_fraction(crop, self._blockers[image]) > self.settings.max_overlap).any():
                return crop
        return None

    def batch(self, step: int, size: int) -> tuple[Tensor, Tensor]:
        from torchvision.ops import roi_align

        rng = np.random.default_rng([self.seed, step])
        records = self.records
        crops: list[tuple[int, np.ndarray, int]] = []
        while len(crops) < size:
            image, k = self.person_index[rng.integers(len(self.person_index))]
            person = self._person_crop(rng, image, records[image].boxes[k].astype(np.float64))
            if rng.random() >= self.settings.background_fraction:
                crops.append((image, person, PERSON))
                continue
            other = int(rng.integers(len(records)))
            background = self._background_crop(rng, other, person[2] - person[0])
            if background is not None:
                crops.append((other, background, BACKGROUND))
        out = torch.empty(size, 3, self.settings.size, self.settings.size)
        for row, (image, crop, _) in enumerate(crops):
            box = torch.tensor([[0.0, *crop]], dtype=torch.float32)
            out[row] = roi_align(self.image(image), box, output_size=self.settings.size, spatial_scale=1.0,
                                 sampling_ratio=2, aligned=True)[0]
        flip = torch.from_numpy(rng.random(size) < 0.5)
        out[flip] = out[flip].flip(-1)
        labels = torch.tensor([label for _, _, label in crops], dtype=torch.int64)
        return out, labels
