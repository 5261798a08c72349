"""Benchmark of `lla eval crowdhuman` on a CrowdHuman-val-sized synthetic input.

    .venv/bin/python benchmarks/eval_crowdhuman.py [--seed 0] [--ji] [--coco] [--reference]

The generator makes 4,370 images (CrowdHuman-like sizes), ~100k GT boxes (heavy-tailed
crowd sizes, clustered people, full-body boxes past the image border, ignore regions) and
~565k detections (at most 300 per image, clipped to the image: jittered true positives,
duplicates, detections in ignore regions, near-miss and random false positives; part of
the scores rounded to 4 decimals, so there are ties within and across images).

Printed: the time to read, parse and convert the two JSON files; the wall and CPU time
of MR+AP+Recall (the target: <= 1.5 s on 2 cores) over --repeat runs, its peak traced
memory (tracemalloc) and the max-RSS growth; optionally the JI / COCO times and the
literal reference evaluator's time and agreement.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

NUM_IMAGES = 4370
MAX_DETS_PER_IMAGE = 300


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


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of MR+AP+Recall")
    parser.add_argument("--ji", action="store_true", help="also time the Jaccard index")
    parser.add_argument("--coco", action="store_true", help="also time COCO AP (pycocotools)")
    parser.add_argument("--reference", action="store_true",
                        help="also run the literal reference evaluator (slow) and compare")
    args = parser.parse_args(argv)

    from lla.eval import crowdhuman_protocol as protocol
    from lla.eval.crowdhuman import evaluate_loaded, jaccard_index
    from lla.eval.crowdhuman_io import load_detections, load_ground_truth

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average: {load}  cpus: {os.cpu_count()}  numpy {np.__version__}")
    t = time.perf_counter()
    gt_json, dt_json = generate(args.seed)
    num_ignore = sum(a["ignore"] for a in gt_json["annotations"])
    per_image = np.bincount([d["image_id"] for d in dt_json])
    print(f"generated in {time.perf_counter() - t:.1f} s: {len(gt_json['images'])} images, "
          f"{len(gt_json['annotations'])} GT ({num_ignore} ignore), {len(dt_json)} detections "
          f"(max {per_image.max()} per image)")

    with tempfile.TemporaryDirectory() as tmp:
        gt_path, dt_path = Path(tmp, "gt.json"), Path(tmp, "dt.json")
        gt_path.write_text(json.dumps(gt_json))
        dt_path.write_text(json.dumps(dt_json))
        t = time.perf_counter()
        gt = load_ground_truth(gt_path)
        dets = load_detections(dt_path, gt)
        print(f"read + parse + convert both files (load_ground_truth/load_detections): "
              f"{time.perf_counter() - t:.3f} s  ({dt_path.stat().st_size / 2**20:.0f} MB "
              f"of detections json)")

    gc.collect()
    rss_before = _max_rss_mb()
    walls, cpus = [], []
    for _ in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        metrics = protocol.protocol_metrics(gt, dets)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    print(f"MR+AP+Recall wall: {', '.join(f'{x:.3f}' for x in walls)} s (best "
          f"{min(walls):.3f} s); CPU: {', '.join(f'{x:.3f}' for x in cpus)} s")
    print(f"  -> {metrics}")
    print(f"max RSS growth during the runs: {_max_rss_mb() - rss_before:.0f} MB")
    tracemalloc.start()
    protocol.protocol_metrics(gt, dets)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"peak traced memory of one run (tracemalloc): {peak / 2**20:.0f} MB")

    if args.ji:
        t, c = time.perf_counter(), time.process_time()
        ji = jaccard_index(gt, dets)
        print(f"JI wall: {time.perf_counter() - t:.2f} s, CPU {time.process_time() - c:.2f} s "
              f"-> JI {ji:.6f}")
    if args.coco:
        t = time.perf_counter()
        coco = evaluate_loaded(gt, dets, ji=False, coco=True)
        print(f"MR+AP+Recall+COCO wall: {time.perf_counter() - t:.1f} s -> {coco}")
    if args.reference:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from crowdhuman_reference import reference_metrics

        gt_records, dt_records = to_odgt_records(gt_json, dt_json)
        t = time.perf_counter()
        ref = reference_metrics(gt_records, dt_records)
        diff = max(abs(ref[k] - metrics[k]) for k in ref)
        print(f"literal reference wall: {time.perf_counter() - t:.1f} s -> {ref}; "
              f"max |difference| {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
