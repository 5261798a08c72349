"""Read CrowdHuman ground truth and detections into flat float64 arrays.

Accepted ground truth (see README.md, "Evaluating on CrowdHuman"):
  * our dataset json (dict or path): image size from ``images[].width/height``, box tag
    from ``annotations[].ignore``;
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
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from lla.errors import DataError

PERSON_CLASSES = ("background", "person")  # official class list: tag = index in it
IGNORE_TAG = -1


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


# --------------------------------------------------------------------------- reading files


def read_odgt_lines(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, record)`` for each non-blank line (1-based numbers).

    Malformed JSON raises :class:`DataError` naming the file and line.
    """
    path = Path(path)
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    with f:
        for line_number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                yield line_number, json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(path, f"malformed JSON: {e.msg} (column {e.colno})",
                                line=line_number) from None


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


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building millions of small objects (JSON records):
    its repeated full scans otherwise multiply the parse time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_any(path: str | Path) -> Records | dict:
    """A JSON document (an object, or a list of records) or an odgt file."""
    from lla.io import read_json

    path = Path(path)
    with _gc_paused():
        if path.suffix == ".odgt":
            lines, items = [], []
            for line, record in read_odgt_lines(path):
                lines.append(line)
                items.append(record)
            return Records(items, lines)
        data = read_json(path)
    return Records(data) if isinstance(data, list) else data


def _as_records(data: Any) -> Records | dict | None:
    if isinstance(data, (Records, dict)):
        return data
    if isinstance(data, (list, tuple)):
        return Records(list(data))
    return None


# --------------------------------------------------------------------------- ground truth


def odgt_box_tag(box: dict) -> int:
    """The official body-box tag: index in PERSON_CLASSES, -1 for other tags or
    ``extra.ignore != 0``."""
    tag = PERSON_CLASSES.index(box["tag"]) if box.get("tag") in PERSON_CLASSES else IGNORE_TAG
    extra = box.get("extra")
    if isinstance(extra, dict) and extra.get("ignore", 0) != 0:
        tag = IGNORE_TAG
    return tag


def load_ground_truth(gt: str | Path | dict | Sequence[dict]) -> GroundTruth:
    """Load our dataset json or the official odgt (a path, or the loaded object)."""
    source = str(gt) if isinstance(gt, (str, Path)) else "<ground truth>"
    data = _as_records(_read_any(gt) if isinstance(gt, (str, Path)) else gt)
    if isinstance(data, dict):
        with _gc_paused():
            result = _gt_from_dataset_json(data, source)
    elif isinstance(data, Records):
        with _gc_paused():
            result = _gt_from_odgt(data, source)
    else:
        raise DataError(source, "expected our dataset json (an object) or odgt records")
    if result.num_images == 0:
        raise DataError(source, "the ground truth has no images")
    return result


def _finite_box(value: Any, what: str, source: str, **where: Any) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise DataError(source, f"{what} must be a list [x, y, w, h], got {value!r}", **where)
    try:
        box = [float(v) for v in value]
    except (TypeError, ValueError):
        raise DataError(source, f"{what} has a non-numeric entry: {value!r}", **where) from None
    if not all(math.isfinite(v) for v in box):
        raise DataError(source, f"{what} is not finite: {value!r}", **where)
    return box


def _gt_from_odgt(records_in: Records, source: str) -> GroundTruth:
    # Official reader: a dict keyed by ID; a repeated ID replaces the record in place.
    position: dict[str, int] = {}
    records: list[tuple[str, list, list, float, float]] = []
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
        width, height = _record_size(rec, source, where)
        entry = (record_id, boxes, tags, width, height)
        if record_id in position:
            records[position[record_id]] = entry
        else:
            position[record_id] = len(records)
            records.append(entry)
    return _pack_gt(source, records, [r[0] for r in records], from_odgt=True)


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
    position: dict[Any, int] = {}
    records: list[tuple[Any, list, list, float, float]] = []
    record_ids: list[str | None] = []
    for index, image in enumerate(data["images"]):
        where = {"record": f"images[{index}]"}
        if not isinstance(image, dict) or "id" not in image:
            raise DataError(source, "image without 'id'", **where)
        if image["id"] in position:
            raise DataError(source, f"duplicate image id {image['id']!r}", **where)
        width, height = _record_size(image, source, where)
        if math.isnan(width):
            raise DataError(source, f"image {image['id']!r} has no width/height", **where)
        position[image["id"]] = len(records)
        records.append((image["id"], [], [], width, height))
        record_ids.append(image.get("record_id"))
    annotations = data["annotations"]
    try:  # fast path; on any problem, locate the offending record below
        image_index = map_image_ids([ann["image_id"] for ann in annotations], position)
        boxes = _boxes_array([ann["bbox"] for ann in annotations])
        ignore = np.array([bool(ann.get("ignore", 0) or ann.get("iscrowd", 0))
                           for ann in annotations], dtype=bool)
        ok = image_index is not None and boxes is not None and bool(np.isfinite(boxes).all())
    except (TypeError, KeyError, ValueError, AttributeError):
        ok = False
    if not ok:
        for index, ann in enumerate(annotations):
            where = {"record": f"annotations[{index}]"}
            if not isinstance(ann, dict) or not _hashable(ann.get("image_id")) \
                    or ann.get("image_id") not in position:
                image_id = ann.get("image_id") if isinstance(ann, dict) else None
                raise DataError(source, f"unknown image_id {image_id!r}", **where)
            _finite_box(ann.get("bbox"), "bbox", source, **where)
        raise AssertionError("unreachable: a bad annotation must have been reported")
    order = np.argsort(image_index, kind="stable")  # group by image, file order inside
    return GroundTruth(
        source=source, image_keys=[r[0] for r in records], record_ids=record_ids,
        width=np.array([r[3] for r in records], dtype=np.float64),
        height=np.array([r[4] for r in records], dtype=np.float64),
        boxes=boxes[order], tags=np.where(ignore[order], IGNORE_TAG, 1).astype(np.int8),
        image_index=image_index[order], from_odgt=False)


