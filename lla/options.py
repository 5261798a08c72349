"""The command-line options that several `lla` commands share, declared once.

Each is an argparse parent parser; a command takes the ones it needs::

    parser = subparsers.add_parser("table", parents=[options.PARAMS, options.PROFILE], ...)

The conventions every command follows (``docs/cli.md``):

* ``--out FILE`` names the one file a command writes, ``--out-dir DIR`` the directory it
  writes several files into (:func:`add_out`, :func:`add_out_dir`);
* ``--split`` chooses a split, ``--data JSON`` a converted dataset json instead of the
  profile's json of that split;
* ``--params FILE`` (default ``params.yaml``) and ``--profile`` (default: the params'
  top-level ``profile``) locate the settings; outputs and inputs a command does not get
  default to the profile's paths in :mod:`lla.layout`.

This module imports nothing heavy: a command's options are known without torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lla.config import DEFAULT_PARAMS


def parent(*arguments: tuple[tuple[str, ...], dict]) -> argparse.ArgumentParser:
    """A parent parser holding ``arguments``: ``(flags, add_argument keyword arguments)``
    pairs (for options a group of commands shares, e.g. the analyses' in
    :mod:`lla.analysis.checkpoint_pass`)."""
    parser = argparse.ArgumentParser(add_help=False)
    for flags, kwargs in arguments:
        parser.add_argument(*flags, **kwargs)
    return parser


_PARAMS = (("--params",), dict(type=Path, default=DEFAULT_PARAMS, metavar="FILE",
                               help=f"parameter file (default: {DEFAULT_PARAMS})"))
_PROFILE = (("--profile",), dict(help="profile of the params: paper | official_code | mini | "
                                      "micro (default: the params' top-level 'profile')"))
_DATA = (("--data",), dict(type=Path, metavar="JSON",
                           help="a converted dataset json to use instead of the profile's "
                                "json of --split"))

PARAMS = parent(_PARAMS)
"""``--params FILE``."""

PROFILE = parent(_PROFILE)
"""``--profile NAME``."""

SETTINGS = parent(_PARAMS, _PROFILE)
"""``--params FILE --profile NAME``: where a command's settings come from."""

RESULTS = parent((("--results",), dict(
    type=Path, metavar="DIR",
    help="results directory holding metrics/, analysis/, figure_data/ and detections/ "
         "(default: results/<profile>)")))
"""``--results DIR``: the results a report command reads."""

DEVICE = parent((("--device",), dict(choices=("auto", "cpu", "cuda"), default="auto",
                                      help="auto: CUDA when available (default)")))
"""``--device auto|cpu|cuda``."""

CHECKPOINT = parent((("--checkpoint",), dict(
    type=Path, required=True, metavar="CKPT",
    help="a trained model: model_final.pt or a training checkpoint")))
"""``--checkpoint CKPT`` (required)."""


def split_and_data(default: str) -> argparse.ArgumentParser:
    """``--split SPLIT`` (default ``default``) and ``--data JSON``."""
    return parent((("--split",), dict(default=default,
                                       help=f"split of the dataset (default: {default})")),
                   _DATA)


def add_out(parser: argparse.ArgumentParser, what: str, *, default: str | None = None) -> None:
    """``--out FILE``: the file the command writes; required unless ``default`` says
    where it goes without it (the value stays None then)."""
    parser.add_argument("--out", type=Path, required=default is None, metavar="FILE",
                        help=what + (f" (default: {default})" if default else ""))


def add_out_dir(parser: argparse.ArgumentParser, what: str, *,
                default: str | None = None) -> None:
    """``--out-dir DIR``: the directory the command writes into; required unless
    ``default`` says where it goes without it (the value stays None then)."""
    parser.add_argument("--out-dir", type=Path, required=default is None, metavar="DIR",
                        help=what + (f" (default: {default})" if default else ""))
