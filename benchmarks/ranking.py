"""Ranking without training: NMS thresholds and the kinds of false positives of trained runs.

    python benchmarks/ranking.py --settings base --nms 0.5 0.6 0.7
    python benchmarks/ranking.py --settings base x2 --models lla_fcos_r50 fcos_ctr_r50 --nms

For every run of the factor search (``runs/science/<setting>/<run id>/``, see
benchmarks/factor_search.py) with a ``model_final.pt``:

* ``--nms T ...``: the run's checkpoint with ``inference.nms_thresh = T`` (a copy of
  ``model_final.pt`` whose stored experiment is changed, under ``<run>/nms<T>/``) goes
  through the real commands, ``lla infer --checkpoint ... --data <val json>`` and
  ``lla eval crowdhuman --no-coco``; results are kept, a rerun reuses them;
* the false positives ranked above FPPI = 1 in the run's own detections, by kind
  (:func:`lla.analysis.false_positives.false_positive_kinds`).

Prints, per setting and model, the mean over the seeds found: MR at each NMS threshold,
and duplicates / mislocalised / background among the false positives above FPPI = 1 with
the score there and the recall reached.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without install

from lla.analysis.false_positives import false_positive_kinds  # noqa: E402
from lla.io import atomic_path  # noqa: E402

MODELS = ("fcos_r50", "fcos_ctr_r50", "atss_ctr_r50", "lla_fcos_r50", "lla_fcos_iou_r50")


def runs_of(out: Path, setting: str, experiment: str) -> list[Path]:
    return sorted(d for d in (out / setting).glob(f"{experiment}*")
                  if (d.name == experiment or d.name.startswith(experiment + "__seed"))
                  and (d / "model_final.pt").is_file())


def nms_metrics(run: Path, thresh: float, val_json: Path, nice: int) -> dict:
    """MR / AP / Recall of ``run`` re-inferred with NMS ``thresh`` (cached)."""
    folder = run / f"nms{thresh:g}"
    metrics = folder / "metrics.json"
    if metrics.is_file():
        return json.loads(metrics.read_text())
    folder.mkdir(exist_ok=True)
    state = torch.load(run / "model_final.pt", map_location="cpu", weights_only=False)
    state["config"]["model"]["inference"]["nms_thresh"] = float(thresh)
    checkpoint = folder / "model_final.pt"
    with atomic_path(checkpoint, suffix=".pt") as tmp:
        torch.save(state, tmp)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    detections = folder / "detections.json"
    for command in (["lla", "infer", "--checkpoint", str(checkpoint), "--data", str(val_json),
                     "--out", str(detections)],
                    ["lla", "eval", "crowdhuman", "--gt", str(val_json), "--dt", str(detections),
                     "--out", str(metrics), "--no-coco"]):
        subprocess.run(["nice", "-n", str(nice)] + command, check=True, env=env, cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint.unlink()  # the weights are the run's own; only the metrics are kept
    return json.loads(metrics.read_text())


def mean(values: list[float], scale: float = 1.0) -> str:
    if not values:
        return "–"
    text = f"{scale * statistics.fmean(values):.1f}"
    return text + (f" ± {scale * statistics.stdev(values):.1f}" if len(values) > 1 else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/science"))
    parser.add_argument("--data", type=Path, default=Path("data/synthcrowd/mini/crowdhuman/converted"),
                        help="directory of the val.json the runs were evaluated on")
    parser.add_argument("--settings", nargs="+", default=["base"])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--nms", type=float, nargs="*", default=[0.5, 0.6, 0.7],
                        help="NMS thresholds to re-infer with (none: only the false positives)")
    parser.add_argument("--fppi", type=float, default=1.0)
    parser.add_argument("--nice", type=int, default=10)
    args = parser.parse_args(argv)
    val_json = args.data / "val.json"
    header = (["setting", "model", "n"] + [f"MR @ NMS {t:g}" for t in args.nms]
              + [f"FP > FPPI {args.fppi:g}: dup", "misloc", "bg", "score", "recall"])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for setting in args.settings:
        for experiment in args.models:
            runs = runs_of(args.out, setting, experiment)
            if not runs:
                continue
            mr = {t: [nms_metrics(run, t, val_json, args.nice)["MR"] for run in runs] for t in args.nms}
            kinds = [false_positive_kinds(val_json, run / "detections.json", fppi=args.fppi) for run in runs]
            cells = [mean(mr[t], 100) for t in args.nms]
            cells += [mean([k.duplicate for k in kinds]), mean([k.mislocalised for k in kinds]),
                      mean([k.background for k in kinds]), f"{statistics.fmean(k.score for k in kinds):.3f}",
                      mean([k.recall for k in kinds], 100)]
            print(f"| {setting} | {experiment} | {len(runs)} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
