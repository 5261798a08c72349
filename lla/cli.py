"""`lla <group> <command>`: the single entry point that Snakemake rules and DVC stages call.

Registering a command (``docs/cli.md``): the module that does the work exposes
``add_parser(subparsers)``, which adds the command with its options (the shared ones from
:mod:`lla.options`) and sets ``func`` -- the function that runs it, given the parsed
arguments, returning the exit code. Name the module in :data:`COMMAND_GROUPS` (a command
of a group: ``lla data convert``) or :data:`TOP_LEVEL_COMMANDS` (``lla train``).

A command module must be light to import -- no torch, pandas or matplotlib at its top --
because a group's help imports every module of the group to list its commands. Where the
work needs torch at module level (:mod:`lla.engine.train`), the parser lives in a light
module beside it and ``func`` is a ``"module:function"`` string, imported only when the
command runs (:mod:`lla.engine.commands`). `lla --help` imports no command module.

Every parser accepts ``-v/--verbose`` (debug logging), before or after the command.
Exit codes: 0 done, 1 failed, 2 bad input (``error: FILE[:LINE]: reason``), 75 stopped
after saving a checkpoint (requeue and rerun; ``lla train``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable
from typing import Any

import lla
from lla import datasets
from lla.errors import DataError

EXIT_BAD_INPUT = 2

# group name -> (help text, modules that each register one or more commands)
COMMAND_GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "data": ("datasets: generate synthcrowd, download, convert, statistics, manifest; ImageNet weights",
             ("lla.data.synthcrowd", "lla.data.download", "lla.data.convert",
              "lla.data.stats", "lla.data.manifest", "lla.data.weights")),
    "eval": ("evaluate detections: CrowdHuman MR/AP/Recall/JI, CityPersons MR",
             tuple(spec.evaluator for spec in datasets.DATASETS.values())),
    "analyze": ("analyses of trained models: AAR (Table 5), FPN levels (Fig. 3), positives "
                "(Figs. 1, 2, 4), positives on the visible body; the anchor regime of a dataset",
                ("lla.analysis.aar", "lla.analysis.fpn_levels", "lla.analysis.positives",
                 "lla.analysis.visible", "lla.analysis.commands")),
    "report": ("tables (reproduced vs paper values), figures, claims, curves, the paper report",
               ("lla.report.tables", "lla.report.figures", "lla.report.paper", "lla.report.curves",
                "lla.report.claims")),
}

# top-level command -> (help text, module whose add_parser adds it, maybe with others)
TOP_LEVEL_COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train one experiment of params.yaml (DDP under torchrun)", "lla.engine.commands"),
    "infer": ("run a trained checkpoint over a split and write detections",
              "lla.engine.commands"),
    "pretrain": ("pretrain the tiny backbone body on person/background crops",
                 "lla.engine.commands"),
    "detect": ("detect persons in a folder of images: detections json + drawn images",
               "lla.report.detect"),
}


class LlaParser(argparse.ArgumentParser):
    """An argument parser that accepts ``-v/--verbose`` (sub-command parsers are made of the
    same class, so ``lla eval crowdhuman -v ...`` works like ``lla -v eval crowdhuman ...``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.add_help:  # not for parent parsers
            self.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                              help="debug logging")


def build_parser(groups: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser of `lla`, with the commands of ``groups`` (group or top-level command
    names; None: all); the others are listed with their help but have no options."""
    parser = LlaParser(
        prog="lla",
        description="LLA reproducibility pipeline: data, training, evaluation, analyses, "
                    "tables and the report. `lla COMMAND --help` describes a command.",
        epilog="Exit codes: 0 done, 1 failed, 2 bad input (error: FILE[:LINE]: reason), "
               "75 stopped after saving a checkpoint (rerun to resume).")
    parser.add_argument("--version", action="version", version=f"lla {lla.__version__}",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    for name, (help_text, modules) in COMMAND_GROUPS.items():
        group = commands.add_parser(name, help=help_text, description=help_text)
        group_commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
        if groups is None or name in groups:
            for module_name in modules:
                importlib.import_module(module_name).add_parser(group_commands)
    for name, (_, module_name) in TOP_LEVEL_COMMANDS.items():
        if (groups is None or name in groups) and name not in commands.choices:
            importlib.import_module(module_name).add_parser(commands)  # may add several
    for name, (help_text, _) in TOP_LEVEL_COMMANDS.items():
        if name not in commands.choices:
            commands.add_parser(name, help=help_text)
    return parser


def command_function(func: Callable[[argparse.Namespace], Any] | str
                     ) -> Callable[[argparse.Namespace], Any]:
    """A command's ``func``: the function itself or a ``"module:function"`` string."""
    if isinstance(func, str):
        module_name, _, name = func.partition(":")
        return getattr(importlib.import_module(module_name), name)
    return func


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Import the modules of the command asked for only (none for `lla --help`).
    known = set(COMMAND_GROUPS) | set(TOP_LEVEL_COMMANDS)
    wanted = [a for a in argv if a in known][:1]
    args = build_parser(wanted).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        result = command_function(args.func)(args)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
