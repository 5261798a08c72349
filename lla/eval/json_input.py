"""Reading the evaluators' input files: fast typed decoding, the standard library for errors.

A detections file of CrowdHuman val is about 60 MB of JSON. Decoding it with msgspec into
typed records (``msgspec.Struct`` types that name only the fields an evaluator reads) takes
a fifth of the time of ``json.loads`` into dictionaries, validates every type on the way and
lets the caller lay the values out as numpy columns at once. When the typed decoding fails
(a syntax error, a field of another type, a NaN literal that the standard library accepts),
the caller falls back to :func:`parse_json` / :func:`parse_json_lines` and its own
record-by-record checks, which name the file, line and record of the problem. The two paths
read numbers identically (msgspec and ``json`` both round decimal text correctly).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

import msgspec
import numpy as np

from lla.errors import DataError


def check_input_file(path: str | Path) -> Path:
    """``path`` as a Path; DataError unless it is an existing regular file."""
    path = Path(path)
    if path.is_dir():
        raise DataError(path, "is a directory, expected a file")
    if not path.exists():
        raise DataError(path, "file not found")
    return path


def read_bytes(path: str | Path) -> bytes:
    """The content of an input file; DataError for a missing or unreadable file."""
    path = check_input_file(path)
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(path, f"cannot read: {e.strerror or e}") from None


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building millions of small objects (JSON records):
    its repeated full scans otherwise multiply the parse time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def decode_typed(raw: bytes, decoder: msgspec.json.Decoder) -> Any | None:
    """``raw`` decoded by ``decoder``, or None when it does not fit the decoder's type.

    Call it inside :func:`gc_paused` when the result holds many records."""
    try:
        return decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


# Between two objects of a JSON list: "}", optional space, ",", optional space, "{".
_OBJECT_BOUNDARY = re.compile(rb"}\s*,\s*{")
PART_BYTES = 8 << 20


def decode_typed_list_parts(raw: bytes, decoder: msgspec.json.Decoder,
                            part_bytes: int = PART_BYTES) -> Iterator[list | None]:
    """A JSON list of objects (``raw``) decoded by ``decoder`` (a list type) in parts of
    about ``part_bytes``, so that only one part's records exist at a time; yields each
    part's records in order, or None (and stops) when a part does not fit the type.

    Parts are cut at "}, {" between objects. A cut that falls inside a string or a nested
    list makes its part invalid JSON (an unclosed string or bracket), so a wrong cut is a
    None, never other records.
    """
    begin = raw.find(b"[")
    end = raw.rfind(b"]")
    if begin < 0 or end < begin or raw[:begin].strip() or raw[end + 1:].strip():
        yield None
        return
    start = begin + 1
    while True:
        cut = _OBJECT_BOUNDARY.search(raw, start + part_bytes, end) \
            if start + part_bytes < end else None
        stop = end if cut is None else cut.start() + 1
        records = decode_typed(b"[" + raw[start:stop] + b"]", decoder)
        yield records
        if records is None or cut is None:
            return
        start = cut.end() - 1


def convert_typed(data: Any, kind: Any) -> Any | None:
    """Python objects (loaded JSON) as the typed records ``kind``, with the same type rules
    as decoding; None when they do not fit."""
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError:
        return None


def decode_typed_lines(raw: bytes, decoder: msgspec.json.Decoder) -> list | None:
    """The non-blank lines of ``raw`` (JSON lines, e.g. an ``.odgt``) decoded by ``decoder``,
    or None when one of them does not fit its type."""
    try:
        return decoder.decode_lines(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def float_column(values: Sequence[float]) -> np.ndarray:
    """(N,) float64 array of N numbers."""
    return np.fromiter(values, np.float64, count=len(values))


def int_column(values: Sequence[int]) -> np.ndarray:
    """(N,) int64 array of N integers (OverflowError beyond int64)."""
    return np.fromiter(values, np.int64, count=len(values))


def box_column(boxes: Sequence[Sequence[float]]) -> np.ndarray:
    """(N, 4) float64 array of N boxes of 4 numbers each."""
    flat = np.fromiter(itertools.chain.from_iterable(boxes), np.float64, count=4 * len(boxes))
    return flat.reshape(len(boxes), 4)


def parse_json(raw: bytes, path: str | Path) -> Any:
    """``raw`` parsed by the standard library; a syntax error names the file and line."""
    try:
        with gc_paused():
            return json.loads(raw)
    except UnicodeDecodeError as e:
        raise DataError(path, f"not UTF-8 text: {e.reason}") from None
    except json.JSONDecodeError as e:
        raise DataError(path, f"invalid JSON: {e.msg} (column {e.colno})",
                        line=e.lineno) from None


def parse_json_lines(raw: bytes, path: str | Path) -> tuple[list[int], list[Any]]:
    """(1-based line numbers, records) of the non-blank lines of a JSON-lines file;
    malformed JSON names the file and line."""
    lines, records = [], []
    with gc_paused():
        for line_number, text in enumerate(raw.split(b"\n"), start=1):
            if not text.strip():
                continue
            try:
                records.append(json.loads(text))
            except UnicodeDecodeError as e:
                raise DataError(path, f"not UTF-8 text: {e.reason}", line=line_number) from None
            except json.JSONDecodeError as e:
                raise DataError(path, f"malformed JSON: {e.msg} (column {e.colno})",
                                line=line_number) from None
            lines.append(line_number)
    return lines, records


# The benchmark a converted dataset json was made for (``info.dataset``, written by
# `lla data convert` and the synthcrowd converters) -> the command that evaluates it.
EVALUATOR_OF_DATASET = {"crowdhuman": "lla eval crowdhuman",
                        "citypersons": "lla eval citypersons"}


def check_dataset(info: Any, evaluator: str, source: str | Path | None) -> None:
    """DataError when a dataset json's ``info.dataset`` names the other benchmark than
    ``evaluator`` ("crowdhuman" or "citypersons"); a json without it is accepted."""
    dataset = info.get("dataset") if isinstance(info, dict) else None
    if dataset in EVALUATOR_OF_DATASET and dataset != evaluator:
        raise DataError(source, f"this dataset json was converted for {dataset} "
                        f"(info.dataset {dataset!r}), not {evaluator}: evaluate it with "
                        f"`{EVALUATOR_OF_DATASET[dataset]}` (to apply the {evaluator} "
                        f"protocol anyway, remove info.dataset)")
