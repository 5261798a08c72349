"""`snakemake --profile slurm` on the micro profile, on a real one-node Slurm cluster.

.ci/slurm/start.sh installs Debian's Slurm and munge (root only) and starts the daemons on
this machine; the fixture's finalizer stops them with .ci/slurm/stop.sh. CI runs as root,
so there this test runs; it skips only where it cannot install or start daemons.

The workflow runs in a temporary copy of the repository's workflow files, with the literal
`slurm` profile of the repository and the target `all_tables`, started as a user who did not
activate the environment would: `.venv/bin/snakemake` by its path, the venv's bin not on PATH
(the jobs must still find the venv's `lla`): every rule of the table DAG
(synthesis, conversion of both datasets, train with its inference, evaluate, the AAR
analysis, table rendering) on micro's 42 experiments (45 runs: Table 2 has two seeds in
micro). Test-only options:

* `--groups ... --group-components runs=2 evaluations=2`: the trainings (and AAR
  analyses) of two runs go into one Slurm job, and two evaluations into another (a group's
  jobs must ask for the same GPU type, so CPU-only evaluations are not grouped with GPU
  jobs; and a group job asks for the summed CPUs and memory of its parallel jobs, so
  larger groups would not fit the 2-CPU test node). The work is the same; what shrinks is
  the per-job overhead (sbatch, a Snakemake process per job, the plugin's polling).
* `--slurm-init-seconds-before-status-checks 5`: poll squeue every 5 s instead of 40 s.

Evidence that Slurm ran the jobs: Snakemake's "submitted with SLURM jobid N" lines, a Slurm
log file per job, and squeue (which lists finished jobs for MinJobAge=3600 s; there is no
accounting database for sacct) reporting every one of those job ids COMPLETED.

A second, short run makes one Slurm job fail (a malformed annotation file to convert): its
log, with the `lla` error, must reach the console.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
START = ROOT / ".ci" / "slurm" / "start.sh"
STOP = ROOT / ".ci" / "slurm" / "stop.sh"
BIN = Path(sys.executable).parent
# What a Snakemake run reads from the repository (the package too: the table rule's input
# lla/report/paper_values.yaml, and the working directory shadows the installed package).
WORKFLOW_FILES = ("Snakefile", "workflow", "params.yaml", "slurm", "lla")
TARGET = "all_tables"
TABLES = [f"table{n}" for n in range(1, 8)]
SNAKEMAKE_TIMEOUT_S = 1500
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def _skip_reason() -> str | None:
    """Why this machine cannot host the test cluster, or None when it can."""
    if os.geteuid() != 0:
        return "needs root: .ci/slurm/start.sh installs Slurm with apt-get and starts daemons"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return "Slurm is not installed and apt-get is unavailable to install it"
    return None


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # `lla`, `snakemake` in jobs
    # CI may not set USER; the plugin and Slurm's client tools read it.
    env["USER"] = env.get("USER") or pwd.getpwuid(os.getuid()).pw_name
    return env


def _unactivated_environment() -> dict[str, str]:
    """A shell where the venv is not activated: neither its bin on PATH nor VIRTUAL_ENV."""
    env = {k: v for k, v in _environment().items() if k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if p and Path(p).resolve() != BIN.resolve())
    return env


@pytest.fixture(scope="module")
def slurm_cluster():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    started = subprocess.run([str(START)], capture_output=True, text=True, timeout=900,
                             env=_environment())
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield
    finally:
        subprocess.run([str(STOP)], capture_output=True, text=True, timeout=120)


def _copy_workflow(workdir: Path) -> None:
    for name in WORKFLOW_FILES:
        source, target = ROOT / name, workdir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)


def _run_until_done(command: list[str], workdir: Path, log_path: Path, timeout: float,
                    env: dict[str, str] | None = None) -> int:
    """Run ``command``; on timeout stop it with SIGINT, which makes Snakemake scancel its jobs."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=workdir, env=env or _environment(), stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            pytest.fail(f"snakemake did not finish within {timeout:.0f} s; log:\n"
                        + log_path.read_text()[-4000:])


