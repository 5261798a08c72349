"""Occlusion statistics of synthcrowd next to CrowdHuman's published figures.

Generates a sample of the CrowdHuman flavour with the settings of a profile (default:
300 train images of `mini`), computes `lla data stats` on its annotation file and prints
both columns. Usage:

    .venv/bin/python benchmarks/synthcrowd_stats.py [--images 300] [--profile mini] [--workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lla.config import load_params  # noqa: E402
from lla.data import stats, synthcrowd  # noqa: E402

# CrowdHuman training set, from the CrowdHuman paper (Shao et al., arXiv:1805.00123):
# Table 1 (15,000 images, 339,565 persons, 99,227 ignore regions), the pair-wise overlap
# table (pairs of full boxes per image above each IoU) and the occlusion table
# (occlusion = 1 - visibility: <= 30 %, 30-70 %, > 70 %). The 22.6 persons/image and
# 2.40 pairs/image at IoU > 0.5 are the headline figures of the paper; the other
# thresholds and the occlusion split are quoted from the same tables as we recorded them.
CROWDHUMAN_PUBLISHED = {
    "images": 15000,
    "persons_per_image": 22.64,
    "ignore_boxes_per_image": 99227 / 15000,
    "pairs_per_image": {"0.3": 9.02, "0.4": 4.89, "0.5": 2.40, "0.6": 1.01, "0.7": 0.33,
                        "0.8": 0.07, "0.9": 0.01},
    "occlusion_levels": {"bare": 0.2989, "partial": 0.3213, "heavy": 0.3798},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--profile", default="mini")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    settings = synthcrowd.settings_from_params(load_params(args.params), args.profile, args.params)
    cfg = dataclasses.replace(settings.flavours["crowdhuman"], train_images=args.images,
                              val_images=0)
    settings = dataclasses.replace(settings, flavours={**settings.flavours, "crowdhuman": cfg})
    with tempfile.TemporaryDirectory() as tmp:
        synthcrowd.generate(settings, tmp, workers=args.workers, only="crowdhuman")
        odgt = Path(tmp) / "crowdhuman" / "annotation_train.odgt"
        result = stats.compute_stats(stats.load_ground_truth(odgt))
    print(f"synthcrowd CrowdHuman flavour: {args.images} images, profile {args.profile}, "
          f"{cfg.width}x{cfg.height}")
    print(stats.format_stats(result, CROWDHUMAN_PUBLISHED, "CrowdHuman"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
