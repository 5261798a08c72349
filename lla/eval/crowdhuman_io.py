"""Read CrowdHuman ground truth and detections into flat float64 arrays.

Accepted ground truth (see docs/evaluation.md):
  * our dataset json (dict or path): image size from ``images[].width/height``, box tag
    from ``annotations[].ignore``; one converted for CityPersons (``info.dataset``) is
    refused;
  * the official ``.odgt`` (path, or a list of its records): tags exactly as the official
    reader derives them (:func:`odgt_box_tag`); image size from the record if it has one,
    otherwise from the detection ``.odgt`` record of the same ``ID``.

Accepted detections:
  * a COCO results list ``[{"image_id", "bbox": [x, y, w, h], "score", "category_id"}]``
    (path or list). With an ``.odgt`` ground truth, ``image_id`` k (1-based) names the k-th
    record of the GT file: the ids that ``lla data convert`` gives;
  * CrowdDet/cvpods ``.odgt`` dumps, or a JSON list of the same records (mmdetection's
    CrowdHumanMetric dump): ``{"ID", "width", "height", "dtboxes": [{"box", "score"}]}``.
    With our json GT, ``ID`` is matched to ``images[].record_id``.

Official semantics kept here: repeated GT ``ID`` lines replace the earlier record but keep
its position in the image order (a dict keyed by ``ID``); a repeated detection ``ID`` line
replaces the earlier detections; the image size comes from the first record carrying it.

Values: a box is 4 finite numbers (JSON numbers: not strings, not booleans), a score a
finite number. A detection box must not have a negative width or height (a zero one is
valid: it matches nothing, as in the official code). Ground-truth boxes are taken as the
official evaluator takes them (any finite numbers).

Inputs are read in two ways that give the same arrays (:mod:`lla.eval.json_input`): typed
records laid out as columns at once (the fast path: files are decoded into them, loaded
objects converted), and, when that fails or the content is invalid, the standard library's
parser followed by record-by-record checks that name the file, line and record of the
first problem.
"""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, Literal, Sequence, Union

import msgspec
import numpy as np

from lla.errors import DataError
from lla.eval.json_input import (box_column, check_dataset, convert_typed, decode_typed,
                                 decode_typed_list_parts, decode_typed_lines, float_column,
                                 gc_paused, parse_json, parse_json_lines, read_bytes)

PERSON_CLASSES = ("background", "person")  # official class list: tag = index in it
IGNORE_TAG = -1

Box = tuple[float, float, float, float]
Where = Callable[[int], dict[str, Any]]  # record index -> DataError location keywords


@dataclass
class GroundTruth:
    """Ground-truth boxes of an image set, flat and grouped by image.

    Shapes: I images, G boxes.
      image_keys:  I keys in GT-file order (odgt ``ID`` or json image ``id``)
      record_ids:  I odgt ``ID`` strings (json: ``images[].record_id``, or None)
      width, height: (I,) float64, NaN where the GT does not give the size
      boxes:       (G, 4) float64 [x, y, w, h] as in the file (not clipped)
      tags:        (G,) int8: 1 person, 0 'background' (official quirk), -1 ignore
      image_index: (G,) int64 index into the images, non-decreasing; file order inside
    """

    source: str
    image_keys: list[Any]
    record_ids: list[str | None]
    width: np.ndarray
    height: np.ndarray
    boxes: np.ndarray
    tags: np.ndarray
    image_index: np.ndarray
    from_odgt: bool

    @property
    def num_images(self) -> int:
        return len(self.image_keys)


@dataclass
class Detections:
    """Detections, flat and grouped by GT image; file order inside an image.

    Shapes: D detections, I images of the ground truth.
      boxes:       (D, 4) float64 [x, y, w, h]
      scores:      (D,) float64
      image_index: (D,) int64 index into the GT images, non-decreasing
      width, height: (I,) float64 image sizes carried by detection records, NaN if none
    """

    source: str
    boxes: np.ndarray
    scores: np.ndarray
    image_index: np.ndarray
    width: np.ndarray
    height: np.ndarray

    @property
    def num_detections(self) -> int:
        return len(self.scores)


