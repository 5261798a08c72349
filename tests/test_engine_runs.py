"""`lla train` / `lla infer` end to end on the micro profile (CPU, seconds per run).

- resume: a run stopped at iteration k and resumed (also from an older checkpoint, which
  re-does logged iterations) ends with weights bit-identical to an uninterrupted run;
- DDP: 2 gloo processes x 2 images give the losses and weights of 1 process x 4 images;
- signal: SIGTERM to a training process -> exit 75, a checkpoint and preempted.json;
  a resumed run finishes;
- NaN: a non-finite loss term stops the run naming the iteration and the term, after
  saving the last good state (bit-identical to a clean run's checkpoint);
- infer: the COCO results json and the odgt carry the detections of the model in
  original-image pixels, in dataset order, and 2 processes write the same file as 1.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lla.cli import main as cli
from lla.engine import checkpoint as ckpt
from lla.engine.signals import EXIT_REQUEUE

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = "lla_fcos_r50"
ITERATIONS = 10          # 16 training images / 2 per batch = 8 per epoch: crosses an epoch


def write_params(path: Path, data_root: Path, **train_overrides) -> Path:
    """The repository's params with the data under ``data_root`` and a test schedule."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data_root"] = str(data_root)
    micro = params["train"]["micro"]
    micro.update({"images_per_device": 2, "reference_batch": 2, "base_lr": 0.01,
                  "warmup": {"iterations": 2, "factor": 0.01},
                  "schedule": {"unit": "iteration", "length": ITERATIONS, "steps": [7],
                               "gamma": 0.1},
                  "checkpoint_every": 2, "keep_last": 2, "keep_checkpoints": [], "print_every": 1,
                  "num_workers": 0})
    micro.update(train_overrides)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """synthcrowd micro (16 train, 8 val images of 256 px), converted."""
    root = tmp_path_factory.mktemp("data")
    ch = root / "synthcrowd" / "micro" / "crowdhuman"
    assert cli(["data", "synth", "--profile", "micro", "--out-dir", str(ch.parent),
                "--only", "crowdhuman", "--workers", "1", "--params", str(REPO / "params.yaml")]) == 0
    assert cli(["data", "convert", "crowdhuman", "--root", str(ch),
                "--out-dir", str(ch / "converted")]) == 0
    return root


@pytest.fixture(scope="module")
def params_file(data_root, tmp_path_factory) -> Path:
    return write_params(tmp_path_factory.mktemp("params") / "params.yaml", data_root)


def train(params: Path, out: Path, *extra: str) -> int:
    return cli(["train", "--experiment", EXPERIMENT, "--profile", "micro", "--params", str(params),
                "--out-dir", str(out), "--device", "cpu", *extra])


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def metric_rows(out: Path, name: str) -> list[tuple[int, float]]:
    with open(out / "dvclive" / "plots" / "metrics" / "train" / f"{name}.tsv") as f:
        return [(int(r["step"]), float(r[name])) for r in csv.DictReader(f, delimiter="\t")]


@pytest.fixture(scope="module")
def reference_run(params_file, tmp_path_factory) -> Path:
    """An uninterrupted micro run, started inside a git repository without DVC."""
    work = tmp_path_factory.mktemp("gitrepo")
    if shutil.which("git"):
        subprocess.run(["git", "init", "-q", str(work)], check=True)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        assert train(params_file, work / "full", "--resume", "never") == 0
    finally:
        os.chdir(cwd)
    # DVCLive must not have turned the user's git repository into a DVC repository
    assert not (work / ".dvc").exists()
    return work / "full"


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


# ---------------------------------------------------------------------------- resume

