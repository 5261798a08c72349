"""GPU-hours of a profile's table runs on a cluster: an estimate from published speeds.

    .venv/bin/python benchmarks/gpu_hours.py                    # the paper profile
    .venv/bin/python benchmarks/gpu_hours.py --profile official_code

Counts the runs the tables train (the `train` jobs of `snakemake -n all_tables --config
profile=P`), each run's iterations (its schedule of params.yaml; an epoch is
ceil(ceil(train images / images_per_device) / GPUs) iterations, the official training-set
sizes below) and multiplies them by a published training speed of the same detector family
and input scale, then adds the inference over the validation split that each training job
runs and the AAR analyses (Table 5: one forward pass over the training split each).

The default speeds are detectron2's model zoo (MODEL_ZOO.md, RetinaNet, 8 V100 GPUs,
16 images per iteration, COCO with short side 800 and long side <= 1333): R50-FPN 0.200 and
R101-FPN 0.280 s/iteration for training, 0.055 and 0.068 s/image for inference. FCOS trains
at the same per-image rate there (mmdetection's model zoo, FCOS R-50 caffe GN 1x: 0.396
s/iteration at 4 GPUs x 4 images on V100). The paper's input (short side 800, long side
<= 1400) is that scale. Dense crowds (23 persons an image on CrowdHuman, 7 on COCO) make the
assignment and the loss costlier; the estimate does not include that, nor queue waits,
retries or checkpointing, so plan with a margin.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from tabulate import tabulate  # noqa: E402

from lla.config import load_params, section  # noqa: E402
from lla.engine.experiment import resolve_experiment  # noqa: E402
from lla.engine.schedule import schedule_iterations  # noqa: E402
from lla.engine.train import named_schedule  # noqa: E402
from lla.report.tables import table_experiments  # noqa: E402
from lla.runs import run_ids  # noqa: E402

# Official split sizes: CrowdHuman 15,000 train / 4,370 val images, CityPersons (the Cityscapes
# images) 2,975 train / 500 val.
TRAIN_IMAGES = {"crowdhuman": 15000, "citypersons": 2975}
VAL_IMAGES = {"crowdhuman": 4370, "citypersons": 500}
# detectron2 MODEL_ZOO.md, RetinaNet on 8 V100: s/iteration (16 images), s/image (batch 1)
TRAIN_S_PER_ITER = {50: 0.200, 101: 0.280}
INFER_S_PER_IMAGE = {50: 0.055, 101: 0.068}
REFERENCE_GPUS = 8
REFERENCE_BATCH = 16


def table_runs(params: dict, profile: str) -> list[str]:
    """Every run the tables read, each once (the `train` jobs of `all_tables`)."""
    experiments = dict.fromkeys(e for table in params["tables"] for e in table_experiments(params, table))
    return [run for e in experiments for run in run_ids(params, e, profile)]


def backbone_depth(exp) -> int:
    return int(exp.model["backbone"].get("depth", 50))


def run_estimate(params: dict, profile: str, run: str, gpus: int) -> dict:
    """Iterations and GPU-hours (training, inference on val) of one run."""
    exp = resolve_experiment(params, run, profile)
    depth = backbone_depth(exp)
    per_device = int(exp.train["images_per_device"])
    per_epoch = math.ceil(math.ceil(TRAIN_IMAGES[exp.dataset] / per_device) / gpus)
    iterations = schedule_iterations(named_schedule(exp.train), per_epoch).max_iter
    # the published s/iteration is for 16 images on 8 GPUs: scale to this run's batch
    s_per_iter = TRAIN_S_PER_ITER[depth] * (per_device / (REFERENCE_BATCH / REFERENCE_GPUS))
    train_h = iterations * s_per_iter * gpus / 3600
    infer_h = VAL_IMAGES[exp.dataset] * INFER_S_PER_IMAGE[depth] / 3600
    return {"dataset": exp.dataset, "backbone": f"R-{depth}", "iterations": iterations,
            "train_h": train_h, "infer_h": infer_h}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(args.params)
    resources = section(params, "resources", args.profile)
    gpus = int(resources["train"]["gpus"])
    if gpus < 1:
        sys.exit(f"profile {args.profile} trains on the CPU (resources.train.gpus: 0)")

    groups: dict[tuple, dict] = defaultdict(lambda: {"runs": 0, "train_h": 0.0, "infer_h": 0.0})
    for run in table_runs(params, args.profile):
        est = run_estimate(params, args.profile, run, gpus)
        group = groups[(est["dataset"], est["backbone"], est["iterations"])]
        group["runs"] += 1
        group["train_h"] += est["train_h"]
        group["infer_h"] += est["infer_h"]
    rows = [[dataset, backbone, g["runs"], iterations, g["train_h"], g["infer_h"]]
            for (dataset, backbone, iterations), g in groups.items()]

    # Table 5's AAR: one forward pass over the training split per analysed run (1 GPU each)
    aar = [resolve_experiment(params, run, args.profile) for e in table_experiments(params, "table5")
           for run in run_ids(params, e, args.profile)]
    aar_h = sum(TRAIN_IMAGES[exp.dataset] * INFER_S_PER_IMAGE[backbone_depth(exp)] for exp in aar) / 3600
    train_h = sum(g["train_h"] for g in groups.values())
    infer_h = sum(g["infer_h"] for g in groups.values())
    print(f"profile {args.profile}: {sum(g['runs'] for g in groups.values())} training runs on "
          f"{gpus} GPUs each (V100-hours at detectron2's published RetinaNet speeds)\n")
    print(tabulate(rows, headers=["dataset", "backbone", "runs", "iterations/run",
                                  "train GPU-h", "val inference GPU-h"], floatfmt=".1f"))
    print(f"\nAAR analyses: {len(aar)} runs, {aar_h:.1f} GPU-h")
    print(f"total: {train_h + infer_h + aar_h:.0f} V100 GPU-hours "
          f"(training {train_h:.0f}, inference {infer_h + aar_h:.1f})")


if __name__ == "__main__":
    main()
