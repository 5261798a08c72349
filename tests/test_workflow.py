"""The Snakemake DAG: its shape for every profile (dry runs), lint, config validation, and
the micro profile end to end: Table 2 (two seeds) with the local profile, and the whole
micro `all` (tables, figures, claims, curves, report)."""

import csv
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
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")


def _snakemake(*args, cwd=ROOT, timeout=300):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run([SNAKEMAKE, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_data_target_builds_every_converted_json_of_the_micro_profile(tmp_path):
    work = _pipeline_copy(tmp_path)       # the data manifest goes to its results/micro/
    data_root = tmp_path / "data"
    result = _snakemake("data", "--cores", "2", "--config", "profile=micro",
                        f"data_root={data_root}", cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((work / "results" / "micro" / "data_manifest.json").read_text())
    for role in ("crowdhuman", "citypersons"):
        root = data_root / "synthcrowd" / "micro" / role
        assert manifest["datasets"][role]["root"] == root.as_posix()   # Snakemake's data_root
        for split in ("train", "val"):
            dataset = json.loads((root / "converted" / f"{split}.json").read_text())
            assert dataset["info"]["dataset"] == role and dataset["info"]["split"] == split
            assert dataset["images"] and dataset["annotations"]
            assert manifest["datasets"][role]["converted"][f"converted/{split}.json"]["bytes"] == (
                root / "converted" / f"{split}.json").stat().st_size
    # A second run finds nothing to do.
    again = _snakemake("data", "--cores", "2", "--config", "profile=micro",
                       f"data_root={data_root}", "--dry-run", cwd=work)
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr


def test_paper_profile_dry_run_downloads_the_official_datasets(tmp_path):
    result = _snakemake("data", "--dry-run", "--config", "profile=paper",
                        f"data_root={tmp_path / 'data'}")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "download_crowdhuman" in out and "download_citypersons" in out
    assert "synth_data" not in out


# ---------------------------------------------------------------------------- the whole DAG

PIPELINE_FILES = ("Snakefile", "params.yaml", "environment.yml")
PIPELINE_DIRS = ("workflow", "local", "slurm")


def _pipeline_copy(tmp_path: Path) -> Path:
    """The workflow files in a fresh directory, so runs/, results/, logs/ and data/ land
    there (the `lla` package itself is the installed one)."""
    work = tmp_path / "repo"
    for name in PIPELINE_FILES:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, work / name)
    for name in PIPELINE_DIRS:
        shutil.copytree(ROOT / name, work / name)
    return work


def _jobs(dry_run_output: str) -> dict[str, int]:
    """{rule: count} from the 'Job stats' table of a dry run."""
    lines = dry_run_output.split("Job stats:", 1)[1].splitlines()[3:]
    counts = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_lint_is_clean():
    result = _snakemake("--lint")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Congratulations" in result.stdout + result.stderr


@pytest.mark.parametrize("profile, selection, runs, aar_runs", [
    # mini: Tables 1 and 2 get 3 seeds (params `seeds`): Table 1's 8 experiments and
    # Table 2's two others (its third is Table 1's LLA.RetinaNet) -> 10 x 2 extra runs;
    # 3 more experiments by name (Table 6's LLA.FCOS w/ IoU branch, FCOS w/o centerness,
    # ATSS w/ centerness) -> 3 x 2; 42 + 20 + 6 = 68. Table 5's four experiments are
    # Table 1's -> 4 x 3 AAR analyses.
    ("mini", ["--profile", "local"], 68, 12),   # the local Snakemake profile selects mini
    ("paper", ["--config", "profile=paper"], 42, 4),
    ("paper", ["--profile", "slurm"], 42, 4),   # the slurm Snakemake profile selects paper
])
def test_all_tables_dry_run_shows_every_run_once(profile, selection, runs, aar_runs, tmp_path):
    # 42 experiments (Table 1: 8; Table 2: +2 cost variants; Table 3: +3 IoU/GIoU
    # combinations; Table 4: +15 values of K; Table 6: +8 rows; Table 7: 6 on CityPersons;
    # Table 5 reuses Table 1's models), each run trained (with its inference on val) and
    # evaluated once; AAR analyses (Table 5), 7 tables.
    result = _snakemake("all_tables", "--dry-run", "--printshellcmds", *selection,
                        cwd=_pipeline_copy(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    jobs = _jobs(out)
    assert {rule: jobs.get(rule) for rule in ("train", "infer", "evaluate", "analyze_aar",
                                               "table", "all_tables")} == {
        "train": runs, "infer": None, "evaluate": runs, "analyze_aar": aar_runs, "table": 7,
        "all_tables": 1}
    # mini's tiny bodies (depth 50 and 101) start from `weights: pretrain`: one job each;
    # the paper's ResNets read ImageNet files instead
    assert jobs.get("pretrain") == (2 if profile == "mini" else None)
    assert "runs/{0}/lla_retinanet_star_a1_k16_r50/model_final.pt".format(profile) in out
    assert f"results/{profile}/analysis/aar_fcos_ctr_r50.json" in out
    assert f"--infer-out results/{profile}/detections/lla_fcos_r50.json" in out
    if profile == "paper":
        # 8 GPUs per training job, each trained (and inferred) under torchrun.
        assert "gpu=8, cpus_per_gpu=4" in out
        assert "torchrun --standalone --nproc_per_node=8 -m lla.cli train" in out
        assert "lla eval crowdhuman --gt" in out and "--coco" not in out
        assert "download_crowdhuman" in out
        assert "__seed" not in out
    else:
        assert "gpu=0" in out and "torchrun" not in out
        assert "OMP_NUM_THREADS=1 lla train --experiment" in out
        assert "runs/mini/lla_fcos_r50__seed2/model_final.pt" in out
        assert "runs/mini/lla_fcos_r50__seed3" not in out
        assert "results/mini/metrics/lla_retinanet_star_a1_cls_r50__seed1.json" in out
        assert "results/mini/analysis/aar_fcos_ctr_r50__seed2.json" in out


def test_unknown_profile_and_bad_config_are_reported(tmp_path):
    work = _pipeline_copy(tmp_path)
    result = _snakemake("all_tables", "--dry-run", "--config", "profile=laptop", cwd=work)
    assert result.returncode == 2
    assert result.stderr == ("error: --config [profile]: unknown profile 'laptop' "
                             "(known: paper, official_code, mini, micro, paper_smoke)\n")
    # A table row naming two ways of filling it fails the schema at start-up: one line
    # naming the file, the line and the row, not the whole config.
    params = (work / "params.yaml").read_text()
    bad = params.replace('{label: "w/o LLA", cells:', '{label: "w/o LLA", experiment: x, cells:')
    assert bad != params
    (work / "params.yaml").write_text(bad)
    result = _snakemake("all_tables", "--dry-run", "--config", "profile=micro", cwd=work)
    assert result.returncode == 2
    assert re.fullmatch(r"error: params\.yaml:\d+ \[tables\.table5\.rows\.without_lla\]: a row "
                        r"needs a label and exactly one of experiment, cells\n", result.stderr), \
        result.stderr


def _check_table(work: Path, table: str, rows: int, columns: int,
                 allow_missing: bool = False) -> list[dict]:
    """Checks every cell of a produced table; ``allow_missing``: a metric may be absent (a
    CityPersons setup without valid ground truth on a few micro images)."""
    md = (work / "results" / "micro" / "tables" / f"{table}.md").read_text()
    assert "Profile `micro`, dataset: synthcrowd" in md
    with open(work / "results" / "micro" / "tables" / f"{table}.csv") as f:
        cells = list(csv.DictReader(f))
    assert len(cells) == rows * columns
    for cell in cells:
        if allow_missing and cell["reproduced_status"] == "missing":
            continue
        assert cell["reproduced_status"] == "ok"
        value = float(cell["reproduced"])
        assert 0.0 <= value <= 100.0
        if cell["paper_status"] == "ok":
            assert float(cell["difference"]) == pytest.approx(value - float(cell["paper"]),
                                                              abs=1e-4)
    return cells


def torch_load_seed(path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)["config"]["seed"]


@pytest.mark.slow
def test_pretrained_body_is_made_once_and_read_by_the_runs(tmp_path):
    """`weights: pretrain` (mini's default) on micro: rule pretrain makes the body before the
    training job, the run starts from it, and editing the pretrain block reruns both."""
    work = _pipeline_copy(tmp_path)
    params = (work / "params.yaml").read_text()
    micro_backbone = "gn_groups: 8,\n               weights: null, frozen_stages: -1}\n    head: {channels: 32"
    assert micro_backbone in params
    (work / "params.yaml").write_text(params.replace(
        micro_backbone, micro_backbone.replace("weights: null", "weights: pretrain")))
    target = "runs/micro/lla_fcos_r50/model_final.pt"
    result = _snakemake(target, "--profile", "local", "--config", "profile=micro", cwd=work,
                        timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    body = work / "runs" / "micro" / "pretrain" / "body_r50.pt"
    assert body.is_file() and (work / "logs" / "micro" / "pretrain" / "body_r50.log").is_file()
    assert not (work / "runs" / "micro" / "pretrain" / "body_r101.pt").exists()
    import torch

    state = torch.load(work / target, map_location="cpu", weights_only=False)
    assert state["config"]["model"]["backbone"]["weights"] == "runs/micro/pretrain/body_r50.pt"
    # nothing to do again; a changed pretrain block reruns the body and the run
    again = _snakemake(target, "--dry-run", "--config", "profile=micro", cwd=work)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    text = (work / "params.yaml").read_text()
    micro_pretrain = "    batch: 8\n    iterations: 6\n"
    assert micro_pretrain in text
    (work / "params.yaml").write_text(text.replace(micro_pretrain, "    batch: 8\n    iterations: 7\n"))
    changed = _snakemake(target, "--dry-run", "--config", "profile=micro", cwd=work)
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert {rule: count for rule, count in _jobs(changed.stdout).items() if rule != "total"} == {
        "pretrain": 1, "train": 1}


def test_micro_table2_end_to_end(tmp_path):
    # data -> train + infer (3 LLA cost variants, 2 seeds each in micro) -> evaluate -> table,
    # with the local profile.
    work = _pipeline_copy(tmp_path)
    result = _snakemake("table2", "--profile", "local", "--config", "profile=micro", cwd=work,
                        timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    cells = _check_table(work, "table2", rows=3, columns=3)
    assert {c["experiment"] for c in cells} == {"lla_retinanet_star_a1_cls_r50",
                                                "lla_retinanet_star_a1_cls_reg_r50",
                                                "lla_retinanet_star_a1_r50"}
    # The paper's "-" of the C_cls row shows as such.
    assert {c["paper_status"] for c in cells if c["row_id"] == "cls"} == {"diverged"}
    for name in ("lla_retinanet_star_a1_cls_r50", "lla_retinanet_star_a1_r50"):
        for run in (name, f"{name}__seed1"):  # micro: Table 2 has 2 seeds (params `seeds`)
            assert (work / "logs" / "micro" / "train" / f"{run}.log").is_file()
            assert (work / "runs" / "micro" / run / "model_final.pt").is_file()
            assert (work / "results" / "micro" / "detections" / f"{run}.json").is_file()
    # Each cell is the mean of the two seeds' metrics, which differ (another init and order).
    for cell in cells:
        if cell["reproduced_status"] != "ok":
            continue
        assert cell["runs"] == "2"
        runs = [float(v) for v in cell["run_values"].split(";")]
        assert len(runs) == 2
        assert float(cell["reproduced"]) == pytest.approx(sum(runs) / 2, abs=1e-4)
    seeds = [torch_load_seed(work / "runs" / "micro" / run / "model_final.pt")
             for run in ("lla_retinanet_star_a1_r50", "lla_retinanet_star_a1_r50__seed1")]
    assert seeds == [0, 1]
    assert "± " in (work / "results" / "micro" / "tables" / "table2.md").read_text()


@pytest.mark.slow
def test_micro_all_end_to_end(tmp_path):
    # The README's main chain on micro with the local Snakemake profile: every table, figure,
    # the claims, the training curves and the report.
    work = _pipeline_copy(tmp_path)
    result = _snakemake("all", "--profile", "local", "--config", "profile=micro", cwd=work,
                        timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    shapes = {"table1": (8, 3), "table2": (3, 3), "table3": (4, 2), "table4": (16, 2),
              "table5": (2, 2), "table6": (12, 3), "table7": (6, 2)}
    for table, (rows, columns) in shapes.items():
        _check_table(work, table, rows, columns, allow_missing=table == "table7")
    results = work / "results" / "micro"
    for n in range(1, 6):
        assert (results / "figures" / f"fig{n}.png").read_bytes().startswith(b"\x89PNG")
    claims = (results / "tables" / "claims.csv").read_text()
    assert claims.count("\n") == 1 + len(yaml.safe_load((work / "params.yaml").read_text())["claims"])
    # one curves csv per run the tables read (45: Table 2's three experiments have 2 seeds)
    curves = sorted(p.stem for p in (results / "curves").glob("*.csv"))
    assert len(curves) == 45 and "lla_retinanet_star_a1_cls_r50__seed1" in curves
    assert (results / "curves" / "lla_fcos_r50.csv").read_text().startswith("step,loss,")
    report = (work / "reports" / "micro" / "paper.md").read_text()
    assert "## The paper's claims on this run" in report and "Table 7" in report
