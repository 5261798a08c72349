"""dvc.yaml around the Snakemake DAG, in a temporary git repository on the micro profile.

`dvc repro` runs the `all` stage (scripts/dvc_snakemake.sh -> Snakemake's `all`: tables,
figures and the report, with the `local` profile); a branch that changes one parameter reruns only what depends on it, and
`dvc metrics diff main` / `dvc params diff main` show the change.

The changed parameter: `analysis.micro.aar.max_images` 4 -> 8, the number of training
images Table 5's ambiguous-assignment-ratio analysis looks at (micro's CrowdHuman training
split has 16). Snakemake reruns the five `lla analyze aar` jobs (four experiments, one of
them with two seeds in micro; the option is in their command line) and re-renders the
tables and the report, but trains nothing; each AAR json then reports
8 images instead of 4 (and other counts of positives), which `dvc metrics diff` shows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_repro_then_metrics_and_params_diff_against_main(tmp_path):
    repo = tmp_path / "repo"
    _make_repository(repo)

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

    # git versions the metrics and tables (cache: false); checkpoints and Snakemake's
    # intermediates stay out of git (DVC's cache / ignored).
    _run("git", "add", "--all", cwd=repo)
    tracked = set(_run("git", "ls-files", cwd=repo).splitlines())
    assert "results/micro/metrics/retinanet_r50.json" in tracked
    assert "results/micro/analysis/aar_retinanet_r50.json" in tracked
    assert "results/micro/tables/table1.md" in tracked and "dvc.lock" in tracked
    assert "reports/micro/paper.md" in tracked
    assert "reports/micro/paper.html" not in tracked and "results/micro/figures/fig1.png" not in tracked
    assert not [path for path in tracked if not path.endswith(".gitignore")   # DVC's runs/.gitignore
                and path.startswith(("runs/", "data/", "logs/", "results/micro/detections/"))]
    _run("git", "commit", "--quiet", "--message", "micro results", cwd=repo)

    # The default remote is a directory next to the repository: push the checkpoints there.
    _run(DVC, "push", cwd=repo, timeout=300)
    assert any((tmp_path / "lla-dvc-remote").rglob("*"))

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
