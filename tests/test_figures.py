"""`lla report figure`: Figures 1-5 rendered from a micro run, their helpers on hand-worked
cases, and the `all_figures` target of the workflow (dry runs)."""

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from lla.analysis.positives import evolution_iterations
from lla.cli import main
from lla.config import load_params
from lla.layout import Results, converted_json
from lla.report import figures
from test_workflow import _jobs, _pipeline_copy, _snakemake

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ helpers by hand

def test_shown_positives_keeps_each_gts_dominant_level():
    # GT 0: 3 positives on level 0, 2 on level 1 -> shows the 3 on level 0.
    # GT 1: 1 on level 1, 1 on level 2 (tie)    -> shows the one on level 1.
    # GT 2: none                                -> level -1, nothing shown.
    gt = [0, 0, 0, 0, 0, 1, 1]
    level = [0, 1, 0, 1, 0, 2, 1]
    keep, gt_level = figures.shown_positives(gt, level, num_gts=3, num_levels=3)
    assert keep.tolist() == [True, False, True, False, True, False, True]
    assert gt_level.tolist() == [0, 1, -1]
    keep, gt_level = figures.shown_positives([], [], num_gts=2, num_levels=5)
    assert keep.tolist() == [] and gt_level.tolist() == [-1, -1]


def test_match_detections_greedy_by_score():
    # GTs: A = [0, 0, 10, 10], B = [20, 0, 30, 10].
    # det 0 = A exactly          -> A (IoU 1)
    # det 1 = [0, 0, 10, 8]      -> IoU 0.8 with A, but A is taken: no other GT -> false pos.
    # det 2 = [21, 0, 31, 10]    -> IoU 90/110 = 0.82 with B -> B
    # det 3 = [40, 40, 50, 50]   -> nothing
    gts = np.array([[0, 0, 10, 10], [20, 0, 30, 10]])
    dets = np.array([[0, 0, 10, 10], [0, 0, 10, 8], [21, 0, 31, 10], [40, 40, 50, 50]])
    det_gt, found = figures.match_detections(dets, gts, 0.5)
    assert det_gt.tolist() == [0, -1, 1, -1] and found.tolist() == [True, True]
    # At IoU >= 0.85 det 2 (0.82) no longer matches B.
    det_gt, found = figures.match_detections(dets, gts, 0.85)
    assert det_gt.tolist() == [0, -1, -1, -1] and found.tolist() == [True, False]
    det_gt, found = figures.match_detections(np.zeros((0, 4)), gts, 0.5)
    assert det_gt.tolist() == [] and found.tolist() == [False, False]
    det_gt, found = figures.match_detections(dets, np.zeros((0, 4)), 0.5)
    assert det_gt.tolist() == [-1] * 4 and found.tolist() == []


def test_inside_ignore():
    # det [0,0,10,10] has 60 % of its area in the ignore box [4,0,20,10]; det [0,0,10,10]
    # vs ignore [8,0,20,10]: 20 % -> only the first counts as inside at 0.5.
    dets = np.array([[0, 0, 10, 10]])
    assert figures.inside_ignore(dets, np.array([[4, 0, 20, 10]])).tolist() == [True]
    assert figures.inside_ignore(dets, np.array([[8, 0, 20, 10]])).tolist() == [False]
    assert figures.inside_ignore(dets, np.zeros((0, 4))).tolist() == [False]


def test_figure_inputs_and_evolution_iterations():
    params = load_params(REPO / "params.yaml")
    assert figures.figure_inputs(params, "paper", "fig1", "results/paper") == [
        Path(f"results/paper/figure_data/positives_{e}.json")
        for e in ("retinanet_r50", "fcos_ctr_r50", "atss_r50")]
    assert figures.figure_inputs(params, "paper", "fig3", "r")[0] == Path(
        "r/figure_data/levels_retinanet_r50.csv")
    assert figures.figure_inputs(params, "paper", "fig5", "r")[2] == Path(
        "r/detections/lla_fcos_r50.json")
    # Fig. 4 reads the checkpoints train.keep_checkpoints keeps, whatever they are.
    kept = params["train"]["defaults"]["keep_checkpoints"]
    assert evolution_iterations(params, "paper", "lla_retinanet_star_a1_r50") == [
        *[str(i) for i in sorted(kept)], "final"]
    with pytest.raises(Exception, match="unknown figure 'fig9'"):
        figures.figure_inputs(params, "paper", "fig9", "r")


