"""The Snakemake DAG on the micro profile: data generation and conversion end to end."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")


def _snakemake(*args, cwd=ROOT, timeout=300):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run([SNAKEMAKE, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_data_target_builds_every_converted_json_of_the_micro_profile(tmp_path):
    data_root = tmp_path / "data"
    result = _snakemake("data", "--cores", "2", "--config", "profile=micro",
                        f"data_root={data_root}")
    assert result.returncode == 0, result.stderr[-3000:]
    for role in ("crowdhuman", "citypersons"):
        for split in ("train", "val"):
            dataset = json.loads((data_root / "synthcrowd" / "micro" / role / "converted"
                                  / f"{split}.json").read_text())
            assert dataset["info"]["dataset"] == role and dataset["info"]["split"] == split
            assert dataset["images"] and dataset["annotations"]
    # A second run finds nothing to do.
    again = _snakemake("data", "--cores", "2", "--config", "profile=micro",
                       f"data_root={data_root}", "--dry-run")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr


def test_paper_profile_dry_run_downloads_the_official_datasets(tmp_path):
    result = _snakemake("data", "--dry-run", "--config", "profile=paper",
                        f"data_root={tmp_path / 'data'}")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "download_crowdhuman" in out and "download_citypersons" in out
    assert "synth_data" not in out