def test_resumed_run_is_bit_identical(reference_run, params_file, tmp_path):
    full = reference_run
    final = torch.load(full / "model_final.pt", weights_only=True)
    assert final["iteration"] == ITERATIONS and final["config"]["variant"] == "lla_fcos"
    # kept: the last two periodic checkpoints (8 and 10)
    assert [it for it, _ in ckpt.list_checkpoints(full)] == [8, 10]
    steps = [s for s, _ in metric_rows(full, "lr")]
    assert steps == list(range(1, ITERATIONS + 1))

    out = tmp_path / "interrupted"
    assert train(params_file, out, "--stop-after", "5") == 0      # "killed" after iteration 5
    assert not (out / "model_final.pt").exists()
    assert ckpt.latest_checkpoint(out).name == "iter_0000005.pt"
    # resume from the OLDER checkpoint 4: iteration 5 is trained (and logged) again;
    # the run then crosses the epoch boundary at iteration 8
    assert train(params_file, out, "--resume", str(ckpt.checkpoint_path(out, 4))) == 0
    assert_same_weights(weights(full / "model_final.pt"), weights(out / "model_final.pt"))
    # the resumed DVCLive history has one row per iteration, equal to the uninterrupted one
    for name in ("loss", "loss_cls", "loss_box", "lr"):
        assert metric_rows(out, name) == metric_rows(full, name)
    # the optimizer state (momentum buffers) matches too
    a = torch.load(ckpt.checkpoint_path(full, ITERATIONS), weights_only=True)
    b = torch.load(ckpt.checkpoint_path(out, ITERATIONS), weights_only=True)
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert a["sampler"]["epoch"] == b["sampler"]["epoch"] == 1
    assert a["sampler"]["position"] == b["sampler"]["position"] == 2
    # --resume auto on a finished run trains nothing more
    assert train(params_file, out) == 0
    assert torch.load(out / "model_final.pt", weights_only=True)["iteration"] == ITERATIONS


def test_resume_from_a_given_checkpoint_refuses_a_different_model(reference_run, params_file,
                                                                   tmp_path, capsys):
    out = tmp_path / "other"
    shutil.copytree(reference_run / "checkpoints", out / "checkpoints")
    code = cli(["train", "--experiment", "retinanet_r50", "--profile", "micro", "--params",
                str(params_file), "--out-dir", str(out), "--device", "cpu",
                "--resume", str(ckpt.checkpoint_path(out, ITERATIONS))])
    assert code == 2
    err = capsys.readouterr().err
    assert "iter_0000010.pt" in err and "checkpoint of a different model" in err


def test_auto_resume_after_a_settings_change_starts_afresh(reference_run, data_root, tmp_path):
    # The pipeline reruns a training job when its experiment changes: the old checkpoints
    # (lr 0.01) must not be resumed under the new settings (lr 0.02); they are set aside.
    out = tmp_path / "changed"
    shutil.copytree(reference_run / "checkpoints", out / "checkpoints")
    changed = write_params(tmp_path / "params.yaml", data_root, base_lr=0.02)
    assert train(changed, out) == 0
    assert sorted(p.name for p in (out / "checkpoints.superseded").iterdir()) == [
        "iter_0000008.pt", "iter_0000010.pt"]
    final = torch.load(out / "model_final.pt", weights_only=True)
    assert final["iteration"] == ITERATIONS and final["config"]["train"]["base_lr"] == 0.02
    assert final["config"]["variant"] == "lla_fcos"
    reference = weights(reference_run / "model_final.pt")
    assert any(not torch.equal(reference[k], v) for k, v in final["model"].items())


def test_data_option_overrides_the_params_data_root(data_root, tmp_path):
    # params point at an empty data root; --data names the training json directly
    params = write_params(tmp_path / "params.yaml", tmp_path / "nowhere")
    train_json = data_root / "synthcrowd" / "micro" / "crowdhuman" / "converted" / "train.json"
    assert train(params, tmp_path / "run", "--data", str(train_json), "--stop-after", "1") == 0
    assert ckpt.latest_checkpoint(tmp_path / "run").name == "iter_0000001.pt"


