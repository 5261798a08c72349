"""params.yaml: the single source of truth for every setting of the pipeline.

Code reads parameters only through this module. :func:`load_params` reads the file and
validates it (:func:`validate_params`); :func:`section` picks a block and merges a
profile's overrides onto its ``defaults`` (``block[profile]`` wins key by key, recursively);
:func:`resolve_variant` resolves a detector variant of the ``models`` block.

Validation is one path for the ``lla`` commands and the Snakefile alike: the schema
``lla/schema/params.schema.yaml`` (every block, unknown keys rejected everywhere), then the
cross-references the schema cannot express (a variant, experiment, table, row, column or
schedule named elsewhere must exist; ``base:`` chains must end). The first problem is one
:class:`~lla.errors.DataError` naming the file, the line and the key path::

    params.yaml:512 [train.mini.base_lrr]: unknown key (did you mean 'base_lr'?)
"""

from __future__ import annotations

import copy
import difflib
import functools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from lla import datasets
from lla.errors import DataError

DEFAULT_PARAMS = Path("params.yaml")
SCHEMA_PATH = Path(__file__).with_name("schema") / "params.schema.yaml"
DATA_SOURCES = ("download", "synthcrowd")
PER_PROFILE = "x-per-profile"
MESSAGE = "x-message"
ORDERED = "x-ordered"
DEFAULTS = "defaults"

KeyPath = tuple[Any, ...]


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


# libyaml's parser when PyYAML has it (the same values, ten times faster)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: str | Path, what: str = "parameter file") -> Any:
    """A YAML file's content; DataError (with the line) when missing or malformed."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=_LOADER)
    except FileNotFoundError:
        raise DataError(path, f"{what} not found (run from the repository root "
                              "or pass --params)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise DataError(path, f"invalid YAML: {getattr(e, 'problem', e)}",
                        line=None if mark is None else mark.line + 1) from None


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate a parameter file (see the module docstring)."""
    path = Path(path)
    params = read_yaml(path)
    if not isinstance(params, dict):
        raise DataError(path, "expected a mapping at the top level")
    params = Params(params, path)
    validate_params(params, [path])
    return params


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

    A block without ``defaults`` is returned as is (copied). A profile of ``profiles``
    without a block of its own gets the defaults; any other profile is an error naming the
    profiles the block defines.
    """
    if name not in params:
        raise DataError(_source(params), f"no section '{name}'")
    block = params[name]
    if not isinstance(block, dict) or DEFAULTS not in block:
        return copy.deepcopy(block)
    merged = copy.deepcopy(block[DEFAULTS])
    if profile is not None:
        if profile not in block and profile not in (params.get("profiles") or {}):
            known = sorted(k for k in block if k != DEFAULTS)
            raise DataError(_source(params), f"section '{name}' has no profile '{profile}' "
                                            f"(known: {', '.join(known)})")
        merged = deep_merge(merged, block.get(profile) or {})
    return merged


def profile_names(params: dict[str, Any]) -> list[str]:
    return list(params.get("profiles", {}))


def dataset_source(params: dict[str, Any], profile: str, dataset: str) -> str:
    """``download`` or ``synthcrowd``: where ``dataset`` comes from in ``profile``."""
    return params["profiles"][profile]["datasets"][dataset]


def selected_profile(params: dict[str, Any], requested: str | None) -> str:
    """The profile a command runs: ``--profile`` when given, else params' top-level ``profile``."""
    profile = requested or params.get("profile")
    if not profile:
        raise DataError(_source(params), "no --profile given and no top-level 'profile' key")
    known = profile_names(params)
    if "profiles" in params and profile not in known:
        raise DataError(_source(params), f"unknown profile '{profile}' (--profile; known: "
                                        f"{', '.join(known)})")
    return str(profile)


# ---------------------------------------------------------------------------- variants

VARIANTS = "variants"
REPLACED_WHEN_NAMED = ("assigner",)


def variant_names(params: dict[str, Any], profile: str | None = None) -> list[str]:
    """Names of the detector variants defined for ``profile``, in file order."""
    return list(section(params, "models", profile).get(VARIANTS) or {})


