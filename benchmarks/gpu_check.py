"""The GPU check: one table of what the paper's training needs from a GPU machine.

    .venv/bin/python benchmarks/gpu_check.py                           # on a GPU machine
    .venv/bin/python benchmarks/gpu_check.py --device cpu --iterations 2   # the same path on a CPU

Runs after the README's setup with no network: the data is synthcrowd in the CrowdHuman
layout (the ``paper_smoke`` profile's images: 1536 x 896, 800 x 1371 after the paper's
resize), generated and converted by the pipeline's commands into a work directory; the
backbone weights are random. The models are the paper profile's ResNet-50 FCOS (no
centerness) and LLA.FCOS with the paper's batch of 2 images per GPU and its AMP setting
(float16 with a GradScaler on CUDA; float32 on the CPU).

The table:

* training step of FCOS and LLA.FCOS (median of the timed iterations; the first
  ``iterations // 5`` (at least 1) are warm-up): the engine's own step (forward, assignment,
  loss, the per-iteration all-reduce and finite check, backward, SGD, lr schedule) on
  batches of the real data loader, CUDA synchronised after each;
* the LLA step overhead versus FCOS (goal: at most +5 %);
* the assignment's share of the step: the time inside ``DenseDetector.assign`` (CUDA
  synchronised on entry and exit) over the step time;
* peak GPU memory per image (``torch.cuda.max_memory_allocated`` / batch; the process's
  peak RSS on the CPU);
* inference images/s of the trained LLA.FCOS (batches of ``train.infer_images_per_device``,
  AMP as in ``lla infer``, data loading included, after a warm-up pass);
* one training iteration under ``torchrun --nproc_per_node=1`` (DDP in a one-process
  group: NCCL on a GPU, gloo on the CPU; the backend is read back from its log);
* the CrowdHuman evaluation (``lla eval crowdhuman``) of the detections ``lla infer``'s
  function wrote for the validation images (random weights: the path is checked, not the
  accuracy).

Exit code 0 when every step ran (the overhead goal is reported, not enforced), 1 otherwise.
"""

from __future__ import annotations

import argparse
import gc
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without install

from tabulate import tabulate  # noqa: E402

from lla import layout  # noqa: E402
from lla.config import section  # noqa: E402
from lla.data.dataset import CrowdDataset  # noqa: E402
from lla.data.sampler import aspect_ratio_groups  # noqa: E402
from lla.engine import checkpoint as ckpt  # noqa: E402
from lla.engine.distributed import DistInfo  # noqa: E402
from lla.engine.experiment import Experiment, resolve_experiment  # noqa: E402
from lla.engine.infer import infer, inference_batches, predict_dataset  # noqa: E402
from lla.engine.model import Amp, load_model  # noqa: E402
from lla.engine.train import Trainer  # noqa: E402
from lla.io import read_json  # noqa: E402
from lla.smoke import SMOKE_PROFILE, Smoke, log_tail, prepare_workdir  # noqa: E402

DATASET = "crowdhuman"
MODELS = {"FCOS": "fcos_r50", "LLA.FCOS": "lla_fcos_r50"}  # label -> experiment
PAPER = "paper"
OVERHEAD_GOAL = 0.05
GIB = 2**30


class AssignClock:
    """The time spent in ``model.assign``, CUDA synchronised on entry and exit so the time
    is the assignment's own. A context manager: the method is wrapped on the instance
    inside it and restored on exit."""

    def __init__(self, model: torch.nn.Module, device: torch.device):
        self.model = model
        self.cuda = device.type == "cuda"
        self.seconds = 0.0

    def __enter__(self) -> "AssignClock":
        assign = self.model.assign

        def timed_assign(*args, **kwargs):
            self.sync()
            start = time.perf_counter()
            result = assign(*args, **kwargs)
            self.sync()
            self.seconds += time.perf_counter() - start
            return result

        self.model.assign = timed_assign
        return self

    def __exit__(self, *exc) -> None:
        del self.model.assign

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()


def experiment_at_paper_batch(params: dict, name: str, iterations: int) -> Experiment:
    """``name`` under the paper_smoke profile (the paper's settings, random weights) with
    the paper's images per GPU and a schedule of ``iterations`` iterations."""
    exp = resolve_experiment(params, name, SMOKE_PROFILE)
    exp.train["images_per_device"] = int(section(params, "train", PAPER)["images_per_device"])
    exp.train["schedule"] = {"unit": "iteration", "length": iterations}
    return exp