# --------------------------------------------------------------------------- typed records
# The fields the evaluator reads, for the fast path; others are skipped unread.


class _JsonImage(msgspec.Struct, gc=False):
    id: Union[int, str]
    width: Union[float, None] = None
    height: Union[float, None] = None
    record_id: Union[str, None] = None


class _JsonAnnotation(msgspec.Struct, gc=False):
    image_id: Union[int, str]
    bbox: Box
    ignore: Union[int, bool] = 0
    iscrowd: Union[int, bool] = 0


class _DatasetJson(msgspec.Struct, gc=False):
    images: list[_JsonImage]
    annotations: list[_JsonAnnotation]
    info: Any = None


class _OdgtGtBox(msgspec.Struct, gc=False):
    tag: Any            # required, as the official reader requires tag, fbox and hbox
    fbox: Box
    hbox: Any
    extra: Any = None


class _OdgtGtRecord(msgspec.Struct, gc=False):
    ID: str
    gtboxes: list[_OdgtGtBox]
    width: Union[float, None] = None
    height: Union[float, None] = None


class _CocoDetection(msgspec.Struct, gc=False):
    image_id: int       # other ids (strings) are read the standard way
    bbox: Box
    score: float
    category_id: Literal[1] = 1   # another category is reported the standard way


class _OdgtDetectionBox(msgspec.Struct, gc=False):
    box: Box
    score: float


class _OdgtDetectionRecord(msgspec.Struct, gc=False):
    ID: str
    dtboxes: list[_OdgtDetectionBox]
    width: Union[float, None] = None
    height: Union[float, None] = None


_DATASET_JSON = msgspec.json.Decoder(_DatasetJson)
_ODGT_GT = msgspec.json.Decoder(_OdgtGtRecord)
_COCO_RESULTS = msgspec.json.Decoder(list[_CocoDetection])
_ODGT_DETECTIONS = msgspec.json.Decoder(_OdgtDetectionRecord)
_ODGT_DETECTION_LIST = msgspec.json.Decoder(list[_OdgtDetectionRecord])


# --------------------------------------------------------------------------- reading files


@dataclass
class Records:
    """A list of JSON records and, for odgt files, the line number of each (else None)."""

    items: list
    lines: list[int] | None = None

    def where(self, index: int) -> dict[str, Any]:
        """DataError location keywords of record ``index``."""
        if self.lines is not None:
            return {"line": self.lines[index]}
        return {"record": f"record {index}"}


def _parse(raw: bytes, path: Path) -> Records | dict:
    """A JSON document (an object, or a list of records) or an odgt file, parsed by the
    standard library (the path that reports errors)."""
    if path.suffix == ".odgt":
        lines, items = parse_json_lines(raw, path)
        return Records(items, lines)
    data = parse_json(raw, path)
    return Records(data) if isinstance(data, list) else data


def _as_records(data: Any) -> Records | dict | None:
    if isinstance(data, (Records, dict)):
        return data
    if isinstance(data, (list, tuple)):
        return Records(list(data))
    return None


def _fast(build: Callable[[], Any]) -> Any | None:
    """``build()``, or None when it finds invalid content: the caller then takes the
    standard-library path, whose checks name the file, line and record."""
    try:
        return build()
    except DataError:
        return None


# --------------------------------------------------------------------------- ground truth


def odgt_box_tag(box: dict) -> int:
    """The official body-box tag: index in PERSON_CLASSES, -1 for other tags or
    ``extra.ignore != 0``."""
    return _box_tag(box.get("tag"), box.get("extra"))


def _box_tag(tag: Any, extra: Any) -> int:
    tag = PERSON_CLASSES.index(tag) if tag in PERSON_CLASSES else IGNORE_TAG
    if isinstance(extra, dict) and extra.get("ignore", 0) != 0:
        tag = IGNORE_TAG
    return tag


