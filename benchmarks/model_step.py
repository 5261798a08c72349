"""Median training-step time (forward + assignment + loss + backward + SGD) per detector variant.

    .venv/bin/python benchmarks/model_step.py                       # mini profile, 384 x 384, batch 2
    .venv/bin/python benchmarks/model_step.py --profile micro --size 128 --variants fcos lla_fcos

The synthetic batch holds ``--people`` random person-shaped boxes per image and one
ignore box. Prints one line per variant: parameters, median and min step time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from lla.config import load_params  # noqa: E402
from lla.models import build_detector, variant_names  # noqa: E402


def synthetic_batch(batch: int, size: int, people: int, generator: torch.Generator):
    images, targets = [], []
    for _ in range(batch):
        images.append(torch.rand(3, size, size, generator=generator))
        heights = size * (0.1 + 0.5 * torch.rand(people, generator=generator))
        widths = heights * 0.4
        x1 = (size - widths) * torch.rand(people, generator=generator)
        y1 = (size - heights) * torch.rand(people, generator=generator)
        boxes = torch.stack((x1, y1, x1 + widths, y1 + heights), dim=1)
        targets.append({"boxes": boxes, "ignore_boxes": torch.tensor([[0.0, 0.0, 0.1 * size, 0.1 * size]])})
    return images, targets


def time_variant(params, variant: str, profile: str, args) -> tuple[int, list[float]]:
    torch.manual_seed(0)
    model = build_detector(params, variant, profile)
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3,
                                momentum=0.9)
    images, targets = synthetic_batch(args.batch, args.size, args.people,
                                      torch.Generator().manual_seed(1))
    times = []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        losses = model(images, targets)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    return sum(p.numel() for p in model.parameters()), times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--profile", default="mini")
    parser.add_argument("--variants", nargs="*", help="default: every variant of the profile")
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--people", type=int, default=20, help="GT boxes per image")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    params = load_params(args.params)
    # random starting weights: the step's time does not depend on them (no pretrained file needed)
    params["models"].setdefault(args.profile, {}).setdefault("backbone", {})["weights"] = None
    variants = args.variants or variant_names(params, args.profile)
    print(f"profile={args.profile} size={args.size}x{args.size} batch={args.batch} "
          f"people/image={args.people} steps={args.steps} threads={torch.get_num_threads()}")
    print(f"{'variant':<24} {'params':>8} {'median_s':>9} {'min_s':>7}")
    for variant in variants:
        num_params, times = time_variant(params, variant, args.profile, args)
        print(f"{variant:<24} {num_params / 1e6:>7.2f}M {statistics.median(times):>9.3f} "
              f"{min(times):>7.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
