"""The factor search on synthcrowd-mini: which training conditions let LLA.FCOS beat FCOS?

    python benchmarks/factor_search.py params --out runs/science          # write the settings' params
    python benchmarks/factor_search.py run --settings base x2 --seeds 0 1 --jobs 2
    python benchmarks/factor_search.py table --settings base x2           # the factor table
    python benchmarks/factor_search.py list                               # the settings

A *setting* is the mini profile with its body from scratch (``SCRATCH``) and a few keys
changed (``SETTINGS``: overrides deep-merged into ``params.yaml``); the ``pre*`` settings
start from the pretrained body, as the shipped mini does. ``params`` writes one parameter file per setting,
``<out>/params/<setting>.yaml`` (a copy of params.yaml; only the mini profile's blocks
and the experiments differ). ``run`` trains and evaluates every (setting, model, seed)
through the real commands, at most ``--jobs`` at a time, each with one thread and under
``nice``::

    lla train --params <out>/params/<setting>.yaml --profile mini --experiment <run id>
        --data <train json> --out-dir <out>/<setting>/<run id>
        --infer-out <out>/<setting>/<run id>/detections.json --infer-data <val json>
    lla eval crowdhuman --gt <val json> --dt .../detections.json --out .../metrics.json

(run id: the experiment for seed 0, ``<experiment>__seed<N>`` for seed N). A run whose
metrics exist is skipped; each finished run appends its command, wall and CPU time and
MR / AP / Recall to ``<out>/runs.jsonl``. ``table`` prints, per metric and setting, each
model's mean ± half the range over the seeds found (with their number), the centerness gain
(FCOS w/o − w/ centerness) and LLA.FCOS's margins over FCOS w/ centerness.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without install

from lla.config import deep_merge, load_params, section  # noqa: E402

PROFILE = "mini"
#: The detectors every setting compares (Table 6's anchor-free rows that issue 19 names).
MODELS = {
    "fcos_r50": "FCOS w/o ctr",
    "fcos_ctr_r50": "FCOS w/ ctr",
    "atss_ctr_r50": "ATSS w/ ctr",
    "lla_fcos_r50": "LLA.FCOS",
    "lla_fcos_iou_r50": "LLA.FCOS+IoU",
}
FCOS_MODELS = ("fcos_r50", "fcos_ctr_r50")
LLA_MODELS = ("lla_fcos_r50", "lla_fcos_iou_r50")
CTR_MODELS = ("fcos_ctr_r50", "atss_ctr_r50")

# 2x the mini input: 256 x 512 network input for the 256 x 128 synthcrowd-mini images.
X2_INPUT = {"input": {"mini": {"min_size": 256, "max_size": 512}}}


# Strides 4..64 (a P2..P6 pyramid from the body's stride-4 stem output) at the 1x input:
# the anchor regime of the 2x input (points per person depend on box size / stride only).
STRIDES4 = {"models": {"mini": {"strides": [4, 8, 16, 32, 64], "backbone": {"finest_level": 2}}}}


def _schedule(length: int) -> dict[str, Any]:
    """A mini schedule of ``length`` iterations with the lr steps at 75 % and 92 %."""
    steps = [round(length * 0.75), round(length * 0.92)]
    return {"train": {"mini": {"schedule": f"mini_{length}it", "schedules": {
        f"mini_{length}it": {"unit": "iteration", "length": length, "steps": steps, "gamma": 0.1}}}}}


def _sgd(lr: float) -> dict[str, Any]:
    """SGD with momentum 0.9, weight decay 1e-4 (none on norm and bias), as the paper."""
    return {"train": {"mini": {"base_lr": lr, "optimizer": {"name": "sgd"}}}}


def _fcos_ranges(factor: float) -> dict[str, Any]:
    """FCOS and FCOS w/ ctr with the FPN regression ranges multiplied by ``factor``."""
    edges = [64 * factor, 128 * factor, 256 * factor, 512 * factor]
    ranges = [[-1, edges[0]]] + [[a, b] for a, b in zip(edges, edges[1:])] + [[edges[-1], float("inf")]]
    return {"models": {"mini": {"variants": {"fcos": {"assigner": {"regression_ranges": ranges}}}}}}


def _fcos_radius(radius: float) -> dict[str, Any]:
    return {"models": {"mini": {"variants": {"fcos": {"assigner": {"center_sampling_radius": radius}}}}}}


def _nms(thresh: float) -> dict[str, Any]:
    return {"models": {"mini": {"inference": {"nms_thresh": thresh}}}}


def _lla_inside_only() -> dict[str, Any]:
    """LLA with the paper's +inf in-box penalty (Eq. 3): only anchors inside the person."""
    return {"models": {"mini": {"variants": {"lla_fcos": {"assigner": {"inside_only": True}}}}}}