def load_ground_truth(gt: str | Path | dict | Sequence[dict]) -> GroundTruth:
    """Load our dataset json or the official odgt (a path, or the loaded object)."""
    if isinstance(gt, (str, Path)):
        path, source = Path(gt), str(gt)
        raw = read_bytes(path)
        with gc_paused():  # the whole fast path: no collection scans its records
            if path.suffix == ".odgt":
                typed = decode_typed_lines(raw, _ODGT_GT)
            else:
                typed = decode_typed(raw, _DATASET_JSON)
            result = _fast(lambda: _gt_from_typed(typed, source))
        data = _parse(raw, path) if result is None else None
    else:
        source = "<ground truth>"
        with gc_paused():
            typed = (convert_typed(gt, _DatasetJson) if isinstance(gt, dict)
                     else convert_typed(gt, list[_OdgtGtRecord]))
            result = _fast(lambda: _gt_from_typed(typed, source))
        data = _as_records(gt) if result is None else None
    if result is None:
        with gc_paused():
            if isinstance(data, dict):
                result = _gt_from_dataset_json(data, source)
            elif isinstance(data, Records):
                result = _gt_from_odgt(data, source)
            else:
                raise DataError(source, "expected our dataset json (an object) or odgt records")
    if result.num_images == 0:
        raise DataError(source, "the ground truth has no images")
    return result


def _gt_from_typed(typed: _DatasetJson | list[_OdgtGtRecord] | None,
                   source: str) -> GroundTruth | None:
    """GroundTruth of typed records (None for None); DataError for invalid values."""
    if typed is None:
        return None
    if isinstance(typed, list):
        result = _pack_odgt_gt(source, [
            (r.ID, [b.fbox for b in r.gtboxes], [_box_tag(b.tag, b.extra) for b in r.gtboxes],
             *_typed_size(r.width, r.height)) for r in typed])
    else:
        check_dataset(typed.info, "crowdhuman", source)
        images, annotations = typed.images, typed.annotations
        result = _pack_dataset_gt(
            source, [im.id for im in images],
            [_typed_size(im.width, im.height) for im in images],
            [im.record_id for im in images], [a.image_id for a in annotations],
            box_column([a.bbox for a in annotations]),
            np.fromiter((bool(a.ignore or a.iscrowd) for a in annotations), bool,
                        count=len(annotations)))
    sizes = np.concatenate([result.width, result.height])
    if not (np.isfinite(result.boxes).all() and (np.isfinite(sizes) | np.isnan(sizes)).all()):
        raise DataError(source, "a box or an image size is not finite")
    return result


def _typed_size(width: float | None, height: float | None) -> tuple[float, float]:
    """The size of a typed record as :func:`_record_size` reads it (finite by type)."""
    if width is None or height is None:
        return math.nan, math.nan
    return width, height


