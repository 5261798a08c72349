"""The cluster path outside Slurm itself: jobs find `lla` without an activated environment,
a step that needs a person fails once with its message on the console, the ImageNet weights
are a local step before training, and empty Slurm site settings are named once.

(tests/test_slurm.py runs the micro tables through a real Slurm.)"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lla import cluster

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"
PIPELINE = ("Snakefile", "params.yaml", "workflow", "local", "slurm")
WARNING = re.compile(r"^warning: (.*): Slurm site settings left empty: (.*) \(sbatch", re.M)


def _pipeline_copy(tmp_path: Path) -> Path:
    work = tmp_path / "repo"
    for name in PIPELINE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, work / name)
        else:
            work.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, work / name)
    return work


def _unactivated_environment(**extra: str) -> dict[str, str]:
    """The environment of a shell where the venv is not activated: its bin is not on PATH."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and Path(p).resolve() != BIN.resolve())
    env.update(extra)
    return env


def _snakemake(work: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 300):
    """`.venv/bin/snakemake ARGS` by its path, as a user who did not activate the venv."""
    return subprocess.run([str(SNAKEMAKE), *args], cwd=work, env=env or _unactivated_environment(),
                          capture_output=True, text=True, timeout=timeout)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------- unit

def test_the_python_running_snakemake_comes_first_on_the_jobs_path():
    environ = {"PATH": "/usr/bin:/bin"}
    cluster.put_python_bin_first_on_path(environ, "/opt/venv/bin/python")
    assert environ["PATH"] == "/opt/venv/bin:/usr/bin:/bin"
    cluster.put_python_bin_first_on_path(environ, "/opt/venv/bin/python")   # not twice
    assert environ["PATH"] == "/opt/venv/bin:/usr/bin:/bin"
    empty = {}
    cluster.put_python_bin_first_on_path(empty, "/opt/venv/bin/python3.11")
    assert empty == {"PATH": "/opt/venv/bin"}


def test_empty_site_settings_are_named_by_their_key_paths():
    defaults = {"mem_mb": 4000, "slurm_partition": "", "slurm_account": "proj", "runtime": 60}
    overrides = {"train": {"slurm_partition": "gpu", "gpu_model": ""},
                 "analyze_aar": {"slurm_partition": "''", "gpu_model": "a100"}}
    assert cluster.empty_site_settings(defaults, overrides) == [
        "default-resources.slurm_partition", "set-resources.train.gpu_model",
        "set-resources.analyze_aar.slurm_partition"]
    assert cluster.empty_site_settings({"slurm_partition": "cpu", "slurm_account": "p"},
                                       {"train": {"gpu_model": "a100"}}) == []
    assert cluster.empty_site_settings({"mem_mb": 1}, {}) == []   # no site keys: not Slurm
    text = cluster.site_settings_warning(["default-resources.slurm_account"], ["slurm/config.yaml"])
    assert text.startswith("warning: slurm/config.yaml: Slurm site settings left empty: "
                           "default-resources.slurm_account (")
    assert cluster.grouped_key_paths([
        "default-resources.slurm_partition", "set-resources.train.slurm_partition",
        "set-resources.train.gpu_model", "set-resources.aar.slurm_partition",
        "default-resources.slurm_account", "set-resources.aar.gpu_model",
        "set-resources.levels.gpu_model"]) == [
        "default-resources.slurm_partition", "set-resources.{train,aar}.slurm_partition",
        "set-resources.{train,aar,levels}.gpu_model", "default-resources.slurm_account"]
    assert cluster.grouped_key_paths(["set-resources.train.gpu_model"]) == [
        "set-resources.train.gpu_model"]


def test_every_rule_with_job_resources_gets_the_gpu_site_settings():
    # the rules whose resources come from params.yaml `resources` (GPU jobs in paper) must
    # all be named under the slurm profile's set-resources, or they miss the GPU partition
    rules = set()
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            if "job_resources(" in block:
                rules.add(block.split(":", 1)[0])
    profile = yaml.safe_load((ROOT / "slurm" / "config.yaml").read_text())
    assert rules >= {"train", "analyze_aar"}
    assert set(profile["set-resources"]) == rules
    for rule in rules:
        assert set(profile["set-resources"][rule]) == {"slurm_partition", "gpu_model"}


