"""Training engine building blocks: lr schedule, optimizer groups, lr scaling, checkpoints,
RNG states, inference sharding, DVCLive history truncation, experiments, stop signals.
(The end-to-end runs -- resume, DDP, signals, NaN, infer -- are in test_engine_runs.py.)"""

from __future__ import annotations

import os
import random
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lla.config import load_params, validate_params
from lla.engine import checkpoint as ckpt
from lla.engine.experiment import resolve_experiment
from lla.engine.infer import coco_results, inference_batches, odgt_lines
from lla.engine.optim import build_optimizer, split_parameters
from lla.engine.progress import truncate_metric_history
from lla.engine.schedule import WarmupMultiStepLR, lr_factor, schedule_iterations
from lla.engine.signals import EXIT_REQUEUE, StopRequest
from lla.engine.train import named_schedule, resume_checkpoint, scaled_lr
from lla.errors import DataError

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- schedule

def test_lr_factor_warmup_and_steps_by_hand():
    kw = dict(warmup_iters=1000, warmup_factor=1e-3, milestones=[7504, 10318], gamma=0.1)
    # it 0: alpha 0 -> the warm-up factor itself
    assert lr_factor(0, **kw) == pytest.approx(1e-3)
    # it 500: alpha 0.5 -> 1e-3 * 0.5 + 0.5
    assert lr_factor(500, **kw) == pytest.approx(0.5005)
    # warm-up over, before the first milestone
    assert lr_factor(1000, **kw) == 1.0
    assert lr_factor(7503, **kw) == 1.0
    # milestones count once reached: the update after 7504 finished iterations uses 0.1
    assert lr_factor(7504, **kw) == pytest.approx(0.1)
    assert lr_factor(10317, **kw) == pytest.approx(0.1)
    assert lr_factor(10318, **kw) == pytest.approx(0.01)
    # a milestone inside the warm-up multiplies the warm-up factor
    assert lr_factor(5, warmup_iters=10, warmup_factor=0.5, milestones=[2], gamma=0.1) == \
        pytest.approx(0.1 * (0.5 * 0.5 + 0.5))
    with pytest.raises(ValueError):
        lr_factor(-1, **kw)


def test_named_schedules_in_iterations():
    params = load_params(REPO / "params.yaml")
    train = params["train"]["defaults"]
    # CrowdHuman train: 15,000 images / 16 per iteration -> 938 iterations per epoch;
    # 12 epochs = 11,256; "÷10 after epochs 8 and 11" = after 7,504 and 10,318 iterations.
    paper = schedule_iterations(train["schedules"]["paper_12ep"], 938)
    assert (paper.max_iter, paper.milestones, paper.gamma) == (11256, (7504, 10318), 0.1)
    # the released code counts iterations directly, whatever the epoch length
    code = schedule_iterations(train["schedules"]["official_code_28125"], 938)
    assert (code.max_iter, code.milestones) == (28125, (18750, 24375))
    assert named_schedule({"schedule": {"unit": "iteration", "length": 5}})["length"] == 5
    with pytest.raises(ValueError, match="not in train.schedules"):
        named_schedule({"schedule": "nope", "schedules": {"a": {}}})


@pytest.mark.parametrize("spec", [
    {"unit": "hour", "length": 1},
    {"unit": "epoch", "length": 0},
    {"unit": "epoch", "length": 12, "steps": [11, 8]},
    {"unit": "epoch", "length": 12, "steps": [13]},
])
def test_bad_schedules_are_rejected(spec):
    with pytest.raises(ValueError):
        schedule_iterations(spec, 10)


def _sgd(lr=0.1):
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)


def test_scheduler_follows_the_closed_form_and_resumes():
    kw = dict(milestones=[4, 6], gamma=0.1, warmup_iters=3, warmup_factor=0.01)
    opt = _sgd()
    sched = WarmupMultiStepLR(opt, **kw)
    seen = []
    for _ in range(8):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # it 0: 0.01; it 1: 0.01*(2/3) + 1/3 = 0.34; it 2: 0.01/3 + 2/3 = 0.67; it 3: 1;
    # it 4, 5: 0.1; it 6, 7: 0.01 -- times base lr 0.1
    expected = [0.001, 0.034, 0.067, 0.1, 0.01, 0.01, 0.001, 0.001]
    assert seen == pytest.approx(expected)
    # a fresh scheduler loaded from step 5 continues with the same values
    opt2 = _sgd()
    sched2 = WarmupMultiStepLR(opt2, **kw)
    opt_ref = _sgd()
    ref = WarmupMultiStepLR(opt_ref, **kw)
    for _ in range(5):
        opt_ref.step()
        ref.step()
    sched2.load_state_dict(ref.state_dict())
    opt2.load_state_dict(opt_ref.state_dict())
    assert opt2.param_groups[0]["lr"] == pytest.approx(expected[5])
    opt2.step()
    sched2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(expected[6])