def _is_number(value: Any) -> bool:
    """A real number, not a boolean (nor a string)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _finite_box(value: Any, what: str, source: str, *, detection: bool = False,
                **where: Any) -> list[float]:
    """``value`` as 4 floats [x, y, w, h]; DataError unless it is 4 finite numbers (and,
    for a ``detection``, has no negative width or height)."""
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise DataError(source, f"{what} must be a list [x, y, w, h], got {value!r}", **where)
    if not all(map(_is_number, value)):
        raise DataError(source, f"{what} has a non-numeric entry: {value!r}", **where)
    box = [float(v) for v in value]
    if not all(math.isfinite(v) for v in box):
        raise DataError(source, f"{what} has a NaN/inf value: {value!r}", **where)
    if detection and (box[2] < 0 or box[3] < 0):
        raise DataError(source, f"{what} has a negative width or height: {value!r}", **where)
    return box


def _check_score(score: Any, what: str, source: str, where: dict) -> None:
    if not _is_number(score):
        raise DataError(source, f"{what} must be a number, got {score!r}", **where)
    if not math.isfinite(score):
        raise DataError(source, f"{what} is NaN/inf: {score!r}", **where)


def _gt_from_odgt(records_in: Records, source: str) -> GroundTruth:
    entries = []
    for index, rec in enumerate(records_in.items):
        where = records_in.where(index)
        if not isinstance(rec, dict) or "ID" not in rec or "gtboxes" not in rec:
            raise DataError(source, "expected an object with 'ID' and 'gtboxes'", **where)
        if not isinstance(rec["gtboxes"], list):
            raise DataError(source, "'gtboxes' must be a list", **where)
        record_id = rec["ID"]
        boxes, tags = [], []
        for k, box in enumerate(rec["gtboxes"]):
            if not isinstance(box, dict):
                raise DataError(source, f"gtboxes[{k}] of ID {record_id!r} is not an object",
                                **where)
            for key in ("tag", "fbox", "hbox"):  # the official reader needs all three
                if key not in box:
                    raise DataError(source, f"gtboxes[{k}] of ID {record_id!r} has no "
                                    f"'{key}' (the official evaluator requires it)", **where)
            boxes.append(_finite_box(box["fbox"], f"gtboxes[{k}].fbox of ID {record_id!r}",
                                     source, **where))
            tags.append(odgt_box_tag(box))
        entries.append((record_id, boxes, tags, *_record_size(rec, source, where)))
    return _pack_odgt_gt(source, entries)


def _pack_odgt_gt(source: str, entries: list[tuple[Any, list, list, float, float]]
                  ) -> GroundTruth:
    """GroundTruth of odgt records ``(ID, boxes, tags, width, height)`` in file order.

    Official reader: a dict keyed by ID; a repeated ID replaces the record in place."""
    position: dict[Any, int] = {}
    records: list[tuple[Any, list, list, float, float]] = []
    for entry in entries:
        if entry[0] in position:
            records[position[entry[0]]] = entry
        else:
            position[entry[0]] = len(records)
            records.append(entry)
    counts = np.array([len(r[1]) for r in records], dtype=np.int64)
    boxes = [b for r in records for b in r[1]]
    return GroundTruth(
        source=source,
        image_keys=[r[0] for r in records],
        record_ids=[r[0] for r in records],
        width=np.array([r[3] for r in records], dtype=np.float64),
        height=np.array([r[4] for r in records], dtype=np.float64),
        boxes=box_column(boxes),
        tags=np.array([t for r in records for t in r[2]], dtype=np.int8),
        image_index=np.repeat(np.arange(len(records), dtype=np.int64), counts),
        from_odgt=True,
    )


def _record_size(rec: dict, source: str, where: dict) -> tuple[float, float]:
    width, height = rec.get("width"), rec.get("height")
    if width is None or height is None:
        return math.nan, math.nan
    try:
        width, height = float(width), float(height)
    except (TypeError, ValueError):
        raise DataError(source, f"width/height must be numbers, got {width!r}, {height!r}",
                        **where) from None
    if not (math.isfinite(width) and math.isfinite(height)):
        raise DataError(source, f"width/height not finite: {width!r}, {height!r}", **where)
    return width, height


def _gt_from_dataset_json(data: dict, source: str) -> GroundTruth:
    if not isinstance(data.get("images"), list) or not isinstance(data.get("annotations"), list):
        raise DataError(source, "expected our dataset json with 'images' and 'annotations'")
    check_dataset(data.get("info"), "crowdhuman", source)
    keys, sizes, record_ids = [], [], []
    for index, image in enumerate(data["images"]):
        where = {"record": f"images[{index}]"}
        if not isinstance(image, dict) or "id" not in image:
            raise DataError(source, "image without 'id'", **where)
        if not _hashable(image["id"]):
            raise DataError(source, f"image id {image['id']!r} is not a number or a string",
                            **where)
        keys.append(image["id"])
        sizes.append(_record_size(image, source, where))
        record_ids.append(image.get("record_id"))
    annotations = data["annotations"]
    known = set(keys)
    boxes = []
    for index, ann in enumerate(annotations):
        where = {"record": f"annotations[{index}]"}
        if not isinstance(ann, dict) or not _hashable(ann.get("image_id")) \
                or ann.get("image_id") not in known:
            image_id = ann.get("image_id") if isinstance(ann, dict) else None
            raise DataError(source, f"unknown image_id {image_id!r}", **where)
        boxes.append(_finite_box(ann.get("bbox"), "bbox", source, **where))
    ignore = np.array([bool(ann.get("ignore", 0) or ann.get("iscrowd", 0))
                       for ann in annotations], dtype=bool)
    return _pack_dataset_gt(source, keys, sizes, record_ids,
                            [ann["image_id"] for ann in annotations], box_column(boxes),
                            ignore)


def _pack_dataset_gt(source: str, keys: list, sizes: list[tuple[float, float]],
                     record_ids: list, ann_image_ids: list, boxes: np.ndarray,
                     ignore: np.ndarray) -> GroundTruth:
    """GroundTruth of a dataset json's columns: I image keys, sizes (NaN: not given) and
    record ids; the image id (N,), bbox (N, 4) and ignore flag (N,) of each annotation."""
    position: dict[Any, int] = {}
    for index, (key, (width, _)) in enumerate(zip(keys, sizes)):
        where = {"record": f"images[{index}]"}
        if key in position:
            raise DataError(source, f"duplicate image id {key!r}", **where)
        if math.isnan(width):
            raise DataError(source, f"image {key!r} has no width/height", **where)
        position[key] = index
    image_index = map_image_ids(ann_image_ids, position)
    if image_index is None:
        index = next(k for k, i in enumerate(ann_image_ids)
                     if not _hashable(i) or i not in position)
        raise DataError(source, f"unknown image_id {ann_image_ids[index]!r}",
                        record=f"annotations[{index}]")
    order = np.argsort(image_index, kind="stable")  # group by image, file order inside
    return GroundTruth(
        source=source, image_keys=list(keys), record_ids=list(record_ids),
        width=np.array([s[0] for s in sizes], dtype=np.float64),
        height=np.array([s[1] for s in sizes], dtype=np.float64),
        boxes=boxes[order], tags=np.where(ignore[order], IGNORE_TAG, 1).astype(np.int8),
        image_index=image_index[order], from_odgt=False)


def map_image_ids(ids: list | np.ndarray, position: dict) -> np.ndarray | None:
    """(N,) int64 ``position[id]`` of every id, or None if one is unknown.

    Integer ids (the common case) are mapped with a vectorised search."""
    if len(ids) == 0:
        return np.zeros(0, dtype=np.int64)
    values = np.asarray(ids)
    keys = list(position)
    if values.dtype.kind in "iu" and type(keys[0]) is int \
            and keys == list(range(keys[0], keys[0] + len(keys))) \
            and list(position.values()) == list(range(len(keys))):
        # Consecutive integer ids in file order (what lla data convert writes).
        index = values - keys[0]
        if index.min() < 0 or index.max() >= len(keys):
            return None
        return index.astype(np.int64)
    if values.dtype.kind in "iu" and all(type(k) is int for k in keys):
        key_array = np.array(keys, dtype=np.int64)
        sorter = np.argsort(key_array)
        at = np.minimum(np.searchsorted(key_array, values, sorter=sorter), len(keys) - 1)
        found = sorter[at]
        if not np.array_equal(key_array[found], values):
            return None
        return np.array(list(position.values()), dtype=np.int64)[found]
    try:
        return np.array([position[i] for i in ids], dtype=np.int64)
    except (KeyError, TypeError):
        return None


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


# --------------------------------------------------------------------------- detections


def load_detections(dt: str | Path | Sequence[dict], gt: GroundTruth) -> Detections:
    """Load a COCO results list or CrowdHuman detection records, mapped to ``gt``'s images.

    Images of ``gt`` without any detection simply have none.
    """
    if isinstance(dt, (str, Path)):
        path, source = Path(dt), str(dt)
        raw = read_bytes(path)
        with gc_paused():  # the whole fast path: no collection scans its records
            result = _fast(lambda: _dt_from_file_typed(raw, path, gt, source))
        if result is not None:
            return result
        data = _parse(raw, path)
    else:
        source = "<detections>"
        with gc_paused():
            result = _fast(lambda: _dt_from_typed(_convert_detections(dt), gt, source))
        if result is not None:
            return result
        data = _as_records(dt)
    if not isinstance(data, Records):
        raise DataError(source, "expected a list of detections")
    first = data.items[0] if data.items else None
    with gc_paused():
        if isinstance(first, dict) and "dtboxes" in first:
            return _dt_from_odgt(data, gt, source)
        return _dt_from_coco(data, gt, source)


def _dt_from_file_typed(raw: bytes, path: Path, gt: GroundTruth, source: str
                        ) -> Detections | None:
    """Detections of a file decoded into typed records (a COCO results list part by part,
    to hold few records at a time), or None when it does not fit them."""
    if path.suffix == ".odgt":
        return _dt_from_typed(decode_typed_lines(raw, _ODGT_DETECTIONS), gt, source)
    if raw[:4096].lstrip()[:1] != b"[":  # not a list
        return None
    parts = []
    for records in decode_typed_list_parts(raw, _COCO_RESULTS):
        if records is None:  # not COCO results: odgt records as a JSON list, or invalid
            return _dt_from_typed(decode_typed(raw, _ODGT_DETECTION_LIST), gt, source)
        parts.append(_coco_columns(records))
    ids = [part[0] for part in parts]
    if all(isinstance(part_ids, np.ndarray) for part_ids in ids):
        image_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    else:
        image_ids = [int(i) if isinstance(i, np.integer) else i for part in ids for i in part]
    boxes, scores = (np.concatenate([part[k] for part in parts]) for k in (1, 2))
    return _coco_detections(gt, source, image_ids, boxes, scores, lambda index: {})


def _coco_columns(records: list[_CocoDetection]
                  ) -> tuple[np.ndarray | list, np.ndarray, np.ndarray]:
    """(image ids, (N, 4) boxes, (N,) scores) of typed COCO results, the ids as an int64
    array when they fit it."""
    count = len(records)
    boxes = np.fromiter(itertools.chain.from_iterable(map(attrgetter("bbox"), records)),
                        np.float64, count=4 * count).reshape(count, 4)
    scores = np.fromiter(map(attrgetter("score"), records), np.float64, count=count)
    try:
        image_ids = np.fromiter(map(attrgetter("image_id"), records), np.int64, count=count)
    except OverflowError:  # ids beyond int64
        image_ids = list(map(attrgetter("image_id"), records))
    return image_ids, boxes, scores


def _convert_detections(dt: Any) -> list | None:
    """Loaded detections as typed records (COCO results or odgt records), or None."""
    if not isinstance(dt, (list, tuple)):
        return None
    if dt and isinstance(dt[0], dict) and "dtboxes" in dt[0]:
        return convert_typed(dt, list[_OdgtDetectionRecord])
    return convert_typed(dt, list[_CocoDetection])


def _dt_from_typed(records: list | None, gt: GroundTruth, source: str) -> Detections | None:
    """Detections of typed records (None for None); DataError for invalid values."""
    if records is None:
        return None
    if not records or isinstance(records[0], _CocoDetection):
        return _coco_detections(gt, source, *_coco_columns(records), lambda index: {})
    return _odgt_detections(
        gt, source, len(records),
        lambda index: (records[index].ID, _typed_size(records[index].width,
                                                      records[index].height)),
        lambda index: ([b.box for b in records[index].dtboxes],
                       [b.score for b in records[index].dtboxes]),
        lambda index: {})


def _dt_from_coco(data: Records, gt: GroundTruth, source: str) -> Detections:
    """COCO results -> Detections; image_id is a json image id, or k for an odgt's k-th record."""
    records = data.items
    for index, rec in enumerate(records):
        _check_coco_record(rec, source, data.where(index))
    return _coco_detections(gt, source, [rec["image_id"] for rec in records],
                            box_column([rec["bbox"] for rec in records]),
                            float_column([rec["score"] for rec in records]), data.where)