def _merge_variant(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """``own`` over ``base``; a block that names its own assigner replaces the inherited
    one whole (the keywords of one assigner make no sense for another)."""
    out = copy.deepcopy(base)
    for key, value in own.items():
        if key in REPLACED_WHEN_NAMED and isinstance(value, dict) and "name" in value:
            out[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_variant(params: dict[str, Any], variant: str, profile: str | None = None) -> dict[str, Any]:
    """The complete settings of one variant for ``profile``: the shared settings of
    ``models`` (defaults + profile), then the variant's ``base`` chain, then its own keys."""
    return _resolve(params, section(params, "models", profile), variant)


def _resolve(params: dict[str, Any], models: dict[str, Any], variant: str) -> dict[str, Any]:
    """:func:`resolve_variant` from the merged ``models`` block of a profile."""
    shared = {key: value for key, value in models.items() if key != VARIANTS}
    variants = models.get(VARIANTS) or {}

    def chain(name: str, seen: tuple[str, ...]) -> dict[str, Any]:
        if name not in variants:
            where = f" (base of '{seen[-1]}')" if seen else ""
            raise DataError(_source(params), f"models.variants has no '{name}'{where}; known: "
                                            f"{', '.join(variants)}", record=f"models.variants.{name}")
        if name in seen:
            raise DataError(_source(params), f"variant inheritance loop: "
                                            f"{' -> '.join(seen + (name,))}",
                            record=f"models.variants.{name}")
        own = dict(variants[name] or {})
        parent = own.pop("base", None)
        inherited = chain(parent, seen + (name,)) if parent else {}
        return _merge_variant(inherited, own)

    return _merge_variant(shared, chain(variant, ()))


# ---------------------------------------------------------------------------- the schema

def _partial(node: Any) -> Any:
    """A copy of a schema with every ``required`` dropped (``if`` conditions kept) and its
    ``$defs`` references pointed at the partial twins."""
    if isinstance(node, list):
        return [_partial(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "required":
            continue
        if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
            out[key] = f"{value}__partial"
        elif key == "if":
            out[key] = copy.deepcopy(value)
        else:
            out[key] = _partial(value)
    return out


@functools.cache
def params_schema() -> dict[str, Any]:
    """The schema of params.yaml with the dataset registry filled in and a partial twin
    (``<name>__partial``) of every ``$defs`` entry."""
    schema = read_yaml(SCHEMA_PATH, "params schema")
    defs = schema["$defs"]
    names = list(datasets.names())
    defs["split"] = {"enum": list(datasets.SPLITS)}
    defs["dataset_name"] = {"enum": names}
    defs["dataset_sources"] = {
        "type": "object", "required": names, "additionalProperties": False,
        "properties": {name: {"enum": list(DATA_SOURCES)} for name in names}}
    for name in names:
        schema["properties"][name] = {"$ref": "#/$defs/dataset_block"}
        schema["required"].append(name)
    scene = defs["synthcrowd_scene"]
    for flavour in datasets.synthcrowd_flavours():
        extra = defs.get(f"synthcrowd_{flavour}", {})
        flavour_schema = copy.deepcopy(scene)
        flavour_schema["properties"].update(extra.get("properties", {}))
        flavour_schema["required"] = scene["required"] + extra.get("required", [])
        defs[f"synthcrowd_scene_{flavour}"] = flavour_schema
        defs["synthcrowd"]["properties"][flavour] = {"$ref": f"#/$defs/synthcrowd_scene_{flavour}"}
        defs["synthcrowd"]["required"].append(flavour)
    for name in list(defs):
        defs[f"{name}__partial"] = _partial(defs[name])
    return schema


@functools.cache
def _validator(definition: str | None):
    """A validator of ``$defs/<definition>``, or of the top level (per-profile blocks only
    checked to be mappings there) for None."""
    import jsonschema

    def ordered(validator, enabled, instance, schema):
        if enabled and validator.is_type(instance, "array") and all(
                validator.is_type(v, "number") for v in instance) and instance != sorted(instance):
            yield jsonschema.ValidationError(f"{instance!r} decreases")

    schema = params_schema()
    if definition is None:
        root = copy.deepcopy(schema)
        for name, prop in root["properties"].items():
            if PER_PROFILE in prop:
                root["properties"][name] = {"type": "object"}
    else:
        root = {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}
    validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {ORDERED: ordered})
    return validator(root)


def _message(error) -> tuple[KeyPath, str]:
    """``(key path, message)`` of a jsonschema error, the key path relative to the
    validated instance."""
    path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = schema.get("properties", {})
        extra = [key for key in error.instance if key not in known]
        return path + (extra[0],), _unknown_key(extra[0], known)
    if "propertyNames" in error.relative_schema_path:  # the instance is a key
        path += (error.instance,)
        if error.validator == "enum":
            return path, _unknown_key(error.instance, error.validator_value)
    if MESSAGE in schema:
        return path, schema[MESSAGE]
    if error.validator == "required":
        missing = [key for key in error.validator_value if key not in error.instance]
        return path, f"missing key '{missing[0]}'"
    if error.validator == "enum":
        return path, (f"must be one of {', '.join(map(str, error.validator_value))}, "
                      f"got {error.instance!r}")
    if error.validator == "type":
        types = error.validator_value
        types = " or ".join(types) if isinstance(types, list) else types
        return path, f"expected {types}, got {error.instance!r}"
    return path, error.message


def _unknown_key(key: Any, known: Any) -> str:
    names = [str(k) for k in known]
    close = difflib.get_close_matches(str(key), names, n=1)
    if close:
        return f"unknown key (did you mean '{close[0]}'?)"
    return f"unknown key (allowed: {', '.join(sorted(names))})"


def _schema_problems(instance: Any, definition: str | None,
                     prefix: KeyPath = ()) -> list[tuple[KeyPath, str]]:
    """The schema's complaints about ``instance``, unknown keys first (a misspelt key
    also shows as a missing one: the misspelling is the news)."""
    errors = list(_validator(definition).iter_errors(instance))
    errors.sort(key=lambda e: e.validator != "additionalProperties"
                and "propertyNames" not in e.relative_schema_path)
    return [(prefix + path, message) for path, message in map(_message, errors)]


# ---------------------------------------------------------------------------- validation

class _Source:
    """One parameter file: its data and (read when needed) the line of each key."""

    def __init__(self, path: Path, data: Any = None):
        self.path = path
        self._data = data
        self._nodes = None

    @property
    def data(self) -> Any:
        if self._data is None:
            self._data = read_yaml(self.path)
        return self._data

    def line(self, keys: KeyPath) -> int | None:
        """The line of the deepest node of ``keys`` the file has."""
        if self._nodes is None:
            self._nodes = yaml.compose(self.path.read_text(encoding="utf-8"), Loader=_LOADER)
        node, line = self._nodes, None
        for key in keys:
            if isinstance(node, yaml.MappingNode):
                match = [(k, v) for k, v in node.value if k.value == str(key)]
                if not match:
                    break
                line, node = match[0][0].start_mark.line + 1, match[0][1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
                line = node.start_mark.line + 1
            else:
                break
        return line


_MISSING = object()


def _lookup(data: Any, keys: KeyPath) -> Any:
    for key in keys:
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data):
            data = data[key]
        else:
            return _MISSING
    return data


def _record(keys: KeyPath) -> str:
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def validate_params(params: dict[str, Any], sources: Sequence[str | Path] = (DEFAULT_PARAMS,)) -> None:
    """Check ``params`` (the schema, then the cross-references); the first problem raises
    a DataError naming the file it comes from (of ``sources``, the files ``params`` were
    merged from, later ones winning; ``--config`` when none holds the value), its line and
    the key path."""
    problem = next(_problems(params), None)
    if problem is None:
        return
    keys, message = problem
    files = [_Source(Path(p)) for p in sources]
    value = _lookup(params, keys)
    holders = [f for f in files if _lookup(f.data, keys) is not _MISSING]
    exact = [f for f in holders if _lookup(f.data, keys) == value]
    if exact:
        source = exact[-1]
    elif value is _MISSING:  # a missing key: the file holding its block
        source = next((f for f in reversed(files) if _lookup(f.data, keys[:-1]) is not _MISSING),
                      None)
    else:  # a block merged from several files, or else a value given on the command line
        source = holders[-1] if holders and isinstance(value, (dict, list)) else None
    if source is None:
        raise DataError("--config", message, record=_record(keys) or None)
    raise DataError(source.path, message, line=source.line(keys), record=_record(keys) or None)


def _problems(params: dict[str, Any]) -> Iterator[tuple[KeyPath, str]]:
    """Every problem, schema first, in a stable order; validation stops at the first."""
    yield from _schema_problems(params, None)
    profiles = list(params["profiles"])
    if params["profile"] not in profiles:
        yield ("profile",), (f"unknown profile '{params['profile']}' (known: "
                             f"{', '.join(profiles)})")
    for name, prop in params_schema()["properties"].items():
        if PER_PROFILE in prop and name in params:  # an optional block may be absent
            yield from _per_profile_problems(params, name, prop[PER_PROFILE], profiles)
    yield from _reference_problems(params, profiles)


def _per_profile_problems(params: dict[str, Any], name: str, definition: str,
                          profiles: list[str]) -> Iterator[tuple[KeyPath, str]]:
    block = params[name]
    if DEFAULTS not in block:
        yield (name,), f"missing key '{DEFAULTS}' (a per-profile block: defaults + profiles)"
        return
    yield from _schema_problems(block[DEFAULTS], definition, (name, DEFAULTS))
    for key, override in block.items():
        if key == DEFAULTS:
            continue
        if key not in profiles:
            yield (name, key), f"unknown profile '{key}' (profiles: {', '.join(profiles)})"
        elif override is not None:
            yield from _schema_problems(override, f"{definition}__partial", (name, key))
    if name == "models":
        return  # each variant is resolved and checked whole (_reference_problems)
    for profile in profiles:
        merged = section(params, name, profile)
        for keys, message in _schema_problems(merged, definition):
            yield _where(params, name, profile, keys), f"{message} (profile '{profile}', merged)"


def _where(params: dict[str, Any], block: str, profile: str, keys: KeyPath) -> KeyPath:
    """The key path of a merged per-profile setting where the file sets it: the profile's
    override when that has it, else ``defaults``."""
    for part in (profile, DEFAULTS):
        if _lookup(params[block].get(part) or {}, keys) is not _MISSING:
            return (block, part) + keys
    return (block, profile) + keys


def _reference_problems(params: dict[str, Any],
                        profiles: list[str]) -> Iterator[tuple[KeyPath, str]]:
    experiments = params["experiments"]
    tables = params["tables"]

    def experiment(keys: KeyPath, name: Any) -> Iterator[tuple[KeyPath, str]]:
        if name not in experiments:
            yield keys, _unknown("experiment", name, experiments)

    # variants: every one resolves for every profile into a complete detector
    resolved: dict[str, dict[str, dict[str, Any]]] = {}
    for profile in profiles:
        resolved[profile] = {}
        models = section(params, "models", profile)
        for variant in models.get(VARIANTS) or {}:
            keys = _variant_keys(params, profile, variant)
            try:
                model = _resolve(params, models, variant)
            except DataError as e:
                yield keys, e.reason
                continue
            resolved[profile][variant] = model
            for sub, message in _schema_problems(model, "model_complete"):
                if _lookup(params, keys + sub) is not _MISSING:
                    yield keys + sub, f"{message} (the variant resolved for profile '{profile}')"
                else:
                    yield keys, (f"{_record(sub) or 'the variant'}: {message} (resolved for "
                                 f"profile '{profile}')")
    # experiments: the variant exists, the overrides and the training settings are complete
    trains = {profile: section(params, "train", profile) for profile in profiles}
    for name, spec in experiments.items():
        for profile in profiles:
            if spec["model"] not in resolved[profile]:
                yield (("experiments", name, "model"), _unknown(
                    "variant", spec["model"], resolved[profile], f" in profile '{profile}'"))
                break
            if spec.get("model_overrides"):
                model = deep_merge(resolved[profile][spec["model"]], spec["model_overrides"])
                for sub, message in _schema_problems(model, "model_complete"):
                    yield (("experiments", name, "model_overrides") + sub,
                           f"{message} (the resolved model, profile '{profile}')")
            train = trains[profile]
            if spec.get("train"):
                train = deep_merge(train, spec["train"])
                for sub, message in _schema_problems(train, "train"):
                    yield ("experiments", name, "train") + sub, f"{message} (profile '{profile}')"
            yield from _schedule_problems(params, profile, train, name)
    # tables: rows name experiments of the table's dataset, cells every column
    for table, spec in tables.items():
        for row_id, row in spec["rows"].items():
            keys = ("tables", table, "rows", row_id)
            if "cells" in row and set(row["cells"]) != set(spec["columns"]):
                yield keys + ("cells",), (f"cells must name every column "
                                          f"({', '.join(spec['columns'])}) and no other")
            named = ({"experiment": row["experiment"]} if "experiment" in row
                     else {f"cells.{c}": e for c, e in row["cells"].items()})
            for where, name in named.items():
                path = keys + tuple(where.split("."))
                if name not in experiments:
                    yield from experiment(path, name)
                elif experiments[name]["dataset"] != spec["dataset"]:
                    yield path, (f"experiment '{name}' is on {experiments[name]['dataset']}, "
                                 f"the table on {spec['dataset']}")
    for profile in profiles:
        seeds = section(params, "seeds", profile)
        for table in seeds.get("tables") or {}:
            if table not in tables:
                yield _where(params, "seeds", profile, ("tables", table)), _unknown(
                    "table", table, tables)
        for name in seeds.get("experiments") or {}:
            yield from experiment(_where(params, "seeds", profile, ("experiments", name)), name)
        figures = section(params, "figures", profile)
        for figure, spec in figures.items():
            if not isinstance(spec, dict):
                continue
            names = spec.get("experiments") or {}
            if "experiment" in spec:
                names = {spec["experiment"]: None}
            for name in names:
                sub = ("experiment",) if "experiment" in spec else ("experiments", name)
                yield from experiment(_where(params, "figures", profile, (figure,) + sub), name)
        visible = section(params, "analysis", profile)["visible"]
        for k, pair in enumerate(visible["comparisons"]):
            for role in ("lla", "baseline"):
                yield from experiment(_where(params, "analysis", profile,
                                             ("visible", "comparisons", k, role)), pair[role])
    yield from _claim_problems(params)


def _schedule_problems(params: dict[str, Any], profile: str, train: dict[str, Any],
                       experiment: str) -> Iterator[tuple[KeyPath, str]]:
    """A named ``train.schedule`` must be one of ``train.schedules``."""
    schedule, schedules = train["schedule"], train.get("schedules") or {}
    if isinstance(schedule, str) and schedule not in schedules:
        own = params["experiments"][experiment].get("train") or {}
        where = (("experiments", experiment, "train", "schedule") if "schedule" in own
                 else _where(params, "train", profile, ("schedule",)))
        yield where, _unknown("schedule", schedule, schedules, f" in profile '{profile}'")


def _claim_problems(params: dict[str, Any]) -> Iterator[tuple[KeyPath, str]]:
    """Each claim names existing tables, columns and rows of them, or experiments."""
    tables, experiments = params["tables"], params["experiments"]
    for k, claim in enumerate(params["claims"]):
        keys = ("claims", k)
        kind = claim.get("kind", "compare")
        if kind in ("finer_levels", "visible", "empty_level"):
            for role in ("method", "baseline", "experiment"):
                if role in claim and claim[role] not in experiments:
                    yield keys + (role,), _unknown("experiment", claim[role], experiments)
            continue
        named = [key for key in ("table", "baseline_table", "noise_table") if key in claim]
        unknown = [key for key in named if claim[key] not in tables]
        if unknown:
            yield keys + (unknown[0],), _unknown("table", claim[unknown[0]], tables)
            continue
        for key in named:
            if claim["column"] not in tables[claim[key]]["columns"]:
                yield keys + ("column",), _unknown("column", claim["column"],
                                                   tables[claim[key]]["columns"], f" of {claim[key]}")
        rows: list[tuple[KeyPath, str, str]] = []  # (key path, row id, its table)
        table, baseline_table = claim["table"], claim.get("baseline_table", claim["table"])
        if kind == "compare":
            rows.append((("method",), claim["method"], table))
            baselines = claim["baseline"]
            rows += ([(("baseline",), baselines, baseline_table)] if isinstance(baselines, str)
                     else [(("baseline", i), row, baseline_table) for i, row in enumerate(baselines)])
        elif kind == "flat":
            rows += [(("rows", i), row, table) for i, row in enumerate(claim["rows"])]
        elif kind == "diverges":
            rows += [(("row",), claim["row"], table), (("converged",), claim["converged"], table)]
        for sub, row, of in rows:
            if row not in tables[of]["rows"]:
                yield keys + sub, _unknown("row", row, tables[of]["rows"], f" of {of}")


def _variant_keys(params: dict[str, Any], profile: str, variant: str) -> KeyPath:
    for part in (profile, DEFAULTS):
        if variant in ((params["models"].get(part) or {}).get(VARIANTS) or {}):
            return ("models", part, VARIANTS, variant)
    return ("models", profile, VARIANTS, variant)


def _unknown(what: str, name: Any, known: Any, where: str = "") -> str:
    """``unknown <what> '<name>'<where> (did you mean ...? | known: ...)``."""
    names = [str(k) for k in known]
    close = difflib.get_close_matches(str(name), names, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(names) or 'none'}"
    return f"unknown {what} '{name}'{where} ({hint})"
