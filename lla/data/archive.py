"""Safe, restartable unpacking of downloaded zip archives.

``unpack_zip`` extracts every member into a temporary directory beside the target,
then moves each file into place with ``os.replace`` (atomic within one file system),
so a reader never sees a half-written file. A marker, written last, records which
archive (by its sha256) has been unpacked: an interrupted unpack has no marker and is
simply redone, a finished one is skipped on the next run.

Members that would land outside the target (absolute paths, ``..`` components,
drive letters) are rejected before anything is written.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from lla.errors import DataError
from lla.io import atomic_write_json, read_json

log = logging.getLogger(__name__)

# Markers live in this directory of the unpack target, one JSON file per archive.
MARKER_DIR = ".lla-unpacked"
# Temporary extraction directories start with this prefix (left-overs of a killed run
# are removed on the next one).
TEMP_PREFIX = ".lla-unpack-"
_COPY_BUFFER_BYTES = 1 << 20


def marker_path(target_dir: str | Path, archive_name: str) -> Path:
    return Path(target_dir) / MARKER_DIR / f"{archive_name}.json"


def is_unpacked(target_dir: str | Path, archive_name: str, sha256: str) -> bool:
    """True when ``archive_name`` with this sha256 has been fully unpacked into ``target_dir``."""
    marker = marker_path(target_dir, archive_name)
    if not marker.is_file():
        return False
    return read_json(marker).get("sha256") == sha256


def safe_member_path(archive: Path, name: str) -> PurePosixPath | None:
    """The relative path a zip member is extracted to, or None for the archive root.

    Raises DataError for a name that would escape the target directory: an absolute
    path, a Windows drive or UNC prefix, or a ``..`` component (backslashes count as
    separators, as some Windows zip tools write them).
    """
    normalized = name.replace("\\", "/")
    parts = [p for p in normalized.split("/") if p not in ("", ".")]
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        raise DataError(archive, f"member {name!r} has an absolute path; refusing to unpack")
    if ".." in parts:
        raise DataError(archive, f"member {name!r} points outside the target directory "
                                 "('..' in its path); refusing to unpack")
    return PurePosixPath(*parts) if parts else None


def _remove_stale_temp_dirs(target_dir: Path, archive_name: str) -> None:
    for stale in target_dir.glob(f"{TEMP_PREFIX}{archive_name}-*"):
        if stale.is_dir():
            log.info("removing the left-over of an interrupted unpack: %s", stale)
            shutil.rmtree(stale, ignore_errors=True)


def _move_tree(source: Path, target: Path) -> None:
    """Move every file under ``source`` to the same relative path under ``target``.

    Existing files are replaced (several archives may share a top-level directory,
    e.g. CrowdHuman's ``Images/``); directories are merged.
    """
    for dirpath, _dirnames, filenames in os.walk(source):
        relative = Path(dirpath).relative_to(source)
        (target / relative).mkdir(parents=True, exist_ok=True)
        for filename in filenames:
            os.replace(Path(dirpath) / filename, target / relative / filename)


def unpack_zip(archive: str | Path, target_dir: str | Path, sha256: str) -> bool:
    """Extract ``archive`` into ``target_dir``; return False when it was already unpacked.

    ``sha256`` identifies this version of the archive in the marker. Raises DataError
    for an unreadable or corrupt archive (zipfile checks each member's CRC) and for
    unsafe member names; in both cases nothing is moved into ``target_dir``.
    """
    archive = Path(archive)
    target_dir = Path(target_dir)
    if is_unpacked(target_dir, archive.name, sha256):
        log.info("%s: already unpacked into %s", archive.name, target_dir)
        return False
    target_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_dirs(target_dir, archive.name)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(archive, f"not a readable zip archive: {e}") from None
    with zf:
        members = zf.infolist()
        destinations = [safe_member_path(archive, m.filename) for m in members]
        log.info("%s: unpacking %d members into %s", archive.name, len(members), target_dir)
        temp_dir = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{archive.name}-", dir=target_dir))
        try:
            n_files = 0
            for member, relative in zip(members, destinations):
                if relative is None:
                    continue
                destination = temp_dir / relative
                if member.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(destination, "wb") as dst:
                    shutil.copyfileobj(src, dst, _COPY_BUFFER_BYTES)
                n_files += 1
            _move_tree(temp_dir, target_dir)
        except (zipfile.BadZipFile, EOFError) as e:
            raise DataError(archive, f"corrupt zip archive: {e}") from None
        finally:
            shutil.rmtree(temp_dir, ignore_errors=True)
    atomic_write_json(marker_path(target_dir, archive.name),
                      {"archive": archive.name, "sha256": sha256, "files": n_files}, indent=1)
    log.info("%s: unpacked %d files", archive.name, n_files)
    return True