def _coco_detections(gt: GroundTruth, source: str, image_ids: list, boxes: np.ndarray,
                     scores: np.ndarray, where: Where) -> Detections:
    """Detections of COCO results columns (category 1): the image id, bbox (D, 4) and
    score (D,) of each detection, in file order."""
    keys = ({i + 1: i for i in range(gt.num_images)} if gt.from_odgt
            else {key: i for i, key in enumerate(gt.image_keys)})
    image_index = map_image_ids(image_ids, keys)
    if image_index is None:
        for index, image_id in enumerate(image_ids):
            if not _hashable(image_id) or image_id not in keys:
                hint = (f" (with an .odgt ground truth, image_id k names its k-th record; "
                        f"it has {gt.num_images})") if gt.from_odgt else ""
                raise DataError(source, f"unknown image_id {image_id!r}{hint}",
                                **where(index))
    _check_detection_values(boxes, scores, source, where, lambda d: f"detection {d}")
    nan = np.full(gt.num_images, np.nan)
    return _group_by_image(source, boxes, scores, image_index, nan, nan.copy())


def _check_coco_record(rec: Any, source: str, where: dict) -> None:
    if not isinstance(rec, dict):
        raise DataError(source, "detection is not an object", **where)
    for key in ("image_id", "bbox", "score"):
        if key not in rec:
            raise DataError(source, f"detection has no '{key}'", **where)
    _finite_box(rec["bbox"], "bbox", source, detection=True, **where)
    _check_score(rec["score"], "score", source, where)
    if rec.get("category_id", 1) != 1:
        raise DataError(source, f"category_id must be 1 (person), got {rec['category_id']!r}",
                        **where)