def test_auto_resume_ignores_bookkeeping_settings():
    from lla.engine.train import changed_settings

    saved = {"model": {"a": 1}, "dataset": "crowdhuman", "input": {}, "seed": 0,
             "train": {"base_lr": 0.01, "print_every": 20, "checkpoint_every": 100}}
    same_result = {**saved, "train": {"base_lr": 0.01, "print_every": 1, "checkpoint_every": 5}}
    assert changed_settings(saved, same_result) == []
    other = {**saved, "seed": 1, "train": {"base_lr": 0.02, "print_every": 20}}
    # checkpoint_every is missing from `other`, but it is bookkeeping: not a change
    assert changed_settings(saved, other) == ["seed", "train.base_lr"]


# ---------------------------------------------------------------------------- NaN

def test_non_finite_loss_stops_after_saving_the_last_good_state(reference_run, params_file,
                                                                tmp_path, monkeypatch, capsys):
    from lla.models.detector import DenseDetector

    original = DenseDetector.compute_losses
    calls = {"n": 0}

    def nan_on_fourth_call(self, *args, **kwargs):
        losses = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 4:
            losses["loss_box"] = losses["loss_box"] * float("nan")
        return losses

    monkeypatch.setattr(DenseDetector, "compute_losses", nan_on_fourth_call)
    out = tmp_path / "nan"
    assert train(params_file, out) == 1
    err = capsys.readouterr().err
    assert "non-finite loss at iteration 4: loss_box" in err
    assert "after iteration 3" in err and "iter_0000003.pt" in err
    # 2 was the last periodic checkpoint; 3 is the state before the bad step, saved now
    assert [it for it, _ in ckpt.list_checkpoints(out)] == [2, 3]
    assert not (out / "model_final.pt").exists()
    state = torch.load(ckpt.checkpoint_path(out, 3), weights_only=True)
    assert state["iteration"] == 3 and state["sampler"]["position"] == 3
    # the saved weights are those of a clean run after 3 iterations (no NaN anywhere)
    monkeypatch.setattr(DenseDetector, "compute_losses", original)
    clean = tmp_path / "clean"
    assert train(params_file, clean, "--stop-after", "3") == 0
    assert_same_weights(state["model"], weights(ckpt.checkpoint_path(clean, 3)))


def test_a_recorded_divergence_flows_to_a_dash_in_the_tables(reference_run, params_file, data_root,
                                                             tmp_path, monkeypatch, capsys):
    # --on-diverge record (what the pipeline passes): exit 0, model_final.pt holds the last
    # good weights marked "diverged", the detections file records it, and the evaluator,
    # AAR, the visible-box statistic and `lla infer` pass it on; a table shows "—".
    from lla.models.detector import DenseDetector
    from lla.report import tables

    original = DenseDetector.compute_losses

    def nan_from_the_fourth_call(self, *args, **kwargs):
        losses = original(self, *args, **kwargs)
        nan_from_the_fourth_call.calls += 1
        if nan_from_the_fourth_call.calls >= 4:
            losses["loss_cls"] = losses["loss_cls"] * float("inf")
        return losses

    nan_from_the_fourth_call.calls = 0
    monkeypatch.setattr(DenseDetector, "compute_losses", nan_from_the_fourth_call)
    out, dets = tmp_path / "run", tmp_path / "dets.json"
    val = data_root / "synthcrowd" / "micro" / "crowdhuman" / "converted" / "val.json"
    assert train(params_file, out, "--on-diverge", "record", "--infer-out", str(dets),
                 "--infer-data", str(val)) == 0
    assert "non-finite loss at iteration 4: loss_cls" in capsys.readouterr().err
    final = torch.load(out / "model_final.pt", weights_only=True)
    assert final["diverged"] == {"iteration": 4, "terms": ["loss_cls"]} and final["iteration"] == 3
    assert_same_weights(final["model"], weights(ckpt.checkpoint_path(out, 3)))
    assert json.loads(dets.read_text()) == {"diverged": {"iteration": 4, "terms": ["loss_cls"]}}

    metrics = tmp_path / "metrics" / "run.json"
    assert cli(["eval", "crowdhuman", "--gt", str(val), "--dt", str(dets), "--out", str(metrics),
                "--no-coco", "--no-ji"]) == 0
    assert json.loads(metrics.read_text())["diverged"] is True
    aar = tmp_path / "analysis" / "aar_run.json"
    visible = tmp_path / "visible.json"
    for command, target in ((["analyze", "aar"], aar), (["analyze", "visible"], visible)):
        assert cli([*command, "--checkpoint", str(out / "model_final.pt"), "--profile", "micro",
                    "--params", str(params_file), "--out", str(target)]) == 0
        result = json.loads(target.read_text())
        assert result["diverged"] is True and result["iteration"] == 4
    again = tmp_path / "again.json"
    assert cli(["infer", "--checkpoint", str(out / "model_final.pt"), "--data", str(val),
                "--profile", "micro", "--params", str(params_file), "--out", str(again),
                "--device", "cpu"]) == 0
    assert json.loads(again.read_text()) == json.loads(dets.read_text())
    spec = {"title": "T", "dataset": "crowdhuman", "source": "metrics", "columns": {"MR": "MR"},
            "rows": {"r": {"label": "R", "experiment": "run"}}}
    cells = tables.table_frame(spec, "t", tmp_path, {})
    assert cells["reproduced_status"].tolist() == ["diverged"]
    assert re.search(r"\| R +\| +— \|", tables.render_markdown(spec, cells, profile="micro",
                                                                data_source="synthcrowd"))


