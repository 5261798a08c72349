"""CrowdHuman `.odgt` annotations → the converted dataset json (see :mod:`lla.data.contract`).

Official layout: ``<root>/Images/<ID>.jpg`` and ``<root>/annotation_{train,val}.odgt``,
one JSON object per line::

    {"ID": "273271,c9db000d5146c15",
     "gtboxes": [{"tag": "person", "fbox": [x, y, w, h], "vbox": [...], "hbox": [...],
                  "extra": {"box_id": 0, "occ": 0, "ignore": 0}, "head_attr": {...}},
                 {"tag": "mask", "fbox": b, "vbox": b, "hbox": b, "extra": {"ignore": 1}}]}

Mapping to the contract, per box:
- ``bbox`` = ``fbox`` (unclipped), ``vis_box`` = ``vbox``, ``head_box`` = ``hbox`` (or null);
- ``ignore`` = 1 for ``tag == "mask"`` or ``extra.ignore == 1`` (what the CrowdHuman
  evaluator treats as ignore);
- ``vis_ratio`` = area(vbox ∩ fbox) / area(fbox).
The odgt has no image size: it is read from the JPEG header (cached, :mod:`lla.data.imagesize`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterator

from lla.data import contract
from lla.data.contract import DegenerateCounts, Where
from lla.data.imagesize import ImageSizeCache
from lla.errors import DataError

log = logging.getLogger(__name__)

DATASET_NAME = "crowdhuman"
IMAGES_DIR = "Images"
IMAGE_EXTENSION = ".jpg"
KNOWN_TAGS = ("person", "mask")  # "mask": an ignore region; CrowdHuman has no other tag


def annotation_path(root: str | Path, split: str) -> Path:
    return Path(root) / f"annotation_{split}.odgt"


def read_odgt(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)`` for every non-blank line of an ``.odgt`` file.

    Line numbers are 1-based. A line that is not valid JSON, or not a JSON object, raises
    ``DataError`` naming the file and the line.
    """
    path = Path(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise DataError(path, "annotation file not found") from None
    with f:
        for line_number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(path, f"not UTF-8 text: {e.reason}", line=line_number) from None
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(path, f"malformed JSON: {e.msg} (column {e.colno})",
                                line=line_number) from None
            if not isinstance(record, dict):
                raise DataError(path, f"expected a JSON object, got {type(record).__name__}",
                                line=line_number)
            yield line_number, record


def _record_id(record: dict[str, Any], where: Where) -> str:
    if "ID" not in record:
        raise where.error("missing key 'ID'")
    record_id = record["ID"]
    if not isinstance(record_id, str) or not record_id or "/" in record_id or "\\" in record_id \
            or record_id in (".", ".."):
        raise where.error(f"'ID' must be a non-empty file-name stem, got {record_id!r}")
    return record_id


def _ignore_flag(box: dict[str, Any], what: str, where: Where) -> bool:
    """True for a ``mask`` box or ``extra.ignore == 1``; checks ``tag`` and ``extra``."""
    tag = box.get("tag")
    if tag not in KNOWN_TAGS:
        raise where.error(f"{what} has unknown tag {tag!r} (expected one of {list(KNOWN_TAGS)})")
    extra = box.get("extra", {})
    if not isinstance(extra, dict):
        raise where.error(f"{what}.extra must be an object, got {extra!r}")
    flag = extra.get("ignore", 0)
    if isinstance(flag, bool) or flag not in (0, 1):
        raise where.error(f"{what}.extra.ignore must be 0 or 1, got {flag!r}")
    return tag == "mask" or flag == 1


def convert_record(record: dict[str, Any], *, image_id: int, first_ann_id: int,
                   width: int, height: int, where: Where,
                   degenerate: DegenerateCounts) -> list[dict[str, Any]]:
    """The contract annotations of one odgt record, ids from ``first_ann_id`` on.

    Checks every box (raises ``DataError`` at ``where``); boxes that are degenerate for a
    ``width`` × ``height`` image are dropped and counted in ``degenerate``.
    """
    if "gtboxes" not in record:
        raise where.error("missing key 'gtboxes'")
    gtboxes = record["gtboxes"]
    if not isinstance(gtboxes, list):
        raise where.error(f"'gtboxes' must be a list, got {type(gtboxes).__name__}")
    annotations = []
    for k, box in enumerate(gtboxes):
        what = f"gtboxes[{k}]"
        if not isinstance(box, dict):
            raise where.error(f"{what} must be an object, got {box!r}")
        ignore = _ignore_flag(box, what, where)
        for key in ("fbox", "vbox"):
            if key not in box:
                raise where.error(f"{what} has no '{key}'")
        fbox = contract.check_xywh(box["fbox"], f"{what}.fbox", where)
        vbox = contract.check_xywh(box["vbox"], f"{what}.vbox", where)
        hbox = None if box.get("hbox") is None else \
            contract.check_xywh(box["hbox"], f"{what}.hbox", where)
        reason = contract.degenerate_reason(fbox, width, height)
        if reason is not None:
            degenerate.count(reason)
            log.debug("%s: dropped %s (%s): fbox %s", where, what, reason, fbox)
            continue
        vis_ratio = contract.intersection_area(vbox, fbox) / (fbox[2] * fbox[3])
        annotations.append(contract.make_annotation(
            ann_id=first_ann_id + len(annotations), image_id=image_id, bbox=fbox,
            vis_box=vbox, head_box=hbox, vis_ratio=vis_ratio, ignore=ignore))
    return annotations


def convert_split(root: str | Path, split: str, out_dir: str | Path,
                  sizes: ImageSizeCache) -> dict[str, Any]:
    """Convert ``<root>/annotation_<split>.odgt`` to the contract json (returned, not written).

    ``out_dir`` is where the json will be written: ``info.image_root`` is relative to it.
    Raises ``DataError`` (file + 1-based line) for malformed lines, missing keys, unknown
    tags, invalid boxes, missing images and duplicate IDs, and for a file without records.
    """
    root = Path(root)
    path = annotation_path(root, split)
    images_dir = root / IMAGES_DIR
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    degenerate = DegenerateCounts()
    first_line_of: dict[str, int] = {}
    for line_number, record in read_odgt(path):
        where = Where(path, line=line_number)
        record_id = _record_id(record, where)
        if record_id in first_line_of:
            raise where.error(f"duplicate ID {record_id!r} (first on line "
                              f"{first_line_of[record_id]})")
        first_line_of[record_id] = line_number
        file_name = record_id + IMAGE_EXTENSION
        try:
            width, height = sizes.size(images_dir / file_name)
        except FileNotFoundError:
            raise where.error(f"image {IMAGES_DIR}/{file_name} not found in {root}") from None
        except DataError as e:  # not an image: name the record, not only the file
            raise where.error(f"image {IMAGES_DIR}/{file_name}: {e.reason}") from None
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": file_name, "width": width,
                       "height": height, "record_id": record_id})
        annotations += convert_record(record, image_id=image_id,
                                      first_ann_id=len(annotations) + 1, width=width,
                                      height=height, where=where, degenerate=degenerate)
    if not images:
        raise DataError(path, "no image record: the annotation file is empty")
    return contract.make_dataset(dataset=DATASET_NAME, split=split, source=path.name,
                                 image_root=contract.image_root_for(images_dir, out_dir),
                                 images=images, annotations=annotations, degenerate=degenerate)
