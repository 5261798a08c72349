"""`lla analyze aar`: the ambiguous assignment ratio (AAR, paper eq. 6, Table 5)."""

import json
from pathlib import Path

import pytest
import yaml
import torch
from PIL import Image

from lla.analysis.aar import aar, ambiguous_counts
from lla.assign.base import NEGATIVE, Assignment
from lla.cli import main
from lla.config import load_params
from lla.engine import checkpoint as ckpt
from lla.engine.experiment import resolve_experiment
from lla.engine.model import build_model

REPO = Path(__file__).resolve().parents[1]


def _assignment(matched_gt, num_candidates):
    return Assignment(matched_gt=torch.tensor(matched_gt, dtype=torch.int64),
                      num_candidates=torch.tensor(num_candidates, dtype=torch.int64))


def test_counts_by_hand():
    # Image 1, GTs (person, person, ignore). Anchors:
    #   0 -> GT 0, claimed by 2 GTs: positive, ambiguous
    #   1 -> GT 1, claimed by 1:     positive
    #   2 -> negative (claimed by none)
    #   3 -> GT 0, claimed by 1:     positive
    #   4 -> GT 2 (ignore), claimed by 3: not a positive, so not counted either way
    # -> 1 ambiguous of 3 positives.
    # Image 2, one GT: anchors 0 and 1 -> GT 0, each claimed once -> 0 of 2.
    # Sum: 1 ambiguous / 5 positives, AAR = 0.2.
    first = _assignment([0, 1, NEGATIVE, 0, 2], [2, 1, 0, 1, 3])
    second = _assignment([0, 0, NEGATIVE], [1, 1, 0])
    ignore = [torch.tensor([False, False, True]), torch.tensor([False])]
    assert ambiguous_counts([first, second], ignore) == (1, 5)
    assert aar(1, 5) == pytest.approx(0.2)


def test_no_positives_and_missing_candidates():
    assert ambiguous_counts([_assignment([NEGATIVE], [0])], [torch.tensor([False])]) == (0, 0)
    assert aar(0, 0) is None
    without = Assignment(matched_gt=torch.tensor([0], dtype=torch.int64))
    with pytest.raises(ValueError, match="num_candidates"):
        ambiguous_counts([without], [torch.tensor([False])])


def _person(ann_id, image_id, bbox):
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": bbox, "vis_box": bbox,
            "head_box": None, "vis_ratio": 1.0, "height": bbox[3], "area": bbox[2] * bbox[3],
            "ignore": 0, "iscrowd": 0}


@pytest.fixture
def micro_setup(tmp_path):
    """params.yaml with data_root in tmp_path, a hand-made crowdhuman train split and an
    untrained micro LLA.RetinaNet*(#A=1) checkpoint (K = 10)."""
    params = load_params(REPO / "params.yaml")
    params["data_root"] = str(tmp_path / "data")
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(dict(params), sort_keys=False))
    converted = tmp_path / "data" / "synthcrowd" / "micro" / "crowdhuman" / "converted"
    (converted / "images").mkdir(parents=True)
    for name in ("one.jpg", "two.jpg"):
        Image.new("RGB", (128, 128), (90, 120, 150)).save(converted / "images" / name)
    box = [32, 32, 64, 64]  # 64 x 64 at the centre: holds far more than K = 10 anchor centres
    data = {"info": {"dataset": "crowdhuman", "split": "train", "image_root": "images"},
            "images": [{"id": 1, "file_name": "one.jpg", "width": 128, "height": 128},
                       {"id": 2, "file_name": "two.jpg", "width": 128, "height": 128}],
            "annotations": [_person(1, 1, box), _person(2, 2, box), _person(3, 2, box)],
            "categories": [{"id": 1, "name": "person"}]}
    (converted / "train.json").write_text(json.dumps(data))
    exp = resolve_experiment(params, "lla_retinanet_star_a1_r50", "micro")
    assert exp.model["assigner"]["topk"] == 10
    torch.manual_seed(0)
    checkpoint = tmp_path / "model_final.pt"
    ckpt.save_checkpoint(checkpoint, {"format": ckpt.CHECKPOINT_FORMAT, "iteration": 0,
                                      "model": build_model(exp).state_dict(),
                                      "config": exp.to_dict()})
    return params_path, checkpoint


def test_aar_of_a_checkpoint_end_to_end(micro_setup, tmp_path):
    # LLA: each GT takes its K = 10 cheapest anchors. Image 1 has one GT: 10 positives, none
    # contested. Image 2 has two identical GTs: identical costs, so both claim the same 10
    # anchors; each anchor goes to one of them -> 10 positives, all 10 ambiguous.
    # AAR = 10 / 20 = 0.5, whatever the (untrained) predictions are.
    params_path, checkpoint = micro_setup
    out = tmp_path / "aar.json"
    assert main(["analyze", "aar", "--checkpoint", str(checkpoint), "--profile", "micro",
                 "--params", str(params_path), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert (result["ambiguous"], result["positives"], result["images"]) == (10, 20, 2)
    assert result["AAR"] == pytest.approx(0.5)
    assert result["experiment"] == "lla_retinanet_star_a1_r50" and result["split"] == "train"
    # --max-images 1: the first image only, nothing contested.
    assert main(["analyze", "aar", "--checkpoint", str(checkpoint), "--profile", "micro",
                 "--params", str(params_path), "--max-images", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert (result["AAR"], result["ambiguous"], result["positives"]) == (0.0, 0, 10)


def test_bad_inputs_are_reported(micro_setup, tmp_path, capsys):
    params_path, checkpoint = micro_setup
    out = tmp_path / "aar.json"
    assert main(["analyze", "aar", "--checkpoint", str(tmp_path / "missing.pt"), "--profile",
                 "micro", "--params", str(params_path), "--out", str(out)]) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert main(["analyze", "aar", "--checkpoint", str(checkpoint), "--profile", "micro",
                 "--params", str(params_path), "--max-images", "0", "--out", str(out)]) == 2
    assert "--max-images" in capsys.readouterr().err
    assert not out.exists()
