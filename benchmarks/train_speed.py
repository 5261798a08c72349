"""Training throughput of the engine (images/s per process).

    .venv/bin/python benchmarks/train_speed.py                      # CPU: mini and micro
    .venv/bin/python benchmarks/train_speed.py --profiles micro --steps 10
    .venv/bin/python benchmarks/train_speed.py --compare            # + LLA.FCOS vs FCOS, R-50
    .venv/bin/python benchmarks/train_speed.py --threads 1 --phases --cache both \
        --compare --compare-size 256 448                            # the CPU budget's view

CPU part, per profile: the real training step of ``lla train`` (DataLoader over the
synthcrowd split, forward, assignment, loss, the per-iteration all-reduce/finite check,
backward, the optimizer, lr schedule) for each ``--experiments``; the median wall time of
an iteration including the wait for its batch gives images/s, and so does the median CPU
time of the process (``cpu img/s``), which a machine shared with other jobs leaves
nearly unchanged. ``--input-scale F`` multiplies the profile's min_size/max_size;
``--cache off|on|both`` times the training set's image cache (``train.cache_images``)
off, on (filled before the timing: the steady state of the epochs after the first) or both. ``--phases`` adds, per experiment, the CPU milliseconds per iteration
of each part of the step: data (batch fetch: JPEG decoding, resize, collate), backbone,
head, assignment, loss, backward, optimizer (+ lr schedule) and the rest. The synthcrowd
data is generated under ``--data-root`` when missing.

``--compare`` (default on when CUDA is available): LLA.FCOS vs plain FCOS (variants
``lla_fcos`` / ``fcos``) with the paper profile's ResNet-50-FPN and 256-channel heads,
random weights, in-memory batches of ``images_per_device`` images of 800 x 1400 pixels with
23 persons each (CrowdHuman's mean), AMP as configured. Prints images/s per GPU and the
extra time per step of LLA (target: <= 5 %). ``--compare-size H W`` shrinks the images for
a smoke run on the CPU.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from lla.config import load_params  # noqa: E402
from lla.layout import converted_json  # noqa: E402
from lla.data.dataset import Batch  # noqa: E402
from lla.engine.distributed import DistInfo  # noqa: E402
from lla.engine.experiment import resolve_experiment  # noqa: E402
from lla.engine.schedule import ScheduleIterations  # noqa: E402
from lla.engine.train import Trainer, TrainingStep, scaled_lr  # noqa: E402
from lla.models import detector as detector_module  # noqa: E402

DENSE_DETECTION_LOSS = detector_module.dense_detection_loss

# CrowdHuman train: 22.6 persons per image on average (the paper's table of dataset statistics).
PERSONS_PER_IMAGE = 23


def ensure_synthcrowd(params_path: Path, data_root: Path, profile: str) -> None:
    """Generate and convert the synthcrowd CrowdHuman flavour of ``profile`` when missing."""
    root = data_root / "synthcrowd" / profile / "crowdhuman"
    if (root / "converted" / "train.json").is_file():
        return
    lla = [sys.executable, "-m", "lla.cli"]
    subprocess.run(lla + ["data", "synth", "--profile", profile, "--out-dir", str(root.parent),
                          "--only", "crowdhuman", "--params", str(params_path)], check=True)
    subprocess.run(lla + ["data", "convert", "crowdhuman", "--root", str(root), "--out-dir",
                          str(root / "converted"), "--split", "train"], check=True)


class PhaseTimer:
    """CPU time spent in named parts of the training step (seconds, summed over calls).

    ``wrap(owner, attribute, phase)`` replaces a method or module function by a timed one;
    nested timed calls are charged to the innermost phase only."""

    def __init__(self):
        self.totals: dict[str, float] = {}
        self._stack: list[list[float]] = []  # per open phase: [start, time of nested phases]

    def wrap(self, owner, attribute: str, phase: str) -> None:
        function = getattr(owner, attribute)

        @functools.wraps(function)
        def timed(*a, **k):
            self._stack.append([time.process_time(), 0.0])
            try:
                return function(*a, **k)
            finally:
                start, nested = self._stack.pop()
                spent = time.process_time() - start
                self.totals[phase] = self.totals.get(phase, 0.0) + spent - nested
                if self._stack:
                    self._stack[-1][1] += spent

        setattr(owner, attribute, timed)

    def add(self, phase: str, seconds: float) -> None:
        self.totals[phase] = self.totals.get(phase, 0.0) + seconds


PHASES = ("data", "backbone", "head", "assign", "loss", "backward", "optimizer", "other")


def time_engine_steps(step_runner: TrainingStep, batches, warmup: int, steps: int,
                      phases: PhaseTimer | None = None) -> tuple[list[float], list[float]]:
    """Wall and CPU time of ``steps`` training iterations (after ``warmup``), each including
    the wait for its batch; CUDA is synchronised at the end of every iteration. With
    ``phases``, the CPU time of the batch fetch, backward and optimizer step is charged to
    it (the model's parts are charged by the wrappers of :func:`instrument`)."""
    times, cpu_times = [], []
    iterator = iter(batches)
    cuda = step_runner.info.device.type == "cuda"
    step_runner.model.train()
    for step in range(warmup + steps):
        if phases is not None and step == warmup:
            phases.totals.clear()
        start, cpu_start = time.perf_counter(), time.process_time()
        batch = next(iterator)
        fetched = time.process_time()
        losses, _ = step_runner.forward(batch)
        step_runner.reduce(losses, stop=False)
        if phases is None:
            step_runner.backward_and_update(losses)
        else:
            phases.add("data", fetched - cpu_start)
            backward_start = time.process_time()
            total = sum(losses.values())
            step_runner.optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer_start = time.process_time()
            step_runner.optimizer.step()
            step_runner.scheduler.step()
            phases.add("backward", optimizer_start - backward_start)
            phases.add("optimizer", time.process_time() - optimizer_start)
        if cuda:
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    return times, cpu_times


def instrument(model, phases: PhaseTimer) -> None:
    """Charge the detector's backbone, head, assignment and loss to ``phases``."""
    phases.wrap(model.backbone, "forward", "backbone")
    phases.wrap(model.head, "forward", "head")
    phases.wrap(model, "assign", "assign")
    phases.wrap(detector_module, "dense_detection_loss", "loss")


def cpu_profiles(args, params: dict) -> None:
    info = DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    print(f"CPU, {torch.get_num_threads()} thread(s); median of {args.steps} iterations after "
          f"{args.warmup} warm-up, data loading included; load average before: "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'profile':<8} {'experiment':<22} {'cache':>5} {'batch':>5} {'input':>9} {'s/it':>7} "
          f"{'images/s':>9} {'cpu s/it':>9} {'cpu img/s':>9}")
    caches = {"off": (False,), "on": (True,), "both": (False, True)}[args.cache]
    breakdowns = []
    for profile in args.profiles:
        params["data_root"] = str(args.data_root)
        ensure_synthcrowd(args.params, args.data_root, profile)
        input_cfg = params["input"].setdefault(profile, {}) or {}
        params["input"][profile] = input_cfg
        base = {key: input_cfg.get(key, params["input"]["defaults"][key])
                for key in ("min_size", "max_size")}
        input_cfg.update({key: round(value * args.input_scale) for key, value in base.items()})
        for name in args.experiments:
            for cache in caches:
                exp = resolve_experiment(params, name, profile)
                exp.model["backbone"]["weights"] = None  # speed does not depend on the start
                exp.train["cache_images"] = cache
                phases = PhaseTimer() if args.phases else None
                with tempfile.TemporaryDirectory() as out:
                    trainer = Trainer(exp, converted_json(params, profile, "crowdhuman", "train"),
                                      out, info, progress_bar=False)
                    if phases is not None:
                        instrument(trainer.model, phases)
                    if cache:  # the steady state of epochs 2+: every image decoded once
                        for index in range(len(trainer.dataset)):
                            trainer.dataset.resized_image(index)

                    def endless():
                        while True:
                            trainer.dataset.set_epoch(trainer.sampler.epoch)
                            yield from trainer.loader

                    times, cpu_times = time_engine_steps(trainer.step, endless(), args.warmup,
                                                         args.steps, phases)
                    if phases is not None:
                        detector_module.dense_detection_loss = DENSE_DETECTION_LOSS
                median, cpu_median = statistics.median(times), statistics.median(cpu_times)
                batch = trainer.images_per_device
                size = f"{exp.input['min_size']}/{exp.input['max_size']}"
                print(f"{profile:<8} {name:<22} {'on' if cache else 'off':>5} {batch:>5} {size:>9} "
                      f"{median:>7.3f} {batch / median:>9.2f} {cpu_median:>9.3f} "
                      f"{batch / cpu_median:>9.2f}", flush=True)
                if phases is not None:
                    totals = {k: 1000 * v / args.steps for k, v in phases.totals.items()}
                    totals["other"] = max(0.0, 1000 * sum(cpu_times) / args.steps - sum(totals.values()))
                    breakdowns.append((profile, name, cache, totals))
    if breakdowns:
        print(f"\nCPU ms per iteration by phase (mean over the {args.steps} timed iterations)")
        print(f"{'profile':<8} {'experiment':<22} {'cache':>5} "
              + " ".join(f"{p:>9}" for p in PHASES) + f" {'total':>8}")
        for profile, name, cache, totals in breakdowns:
            print(f"{profile:<8} {name:<22} {'on' if cache else 'off':>5} "
                  + " ".join(f"{totals.get(p, 0.0):>9.1f}" for p in PHASES)
                  + f" {sum(totals.values()):>8.1f}")


