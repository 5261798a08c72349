"""CityPersons `.mat` annotations → the converted dataset json (see :mod:`lla.data.contract`).

Official layout: images ``<root>/leftImg8bit/<split>/<cityname>/<im_name>``, annotations
``<root>/annotations/anno_<split>.mat`` holding one variable ``anno_<split>_aligned``: a 1×N
cell array of structs with fields ``cityname``, ``im_name`` and ``bbs`` (n×10 double, one row
per box: ``class_label, x1, y1, w, h, instance_id, x1_vis, y1_vis, w_vis, h_vis``).

Mapping to the contract, per row:
- ``bbox`` = ``(x1, y1, w, h)`` (unclipped), ``vis_box`` = the visible box, ``head_box`` = null;
- ``ignore`` = 1 unless ``class_label == 1`` (pedestrian): ignore regions (0), riders (2),
  sitting persons (3), other persons (4) and groups (5) are ignore, as in the official
  ``val_gt.json``;
- ``vis_ratio`` = ``w_vis·h_vis / (w·h)`` as in ``val_gt.json``, capped at 1 (a visible box
  drawn wider than the 0.41-aspect full box can exceed it; no evaluation setup has an upper
  visibility bound below 1, so the cap changes no metric).

Records are named in errors as ``anno_val_aligned{k} '<im_name>'`` with k the 1-based
(MATLAB) cell index.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from lla.data import contract
from lla.data.contract import DegenerateCounts, Where
from lla.data.imagesize import ImageSizeCache
from lla.errors import DataError

log = logging.getLogger(__name__)

DATASET_NAME = "citypersons"
IMAGES_DIR = "leftImg8bit"
PEDESTRIAN_CLASS = 1
KNOWN_CLASSES = (0, 1, 2, 3, 4, 5)  # ignore region, pedestrian, rider, sitting, other, group
BBS_COLUMNS = 10
STRUCT_FIELDS = ("cityname", "im_name", "bbs")


def annotation_path(root: str | Path, split: str) -> Path:
    return Path(root) / "annotations" / f"anno_{split}.mat"


def variable_name(split: str) -> str:
    return f"anno_{split}_aligned"


def load_cells(path: str | Path, split: str) -> np.ndarray:
    """The cell array of one annotation file, flattened to shape (N,) (object dtype)."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "annotation file not found")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises several unrelated types for a corrupt file
        raise DataError(path, f"cannot read the MATLAB file: {e}") from None
    name = variable_name(split)
    if name not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(path, f"no variable '{name}' (found: {', '.join(found) or 'none'})")
    cells = mat[name]
    if not isinstance(cells, np.ndarray) or cells.dtype != object:
        raise DataError(path, f"'{name}' must be a cell array, got {type(cells).__name__} "
                              f"of {getattr(cells, 'dtype', '?')}")
    return cells.ravel()


def _text(value: Any) -> str | None:
    """A MATLAB char array loaded by scipy (array(['text'])) as str, or None if it is not one."""
    array = np.asarray(value)
    if array.dtype.kind != "U" or array.size > 1:
        return None
    return "" if array.size == 0 else str(array.ravel()[0])


def read_cell(cell: Any, where: Where) -> tuple[str, str, np.ndarray]:
    """``(cityname, im_name, bbs)`` of one cell; ``bbs`` has shape (n, 10), float64."""
    struct = np.asarray(cell)
    names = struct.dtype.names or ()
    missing = [f for f in STRUCT_FIELDS if f not in names]
    if struct.size != 1 or missing:
        raise where.error(f"expected a struct with fields {list(STRUCT_FIELDS)}"
                          + (f" (missing {missing})" if missing else ""))
    record = struct.ravel()[0]
    cityname, im_name = _text(record["cityname"]), _text(record["im_name"])
    for field, value in (("cityname", cityname), ("im_name", im_name)):
        if not value or "/" in value or "\\" in value or value in (".", ".."):
            raise where.error(f"'{field}' must be a non-empty file name, got "
                              f"{record[field]!r}")
    bbs = np.asarray(record["bbs"])
    if bbs.size == 0:
        bbs = np.zeros((0, BBS_COLUMNS))
    if bbs.dtype.kind not in "fiu" or bbs.ndim != 2 or bbs.shape[1] != BBS_COLUMNS:
        raise where.error(f"'bbs' must be an n×{BBS_COLUMNS} numeric matrix, got shape "
                          f"{bbs.shape} of {bbs.dtype}")
    return cityname, im_name, bbs.astype(np.float64)