def _check_detection_values(boxes: np.ndarray, scores: np.ndarray, source: str, where: Where,
                            what: Callable[[int], str], rows: np.ndarray | None = None
                            ) -> None:
    """Raise for the first detection with a NaN/inf box or score, or a negative width or
    height. ``rows[d]`` is the index of detection d's record (default: d itself);
    ``what(d)`` names the detection in the message."""
    bad = ~(np.isfinite(boxes).all(axis=1) & np.isfinite(scores)) | (boxes[:, 2:] < 0).any(axis=1)
    if bad.any():
        d = int(np.flatnonzero(bad)[0])
        index = d if rows is None else int(rows[d])
        raise DataError(source, f"{what(d)} has a NaN/inf value or a negative width or height: "
                        f"box {boxes[d].tolist()}, score {scores[d]}", **where(index))


def _dt_from_odgt(data: Records, gt: GroundTruth, source: str) -> Detections:
    """Detection records ``{"ID", "width", "height", "dtboxes"}`` -> Detections."""

    def head_of(index: int) -> tuple[Any, tuple[float, float]]:
        rec = data.items[index]
        if not isinstance(rec, dict) or "ID" not in rec or not isinstance(rec.get("dtboxes"), list):
            raise DataError(source, "expected an object with 'ID' and a 'dtboxes' list",
                            **data.where(index))
        return rec["ID"], (math.nan, math.nan)

    def size_of(index: int) -> tuple[float, float]:
        return _record_size(data.items[index], source, data.where(index))

    def boxes_of(index: int) -> tuple[list, list]:
        rec, where = data.items[index], data.where(index)
        boxes, scores = [], []
        for k, box in enumerate(rec["dtboxes"]):
            if not isinstance(box, dict) or "box" not in box or "score" not in box:
                raise DataError(source, f"dtboxes[{k}] of ID {rec['ID']!r} needs 'box' and "
                                "'score'", **where)
            boxes.append(_finite_box(box["box"], f"a dtboxes box of ID {rec['ID']!r}", source,
                                     detection=True, **where))
            _check_score(box["score"], f"a dtboxes score of ID {rec['ID']!r}", source, where)
            scores.append(box["score"])
        return boxes, scores

    return _odgt_detections(gt, source, len(data.items), head_of, boxes_of, data.where,
                            size_of)


