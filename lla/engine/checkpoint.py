"""Checkpoints: atomic files under ``<out>/checkpoints/``, discovery, pruning, RNG states.

A training checkpoint ``checkpoints/iter_<7 digits>.pt`` is a dict

    ============ ==========================================================================
    format       CHECKPOINT_FORMAT (bumped on incompatible changes)
    iteration    finished iterations (optimizer steps)
    model        the detector's state_dict (unwrapped from DDP)
    optimizer    optimizer.state_dict() (momentum buffers, per-group lr and decay)
    scheduler    the lr scheduler's state_dict
    scaler       the AMP GradScaler's state_dict (empty when AMP is off)
    sampler      GroupedBatchSampler.state_dict(consumed=...) (epoch, position)
    rng          one RNG state per rank (python, numpy, torch, cuda), see rng_state()
    world_size   the number of ranks that wrote it
    config       the resolved experiment (lla.engine.experiment.Experiment.to_dict())
    ============ ==========================================================================

and ``model_final.pt`` holds ``format``, ``iteration``, ``model`` and ``config`` only.
Every file is written to a temporary name and renamed (``lla.io.atomic_path``), so a
job killed while saving leaves the previous checkpoint intact. Files are loaded with
``torch.load(weights_only=True)``: only tensors and plain containers, no pickled code.
"""

from __future__ import annotations

import random
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lla import layout
from lla.errors import DataError
from lla.io import atomic_path

CHECKPOINT_FORMAT = 1
CHECKPOINT_DIR = "checkpoints"
FINAL_MODEL = layout.FINAL_CHECKPOINT
_CHECKPOINT_NAME = re.compile(r"^iter_(\d{7,})\.pt$")


def checkpoint_path(out_dir: str | Path, iteration: int) -> Path:
    return Path(out_dir) / CHECKPOINT_DIR / f"iter_{iteration:07d}.pt"


def list_checkpoints(out_dir: str | Path) -> list[tuple[int, Path]]:
    """``(iteration, path)`` of the training checkpoints in ``out_dir``, by iteration."""
    folder = Path(out_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _CHECKPOINT_NAME.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    checkpoints = list_checkpoints(out_dir)
    return checkpoints[-1][1] if checkpoints else None


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically to ``path`` (parent folders created)."""
    path = Path(path)
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU; a missing or unreadable file is a :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint not found")
    if not zipfile.is_zipfile(path):
        raise DataError(path, "cannot read the checkpoint: not a file written by torch.save "
                              "(no zip archive)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(path, f"cannot read the checkpoint: {reason}") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise DataError(path, "not an lla checkpoint (no 'model' / 'config' entries)")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise DataError(path, f"checkpoint format {state.get('format')!r}, this version reads "
                              f"{CHECKPOINT_FORMAT}")
    return state


def prune_checkpoints(out_dir: str | Path, *, keep_last: int,
                      keep_iterations: Iterable[int]) -> list[Path]:
    """Delete training checkpoints except the ``keep_last`` newest and ``keep_iterations``.

    Returns the deleted paths.
    """
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1, got {keep_last}")
    keep = set(int(i) for i in keep_iterations)
    checkpoints = list_checkpoints(out_dir)
    deleted = []
    for iteration, path in checkpoints[:-keep_last]:
        if iteration not in keep:
            path.unlink(missing_ok=True)
            deleted.append(path)
    return deleted


# ---------------------------------------------------------------------------- RNG states

def rng_state() -> dict[str, Any]:
    """This process's RNG states as tensors and plain containers (``weights_only``-loadable).

    Keys: ``python`` (``random.getstate()``), ``numpy`` (the legacy global MT19937 state:
    ``keys`` uint32 as int64 (624,), ``pos``, ``has_gauss``, ``cached_gaussian``),
    ``torch`` (CPU generator, uint8), ``cuda`` (one uint8 tensor per visible device).
    """
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    if name != "MT19937":
        raise RuntimeError(f"unexpected numpy RNG {name}")
    return {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA states only if the device count matches)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["pos"], numpy_state["has_gauss"],
                         numpy_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