#: The body written by ``lla pretrain --profile mini`` (the ``pretrain`` queue command).
PRETRAINED_BODY = "runs/science/pretrain/body_mini_r50.pt"


def _pretrained() -> dict[str, Any]:
    return {"models": {"mini": {"backbone": {"weights": {50: PRETRAINED_BODY}}}}}


def _merge(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        out = deep_merge(out, part)
    return out


#: name -> (what it changes, overrides of params.yaml, the models it concerns)
SETTINGS: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    "base": ("mini from scratch: 256x128 input, 500 iterations, AdamW 2e-3", {}, tuple(MODELS)),
    "x2": ("input 2x (min_size 256, max_size 512)", X2_INPUT, tuple(MODELS)),
    "strides4": ("strides 4..64 (P2-P6) at the 1x input: the 2x regime", STRIDES4, tuple(MODELS)),
    "it1500": ("1,500 iterations", _schedule(1500), tuple(MODELS)),
    "sgd_lr0.01": ("SGD momentum 0.9, lr 0.01", _sgd(0.01), tuple(MODELS)),
    "sgd_lr0.02": ("SGD momentum 0.9, lr 0.02", _sgd(0.02), tuple(MODELS)),
    "sgd_lr0.04": ("SGD momentum 0.9, lr 0.04", _sgd(0.04), tuple(MODELS)),
    "ctr_weightsum": ("centerness-weighted box loss / the sum of centerness targets (FCOS/mmdetection "
                      "form) instead of / the positives (the authors' released baselines)",
                      {"models": {"mini": {"loss": {"box_weighting_normalizer": "weight_sum"}}}}, CTR_MODELS),
    "inbox_inf": ("LLA with the +inf in-box penalty (inside anchors only)", _lla_inside_only(), LLA_MODELS),
    "pre": ("backbone body pretrained on person/background crops (lla pretrain)", _pretrained(),
            tuple(MODELS)),
    "it4500": ("4,500 iterations", _schedule(4500), tuple(MODELS)),
    "pre_it1500": ("pretrained body, 1,500 iterations", _merge(_pretrained(), _schedule(1500)),
                   tuple(MODELS)),
    "pre_it4500": ("pretrained body, 4,500 iterations (checkpoints kept at 500, 1,500, 3,000)",
                   _merge(_pretrained(), _schedule(4500),
                          {"train": {"mini": {"keep_checkpoints": [500, 1500, 3000]}}}),
                   tuple(MODELS)),
    "x2_it1500": ("input 2x, 1,500 iterations", _merge(X2_INPUT, _schedule(1500)), tuple(MODELS)),
    "x2_pre": ("input 2x, pretrained body", _merge(X2_INPUT, _pretrained()), tuple(MODELS)),
    "x2_pre_it1500": ("input 2x, pretrained body, 1,500 iterations",
                      _merge(X2_INPUT, _pretrained(), _schedule(1500)), tuple(MODELS)),
    "strides4_pre": ("P2-P6 pyramid at the 1x input, pretrained body", _merge(STRIDES4, _pretrained()),
                     tuple(MODELS)),
    "strides4_pre_it1500": ("P2-P6 pyramid at the 1x input, pretrained body, 1,500 iterations",
                            _merge(STRIDES4, _pretrained(), _schedule(1500)), tuple(MODELS)),
    "pre_sgd_lr0.01": ("pretrained body, SGD momentum 0.9, lr 0.01", _merge(_pretrained(), _sgd(0.01)),
                       tuple(MODELS)),
    "pre_sgd_lr0.02": ("pretrained body, SGD momentum 0.9, lr 0.02", _merge(_pretrained(), _sgd(0.02)),
                       tuple(MODELS)),
    "pre_head4": ("pretrained body, 4 convs per head tower (the paper's depth; mini has 2)",
                  _merge(_pretrained(), {"models": {"mini": {"head": {"num_convs": 4}}}}), tuple(MODELS)),
    "fcos_ranges0.2": ("FCOS regression ranges x0.2 (64 -> 12.8 px ...)", _fcos_ranges(0.2), FCOS_MODELS),
    "fcos_radius0.75": ("FCOS centre-sampling radius 0.75 stride", _fcos_radius(0.75), FCOS_MODELS),
}


