"""dvc.yaml around the Snakemake DAG, in a temporary git repository on the micro profile.

`dvc dag` shows the two stages, data -> all. One `dvc repro` runs both
(scripts/dvc_snakemake.sh -> Snakemake's `data`, then `all`: tables, figures and the report,
with the `local` profile). Then:

* git holds the data manifest, the metrics and the tables; the data, checkpoints and
  figures go to the default remote (`dvc push`). A fresh `git clone` + `dvc pull` (another
  machine) has the same data, checkpoints and metrics, `dvc status` is clean, and after
  `--touch --forceall` Snakemake takes the pulled files as its own results (nothing to do).
  Regenerating the data there from nothing gives the same dvc.lock and manifest; a changed
  synthcrowd setting marks the data stage and `all` as changed, and Snakemake would
  regenerate the data.
* A branch that changes one parameter reruns only what depends on it, and
  `dvc metrics diff main` / `dvc params diff main` show the change.

The changed parameter: `analysis.micro.aar.max_images` 4 -> 8, the number of training
images Table 5's ambiguous-assignment-ratio analysis looks at (micro's CrowdHuman training
split has 16). Snakemake reruns the five `lla analyze aar` jobs (four experiments, one of
them with two seeds in micro; the option is in their command line) and re-renders the
tables and the report, but trains nothing; each AAR json then reports
8 images instead of 4 (and other counts of positives), which `dvc metrics diff` shows.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DVC = BIN / "dvc"
# The files a clone of the repository has that the pipeline reads.
REPO_FILES = ("Snakefile", "workflow", "params.yaml", "lla", "local", "scripts", "dvc.yaml",
              ".dvcignore", ".gitignore")
# Table 5's runs in micro: LLA.RetinaNet is also in Table 2, which has 2 seeds there.
AAR_EXPERIMENTS = ("retinanet_r50", "fcos_ctr_r50", "lla_retinanet_star_a1_r50",
                   "lla_retinanet_star_a1_r50__seed1", "lla_fcos_r50")
CHANGED_LINE = "    aar: {max_images: 4}"     # analysis.micro (analysis.mini has 200)
# synthcrowd.micro's CrowdHuman layout: the data stage's change
SYNTH_LINE = "    crowdhuman: {train_images: 16, val_images: 8, width: 256, height: 256}"
MANIFEST = "results/micro/data_manifest.json"
# In the data directory but not versioned (.dvcignore): the conversion's log and image-size cache.
VOLATILE = ("convert.log", ".lla_image_sizes.json")
TIMEOUT_S = 1800


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env.pop("LLA_SNAKEMAKE_PROFILE", None)   # the wrapper's default: the local profile
    env.pop("LLA_SNAKEMAKE_ARGS", None)
    for key in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        env[key] = "lla test"
    for key in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        env[key] = "lla-test@example.org"
    return env


def _run(*command, cwd: Path, timeout: float = 120) -> str:
    """Run a command in ``cwd``; its stdout."""
    result = subprocess.run([str(part) for part in command], cwd=cwd, env=_environment(),
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (f"{' '.join(map(str, command))} failed:\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def _run_both(*command, cwd: Path, timeout: float) -> str:
    """Like ``_run``, returning stdout and stderr (Snakemake logs to stderr)."""
    result = subprocess.run([str(part) for part in command], cwd=cwd, env=_environment(),
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def _make_repository(repo: Path) -> None:
    """A git + DVC repository holding the pipeline, set to the micro profile."""
    for name in REPO_FILES:
        source, target = ROOT / name, repo / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    params = repo / "params.yaml"
    text, count = re.subn(r"^profile: \w+$", "profile: micro", params.read_text(), flags=re.M)
    assert count == 1
    params.write_text(text)
    _run("git", "init", "--quiet", "--initial-branch", "main", cwd=repo)
    _run(DVC, "init", "--quiet", cwd=repo)
    shutil.copy2(ROOT / ".dvc" / "config", repo / ".dvc" / "config")   # analytics off, remote


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(top: Path) -> dict[str, str]:
    """{path relative to ``top``: sha256} of every file under ``top`` DVC versions."""
    return {path.relative_to(top).as_posix(): _sha256(path) for path in sorted(top.rglob("*"))
            if path.is_file() and path.name not in VOLATILE}


def _stage_paths(lock: dict, stage: str, kind: str) -> dict[str, dict]:
    return {entry["path"]: entry for entry in lock["stages"][stage][kind]}


def _check_data_stage(repo: Path) -> None:
    """The manifest's hashes are those of the files; dvc.lock records the data directory
    (without the volatile files) and the manifest, and `all` depends on both."""
    manifest = json.loads((repo / MANIFEST).read_text())
    assert manifest["profile"] == "micro"
    assert set(manifest["datasets"]) == {"crowdhuman", "citypersons"}
    for dataset in manifest["datasets"].values():
        assert dataset["source"] == "synthcrowd"
        assert len(dataset["converted"]) == 2 and len(dataset["raw"]) == 3
        for name, facts in {**dataset["raw"], **dataset["converted"]}.items():
            path = repo / dataset["root"] / name
            assert facts == {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    data_outs = _stage_paths(lock, "data", "outs")
    assert set(data_outs) == {"data", MANIFEST}
    assert data_outs["data"]["md5"].endswith(".dir")
    on_disk = [path for path in (repo / "data").rglob("*") if path.is_file()]
    assert {path.name for path in on_disk} >= set(VOLATILE)
    assert data_outs["data"]["nfiles"] == len(_files(repo / "data")) < len(on_disk)
    all_deps = _stage_paths(lock, "all", "deps")
    for path in ("data", MANIFEST):
        assert all_deps[path]["md5"] == data_outs[path]["md5"]


def _check_clone(tmp_path: Path, repo: Path) -> None:
    """Another machine: a fresh clone and `dvc pull` restore data, checkpoints and metrics."""
    clone = tmp_path / "clone"
    _run("git", "clone", "--quiet", repo, clone, cwd=tmp_path)
    assert not (clone / "data").exists() and not (clone / "runs").exists()
    _run(DVC, "pull", cwd=clone, timeout=300)
    for top in ("data", "runs", "results/micro/detections", "results/micro/figures"):
        assert _files(clone / top) == _files(repo / top), top
    assert not [path for path in (clone / "data").rglob("*") if path.name in VOLATILE]
    assert (clone / "results/micro/metrics/retinanet_r50.json").read_bytes() == (
        repo / "results/micro/metrics/retinanet_r50.json").read_bytes()
    assert "Data and pipelines are up to date" in _run(DVC, "status", cwd=clone)

    # Snakemake takes the pulled files as its own results (mtimes and its metadata).
    _run_both("scripts/dvc_snakemake.sh", "micro", "all", "--touch", "--forceall", cwd=clone,
              timeout=300)
    dry_run = _run_both("snakemake", "-n", "all", "--config", "profile=micro", cwd=clone,
                        timeout=300)
    assert "Nothing to be done" in dry_run

    # The same data again, from nothing: the same dvc.lock and manifest.
    shutil.rmtree(clone / "data")
    _run(DVC, "repro", "data", cwd=clone, timeout=600)
    assert _run("git", "status", "--porcelain", cwd=clone) == ""
    assert _files(clone / "data") == _files(repo / "data")

    # A synthcrowd setting changes the data stage (and `all`, which reads every parameter);
    # Snakemake would regenerate the data.
    params = clone / "params.yaml"
    text = params.read_text()
    assert text.count(SYNTH_LINE) == 1
    params.write_text(text.replace(SYNTH_LINE, SYNTH_LINE[:-1] + ", noise_sigma: 5.0}"))
    status = json.loads(_run(DVC, "status", "--json", cwd=clone))
    assert status == {stage: [{"changed deps": {"params.yaml": {"synthcrowd": "modified"}}}]
                      for stage in ("data", "all")}
    dry_run = _run_both("snakemake", "-n", "data", "--config", "profile=micro", cwd=clone,
                        timeout=300)
    assert all(re.search(rf"^{job}\s+{count}$", dry_run, re.M) for job, count in (
        ("synth_data", 1), ("convert_data", 2), ("data_manifest", 1)))


@pytest.mark.slow
def test_repro_push_pull_then_metrics_and_params_diff_against_main(tmp_path):
    repo = tmp_path / "repo"
    _make_repository(repo)
    assert '"data" -> "all"' in _run(DVC, "dag", "--dot", cwd=repo)

    _run(DVC, "repro", cwd=repo, timeout=TIMEOUT_S)
    for n in range(1, 8):
        assert (repo / "results" / "micro" / "tables" / f"table{n}.md").stat().st_size > 0
    for n in range(1, 6):
        assert (repo / "results" / "micro" / "figures" / f"fig{n}.png").stat().st_size > 0
    assert "Table 7" in (repo / "reports" / "micro" / "paper.md").read_text()
    metrics = json.loads(_run(DVC, "metrics", "show", "--json", cwd=repo))
    # DVC 3: {revision ("" = workspace): {"data": {file: {"data": {metric: value}}}}}
    metric_files = set(metrics[""]["data"])
    assert {f"results/micro/analysis/aar_{name}.json" for name in AAR_EXPERIMENTS} <= metric_files
    assert "results/micro/metrics/retinanet_r50.json" in metric_files
    assert "Data and pipelines are up to date" in _run(DVC, "status", cwd=repo)
    _check_data_stage(repo)

    # git versions the metrics, tables and the data manifest (cache: false); data,
    # checkpoints and Snakemake's intermediates stay out of git (DVC's cache / ignored).
    _run("git", "add", "--all", cwd=repo)
    tracked = set(_run("git", "ls-files", cwd=repo).splitlines())
    assert "results/micro/metrics/retinanet_r50.json" in tracked
    assert "results/micro/analysis/aar_retinanet_r50.json" in tracked
    assert "results/micro/tables/table1.md" in tracked and "dvc.lock" in tracked
    assert "reports/micro/paper.md" in tracked and MANIFEST in tracked
    assert "reports/micro/paper.html" not in tracked and "results/micro/figures/fig1.png" not in tracked
    assert not [path for path in tracked if not path.endswith(".gitignore")   # DVC's runs/.gitignore
                and path.startswith(("runs/", "data/", "logs/", "results/micro/detections/"))]
    _run("git", "commit", "--quiet", "--message", "micro results", cwd=repo)

    # The default remote is a directory next to the repository: push the data, checkpoints
    # and figures there, and pull them into a fresh clone.
    _run(DVC, "push", cwd=repo, timeout=300)
    assert any((tmp_path / "lla-dvc-remote").rglob("*"))
    _check_clone(tmp_path, repo)

    # A branch changing one parameter.
    _run("git", "checkout", "--quiet", "-b", "more-aar-images", cwd=repo)
    params = repo / "params.yaml"
    text = params.read_text()
    assert text.count(CHANGED_LINE) == 1
    params.write_text(text.replace(CHANGED_LINE, "    aar: {max_images: 8}"))
    reproduced = _run_both(DVC, "repro", cwd=repo, timeout=TIMEOUT_S)
    # Snakemake reran the analyses only (its log shows each shell command).
    assert "lla train" not in reproduced and "lla infer" not in reproduced
    assert len(re.findall(r"lla analyze aar", reproduced)) == len(AAR_EXPERIMENTS)

    params_diff = json.loads(_run(DVC, "params", "diff", "main", "--json", cwd=repo))
    changed_params = params_diff["params.yaml"]
    assert list(changed_params) == ["analysis.micro.aar.max_images"]
    assert (changed_params["analysis.micro.aar.max_images"]["old"],
            changed_params["analysis.micro.aar.max_images"]["new"]) == (4, 8)

    metrics_diff = json.loads(_run(DVC, "metrics", "diff", "main", "--json", cwd=repo))
    changed_files = {path for path, diff in metrics_diff.items() if diff}
    assert changed_files == {f"results/micro/analysis/aar_{name}.json" for name in AAR_EXPERIMENTS}
    for path in changed_files:
        assert metrics_diff[path]["images"]["old"] == 4 and metrics_diff[path]["images"]["new"] == 8
