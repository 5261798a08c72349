"""params.yaml: the single source of truth for every setting of the pipeline.

Code reads parameters only through this module. ``load_params`` returns the raw
mapping; ``section`` picks a block and merges a profile's overrides onto its
``defaults`` (``block[profile]`` wins key by key, recursively).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from lla.data import registry
from lla.errors import DataError

DEFAULT_PARAMS = Path("params.yaml")


class Params(dict):
    """The parsed parameter file: a plain mapping that remembers the file it came from,
    so that configuration errors name that file."""

    def __init__(self, data: dict[str, Any], path: str | Path):
        super().__init__(data)
        self.path = Path(path)


# Params dumps like the plain mapping it is (yaml.safe_dump(params) keeps working).
yaml.SafeDumper.add_representer(Params, yaml.SafeDumper.represent_dict)
yaml.Dumper.add_representer(Params, yaml.Dumper.represent_dict)


def _source(params: dict[str, Any]) -> Path:
    return getattr(params, "path", DEFAULT_PARAMS)


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            params = yaml.safe_load(f)
    except FileNotFoundError:
        raise DataError(path, "parameter file not found (run from the repository root "
                              "or pass --params)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise DataError(path, f"invalid YAML: {getattr(e, 'problem', e)}",
                        line=None if mark is None else mark.line + 1) from None
    if not isinstance(params, dict):
        raise DataError(path, "expected a mapping at the top level")
    return Params(params, path)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``base`` with ``override`` merged in (nested dicts merged key by key)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def section(params: dict[str, Any], name: str, profile: str | None = None) -> dict[str, Any]:
    """``params[name]['defaults']`` with ``params[name][profile]`` merged over it.

    A block without ``defaults`` is returned as is (copied). An unknown profile is an
    error naming the profiles the block defines.
    """
    if name not in params:
        raise DataError(_source(params), f"no section '{name}'")
    block = params[name]
    if not isinstance(block, dict) or "defaults" not in block:
        return copy.deepcopy(block)
    merged = copy.deepcopy(block["defaults"])
    if profile is not None:
        if profile not in block:
            known = sorted(k for k in block if k != "defaults")
            raise DataError(_source(params), f"section '{name}' has no profile '{profile}' "
                                            f"(known: {', '.join(known)})")
        merged = deep_merge(merged, block[profile] or {})
    return merged


DATA_SOURCES = ("download", "synthcrowd")


def profile_names(params: dict[str, Any]) -> list[str]:
    return list(params.get("profiles", {}))


def dataset_source(params: dict[str, Any], profile: str, dataset: str) -> str:
    """Where ``dataset`` (a name of :mod:`lla.data.registry`) comes from in ``profile``."""
    profiles = params.get("profiles", {})
    if profile not in profiles:
        raise DataError(_source(params), f"unknown profile '{profile}' "
                                        f"(known: {', '.join(profiles) or 'none'})")
    if dataset not in registry.names():
        raise DataError(_source(params), f"unknown dataset '{dataset}' "
                                        f"(known: {', '.join(registry.names())})")
    source = profiles[profile].get("datasets", {}).get(dataset)
    if source not in DATA_SOURCES:
        raise DataError(_source(params), f"profiles.{profile}.datasets.{dataset} is {source!r}; "
                                        f"expected one of {', '.join(DATA_SOURCES)}")
    return source


def selected_profile(params: dict[str, Any], requested: str | None) -> str:
    """The profile a command runs: ``--profile`` when given, else params' top-level ``profile``."""
    profile = requested or params.get("profile")
    if not profile:
        raise DataError(_source(params), "no --profile given and no top-level 'profile' key")
    return str(profile)