def _odgt_detections(gt: GroundTruth, source: str, count: int,
                     head_of: Callable[[int], tuple[Any, tuple[float, float]]],
                     boxes_of: Callable[[int], tuple[list, list]], where: Where,
                     size_of: Callable[[int], tuple[float, float]] | None = None
                     ) -> Detections:
    """Detections of ``count`` odgt records: ``head_of(index)`` = (ID, (width, height)) of
    record ``index`` and ``boxes_of(index)`` its (boxes, scores) lists (of numbers).

    ``size_of(index)``, when given, reads a record's size instead of ``head_of`` (checking
    it); it is asked only until an image has a size, as the official reader does."""
    if gt.from_odgt:
        keys = {key: i for i, key in enumerate(gt.image_keys)}
    else:
        keys = {rid: i for i, rid in enumerate(gt.record_ids) if rid is not None}
        if not keys:
            raise DataError(gt.source, "detection records are matched by 'ID' to "
                            "images[].record_id, which this dataset json lacks")
    width = np.full(gt.num_images, np.nan)
    height = np.full(gt.num_images, np.nan)
    latest: dict[int, int] = {}  # image -> index of its (last) record
    record_ids = []
    for index in range(count):
        record_id, size = head_of(index)
        record_ids.append(record_id)
        if not _hashable(record_id) or record_id not in keys:
            raise DataError(source, f"ID {record_id!r} is not in the ground truth",
                            **where(index))
        image = keys[record_id]
        latest[image] = index  # official: a repeated ID replaces the detections
        if math.isnan(width[image]):  # official: the first record that carries a size
            width[image], height[image] = size if size_of is None else size_of(index)
    boxes_list: list = []
    scores_list: list = []
    rows_list: list[int] = []
    image_list: list[int] = []
    for image, index in sorted(latest.items()):
        boxes, scores = boxes_of(index)
        boxes_list += boxes
        scores_list += scores
        rows_list += [index] * len(scores)
        image_list += [image] * len(scores)
    rows = np.array(rows_list, dtype=np.int64)
    boxes, scores = box_column(boxes_list), float_column(scores_list)
    _check_detection_values(boxes, scores, source, where,
                            lambda d: f"a detection of ID {record_ids[int(rows[d])]!r}",
                            rows=rows)
    return _group_by_image(source, boxes, scores, np.array(image_list, dtype=np.int64),
                           width, height)