def time_training(exp: Experiment, train_json: Path, out_dir: Path, info: DistInfo,
                  iterations: int, warmup: int) -> dict:
    """Median step time, assignment share and peak memory of ``iterations`` steps; saves
    the final model under ``out_dir``."""
    gc.collect()  # the previous model's memory is not this one's peak
    if info.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(exp.seed)
    trainer = Trainer(exp, train_json, out_dir, info, progress_bar=False)
    step = trainer.step

    def batches():
        while True:
            trainer.dataset.set_epoch(trainer.sampler.epoch)
            yield from trainer.loader

    step.model.train()
    stream, times, assign = batches(), [], []
    with AssignClock(step.model, info.device) as clock:
        for iteration in range(iterations):
            clock.sync()
            before, start = clock.seconds, time.perf_counter()
            batch = next(stream)
            losses, _ = step.forward(batch)
            step.reduce(losses, stop=False)
            step.backward_and_update(losses)
            clock.sync()
            if iteration >= warmup:
                times.append(time.perf_counter() - start)
                assign.append(clock.seconds - before)
    trainer.iteration = iterations
    trainer.save_final_model()
    images = trainer.images_per_device
    peak = (torch.cuda.max_memory_allocated() if info.device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"step": statistics.median(times), "assign_share": sum(assign) / sum(times),
            "images": images, "peak_per_image": peak / images, "amp": step.amp}


def time_inference(checkpoint: Path, val_json: Path, info: DistInfo, passes: int) -> float:
    """Images/s of ``checkpoint`` over the validation images, ``passes`` times after one
    warm-up pass (the batches and precision of ``lla infer``)."""
    model, exp = load_model(ckpt.load_checkpoint(checkpoint), info.device)
    dataset = CrowdDataset.from_config(val_json, exp.input, train=False)
    groups = aspect_ratio_groups(dataset.aspect_ratios(), exp.input["aspect_ratio_bins"])
    batches = inference_batches(groups, int(exp.train["infer_images_per_device"]))
    options = {"device": info.device, "num_workers": int(exp.train["num_workers"]),
               "size_divisible": int(exp.model["input"]["size_divisibility"]),
               "amp": Amp.from_train_settings(exp.train, info.device)}
    predict_dataset(model, dataset, batches, **options)
    if info.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    predict_dataset(model, dataset, batches * passes, **options)
    if info.device.type == "cuda":
        torch.cuda.synchronize()
    return len(dataset) * passes / (time.perf_counter() - start)


