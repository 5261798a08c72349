"""Errors raised on bad input: each names the file and the record it came from."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input data.

    The message always starts with the file (and, where known, the line or record)
    so a user can open the file at the right place::

        annotation_train.odgt:17: box 3 of image 'abc' has non-positive width (-2.0)
    """

    def __init__(self, path: str | Path | None, message: str, *, line: int | None = None,
                 record: str | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        self.record = record
        self.reason = message
        where = self.path or "<input>"
        if line is not None:
            where = f"{where}:{line}"
        if record is not None:
            where = f"{where} [{record}]"
        super().__init__(f"{where}: {message}")
