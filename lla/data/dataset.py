"""The training/evaluation Dataset over a converted dataset json, and the batch collate.

``CrowdDataset[i]`` returns ``(image, target)``:

- ``image``: float32 (3, H, W), RGB in [0, 1] (normalisation is the model's job), resized
  so the short side is ``min_size`` and the long side at most ``max_size``; in training
  flipped horizontally with probability ``flip_prob``.
- ``target`` (a dict; N valid persons, M ignore boxes, all boxes xyxy in resized-image pixels):

  ============== ============= =====================================================
  boxes          float32 (N,4) full-body boxes of valid persons, clipped to the image
  labels         int64 (N,)    category id (1 = person)
  vis_boxes      float32 (N,4) visible boxes of the same persons, same transform
  annotation_ids int64 (N,)    the json annotation ids of those persons
  ignore_boxes   float32 (M,4) ignore boxes (CrowdHuman mask / extra.ignore, CityPersons
                               class != 1), same transform
  image_id       int           the json image id
  orig_size      int64 (2,)    (H0, W0) of the file
  size           int64 (2,)    (H, W) after resizing
  scale          float64 (2,)  (W / W0, H / H0): x and y factors, original → resized
  flipped        bool          whether this sample was mirrored
  ============== ============= =====================================================

Boxes are scaled, flipped, clipped to the image, and removed when empty after clipping.
An image without boxes gives (0, 4) tensors. Map a detection back to original pixels with
``x / scale[0]`` and ``y / scale[1]`` (after un-flipping with ``W - x`` if ``flipped``).

Augmentation is a pure function of ``(seed, epoch, index)`` (see :meth:`set_epoch`): a
resumed run, or any DataLoader worker, draws the same flips.

``cache_images=True`` keeps every image decoded and resized (uint8, before the flip) in
memory after its first use, so later epochs skip the JPEG decoding and the resize; the
samples are bit-identical to uncached ones. The cache lives in the process that reads the
dataset: it pays off with ``num_workers=0`` (or persistent workers), and costs
``3 × H × W`` bytes per image (synthcrowd-mini at 256 × 128: 157 MB for 1,600 images).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lla.data import transforms as T
from lla.data.imagesize import read_image_size
from lla.errors import DataError
from lla.io import read_json

_TORCHVISION_IO_DEPRECATION = "The image decoding and encoding capabilities of TorchVision"


def decode_rgb(path: Path) -> Tensor:
    """uint8 (3, H, W) RGB image from a JPEG or PNG file (grey and RGBA converted to RGB)."""
    from torchvision.io import ImageReadMode, decode_image, read_file

    try:
        with warnings.catch_warnings():
            # torchvision 0.29 flags its image codecs as deprecated in favour of TorchCodec;
            # they remain the pinned, tested decoder here.
            warnings.filterwarnings("ignore", message=_TORCHVISION_IO_DEPRECATION,
                                    category=DeprecationWarning)
            return decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    except (RuntimeError, OSError) as e:
        if not path.is_file():
            raise DataError(path, "image file not found") from None
        raise DataError(path, f"cannot decode the image: {e}") from None


def _xywh_to_xyxy(boxes: list[list[float]]) -> np.ndarray:
    """(K, 4) float32 xyxy array from a list of [x, y, w, h] (shape (0, 4) when empty)."""
    array = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    array[:, 2:] += array[:, :2]
    return array


class ImageRecord(NamedTuple):
    """What the dataset keeps per image (boxes xyxy in original pixels, unclipped)."""

    image_id: int
    path: Path
    width: int
    height: int
    boxes: np.ndarray           # (N, 4) float32, valid persons
    vis_boxes: np.ndarray       # (N, 4) float32
    annotation_ids: np.ndarray  # (N,) int64
    ignore_boxes: np.ndarray    # (M, 4) float32


def load_records(json_path: str | Path) -> list[ImageRecord]:
    """Per-image records of a converted dataset json, in the json's image order."""
    json_path = Path(json_path)
    data = read_json(json_path)
    try:
        image_root = json_path.parent / data["info"]["image_root"]
        images = data["images"]
        slots: dict[int, dict[str, list]] = {
            image["id"]: {"boxes": [], "vis": [], "ids": [], "ignore": []} for image in images}
        for ann in data["annotations"]:
            if ann["image_id"] not in slots:
                raise DataError(json_path, f"annotation {ann['id']} refers to unknown image "
                                           f"{ann['image_id']}")
            slot = slots[ann["image_id"]]
            if ann["ignore"]:
                slot["ignore"].append(ann["bbox"])
            else:
                slot["boxes"].append(ann["bbox"])
                slot["vis"].append(ann["vis_box"])
                slot["ids"].append(ann["id"])
        records = []
        for image in images:
            slot = slots[image["id"]]
            records.append(ImageRecord(
                image_id=image["id"], path=image_root / image["file_name"],
                width=int(image["width"]), height=int(image["height"]),
                boxes=_xywh_to_xyxy(slot["boxes"]), vis_boxes=_xywh_to_xyxy(slot["vis"]),
                annotation_ids=np.asarray(slot["ids"], dtype=np.int64),
                ignore_boxes=_xywh_to_xyxy(slot["ignore"])))
    except (KeyError, TypeError) as e:
        raise DataError(json_path, f"not a converted dataset json (missing or malformed "
                                   f"key {e})") from None
    return records


