"""The anchor regime of synthcrowd: anchor points inside a person, at the paper's input and at mini's.

    python benchmarks/anchor_regime.py                                  # reference, mini 1x / 2x
    python benchmarks/anchor_regime.py --scales 1 1.5 2 --k 10
    python benchmarks/anchor_regime.py --scales 1 2 --p2                # + the P2-P6 pyramid at 1x
    python benchmarks/anchor_regime.py --checkpoint lla_1x=runs/science/base/lla_fcos_r50/model_final.pt \\
        --checkpoint lla_2x=runs/science/x2/lla_fcos_r50/model_final.pt --max-images 200

Rows (valid persons' full boxes of the CrowdHuman-flavour val split, after the training
input transform; :func:`lla.analysis.regime.anchor_regime` with params.yaml's strides and
size_divisibility):

* ``reference``: synthcrowd's default CrowdHuman-like flavour (``synthcrowd.defaults``,
  384 x 384 images) at the paper's input, short side 800 / long side <= 1400. Its val split
  is generated under ``--data-root`` when missing (train_images 0: the val images are the
  default flavour's own, whose streams depend only on seed, split and index);
* ``mini xF``: synthcrowd-mini at ``input.mini`` multiplied by each ``--scales`` factor
  (1 = mini as trained);
* ``mini x1, P2-P6`` (``--p2``): mini's input with the pyramid of ``finest_level: 2``,
  strides 4..64 (the strides of params.yaml halved).

``--checkpoint LABEL=PATH`` adds, per checkpoint, a model pass over the first
``--max-images`` images of synthcrowd-mini's train split (at the checkpoint's own input
size): positives per person, and the share outside their box overall and for persons
under 32 px (:func:`lla.analysis.regime.positives_outside`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from lla.analysis.regime import InputTransform, anchor_regime, positives_outside  # noqa: E402
from lla.config import load_params, section  # noqa: E402

REFERENCE = "reference"


def reference_val(params: dict, data_root: Path) -> Path:
    """The default flavour's val json (generated and converted when missing)."""
    root = data_root / "synthcrowd" / REFERENCE / "crowdhuman"
    json_path = root / "converted" / "val.json"
    if json_path.is_file():
        return json_path
    block = dict(params["synthcrowd"])
    block[REFERENCE] = {"crowdhuman": {"train_images": 0}}
    # a profile of its own (the schema checks every per-profile key against `profiles`),
    # drawing its data from synthcrowd as mini does
    profiles = dict(params["profiles"], **{REFERENCE: params["profiles"]["mini"]})
    with tempfile.TemporaryDirectory() as tmp:
        params_path = Path(tmp) / "params.yaml"
        params_path.write_text(yaml.safe_dump(dict(params, synthcrowd=block, profiles=profiles),
                                              sort_keys=False))
        lla = [sys.executable, "-m", "lla.cli"]
        subprocess.run(lla + ["data", "synth", "--profile", REFERENCE, "--params", str(params_path),
                              "--out-dir", str(root.parent), "--only", "crowdhuman"], check=True)
    subprocess.run(lla + ["data", "convert", "crowdhuman", "--root", str(root), "--out-dir",
                          str(root / "converted"), "--split", "val"], check=True)
    return json_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--data-root", type=Path, default=Path("data"))
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0],
                        help="multiples of input.mini to show (1 = mini as trained)")
    parser.add_argument("--p2", action="store_true",
                        help="add mini x1 with the P2-P6 pyramid (strides 4..64)")
    parser.add_argument("--k", type=int, default=10, help="K of the share below K (LLA's top-K)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="LABEL=PATH",
                        help="a trained checkpoint for the positives-outside model pass")
    parser.add_argument("--max-images", type=int, default=200,
                        help="train images of the model pass (default 200)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    models = section(params, "models", "paper")
    strides = [int(s) for s in models["strides"]]
    divisibility = int(models["input"]["size_divisibility"])
    paper_input = section(params, "input", "paper")
    mini_input = section(params, "input", "mini")
    mini_val = args.data_root / "synthcrowd" / "mini" / "crowdhuman" / "converted" / "val.json"

    rows = [(f"reference: default flavour, short side {paper_input['min_size']}",
             reference_val(params, args.data_root),
             InputTransform(paper_input["min_size"], paper_input["max_size"], divisibility), strides)]
    for scale in args.scales:
        transform = InputTransform(round(mini_input["min_size"] * scale),
                                   round(mini_input["max_size"] * scale), divisibility)
        shipped = ", mini as shipped" if scale == 1 else ""
        rows.append((f"mini x{scale:g} (min_size {transform.min_size}, max_size {transform.max_size}"
                     f"{shipped})",
                     mini_val, transform, strides))
    if args.p2:
        transform = InputTransform(mini_input["min_size"], mini_input["max_size"], divisibility)
        rows.append(("mini x1, P2-P6 (finest_level 2)", mini_val, transform,
                     [s // 2 for s in strides]))

    print(f"Anchor points inside each valid person's full box, val splits, K = {args.k}; "
          f"strides {strides} unless the row says P2-P6 ({[s // 2 for s in strides]})\n")
    print("| setting | input (H x W) | persons | median points | 25th pct | < K | none | "
          "median height (px) | mean points per level, finest first |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, json_path, transform, row_strides in rows:
        stats = anchor_regime(json_path, transform, row_strides, k=args.k)
        sizes = ", ".join(f"{h}x{w}" for h, w in stats.input_sizes[:2])
        per_level = " / ".join(f"{v:.1f}" for v in stats.mean_points_per_level)
        print(f"| {label} | {sizes} | {stats.persons} | {stats.median_points:g} | "
              f"{stats.p25_points:g} | {100 * stats.share_below_k:.1f} % | "
              f"{100 * stats.share_without_points:.1f} % | {stats.median_height:g} | {per_level} |",
              flush=True)

    if args.checkpoint:
        mini_train = mini_val.with_name("train.json")
        print(f"\nPositives of a trained model's assigner on the first {args.max_images} "
              f"synthcrowd-mini train images (its own input size, no flip)\n")
        print("| checkpoint | input | persons | positives / person | outside their box | "
              "outside, persons < 32 px | persons with < K points inside |")
        print("|---|---|---|---|---|---|---|")
        import torch

        for item in args.checkpoint:
            label, _, path = item.partition("=")
            state = torch.load(path, map_location="cpu", weights_only=False)
            input_cfg = state["config"]["input"]
            stats = positives_outside(path, mini_train, input_cfg, max_images=args.max_images,
                                      k=args.k)
            small = stats.by_height["[0, 32)"]
            print(f"| {label} | {input_cfg['min_size']}/{input_cfg['max_size']} | {stats.gts} | "
                  f"{stats.positives_per_gt:.2f} | {100 * stats.share_outside:.1f} % | "
                  f"{100 * small['share_outside']:.1f} % ({small['gts']} persons) | "
                  f"{100 * stats.gts_below_k_inside / max(stats.gts, 1):.1f} % |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
