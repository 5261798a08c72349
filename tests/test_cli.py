"""The command line as a whole: every option documented, the shared conventions, start-up
without heavy imports (the time itself is printed by benchmarks/cli_startup.py)."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

import lla
from lla import cli
from lla.console import progress

REPO = Path(__file__).resolve().parents[1]


def all_parsers(parser: argparse.ArgumentParser, prog: str = "lla"):
    """``(name, parser)`` of ``parser`` and every sub-command parser below it."""
    yield prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from all_parsers(sub, f"{prog} {name}")


def test_every_option_and_command_has_help():
    undocumented = []
    for prog, parser in all_parsers(cli.build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                undocumented += [f"{prog} {choice.dest}" for choice in action._choices_actions
                                 if not (choice.help or "").strip()]
            elif not (action.help or "").strip():
                undocumented.append(f"{prog} {'/'.join(action.option_strings) or action.dest}")
    assert not undocumented, f"options without help text: {undocumented}"


def test_the_walk_sees_every_command():
    progs = {prog for prog, _ in all_parsers(cli.build_parser())}
    assert {"lla data synth", "lla data convert", "lla eval crowdhuman", "lla analyze visible",
            "lla report paper", "lla train", "lla infer"} <= progs
    assert len(progs) > 20


def test_an_option_without_help_is_found():
    parser = cli.build_parser(groups=[])
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands.add_parser("bare", help="a command").add_argument("--undocumented")
    found = [f"{prog} {a.dest}" for prog, p in all_parsers(parser) for a in p._actions
             if a.option_strings and not a.help]
    assert found == ["lla bare undocumented"]


def test_analyze_help_lists_every_analysis(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["analyze", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    analyses = {prog.split()[-1] for prog, _ in all_parsers(cli.build_parser(["analyze"]))
                if prog.startswith("lla analyze ")}
    assert analyses == {"aar", "levels", "positives", "visible", "regime"}
    for name in analyses:
        assert f"\n    {name} " in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"lla {lla.__version__}"


@pytest.mark.parametrize("argv", [["-v", "eval", "crowdhuman"], ["eval", "-v", "crowdhuman"],
                                  ["eval", "crowdhuman", "-v"], ["eval", "crowdhuman", "--verbose"]])
def test_verbose_before_or_after_the_command(argv):
    args = cli.build_parser(["eval"]).parse_args([*argv, "--gt", "g.json", "--dt", "d.json"])
    assert args.verbose is True


def test_not_verbose_by_default():
    args = cli.build_parser(["eval"]).parse_args(["eval", "crowdhuman", "--gt", "g", "--dt", "d"])
    assert getattr(args, "verbose", False) is False


def test_output_conventions():
    """--out names a file, --out-dir a directory; --split chooses splits."""
    for prog, parser in all_parsers(cli.build_parser()):
        for action in parser._actions:
            if "--out" in action.option_strings:
                assert action.metavar == "FILE", prog
            if "--out-dir" in action.option_strings:
                assert action.metavar == "DIR", prog
            assert not {"--splits", "--md", "--csv", "--out-md", "--out-csv"} & set(
                action.option_strings), prog


def test_a_command_func_may_be_named_by_module():
    assert cli.command_function("lla.cli:main") is cli.main
    assert cli.command_function(cli.main) is cli.main


def _imported_modules(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code + "\nimport json, sys\n"
                          "print(json.dumps(sorted(m for m in sys.modules if m.startswith(("
                          "'torch', 'lla.', 'pandas', 'matplotlib')))))"],
                         cwd=REPO, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_lla_help_imports_no_command_module():
    modules = _imported_modules("import lla.cli\ntry:\n    lla.cli.main(['--help'])\n"
                                "except SystemExit:\n    pass")
    commands = {m for _, modules_ in cli.COMMAND_GROUPS.values() for m in modules_}
    commands |= {m for _, m in cli.TOP_LEVEL_COMMANDS.values()}
    assert not modules & commands and "torch" not in modules


def test_parsers_import_no_torch():
    """Every command's options, train's and infer's included, are known without torch."""
    modules = _imported_modules("import lla.cli\nlla.cli.build_parser()")
    assert "torch" not in modules and "matplotlib" not in modules


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream, enabled, shown", [(io.StringIO(), True, False),
                                                    (Terminal(), True, True),
                                                    (Terminal(), False, False)])
def test_progress_bars_only_on_a_terminal(monkeypatch, stream, enabled, shown):
    monkeypatch.setattr(sys, "stderr", stream)
    assert list(progress(range(3), desc="generating", enabled=enabled)) == [0, 1, 2]
    with progress(total=4, desc="inferring", enabled=enabled) as bar:
        bar.update(4)
    text = stream.getvalue()
    assert ("generating" in text and "inferring" in text) is shown
