"""Wall time of an evaluator's phases, logged at debug level (``lla -v eval ...``).

Each phase logs one line ``phase NAME: SECONDS s``; ``benchmarks/eval_*.py`` read them to
split a command's time into parsing, matching, metrics and the optional parts.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Iterator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    log.debug("phase %s: %.4f s", name, time.perf_counter() - start)
