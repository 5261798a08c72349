"""`lla detect`: a trained detector on any folder of images -- detections and drawn images.

    lla detect --checkpoint runs/mini/lla_fcos_r50/model_final.pt --images photos/ \\
        --out-dir detections/ [--score 0.3] [--device auto|cpu|cuda]

Every ``.jpg``, ``.jpeg`` and ``.png`` file under ``--images`` (subfolders too, in sorted
order; other files are skipped) is resized with the checkpoint's own input settings and run
through its model (:func:`lla.engine.infer.detect_images`, the code of ``lla infer``).
Detections scoring at least ``--score`` are kept. Writes, under ``--out-dir``:

* ``detections.json``: ``{"checkpoint", "experiment", "score_thresh", "images": [{"file_name"
  (relative to --images), "width", "height", "drawn" (relative to --out-dir), "detections":
  [{"bbox": [x, y, w, h], "score", "category_id"}]}]}``, boxes in the image's pixels, by
  decreasing score;
* ``images/<file_name>``: the image with its detections drawn (box and score), in the
  image's own size and format, by the figures' drawing code (:mod:`lla.report.figures`).

The command runs a model and draws: it sits in ``report``, the lowest layer that may use
both the engine (model loading, inference) and the drawing. Bad input -- a missing or empty
folder, a folder without images, a file that is not an image, a checkpoint that is not one
or whose run diverged -- stops with ``error: FILE: reason`` (exit 2) before anything is
written.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lla import options
from lla.console import progress
from lla.errors import DataError
from lla.io import atomic_write_json
from lla.report.figures import FIG5_COLORS, draw_box, read_image, save_figure, show_image

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DETECTIONS_FILE = "detections.json"
DRAWN_DIR = "images"
DEFAULT_SCORE = 0.3
BOX_COLOR = FIG5_COLORS["tp"]
DRAWING_DPI = 100


def image_files(folder: Path) -> list[Path]:
    """The image files under ``folder`` (any depth), sorted; a :class:`DataError` when
    ``folder`` is not a directory or holds none."""
    if not folder.exists():
        raise DataError(folder, "no such directory")
    if not folder.is_dir():
        raise DataError(folder, "not a directory (--images takes a folder of images)")
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    images = [path for path in files if path.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        others = f" ({len(files)} other file(s))" if files else " (it is empty)"
        raise DataError(folder, f"no {'/'.join(IMAGE_SUFFIXES)} image{others}")
    if len(files) > len(images):
        logger.info("%s: skipping %d file(s) that are not %s images", folder,
                    len(files) - len(images), "/".join(IMAGE_SUFFIXES))
    return images


def kept_detections(detection: dict[str, Any], score_thresh: float) -> list[dict[str, Any]]:
    """One image's detections (:func:`lla.engine.infer.image_detections`, by decreasing
    score) as json records (boxes to 0.01 px, scores to 1e-6, as ``lla infer`` writes
    them), those whose written score is at least ``score_thresh``."""
    from lla.engine.infer import BOX_DECIMALS, SCORE_DECIMALS

    records = [{"bbox": [round(float(v), BOX_DECIMALS) for v in box],
                "score": round(float(score), SCORE_DECIMALS), "category_id": int(label) + 1}
               for box, score, label in zip(detection["boxes"], detection["scores"],
                                            detection["labels"])]
    return [record for record in records if record["score"] >= score_thresh]


def draw_detections(image_path: Path, detections: Sequence[dict[str, Any]], out: Path
                    ) -> tuple[int, int]:
    """Write ``image_path`` with ``detections`` (json records) drawn to ``out``, in the
    image's own pixel size; returns its ``(width, height)``."""
    from matplotlib.figure import Figure

    image = read_image(image_path)
    height, width = image.shape[:2]
    fig = Figure(figsize=(width / DRAWING_DPI, height / DRAWING_DPI), dpi=DRAWING_DPI)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    show_image(ax, image)
    line = max(1.0, min(width, height) / 400)
    for det in detections:
        x, y, w, h = det["bbox"]
        draw_box(ax, (x, y, x + w, y + h), edgecolor=BOX_COLOR, linewidth=line)
        ax.text(x, y, f"{det['score']:.2f}", fontsize=6 * line, color="white", va="bottom",
                ha="left", bbox={"facecolor": BOX_COLOR, "alpha": 0.8, "pad": 1, "linewidth": 0})
    save_figure(fig, out)
    return width, height


def score_threshold(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "detect", parents=[options.CHECKPOINT, options.DEVICE],
        help="detect persons in a folder of images: detections json + drawn images",
        description="Run a trained checkpoint on every .jpg/.jpeg/.png image under --images "
                    f"and write <out-dir>/{DETECTIONS_FILE} and the images with their "
                    f"detections drawn, <out-dir>/{DRAWN_DIR}/<file>.")
    parser.add_argument("--images", type=Path, required=True, metavar="DIR",
                        help="folder of images (subfolders too)")
    options.add_out_dir(parser, f"directory receiving {DETECTIONS_FILE} and {DRAWN_DIR}/")
    parser.add_argument("--score", type=score_threshold, default=DEFAULT_SCORE, metavar="S",
                        help=f"keep detections scoring at least S (default: {DEFAULT_SCORE})")
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help="images per forward pass (default: the checkpoint's "
                             "train.infer_images_per_device)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    folder, out_dir = Path(args.images), Path(args.out_dir)
    if out_dir.resolve().is_relative_to(folder.resolve()):
        raise DataError(out_dir, "--out-dir is inside --images: the drawn images would be read "
                                 "as input next time; choose another --out-dir")
    if args.batch_size is not None and args.batch_size < 1:
        raise DataError(args.checkpoint, f"--batch-size must be >= 1, got {args.batch_size}")
    paths = image_files(folder)
    from lla.engine.infer import detect_images  # imports torch: only when the command runs

    experiment, detections = detect_images(args.checkpoint, paths, device=args.device,
                                           images_per_device=args.batch_size, source=folder)
    images = []
    for path, detection in zip(progress(paths, desc="draw", unit="img"), detections):
        kept = kept_detections(detection, args.score)
        name = path.relative_to(folder).as_posix()
        drawn = Path(DRAWN_DIR) / name
        width, height = draw_detections(path, kept, out_dir / drawn)
        images.append({"file_name": name, "width": width, "height": height,
                       "drawn": drawn.as_posix(), "detections": kept})
    atomic_write_json(out_dir / DETECTIONS_FILE,
                      {"checkpoint": str(args.checkpoint), "experiment": experiment,
                       "score_thresh": args.score, "images": images})
    logger.info("%d images, %d detections with score >= %g -> %s", len(images),
                sum(len(i["detections"]) for i in images), args.score, out_dir)
    return 0