def synthetic_batch(num_images: int, height: int, width: int, persons: int,
                    generator: torch.Generator) -> Batch:
    """Random images with ``persons`` pedestrian-shaped boxes (aspect 0.41) each."""
    images = torch.rand(num_images, 3, height, width, generator=generator)
    targets = []
    for _ in range(num_images):
        h = height * (0.08 + 0.5 * torch.rand(persons, generator=generator))
        w = 0.41 * h
        x1 = (width - w) * torch.rand(persons, generator=generator)
        y1 = (height - h) * torch.rand(persons, generator=generator)
        targets.append({"boxes": torch.stack((x1, y1, x1 + w, y1 + h), 1),
                        "labels": torch.ones(persons, dtype=torch.int64),
                        "ignore_boxes": torch.tensor([[0.0, 0.0, 0.05 * width, 0.05 * height]])})
    return Batch(images=images, image_sizes=[(height, width)] * num_images, targets=targets)


def compare_lla_fcos(args, params: dict) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    info = DistInfo(rank=0, local_rank=0, world_size=1, device=device)
    height, width = args.compare_size
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"\nLLA.FCOS vs FCOS, paper profile (R-50-FPN, random weights), {height}x{width}, "
          f"{name}; median of {args.steps} steps after {args.warmup} warm-up")
    print(f"{'variant':<10} {'batch':>5} {'amp':>5} {'s/step':>8} {'images/s':>9} {'cpu s/step':>10} "
          f"{'peak GiB':>9}")
    medians, cpu_medians = {}, {}
    for variant in ("fcos", "lla_fcos"):
        params["experiments"]["_speed"] = {"model": variant, "dataset": "crowdhuman",
                                           "model_overrides": {"backbone": {"weights": None}}}
        exp = resolve_experiment(params, "_speed", "paper")
        torch.manual_seed(exp.seed)
        batch_size = int(exp.train["images_per_device"])
        # lr of the paper's 8-GPU global batch; one milestone-free schedule
        step_runner = TrainingStep(exp, info, lr=scaled_lr(exp.train, 8 * batch_size),
                                   schedule=ScheduleIterations(10**9, (), 0.1))
        batch = synthetic_batch(batch_size, height, width, PERSONS_PER_IMAGE,
                                torch.Generator().manual_seed(0))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times, cpu_times = time_engine_steps(step_runner, iter(lambda: batch, None), args.warmup,
                                             args.steps)
        medians[variant], cpu_medians[variant] = statistics.median(times), statistics.median(cpu_times)
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
        print(f"{variant:<10} {batch_size:>5} {str(step_runner.amp.enabled):>5} {medians[variant]:>8.3f} "
              f"{batch_size / medians[variant]:>9.2f} {cpu_medians[variant]:>10.3f} {peak:>9.2f}",
              flush=True)
        del step_runner
    # On the CPU the process time is the fair measure (the wall time follows the machine's load).
    chosen = cpu_medians if device.type == "cpu" else medians
    overhead = chosen["lla_fcos"] / chosen["fcos"] - 1.0
    print(f"LLA.FCOS time per step vs FCOS ({'CPU' if device.type == 'cpu' else 'wall'} time): "
          f"{overhead * 100:+.1f} % (target <= +5 %)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--profiles", nargs="*", default=["mini", "micro"],
                        help="CPU profiles to time (none: skip the CPU part)")
    parser.add_argument("--experiments", nargs="+", default=["lla_fcos_r50", "fcos_ctr_r50"])
    parser.add_argument("--data-root", type=Path, default=Path("benchmarks/out/data"),
                        help="where synthcrowd is generated / found")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--input-scale", type=float, default=1.0,
                        help="multiply each profile's input min_size/max_size (CPU part)")
    parser.add_argument("--cache", choices=("off", "on", "both"), default="off",
                        help="train.cache_images for the CPU part (default: off)")
    parser.add_argument("--phases", action="store_true",
                        help="CPU time per part of the step (CPU part)")
    parser.add_argument("--compare", action=argparse.BooleanOptionalAction,
                        default=torch.cuda.is_available(),
                        help="LLA.FCOS vs FCOS at the paper's size (default: on with CUDA)")
    parser.add_argument("--compare-size", type=int, nargs=2, default=(800, 1400),
                        metavar=("H", "W"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    params = load_params(args.params)
    if args.profiles:
        cpu_profiles(args, params)
    if args.compare:
        compare_lla_fcos(args, params)
    return 0


if __name__ == "__main__":
    sys.exit(main())