def _boxes_array(boxes: list) -> np.ndarray | None:
    """(N, 4) float64 array of N [x, y, w, h] lists, or None if they are not all 4 long."""
    if not boxes:
        return np.zeros((0, 4))
    if set(map(len, boxes)) != {4}:
        return None
    flat = np.fromiter(itertools.chain.from_iterable(boxes), np.float64, count=4 * len(boxes))
    return flat.reshape(-1, 4)


def map_image_ids(ids: list, position: dict) -> np.ndarray | None:
    """(N,) int64 ``position[id]`` of every id, or None if one is unknown.

    Integer ids (the common case) are mapped with a vectorised search."""
    if not ids:
        return np.zeros(0, dtype=np.int64)
    values = np.asarray(ids)
    keys = list(position)
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


def _pack_gt(source: str, records: list, record_ids: list, *, from_odgt: bool) -> GroundTruth:
    counts = np.array([len(r[1]) for r in records], dtype=np.int64)
    boxes = [b for r in records for b in r[1]]
    return GroundTruth(
        source=source,
        image_keys=[r[0] for r in records],
        record_ids=list(record_ids),
        width=np.array([r[3] for r in records], dtype=np.float64),
        height=np.array([r[4] for r in records], dtype=np.float64),
        boxes=np.array(boxes, dtype=np.float64).reshape(-1, 4),
        tags=np.array([t for r in records for t in r[2]], dtype=np.int8),
        image_index=np.repeat(np.arange(len(records), dtype=np.int64), counts),
        from_odgt=from_odgt,
    )


# --------------------------------------------------------------------------- detections


def load_detections(dt: str | Path | Sequence[dict], gt: GroundTruth) -> Detections:
    """Load a COCO results list or CrowdHuman detection records, mapped to ``gt``'s images.

    Images of ``gt`` without any detection simply have none.
    """
    source = str(dt) if isinstance(dt, (str, Path)) else "<detections>"
    data = _as_records(_read_any(dt) if isinstance(dt, (str, Path)) else dt)
    if not isinstance(data, Records):
        raise DataError(source, "expected a list of detections")
    first = data.items[0] if data.items else None
    with _gc_paused():
        if isinstance(first, dict) and "dtboxes" in first:
            return _dt_from_odgt(data, gt, source)
        return _dt_from_coco(data, gt, source)


def _dt_from_coco(data: Records, gt: GroundTruth, source: str) -> Detections:
    """COCO results -> Detections; image_id is a json image id, or k for an odgt's k-th record."""
    records = data.items
    try:  # fast path; on any problem, locate the offending record below
        image_ids = [rec["image_id"] for rec in records]
        boxes = _boxes_array([rec["bbox"] for rec in records])
        scores = np.array([rec["score"] for rec in records], dtype=np.float64)
        categories = set(rec.get("category_id", 1) for rec in records)
        ok = boxes is not None and scores.ndim == 1 and categories <= {1}
    except (TypeError, KeyError, ValueError, AttributeError):
        ok = False
    if not ok:
        for index, rec in enumerate(records):
            _check_coco_record(rec, source, data.where(index))
        raise AssertionError("unreachable: a bad record must have been reported")
    keys = ({i + 1: i for i in range(gt.num_images)} if gt.from_odgt
            else {key: i for i, key in enumerate(gt.image_keys)})
    image_index = map_image_ids(image_ids, keys)
    if image_index is None:
        for index, image_id in enumerate(image_ids):
            if not _hashable(image_id) or image_id not in keys:
                hint = (f" (with an .odgt ground truth, image_id k names its k-th record; "
                        f"it has {gt.num_images})") if gt.from_odgt else ""
                raise DataError(source, f"unknown image_id {image_id!r}{hint}",
                                **data.where(index))
    _check_finite(boxes, scores, data, source)
    nan = np.full(gt.num_images, np.nan)
    return _group_by_image(source, boxes, scores, image_index, nan, nan.copy())


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _check_coco_record(rec: Any, source: str, where: dict) -> None:
    if not isinstance(rec, dict):
        raise DataError(source, "detection is not an object", **where)
    for key in ("image_id", "bbox", "score"):
        if key not in rec:
            raise DataError(source, f"detection has no '{key}'", **where)
    _finite_box(rec["bbox"], "bbox", source, **where)
    if not isinstance(rec["score"], (int, float)) or isinstance(rec["score"], bool):
        raise DataError(source, f"score must be a number, got {rec['score']!r}", **where)
    if rec.get("category_id", 1) != 1:
        raise DataError(source, f"category_id must be 1 (person), got {rec['category_id']!r}",
                        **where)