def convert_row(row: np.ndarray, k: int, where: Where) -> tuple[list[float], list[float], bool]:
    """``(bbox, vis_box, ignore)`` of row ``k`` of ``bbs``; raises ``DataError`` if invalid."""
    what = f"bbs row {k + 1}"
    values = row.tolist()  # Python floats: plain numbers in messages and in the json
    label = values[0]
    if label not in KNOWN_CLASSES:  # also rejects NaN and non-integral labels
        raise where.error(f"{what} has unknown class_label {label!r} "
                          f"(expected one of {list(KNOWN_CLASSES)})")
    bbox = contract.check_xywh(values[1:5], f"{what} (x1, y1, w, h)", where)
    vis_box = contract.check_xywh(values[6:10], f"{what} (x1_vis, y1_vis, w_vis, h_vis)", where)
    return bbox, vis_box, int(label) != PEDESTRIAN_CLASS


def convert_split(root: str | Path, split: str, out_dir: str | Path,
                  sizes: ImageSizeCache) -> dict[str, Any]:
    """Convert ``<root>/annotations/anno_<split>.mat`` to the contract json (returned, not written).

    ``out_dir`` is where the json will be written: ``info.image_root`` is relative to it.
    Raises ``DataError`` (file + cell index and im_name) for malformed cells, unknown class
    labels, invalid boxes, missing images and duplicate image names, and for a file without
    cells.
    """
    root = Path(root)
    path = annotation_path(root, split)
    name = variable_name(split)
    images_dir = root / IMAGES_DIR / split
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    degenerate = DegenerateCounts()
    first_cell_of: dict[str, int] = {}
    for index, cell in enumerate(load_cells(path, split), start=1):
        cityname, im_name, bbs = read_cell(cell, Where(path, record=f"{name}{{{index}}}"))
        where = Where(path, record=f"{name}{{{index}}} '{im_name}'")
        if im_name in first_cell_of:
            raise where.error(f"duplicate im_name (first in cell {first_cell_of[im_name]})")
        first_cell_of[im_name] = index
        file_name = f"{cityname}/{im_name}"
        try:
            width, height = sizes.size(images_dir / file_name)
        except FileNotFoundError:
            raise where.error(f"image {IMAGES_DIR}/{split}/{file_name} not found in "
                              f"{root}") from None
        except DataError as e:  # not an image: name the record, not only the file
            raise where.error(f"image {IMAGES_DIR}/{split}/{file_name}: {e.reason}") from None
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": file_name, "width": width,
                       "height": height, "record_id": im_name})
        for k, row in enumerate(bbs):
            bbox, vis_box, ignore = convert_row(row, k, where)
            reason = contract.degenerate_reason(bbox, width, height)
            if reason is not None:
                degenerate.count(reason)
                log.debug("%s: dropped bbs row %d (%s): %s", where, k + 1, reason, bbox)
                continue
            vis_ratio = min(1.0, vis_box[2] * vis_box[3] / (bbox[2] * bbox[3]))
            annotations.append(contract.make_annotation(
                ann_id=len(annotations) + 1, image_id=image_id, bbox=bbox, vis_box=vis_box,
                head_box=None, vis_ratio=vis_ratio, ignore=ignore))
    if not images:
        raise DataError(path, f"'{name}' has no cell: the annotation file lists no image")
    return contract.make_dataset(dataset=DATASET_NAME, split=split, source=path.name,
                                 image_root=contract.image_root_for(images_dir, out_dir),
                                 images=images, annotations=annotations, degenerate=degenerate)
