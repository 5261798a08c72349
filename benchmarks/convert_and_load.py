"""Speed of `lla data convert` (first run vs cached image sizes) and of CrowdDataset loading.

    .venv/bin/python benchmarks/convert_and_load.py [--images 1000] [--boxes 23] [--load 20]

Builds a CrowdHuman-layout fixture in a temporary directory (JPEGs, an odgt with
``--boxes`` boxes per image, CrowdHuman's average is ≈ 23), converts it twice and prints
images/s; then decodes + resizes (800/1400) + transforms ``--load`` 1500×1000 JPEGs
(the typical CrowdHuman size) and prints ms per image. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def write_fixture(root: Path, n_images: int, boxes_per_image: int, size: tuple[int, int],
                  rng: np.random.Generator) -> None:
    (root / "Images").mkdir(parents=True)
    noise = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    lines = []
    for k in range(n_images):
        record_id = f"{k:06d},{k * 7919:x}"
        Image.fromarray(noise).save(root / "Images" / f"{record_id}.jpg", quality=90)
        boxes = []
        for _ in range(boxes_per_image):
            x, y = rng.uniform(-20, size[0] - 40), rng.uniform(-20, size[1] - 80)
            w, h = rng.uniform(10, 60), rng.uniform(30, 150)
            fbox = [round(x, 1), round(y, 1), round(w, 1), round(h, 1)]
            vbox = [fbox[0], fbox[1], fbox[2], round(h * rng.uniform(0.2, 1.0), 1)]
            boxes.append({"tag": "person", "fbox": fbox, "vbox": vbox,
                          "hbox": [fbox[0], fbox[1], fbox[2] / 2, fbox[2] / 2],
                          "extra": {"box_id": len(boxes), "occ": 0}, "head_attr": {}})
        lines.append(json.dumps({"ID": record_id, "gtboxes": boxes}))
    (root / "annotation_val.odgt").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="images to convert")
    parser.add_argument("--boxes", type=int, default=23, help="boxes per image")
    parser.add_argument("--load", type=int, default=20, help="1500×1000 images to load")
    args = parser.parse_args()

    from lla.data.convert import convert
    from lla.data.dataset import CrowdDataset, PadCollate

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "crowdhuman"
        write_fixture(root, args.images, args.boxes, (320, 240), rng)
        for label in ("first conversion (reads headers)", "second conversion (cached sizes)"):
            start = time.perf_counter()
            convert("crowdhuman", root, Path(tmp) / "out", ["val"])
            elapsed = time.perf_counter() - start
            print(f"{label}: {args.images} images, {args.images * args.boxes} boxes in "
                  f"{elapsed:.2f} s = {args.images / elapsed:.0f} images/s")

        big = Path(tmp) / "big"
        write_fixture(big, args.load, args.boxes, (1500, 1000), rng)
        convert("crowdhuman", big, big / "out", ["val"])
        dataset = CrowdDataset(big / "out" / "val.json", train=True, min_size=800,
                               max_size=1400, flip_prob=0.5)
        dataset[0]  # warm-up: lazy imports
        start = time.perf_counter()
        samples = [dataset[k] for k in range(len(dataset))]
        elapsed = time.perf_counter() - start
        print(f"CrowdDataset 1500x1000 JPEG -> 800x1200, {args.boxes} boxes: "
              f"{1000 * elapsed / len(dataset):.1f} ms/image (1 process)")
        collate = PadCollate(128)
        start = time.perf_counter()
        for k in range(0, len(samples) - 1, 2):
            collate(samples[k:k + 2])
        elapsed = time.perf_counter() - start
        print(f"PadCollate batch of 2 -> 2x3x896x1280: "
              f"{1000 * elapsed / (len(samples) // 2):.1f} ms/batch")


if __name__ == "__main__":
    main()
