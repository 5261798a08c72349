"""`lla data manifest`: the data files of a profile, with their sizes and sha256.

    lla data manifest --profile micro --out results/micro/data_manifest.json

For every dataset of the profile (every dataset of :mod:`lla.data.registry`, as the
workflow's ``data`` target converts them all) the manifest lists

* ``raw``: the files the conversion starts from. A downloaded dataset: every file of
  ``<dataset>.download.files`` in params.yaml (archives and annotation files). An archive
  that was deleted after unpacking is listed with the sha256 its unpack marker recorded
  and ``"on_disk": false``. Synthcrowd: the annotation files and the generator's
  ``synthcrowd_manifest.json`` (its settings and fingerprint).
* ``converted``: the converted json of each split, the files every later step reads.

Each file has ``bytes`` and ``sha256``; paths are relative to the dataset's root, the root
as the layout names it. The manifest holds no times, so the same data gives the same bytes:
it is small enough for git, where a diff shows which data file changed, and DVC records
its hash in ``dvc.lock``. The images themselves are not listed (DVC hashes them as part of
the data directory).

A downloaded file unchanged since ``lla data download`` verified it (same size and
modification time as in ``<root>/download_manifest.json``) is not read again: its recorded
sha256 is used. Every other file is hashed.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from lla import layout, options
from lla.config import DEFAULT_PARAMS, dataset_source, load_params, selected_profile
from lla.data import archive, download, registry
from lla.data.synthcrowd import MANIFEST as SYNTHCROWD_MANIFEST
from lla.errors import DataError
from lla.io import atomic_write_json, read_json

log = logging.getLogger(__name__)

VERSION = 1


def file_facts(path: Path) -> dict[str, Any]:
    """``{"bytes", "sha256"}`` of a file (DataError when it is missing)."""
    if not path.is_file():
        raise DataError(path, "missing: run the workflow's data target first "
                              "(snakemake data --config profile=PROFILE)")
    return {"bytes": path.stat().st_size, **download.hash_file(path)}


def _downloaded_file(source: download.DatasetSource, spec: download.FileSpec,
                     verified: download.Manifest) -> dict[str, Any]:
    """Facts of one ``download.files`` entry: from the download manifest when the file is
    unchanged since it was verified, else hashed; an archive deleted after unpacking from
    its unpack marker."""
    path = source.root / spec.dest / spec.name
    if path.is_file():
        entry = verified.lookup(path)
        if entry is not None and "sha256" in entry:
            return {"bytes": entry["size"], "sha256": entry["sha256"]}
        return file_facts(path)
    if spec.unpack_to is not None:
        marker = archive.marker_path(source.root / spec.unpack_to, spec.name)
        if marker.is_file():
            return {"sha256": read_json(marker)["sha256"], "on_disk": False}
    raise DataError(path, f"missing: run lla data download {source.dataset} (or the workflow's "
                          "data target) first")


def _raw_files(params: dict[str, Any], profile: str, dataset: str, root: Path) -> dict[str, Any]:
    """``{path relative to root: facts}`` of the files the conversion of ``dataset`` starts from."""
    if dataset_source(params, profile, dataset) == "download":
        params_path = getattr(params, "path", DEFAULT_PARAMS)   # lla.config.Params knows its file
        source = download.load_source(params, dataset, params_path, root)
        verified = download.Manifest(root)
        return {Path(spec.dest, spec.name).as_posix(): _downloaded_file(source, spec, verified)
                for spec in source.files}
    names = [Path(p).relative_to(root).as_posix()
             for p in registry.get(dataset).annotation_files(root)] + [SYNTHCROWD_MANIFEST]
    return {name: file_facts(root / name) for name in names}


def build(params: dict[str, Any], profile: str) -> dict[str, Any]:
    """The manifest of ``profile`` (a json-ready mapping)."""
    datasets = {}
    for dataset in registry.names():
        root = layout.dataset_root(params, profile, dataset)
        converted = {}
        for split in registry.SPLITS:
            path = layout.converted_json(params, profile, dataset, split)
            converted[path.relative_to(root).as_posix()] = file_facts(path)
        datasets[dataset] = {"source": dataset_source(params, profile, dataset),
                             "root": root.as_posix(),
                             "raw": _raw_files(params, profile, dataset, root),
                             "converted": converted}
    return {"version": VERSION, "profile": profile, "datasets": datasets}


def write(params: dict[str, Any], profile: str, out: str | Path) -> dict[str, Any]:
    """Build the manifest and write it to ``out`` (atomically: nothing on an error)."""
    manifest = build(params, profile)
    atomic_write_json(out, manifest, indent=1)
    n_files = sum(len(d["raw"]) + len(d["converted"]) for d in manifest["datasets"].values())
    log.info("%s: %d files of %d datasets", out, n_files, len(manifest["datasets"]))
    return manifest


def _run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    if args.data_root is not None:
        params["data_root"] = str(args.data_root)
    profile = selected_profile(params, args.profile)
    out = args.out if args.out is not None else layout.results(profile).data_manifest
    write(params, profile, out)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "manifest", parents=[options.SETTINGS],
        help="list a profile's data files (raw and converted) with sizes and sha256",
        description="Write a json listing, for every dataset of the profile, the raw files "
                    "(downloaded archives and annotation files, or synthcrowd's annotation "
                    "files and generator manifest) and the converted json of each split, with "
                    "size in bytes and sha256. It holds no times: the same data gives the same "
                    "file, which git and DVC version. Missing files are an error (run the "
                    "workflow's data target first).")
    parser.add_argument("--data-root", type=Path, default=None, metavar="DIR",
                        help="the directory holding every dataset (default: data_root in params)")
    options.add_out(parser, "output json", default="results/<profile>/data_manifest.json")
    parser.set_defaults(func=_run)