# ---------------------------------------------------------------------------- signal

def test_sigterm_saves_and_exits_with_the_requeue_code(data_root, tmp_path):
    # a schedule long enough that the signal arrives mid-run
    params = write_params(tmp_path / "params.yaml", data_root,
                          schedule={"unit": "iteration", "length": 40, "steps": [30]},
                          checkpoint_every=1000)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "lla.cli", "train", "--experiment", EXPERIMENT,
               "--profile", "micro", "--params", str(params), "--out-dir", str(out), "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    log = []
    for line in proc.stderr:
        log.append(line)
        if "iter 1/40" in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest, _ = proc.communicate(timeout=120)
    log.append(rest)
    assert proc.returncode == EXIT_REQUEUE, "".join(log)
    marker = json.loads((out / "preempted.json").read_text())
    assert marker["signal"] == "SIGTERM" and 1 <= marker["iteration"] < 40
    assert ckpt.latest_checkpoint(out) == ckpt.checkpoint_path(out, marker["iteration"])
    assert not (out / "model_final.pt").exists()
    # the requeued job resumes (auto) and finishes; the marker goes away
    assert train(params, out) == 0
    assert torch.load(out / "model_final.pt", weights_only=True)["iteration"] == 40
    assert not (out / "preempted.json").exists()
    assert [s for s, _ in metric_rows(out, "loss")] == list(range(1, 41))


# ---------------------------------------------------------------------------- DDP

def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={nproc}", "-m", "lla.cli", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def _rank_main(rank: int, world_size: int, port: int, argv: list[str]) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    sys.exit(cli(argv))