# ------------------------------------------------------------------ figures of a micro run

# micro figures settings: panels of 2.0 in at 80 dpi (160 px) + a 1.3 in (104 px) header.
# fig1: 3 detectors x 2 images; fig2: 2 x 2; fig3: 2 panels 1.5 x 160 px wide, one row;
# fig4: 2 checkpoints (iteration 4, final) x 2 images; fig5: 3 detectors x 2 images.
EXPECTED_SIZES = {"fig1": (480, 424), "fig2": (320, 424), "fig3": (480, 264),
                  "fig4": (320, 424), "fig5": (480, 424)}


@pytest.fixture(scope="module")
def micro_results(tmp_path_factory):
    """Every figure of a micro run, made in one process through the `lla` CLI:
    synthcrowd (CrowdHuman flavour) -> train the 5 experiments (8 iterations; 3 write
    their val detections) -> analyses -> figures. The params copy keeps the iteration-4
    checkpoint (train.keep_checkpoints) so that Fig. 4 has two rows."""
    work = tmp_path_factory.mktemp("figures")
    params = load_params(REPO / "params.yaml")
    params["data_root"] = str(work / "data")
    params["train"]["micro"]["keep_checkpoints"] = [4]
    (work / "params.yaml").write_text(yaml.safe_dump(dict(params), sort_keys=False))
    settings = figures.figure_settings(params, "micro")
    old_cwd = os.getcwd()
    os.chdir(work)
    try:
        root = work / "data" / "synthcrowd" / "micro" / "crowdhuman"
        assert main(["data", "synth", "--profile", "micro", "--out-dir", str(root.parent),
                     "--workers", "1", "--only", "crowdhuman"]) == 0
        assert main(["data", "convert", "crowdhuman", "--root", str(root),
                     "--out-dir", str(root / "converted")]) == 0
        with_detections = set(settings["fig5"]["experiments"])
        experiments = {e for name in ("fig1", "fig2", "fig3", "fig4", "fig5")
                       for e in figures.experiments_of(settings, name)}
        for experiment in sorted(experiments):
            extra = (["--infer-out", f"results/micro/detections/{experiment}.json"]
                     if experiment in with_detections else [])
            assert main(["train", "--experiment", experiment, "--profile", "micro", *extra]) == 0
        positives = settings["positives"]
        files = Results(Path("results/micro"))
        for name in ("fig1", "fig2"):
            for experiment in figures.experiments_of(settings, name):
                assert main(["analyze", "positives", "--run-dir", f"runs/micro/{experiment}",
                             "--profile", "micro", "--split", positives["split"],
                             "--images", str(positives["images"]), "--out",
                             str(files.figure_data("positives", experiment))]) == 0
        evolved = settings["fig4"]["experiment"]
        assert main(["analyze", "positives", "--run-dir", f"runs/micro/{evolved}",
                     "--profile", "micro", "--images", str(positives["images"]),
                     "--iterations", *evolution_iterations(params, "micro", evolved),
                     "--out", str(files.figure_data("evolution", evolved))]) == 0
        for experiment in settings["fig3"]["experiments"]:
            assert main(["analyze", "levels", "--checkpoint",
                         f"runs/micro/{experiment}/model_final.pt", "--profile", "micro",
                         "--max-gts", str(settings["fig3"]["max_gts"]), "--out",
                         str(files.figure_data("levels", experiment))]) == 0
        for name in figures.FIGURES:
            assert main(["report", "figure", name, "--profile", "micro",
                         "--out", f"results/micro/figures/{name}.png"]) == 0
    finally:
        os.chdir(old_cwd)
    return work, params


