"""What the `lla eval ...` commands do before evaluating.

:func:`reuse_freed_memory` tunes glibc's allocator for a short process that builds and
drops many arrays of a few to a few tens of MB: by default each such array gets fresh
pages from the kernel (an mmap, then a page fault per 4 KB on first use) and gives them
back when freed; keeping freed memory in the process for reuse removes most of those
faults. On a CrowdHuman-val-sized input this took about 0.3 s off the command
(``benchmarks/eval_crowdhuman.py``); the peak memory stays the same within a few
percent. It changes the process's allocator settings, so only the commands call it,
never the library functions.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1    # glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
LARGEST_HEAP_ALLOCATION = 32 << 20   # glibc's maximum mmap threshold on 64-bit systems
KEEP_FREED = 1 << 30


def reuse_freed_memory() -> None:
    """Serve allocations up to 32 MB from the heap and keep freed heap memory (glibc only;
    does nothing elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, LARGEST_HEAP_ALLOCATION)
        libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREED)
    except (OSError, AttributeError):  # not glibc
        return