#: Every setting starts from mini with its body trained from scratch; the ``pre*`` settings
#: put the pretrained body back (the shipped mini starts from it: ``weights: pretrain``).
SCRATCH = {"models": {"mini": {"backbone": {"weights": None}}}}


def setting_params(params: dict[str, Any], name: str) -> dict[str, Any]:
    """params.yaml, mini's body from scratch, with the setting's overrides merged in."""
    return deep_merge(deep_merge(copy.deepcopy(dict(params)), SCRATCH), SETTINGS[name][1])


def run_id(experiment: str, seed: int) -> str:
    return experiment if seed == 0 else f"{experiment}__seed{seed}"


def write_params(out: Path, names: list[str]) -> dict[str, Path]:
    params = load_params(ROOT / "params.yaml")
    paths = {}
    for name in names:
        path = out / "params" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(setting_params(params, name), sort_keys=False, width=120)
        path.write_text(f"# factor-search setting {name}: {SETTINGS[name][0]}\n" + text)
        paths[name] = path
    return paths


# ------------------------------------------------------------------------------ run

class Job:
    def __init__(self, out: Path, setting: str, experiment: str, seed: int, data: Path):
        self.setting, self.experiment, self.seed = setting, experiment, seed
        self.run = run_id(experiment, seed)
        self.dir = out / setting / self.run
        self.params = out / "params" / f"{setting}.yaml"
        self.train_json = data / "train.json"
        self.val_json = data / "val.json"
        self.metrics = self.dir / "metrics.json"
        self.dets = self.dir / "detections.json"

    def commands(self) -> list[list[str]]:
        train = ["lla", "train", "--params", str(self.params), "--profile", PROFILE,
                 "--experiment", self.run, "--data", str(self.train_json), "--out-dir", str(self.dir),
                 "--infer-out", str(self.dets), "--infer-data", str(self.val_json),
                 "--on-diverge", "record"]
        evaluate = ["lla", "eval", "crowdhuman", "--gt", str(self.val_json), "--dt",
                    str(self.dets), "--out", str(self.metrics)]
        return [train, evaluate]


def snapshot_code(out: Path) -> Path:
    """A copy of the ``lla`` package the runs import, so editing the checkout while they
    run changes nothing in them; named by the time, with the git commit in ``COMMIT``."""
    target = out / "code" / time.strftime("%Y%m%d-%H%M%S")
    shutil.copytree(ROOT / "lla", target / "lla", ignore=shutil.ignore_patterns("__pycache__"))
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    (target / "COMMIT").write_text(commit + "\n")
    return target


