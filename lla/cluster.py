"""What the Snakefile does for running on a cluster: the jobs' PATH, and a warning when the
Slurm site settings are left empty.

Jobs run the `lla` (and `torchrun`) of the Python that runs Snakemake, whether or not its
environment is activated: :func:`put_python_bin_first_on_path` puts that Python's ``bin``
directory first on the PATH the jobs' shells inherit (a Slurm job starts Snakemake with the
same Python, which reads the Snakefile and does the same).

The slurm Snakemake profile (``slurm/config.yaml``) names the site in three resources: the
partition (``slurm_partition``: every job's under ``default-resources``, the GPU jobs' under
``set-resources``), the account (``slurm_account``) and the GPU type (``gpu_model``). An empty
string means "not set": sbatch then picks the cluster's default partition, the plugin guesses
the account, and a GPU job takes any GPU type. That may be right for a site, but a forgotten
setting otherwise shows only as jobs pending in the wrong partition or rejected for their
account, after the queue wait. So the Snakefile warns once at start-up, the dry run included,
naming the profile file and the keys (:func:`site_settings_warning`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

def put_python_bin_first_on_path(environ: MutableMapping[str, str] = os.environ,
                                 executable: str = sys.executable) -> None:
    """Make the ``bin`` directory of ``executable`` (not resolved: a venv's python is a link)
    the first entry of ``environ["PATH"]``, unless it is already."""
    directory = str(Path(executable).parent)
    path = environ.get("PATH", "")
    if path.split(os.pathsep)[0] != directory:
        environ["PATH"] = os.pathsep.join([directory, path]) if path else directory


#: the resources that name the site
SITE_KEYS = ("slurm_partition", "slurm_account", "gpu_model")


def empty_site_settings(default_resources: Mapping[str, Any],
                        set_resources: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The site settings given as empty strings, as key paths of the profile.

    Args:
        default_resources: resource name -> its value as written (``default-resources``).
        set_resources: rule -> {resource name -> value as written} (``set-resources``).

    Returns:
        e.g. ``["default-resources.slurm_account", "set-resources.train.gpu_model"]``, in
        the order of the mappings; a key that is absent is not listed (nothing to warn of).
    """
    empty = [f"default-resources.{key}" for key, value in default_resources.items()
             if key in SITE_KEYS and _is_empty(value)]
    empty += [f"set-resources.{rule}.{key}" for rule, resources in set_resources.items()
              for key, value in resources.items() if key in SITE_KEYS and _is_empty(value)]
    return empty


def _is_empty(value: Any) -> bool:
    # Snakemake keeps a profile's string resources as written, "" or the quoted "''"
    return isinstance(value, str) and value.strip().strip("'\"").strip() == ""


def profile_files(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """The Snakemake profile files a command line reads (``--profile``, ``--workflow-profile``,
    else ``$SNAKEMAKE_PROFILE``), found as Snakemake finds them; a name not found is kept."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--profile", action="append", default=[])
    parser.add_argument("--workflow-profile", action="append", default=[])
    known, _ = parser.parse_known_args(list(argv))
    names = known.profile or ([environ["SNAKEMAKE_PROFILE"]] if environ.get("SNAKEMAKE_PROFILE") else [])
    names += known.workflow_profile
    from snakemake.cli import get_profile_dir  # only called where Snakemake runs

    files = []
    for name in names:
        if name == "none":
            continue
        found = get_profile_dir(name)
        files.append(os.path.relpath(found[1]) if found else name)
    return files


def grouped_key_paths(paths: Sequence[str]) -> list[str]:
    """Key paths with the rules of ``set-resources`` grouped per key:
    ``set-resources.train.gpu_model`` and ``set-resources.analyze_aar.gpu_model`` give
    ``set-resources.{train,analyze_aar}.gpu_model`` (where the first of them was); other paths
    are kept as they are."""
    rules: dict[str, list[str]] = {}
    order: list[str | tuple[str]] = []   # a path, or (key,) for the group of a key
    for path in paths:
        parts = path.split(".")
        if parts[0] != "set-resources" or len(parts) != 3:
            order.append(path)
            continue
        rule, key = parts[1], parts[2]
        if key not in rules:
            rules[key] = []
            order.append((key,))
        rules[key].append(rule)

    def group(key: str) -> str:
        names = rules[key]
        return f"set-resources.{names[0] if len(names) == 1 else '{' + ','.join(names) + '}'}.{key}"

    return [item if isinstance(item, str) else group(item[0]) for item in order]


def site_settings_warning(empty: Sequence[str], files: Sequence[str]) -> str:
    """One warning line for the ``empty`` settings (:func:`empty_site_settings`) of ``files``."""
    where = ", ".join(files) or "the Snakemake profile"
    return (f"warning: {where}: Slurm site settings left empty: "
            f"{', '.join(grouped_key_paths(empty))} (sbatch "
            "then uses the cluster's default partition, a guessed account and any GPU type); "
            "set them for your cluster (docs/cluster.md)")
