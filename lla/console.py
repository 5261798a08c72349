"""Progress bars of long commands: a tqdm bar on stderr when it is a terminal, nothing
otherwise, so the pipeline's job logs (stderr redirected to a file) stay clean.

    for item in progress(items, desc="synth crowdhuman train", unit="img"):
        ...
    with progress(total=len(images), desc="infer", unit="img") as bar:
        bar.update(len(batch))
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str,
             unit: str = "it", enabled: bool = True) -> Any:
    """A tqdm bar over ``iterable`` (or updated by hand: ``total``, ``bar.update(n)``),
    drawn only when ``enabled`` (e.g. on rank 0 only) and stderr is a terminal; the bar is
    cleared when done."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                disable=None if enabled else True)
