"""`lla data convert`: official CrowdHuman / CityPersons annotations → one contract json per split.

    lla data convert crowdhuman  --root data/crowdhuman     # -> data/crowdhuman/converted/
    lla data convert citypersons --root data/citypersons --split val --out-dir DIR

Every split is converted in memory first and the files are written only when all splits
converted cleanly, each atomically: a failed conversion leaves no output behind.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from pathlib import Path
from typing import Sequence

from lla import layout, options
from lla.data import registry
from lla.errors import DataError

log = logging.getLogger(__name__)

DEFAULT_SPLITS = registry.SPLITS


def output_path(out_dir: str | Path, split: str) -> Path:
    return Path(out_dir) / f"{split}.json"


def convert(dataset: str, root: str | Path, out_dir: str | Path,
            splits: Sequence[str] = DEFAULT_SPLITS,
            size_cache: str | Path | None = None) -> dict[str, Path]:
    """Convert ``splits`` of ``dataset`` under ``root``; return ``{split: written json path}``.

    Image sizes are cached in ``size_cache`` (default: a hidden file in ``root``); the
    cache is saved even when a later record fails, so a fixed re-run reads no header twice.
    """
    from lla.data import contract
    from lla.data.imagesize import CACHE_FILE_NAME, ImageSizeCache
    from lla.io import atomic_write_json

    spec = registry.get(dataset)  # its converter: `convert_split(root, split, out_dir, sizes)`
    root, out_dir = Path(root), Path(out_dir)
    if not root.is_dir():
        raise DataError(root, "dataset root is not a directory")
    for split in splits:
        if not split or "/" in split or "\\" in split:
            raise ValueError(f"invalid split name {split!r}")
    converter = importlib.import_module(spec.converter)
    sizes = ImageSizeCache(size_cache if size_cache is not None else root / CACHE_FILE_NAME)
    converted = {}
    try:
        for split in splits:
            data = converter.convert_split(root, split, out_dir, sizes)
            log.info("%s", contract.summary(data))
            converted[split] = data
    finally:
        sizes.save()
    log.info("image sizes: %d headers read, the rest from the cache %s", sizes.headers_read,
             sizes.cache_path)
    written = {}
    for split, data in converted.items():
        written[split] = output_path(out_dir, split)
        atomic_write_json(written[split], data)
        log.info("wrote %s", written[split])
    return written


def _run(args: argparse.Namespace) -> int:
    out_dir = args.out_dir or layout.converted_dir(args.root)
    convert(args.dataset, args.root, out_dir, args.split, args.size_cache)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert", help="official CrowdHuman/CityPersons annotations -> dataset json per split",
        description="Convert the official annotation files of CrowdHuman (<root>/annotation_"
                    "<split>.odgt, <root>/Images/) or CityPersons (<root>/annotations/anno_"
                    "<split>.mat, <root>/leftImg8bit/<split>/<city>/) into one COCO-style json "
                    "per split, <out-dir>/<split>.json. Image sizes are read from the image "
                    "headers once and cached. Bad input stops with an error naming the file "
                    "and line (odgt) or cell (mat); degenerate boxes (zero size, or entirely "
                    "outside the image) are dropped and counted in the log and in the json's "
                    "info.degenerate_dropped.")
    parser.add_argument("dataset", choices=registry.names(), help="annotation format")
    parser.add_argument("--root", required=True, type=Path,
                        help="dataset directory in the official layout")
    options.add_out_dir(parser, "directory receiving <split>.json", default="<root>/converted")
    parser.add_argument("--split", nargs="+", default=list(DEFAULT_SPLITS), metavar="SPLIT",
                        help=f"splits to convert (default: {' '.join(DEFAULT_SPLITS)})")
    parser.add_argument("--size-cache", type=Path, default=None, metavar="PATH",
                        help="image-size cache file (default: <root>/.lla_image_sizes.json)")
    parser.set_defaults(func=_run)
