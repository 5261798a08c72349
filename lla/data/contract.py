"""The converted dataset json (our COCO-style contract) and the box checks both converters share.

One json per split::

    {"info": {"dataset", "split", "source", "image_root", "degenerate_dropped": {...}},
     "images": [{"id", "file_name", "width", "height", "record_id"}],
     "annotations": [{"id", "image_id", "category_id", "bbox", "vis_box", "head_box",
                      "vis_ratio", "height", "area", "ignore", "iscrowd"}],
     "categories": [{"id": 1, "name": "person"}]}

Boxes are ``[x, y, w, h]`` in original image pixels; ``bbox`` is the full-body box and is
NOT clipped to the image. Ids are 1-based, in annotation-file order.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Sequence

from lla.errors import DataError

PERSON_CATEGORY_ID = 1
CATEGORIES = [{"id": PERSON_CATEGORY_ID, "name": "person"}]


@dataclasses.dataclass
class DegenerateCounts:
    """Boxes dropped by a converter because they cannot be trained on or evaluated.

    zero_size: full box with zero width or height.
    outside_image: full box with positive size lying entirely outside the image.
    """

    zero_size: int = 0
    outside_image: int = 0

    def count(self, reason: str) -> None:
        """Count one dropped box; ``reason`` is a field name (see :func:`degenerate_reason`)."""
        setattr(self, reason, getattr(self, reason) + 1)

    @property
    def total(self) -> int:
        return self.zero_size + self.outside_image

    def as_dict(self) -> dict[str, int]:
        return {"zero_size": self.zero_size, "outside_image": self.outside_image}


@dataclasses.dataclass(frozen=True)
class Where:
    """The place a value came from, for error messages: a file plus a line or a record."""

    path: Path
    line: int | None = None
    record: str | None = None

    def error(self, message: str) -> DataError:
        return DataError(self.path, message, line=self.line, record=self.record)

    def __str__(self) -> str:
        text = str(self.path) if self.line is None else f"{self.path}:{self.line}"
        return text if self.record is None else f"{text} [{self.record}]"


_NUMBER_TYPES = (int, float)  # exact types: a JSON `true` (bool) is a typo, not a coordinate


def check_xywh(value: Any, what: str, where: Where) -> list[float]:
    """Validate ``[x, y, w, h]``: four finite numbers with ``w >= 0`` and ``h >= 0``.

    Returns the box as four floats; raises ``DataError`` at ``where`` otherwise.
    ``what`` names the box in the message (e.g. ``"gtboxes[2].fbox"``).
    """
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise where.error(f"{what} must be 4 numbers [x, y, w, h], got {value!r}")
    box = [float(v) for v in value if type(v) in _NUMBER_TYPES]
    if len(box) != 4 or not all(map(math.isfinite, box)):
        raise where.error(f"{what} must be 4 finite numbers [x, y, w, h], got {value!r}")
    if box[2] < 0 or box[3] < 0:
        raise where.error(f"{what} has negative width or height: {value!r}")
    return box


def degenerate_reason(box: Sequence[float], width: int, height: int) -> str | None:
    """Why a full box ``[x, y, w, h]`` (already checked) must be dropped, or ``None`` to keep it.

    ``"zero_size"`` when ``w == 0`` or ``h == 0``; ``"outside_image"`` when the box has no
    overlap of positive area with the ``width`` × ``height`` image (touching the border
    from outside counts as outside).
    """
    x, y, w, h = box
    if w == 0 or h == 0:
        return "zero_size"
    if x + w <= 0 or y + h <= 0 or x >= width or y >= height:
        return "outside_image"
    return None


def intersection_area(a: Sequence[float], b: Sequence[float]) -> float:
    """Area of the intersection of two ``[x, y, w, h]`` boxes (0 when they are disjoint)."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(iw, 0.0) * max(ih, 0.0)


def make_annotation(*, ann_id: int, image_id: int, bbox: list[float], vis_box: list[float],
                    head_box: list[float] | None, vis_ratio: float, ignore: bool) -> dict[str, Any]:
    """One ``annotations`` entry of the contract (``height``/``area`` from the full box)."""
    flag = int(bool(ignore))
    return {"id": ann_id, "image_id": image_id, "category_id": PERSON_CATEGORY_ID,
            "bbox": bbox, "vis_box": vis_box, "head_box": head_box,
            "vis_ratio": vis_ratio, "height": bbox[3], "area": bbox[2] * bbox[3],
            "ignore": flag, "iscrowd": flag}


def image_root_for(images_dir: Path, out_dir: Path) -> str:
    """``images_dir`` relative to ``out_dir`` (where the json lives), POSIX separators.

    Both are resolved first so the relative path is right even through symlinks; an
    absolute path is returned when no relative one exists (different Windows drives).
    """
    images_dir, out_dir = Path(images_dir).resolve(), Path(out_dir).resolve()
    try:
        return Path(os.path.relpath(images_dir, out_dir)).as_posix()
    except ValueError:
        return images_dir.as_posix()


def make_dataset(*, dataset: str, split: str, source: str, image_root: str,
                 images: list[dict[str, Any]], annotations: list[dict[str, Any]],
                 degenerate: DegenerateCounts) -> dict[str, Any]:
    return {"info": {"dataset": dataset, "split": split, "source": source,
                     "image_root": image_root, "degenerate_dropped": degenerate.as_dict()},
            "images": images, "annotations": annotations, "categories": list(CATEGORIES)}


def summary(data: dict[str, Any]) -> str:
    """One log line: images, boxes, ignore boxes, dropped degenerate boxes."""
    info = data["info"]
    n_ignore = sum(a["ignore"] for a in data["annotations"])
    dropped = info["degenerate_dropped"]
    return (f"{info['dataset']} {info['split']}: {len(data['images'])} images, "
            f"{len(data['annotations'])} boxes ({n_ignore} ignore); dropped "
            f"{sum(dropped.values())} degenerate boxes ({dropped['zero_size']} zero-size, "
            f"{dropped['outside_image']} outside the image)")