# ---------------------------------------------------------------------------- optimizer

def test_parameter_groups_and_weight_decay():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8), nn.Conv2d(8, 8, 1, bias=False),
                          nn.BatchNorm2d(8), nn.Linear(8, 2))
    model[4].weight.requires_grad_(False)  # frozen: in no group
    groups = split_parameters(model)
    # default: conv0.weight, conv2.weight (linear weight frozen)
    # norm: gn.weight, gn.bias, bn.weight, bn.bias; bias: conv0.bias, linear.bias
    assert [p.shape for p in groups["default"]] == [(8, 3, 3, 3), (8, 8, 1, 1)]
    assert len(groups["norm"]) == 4
    assert [p.shape for p in groups["bias"]] == [(8,), (2,)]
    cfg = {"name": "sgd", "momentum": 0.9, "weight_decay": 1e-4, "norm_weight_decay": 0.0,
           "bias_weight_decay": 0.0}
    opt = build_optimizer(model, cfg, lr=0.02)
    decay = {g["group"]: (g["weight_decay"], len(g["params"]), g["lr"], g["momentum"])
             for g in opt.param_groups}
    assert decay == {"default": (1e-4, 2, 0.02, 0.9), "norm": (0.0, 4, 0.02, 0.9),
                     "bias": (0.0, 2, 0.02, 0.9)}
    adamw = build_optimizer(model, dict(cfg, name="adamw"), lr=1e-3)
    assert isinstance(adamw, torch.optim.AdamW)
    assert [g["weight_decay"] for g in adamw.param_groups] == [1e-4, 0.0, 0.0]
    with pytest.raises(ValueError, match="optimizer.name"):
        build_optimizer(model, dict(cfg, name="lion"), lr=0.1)


def test_detector_norm_params_get_no_decay():
    from lla.models.build import build_detector

    model = build_detector(load_params(REPO / "params.yaml"), "lla_fcos", "micro")
    groups = split_parameters(model)
    n_norm = sum(isinstance(m, nn.GroupNorm) for m in model.modules()) * 2
    assert len(groups["norm"]) == n_norm > 0
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert sum(len(g) for g in groups.values()) == len(trainable)


def test_linear_lr_scaling_rule():
    cfg = {"base_lr": 0.01, "reference_batch": 16, "lr_scaling": "linear"}
    assert scaled_lr(cfg, 16) == pytest.approx(0.01)     # the paper: 2 x 8
    assert scaled_lr(cfg, 4) == pytest.approx(0.0025)    # 2 x 2 -> a quarter
    assert scaled_lr(dict(cfg, lr_scaling="none"), 4) == 0.01
    with pytest.raises(ValueError, match="lr_scaling"):
        scaled_lr(dict(cfg, lr_scaling="sqrt"), 4)


# ---------------------------------------------------------------------------- checkpoints

def test_checkpoint_discovery_pruning_and_resume_choice(tmp_path):
    for it in (2, 4, 6, 8, 10):
        ckpt.save_checkpoint(ckpt.checkpoint_path(tmp_path, it),
                             {"format": ckpt.CHECKPOINT_FORMAT, "model": {}, "config": {}})
    (tmp_path / ckpt.CHECKPOINT_DIR / "notes.txt").write_text("not a checkpoint")
    (tmp_path / ckpt.CHECKPOINT_DIR / "iter_12.pt").write_text("too few digits: ignored")
    assert [it for it, _ in ckpt.list_checkpoints(tmp_path)] == [2, 4, 6, 8, 10]
    assert ckpt.latest_checkpoint(tmp_path).name == "iter_0000010.pt"
    # keep the 2 newest (8, 10) and the listed iteration 4
    deleted = ckpt.prune_checkpoints(tmp_path, keep_last=2, keep_iterations=[4, 99])
    assert sorted(p.name for p in deleted) == ["iter_0000002.pt", "iter_0000006.pt"]
    assert [it for it, _ in ckpt.list_checkpoints(tmp_path)] == [4, 8, 10]
    # --resume: auto -> newest; a path -> that path; never -> refused with checkpoints present
    assert resume_checkpoint(tmp_path, "auto").name == "iter_0000010.pt"
    assert resume_checkpoint(tmp_path, "x.pt") == Path("x.pt")
    with pytest.raises(DataError, match="--resume never"):
        resume_checkpoint(tmp_path, "never")
    assert resume_checkpoint(tmp_path / "fresh", "never") is None
    assert resume_checkpoint(tmp_path / "fresh", "auto") is None
    assert ckpt.list_checkpoints(tmp_path / "fresh") == []


