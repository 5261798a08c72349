"""Timing whole `lla eval ...` commands as a user runs them: fresh processes, split by phase.

Used by benchmarks/eval_crowdhuman.py and benchmarks/eval_citypersons.py. Each run is a new
process (the `lla` script next to this Python, else ``python -m lla.cli``) with the
repository first on PYTHONPATH. Its wall time, CPU time (user + system: what the command
costs when the machine is shared) and peak memory (max RSS), from ``wait4``, are measured
here; its phases come from the ``phase NAME: SECONDS s`` lines that the
evaluators log with ``lla -v`` (:mod:`lla.eval.phases`). Start-up (interpreter, imports,
argument parsing) is the median wall time of the same command with ``--help``. The
inputs must be generated in another process (see :func:`generate_in_child`): a parent
holding them would make every child's max RSS start at the parent's size.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASE_LINE = re.compile(r"phase (.+?): ([0-9.]+) s")


def lla_command() -> list[str]:
    """The `lla` console script next to this Python, else ``python -m lla.cli``."""
    script = Path(sys.executable).parent / "lla"
    return [str(script)] if script.exists() else [sys.executable, "-m", "lla.cli"]


def _environment() -> dict[str, str]:
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + paths))


def run_measured(args: list[str]) -> tuple[float, float, float, str, str]:
    """(wall seconds, CPU seconds (user + system), peak memory (max RSS) in MB, stdout,
    stderr) of one run of ``args``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(args, stdout=out, stderr=err, env=_environment())
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{stderr[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stdout, stderr


def generate_in_child(script: Path, out_dir: Path, *options: str) -> None:
    """Run ``script --generate-into out_dir *options`` (it writes the inputs and prints
    what it made)."""
    subprocess.run([sys.executable, str(script), "--generate-into", str(out_dir), *options],
                   check=True, env=_environment())


def phases_of(stderr: str) -> dict[str, float]:
    """The ``phase NAME: SECONDS s`` lines of a ``-v`` run, summed by name."""
    phases: dict[str, float] = {}
    for name, seconds in PHASE_LINE.findall(stderr):
        phases[name] = phases.get(name, 0.0) + float(seconds)
    return phases


def load_text() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def startup_time(command: list[str], repeat: int) -> float:
    """Median wall time of ``command --help`` (imports and argument parsing only)."""
    walls = [run_measured(command + ["--help"])[0] for _ in range(repeat)]
    median = statistics.median(walls)
    print(f"start-up (`{' '.join(command[-2:])} --help`): {median:.2f} s median "
          f"(min {min(walls):.2f}, max {max(walls):.2f})")
    return median


def benchmark(name: str, command: list[str], phases: tuple[str, ...], startup: float,
              repeat: int, metrics_file: Path) -> dict:
    """Run ``command`` (an `lla -v eval ...` call) ``repeat`` times with ``--out
    metrics_file``; print the median wall time, its split into ``phases``, the peak
    memory and the load average; return the metrics of the last run."""
    walls, cpus, rss, phase_runs = [], [], [], []
    load_before = load_text()
    for _ in range(repeat):
        wall, cpu, peak, _, stderr = run_measured(command + ["--out", str(metrics_file)])
        walls.append(wall)
        cpus.append(cpu)
        rss.append(peak)
        phase_runs.append(phases_of(stderr))
    load_after = load_text()
    names = [p for p in phases if any(p in run for run in phase_runs)]
    median = {p: statistics.median(run.get(p, 0.0) for run in phase_runs) for p in names}
    rest = statistics.median(w - startup - sum(run.values()) for w, run in zip(walls, phase_runs))
    print(f"\n{name}: {statistics.median(walls):.2f} s median wall "
          f"(min {min(walls):.2f}, max {max(walls):.2f}; {repeat} runs), "
          f"{statistics.median(cpus):.2f} s median CPU (user + system), peak memory "
          f"{statistics.median(rss):.0f} MB (max {max(rss):.0f} MB); load average "
          f"{load_before} before, {load_after} after")
    parts = [f"start-up {startup:.2f}"] + [f"{p} {median[p]:.2f}" for p in names]
    print("  phases (median s): " + ", ".join(parts) + f", rest {rest:.2f}")
    metrics = json.loads(metrics_file.read_text())
    print("  -> " + ", ".join(f"{k} {v:.10f}" for k, v in metrics.items()))
    return metrics
