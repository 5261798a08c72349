"""The options of `lla train`, `lla infer` and `lla pretrain`.

They live apart from :mod:`lla.engine.train`, :mod:`lla.engine.infer` and
:mod:`lla.engine.pretrain`, which import
torch at their top, so that `lla train --help` starts without it: ``func`` names the
function that runs the command, imported when the command runs (see :mod:`lla.cli`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lla import options
from lla.engine.signals import EXIT_REQUEUE


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    add_train_parser(subparsers)
    add_infer_parser(subparsers)
    add_pretrain_parser(subparsers)


def add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", parents=[options.SETTINGS, options.DEVICE],
        help="train one experiment of params.yaml (DDP under torchrun)",
        description="Train one experiment. Under torchrun every process trains on its own "
                    "device (DDP); without it one process uses one device. Exit codes: 0 done, "
                    f"1 failed (e.g. a non-finite loss), 2 bad input, {EXIT_REQUEUE} stopped by "
                    "SIGTERM/SIGUSR1 after saving a checkpoint (requeue and rerun to resume).")
    parser.add_argument("--experiment", required=True, help="a key of the experiments block")
    parser.add_argument("--data", type=Path, metavar="JSON",
                        help="the converted training json (default: the experiment's dataset "
                             "for the profile, under data_root)")
    options.add_out_dir(parser, "run directory: checkpoints, dvclive/, model_final.pt",
                        default="runs/<profile>/<experiment>")
    parser.add_argument("--resume", default="auto",
                        help="auto: continue from the newest checkpoint in --out-dir (default; a "
                             "run whose settings changed starts afresh, its checkpoints moved "
                             "to checkpoints.superseded/); never: start from scratch; or a "
                             "checkpoint path")
    parser.add_argument("--stop-after", type=int, metavar="ITER",
                        help="stop after this many iterations (saving a checkpoint, exit 0); "
                             "a later run resumes from there")
    infer_group = parser.add_argument_group(
        "inference after training",
        "run `lla infer` on the final model in the same process(es) (saves a process start: "
        "the pipeline's train job writes the detections too)")
    infer_group.add_argument("--infer-out", type=Path, metavar="JSON",
                             help="write the detections of the final model here (COCO results)")
    infer_group.add_argument("--infer-split", default="val",
                             help="split of the experiment's dataset to run on (default: val)")
    infer_group.add_argument("--infer-data", type=Path, metavar="JSON",
                             help="a converted dataset json instead of the split's")
    parser.add_argument("--on-diverge", choices=("fail", "record"), default="fail",
                        help="a non-finite loss: fail (exit 1, default) or record it (exit 0; "
                             "model_final.pt with the last good weights marked 'diverged', "
                             "--infer-out as {\"diverged\": ...}: the tables' \"—\")")
    parser.set_defaults(func="lla.engine.train:run")


def add_infer_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "infer", parents=[options.CHECKPOINT, options.split_and_data("val"), options.PARAMS,
                          options.DEVICE],
        help="run a trained checkpoint over a split and write detections",
        description="Detections of a checkpoint on one split: a COCO results json and "
                    "optionally the CrowdHuman detection odgt. Works under torchrun.")
    options.add_out(parser, "COCO results json to write")
    parser.add_argument("--odgt-out", type=Path, metavar="FILE",
                        help="also write the CrowdHuman detection odgt here")
    parser.add_argument("--profile", help="profile locating the data and the input sizes "
                                          "(default: the checkpoint's)")
    parser.add_argument("--images-per-device", type=int, metavar="N",
                        help="batch size per process (default: train.infer_images_per_device)")
    parser.set_defaults(func="lla.engine.infer:run")


def add_pretrain_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pretrain", parents=[options.SETTINGS],
        help="pretrain the tiny backbone body on person/background crops",
        description="Pretrain the tiny backbone body of a CPU profile (mini, micro) on person / "
                    "background crops of the crowdhuman training split, the stand-in for "
                    "ImageNet pretraining; write the body's weights for "
                    "models.<profile>.backbone.weights. Settings: the pretrain block.")
    parser.add_argument("--depth", type=int, default=50, choices=(50, 101),
                        help="backbone depth whose tiny body to pretrain (blocks_per_stage; "
                             "default 50)")
    parser.add_argument("--data", type=Path, metavar="JSON",
                        help="the converted training json (default: the profile's crowdhuman "
                             "train json)")
    parser.add_argument("--val-data", metavar="JSON",
                        help="json whose crops measure the accuracy (default: the profile's "
                             "crowdhuman val json; 'none' to skip)")
    options.add_out(parser, "the body file to write (.pt)",
                    default="runs/<profile>/pretrain/body_r<depth>.pt")
    parser.set_defaults(func="lla.engine.pretrain:run")