@pytest.mark.slow
@pytest.mark.parametrize("name", figures.FIGURES)
def test_figure_is_a_nonblank_png_of_the_expected_size(micro_results, name):
    work, _ = micro_results
    with Image.open(work / "results" / "micro" / "figures" / f"{name}.png") as image:
        assert image.format == "PNG"
        assert image.size == EXPECTED_SIZES[name]
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 10.0  # not a blank canvas
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text, markers, images


@pytest.mark.slow
def test_fig3_counts_and_the_shared_images(micro_results):
    work, params = micro_results
    settings = figures.figure_settings(params, "micro")
    with open(work / "results" / "micro" / "figures" / "fig3_levels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    labels = list(settings["fig3"]["experiments"].values())
    assert [r["label"] for r in rows] == [label for label in labels for _ in range(6)]
    assert [r["level_name"] for r in rows[:6]] == ["P3", "P4", "P5", "P6", "P7", "none"]
    train = json.loads(converted_json(params, "micro", "crowdhuman", "train").read_text())
    persons = sum(1 for a in train["annotations"] if not a["ignore"])
    for label in labels:
        counts = [int(r["gts"]) for r in rows if r["label"] == label]
        # every sampled GT is counted once: min(max_gts, persons of the split)
        assert sum(counts) == min(settings["fig3"]["max_gts"], persons)
        assert sum(float(r["share"]) for r in rows if r["label"] == label) == pytest.approx(1, abs=1e-3)
    # Figs. 1 and 2 draw the same images for every detector.
    analysis = work / "results" / "micro" / "figure_data"
    image_ids = {tuple(i["image_id"] for i in json.loads(p.read_text())["images"])
                 for p in analysis.glob("positives_*.json")}
    assert len(image_ids) == 1 and len(next(iter(image_ids))) == settings["positives"]["images"]
    evolution = json.loads(next(analysis.glob("evolution_*.json")).read_text())
    assert [c["label"] for c in evolution["checkpoints"]] == ["4", "final"]


@pytest.mark.slow
def test_missing_inputs_are_reported(micro_results, tmp_path, capsys):
    work, _ = micro_results
    empty = tmp_path / "results"
    empty.mkdir()
    assert main(["report", "figure", "fig1", "--profile", "micro", "--params",
                 str(work / "params.yaml"), "--results", str(empty),
                 "--out", str(tmp_path / "f.png")]) == 2
    assert "positives_retinanet_r50.json" in capsys.readouterr().err
    assert not (tmp_path / "f.png").exists()


# ------------------------------------------------------------------ the workflow

@pytest.mark.parametrize("profile", ["micro", "paper"])
def test_all_figures_dry_run(profile, tmp_path):
    # 5 trained experiments (fig1: 3, fig2: 2 more; fig3-5 reuse them; the training job
    # writes fig5's detections too); positives of the 5 (figs. 1, 2), the evolution of one
    # LLA run (fig. 4), the levels of 2 (fig. 3); 5 figures.
    result = _snakemake("all_figures", "--dry-run", "--printshellcmds", "--config",
                        f"profile={profile}", cwd=_pipeline_copy(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    jobs = _jobs(out)
    assert {rule: jobs.get(rule) for rule in (
        "train", "analyze_positives", "analyze_levels",
        "figure", "figure_levels", "all_figures")} == {
        "train": 5, "analyze_positives": 5 + 1,
        "analyze_levels": 2, "figure": 4, "figure_levels": 1, "all_figures": 1}
    for name in figures.FIGURES:
        assert f"results/{profile}/figures/{name}.png" in out
    if profile == "paper":
        kept = " ".join(str(i) for i in load_params(REPO / "params.yaml")["train"]["defaults"][
            "keep_checkpoints"])
        assert f"--iterations {kept} final" in out
        assert "--max-gts 5000 --seed 0" in out and "gpu=1" in out