def run_one(job: Job, nice: int, log_lock: threading.Lock, record: Path, code: Path) -> None:
    job.dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(code))
    start = time.time()
    cpu = 0.0
    with open(job.dir / "run.log", "a") as log:
        for command in job.commands():
            log.write("$ " + shlex.join(command) + "\n")
            log.flush()
            proc = subprocess.Popen(["nice", "-n", str(nice)] + command, stdout=log,
                                    stderr=subprocess.STDOUT, env=env, cwd=ROOT)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            cpu += usage.ru_utime + usage.ru_stime
            if proc.returncode != 0:
                print(f"FAILED ({proc.returncode}): {job.setting}/{job.run}: see {job.dir}/run.log",
                      flush=True)
                return
    wall = time.time() - start
    if isinstance(job, CommandJob):
        job.metrics.write_text(json.dumps({"wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}) + "\n")
        print(f"{time.strftime('%H:%M:%S')} cmd {job.run} done, wall {wall:.0f} s, cpu {cpu:.0f} s",
              flush=True)
        return
    metrics = json.loads(job.metrics.read_text())
    entry = {"setting": job.setting, "run": job.run, "experiment": job.experiment,
             "seed": job.seed, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
             "MR": metrics.get("MR"), "AP": metrics.get("AP"), "Recall": metrics.get("Recall"),
             "diverged": "diverged" in metrics, "finished": time.strftime("%H:%M:%S"),
             "code": str(code),
             "commands": [shlex.join(c) for c in job.commands()]}
    with log_lock:
        with open(record, "a") as f:
            f.write(json.dumps(entry) + "\n")
    mr = "—" if entry["MR"] is None else f"{100 * entry['MR']:.2f}"
    print(f"{entry['finished']} {job.setting:<16} {job.run:<28} MR {mr}  wall {wall:6.0f} s  "
          f"cpu {cpu:6.0f} s", flush=True)


def setting_jobs(args: argparse.Namespace, setting: str, models: list[str] | None,
                 seeds: list[int]) -> list[Job]:
    if models is None:
        models = list(SETTINGS[setting][2]) if setting in SETTINGS else list(MODELS)
    chosen = models
    return [Job(args.out, setting, experiment, seed, args.data) for seed in seeds for experiment in chosen]


class CommandJob:
    """A queue line ``cmd NAME COMMAND...``: run COMMAND once (done: ``<out>/cmd/NAME/done``)."""

    def __init__(self, out: Path, name: str, command: list[str]):
        self.setting, self.run, self.experiment, self.seed = "cmd", name, name, 0
        self.dir = out / "cmd" / name
        self.metrics = self.dir / "done"
        self._command = command

    def commands(self) -> list[list[str]]:
        return [self._command]


def queued_jobs(args: argparse.Namespace) -> list[Job]:
    """The jobs of the queue file, in its order. A line: ``SETTING [models=a,b] [seeds=0,1]``
    (default: the setting's models, ``--seeds``), ``cmd NAME COMMAND...``, or ``wait``: the jobs
    after it start once every job before it has finished. ``#`` starts a comment. The
    setting's params file must exist (``params``): the queue may name settings added after
    the runner started. Each job carries ``gate``, the jobs it waits for."""
    jobs: list = []
    gate: list = []
    for line in args.queue.read_text().splitlines():
        words = line.split("#")[0].split()
        if not words:
            continue
        if words[0] == "wait":
            gate = list(jobs)
            continue
        if words[0] == "cmd":
            job = CommandJob(args.out, words[1], words[2:])
            job.gate = gate
            jobs.append(job)
            continue
        options = dict(word.split("=", 1) for word in words[1:])
        models = options["models"].split(",") if "models" in options else None
        seeds = [int(v) for v in options["seeds"].split(",")] if "seeds" in options else args.seeds
        for job in setting_jobs(args, words[0], models, seeds):
            if all(job.dir != other.dir for other in jobs):
                job.gate = gate
                jobs.append(job)
    return jobs


def run(args: argparse.Namespace) -> int:
    """Run the jobs (of ``--settings``, or of ``--queue``, re-read whenever a slot frees),
    ``--jobs`` at a time. Touching ``<out>/SNAPSHOT`` makes the next job take a fresh copy
    of the package."""
    if args.queue is None:
        write_params(args.out, args.settings)
        fixed = [job for setting in args.settings for job in setting_jobs(args, setting, args.models, args.seeds)]
    code = snapshot_code(args.out).resolve()
    print(f"code: {code} ({(code / 'COMMIT').read_text().strip()})", flush=True)
    lock = threading.Lock()
    record = args.out / "runs.jsonl"
    active: dict[Path, threading.Thread] = {}
    started: set[Path] = set()
    while True:
        active = {d: t for d, t in active.items() if t.is_alive()}
        jobs = fixed if args.queue is None else queued_jobs(args)
        pending = [job for job in jobs if not job.metrics.is_file() and job.dir not in started
                   and all(before.metrics.is_file() for before in getattr(job, "gate", []))]
        if not pending and not active:
            if args.queue is None or args.exit_when_idle:
                return 0
            time.sleep(55)  # a queue runner waits for new lines
        while pending and len(active) < args.jobs:
            if (args.out / "SNAPSHOT").exists():
                (args.out / "SNAPSHOT").unlink()
                code = snapshot_code(args.out).resolve()
                print(f"code: {code} ({(code / 'COMMIT').read_text().strip()})", flush=True)
            job = pending.pop(0)
            started.add(job.dir)
            thread = threading.Thread(target=run_one, args=(job, args.nice, lock, record, code))
            thread.start()
            active[job.dir] = thread
        time.sleep(5)


# ------------------------------------------------------------------------------ table

def collect(out: Path, setting: str, experiment: str) -> list[dict[str, float]]:
    """Metrics of every seed of one (setting, experiment) found under ``out``."""
    found = []
    for metrics in sorted((out / setting).glob(f"{experiment}*/metrics.json")):
        name = metrics.parent.name
        if name != experiment and not name.startswith(experiment + "__seed"):
            continue
        found.append(json.loads(metrics.read_text()))
    return found


def mean_spread(values: list[float]) -> str:
    """``mean ± half the range (n)`` in percent; a single seed shows ``mean (1)``."""
    if not values:
        return "–"
    mean = 100 * statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.1f} (1)"
    return f"{mean:.1f} ± {50 * (max(values) - min(values)):.1f} ({len(values)})"


def settings_with_runs(out: Path) -> list[str]:
    """The settings of ``SETTINGS`` (in its order) with at least one finished run."""
    return [name for name in SETTINGS if any((out / name).glob("*/metrics.json"))]


def table(args: argparse.Namespace) -> int:
    """Per metric, one row per setting: each model's mean ± half the range over its seeds
    (n seeds in parentheses), the centerness gain and LLA.FCOS's margins over FCOS w/ ctr
    (differences of the means). A model the setting does not concern (e.g. FCOS under an
    LLA assigner option) is trained exactly as in ``--reference``: its cell shows that
    setting's value in brackets, and the differences use it."""
    settings = args.settings or settings_with_runs(args.out)
    header = (["setting"] + [MODELS[m] for m in MODELS]
              + ["ctr gain", "LLA − FCOS ctr", "LLA+IoU − FCOS ctr"])
    for metric in args.metric:
        better = "lower" if metric == "MR" else "higher"
        print(f"\n{metric} ({better} is better) on synthcrowd-mini val, percent: mean ± half the "
              "range over the seeds (n seeds)\n")
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for setting in settings:
            concerned = SETTINGS[setting][2] if setting in SETTINGS else tuple(MODELS)
            cells, means = [], {}
            for experiment in MODELS:
                source = setting if experiment in concerned else args.reference
                values = [m[metric] for m in collect(args.out, source, experiment)
                          if m.get(metric) is not None]
                if values:
                    means[experiment] = 100 * statistics.fmean(values)
                text = mean_spread(values)
                cells.append(text if source == setting or not values else f"[{text}]")

            def diff(a: str, b: str) -> str:
                return f"{means[a] - means[b]:+.1f}" if a in means and b in means else "–"

            print(f"| {setting} | " + " | ".join(cells) + f" | {diff('fcos_r50', 'fcos_ctr_r50')} | "
                  f"{diff('lla_fcos_r50', 'fcos_ctr_r50')} | {diff('lla_fcos_iou_r50', 'fcos_ctr_r50')} |")
    print("\nctr gain: FCOS w/o − w/ ctr; LLA − FCOS ctr: LLA.FCOS(+IoU) − FCOS w/ ctr. "
          f"[bracketed]: the {args.reference} runs of a model the setting does not change.")
    print("Settings:")
    for setting in settings:
        print(f"  {setting}: {SETTINGS[setting][0] if setting in SETTINGS else '?'}")
    return 0


def curve(args: argparse.Namespace) -> int:
    """MR / AP / Recall of one setting's runs by iteration: each kept checkpoint's
    ``metrics_<it>.json`` beside the run's final ``metrics.json`` (made by ``lla infer
    --checkpoint <run>/checkpoints/iter_<it, 7 digits>.pt --out <run>/detections_<it>.json``
    and ``lla eval crowdhuman ... --out <run>/metrics_<it>.json``)."""
    train = section(setting_params(load_params(ROOT / "params.yaml"), args.setting), "train", PROFILE)
    length = int(train["schedules"][train["schedule"]]["length"])
    runs = sorted(d for d in (args.out / args.setting).iterdir() if (d / "metrics.json").is_file())
    print(f"\n{args.setting}: {SETTINGS[args.setting][0]}; synthcrowd-mini val, percent\n")
    print("| run | iteration | MR | AP | Recall |")
    print("|---|---|---|---|---|")
    for run in runs:
        points = sorted((int(m.stem.split("_")[1]), m) for m in run.glob("metrics_*.json"))
        for iteration, path in points + [(length, run / "metrics.json")]:
            m = json.loads(path.read_text())
            print(f"| {run.name} | {iteration} | {100 * m['MR']:.1f} | {100 * m['AP']:.1f} | "
                  f"{100 * m['Recall']:.1f} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    default_out = Path("runs/science")
    default_data = Path("data/synthcrowd/mini/crowdhuman/converted")

    p = sub.add_parser("params", help="write <out>/params/<setting>.yaml")
    p.add_argument("--out", type=Path, default=default_out)
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))

    r = sub.add_parser("run", help="train and evaluate (setting x model x seed)")
    r.add_argument("--out", type=Path, default=default_out)
    r.add_argument("--data", type=Path, default=default_data,
                   help="directory of the converted synthcrowd-mini train.json / val.json")
    r.add_argument("--settings", nargs="+", choices=list(SETTINGS))
    r.add_argument("--queue", type=Path, help="a queue file of settings (see queued_jobs)")
    r.add_argument("--exit-when-idle", action="store_true",
                   help="with --queue: stop when nothing is left to run (default: wait for more)")
    r.add_argument("--models", nargs="+", choices=list(MODELS),
                   help="default: the models each setting concerns")
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--nice", type=int, default=10)

    t = sub.add_parser("table", help="print the factor table")
    t.add_argument("--out", type=Path, default=default_out)
    t.add_argument("--settings", nargs="+", choices=list(SETTINGS),
                   help="default: every setting with a finished run, in SETTINGS order")
    t.add_argument("--metric", nargs="+", default=["MR", "AP", "Recall"],
                   choices=("MR", "AP", "Recall"))
    t.add_argument("--reference", default="base",
                   help="the setting whose runs stand in for the models a setting does not concern")

    c = sub.add_parser("curve", help="metrics of a setting's kept checkpoints by iteration")
    c.add_argument("--out", type=Path, default=default_out)
    c.add_argument("--setting", required=True, choices=list(SETTINGS))

    sub.add_parser("list", help="the settings")
    args = parser.parse_args(argv)
    if args.command == "params":
        for name, path in write_params(args.out, args.settings).items():
            print(f"{name}: {path}")
        return 0
    if args.command == "run":
        if (args.settings is None) == (args.queue is None):
            parser.error("run needs --settings or --queue")
        return run(args)
    if args.command == "table":
        return table(args)
    if args.command == "curve":
        return curve(args)
    for name, (text, _, models) in SETTINGS.items():
        print(f"{name:<18} {text}  [{', '.join(models)}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
