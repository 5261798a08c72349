"""Generation speed of synthcrowd (CrowdHuman flavour), including JPEG encode and write.

Generates the same sample with 1 and with 2 worker processes and prints images/s.
Target: >= 25 images/s at 384 px on 2 cores. Usage:

    .venv/bin/python benchmarks/synthcrowd_speed.py [--images 300] [--size 384] [--profile mini]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lla.config import load_params  # noqa: E402
from lla.data import synthcrowd  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--profile", default="mini")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    settings = synthcrowd.settings_from_params(load_params(args.params), args.profile, args.params)
    cfg = dataclasses.replace(settings.flavours["crowdhuman"], train_images=args.images,
                              val_images=0, width=args.size, height=args.size)
    settings = dataclasses.replace(settings, flavours={**settings.flavours, "crowdhuman": cfg})
    print(f"synthcrowd CrowdHuman flavour, {args.images} images of {args.size}x{args.size}, "
          f"JPEG q{cfg.jpeg_quality}, profile {args.profile}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            before = os.times()
            start = time.perf_counter()
            synthcrowd.generate(settings, tmp, workers=workers, only="crowdhuman")
            seconds = time.perf_counter() - start
            after = os.times()
        # CPU time of this process and its (joined) workers: independent of other load
        cpu = sum(after[i] - before[i] for i in range(4))
        cpu_ms = 1000 * cpu / args.images
        print(f"workers={workers}: {args.images / seconds:6.1f} images/s wall ({seconds:.1f} s); "
              f"{cpu_ms:.1f} CPU-ms/image -> {workers * 1000 / cpu_ms:.1f} images/s on "
              f"{workers} idle core(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
