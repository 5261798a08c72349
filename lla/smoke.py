"""`make paper-smoke`: every distinct model of the paper profile trained at the paper's size.

    python -m lla.smoke [--profile paper_smoke] [--workdir DIR] [--experiments NAME ...] [--list]

The ``paper_smoke`` profile of params.yaml is the paper profile with three settings
overridden: 2 training iterations, 1 image per iteration (one process) and random backbone
weights (no download); its synthcrowd images are written in the official CrowdHuman and
CityPersons layouts, large enough that the 800/1400 resize gives a paper-size input. In a
work directory laid out like the repository (:mod:`lla.layout`), this module runs the
pipeline's own commands:

1. ``lla data synth`` and ``lla data convert <dataset>`` for each dataset the models use;
2. per model: ``lla train`` (2 iterations), ``lla infer`` on the 2 validation images and
   ``lla eval <dataset>`` on the detections, each a separate process.

It prints one line per model (seconds per training iteration from the training log, the
wall time of each step, the number of boxes detected, the peak RSS of its processes) and
exits 1 when any step failed, with the tail of that step's log on stderr.

Which models are distinct (:func:`distinct_experiments`): a model's *settings* are the
leaves of its resolved experiment (model and train blocks, dataset) where a name, a switch
or a missing value counts by its value and a number only by its presence (a number tunes a
code path, it does not choose one: the K sweep, #A=1's anchor count, loss weights). The
backbone depth is the exception (:data:`CODE_CHOOSING_NUMBERS`): ResNet-101 is another
network. A set of experiments covering every setting of every experiment is
trained, picked greedily (most uncovered settings first, ties in params.yaml order; a greedy
cover is small, not always the smallest).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lla import datasets, layout, options
from lla.config import dataset_source, load_params, section, selected_profile
from lla.data.transforms import resized_size
from lla.engine.experiment import Experiment, experiment_names, resolve_experiment
from lla.errors import DataError
from lla.io import read_json

SMOKE_PROFILE = "paper_smoke"
#: Numbers that choose code rather than tune it (key paths in the resolved model).
CODE_CHOOSING_NUMBERS = frozenset({("model", "backbone", "depth")})
#: A work directory holding this file was made by the smoke (its runs may be replaced).
MARKER = ".lla-smoke"
NUMBER = "<number>"
LOG_TAIL_LINES = 30
SECONDS_PER_ITERATION = re.compile(r"([0-9.]+) s/it")

Setting = tuple[tuple[str, ...], Any]


# ---------------------------------------------------------------------------- selection

def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, list) and bool(value) and all(_is_number(v) for v in value)


def _leaves(node: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, path + (str(key),))
    else:
        yield path, node


def model_settings(exp: Experiment) -> frozenset[Setting]:
    """The settings of a resolved experiment that decide which code runs (module docstring):
    ``(key path, value)``, a number's value replaced by ``NUMBER``."""
    settings = {(("dataset",), exp.dataset)}
    for path, value in _leaves({"model": exp.model, "train": exp.train}, ()):
        if _is_number(value) and path not in CODE_CHOOSING_NUMBERS:
            value = NUMBER
        elif isinstance(value, (list, dict)):  # a list of names, an empty block
            value = repr(value)
        settings.add((path, value))
    return frozenset(settings)


def settings_cover(params: dict[str, Any], profile: str) -> dict[str, frozenset[Setting]]:
    """The greedy cover of every experiment's settings in ``profile``: experiment -> the
    settings it is the first to cover, in the order picked (most uncovered settings first,
    ties in params.yaml order)."""
    names = experiment_names(params)
    settings = {name: model_settings(resolve_experiment(params, name, profile)) for name in names}
    uncovered = set().union(*settings.values()) if settings else set()
    cover: dict[str, frozenset[Setting]] = {}
    while uncovered:
        best = max(names, key=lambda name: len(settings[name] & uncovered))  # first of ties
        cover[best] = frozenset(settings[best] & uncovered)
        uncovered -= settings[best]
    return cover


def distinct_experiments(params: dict[str, Any], profile: str) -> list[str]:
    """The experiments of :func:`settings_cover`, in params.yaml order."""
    chosen = settings_cover(params, profile)
    return [name for name in experiment_names(params) if name in chosen]


def describe_cover(cover: dict[str, frozenset[Setting]]) -> list[str]:
    """One line per experiment of the cover: its name and the named settings it brings
    (numbers left out)."""
    lines = []
    for name, settings in cover.items():
        named = sorted(f"{'.'.join(path)}={value}" for path, value in settings
                       if value != NUMBER and path[0] != "train")
        lines.append(f"{name}: {len(settings)} settings; {', '.join(named) or 'numbers only'}")
    return lines


# ---------------------------------------------------------------------------- one model

@dataclasses.dataclass
class ModelResult:
    """What the smoke measured of one model; ``failed``: the step that failed, or None."""

    experiment: str
    dataset: str
    model: str
    input_size: str
    seconds_per_iteration: float | None = None
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    detections: int | None = None
    peak_rss_bytes: int = 0
    failed: str | None = None
    log: Path | None = None