def torchrun_step(runner: Smoke, train_json: Path, out_dir: Path, device: str) -> dict:
    """One iteration of ``lla train`` under ``torchrun --nproc_per_node=1``."""
    log = runner.log("gpu_check.torchrun")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=1", "-m", "lla.cli", "-v", "train",
               "--experiment", MODELS["LLA.FCOS"], "--profile", SMOKE_PROFILE,
               "--params", str(runner.params_path), "--data", str(train_json),
               "--out-dir", str(out_dir), "--device", device, "--stop-after", "1", "--resume", "never"]
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run(command, cwd=runner.workdir, env=runner.env, stdout=out,
                              stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - start
    text = log.read_text(errors="replace")
    backend = next((name for name in ("nccl", "gloo") if f"the {name} process group" in text), None)
    trained = ckpt.latest_checkpoint(out_dir) is not None
    return {"ok": code == 0 and backend is not None and trained, "code": code,
            "backend": backend, "seconds": seconds, "log": log}


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return (f"{torch.cuda.get_device_name(device)} ({torch.cuda.device_count()} GPU(s)), "
                f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    return f"CPU ({torch.get_num_threads()} threads)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--iterations", type=int, default=20,
                        help="training steps per model, and inference passes (default: 20)")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--workdir", type=Path,
                        help="data, runs and logs (default: a temporary directory, deleted)")
    args = parser.parse_args(argv)
    if args.iterations < 2:
        parser.error("--iterations must be at least 2 (a warm-up and a timed step)")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("CUDA is not available here; --device cpu runs the same check on the CPU")
    device = torch.device(args.device, 0) if args.device == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    info = DistInfo(rank=0, local_rank=0, world_size=1, device=device)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lla-gpu-check-"))
    try:
        prepare_workdir(workdir)
        return check(Smoke(args.params, SMOKE_PROFILE, workdir.resolve()), info, args.iterations)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def check(runner: Smoke, info: DistInfo, iterations: int) -> int:
    started = time.perf_counter()
    print(f"GPU check on {device_description(info.device)}, torch {torch.__version__}; "
          f"{iterations} iterations per model", flush=True)
    runner.prepare_data([DATASET])
    root = runner.workdir / layout.dataset_root(runner.params, SMOKE_PROFILE, DATASET)
    train_json, val_json = (layout.converted_dir(root) / f"{split}.json" for split in ("train", "val"))
    warmup = max(1, iterations // 5)

    timings = {}
    for label, name in MODELS.items():
        exp = experiment_at_paper_batch(runner.params, name, iterations)
        run_dir = runner.workdir / layout.run_dir(SMOKE_PROFILE, name)
        timings[label] = time_training(exp, train_json, run_dir, info, iterations, warmup)
        print(f"{label}: {timings[label]['step']:.3f} s per step", flush=True)
    lla_checkpoint = runner.workdir / layout.final_checkpoint(SMOKE_PROFILE, MODELS["LLA.FCOS"])
    images_per_second = time_inference(lla_checkpoint, val_json, info, max(1, iterations - warmup))
    detections = runner.workdir / "detections.json"
    infer(lla_checkpoint, detections, info=info, data=val_json, params=runner.params_path)
    metrics_path = runner.workdir / "metrics.json"
    evaluation, eval_log = runner.run("gpu_check.eval", "eval", DATASET, "--gt", str(val_json),
                                      "--dt", str(detections), "--out", str(metrics_path),
                                      "--no-coco")
    distributed = torchrun_step(runner, train_json,
                                runner.workdir / layout.run_dir(SMOKE_PROFILE, "torchrun"),
                                info.device.type)

    fcos, lla = timings["FCOS"], timings["LLA.FCOS"]
    amp = lla["amp"]
    precision = f"AMP {str(amp.dtype).removeprefix('torch.')}" if amp.enabled else "float32"
    memory = "peak GPU memory per image" if info.device.type == "cuda" else "peak RSS per image (CPU)"
    overhead = lla["step"] / fcos["step"] - 1.0
    rows = [
        [f"FCOS training step (R-50, {fcos['images']} images, {precision})",
         f"{fcos['step']:.3f} s ({fcos['images'] / fcos['step']:.3g} images/s)", ""],
        [f"LLA.FCOS training step (R-50, {lla['images']} images, {precision})",
         f"{lla['step']:.3f} s ({lla['images'] / lla['step']:.3g} images/s)", ""],
        ["LLA step overhead vs FCOS", f"{overhead * 100:+.1f} %",
         f"<= +{OVERHEAD_GOAL * 100:.0f} %: {'met' if overhead <= OVERHEAD_GOAL else 'NOT met'}"],
        ["assignment share of the step (FCOS / LLA.FCOS)",
         f"{fcos['assign_share'] * 100:.1f} % / {lla['assign_share'] * 100:.1f} %", ""],
        [f"{memory} (FCOS / LLA.FCOS)",
         f"{fcos['peak_per_image'] / GIB:.2f} / {lla['peak_per_image'] / GIB:.2f} GiB", ""],
        [f"inference, LLA.FCOS ({precision}, data loading included)",
         f"{images_per_second:.3g} images/s", ""],
        ["torchrun --nproc_per_node=1, one training iteration",
         (f"ok: {distributed['backend']} process group, {distributed['seconds']:.0f} s"
          if distributed["ok"] else f"FAILED (exit {distributed['code']}, "
                                    f"backend {distributed['backend']})"),
         "nccl" if info.device.type == "cuda" else "gloo"],
    ]
    if evaluation.returncode == 0:
        metrics = read_json(metrics_path)
        rows.append(["CrowdHuman evaluation of the detections (MR / AP / Recall / JI)",
                     " / ".join(f"{metrics[key]:.3f}" for key in ("MR", "AP", "Recall", "JI")),
                     "runs (random weights)"])
    else:
        rows.append(["CrowdHuman evaluation of the detections", f"FAILED (exit "
                     f"{evaluation.returncode})", "runs"])
    print()
    print(tabulate(rows, headers=["check", "value", "goal"], tablefmt="github"))
    print(f"\n{time.perf_counter() - started:.0f} s in all; work directory {runner.workdir}")
    failed = [log for ok, log in ((distributed["ok"], distributed["log"]),
                                  (evaluation.returncode == 0, eval_log)) if not ok]
    for log in failed:
        print(f"--- {log}:\n{log_tail(log)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
