"""Start-up time of the command line: `lla --help` and each group's help, in fresh processes.

    python benchmarks/cli_startup.py [--runs 9]

For each command: the median (and min, max) wall time of ``--runs`` fresh processes of the
`lla` console script (as a user runs it; the repository first on PYTHONPATH, see
benchmarks/command_timing.py), after one untimed run that warms the file cache; and
whether the command imported torch (one more process, which calls ``lla.cli.main`` and
reports ``sys.modules``). The target of `lla --help` is 0.3 s. Numbers depend on the
machine and its load: compare runs made on the same machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from command_timing import ROOT, _environment, lla_command, run_measured  # noqa: E402

COMMANDS = (["--help"], ["eval", "--help"], ["data", "--help"], ["analyze", "--help"],
            ["report", "--help"], ["train", "--help"], ["detect", "--help"])
TARGET_S = 0.3   # `lla --help`
IMPORTS = ("import sys\nfrom lla.cli import main\ntry:\n    main(sys.argv[1:])\n"
           "except SystemExit:\n    pass\n"
           "print('imported torch:', 'torch' in sys.modules, file=sys.stderr)")


def imports_torch(args: list[str]) -> bool:
    done = subprocess.run([sys.executable, "-c", IMPORTS, *args], cwd=ROOT, env=_environment(),
                          capture_output=True, text=True, check=True)
    return done.stderr.strip().splitlines()[-1] == "imported torch: True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="timed processes per command")
    args = parser.parse_args()
    lla = lla_command()
    print(f"{args.runs} fresh processes each ({' '.join(lla)}); median [min, max] wall time")
    print(f"{'command':<22} {'median s':>9} {'min s':>7} {'max s':>7}  imports torch")
    for command in COMMANDS:
        run_measured(lla + command)  # warm the file cache
        times = [run_measured(lla + command)[0] for _ in range(args.runs)]
        name = "lla " + " ".join(command)
        print(f"{name:<22} {statistics.median(times):9.3f} {min(times):7.3f} {max(times):7.3f}"
              f"  {'yes' if imports_torch(command) else 'no'}")
        if command == ["--help"]:
            verdict = "within" if statistics.median(times) <= TARGET_S else "ABOVE"
            print(f"{'':<22} ({verdict} the {TARGET_S} s target)")


if __name__ == "__main__":
    main()