def _group_by_image(source: str, boxes: np.ndarray, scores: np.ndarray,
                    image_index: np.ndarray, width: np.ndarray,
                    height: np.ndarray) -> Detections:
    if len(image_index) and not (image_index[1:] >= image_index[:-1]).all():
        order = np.argsort(image_index, kind="stable")  # keeps file order inside an image
        boxes, scores, image_index = boxes[order], scores[order], image_index[order]
    return Detections(source=source, boxes=boxes, scores=scores, image_index=image_index,
                      width=width, height=height)


def detections_from_arrays(gt: GroundTruth, image_index: np.ndarray, boxes_xywh: np.ndarray,
                           scores: np.ndarray, source: str = "<detections>") -> Detections:
    """Detections from arrays (streaming evaluator): (D,) image indices, (D, 4), (D,)."""
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    image_index = np.asarray(image_index, dtype=np.int64).reshape(-1)
    bad = ~(np.isfinite(boxes).all(axis=1) & np.isfinite(scores))
    if bad.any():
        d = int(np.flatnonzero(bad)[0])
        raise DataError(source, f"detection {d} has a NaN/inf box or score",
                        record=f"image {gt.image_keys[image_index[d]]!r}")
    negative = np.flatnonzero((boxes[:, 2:] < 0).any(axis=1))
    if len(negative):
        d = int(negative[0])
        raise DataError(source, f"detection {d} has a negative width or height: "
                        f"{boxes[d].tolist()} (x1 > x2 or y1 > y2)",
                        record=f"image {gt.image_keys[image_index[d]]!r}")
    nan = np.full(gt.num_images, np.nan)
    return _group_by_image(source, boxes, scores, image_index, nan, nan.copy())
