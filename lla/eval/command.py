"""What the `lla eval ...` commands do before evaluating.

:func:`check_paths` stops a command before it reads anything when an input is missing, a
directory or not UTF-8 text, or the output path is a directory (``error: PATH: reason``,
exit code 2).

:func:`reuse_freed_memory` tunes memory allocation for a short process that builds and
drops many arrays of a few MB: glibc's allocator keeps freed memory for reuse instead of
returning it to the kernel and mapping fresh pages for the next array (a page fault per
4 KB on first use), and numpy asks for no transparent huge pages (zeroing 2 MB pages for
arrays used once costs more kernel time than it saves). On the CrowdHuman-val-sized input
of benchmarks/eval_crowdhuman.py this removes most of the command's kernel (system) time.
It changes process-wide settings, so only the commands call it, never the library
functions.
"""

from __future__ import annotations

import codecs
import ctypes
import sys
from pathlib import Path

from lla.errors import DataError
from lla.eval.json_input import check_input_file

M_TRIM_THRESHOLD = -1    # glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
LARGEST_HEAP_ALLOCATION = 32 << 20   # glibc's maximum mmap threshold on 64-bit systems
KEEP_FREED = 1 << 30
TEXT_CHECKED = 4096  # bytes of each input checked to be UTF-8 before anything reads it


def reuse_freed_memory() -> None:
    """Ask for no transparent huge pages for numpy arrays; serve allocations up to 32 MB
    from the heap and keep freed heap memory (glibc only)."""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:
        pass
    else:
        _set_madvise_hugepage(False)
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, LARGEST_HEAP_ALLOCATION)
        libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREED)
    except (OSError, AttributeError):  # not glibc
        return


def check_paths(inputs: list[Path], out: Path | None) -> None:
    """DataError unless every input is an existing file that starts as UTF-8 text and
    ``out`` (if any) is not a directory."""
    for path in inputs:
        check_input_file(path)
        with open(path, "rb") as f:
            start = f.read(TEXT_CHECKED)
        try:  # a character cut at the end of the read bytes is not an error
            codecs.getincrementaldecoder("utf-8")().decode(start, final=False)
        except UnicodeDecodeError as e:
            raise DataError(path, f"not UTF-8 text: {e.reason}") from None
    if out is not None and out.is_dir():
        raise DataError(out, "is a directory; --out names the metrics file to write")
