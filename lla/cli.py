"""`lla <group> <command>`: the single entry point that Snakemake rules and DVC stages call.

Each command lives in the module that does the work; that module exposes
``add_parser(subparsers)`` which registers its arguments and sets ``func``.
Commands are either grouped (`lla data convert ...`) or top-level (`lla train ...`).
Modules are imported lazily per group so that `lla data --help` does not import torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from lla.errors import DataError

# group name -> (help text, modules that each register one or more commands)
COMMAND_GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "data": ("datasets: generate synthcrowd, download, convert, statistics",
             ("lla.data.synthcrowd", "lla.data.download", "lla.data.convert",
              "lla.data.stats")),
    "eval": ("evaluate detections: CrowdHuman MR/AP/Recall, CityPersons MR",
             ("lla.eval.crowdhuman", "lla.eval.citypersons")),
    "analyze": ("analyses of trained models: AAR (Table 5), FPN levels, positives",
                ("lla.eval.assignment_stats", "lla.eval.fpn_levels", "lla.eval.positives",
                 "lla.eval.visible")),
    "report": ("tables (reproduced vs paper values), figures, the paper report",
               ("lla.report.tables", "lla.report.figures", "lla.report.paper", "lla.report.curves",
                "lla.report.claims")),
}

# top-level commands: name -> (help text, module whose add_parser adds exactly that command)
TOP_LEVEL_COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train one experiment of params.yaml (DDP under torchrun)", "lla.engine.train"),
    "infer": ("run a trained checkpoint over a split and write detections", "lla.engine.infer"),
    "pretrain": ("pretrain the tiny backbone body on person/background crops",
                 "lla.engine.pretrain"),
}


def build_parser(groups: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lla",
        description="LLA reproducibility pipeline: data, training, evaluation, tables.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    group_parsers = parser.add_subparsers(dest="group", metavar="GROUP", required=True)
    for name, (help_text, modules) in COMMAND_GROUPS.items():
        group = group_parsers.add_parser(name, help=help_text, description=help_text)
        commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
        if groups is not None and name not in groups:
            continue
        for module_name in modules:
            importlib.import_module(module_name).add_parser(commands)
    for name, (help_text, module_name) in TOP_LEVEL_COMMANDS.items():
        if groups is not None and name not in groups:
            group_parsers.add_parser(name, help=help_text)
            continue
        importlib.import_module(module_name).add_parser(group_parsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Import only the group that is asked for (keeps `lla data ...` light).
    known = set(COMMAND_GROUPS) | set(TOP_LEVEL_COMMANDS)
    wanted = [a for a in argv if a in known][:1] or None
    parser = build_parser(wanted)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        result = args.func(args)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
