"""Benchmark of the whole `lla eval crowdhuman` command on a CrowdHuman-val-sized input.

    python benchmarks/eval_crowdhuman.py [--repeat 5] [--coco] [--odgt] [--reference]

The generator makes 4,370 images (CrowdHuman-like sizes), ~100k GT boxes (heavy-tailed
crowd sizes, clustered people, full-body boxes past the image border, ignore regions) and
~565k detections (at most 300 per image, clipped to the image: jittered true positives,
duplicates, detections in ignore regions, near-miss and random false positives; part of
the scores rounded to 4 decimals, so there are ties within and across images), written as
our dataset json and a COCO results json (about 55 MB).

Each configuration of the command (the default: MR, AP, Recall and JI; ``--no-ji``; with
``--coco`` also ``--coco``; with ``--odgt`` the default on the official .odgt formats) runs
``--repeat`` times as a fresh process, as a user runs it (:mod:`command_timing`). Printed
per configuration: the median (min-max) wall time of the whole command and its split into
phases: start-up (interpreter, imports, argument parsing), parsing (both files into
arrays), matching (with JI on, this includes the JI's IoU test, made on the same candidate
pairs), MR/AP/Recall, JI, COCO and the rest (output, exit); the median CPU time (user +
system) and the peak memory (max RSS) of the process; the load average before and after
(the machine may be shared: on a loaded machine the wall time grows, the CPU time much
less). ``--reference``
also runs the literal loop-by-loop reference evaluator of the tests (slow) and compares
MR/AP/Recall.
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
PHASES = ("parsing", "matching", "MR/AP/Recall", "JI", "COCO")
NUM_IMAGES = 4370
MAX_DETS_PER_IMAGE = 300
PHASES = ("start-up", "parsing", "matching", "MR/AP/Recall", "JI", "COCO")


def _person_boxes(rng: np.random.Generator, n: int, width: int, height: int) -> np.ndarray:
    """(n, 4) xywh full-body boxes in 1-4 clusters; some extend past the border."""
    heights = np.clip(height * rng.lognormal(np.log(0.22), 0.6, n), 16, 1.3 * height)
    widths = heights * rng.uniform(0.33, 0.5, n)
    num_clusters = int(rng.integers(1, 5))
    centers = np.stack([rng.uniform(0.1, 0.9, num_clusters) * width,
                        rng.uniform(0.3, 0.8, num_clusters) * height], 0)
    cluster = rng.integers(0, num_clusters, n)
    cx = centers[0, cluster] + rng.normal(0, 0.12 * width, n)
    cy = centers[1, cluster] + rng.normal(0, 0.1 * height, n)
    boxes = np.stack([cx - widths / 2, cy - heights / 2, widths, heights], 1)
    return np.round(boxes)


def _jitter(rng: np.random.Generator, boxes: np.ndarray, scale: float) -> np.ndarray:
    w, h = boxes[:, 2:3], boxes[:, 3:4]
    noise = rng.normal(0, scale, boxes.shape) * np.concatenate([w, h, w, h], 1)
    out = boxes + noise
    out[:, 2:] = np.maximum(out[:, 2:], 2)
    return out


def generate(seed: int = 0, num_images: int = NUM_IMAGES) -> tuple[dict, list]:
    """(our dataset json, COCO results list) of a CrowdHuman-val-sized synthetic set."""
    rng = np.random.default_rng(seed)
    images, annotations, results = [], [], []
    for image_id in range(1, num_images + 1):
        width = int(rng.integers(500, 1600))
        height = int(width * rng.uniform(0.55, 1.4))
        n_person = min(int(rng.negative_binomial(1.2, 1.2 / (1.2 + 21.0))), 350)
        n_ignore = int(rng.poisson(1.0))
        persons = _person_boxes(rng, n_person, width, height)
        ign_wh = np.stack([rng.uniform(0.05, 0.35, n_ignore) * width,
                           rng.uniform(0.05, 0.3, n_ignore) * height], 1)
        ign_xy = rng.uniform(0, 1, (n_ignore, 2)) * (np.array([width, height]) - ign_wh)
        ignores = np.round(np.concatenate([ign_xy, ign_wh], 1))
        gt = np.concatenate([persons, ignores])
        ignore_flag = np.r_[np.zeros(n_person, int), np.ones(n_ignore, int)]
        order = rng.permutation(len(gt))  # ignore regions interleaved in file order
        images.append({"id": image_id, "file_name": f"{image_id:06d}.jpg", "width": width,
                       "height": height, "record_id": f"synthetic,{image_id:06d}"})
        for box, flag in zip(gt[order].tolist(), ignore_flag[order].tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": 1, "bbox": box, "vis_box": box,
                                "head_box": None, "vis_ratio": 1.0, "height": box[3],
                                "area": box[2] * box[3], "ignore": flag, "iscrowd": flag})

        found = persons[rng.random(n_person) < 0.92]
        tp = _jitter(rng, found, 0.05)
        n_dup = rng.poisson(0.8, len(found))
        dup = _jitter(rng, np.repeat(found, n_dup, axis=0), 0.1)
        near = np.repeat(persons, rng.poisson(0.7, n_person), axis=0)
        near = near + np.concatenate([rng.normal(0, 0.4, (len(near), 2)) * near[:, 2:],
                                      np.zeros((len(near), 2))], 1)
        in_ignore = np.repeat(ignores, rng.poisson(3, n_ignore), axis=0)
        if len(in_ignore):
            frac = rng.uniform(0.2, 0.6, (len(in_ignore), 2))
            in_ignore = np.concatenate([in_ignore[:, :2] + rng.uniform(0, 0.4, (len(in_ignore), 2))
                                        * in_ignore[:, 2:], frac * in_ignore[:, 2:]], 1)
        n_rand = int(rng.poisson(50 + 1.5 * n_person))
        rand_wh = np.stack([rng.uniform(10, 0.3 * width, n_rand),
                            rng.uniform(25, 0.6 * height, n_rand)], 1)
        rand = np.concatenate([rng.uniform(0, 1, (n_rand, 2)) * [width, height], rand_wh], 1)
        boxes = np.concatenate([tp, dup, near, in_ignore.reshape(-1, 4), rand])
        scores = np.concatenate([
            rng.beta(6, 1.5, len(tp)), rng.beta(2, 3, len(dup)), rng.beta(1.5, 5, len(near)),
            rng.beta(2, 4, len(in_ignore)), rng.beta(1, 8, n_rand)])
        scores = 0.05 + 0.95 * scores
        rounded = rng.random(len(scores)) < 0.3
        scores[rounded] = np.round(scores[rounded], 4)
        # Detector output: clipped to the image, top 300 by score, file order shuffled.
        x1 = np.clip(boxes[:, 0], 0, width)
        y1 = np.clip(boxes[:, 1], 0, height)
        x2 = np.clip(boxes[:, 0] + boxes[:, 2], 0, width)
        y2 = np.clip(boxes[:, 1] + boxes[:, 3], 0, height)
        keep = (x2 - x1 > 1) & (y2 - y1 > 1)
        dets = np.stack([x1, y1, x2 - x1, y2 - y1], 1)[keep].round(2)
        scores = scores[keep]
        top = np.argsort(-scores, kind="stable")[:MAX_DETS_PER_IMAGE]
        top = top[rng.permutation(len(top))]
        for box, score in zip(dets[top].tolist(), scores[top].tolist()):
            results.append({"image_id": image_id, "category_id": 1, "bbox": box,
                            "score": score})
    gt = {"info": {"dataset": "crowdhuman", "split": "val", "source": "synthetic",
                   "image_root": "."},
          "images": images, "annotations": annotations,
          "categories": [{"id": 1, "name": "person"}]}
    return gt, results


def to_odgt_records(gt: dict, results: list) -> tuple[list[dict], list[dict]]:
    """The same input as official-format GT and detection records."""
    by_image: dict[int, list] = {im["id"]: [] for im in gt["images"]}
    for ann in gt["annotations"]:
        tag = "mask" if ann["ignore"] else "person"
        by_image[ann["image_id"]].append({"tag": tag, "fbox": ann["bbox"],
                                          "hbox": ann["bbox"], "vbox": ann["bbox"],
                                          "extra": {"ignore": int(ann["ignore"])}})
    dets: dict[int, list] = {im["id"]: [] for im in gt["images"]}
    for det in results:
        dets[det["image_id"]].append({"box": det["bbox"], "score": det["score"], "tag": 1})
    gt_records = [{"ID": im["record_id"], "gtboxes": by_image[im["id"]]} for im in gt["images"]]
    dt_records = [{"ID": im["record_id"], "width": im["width"], "height": im["height"],
                   "dtboxes": dets[im["id"]]} for im in gt["images"]]
    return gt_records, dt_records


def write_inputs(out_dir: Path, seed: int) -> None:
    """Generate the input and write gt.json, dt.json, gt.odgt and dt.odgt into ``out_dir``."""
    t = time.perf_counter()
    gt_json, dt_json = generate(seed)
    num_ignore = sum(a["ignore"] for a in gt_json["annotations"])
    per_image = np.bincount([d["image_id"] for d in dt_json])
    print(f"generated in {time.perf_counter() - t:.1f} s: {len(gt_json['images'])} images, "
          f"{len(gt_json['annotations'])} GT ({num_ignore} ignore), {len(dt_json)} detections "
          f"(max {per_image.max()} per image)")
    (out_dir / "gt.json").write_text(json.dumps(gt_json))
    (out_dir / "dt.json").write_text(json.dumps(dt_json))
    gt_records, dt_records = to_odgt_records(gt_json, dt_json)
    (out_dir / "gt.odgt").write_text("".join(json.dumps(r) + "\n" for r in gt_records))
    (out_dir / "dt.odgt").write_text("".join(json.dumps(r) + "\n" for r in dt_records))
    print(f"files: {(out_dir / 'gt.json').stat().st_size / 2**20:.0f} MB GT json, "
          f"{(out_dir / 'dt.json').stat().st_size / 2**20:.0f} MB detections json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each configuration")
    parser.add_argument("--coco", action="store_true", help="also time --coco")
    parser.add_argument("--odgt", action="store_true",
                        help="also time the default on the official .odgt formats")
    parser.add_argument("--reference", action="store_true",
                        help="also run the literal reference evaluator (slow) and compare")
    parser.add_argument("--generate-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generate_into is not None:
        write_inputs(args.generate_into, args.seed)
        return 0

    print(f"load average: {load_text()}  cpus: {os.cpu_count()}  numpy {np.__version__}")
    lla = lla_command()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        generate_in_child(Path(__file__), tmp, "--seed", str(args.seed))
        startup = startup_time(lla + ["eval", "crowdhuman"], args.repeat)
        out = tmp / "metrics.json"

        def run(name: str, suffix: str, *options: str) -> dict:
            command = lla + ["-v", "eval", "crowdhuman", "--gt", str(tmp / f"gt{suffix}"),
                             "--dt", str(tmp / f"dt{suffix}"), *options]
            return benchmark(name, command, PHASES, startup, args.repeat, out)

        metrics = run("default (MR, AP, Recall, JI)", ".json")
        run("--no-ji", ".json", "--no-ji")
        if args.coco:
            run("--coco", ".json", "--coco")
        if args.odgt:
            run("default on .odgt files", ".odgt")
        if args.reference:
            sys.path.insert(0, str(ROOT / "tests"))
            from crowdhuman_reference import reference_metrics

            gt_records = [json.loads(line) for line in (tmp / "gt.odgt").open()]
            dt_records = [json.loads(line) for line in (tmp / "dt.odgt").open()]
            t = time.perf_counter()
            ref = reference_metrics(gt_records, dt_records)
            diff = max(abs(ref[k] - metrics[k]) for k in ref)
            print(f"\nliteral reference wall: {time.perf_counter() - t:.1f} s -> {ref}; "
                  f"max |difference| {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
