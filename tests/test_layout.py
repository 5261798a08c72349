"""lla.layout (every pipeline path, one place) and lla.data.registry (every dataset, one
place): the paths and names the rules and the commands share."""

import re
from pathlib import Path

import pytest

from lla import layout
from lla.config import load_params
from lla.data import registry

ROOT = Path(__file__).resolve().parents[1]


def test_results_paths_of_one_profile():
    files = layout.results("mini")
    assert files.root == Path("results/mini")
    assert files.detections("lla_fcos_r50__seed2") == Path(
        "results/mini/detections/lla_fcos_r50__seed2.json")
    assert files.metrics("a") == Path("results/mini/metrics/a.json")
    assert files.analysis("aar", "a") == Path("results/mini/analysis/aar_a.json")
    assert files.analysis("visible", "a") == Path("results/mini/analysis/visible_a.json")
    assert files.figure_data("positives", "a") == Path("results/mini/figure_data/positives_a.json")
    assert files.figure_data("evolution", "a") == Path("results/mini/figure_data/evolution_a.json")
    assert files.figure_data("levels", "a") == Path("results/mini/figure_data/levels_a.csv")
    assert files.levels_per_level("a") == Path("results/mini/figure_data/levels_a.per_level.csv")
    assert files.figure("fig3") == Path("results/mini/figures/fig3.png")
    assert files.figure_csv("fig3") == Path("results/mini/figures/fig3_levels.csv")
    assert files.table("table1", "md") == Path("results/mini/tables/table1.md")
    assert files.claims("csv") == Path("results/mini/tables/claims.csv")
    assert files.curves_dir == Path("results/mini/curves")
    assert files.data_manifest == Path("results/mini/data_manifest.json")
    assert layout.report("mini", "html") == Path("reports/mini/paper.html")
    assert layout.run_dir("mini", "a") == Path("runs/mini/a")
    assert layout.final_checkpoint("mini", "a") == Path("runs/mini/a/model_final.pt")


def test_logs():
    assert layout.log("micro", "train", "a__seed1") == Path("logs/micro/train/a__seed1.log")
    assert layout.log("micro", "synth_data") == Path("logs/micro/synth_data.log")
    assert layout.log(None, "download_crowdhuman") == Path("logs/download_crowdhuman.log")
    assert layout.convert_log("data/x") == Path("data/x/converted/convert.log")


def test_wildcards_pass_through_as_snakemake_patterns():
    files = layout.results("{profile}")
    assert str(files.analysis("aar", "{experiment}")) == "results/{profile}/analysis/aar_{experiment}.json"
    assert str(layout.final_checkpoint("{profile}", "{experiment}")) == (
        "runs/{profile}/{experiment}/model_final.pt")


def test_dataset_roots_follow_the_profile_source():
    params = load_params(ROOT / "params.yaml")
    data = Path(params["data_root"])
    assert layout.converted_json(params, "mini", "crowdhuman", "val") == (
        data / "synthcrowd" / "mini" / "crowdhuman" / "converted" / "val.json")
    assert layout.dataset_root(params, "paper", "citypersons") == data / "citypersons"
    assert layout.synthcrowd_dir(params, "micro") == data / "synthcrowd" / "micro"
    # an official dataset's `root` in params moves it (the download command and the rules alike)
    params["crowdhuman"]["root"] = "/scratch/CrowdHuman"
    assert layout.dataset_root(params, "paper", "crowdhuman") == Path("/scratch/CrowdHuman")
    assert layout.dataset_root(params, "mini", "crowdhuman") == data / "synthcrowd" / "mini" / "crowdhuman"


def test_rules_name_no_path_literal():
    """Every path of the rules comes from lla.layout (or the registry): no rule spells one."""
    literal = re.compile(r"""["'](?:results|runs|reports|logs|data)/""")
    for path in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.lstrip().startswith("#"):
                assert not literal.search(line), f"{path.name}:{number}: {line.strip()}"


# ---------------------------------------------------------------------------- registry

def test_registry_specs_name_their_files_and_modules():
    import importlib

    assert registry.names() == ("crowdhuman", "citypersons")
    for name in registry.names():
        spec = registry.get(name)
        assert hasattr(importlib.import_module(spec.converter), "convert_split")
        assert hasattr(importlib.import_module(spec.evaluator), "add_parser")
    crowdhuman, citypersons = registry.get("crowdhuman"), registry.get("citypersons")
    assert crowdhuman.annotation_files("d/ch") == ["d/ch/annotation_train.odgt",
                                                  "d/ch/annotation_val.odgt"]
    assert citypersons.annotation_files("d/cp", ("val",)) == ["d/cp/annotations/anno_val.mat"]
    for spec in (crowdhuman, citypersons):
        for path in spec.annotation_files("data/synthcrowd/{profile}/x"):
            assert spec.root_of(path) == "data/synthcrowd/{profile}/x"
    assert registry.synthcrowd_flavours() == ("crowdhuman", "citypersons")
    with pytest.raises(ValueError, match="unknown dataset 'kitti' .*known: crowdhuman, citypersons"):
        registry.get("kitti")


def test_commands_offer_the_registered_datasets(capsys):
    from lla import cli

    for argv in (["data", "convert", "--help"], ["data", "download", "--help"], ["eval", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
        out = capsys.readouterr().out
        assert all(name in out for name in registry.names()), argv
