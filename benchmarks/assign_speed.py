"""Assignment time per image at paper scale: LLA vs ATSS vs max-IoU (and FCOS); Table 6's baselines.

Scene: an 800 x 1400 input, FPN P3-P7 (strides 8..128), points at (x*s, y*s):
J = 23,363 points (FCOS layout) or 210,267 anchors (RetinaNet, A = 9). I = 50, 150, 500
random pedestrian-shaped GT boxes, random logits and predicted boxes near the anchors.

Prints a table of milliseconds per image (median of --repeats runs after one warm-up)
on CPU (process CPU time, so that other load on a shared machine does not count) and,
when available, CUDA (wall time); then the peak extra memory of LLA at I = 500 on the
anchor layout, measured in a fresh subprocess (CPU: peak-RSS delta after resetting
the kernel's mark through /proc/self/clear_refs; CUDA: torch.cuda.max_memory_allocated delta).

With ``--baselines`` it also prints the time of the Table 6 baselines' assigners on the
layouts of their variants: PAA on one 8·stride square anchor per location (J = 23,363),
Noisy Anchor and FreeAnchor's ignore marking on the RetinaNet anchors (J = 210,267), and
max-IoU on those anchors for reference.

    .venv/bin/python benchmarks/assign_speed.py [--repeats 3] [--threads N] [--device cpu] [--baselines]
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from lla.assign import (ATSSAssigner, FCOSAssigner, FreeAnchorAssigner, LLAAssigner, MaxIoUAssigner,  # noqa: E402
                        NoisyAnchorAssigner, PAAAssigner)

IMAGE_HEIGHT, IMAGE_WIDTH = 800, 1400
STRIDES = (8, 16, 32, 64, 128)
ANCHOR_SCALES = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))
ANCHOR_RATIOS = (0.5, 1.0, 2.0)  # height / width
ANCHOR_BASE = 4  # base size = 4 x stride
GT_COUNTS = (50, 150, 500)


def make_layout(anchors_per_location: int, square_scale: float = 0.0) -> tuple[torch.Tensor, list[int]]:
    """(J, 4) anchor boxes and anchors per level.

    One anchor per location: degenerate boxes (points), or with ``square_scale`` > 0 squares of
    side ``square_scale`` x stride (PAA's layout).
    """
    boxes, sizes = [], []
    for stride in STRIDES:
        height, width = math.ceil(IMAGE_HEIGHT / stride), math.ceil(IMAGE_WIDTH / stride)
        ys, xs = torch.meshgrid(torch.arange(height) * float(stride), torch.arange(width) * float(stride),
                                indexing="ij")
        centers = torch.stack((xs.flatten(), ys.flatten()), dim=1)  # (H*W, 2)
        if anchors_per_location == 1:
            half = torch.full((1, 2), square_scale * stride / 2)
        else:
            half = torch.tensor([[ANCHOR_BASE * stride * s / math.sqrt(r) / 2, ANCHOR_BASE * stride * s * math.sqrt(r) / 2]
                                 for r in ANCHOR_RATIOS for s in ANCHOR_SCALES])  # (A, 2) half w, half h
        level = torch.cat((centers[:, None] - half[None], centers[:, None] + half[None]), dim=2).reshape(-1, 4)
        boxes.append(level)
        sizes.append(level.shape[0])
    return torch.cat(boxes), sizes


def make_scene(num_gts: int, anchors: torch.Tensor, seed: int = 0):
    """Random pedestrians (aspect 0.41, heights 20..600 px log-uniform) and predictions."""
    generator = torch.Generator().manual_seed(seed)
    heights = torch.exp(torch.empty(num_gts).uniform_(math.log(20), math.log(600), generator=generator))
    widths = heights * 0.41
    cx = torch.rand(num_gts, generator=generator) * IMAGE_WIDTH
    cy = torch.rand(num_gts, generator=generator) * IMAGE_HEIGHT
    gt = torch.stack((cx - widths / 2, cy - heights / 2, cx + widths / 2, cy + heights / 2), dim=1)
    gt[:, 0::2] = gt[:, 0::2].clamp(0, IMAGE_WIDTH)
    gt[:, 1::2] = gt[:, 1::2].clamp(0, IMAGE_HEIGHT)
    ignore = torch.rand(num_gts, generator=generator) < 0.1
    num_anchors = anchors.shape[0]
    logits = torch.randn(num_anchors, 1, generator=generator) - 3.0
    centers = (anchors[:, :2] + anchors[:, 2:]) / 2
    half = torch.rand(num_anchors, 2, generator=generator) * 60 + 4
    box_pred = torch.cat((centers - half, centers + half), dim=1)
    return gt, ignore, logits, box_pred


def assigners(point_layout: bool) -> dict[str, object]:
    table = {
        "lla": LLAAssigner(topk=10, reg_weight=1.5, inbox_cost=1e3),
        "atss": ATSSAssigner(anchor_free=point_layout),
    }
    if point_layout:
        table["fcos"] = FCOSAssigner()
    else:
        table["max_iou"] = MaxIoUAssigner()
    return table


def time_call(function, repeats: int, device: torch.device) -> float:
    """Median milliseconds per call: process CPU time on CPU (robust on a shared machine), wall on CUDA."""
    clock = time.perf_counter if device.type == "cuda" else time.process_time

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    function()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        start = clock()
        function()
        sync()
        times.append(clock() - start)
    return statistics.median(times) * 1e3


def speed_table(device: torch.device, repeats: int) -> None:
    clock = "wall" if device.type == "cuda" else "process CPU"
    print(f"\n## assignment time per image, ms of {clock} time (device {device}, torch threads "
          f"{torch.get_num_threads()})")
    print(f"| layout | J | I | {'lla':>8} | {'atss':>8} | {'max_iou/fcos':>12} | lla/atss |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for anchors_per_location, layout in ((1, "points"), (9, "anchors A=9")):
        anchors, sizes = make_layout(anchors_per_location)
        point_layout = anchors_per_location == 1
        for num_gts in GT_COUNTS:
            gt, ignore, logits, box_pred = (t.to(device) for t in make_scene(num_gts, anchors))
            anchors_dev = anchors.to(device)
            results = {}
            for name, assigner in assigners(point_layout).items():
                results[name] = time_call(lambda: assigner.assign(
                    anchors_dev, gt, ignore, logits, box_pred, num_anchors_per_level=sizes, strides=STRIDES),
                    repeats, device)
            third = results.get("fcos", results.get("max_iou"))
            third_name = "fcos" if point_layout else "max_iou"
            print(f"| {layout} | {anchors.shape[0]} | {num_gts} | {results['lla']:8.1f} | {results['atss']:8.1f} "
                  f"| {third:8.1f} {third_name:>7} | {results['lla'] / results['atss']:.2f} |", flush=True)


def baseline_table(device: torch.device, repeats: int) -> None:
    """Milliseconds per image of the Table 6 baselines' assigners (see the module docstring)."""
    clock = "wall" if device.type == "cuda" else "process CPU"
    print(f"\n## Table 6 baselines' assignment time per image, ms of {clock} time (device {device}, "
          f"torch threads {torch.get_num_threads()})")
    print("| assigner | J | " + " | ".join(f"I = {n}" for n in GT_COUNTS) + " |")
    print("|---|---:|" + "---:|" * len(GT_COUNTS))
    cases = (("paa", make_layout(1, square_scale=8.0), PAAAssigner(iou_thr=0.1, topk=9, reg_weight=1.3)),
             ("noisy_anchor", make_layout(9), NoisyAnchorAssigner(topk=50, alpha=0.75, gamma=1.0)),
             ("free_anchor", make_layout(9), FreeAnchorAssigner(bag_size=50, ignore_iou_thr=0.5)),
             ("max_iou", make_layout(9), MaxIoUAssigner()))
    for name, (anchors, sizes), assigner in cases:
        cells = []
        for num_gts in GT_COUNTS:
            gt, ignore, logits, box_pred = (t.to(device) for t in make_scene(num_gts, anchors))
            anchors_dev = anchors.to(device)
            cells.append(time_call(lambda: assigner.assign(
                anchors_dev, gt, ignore, logits, box_pred, num_anchors_per_level=sizes, strides=STRIDES),
                repeats, device))
        print(f"| {name} | {anchors.shape[0]} | " + " | ".join(f"{ms:.1f}" for ms in cells) + " |", flush=True)


MEMORY_MODES = {  # label -> LLAAssigner settings
    "default (GT chunks, in-box pruning)": {},
    "GT chunks, no pruning": {"prune_outside": False},
    "dense (chunk_elements=None, no pruning)": {"chunk_elements": None, "prune_outside": False},
}


def memory_probe(device_name: str, mode: str) -> None:
    """Run in a subprocess: peak extra memory of one LLA assignment at I = 500, A = 9."""
    device = torch.device(device_name)
    anchors, sizes = make_layout(9)
    gt, ignore, logits, box_pred = (t.to(device) for t in make_scene(500, anchors))
    anchors = anchors.to(device)
    assigner = LLAAssigner(topk=10, reg_weight=1.5, inbox_cost=1e3, **MEMORY_MODES[mode])
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        assigner.assign(anchors, gt, ignore, logits, box_pred)
        torch.cuda.synchronize()
        extra = torch.cuda.max_memory_allocated() - before
    else:
        before = _reset_peak_rss()
        assigner.assign(anchors, gt, ignore, logits, box_pred)
        extra = _peak_rss() - before
    print(f"{extra / 2 ** 20:.1f}")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> int:
    """Reset the kernel's peak-RSS mark (Linux clear_refs 5); return the current RSS in bytes."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kib("VmRSS") * 1024
    except OSError:  # no /proc: fall back to the lifetime peak (an under-estimate of the delta)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _peak_rss() -> int:
    try:
        return _status_kib("VmHWM") * 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_table(device: torch.device, include_dense: bool) -> None:
    print(f"\n## LLA peak extra memory, I = 500, J = 210267 anchors (device {device})")
    print("| cost built | peak extra memory (MiB) |")
    print("|---|---:|")
    modes = list(MEMORY_MODES) if include_dense else list(MEMORY_MODES)[:2]
    for mode in modes:
        output = subprocess.run([sys.executable, __file__, "--memory-probe", device.type, mode,
                                 "--threads", str(torch.get_num_threads())],
                                capture_output=True, text=True, check=True).stdout.split()[-1]
        print(f"| {mode} | {output} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: stable CPU times)")
    parser.add_argument("--device", action="append", help="cpu and/or cuda (default: cpu, plus cuda if present)")
    parser.add_argument("--dense-memory", action="store_true", help="also measure the dense cost's memory (GBs)")
    parser.add_argument("--skip-speed", action="store_true", help="only the memory table")
    parser.add_argument("--baselines", action="store_true", help="also time the Table 6 baselines' assigners")
    parser.add_argument("--memory-probe", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_probe:
        memory_probe(*args.memory_probe)
        return
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    for name in devices:
        if not args.skip_speed:
            speed_table(torch.device(name), args.repeats)
        if args.baselines:
            baseline_table(torch.device(name), args.repeats)
    for name in devices:
        memory_table(torch.device(name), args.dense_memory)


if __name__ == "__main__":
    main()
