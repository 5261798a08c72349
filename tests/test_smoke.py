"""`make paper-smoke` (lla.smoke): the paper_smoke profile, the choice of distinct models,
the driver on the micro profile, and (slow) the smoke itself at the paper's size."""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import pytest

from lla import smoke
from lla.config import load_params, section
from lla.data.transforms import resized_size
from lla.engine.experiment import Experiment, resolve_experiment
from lla.errors import DataError

REPO = Path(__file__).resolve().parents[1]
PARAMS = load_params(REPO / "params.yaml")
PAPER, SMOKE = "paper", smoke.SMOKE_PROFILE


def _differences(a, b, path=()):
    """Key paths where two nested mappings differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            yield from _differences(a.get(key), b.get(key), path + (key,))
    elif a != b:
        yield path


# ---------------------------------------------------------------------------- the profile

def test_paper_smoke_overrides_only_iterations_batch_and_weights():
    for name in PARAMS["experiments"]:
        paper = resolve_experiment(PARAMS, name, PAPER)
        smoked = resolve_experiment(PARAMS, name, SMOKE)
        assert list(_differences(paper.model, smoked.model)) == [("backbone", "weights")]
        assert smoked.model["backbone"]["weights"] is None
        assert paper.input == smoked.input
        assert set(_differences(paper.train, smoked.train)) == {
            ("images_per_device",), ("schedule",), ("schedules", "smoke_2it")}
    train = section(PARAMS, "train", SMOKE)
    assert train["images_per_device"] == 1
    assert train["schedules"][train["schedule"]] == {"unit": "iteration", "length": 2}
    # one process: the global batch is one image (the paper: 2 x 8 GPUs)
    assert section(PARAMS, "resources", SMOKE)["train"]["gpus"] == 1
    assert set(PARAMS["profiles"][SMOKE]["datasets"].values()) == {"synthcrowd"}


@pytest.mark.parametrize("dataset", ["crowdhuman", "citypersons"])
def test_paper_smoke_images_give_a_paper_size_input_without_upscaling(dataset):
    scene = section(PARAMS, "synthcrowd", SMOKE)[dataset]
    inputs = section(PARAMS, "input", SMOKE)
    assert (inputs["min_size"], inputs["max_size"]) == (800, 1400)
    height, width = resized_size(scene["height"], scene["width"], min_size=800, max_size=1400)
    assert min(height, width) == 800 or max(height, width) == 1400
    assert height <= scene["height"] and width <= scene["width"]
    assert scene["train_images"] >= 2 and scene["val_images"] == 2


# ---------------------------------------------------------------------------- selection

def _experiment(model, dataset="crowdhuman", train=None) -> Experiment:
    return Experiment(name="e", profile="p", variant="v", dataset=dataset, model=model,
                      train=train or {}, input={}, seed=0)


def test_model_settings_count_numbers_by_presence_and_names_by_value():
    exp = _experiment({"backbone": {"name": "resnet", "depth": 101, "weights": None},
                       "anchors": {"scales": [1.0, 1.26], "kind": "box"},
                       "assigner": {"name": "lla", "topk": 10, "use_inbox": False},
                       "loss": {"regression_ranges": [[-1, 64], [64, float("inf")]], "isr": {}}},
                      train={"optimizer": {"name": "sgd", "momentum": 0.9}})
    assert smoke.model_settings(exp) == {
        (("dataset",), "crowdhuman"),
        (("model", "backbone", "name"), "resnet"),
        (("model", "backbone", "depth"), 101),          # a number that chooses code
        (("model", "backbone", "weights"), None),
        (("model", "anchors", "scales"), smoke.NUMBER),
        (("model", "anchors", "kind"), "box"),
        (("model", "assigner", "name"), "lla"),
        (("model", "assigner", "topk"), smoke.NUMBER),
        (("model", "assigner", "use_inbox"), False),
        (("model", "loss", "regression_ranges"), smoke.NUMBER),
        (("model", "loss", "isr"), "{}"),                # an empty block: by its value
        (("train", "optimizer", "name"), "sgd"),
        (("train", "optimizer", "momentum"), smoke.NUMBER),
    }


def test_distinct_experiments_cover_every_setting_greedily():
    params = copy.deepcopy(PARAMS)
    params["experiments"] = {
        "a": {"model": "retinanet", "dataset": "crowdhuman"},
        # only a number differs from a: covered by a
        "b": {"model": "retinanet", "dataset": "crowdhuman",
              "model_overrides": {"assigner": {"pos_iou_thr": 0.6}}},
        "c": {"model": "retinanet", "dataset": "citypersons"},
        "d": {"model": "retinanet", "dataset": "crowdhuman",
              "model_overrides": {"backbone": {"depth": 101}}},
        # a's settings plus a citypersons and a ResNet-101 one: alone it covers a, c and d
        "e": {"model": "retinanet", "dataset": "citypersons",
              "model_overrides": {"backbone": {"depth": 101}}},
    }
    # every run covers as many settings as any other at first: the first in file order wins
    # (a), then e brings both missing ones (dataset, depth)
    assert smoke.distinct_experiments(params, PAPER) == ["a", "e"]
    del params["experiments"]["e"]
    assert smoke.distinct_experiments(params, PAPER) == ["a", "c", "d"]


def test_the_paper_smoke_trains_every_depth_dataset_assigner_head_and_loss():
    names = smoke.distinct_experiments(PARAMS, SMOKE)
    chosen = [resolve_experiment(PARAMS, name, SMOKE) for name in names]
    every = [resolve_experiment(PARAMS, name, SMOKE) for name in PARAMS["experiments"]]
    covered = set().union(*(smoke.model_settings(exp) for exp in chosen))
    assert covered == set().union(*(smoke.model_settings(exp) for exp in every))

    def values(exps, *path):
        found = set()
        for exp in exps:
            node = exp.model
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            found.add(repr(node))
        return found

    assert {exp.dataset for exp in chosen} == {"crowdhuman", "citypersons"}
    for path in [("backbone", "depth"), ("assigner", "name"), ("assigner", "reg_cost"),
                 ("head", "box_output"), ("head", "aux"), ("head", "norm"), ("loss", "box"),
                 ("loss", "mode"), ("loss", "box_weighting"), ("anchors", "kind")]:
        assert values(chosen, *path) == values(every, *path), path
    # the K sweep (Table 4) is one code path: none of its K != 10 runs is trained
    assert not [name for name in names if re.fullmatch(r"lla_retinanet_star_a1_k\d+_r50", name)]
    assert len(names) < len(PARAMS["experiments"]) / 3


# ---------------------------------------------------------------------------- the driver

@pytest.fixture(scope="module")
def micro_workdir(tmp_path_factory):
    """A smoke work directory after one micro model (data prepared, run kept)."""
    return tmp_path_factory.mktemp("smoke") / "work"


def test_the_driver_trains_infers_and_evaluates_each_model(micro_workdir, capsys):
    code = smoke.main(["--profile", "micro", "--experiments", "lla_fcos_r50",
                       "--params", str(REPO / "params.yaml"), "--workdir", str(micro_workdir)])
    out = capsys.readouterr().out
    assert code == 0, out
    line = next(line for line in out.splitlines() if line.startswith("lla_fcos_r50 "))
    fields = line.split()
    assert fields[1:5] == ["crowdhuman", "lla_fcos", "tiny", "256x256"]
    assert float(fields[5]) > 0                                  # s/it from the training log
    assert fields[-2:] == ["GiB", "ok"] and float(fields[-3]) > 0.1   # peak RSS
    assert "1/1 models passed" in out and "load average" in out
    assert (micro_workdir / "results" / "micro" / "metrics" / "lla_fcos_r50.json").is_file()
    assert (micro_workdir / "runs" / "micro" / "lla_fcos_r50" / "model_final.pt").is_file()


def test_a_failing_step_is_reported_and_the_smoke_exits_1(micro_workdir, capsys):
    class FailingTraining(smoke.Smoke):
        def lla(self, *args):
            if args[0] == "train":
                return [sys.executable, "-c", "import sys; print('out of memory'); sys.exit(3)"]
            return super().lla(*args)

    runner = FailingTraining(REPO / "params.yaml", "micro", micro_workdir)   # data reused
    assert smoke.smoke(runner, ["lla_fcos_r50", "retinanet_r50"], total=2) == 1
    captured = capsys.readouterr()
    assert captured.out.count("FAILED: train (exit 3)") == 2     # the next model still runs
    assert "0/2 models passed" in captured.out
    assert "out of memory" in captured.err                       # the log's tail
    # the failed run's earlier outputs are gone: nothing half-done looks like a result
    assert not (micro_workdir / "runs" / "micro" / "lla_fcos_r50").exists()
    assert not (micro_workdir / "results" / "micro" / "metrics" / "lla_fcos_r50.json").exists()


def test_a_foreign_work_directory_is_refused(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("x")
    assert smoke.main(["--profile", "micro", "--experiments", "lla_fcos_r50",
                       "--params", str(REPO / "params.yaml"), "--workdir", str(tmp_path)]) == 2
    assert "not a smoke work directory" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


def test_unknown_experiments_and_downloaded_data_are_bad_input(tmp_path, capsys):
    assert smoke.main(["--experiments", "nope", "--params", str(REPO / "params.yaml")]) == 2
    assert "unknown experiment 'nope'" in capsys.readouterr().err
    runner = smoke.Smoke(REPO / "params.yaml", PAPER, tmp_path)
    with pytest.raises(DataError, match="runs on synthcrowd only"):
        runner.prepare_data(["crowdhuman"])


def test_list_prints_the_distinct_models_with_what_each_brings(capsys):
    assert smoke.main(["--list", "--params", str(REPO / "params.yaml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(line.split(":")[0] for line in lines) == sorted(
        smoke.distinct_experiments(PARAMS, SMOKE))
    assert next(line for line in lines if line.startswith("retinanet_r101:")) == (
        "retinanet_r101: 1 settings; model.backbone.depth=101")


# ---------------------------------------------------------------------------- the smoke

@pytest.mark.slow
def test_paper_smoke(tmp_path, capsys):
    """`make paper-smoke`: every distinct model at the paper's size (minutes)."""
    code = smoke.main(["--params", str(REPO / "params.yaml"), "--workdir", str(tmp_path / "w")])
    out = capsys.readouterr().out
    print(out)
    assert code == 0, out
    names = smoke.distinct_experiments(PARAMS, SMOKE)
    lines = {line.split()[0]: line for line in out.splitlines() if line.split()
             and line.split()[0] in names}
    assert set(lines) == set(names)
    for name, line in lines.items():
        exp = resolve_experiment(PARAMS, name, SMOKE)
        assert f"{exp.variant} R-{exp.model['backbone']['depth']}" in line and line.endswith(" ok")
        assert ("1371x800" if exp.dataset == "crowdhuman" else "1400x700") in line
    assert "R-101" in out and "citypersons" in out