def forked_process_group(argv: list[str], nproc: int) -> list[int]:
    """Run ``lla argv`` on ``nproc`` forked ranks (the torchrun environment without the
    launcher; forking skips the imports); returns the exit codes."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_rank_main, args=(rank, nproc, port, argv)) for rank in range(nproc)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    return [p.exitcode for p in procs]


def test_two_process_ddp_matches_one_process_with_the_same_global_batch(data_root, tmp_path):
    # 2 processes x 2 images vs 1 process x 4 images: the same images per iteration (one
    # aspect group, the sampler shards a shuffled order of batches of 2), lr 0.01 x 4 / 4
    schedule = {"unit": "iteration", "length": 4, "steps": [3], "gamma": 0.1}
    one = write_params(tmp_path / "one.yaml", data_root, images_per_device=4, reference_batch=4,
                       schedule=schedule)
    two = write_params(tmp_path / "two.yaml", data_root, images_per_device=2, reference_batch=4,
                       schedule=schedule)
    assert train(one, tmp_path / "one") == 0
    result = torchrun("train", "--experiment", EXPERIMENT, "--profile", "micro", "--params",
                      str(two), "--out-dir", str(tmp_path / "two"), "--device", "cpu")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 x 2 images per iteration" in result.stderr
    for name in ("loss", "loss_cls", "loss_box"):
        rows_one, rows_two = metric_rows(tmp_path / "one", name), metric_rows(tmp_path / "two", name)
        assert [s for s, _ in rows_one] == [s for s, _ in rows_two] == [1, 2, 3, 4]
        assert [v for _, v in rows_two] == pytest.approx([v for _, v in rows_one], rel=1e-4)
    w1, w2 = weights(tmp_path / "one" / "model_final.pt"), weights(tmp_path / "two" / "model_final.pt")
    for key in w1:
        torch.testing.assert_close(w2[key], w1[key], rtol=1e-4, atol=1e-5, msg=key)
    # and the weights did move: the comparison is not between two untouched models
    init = torch.load(ckpt.checkpoint_path(tmp_path / "one", 2), weights_only=True)["model"]
    assert any(not torch.equal(init[k], w1[k]) for k in w1)

    # inference on 2 processes writes exactly the 1-process file
    model = tmp_path / "one" / "model_final.pt"
    low = tmp_path / "low_threshold.pt"
    state = torch.load(model, weights_only=True)
    state["config"]["model"]["inference"]["score_thresh"] = 0.0
    torch.save(state, low)
    val = data_root / "synthcrowd" / "micro" / "crowdhuman" / "converted" / "val.json"
    infer = ["infer", "--checkpoint", str(low), "--data", str(val), "--device", "cpu",
             "--images-per-device", "2", "--out"]
    assert cli(infer + [str(tmp_path / "one.json")]) == 0
    assert forked_process_group(infer + [str(tmp_path / "two.json")], nproc=2) == [0, 0]
    assert (tmp_path / "two.json").read_text() == (tmp_path / "one.json").read_text()


# ---------------------------------------------------------------------------- infer

def test_infer_writes_coco_results_and_odgt_in_original_pixels(reference_run, data_root, tmp_path):
    from lla.data.dataset import CrowdDataset
    from lla.engine.experiment import Experiment
    from lla.engine.model import build_model

    # an early model scores below the 0.05 threshold: lower it to get detections to check
    state = torch.load(reference_run / "model_final.pt", weights_only=True)
    state["config"]["model"]["inference"]["score_thresh"] = 0.0
    state["config"]["model"]["inference"]["detections_per_image"] = 50
    low = tmp_path / "low_threshold.pt"
    torch.save(state, low)
    val = data_root / "synthcrowd" / "micro" / "crowdhuman" / "converted" / "val.json"
    # run the mini profile, set to 384 px, on the 256 px images: boxes must come back x 2/3
    mini_params = tmp_path / "params.yaml"
    write_params(mini_params, data_root)
    params = yaml.safe_load(mini_params.read_text())
    params["input"]["mini"] = {"min_size": 384, "max_size": 384}
    mini_params.write_text(yaml.safe_dump(params, sort_keys=False))
    dets, odgt = tmp_path / "dets.json", tmp_path / "dets.odgt"
    assert cli(["infer", "--checkpoint", str(low), "--data", str(val), "--profile", "mini",
                "--params", str(mini_params), "--out", str(dets), "--odgt-out", str(odgt),
                "--device", "cpu", "--images-per-device", "3"]) == 0

    gt = json.loads(val.read_text())
    results = json.loads(dets.read_text())
    image_order = [image["id"] for image in gt["images"]]
    per_image: dict[int, list[dict]] = {}
    for r in results:
        assert set(r) == {"image_id", "category_id", "bbox", "score"}
        assert r["category_id"] == 1
        per_image.setdefault(r["image_id"], []).append(r)
    # dataset order, every image with detections (threshold 0), at most 50 each, sorted
    assert list(per_image) == image_order
    for image in gt["images"]:
        rows = per_image[image["id"]]
        assert 0 < len(rows) <= 50
        scores = [r["score"] for r in rows]
        assert scores == sorted(scores, reverse=True)
        for r in rows:
            x, y, w, h = r["bbox"]
            assert w >= 0 and h >= 0
            assert x >= 0 and y >= 0 and x + w <= image["width"] + 0.011
            assert y + h <= image["height"] + 0.011

    # the detections are the model's, mapped back from 384 to 256 px
    exp = Experiment.from_dict(state["config"])
    model = build_model(exp)
    model.load_state_dict(state["model"])
    model.eval()
    mini_input = dict(exp.input, min_size=384, max_size=384)
    dataset = CrowdDataset.from_config(val, mini_input, train=False)
    image, target = dataset[0]
    assert image.shape[-1] == 384
    out = model([image], original_sizes=[target["orig_size"].tolist()],
                scales=[target["scale"].tolist()])[0]
    expected = [[round(v, 2) for v in (x1, y1, x2 - x1, y2 - y1)]
                for x1, y1, x2, y2 in out["boxes"].tolist()]
    got = [r["bbox"] for r in per_image[image_order[0]]]
    assert len(got) == len(expected)
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected), atol=0.011, rtol=0)

    # the odgt: one line per image, the same boxes, with ID / width / height
    lines = [json.loads(line) for line in odgt.read_text().splitlines()]
    assert [line["ID"] for line in lines] == [image["record_id"] for image in gt["images"]]
    for line, image in zip(lines, gt["images"]):
        assert (line["width"], line["height"]) == (image["width"], image["height"])
        assert [b["box"] for b in line["dtboxes"]] == [r["bbox"] for r in per_image[image["id"]]]
        assert [b["score"] for b in line["dtboxes"]] == [r["score"] for r in per_image[image["id"]]]
        assert {b["tag"] for b in line["dtboxes"]} == {"person"}

    # both files are accepted by the CrowdHuman evaluator
    for dt in (dets, odgt):
        assert cli(["eval", "crowdhuman", "--gt", str(val), "--dt", str(dt), "--no-ji",
                    "--no-coco"]) == 0


def test_train_with_infer_out_writes_what_lla_infer_writes(reference_run, params_file, data_root,
                                                          tmp_path):
    # A finished run (a copy of the reference run): `lla train --infer-out` resumes at the
    # end, trains nothing and runs inference in the same process; the detections equal a
    # separate `lla infer` of the final model.
    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    val = data_root / "synthcrowd" / "micro" / "crowdhuman" / "converted" / "val.json"
    in_process, separate = tmp_path / "in_process.json", tmp_path / "separate.json"
    assert train(params_file, run, "--infer-out", str(in_process), "--infer-data", str(val)) == 0
    assert_same_weights(weights(run / "model_final.pt"), weights(reference_run / "model_final.pt"))
    assert cli(["infer", "--checkpoint", str(run / "model_final.pt"), "--data", str(val),
                "--profile", "micro", "--params", str(params_file), "--out", str(separate),
                "--device", "cpu"]) == 0
    assert json.loads(in_process.read_text()) == json.loads(separate.read_text())
    # stopped early (--stop-after): no final model, so no detections either
    partial, dets = tmp_path / "partial", tmp_path / "partial.json"
    assert train(params_file, partial, "--stop-after", "2", "--infer-out", str(dets)) == 0
    assert not dets.exists() and not (partial / "model_final.pt").exists()


def test_infer_rejects_a_bad_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_text("nope")
    assert cli(["infer", "--checkpoint", str(bad), "--out", str(tmp_path / "d.json"),
                "--device", "cpu"]) == 2
    assert "bad.pt" in capsys.readouterr().err


def test_bad_training_settings_name_the_params_file(data_root, tmp_path, capsys):
    params = write_params(tmp_path / "params.yaml", data_root, schedule="no_such_schedule")
    assert train(params, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {params}:") and err.count("\n") == 1
    assert "[train.micro.schedule]: unknown schedule 'no_such_schedule' in profile 'micro'" in err