def _check_finite(boxes: np.ndarray, scores: np.ndarray, data: Records, source: str,
                  rows: np.ndarray | None = None) -> None:
    """Raise for the first detection with a NaN/inf box or score.

    ``rows[d]`` is the index in ``data`` of detection d's record (default: d itself)."""
    bad = ~(np.isfinite(boxes).all(axis=1) & np.isfinite(scores))
    if bad.any():
        d = int(np.flatnonzero(bad)[0])
        index = d if rows is None else int(rows[d])
        what = (f"detection {d}" if rows is None
                else f"a detection of ID {data.items[index]['ID']!r}")
        raise DataError(source, f"{what} has a NaN/inf box or score: box "
                        f"{boxes[d].tolist()}, score {scores[d]}", **data.where(index))


def _dt_from_odgt(data: Records, gt: GroundTruth, source: str) -> Detections:
    """Detection records ``{"ID", "width", "height", "dtboxes"}`` -> Detections."""
    if gt.from_odgt:
        keys = {key: i for i, key in enumerate(gt.image_keys)}
    else:
        keys = {rid: i for i, rid in enumerate(gt.record_ids) if rid is not None}
        if not keys:
            raise DataError(gt.source, "detection records are matched by 'ID' to "
                            "images[].record_id, which this dataset json lacks")
    width = np.full(gt.num_images, np.nan)
    height = np.full(gt.num_images, np.nan)
    latest: dict[int, int] = {}  # image -> index in data of its (last) record
    for index, rec in enumerate(data.items):
        where = data.where(index)
        if not isinstance(rec, dict) or "ID" not in rec or not isinstance(rec.get("dtboxes"), list):
            raise DataError(source, "expected an object with 'ID' and a 'dtboxes' list", **where)
        if not _hashable(rec["ID"]) or rec["ID"] not in keys:
            raise DataError(source, f"ID {rec['ID']!r} is not in the ground truth", **where)
        image = keys[rec["ID"]]
        latest[image] = index  # official: a repeated ID replaces the detections
        if math.isnan(width[image]):  # official: the first record that carries a size
            width[image], height[image] = _record_size(rec, source, where)
    boxes_list: list[list] = []
    scores_list: list = []
    rows_list: list[int] = []
    image_list: list[int] = []
    for image, index in sorted(latest.items()):
        rec = data.items[index]
        for k, box in enumerate(rec["dtboxes"]):
            if not isinstance(box, dict) or "box" not in box or "score" not in box:
                raise DataError(source, f"dtboxes[{k}] of ID {rec['ID']!r} needs 'box' and "
                                "'score'", **data.where(index))
            boxes_list.append(box["box"])
            scores_list.append(box["score"])
        n = len(rec["dtboxes"])
        rows_list.extend([index] * n)
        image_list.extend([image] * n)
    rows = np.array(rows_list, dtype=np.int64)
    try:
        boxes = _boxes_array(boxes_list)
        scores = np.array(scores_list, dtype=np.float64)
        ok = boxes is not None and scores.ndim == 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        for d, (box, score) in enumerate(zip(boxes_list, scores_list)):
            rec = data.items[int(rows[d])]
            where = data.where(int(rows[d]))
            _finite_box(box, f"a dtboxes box of ID {rec['ID']!r}", source, **where)
            if not isinstance(score, (int, float)) or isinstance(score, bool):
                raise DataError(source, f"a dtboxes score of ID {rec['ID']!r} is not a "
                                f"number: {score!r}", **where)
        raise AssertionError("unreachable: a bad box must have been reported")
    _check_finite(boxes, scores, data, source, rows=rows)
    return _group_by_image(source, boxes, scores, np.array(image_list, dtype=np.int64),
                           width, height)


def _group_by_image(source: str, boxes: np.ndarray, scores: np.ndarray,
                    image_index: np.ndarray, width: np.ndarray,
                    height: np.ndarray) -> Detections:
    order = np.argsort(image_index, kind="stable")  # keeps file order inside an image
    return Detections(source=source, boxes=boxes[order], scores=scores[order],
                      image_index=image_index[order], width=width, height=height)


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
    nan = np.full(gt.num_images, np.nan)
    return _group_by_image(source, boxes, scores, image_index, nan, nan.copy())
