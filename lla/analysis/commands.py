"""The options of `lla analyze regime`.

They live apart from :mod:`lla.analysis.regime`, which imports the assigners (and torch) at
its top for their in-box margin and K, so that `lla analyze --help` starts without torch:
``func`` names the function that runs the command, imported when it runs (see :mod:`lla.cli`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lla import datasets, options


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "regime", parents=[options.SETTINGS, options.split_and_data("val")],
        help="anchor points inside each person and, with a checkpoint, LLA's positives "
             "outside their person",
        description="The anchor regime of a dataset split under an input transform and FPN "
                    "strides: per person the anchor points strictly inside the full box (per "
                    "level and in all), their median and 25th percentile, the share of persons "
                    "with fewer than K; with --checkpoint, the share of the positives its "
                    "assigner gives a person that lie outside that person's box.")
    parser.add_argument("--dataset", default="crowdhuman", choices=datasets.names(),
                        help="dataset of the profile whose split json to read (default: crowdhuman)")
    parser.add_argument("--min-size", type=int, metavar="PX",
                        help="short side of the network input (default: input.<profile>.min_size)")
    parser.add_argument("--max-size", type=int, metavar="PX",
                        help="long side at most (default: input.<profile>.max_size)")
    parser.add_argument("--strides", type=int, nargs="+", metavar="S",
                        help="FPN strides, finest first (default: models.<profile>.strides)")
    parser.add_argument("--k", type=int,
                        help="K of the share of persons below K points (default: LLA's K, 10)")
    parser.add_argument("--per-person", type=Path, metavar="CSV",
                        help="also write every person's points per level to this csv")
    parser.add_argument("--checkpoint", type=Path, metavar="CKPT",
                        help="a trained model: add its assigner's positives outside their person "
                             "(over the split at the checkpoint's own input size)")
    parser.add_argument("--max-images", type=int, metavar="N",
                        help="images of the model pass (default: all)")
    parser.add_argument("--batch-size", type=int, default=2, metavar="N",
                        help="images per forward pass of the model pass (default: 2)")
    options.add_out(parser, "the regime json")
    parser.set_defaults(func="lla.analysis.regime:run")
