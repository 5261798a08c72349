"""Runs: an experiment trained once per seed.

An experiment of ``params.yaml`` is trained ``n`` times (its seed count, see
:func:`seed_count`); run ``i`` uses seed ``s0 + i`` where ``s0`` is the experiment's own
``seed`` (else ``train.seed`` of the profile). Runs are named by a *run id*:

* run 0 keeps the experiment's name (``lla_fcos_r50``), so a single-seed profile (the
  paper's) has exactly one run per experiment under its plain name;
* run ``i > 0`` is ``<experiment>__seed<s0 + i>`` (``lla_fcos_r50__seed1``).

Every pipeline path uses the run id (``runs/<profile>/<run>/``,
``results/<profile>/metrics/<run>.json``); tables average an experiment's runs.

The seed count of an experiment in a profile comes from the per-profile ``seeds`` block::

    seeds:
      defaults: {default: 1, tables: {}, experiments: {}}
      mini: {tables: {table1: 3, table2: 3}}

``experiments.<name>`` sets it directly; otherwise it is the largest ``tables.<table>`` over
the tables that show the experiment; otherwise ``default``.
"""

from __future__ import annotations

import re
from typing import Any

from lla.config import DEFAULT_PARAMS, section
from lla.errors import DataError

SEED_SEPARATOR = "__seed"
_RUN_ID = re.compile(rf"^(?P<experiment>.+?){SEED_SEPARATOR}(?P<seed>\d+)$")


def split_run_id(run: str) -> tuple[str, int | None]:
    """``(experiment, seed)`` of a run id; ``seed`` is None for run 0 (the plain name)."""
    match = _RUN_ID.match(run)
    if match is None:
        return run, None
    return match["experiment"], int(match["seed"])


def base_seed(params: dict[str, Any], experiment: str, profile: str) -> int:
    """``s0``: the experiment's ``seed``, else the profile's ``train.seed`` (default 0)."""
    spec = (params.get("experiments") or {}).get(experiment) or {}
    if "seed" in spec:
        return int(spec["seed"])
    return int(section(params, "train", profile).get("seed", 0))


def _tables_showing(params: dict[str, Any], experiment: str) -> list[str]:
    shown = []
    for name, spec in (params.get("tables") or {}).items():
        for row in (spec or {}).get("rows", {}).values():
            names = [row["experiment"]] if "experiment" in row else list(row.get("cells", {}).values())
            if experiment in names:
                shown.append(name)
                break
    return shown


def seed_count(params: dict[str, Any], experiment: str, profile: str) -> int:
    """How many runs (seeds) ``experiment`` gets in ``profile`` (module docstring; the
    counts were validated with params: lla.config.validate_params)."""
    if experiment not in (params.get("experiments") or {}):
        raise DataError(getattr(params, "path", DEFAULT_PARAMS),
                        f"unknown experiment '{experiment}'", record="experiments")
    block = section(params, "seeds", profile) if "seeds" in params else {}
    if experiment in (block.get("experiments") or {}):
        return block["experiments"][experiment]
    per_table = block.get("tables") or {}
    counts = [per_table[t] for t in _tables_showing(params, experiment) if t in per_table]
    return max(counts) if counts else block.get("default", 1)


def run_ids(params: dict[str, Any], experiment: str, profile: str) -> list[str]:
    """The run ids of ``experiment`` in ``profile``: its name, then ``<name>__seed<s>``."""
    count = seed_count(params, experiment, profile)
    if count == 1:
        return [experiment]
    s0 = base_seed(params, experiment, profile)
    return [experiment] + [f"{experiment}{SEED_SEPARATOR}{s0 + i}" for i in range(1, count)]
