"""params.yaml validation: one schema (lla/schema/params.schema.yaml) and the cross-references,
for `lla` and the Snakefile alike. Each bad file gives ONE line naming the file that was
loaded, the line and the key path, and nothing runs."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lla import config
from lla.cli import main
from lla.errors import DataError

REPO = Path(__file__).resolve().parents[1]
TEXT = (REPO / "params.yaml").read_text()
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")


def edited(tmp_path: Path, old: str, new: str, name: str = "other_params.yaml") -> Path:
    """params.yaml with ``old`` replaced by ``new`` (once), written to ``tmp_path/name``."""
    assert old in TEXT, old
    path = tmp_path / name
    path.write_text(TEXT.replace(old, new, 1))
    return path


def load_error(path: Path) -> str:
    with pytest.raises(DataError) as err:
        config.load_params(path)
    return str(err.value)


def test_the_repository_params_are_valid():
    params = config.load_params(REPO / "params.yaml")
    assert params.path == REPO / "params.yaml"


def test_the_schema_ships_in_the_package():
    assert config.SCHEMA_PATH == Path(config.__file__).parent / "schema" / "params.schema.yaml"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'lla = \[.*"schema/\*\.yaml".*\]', pyproject)
    assert not (REPO / "workflow" / "schemas").exists()


# (old text, new text, key path, message): a typo or a dangling name in every block
CASES = [
    ("    base_lr: 0.002\n", "    base_lrr: 0.002\n",
     "train.mini.base_lrr", "unknown key (did you mean 'base_lr'?)"),
    ("          center_sampling_radius: 1.5\n", "          center_sampling_radiuss: 1.5\n",
     "models.defaults.variants.fcos.assigner.center_sampling_radiuss",
     "unknown key (did you mean 'center_sampling_radius'?)"),
    ("  lla_fcos_r50: {model: lla_fcos, dataset: crowdhuman}",
     "  lla_fcos_r50: {model: lla_fcoss, dataset: crowdhuman}",
     "experiments.lla_fcos_r50.model", "unknown variant 'lla_fcoss' in profile 'paper'"),
    ("    train: {gpus: 0, cpus_per_gpu: 1, mem_mb: 4096, runtime: 60}",
     "    train: {gpus: 0, cpus_per_gpu: 1, mem_mbb: 4096, runtime: 60}",
     "resources.mini.train.mem_mbb", "unknown key (did you mean 'mem_mb'?)"),
    ('    title: "Table 2.', '    titel: "Table 2.', "tables.table2.titel", "unknown key"),
    ("method: lla_fcos_r50, baseline: fcos_r50}", "method: lla_fcos_r50, baselin: fcos_r50}",
     "claims[3].baselin", "unknown key (did you mean 'baseline'?)"),
    ("      coat_prob: 0.25\n", "      coat_prb: 0.25\n",
     "synthcrowd.defaults.citypersons.coat_prb", "unknown key (did you mean 'coat_prob'?)"),
    ("profile: mini\n", "profle: mini\n", "profle", "unknown key (did you mean 'profile'?)"),
    ("  micro:\n    min_size: 256", "  micro:\n    min_sizes: 256", "input.micro.min_sizes",
     "unknown key"),
    ("    tables: {table2: 2}", "    tables: {table2: 0}", "seeds.micro.tables.table2",
     "0 is less than the minimum of 1"),
    ("    tables: {table2: 2}", "    tables: {table22: 2}", "seeds.micro.tables.table22",
     "unknown table 'table22'"),
    ("    aar: {max_images: 200}", "    aar: {max_imagess: 200}", "analysis.mini.aar.max_imagess",
     "unknown key"),
    ("    fig5: {score_thresh: 0.3}", "    fig5: {score_threshold: 0.3}",
     "figures.mini.fig5.score_threshold", "unknown key"),
    ("    timeout_s: 60           # per connect", "    timeout: 60           # per connect",
     "crowdhuman.download.timeout", "unknown key"),
    ("    datasets: {crowdhuman: synthcrowd, citypersons: synthcrowd}\n  micro:",
     "    datasets: {crowdhuman: synthcrowd, citypersons: synth}\n  micro:",
     "profiles.mini.datasets.citypersons", "must be one of download, synthcrowd, got 'synth'"),
    ("  micro:                            # seconds, for tests\n    images_per_device: 2",
     "  micr:                            # seconds, for tests\n    images_per_device: 2",
     "train.micr", "unknown profile 'micr'"),
    ("      retinanet_star:                   # RetinaNet*: GIoU loss on decoded boxes\n"
     "        base: retinanet\n", "      retinanet_star:\n        base: lla_retinanet_star_a1\n",
     "models.defaults.variants.retinanet_star", "variant inheritance loop: retinanet_star -> "),
    ("        base: retinanet_star\n", "        base: retinanet_starr\n",
     "models.defaults.variants.retinanet_star_a1", "has no 'retinanet_starr'"),
    ('      cls: {label: "C_cls", experiment: lla_retinanet_star_a1_cls_r50}',
     '      cls: {label: "C_cls", experiment: lla_retinanet_star_a1_clss_r50}',
     "tables.table2.rows.cls.experiment", "unknown experiment 'lla_retinanet_star_a1_clss_r50'"),
    ('      cls: {label: "C_cls", experiment: lla_retinanet_star_a1_cls_r50}',
     '      cls: {label: "C_cls", experiment: cp_retinanet_r50}',
     "tables.table2.rows.cls.experiment", "is on citypersons, the table on crowdhuman"),
    ('{label: "w/o LLA", cells: {RetinaNet: retinanet_r50, FCOS: fcos_ctr_r50}}',
     '{label: "w/o LLA", cells: {RetinaNet: retinanet_r50}}',
     "tables.table5.rows.without_lla.cells", "cells must name every column"),
    ('{label: "w/o LLA", cells:', '{label: "w/o LLA", experiment: retinanet_r50, cells:',
     "tables.table5.rows.without_lla", "exactly one of experiment, cells"),
    ("method: cls_reg_inbox, baseline: cls_reg}", "method: cls_reg_inbox, baseline: cls_regg}",
     "claims[9].baseline", "unknown row 'cls_regg' of table2 (did you mean 'cls_reg'?)"),
    ("method: iou_giou, baseline: [iou_iou, giou_iou, giou_giou]}",
     "method: iou_giou, baseline: [iou_iou, giou_iouu, giou_giou]}",
     "claims[10].baseline[1]", "unknown row 'giou_iouu' of table3"),
    ("baseline: retinanet_star_a1_r50,\n     baseline_table: table1}",
     "baseline: retinanet_star_a1_r50,\n     baseline_table: table11}",
     "claims[8].baseline_table", "unknown table 'table11'"),
    ("table: table1, column: MR,\n     better: lower, method: lla_fcos_r50",
     "table: table1, column: MRR,\n     better: lower, method: lla_fcos_r50",
     "claims[3].column", "unknown column 'MRR' of table1"),
    ("kind: diverges, table: table2, row: cls,", "kind: diverges, table: table2, row: clss,",
     "claims[7].row", "unknown row 'clss' of table2"),
    ("kind: diverges, table: table2, row: cls,", "kind: divergess, table: table2, row: cls,",
     "claims[7].kind", "must be one of compare, flat, diverges"),
    ("kind: empty_level,\n     experiment: lla_retinanet_star_a1_r50, level: P7}",
     "kind: empty_level,\n     experiment: lla_retinanet_star_a1_r5, level: P7}",
     "claims[18].experiment", "unknown experiment 'lla_retinanet_star_a1_r5'"),
    ("kind: visible, better: higher, method: lla_fcos_r50, baseline: fcos_ctr_r50}",
     "kind: visible, better: higher, method: lla_fcos_r50}",
     "claims[30]", "a finer_levels or visible claim needs method and baseline"),
    ("      experiments: {retinanet_r50: RetinaNet, fcos_ctr_r50: FCOS, atss_r50: ATSS}",
     "      experiments: {retinanet_r50: RetinaNet, fcos_ctrr_r50: FCOS, atss_r50: ATSS}",
     "figures.defaults.fig1.experiments.fcos_ctrr_r50", "unknown experiment 'fcos_ctrr_r50'"),
    ("        - {lla: lla_fcos_r50, lla_label: LLA.FCOS,",
     "        - {lla: lla_fcos_r5, lla_label: LLA.FCOS,",
     "analysis.defaults.visible.comparisons[0].lla", "unknown experiment 'lla_fcos_r5'"),
    ("    schedule: mini_500it\n", "    schedule: mini_50it\n", "train.mini.schedule",
     "unknown schedule 'mini_50it' in profile 'mini' (did you mean 'mini_500it'?)"),
    ("        assigner: {name: atss, topk: 9, anchor_free: true, anchor_scale: 8.0}",
     "        assigner: {name: atss, topk: 9, anchor_free: true, center_sampling: true}",
     "models.defaults.variants.atss.assigner.center_sampling", "unknown key (allowed: anchor_free"),
    ("model_overrides: {assigner: {topk: 16}}", "model_overrides: {assigner: {topkk: 16}}",
     "experiments.lla_retinanet_star_a1_k16_r50.model_overrides.assigner.topkk",
     "unknown key (did you mean 'topk'?)"),
    ("  pisa_r50: {model: pisa, dataset: crowdhuman}",
     "  pisa_r50__seed3: {model: pisa, dataset: crowdhuman}",
     "experiments.pisa_r50__seed3", "does not end in __seed<N>"),
    ("      persons_range: [1, 30]", "      persons_range: [30, 1]",
     "synthcrowd.defaults.citypersons.persons_range", "expected [low, high] with low <= high"),
    ("    min_size: 800               # short side", "    min_size: -800               # short side",
     "input.defaults.min_size", "-800 is less than the minimum of 1"),
    ("    images_per_device: 2            # paper: 2 images x 8 GPUs = 16\n", "",
     "train.defaults", "missing key 'images_per_device'"),
    # the options of the CPU profiles and the LLA assigner
    ("    cache_images: true              # 1,600 images", "    cache_images: 1              # 1,600 images",
     "train.mini.cache_images", "expected boolean, got 1"),
    ("gn_groups: 8, weights: pretrain, frozen_stages: -1}",
     "gn_groups: 8, weights: pretrain, frozen_stages: -1, finest_level: 4}",
     "models.mini.backbone.finest_level", "must be one of 2, 3, got 4"),
    ("    val_crops: 1024 ", "    val_cropss: 1024 ",
     "pretrain.defaults.val_cropss", "unknown key (did you mean 'val_crops'?)"),
    ("        assigner: {name: atss, topk: 9, anchor_free: true, anchor_scale: 8.0}",
     "        assigner: {name: atss, topk: 9, anchor_free: true, anchor_scale: 8.0, inside_only: true}",
     "models.defaults.variants.atss.assigner.inside_only", "unknown key (did you mean 'inside_margin'?)"),
    # a variant resolved for a profile must be complete: a new one with an assigner only is not
    ("      fcos_ctr:                         # + centerness branch",
     "      bare: {assigner: {name: fcos}}\n      fcos_ctr:                         #",
     "models.defaults.variants.bare", "missing key 'p6p7_source'"),
    # an override of an assigner without naming it keeps the inherited assigner's keywords
    ("        assigner: {reg_weight: 1.5, inbox_cost: 1000.0}\n        loss: {normalizer: matched}\n"
     "      lla_fcos:",
     "        assigner: {reg_weight: 1.5, inbox_cost: 1000.0, anchor_free: true}\n"
     "        loss: {normalizer: matched}\n      lla_fcos:",
     "models.official_code.variants.lla_retinanet_star_a1.assigner.anchor_free",
     "(the variant resolved for profile 'official_code')"),
]


@pytest.mark.parametrize("old, new, key, message", CASES, ids=[c[2] for c in CASES])
def test_a_bad_block_fails_at_load_naming_file_line_and_key(tmp_path, old, new, key, message):
    path = edited(tmp_path, old, new)
    error = load_error(path)
    match = re.match(rf"^{re.escape(str(path))}:(\d+) \[{re.escape(key)}\]: (.*)$", error)
    assert match, error
    assert message in match[2], error
    # the line holds the key (or its block, for a missing key; a list item for an item)
    line = path.read_text().splitlines()[int(match[1]) - 1]
    last = key.split(".")[-1]
    assert last in line or "missing" in message or last.endswith("]"), (line, error)


def test_the_new_options_load_with_their_types(tmp_path):
    path = edited(tmp_path, "cls_cost: focal, reg_cost: iou}\n        loss: {box_weight: 2.0}",
                  "cls_cost: focal, reg_cost: iou, inside_only: true}\n        loss: {box_weight: 2.0}")
    text = path.read_text().replace("gn_groups: 8, weights: pretrain, frozen_stages: -1}",
                                    "gn_groups: 8, weights: {50: body.pt}, frozen_stages: -1, "
                                    "finest_level: 2}", 1)
    path.write_text(text)
    params = config.load_params(path)
    assert params["models"]["defaults"]["variants"]["lla_fcos"]["assigner"]["inside_only"] is True
    assert params["models"]["mini"]["backbone"]["finest_level"] == 2
    assert config.section(params, "pretrain", "micro")["iterations"] == 6
    assert config.section(params, "train", "mini")["cache_images"] is True


def test_a_profile_override_is_partial_and_each_merge_is_validated(tmp_path):
    # `mini: {optimizer: {name: adamw}}` sets one key of a block the defaults complete
    assert config.load_params(edited(tmp_path, "    optimizer: {name: adamw}",
                                     "    optimizer: {name: adamw, betas: [0.9, 0.99]}"))
    # a merge can be incomplete even when both parts are valid: SGD needs a momentum
    path = edited(tmp_path, "      momentum: 0.9\n", "")
    path.write_text(path.read_text().replace(
        "    optimizer: {name: adamw}", "    optimizer: {name: adamw, momentum: 0.9}").replace(
        "      name: sgd                     # sgd | adamw", "      name: adamw"))
    path.write_text(path.read_text().replace(
        "  micro:                            # seconds, for tests\n    images_per_device: 2",
        "  micro:                            # seconds, for tests\n    optimizer: {name: sgd}\n"
        "    images_per_device: 2"))
    assert re.search(r"\[train\.micro\.optimizer\]: missing key 'momentum' \(profile 'micro', "
                     r"merged\)", load_error(path))


def test_errors_of_a_merged_config_name_the_file_that_holds_the_value(tmp_path):
    params = yaml.safe_load(TEXT)
    params["profile"] = "laptop"   # as `--config profile=laptop` would
    with pytest.raises(DataError) as err:
        config.validate_params(params, [REPO / "params.yaml"])
    assert str(err.value) == ("--config [profile]: unknown profile 'laptop' "
                              "(known: paper, official_code, mini, micro, paper_smoke)")
    other = edited(tmp_path, "    base_lr: 0.002\n", "    base_lrr: 0.002\n")
    merged = config.deep_merge(yaml.safe_load(TEXT), yaml.safe_load(other.read_text()))
    with pytest.raises(DataError, match=rf"^{re.escape(str(other))}:\d+ \[train\.mini\.base_lrr\]"):
        config.validate_params(merged, [REPO / "params.yaml", other])


def test_lla_train_stops_on_a_typo_with_one_line(tmp_path, capsys, monkeypatch):
    path = edited(tmp_path, "    base_lr: 0.002\n", "    base_lrr: 0.002\n")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--experiment", "lla_fcos_r50", "--profile", "mini",
                 "--params", str(path)]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"error: {re.escape(str(path))}:\d+ \[train\.mini\.base_lrr\]: "
                        r"unknown key \(did you mean 'base_lr'\?\)\n", err), err
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------- the Snakefile

def _workflow(tmp_path: Path) -> Path:
    work = tmp_path / "repo"
    work.mkdir()
    shutil.copy2(REPO / "Snakefile", work / "Snakefile")
    shutil.copytree(REPO / "workflow", work / "workflow")
    return work


SNAKEMAKE_CASES = [CASES[i] for i in (0, 1, 2, 3, 4, 5, 6, 7)]


@pytest.mark.parametrize("old, new, key, message", SNAKEMAKE_CASES,
                         ids=[c[2] for c in SNAKEMAKE_CASES])
def test_snakemake_stops_on_a_typo_with_one_line(tmp_path, old, new, key, message):
    work = _workflow(tmp_path)
    edited(work, old, new, name="params.yaml")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run([SNAKEMAKE, "all_tables", "--dry-run", "--config", "profile=micro"],
                            cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert re.fullmatch(rf"error: params\.yaml:\d+ \[{re.escape(key)}\]: .*\n", result.stderr), \
        result.stderr
    assert message in result.stderr