def test_profile_files_are_found_as_snakemake_finds_them(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert cluster.profile_files(["all_tables", "--profile", "slurm", "-n"]) == ["slurm/config.yaml"]
    assert cluster.profile_files(["--profile=local"]) == ["local/config.yaml"]
    assert cluster.profile_files([], {"SNAKEMAKE_PROFILE": "slurm"}) == ["slurm/config.yaml"]
    assert cluster.profile_files(["--profile", "nowhere"]) == ["nowhere"]


# ----------------------------------------------------------------- dry runs

def test_empty_site_settings_warn_once_in_the_dry_run(tmp_path):
    work = _pipeline_copy(tmp_path)
    result = _snakemake(work, "-n", "all_tables", "--profile", "slurm")
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = WARNING.findall(result.stderr)
    gpu_jobs = "{train,analyze_aar,analyze_visible,analyze_positives,analyze_levels,pretrain}"
    assert warnings == [("slurm/config.yaml",
                         "default-resources.slurm_partition, default-resources.slurm_account, "
                         f"set-resources.{gpu_jobs}.slurm_partition, "
                         f"set-resources.{gpu_jobs}.gpu_model")]
    # set for a site: silent
    profile = work / "slurm" / "config.yaml"
    text = profile.read_text()
    for key, value in (("slurm_partition", "cpu"), ("slurm_account", "lla"),
                       ("gpu_model", "a100")):
        text = re.sub(rf'^(\s*{key}: )""', rf'\g<1>"{value}"', text, count=1, flags=re.M)
    text = text.replace('slurm_partition: ""', 'slurm_partition: "gpu"')
    profile.write_text(text)
    assert '""' not in text
    result = _snakemake(work, "-n", "all_tables", "--profile", "slurm")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "site settings" not in result.stderr
    # the local profile names no Slurm settings
    result = _snakemake(work, "-n", "all_tables", "--profile", "local", "--config", "profile=micro")
    assert result.returncode == 0 and "site settings" not in result.stderr


def test_imagenet_weights_are_a_local_step_before_training_in_the_paper_profiles(tmp_path):
    work = _pipeline_copy(tmp_path)
    for profile in ("paper", "official_code"):
        result = _snakemake(work, "-n", "all_tables", "--config", f"profile={profile}")
        assert result.returncode == 0, result.stderr[-3000:]
        out = result.stdout
        for backbone, file in (("resnet50", "resnet50-0676ba61.pth"),
                               ("resnet101", "resnet101-63fe2227.pth")):
            job = out.split(f"rule imagenet_weights_{backbone}:\n", 1)[1].split("\n[", 1)[0]
            assert f"    output: data/pretrained/{file}\n" in job
        trains = re.findall(r"rule train:\n    input: (.*)\n    output: runs/\w+/(\w+)/", out)
        assert len(trains) == 42
        for inputs, run in trains:
            backbone = "resnet101-63fe2227" if run.endswith("_r101") else "resnet50-0676ba61"
            assert inputs.endswith(f", data/pretrained/{backbone}.pth"), (run, inputs)
    # mini and micro train from scratch: no weights, no such job
    result = _snakemake(work, "-n", "all_tables", "--config", "profile=micro")
    assert result.returncode == 0
    assert "rule imagenet_weights" not in result.stdout and "data/pretrained" not in result.stdout


# ----------------------------------------------------------------- steps that need a person

def _ran_once(result, rule: str) -> None:
    console = result.stdout + result.stderr
    assert result.returncode != 0
    assert "command not found" not in console       # the venv's lla, though not activated
    assert console.count(f"Error in rule {rule}:") == 1, console[-3000:]
    assert "Trying to restart" not in console


def test_a_download_that_needs_a_person_fails_once_with_its_message(tmp_path):
    work = _pipeline_copy(tmp_path)
    params = yaml.safe_load((work / "params.yaml").read_text())
    # CityPersons without the annotations' URLs (no network in tests): the Cityscapes zip,
    # which needs a login, and the annotations are left for a person to place.
    for entry in params["citypersons"]["download"]["files"]:
        entry["urls"] = []
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # the slurm profile retries failed jobs twice: `--retries 2` here
    result = _snakemake(work, "download_citypersons", "--profile", "local", "--retries", "2")
    _ran_once(result, "download_citypersons")
    console = result.stdout + result.stderr
    root = (work / "data" / "citypersons").resolve()
    assert ("3 file(s) of citypersons could not be downloaded. Put each one into the directory "
            "shown, then rerun `lla data download citypersons --root data/citypersons`") in console
    assert f"  into {root}/\n    leftImg8bit_trainvaltest.zip  (md5 0a6e97e94b616a514066c9e2adb0c97f)" \
           "\n      how to get it: needs a (free) Cityscapes account" in console
    assert f"  into {root}/annotations/\n    anno_train.mat\n" in console


def test_imagenet_weights_offline_fail_once_with_the_file_and_where_to_put_it(tmp_path):
    work = _pipeline_copy(tmp_path)
    proxy = f"http://127.0.0.1:{_closed_port()}"   # offline: every https request is refused
    env = _unactivated_environment(https_proxy=proxy, HTTPS_PROXY=proxy, no_proxy="", NO_PROXY="")
    result = _snakemake(work, "data/pretrained/resnet101-63fe2227.pth", "--profile", "local",
                        "--retries", "2", "--config", "profile=paper", env=env)
    _ran_once(result, "imagenet_weights_resnet101")
    console = result.stdout + result.stderr
    where = (work / "data" / "pretrained").resolve()
    assert ("1 file(s) of the ImageNet backbone weights could not be downloaded. Put each one "
            "into the directory shown, then rerun `lla data weights resnet101 --out-dir "
            "data/pretrained`") in console
    assert f"  into {where}/\n    resnet101-63fe2227.pth  (sha256_prefix 63fe2227)\n" \
           "      how to get it: torchvision's ResNet-101 ImageNet weights (IMAGENET1K_V1); on a " \
           "machine online: wget https://download.pytorch.org/models/resnet101-63fe2227.pth" in console
