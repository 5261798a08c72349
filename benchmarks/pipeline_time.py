"""Wall time of a whole pipeline target on this machine, from scratch, in a scratch copy.

    .venv/bin/python benchmarks/pipeline_time.py                          # micro all_tables
    .venv/bin/python benchmarks/pipeline_time.py --profile micro --target all
    .venv/bin/python benchmarks/pipeline_time.py --profile mini --target all --keep out/mini_run

The workflow files (Snakefile, workflow/, params.yaml, local/) are copied into a fresh
directory, so data/, runs/, results/ and logs/ start empty and the repository's own are not
touched; `lla` is the installed package. Runs `snakemake TARGET --cores N --config
profile=P` and prints the wall time, the number of jobs, the load average before and after
(the machine may be shared) and, per rule, the number of jobs and the summed job time from
Snakemake's benchmark-free log (start/finish lines).

Targets: micro `all_tables` <= 5 min, mini `all` <= 90 min on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "params.yaml", "environment.yml")
WORKFLOW_DIRS = ("workflow", "local")
# Snakemake's log: "[Thu Nov 26 00:21:48 2026]" before "rule NAME:" / "Finished jobid: N"
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
RULE = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+)")


def per_rule_times(log: str) -> dict[str, tuple[int, float]]:
    """``{rule: (jobs, summed seconds)}`` from a Snakemake log's start/finish stamps."""
    started: dict[str, tuple[str, datetime]] = {}
    totals: dict[str, list[float]] = defaultdict(list)
    stamp = rule = None
    for line in log.splitlines():
        if m := STAMP.match(line):
            stamp = datetime.strptime(m[1], "%a %b %d %H:%M:%S %Y")
        elif m := RULE.match(line):
            rule = m[1]
        elif (m := JOBID.match(line)) and rule is not None and stamp is not None:
            started[m[1]] = (rule, stamp)
            rule = None
        elif (m := FINISHED.match(line)) and m[1] in started and stamp is not None:
            name, begin = started.pop(m[1])
            totals[name].append((stamp - begin).total_seconds())
    return {name: (len(times), sum(times)) for name, times in totals.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="micro")
    parser.add_argument("--target", default="all_tables")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="run in this directory and keep it "
                                                  "(default: a temporary one, deleted)")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="lla-pipeline-"))
    work.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, work / name)
    for name in WORKFLOW_DIRS:
        shutil.rmtree(work / name, ignore_errors=True)
        shutil.copytree(ROOT / name, work / name)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    snakemake = Path(sys.executable).parent / "snakemake"
    command = [str(snakemake), args.target, "--cores", str(args.cores),
               "--config", f"profile={args.profile}"]
    load_before = os.getloadavg()
    start = time.monotonic()
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    log = result.stdout + result.stderr
    if result.returncode != 0:
        print(log[-4000:], file=sys.stderr)
        print(f"snakemake failed (exit {result.returncode}); files in {work}", file=sys.stderr)
        return 1
    rules = per_rule_times(log)
    jobs = sum(count for count, _ in rules.values())
    print(f"{args.profile} {args.target}: {wall:.0f} s wall ({wall / 60:.1f} min), {jobs} jobs, "
          f"{args.cores} cores; load average before {load_before[0]:.2f}, "
          f"after {os.getloadavg()[0]:.2f}")
    for name, (count, seconds) in sorted(rules.items(), key=lambda item: -item[1][1]):
        print(f"  {name:<20} {count:>4} jobs  {seconds:>8.0f} s summed  {seconds / count:>7.1f} s/job")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