def test_load_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="checkpoint not found") as e:
        ckpt.load_checkpoint(tmp_path / "missing.pt")
    assert "missing.pt" in str(e.value)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a zip file")
    with pytest.raises(DataError, match="cannot read the checkpoint: not a file written by "
                                        "torch.save") as e:
        ckpt.load_checkpoint(garbage)
    assert "garbage.pt" in str(e.value) and "\n" not in str(e.value)
    damaged = tmp_path / "damaged.pt"
    torch.save({"model": {"w": torch.zeros(100)}}, damaged)
    data = damaged.read_bytes()
    damaged.write_bytes(data[:100] + bytes(300) + data[400:])  # a zip, its records broken
    with pytest.raises(DataError, match="cannot read the checkpoint: .*corrupted") as e:
        ckpt.load_checkpoint(damaged)
    assert "damaged.pt" in str(e.value) and "\n" not in str(e.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(DataError, match="not an lla checkpoint"):
        ckpt.load_checkpoint(foreign)
    old = tmp_path / "old.pt"
    torch.save({"format": 0, "model": {}, "config": {}}, old)
    with pytest.raises(DataError, match="format 0"):
        ckpt.load_checkpoint(old)


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.normal()  # leaves a cached gaussian in the numpy state
    path = ckpt.save_checkpoint(tmp_path / "c.pt", {"format": ckpt.CHECKPOINT_FORMAT, "model": {},
                                                   "config": {}, "rng": [ckpt.rng_state()]})
    first = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    ckpt.set_rng_state(ckpt.load_checkpoint(path)["rng"][0])  # weights_only load
    again = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    assert first[:3] == again[:3]
    assert torch.equal(first[3], again[3])


# ---------------------------------------------------------------------------- inference I/O

def test_inference_batches_cover_every_image_once():
    groups = [0, 1, 0, 0, 1]  # images 0, 2, 3 portrait; 1, 4 landscape
    assert inference_batches(groups, 2) == [[0, 2], [3], [1, 4]]
    rank0 = inference_batches(groups, 2, rank=0, world_size=2)
    rank1 = inference_batches(groups, 2, rank=1, world_size=2)
    assert (rank0, rank1) == ([[0, 2], [1, 4]], [[3]])
    # more ranks than batches: the extra rank gets nothing
    assert inference_batches([0], 4, rank=1, world_size=2) == []
    with pytest.raises(ValueError):
        inference_batches(groups, 0)


def test_coco_and_odgt_records():
    det = {"index": 0, "image_id": 7,
           "boxes": np.array([[1.0, 2.0, 3.25, 4.5], [0.0, 0.0, 10.0, 10.0]], np.float32),
           "scores": np.array([0.9, 0.25], np.float32), "labels": np.array([0, 0])}
    empty = {"index": 1, "image_id": 8, "boxes": np.zeros((0, 4), np.float32),
             "scores": np.zeros(0, np.float32), "labels": np.zeros(0, np.int64)}
    assert coco_results([det, empty]) == [
        {"image_id": 7, "category_id": 1, "bbox": [1.0, 2.0, 3.25, 4.5], "score": 0.9},
        {"image_id": 7, "category_id": 1, "bbox": [0.0, 0.0, 10.0, 10.0], "score": 0.25}]
    images = {7: {"id": 7, "record_id": "a,b", "width": 64, "height": 32},
              8: {"id": 8, "record_id": "c", "width": 5, "height": 6}}
    lines = odgt_lines([det, empty], images, {1: "person"})
    import json
    assert json.loads(lines[0]) == {"ID": "a,b", "width": 64, "height": 32, "dtboxes": [
        {"box": [1.0, 2.0, 3.25, 4.5], "score": 0.9, "tag": "person"},
        {"box": [0.0, 0.0, 10.0, 10.0], "score": 0.25, "tag": "person"}]}
    assert json.loads(lines[1]) == {"ID": "c", "width": 5, "height": 6, "dtboxes": []}


# ---------------------------------------------------------------------------- DVCLive history

def test_truncate_metric_history(tmp_path):
    folder = tmp_path / "plots" / "metrics" / "train"
    folder.mkdir(parents=True)
    (folder / "loss.tsv").write_text("step\tloss\n1\t0.5\n2\t0.4\n3\t0.3\n4\t0.2\n")
    (folder / "lr.tsv").write_text("timestamp\tstep\tlr\n100\t1\t0.1\n101\t2\t0.2\n")
    (folder / "empty.tsv").write_text("")
    # resuming from the checkpoint of iteration 2: rows 3 and 4 of loss go, lr is untouched
    assert truncate_metric_history(tmp_path / "plots", 2) == 2
    assert (folder / "loss.tsv").read_text().splitlines() == ["step\tloss", "1\t0.5", "2\t0.4"]
    assert (folder / "lr.tsv").read_text().splitlines()[-1] == "101\t2\t0.2"


# ---------------------------------------------------------------------------- experiments

def test_resolve_experiment_with_overrides():
    params = load_params(REPO / "params.yaml")
    params["experiments"]["probe"] = {
        "model": "lla_fcos", "dataset": "citypersons", "seed": 5,
        "model_overrides": {"backbone": {"depth": 101}}, "train": {"images_per_device": 1}}
    exp = resolve_experiment(params, "probe", "paper")
    assert exp.model["backbone"]["depth"] == 101
    assert exp.model["assigner"]["name"] == "lla"           # the variant's own settings stay
    assert exp.train["images_per_device"] == 1
    assert exp.train["optimizer"]["momentum"] == 0.9        # defaults still merged
    assert exp.seed == exp.train["seed"] == 5
    assert exp.split_json(params, "val").as_posix().endswith("citypersons/converted/val.json")
    table1 = resolve_experiment(params, "lla_retinanet_star_a1_r101", "paper")
    assert table1.model["backbone"]["depth"] == 101 and table1.dataset == "crowdhuman"
    # the paper profile: the paper's recipe
    assert table1.train["schedule"] == "paper_12ep" and table1.train["base_lr"] == 0.01
    assert resolve_experiment(params, "lla_fcos_r50", "official_code").train["schedule"] == \
        "official_code_28125"


@pytest.mark.parametrize("spec, where, message", [
    ({"model": "lla_fcos"}, "", "missing key 'dataset'"),
    ({"model": "lla_fcos", "dataset": "kitti"}, ".dataset", "must be one of crowdhuman, citypersons"),
    ({"model": "lla_fcos", "dataset": "crowdhuman", "lr": 1}, ".lr", "unknown key"),
    ({"model": "nope", "dataset": "crowdhuman"}, ".model", "unknown variant 'nope'"),
])
def test_bad_experiments_are_reported(spec, where, message):
    # when params are loaded (lla.config.validate_params), before anything is resolved
    params = load_params(REPO / "params.yaml")
    params["experiments"]["bad"] = spec
    with pytest.raises(DataError, match=re.escape(f"[experiments.bad{where}]: {message}")):
        validate_params(params)
    with pytest.raises(DataError, match="unknown experiment 'absent'"):
        resolve_experiment(params, "absent", "mini")


# ---------------------------------------------------------------------------- signals

def test_stop_request_records_the_signal_and_restores_handlers():
    before = signal.getsignal(signal.SIGUSR1)
    with StopRequest() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGTERM)   # the first signal is the one reported
        assert stop.requested and stop.signal_name == "SIGUSR1"
    assert signal.getsignal(signal.SIGUSR1) is before
    assert EXIT_REQUEUE == 75


def test_cli_registers_train_and_infer():
    from lla.cli import build_parser

    parser = build_parser(["train"])
    args = parser.parse_args(["train", "--experiment", "x", "--resume", "never"])
    assert args.resume == "never" and args.func == "lla.engine.train:run"
    args = build_parser(["infer"]).parse_args(["infer", "--checkpoint", "c.pt", "--out", "d.json"])
    assert args.split == "val" and args.func == "lla.engine.infer:run"