class CrowdDataset(Dataset):
    """Images and person boxes of one converted split (see the module docstring for outputs).

    Args:
        json_path: a dataset json written by ``lla data convert`` or ``lla data synth``.
        train: enables the random horizontal flip.
        min_size, max_size: resize target of the short side and cap of the long side.
        flip_prob: probability of a horizontal flip in training.
        seed: base seed of the augmentation draws.
        records: the images to use instead of ``json_path``'s, which then only names where
            they came from (:meth:`from_images`).
        cache_images: keep decoded, resized images in memory (see the module docstring).
    """

    def __init__(self, json_path: str | Path, *, train: bool, min_size: int, max_size: int,
                 flip_prob: float = 0.5, seed: int = 0, records: list[ImageRecord] | None = None,
                 cache_images: bool = False):
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
        if min_size <= 0 or max_size < min_size:
            raise ValueError(f"need 0 < min_size <= max_size, got {min_size}, {max_size}")
        self.json_path = Path(json_path)
        self.records = load_records(self.json_path) if records is None else records
        self.train = train
        self.min_size = min_size
        self.max_size = max_size
        self.flip_prob = flip_prob
        self.seed = seed
        self.epoch = 0
        self._image_cache: dict[int, Tensor] | None = {} if cache_images else None

    @classmethod
    def from_config(cls, json_path: str | Path, config: dict[str, Any], *, train: bool,
                    seed: int = 0, cache_images: bool = False) -> "CrowdDataset":
        """Build from the merged ``input`` block of params.yaml (``lla.config.section``)."""
        return cls(json_path, train=train, min_size=config["min_size"],
                   max_size=config["max_size"], flip_prob=config["flip_prob"], seed=seed,
                   cache_images=cache_images)

    @classmethod
    def from_images(cls, paths: Sequence[str | Path], config: dict[str, Any], *,
                    source: str | Path) -> "CrowdDataset":
        """Image files without annotations (image ids 0, 1, ... in ``paths`` order), resized
        as in evaluation; ``source`` names where they came from in messages. A file that is
        not an image is a :class:`DataError` naming it (sizes are read from the headers)."""
        empty = np.zeros((0, 4), dtype=np.float32)
        records = []
        for image_id, path in enumerate(paths):
            width, height = read_image_size(path)
            records.append(ImageRecord(image_id=image_id, path=Path(path), width=width,
                                       height=height, boxes=empty, vis_boxes=empty,
                                       annotation_ids=np.zeros(0, dtype=np.int64),
                                       ignore_boxes=empty))
        return cls(source, train=False, min_size=config["min_size"], max_size=config["max_size"],
                   records=records)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch``. With ``persistent_workers=True`` a
        DataLoader keeps its workers' copies: recreate the loader's iterator per epoch."""
        self.epoch = epoch

    def aspect_ratios(self) -> list[float]:
        """Width / height of every image, from the json (no decoding), for batch grouping."""
        return [r.width / r.height for r in self.records]

    def flips(self, index: int) -> bool:
        """The flip decision for ``index`` in the current epoch (always False when not training)."""
        if not self.train or self.flip_prob == 0.0:
            return False
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return bool(rng.random() < self.flip_prob)

    def resized_image(self, index: int) -> Tensor:
        """uint8 (3, H, W): image ``index`` decoded and resized (from the cache when kept)."""
        if self._image_cache is not None and index in self._image_cache:
            return self._image_cache[index]
        record = self.records[index]
        image = decode_rgb(record.path)
        height0, width0 = image.shape[-2:]
        if (width0, height0) != (record.width, record.height):
            raise DataError(record.path, f"decoded size {width0}×{height0} differs from "
                                         f"{record.width}×{record.height} in {self.json_path}")
        image = T.resize_image(image, T.resized_size(height0, width0, min_size=self.min_size,
                                                     max_size=self.max_size))
        if self._image_cache is not None:
            self._image_cache[index] = image
        return image

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Any]]:
        record = self.records[index]
        image = self.resized_image(index)
        height0, width0 = record.height, record.width
        height, width = image.shape[-2:]
        scale_x, scale_y = width / width0, height / height0
        flipped = self.flips(index)
        if flipped:
            image = image.flip(-1)

        def transform(boxes: np.ndarray) -> Tensor:
            out = T.scale_boxes(torch.from_numpy(boxes), scale_x, scale_y)
            if flipped:
                out = T.hflip_boxes(out, width)
            return T.clip_boxes(out, height, width)

        boxes, vis_boxes = transform(record.boxes), transform(record.vis_boxes)
        keep = T.nonempty(boxes)
        ignore_boxes = transform(record.ignore_boxes)
        ignore_boxes = ignore_boxes[T.nonempty(ignore_boxes)]
        target = {
            "boxes": boxes[keep],
            "labels": torch.ones(int(keep.sum()), dtype=torch.int64),
            "vis_boxes": vis_boxes[keep],
            "annotation_ids": torch.from_numpy(record.annotation_ids)[keep],
            "ignore_boxes": ignore_boxes,
            "image_id": record.image_id,
            "orig_size": torch.tensor([height0, width0], dtype=torch.int64),
            "size": torch.tensor([height, width], dtype=torch.int64),
            "scale": torch.tensor([scale_x, scale_y], dtype=torch.float64),
            "flipped": flipped,
        }
        return image.float().div_(255.0), target


class Batch(NamedTuple):
    """A collated batch.

    images: float32 (B, 3, Hp, Wp), each image at the top-left, zeros elsewhere; Hp, Wp
        are the batch maxima rounded up to a multiple of ``size_divisible``.
    image_sizes: the (H, W) of each image inside the padding.
    targets: the per-image target dicts, unchanged.
    """

    images: Tensor
    image_sizes: list[tuple[int, int]]
    targets: list[dict[str, Any]]


class PadCollate:
    """``collate_fn`` padding a batch to a common size divisible by ``size_divisible``.

    128 (the P7 stride) makes every FPN level's grid exact. Padding is 0 in [0, 1] pixel
    space; a model normalising inputs should use ``image_sizes`` to know the valid region.
    A plain class (not a closure) so DataLoader workers can pickle it.
    """

    def __init__(self, size_divisible: int = 128):
        if size_divisible < 1:
            raise ValueError(f"size_divisible must be >= 1, got {size_divisible}")
        self.size_divisible = size_divisible

    def __call__(self, batch: list[tuple[Tensor, dict[str, Any]]]) -> Batch:
        if not batch:
            raise ValueError("cannot collate an empty batch")
        images = [image for image, _ in batch]
        d = self.size_divisible
        padded_h = math.ceil(max(im.shape[-2] for im in images) / d) * d
        padded_w = math.ceil(max(im.shape[-1] for im in images) / d) * d
        out = images[0].new_zeros((len(images), images[0].shape[0], padded_h, padded_w))
        for k, image in enumerate(images):
            out[k, :, :image.shape[-2], :image.shape[-1]].copy_(image)
        return Batch(images=out, image_sizes=[tuple(im.shape[-2:]) for im in images],
                     targets=[target for _, target in batch])