def _squeue_states(job_ids: list[str]) -> dict[str, str]:
    """Slurm's own record: state of each job id (finished jobs stay for MinJobAge)."""
    result = subprocess.run(["squeue", "--noheader", "--states=all", "--jobs", ",".join(job_ids),
                             "--format=%i %T"], capture_output=True, text=True, check=True,
                            env=_environment())
    return dict(line.split() for line in result.stdout.splitlines() if line.strip())


@pytest.mark.slow
def test_micro_tables_run_as_slurm_jobs(slurm_cluster, tmp_path):
    workdir = tmp_path / "repo"
    _copy_workflow(workdir)
    log_path = tmp_path / "snakemake.log"
    command = [str(BIN / "snakemake"), TARGET, "--profile", "slurm",
               "--config", "profile=micro",   # data_root stays `data`, inside the copy
               "--slurm-init-seconds-before-status-checks", "5",
               "--groups", "train=runs", "analyze_aar=runs", "evaluate=evaluations",
               "--group-components", "runs=2", "evaluations=2"]
    started = time.monotonic()
    returncode = _run_until_done(command, workdir, log_path, SNAKEMAKE_TIMEOUT_S,
                                 env=_unactivated_environment())
    elapsed = time.monotonic() - started
    log = log_path.read_text()
    assert returncode == 0, log[-4000:]
    print(f"micro {TARGET} through Slurm: {elapsed:.0f} s")
    # The profile's empty site settings are named once, by the Snakemake the user started.
    assert log.count("Slurm site settings left empty") == 1

    for table in TABLES:
        for extension in ("md", "csv"):
            assert (workdir / "results" / "micro" / "tables" / f"{table}.{extension}").stat().st_size > 0

    submitted = SUBMITTED.findall(log)
    job_ids = [job_id for job_id, _ in submitted]
    assert len(set(job_ids)) == len(job_ids)
    # Every table was rendered by its own Slurm job, whose Slurm log names the table ...
    table_logs = [Path(path) for _, path in submitted if "/rule_table/" in path]
    assert len(table_logs) == len(TABLES)
    rendered = {match for path in table_logs
                for match in re.findall(r"lla report table (table\d)", path.read_text())}
    assert rendered == set(TABLES)
    # ... and so was every checkpoint (train jobs are grouped with other runs' and AAR).
    trained = {match for _, path in submitted if "/group_runs_" in path
               for match in re.findall(r"lla train --experiment (\S+)", Path(path).read_text())}
    checkpoints = {path.parent.name for path in (workdir / "runs" / "micro").glob("*/model_final.pt")}
    assert checkpoints and trained == checkpoints
    # Slurm itself lists every submitted job as completed (no sacct needed).
    states = _squeue_states(job_ids)
    assert states == {job_id: "COMPLETED" for job_id in job_ids}


@pytest.mark.slow
def test_a_failed_slurm_job_shows_its_log_on_the_console(slurm_cluster, tmp_path):
    workdir = tmp_path / "repo"
    _copy_workflow(workdir)
    # Annotations that `lla data convert` rejects, in place of micro's synthcrowd
    root = workdir / "data" / "synthcrowd" / "micro" / "crowdhuman"
    root.mkdir(parents=True)
    for split in ("train", "val"):
        (root / f"annotation_{split}.odgt").write_text("not a json line\n")
    target = "data/synthcrowd/micro/crowdhuman/converted/train.json"
    log_path = tmp_path / "snakemake.log"
    command = [str(BIN / "snakemake"), target, "--profile", "slurm", "--config", "profile=micro",
               "--retries", "0", "--slurm-init-seconds-before-status-checks", "5"]
    returncode = _run_until_done(command, workdir, log_path, 600, env=_unactivated_environment())
    log = log_path.read_text()
    assert returncode != 0
    assert len(SUBMITTED.findall(log)) == 1, log[-4000:]
    assert "Error in rule convert_data:" in log
    # the job's own log, whose last line is the command's error, is on the console
    shown = log.split("Logfile data/synthcrowd/micro/crowdhuman/converted/convert.log:", 1)
    assert len(shown) == 2, log[-4000:]
    assert ("error: data/synthcrowd/micro/crowdhuman/annotation_train.odgt:1: malformed JSON"
            in shown[1])
    assert "command not found" not in log
