"""The evaluators' numbers on a fixed set of inputs, recorded once and checked to 1e-9.

``tests/eval_recorded.json`` holds the metrics that the loop-per-image evaluators (JI
computed image by image, COCO AP through pycocotools) gave on these inputs; the vectorised
evaluators must give the same numbers, read from files as the command line reads them.
The inputs are regenerated from seeds: the small random cases of the two evaluator test
modules (every quirk of the protocols) and dense-crowd sets of the benchmark generators
(many images whose JI needs a real maximum matching).

To rewrite the file (only for a deliberate change of the numbers, which must be explained):

    python tests/test_eval_recorded.py --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS), str(TESTS.parent / "benchmarks"), str(TESTS.parent)]

from lla.errors import DataError  # noqa: E402
from lla.eval import citypersons, crowdhuman  # noqa: E402

RECORDED = TESTS / "eval_recorded.json"
TOLERANCE = 1e-9


def _crowdhuman_cases():
    """(name, GT records or json, detections, suffix) of every CrowdHuman case."""
    from eval_crowdhuman import generate, to_odgt_records
    from test_eval_crowdhuman import _random_case

    for near in (False, True):
        rng = np.random.default_rng(2024 + near)
        for k in range(60):
            gts, dts = _random_case(rng, near)
            yield f"crowdhuman/random/{'near' if near else 'far'}/{k}", gts, dts, ".odgt"
    for seed in (0, 1):
        gt, dt = generate(seed, num_images=120)
        yield f"crowdhuman/crowd/{seed}/json", gt, dt, ".json"
        gt_records, dt_records = to_odgt_records(gt, dt)
        yield f"crowdhuman/crowd/{seed}/odgt", gt_records, dt_records, ".odgt"


def _citypersons_cases():
    from eval_citypersons import generate
    from test_eval_citypersons import random_case

    for seed in range(100):
        gt, dt = random_case(seed)
        yield f"citypersons/random/{seed}", gt, dt
    gt, dt = generate(80, 100, 3)
    yield "citypersons/bench", gt, dt


def _write(path: Path, data, suffix: str) -> Path:
    path = path.with_suffix(suffix)
    if suffix == ".odgt":
        path.write_text("".join(json.dumps(r) + "\n" for r in data))
    else:
        path.write_text(json.dumps(data))
    return path


def crowdhuman_metrics(tmp: Path, gt, dt, suffix: str) -> dict:
    """All CrowdHuman metrics, read from files; {"error": reason} for rejected input."""
    gt_path, dt_path = _write(tmp / "gt", gt, suffix), _write(tmp / "dt", dt, suffix)
    try:
        return crowdhuman.evaluate(gt_path, dt_path, ji=True, coco=True)
    except DataError as e:
        return {"error": e.reason}


def citypersons_metrics(tmp: Path, gt, dt) -> dict:
    gt_path, dt_path = _write(tmp / "gt", gt, ".json"), _write(tmp / "dt", dt, ".json")
    return citypersons.evaluate(gt_path, dt_path, coco=True)


def compute_all(tmp: Path) -> dict[str, dict]:
    results = {}
    for name, gt, dt, suffix in _crowdhuman_cases():
        results[name] = crowdhuman_metrics(tmp, gt, dt, suffix)
    for name, gt, dt in _citypersons_cases():
        results[name] = citypersons_metrics(tmp, gt, dt)
    return results


def _recorded() -> dict[str, dict]:
    return json.loads(RECORDED.read_text())


def _assert_same(name: str, got: dict, want: dict) -> None:
    assert set(got) == set(want), name
    if "error" in want:
        assert got == want, name
        return
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=TOLERANCE, rel=0), (name, key)


def test_crowdhuman_numbers_equal_the_recorded_ones(tmp_path):
    recorded = _recorded()
    names = []
    for name, gt, dt, suffix in _crowdhuman_cases():
        _assert_same(name, crowdhuman_metrics(tmp_path, gt, dt, suffix), recorded[name])
        names.append(name)
    # Every case but the few without a valid GT box was evaluated.
    assert sum("error" not in recorded[n] for n in names) > 100


def test_citypersons_numbers_equal_the_recorded_ones(tmp_path):
    recorded = _recorded()
    for name, gt, dt in _citypersons_cases():
        _assert_same(name, citypersons_metrics(tmp_path, gt, dt), recorded[name])
        # Without COCO AP the files are read the fast way (typed decoding).
        miss_rates = citypersons.evaluate(tmp_path / "gt.json", tmp_path / "dt.json")
        _assert_same(name, miss_rates, {k: recorded[name][k] for k in citypersons.SETUP_NAMES})


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        values = compute_all(Path(tmp))
    RECORDED.write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(values)} cases to {RECORDED}")