@dataclasses.dataclass(frozen=True)
class Step:
    """One process the smoke runs: its log and, when done, its exit code, wall time, peak RSS."""

    returncode: int
    seconds: float
    peak_rss_bytes: int


def run_step(command: Sequence[str], *, cwd: Path, env: dict[str, str], log: Path) -> Step:
    """Run ``command`` with stdout and stderr into ``log``; its peak RSS from ``wait4``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        start = time.perf_counter()
        process = subprocess.Popen(list(command), cwd=cwd, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            process.wait()
            raise
        process.returncode = os.waitstatus_to_exitcode(status)
    return Step(process.returncode, time.perf_counter() - start, usage.ru_maxrss * 1024)


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


class Smoke:
    """The smoke's commands in one work directory for one profile.

    Args:
        params_path: the parameter file (passed to every command).
        profile: the profile the models train with.
        workdir: the directory the commands run in (data, runs, results, logs).
    """

    def __init__(self, params_path: Path, profile: str, workdir: Path):
        self.params_path = params_path.resolve()
        self.params = load_params(self.params_path)
        self.profile = profile
        self.workdir = workdir
        package_root = str(Path(__file__).resolve().parents[1])
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        self.results = layout.results(profile)

    def lla(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "lla.cli", *args]

    def log(self, name: str) -> Path:
        return self.workdir / layout.log(self.profile, "smoke", name)

    def run(self, log_name: str, *args: str) -> tuple[Step, Path]:
        log = self.log(log_name)
        return run_step(self.lla(*args), cwd=self.workdir, env=self.env, log=log), log

    def prepare_data(self, dataset_names: Sequence[str]) -> None:
        """Generate synthcrowd in the datasets' official layouts and convert it (DataError
        naming the log when a command fails)."""
        for dataset in dataset_names:
            if dataset_source(self.params, self.profile, dataset) != "synthcrowd":
                raise DataError(self.params_path, f"profile '{self.profile}' reads the downloaded "
                                                  f"{dataset}; the smoke runs on synthcrowd only",
                                record=f"profiles.{self.profile}.datasets.{dataset}")
        synth = layout.synthcrowd_dir(self.params, self.profile)
        only = ["--only", dataset_names[0]] if len(dataset_names) == 1 else []
        steps = [("synth", ["data", "synth", "--profile", self.profile, "--out-dir", str(synth),
                            "--params", str(self.params_path), *only])]
        for dataset in dataset_names:
            root = layout.dataset_root(self.params, self.profile, dataset)
            steps.append((f"convert_{dataset}", ["data", "convert", dataset, "--root", str(root),
                                                 "--out-dir", str(layout.converted_dir(root))]))
        for name, args in steps:
            step, log = self.run(name, *args)
            if step.returncode != 0:
                raise DataError(log, f"`lla {' '.join(args[:2])}` failed (exit "
                                     f"{step.returncode}):\n{log_tail(log)}")

    def input_size(self, exp: Experiment) -> str:
        """``W x H`` of the network input of the first validation image."""
        image = read_json(self.workdir / exp.split_json(self.params, "val"))["images"][0]
        height, width = resized_size(int(image["height"]), int(image["width"]),
                                     min_size=int(exp.input["min_size"]),
                                     max_size=int(exp.input["max_size"]))
        return f"{width}x{height}"

    def model(self, name: str) -> ModelResult:
        """Train, infer and evaluate one experiment; the first failing step stops it."""
        exp = resolve_experiment(self.params, name, self.profile)
        backbone = exp.model["backbone"]
        body = f"R-{backbone['depth']}" if backbone["name"] == "resnet" else backbone["name"]
        result = ModelResult(name, exp.dataset, f"{exp.variant} {body}", self.input_size(exp))
        run_dir = layout.run_dir(self.profile, name)
        detections, metrics = self.results.detections(name), self.results.metrics(name)
        shutil.rmtree(self.workdir / run_dir, ignore_errors=True)  # an earlier smoke's outputs
        for path in (detections, metrics):
            (self.workdir / path).unlink(missing_ok=True)
        val_json = exp.split_json(self.params, "val")
        steps = {
            "train": ["train", "--experiment", name, "--profile", self.profile,
                      "--params", str(self.params_path), "--out-dir", str(run_dir),
                      "--resume", "never"],
            "infer": ["infer", "--checkpoint", str(layout.final_checkpoint(self.profile, name)),
                      "--split", "val", "--out", str(detections), "--profile", self.profile,
                      "--params", str(self.params_path)],
            "eval": ["eval", exp.dataset, "--gt", str(val_json), "--dt", str(detections),
                     "--out", str(metrics), *datasets.get(exp.dataset).eval_options],
        }
        for kind, args in steps.items():
            step, log = self.run(f"{name}.{kind}", *args)
            result.seconds[kind] = step.seconds
            result.peak_rss_bytes = max(result.peak_rss_bytes, step.peak_rss_bytes)
            if step.returncode != 0:
                result.failed, result.log = f"{kind} (exit {step.returncode})", log
                break
            if kind == "train":
                found = SECONDS_PER_ITERATION.findall(log.read_text(errors="replace"))
                result.seconds_per_iteration = float(found[-1]) if found else None
            elif kind == "infer":
                written = read_json(self.workdir / detections)
                result.detections = len(written) if isinstance(written, list) else None
        return result


# ---------------------------------------------------------------------------- report

COLUMNS = (("experiment", 34), ("dataset", 12), ("model", 28), ("input", 9), ("s/it", 7),
           ("train s", 8), ("infer s", 8), ("boxes", 6), ("eval s", 7), ("peak RSS", 9),
           ("status", 0))


def _row(values: Sequence[str]) -> str:
    return " ".join(f"{v:<{w}}" if w else v for v, (_, w) in zip(values, COLUMNS)).rstrip()


def header() -> str:
    return _row([name for name, _ in COLUMNS])


def format_result(result: ModelResult) -> str:
    def seconds(kind: str) -> str:
        return f"{result.seconds[kind]:.1f}" if kind in result.seconds else "-"

    per_iteration = ("-" if result.seconds_per_iteration is None
                     else f"{result.seconds_per_iteration:.2f}")
    boxes = "-" if result.detections is None else str(result.detections)
    return _row([result.experiment, result.dataset, result.model, result.input_size,
                 per_iteration, seconds("train"), seconds("infer"), boxes, seconds("eval"),
                 f"{result.peak_rss_bytes / 2**30:.2f} GiB",
                 "ok" if result.failed is None else f"FAILED: {result.failed}"])


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# ---------------------------------------------------------------------------- CLI

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lla.smoke", description=__doc__.splitlines()[0], parents=[options.PARAMS],
        epilog="Exit codes: 0 every model trained, inferred and evaluated; 1 a step failed; "
               "2 bad input.")
    parser.add_argument("--profile", default=SMOKE_PROFILE,
                        help=f"the profile to train with (default: {SMOKE_PROFILE})")
    parser.add_argument("--workdir", type=Path,
                        help="where data, runs, results and logs go (default: a temporary "
                             "directory, deleted at the end); kept, and reusable by later smokes")
    parser.add_argument("--experiments", nargs="+", metavar="NAME",
                        help="train these experiments (default: the distinct models)")
    parser.add_argument("--list", action="store_true",
                        help="print the distinct models, each with the settings it is the first "
                             "to cover, and exit")
    return parser.parse_args(argv)


def prepare_workdir(workdir: Path) -> None:
    """Create ``workdir``, or accept it when empty or made by an earlier smoke."""
    if workdir.exists() and any(workdir.iterdir()) and not (workdir / MARKER).exists():
        raise DataError(workdir, f"not empty and not a smoke work directory (no {MARKER}): "
                                 "choose a new or empty --workdir")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).touch()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        params = load_params(args.params)
        profile = selected_profile(params, args.profile)
        if args.list:
            print("\n".join(describe_cover(settings_cover(params, profile))))
            return 0
        names = args.experiments or distinct_experiments(params, profile)
        unknown = [name for name in names if name not in experiment_names(params)]
        if unknown:
            raise DataError(args.params, f"unknown experiment '{unknown[0]}'")
        temporary = args.workdir is None
        workdir = Path(tempfile.mkdtemp(prefix="lla-smoke-")) if temporary else args.workdir
        try:
            prepare_workdir(workdir)
            return smoke(Smoke(args.params, profile, workdir.resolve()), names,
                         total=len(experiment_names(params)))
        finally:
            if temporary:
                shutil.rmtree(workdir, ignore_errors=True)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def smoke(runner: Smoke, names: Sequence[str], *, total: int) -> int:
    """Prepare the data, then train, infer and evaluate each of ``names``; print the lines."""
    import torch

    start = time.perf_counter()
    train = section(runner.params, "train", runner.profile)
    print(f"paper-size smoke: profile {runner.profile}, {len(names)} models of {total} "
          f"experiments, {train['images_per_device']} image(s) per iteration, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"load average {load_average()}", flush=True)
    dataset_names = list(dict.fromkeys(
        resolve_experiment(runner.params, name, runner.profile).dataset for name in names))
    runner.prepare_data(dataset_names)
    print(f"data: {', '.join(dataset_names)} generated and converted in "
          f"{time.perf_counter() - start:.0f} s (work directory {runner.workdir})", flush=True)
    print(header(), flush=True)
    failed = []
    for name in names:
        result = runner.model(name)
        print(format_result(result), flush=True)
        if result.failed is not None:
            failed.append(result)
            print(f"--- {result.log}:\n{log_tail(result.log)}", file=sys.stderr, flush=True)
    print(f"{len(names) - len(failed)}/{len(names)} models passed in "
          f"{time.perf_counter() - start:.0f} s; load average {load_average()}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
