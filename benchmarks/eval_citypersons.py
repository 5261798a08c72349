"""Benchmark of the whole `lla eval citypersons` command on a CityPersons-val-sized input.

    python benchmarks/eval_citypersons.py [--repeat 5] [--coco] [--reference]

Generates 500 images of 2048x1024 with CityPersons-like ground truth (pedestrians at aspect
0.41 with log-normal heights, partial occlusion, boxes crossing the border, ignore regions,
images without annotations) and the output of a plausible detector (jittered true positives,
duplicates, and background false positives filling a third to all of --dets-per-image per
image), then runs the command (the default: MR of the four setups; with ``--coco`` also
``--coco``) ``--repeat`` times as a fresh process each (:mod:`command_timing`). Printed: the
median (min-max) wall time, its split into start-up, parsing, matching (the setup-free
part: order, top-1000 cut, overlaps), MR (the four setups), COCO and the rest, the median
CPU time (user + system), the peak memory and the load average before and after.

--reference also times the loop-by-loop oracle of the tests (the official algorithm in pure
Python) and prints the largest difference between the two (expected 0).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from command_timing import benchmark, generate_in_child, lla_command, load_text, startup_time

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("parsing", "matching", "MR", "COCO")
IMAGE_W, IMAGE_H = 2048, 1024


def generate(num_images: int, dets_per_image: int, seed: int) -> tuple[dict, list]:
    """(dataset json, COCO results list) resembling CityPersons val and a decent detector."""
    rng = np.random.default_rng(seed)
    images, annotations, results = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "file_name": f"city/img_{image_id:04d}.png",
                       "width": IMAGE_W, "height": IMAGE_H, "record_id": f"img_{image_id}"})
        n_people = 0 if rng.random() < 0.08 else int(rng.geometric(1 / 7))
        n_regions = int(rng.poisson(1.5))
        people = []
        for k in range(n_people + n_regions):
            is_region = k >= n_people
            h = float(np.clip(rng.lognormal(np.log(70), 0.6), 12, 900))
            w = 0.41 * h if not is_region else h * rng.uniform(0.5, 3.0)
            x = rng.uniform(-0.3 * w, IMAGE_W - 0.7 * w)
            y = float(np.clip(430 - 0.15 * h + rng.normal(0, 15), -0.2 * h, IMAGE_H - h / 2))
            # Classes 2-5 (riders, sitting, others, groups) and class 0 regions are ignore=1.
            ignore = int(is_region or rng.random() < 0.2)
            vis = 1.0 if rng.random() < 0.5 else float(rng.uniform(0.05, 1.0))
            box = [round(x, 2), round(y, 2), round(w, 2), round(h, 2)]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": 1, "bbox": box, "height": box[3],
                                "vis_ratio": vis, "ignore": ignore, "iscrowd": ignore,
                                "area": box[2] * box[3]})
            if not is_region:
                people.append((box, vis))
        dets = []
        for box, vis in people:
            if rng.random() < 0.35 + 0.6 * vis * min(1.0, box[3] / 60):
                for copy_index in range(1 + int(rng.random() < 0.25)):  # some duplicates
                    jitter = rng.normal(0, 0.06 if copy_index == 0 else 0.15, 4)
                    x, y, w, h = box
                    dets.append([x + jitter[0] * w, y + jitter[1] * h, w * (1 + jitter[2]),
                                 h * (1 + jitter[3]),
                                 float(rng.beta(6, 1.5) if copy_index == 0 else rng.beta(2, 4))])
        for _ in range(int(rng.integers(dets_per_image // 3, dets_per_image + 1))):
            h = float(np.clip(rng.lognormal(np.log(60), 0.7), 8, 700))
            w = h * rng.uniform(0.3, 0.6)
            dets.append([rng.uniform(-0.2 * w, IMAGE_W - 0.8 * w), rng.uniform(200, 700), w, h,
                         float(rng.beta(1, 6))])
        for x, y, w, h, score in dets[:dets_per_image]:
            results.append({"image_id": image_id, "category_id": 1,
                            "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                            "score": round(score, 5)})
    gt = {"info": {"dataset": "citypersons", "split": "val", "source": "benchmark",
                   "image_root": "."},
          "images": images, "annotations": annotations,
          "categories": [{"id": 1, "name": "person"}]}
    return gt, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--dets-per-image", type=int, default=100,
                        help="cap per image; background false positives fill a third to all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each configuration")
    parser.add_argument("--coco", action="store_true", help="also time --coco")
    parser.add_argument("--reference", action="store_true",
                        help="also time the pure-Python oracle of the tests and compare")
    parser.add_argument("--generate-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_into is not None:
        gt, dt = generate(args.images, args.dets_per_image, args.seed)
        valid = sum(1 for a in gt["annotations"] if not a["ignore"])
        print(f"input: {len(gt['images'])} images, {len(gt['annotations'])} GT boxes "
              f"({valid} not ignored), {len(dt)} detections")
        (args.generate_into / "gt.json").write_text(json.dumps(gt))
        (args.generate_into / "dt.json").write_text(json.dumps(dt))
        return

    print(f"load average: {load_text()}  cpus: {os.cpu_count()}  numpy {np.__version__}")
    lla = lla_command()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        generate_in_child(Path(__file__), tmp, "--images", str(args.images),
                          "--dets-per-image", str(args.dets_per_image), "--seed",
                          str(args.seed))
        startup = startup_time(lla + ["eval", "citypersons"], args.repeat)
        command = lla + ["-v", "eval", "citypersons", "--gt", str(tmp / "gt.json"),
                         "--dt", str(tmp / "dt.json")]
        out = tmp / "metrics.json"
        metrics = benchmark("default (MR of the four setups)", command, PHASES, startup,
                            args.repeat, out)
        if args.coco:
            benchmark("--coco", command + ["--coco"], PHASES, startup, args.repeat, out)
        if args.reference:
            sys.path.insert(0, str(ROOT / "tests"))
            from citypersons_reference import reference_evaluate

            gt = json.loads((tmp / "gt.json").read_text())
            dt = json.loads((tmp / "dt.json").read_text())
            start = time.perf_counter()
            expected = reference_evaluate(gt, dt)
            diff = max(abs(metrics[k] - expected[k]) for k in expected)
            print(f"\nofficial algorithm, pure Python: {time.perf_counter() - start:.3f} s; "
                  f"largest MR difference {diff:.1e}")


if __name__ == "__main__":
    main()
