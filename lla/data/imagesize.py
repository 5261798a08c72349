"""Image width/height from file headers, cached on disk.

Neither CrowdHuman's `.odgt` nor CityPersons' `.mat` files record image sizes, yet the
converted json must carry them (the evaluators clip to them, the sampler groups by them).
PIL reads the size from the header without decoding pixels; the result is cached in a
json file keyed by the image's path, byte size and modification time, so a second
conversion of an unchanged dataset opens no image at all.

Cache file format (one entry per image, path relative to the cache's directory)::

    {"version": 1,
     "images": {"Images/273271,c9db000d5146c15.jpg":
                    {"bytes": 81234, "mtime_ns": 1690000000000000000, "width": 800, "height": 600}}}
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from lla.errors import DataError
from lla.io import atomic_write_json

log = logging.getLogger(__name__)

CACHE_FILE_NAME = ".lla_image_sizes.json"
CACHE_VERSION = 1


def read_image_size(path: str | Path) -> tuple[int, int]:
    """Return ``(width, height)`` of an image, read from its header (no pixel decoding).

    Raises ``DataError`` naming the image when PIL cannot identify the file.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(path, f"cannot read the image header: {e}") from None
    return int(width), int(height)


class ImageSizeCache:
    """Sizes of the images under ``cache_path``'s directory, persisted in ``cache_path``.

    ``size(path)`` stats the file and returns the cached ``(width, height)`` when the byte
    size and modification time still match, otherwise reads the header (through the
    module-level :func:`read_image_size`) and records it. Call :meth:`save` to write the
    cache back (atomically; a no-op when nothing changed). An unreadable or outdated cache
    file is ignored with a warning and rebuilt: it only ever saves time.

    Attributes:
        headers_read: number of image headers read since construction (0 when every size
            came from the cache).
    """

    def __init__(self, cache_path: str | Path):
        self.cache_path = Path(cache_path)
        self.base_dir = self.cache_path.parent
        self.headers_read = 0
        self._entries: dict[str, dict[str, int]] = self._load()
        self._dirty = False

    def _load(self) -> dict[str, dict[str, int]]:
        if not self.cache_path.exists():
            return {}
        try:
            with open(self.cache_path, encoding="utf-8") as f:
                content = json.load(f)
            if content.get("version") != CACHE_VERSION \
                    or not isinstance(content.get("images"), dict):
                raise ValueError(f"expected version {CACHE_VERSION}")
            return content["images"]
        except (OSError, ValueError, AttributeError) as e:
            log.warning("ignoring unreadable image-size cache %s (%s); it will be rebuilt",
                        self.cache_path, e)
            return {}

    def _key(self, path: Path) -> str:
        """Cache key: the path relative to the cache's directory when below it, else absolute."""
        absolute = Path(os.path.abspath(path))
        try:
            return absolute.relative_to(os.path.abspath(self.base_dir)).as_posix()
        except ValueError:
            return absolute.as_posix()

    def size(self, path: str | Path) -> tuple[int, int]:
        """``(width, height)`` of the image at ``path``.

        Raises ``FileNotFoundError`` when the file does not exist (callers turn it into a
        ``DataError`` naming the annotation record) and ``DataError`` when it is not an image.
        """
        path = Path(path)
        stat = path.stat()
        key = self._key(path)
        entry = self._entries.get(key)
        if entry is not None and entry.get("bytes") == stat.st_size \
                and entry.get("mtime_ns") == stat.st_mtime_ns:
            return int(entry["width"]), int(entry["height"])
        width, height = read_image_size(path)
        self.headers_read += 1
        self._entries[key] = {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                              "width": width, "height": height}
        self._dirty = True
        return width, height

    def save(self) -> None:
        """Write the cache atomically if it changed. A read-only dataset root only warns."""
        if not self._dirty:
            return
        try:
            atomic_write_json(self.cache_path, {"version": CACHE_VERSION, "images": self._entries})
        except OSError as e:
            log.warning("could not write the image-size cache %s (%s); the next conversion "
                        "will read the image headers again", self.cache_path, e)
            return
        self._dirty = False
