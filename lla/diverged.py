"""Runs that did not converge (the paper's "-"): the record the pipeline's files carry.

A training run that meets a non-finite loss stops (``lla train``). With ``--on-diverge
record`` (what the pipeline passes) it exits 0 and says so in its outputs instead of
failing its job:

* ``model_final.pt`` holds the last good weights and ``"diverged": {"iteration", "terms"}``;
* the detections file (``--infer-out``, or ``lla infer`` of such a checkpoint) is the JSON
  object ``{"diverged": {...}}`` instead of a list of detections.

Evaluators and the analyses that feed tables (``lla analyze aar``, ``visible``) pass that
on as the result ``{"diverged": true, "iteration": ..., "terms": [...]}``, which the tables
show as "—". Training, inference, evaluation, analyses and tables all read or write this
record, so it lives below all of them and imports nothing but :mod:`lla.io`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from lla.io import atomic_write_json

logger = logging.getLogger(__name__)


def detections_divergence(path: str | Path) -> dict[str, Any] | None:
    """The ``diverged`` record of a detections file, or None for a list of detections.

    Only a file that starts with ``{`` is parsed here, so a large detections list is read
    once, by the evaluator."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        head = f.read(64).lstrip()
        if not head.startswith("{"):
            return None
        f.seek(0)
        try:
            data = json.load(f)
        except json.JSONDecodeError:
            return None  # the evaluator reports the syntax error with its line
    if isinstance(data, dict) and isinstance(data.get("diverged"), dict):
        return data["diverged"]
    return None


def write_diverged_detections(out: str | Path, record: dict[str, Any]) -> None:
    """The detections file of a diverged run: ``{"diverged": record}`` (no list)."""
    atomic_write_json(out, {"diverged": record})


def checkpoint_divergence(state: dict[str, Any]) -> dict[str, Any] | None:
    """The ``diverged`` record of a loaded checkpoint, or None."""
    record = state.get("diverged")
    return record if isinstance(record, dict) else None


def diverged_result(record: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The result json of a diverged run: ``{"diverged": true, "iteration", "terms", ...}``."""
    return {"diverged": True, "iteration": record.get("iteration"),
            "terms": list(record.get("terms") or []), **extra}


def write_diverged_result(out: str | Path, record: dict[str, Any], **extra: Any) -> None:
    atomic_write_json(out, diverged_result(record, **extra), indent=2)


def pass_on_detections_divergence(detections: str | Path, out: str | Path | None) -> bool:
    """For an evaluator: when ``detections`` records a divergence, write the diverged result
    to ``out`` (when given) and return True (nothing to evaluate); else False."""
    record = detections_divergence(detections)
    if record is None:
        return False
    if out is not None:
        write_diverged_result(out, record, detections=str(detections))
    logger.warning("%s: the run diverged at iteration %s (%s): no metrics", detections,
                   record.get("iteration"), ", ".join(record.get("terms") or []))
    return True


def pass_on_checkpoint_divergence(state: dict[str, Any], checkpoint: str | Path, out: str | Path,
                                  **extra: Any) -> bool:
    """For an analysis of a checkpoint: when it records a divergence, write the diverged
    result (with the experiment, the checkpoint and ``extra``) to ``out`` and return True."""
    record = checkpoint_divergence(state)
    if record is None:
        return False
    write_diverged_result(out, record, experiment=state["config"]["name"],
                          checkpoint=str(checkpoint), **extra)
    logger.warning("%s: the run diverged at iteration %s: nothing to analyse -> %s", checkpoint,
                   record.get("iteration"), out)
    return True
