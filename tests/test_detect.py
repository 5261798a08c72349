"""`lla detect` on a micro checkpoint trained here, over a folder with a jpg and a png:
the detections are those `lla infer` gives for the same pixels, the drawn images keep
each image's size and format, and bad input stops before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from PIL import Image

from lla.cli import main as cli
from lla.data.dataset import decode_rgb

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = "lla_fcos_r50"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A micro run of 4 iterations on synthcrowd micro; its val json and checkpoint."""
    root = tmp_path_factory.mktemp("detect")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data_root"] = str(root / "data")
    params["train"]["micro"].update({
        "images_per_device": 2, "reference_batch": 2, "warmup": {"iterations": 1, "factor": 0.1},
        "schedule": {"unit": "iteration", "length": 4, "steps": [3], "gamma": 0.1},
        "num_workers": 0})
    params_path = root / "params.yaml"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    crowdhuman = root / "data" / "synthcrowd" / "micro" / "crowdhuman"
    assert cli(["data", "synth", "--profile", "micro", "--params", str(params_path),
                "--out-dir", str(crowdhuman.parent), "--only", "crowdhuman", "--workers", "1"]) == 0
    assert cli(["data", "convert", "crowdhuman", "--root", str(crowdhuman)]) == 0
    run = root / "run"
    assert cli(["train", "--experiment", EXPERIMENT, "--profile", "micro", "--params",
                str(params_path), "--out-dir", str(run), "--device", "cpu"]) == 0
    return {"val": crowdhuman / "converted" / "val.json", "checkpoint": run / "model_final.pt",
            "params": params_path}


@pytest.fixture(scope="module")
def folder(trained, tmp_path_factory):
    """Two val images: the first as its jpg, the second as a png of the jpg's decoded pixels
    (what `lla infer` sees of it), in a subfolder, beside a text file."""
    val = json.loads(trained["val"].read_text())
    image_root = trained["val"].parent / val["info"]["image_root"]
    first, second = val["images"][:2]
    images = tmp_path_factory.mktemp("images")
    shutil.copy(image_root / first["file_name"], images / "a.jpg")
    (images / "sub").mkdir()
    pixels = decode_rgb(image_root / second["file_name"]).permute(1, 2, 0).numpy()
    Image.fromarray(pixels).save(images / "sub" / "b.png")
    (images / "notes.txt").write_text("not an image\n")
    return {"dir": images, "ids": {"a.jpg": first["id"], "sub/b.png": second["id"]},
            "sizes": {"a.jpg": (first["width"], first["height"]),
                      "sub/b.png": (second["width"], second["height"])}}


def detect(checkpoint: Path, images: Path, out_dir: Path, *extra: str) -> int:
    return cli(["detect", "--checkpoint", str(checkpoint), "--images", str(images),
                "--out-dir", str(out_dir), "--device", "cpu", *extra])


def test_detections_are_infers_and_the_drawings_keep_size_and_format(trained, folder, tmp_path):
    dets = tmp_path / "infer.json"
    assert cli(["infer", "--checkpoint", str(trained["checkpoint"]), "--data", str(trained["val"]),
                "--params", str(trained["params"]), "--profile", "micro", "--device", "cpu",
                "--images-per-device", "1", "--out", str(dets)]) == 0
    by_image: dict[int, list[dict]] = {}
    for det in json.loads(dets.read_text()):
        by_image.setdefault(det["image_id"], []).append(det)

    out = tmp_path / "all"
    assert detect(trained["checkpoint"], folder["dir"], out, "--score", "0", "--batch-size", "1") == 0
    result = json.loads((out / "detections.json").read_text())
    assert result["experiment"] == EXPERIMENT and result["score_thresh"] == 0
    assert [i["file_name"] for i in result["images"]] == ["a.jpg", "sub/b.png"]  # no notes.txt
    for image in result["images"]:
        name = image["file_name"]
        assert (image["width"], image["height"]) == folder["sizes"][name]
        expected = by_image[folder["ids"][name]]
        assert len(image["detections"]) == len(expected) > 0
        for got, want in zip(image["detections"], expected):
            assert got["category_id"] == want["category_id"] == 1
            assert got["score"] == pytest.approx(want["score"], abs=2e-6)
            assert got["bbox"] == pytest.approx(want["bbox"], abs=0.02)
        with Image.open(out / image["drawn"]) as drawn:
            assert drawn.size == folder["sizes"][name]
            assert drawn.format == ("JPEG" if name.endswith(".jpg") else "PNG")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "detections.json", "images/a.jpg", "images/sub/b.png"]

    # --score keeps the detections at or above it, the same ones
    threshold = sorted(d["score"] for d in result["images"][0]["detections"])[-3]
    kept = tmp_path / "kept"
    assert detect(trained["checkpoint"], folder["dir"], kept, "--score", str(threshold),
                  "--batch-size", "1") == 0
    filtered = json.loads((kept / "detections.json").read_text())
    for everything, some in zip(result["images"], filtered["images"]):
        assert some["detections"] == [d for d in everything["detections"]
                                      if d["score"] >= threshold]
    assert len(filtered["images"][0]["detections"]) >= 3


def _bad_folders(root: Path) -> dict[str, tuple[Path, Path, str]]:
    """name -> (images folder, the file the error names, the reason it gives)."""
    empty = root / "empty"
    empty.mkdir()
    text_only = root / "text_only"
    text_only.mkdir()
    (text_only / "readme.txt").write_text("hello")
    fake = root / "fake"
    fake.mkdir()
    (fake / "photo.jpg").write_text("not a jpeg")
    a_file = root / "photo.png"
    a_file.write_bytes(b"")
    return {"missing": (root / "missing", root / "missing", "no such directory"),
            "a file": (a_file, a_file, "not a directory"),
            "empty": (empty, empty, "no .jpg/.jpeg/.png image (it is empty)"),
            "text only": (text_only, text_only, "no .jpg/.jpeg/.png image (1 other file(s))"),
            "not an image": (fake, fake / "photo.jpg", "cannot read the image header")}


@pytest.mark.parametrize("case", ["missing", "a file", "empty", "text only", "not an image"])
def test_bad_folders_are_errors_naming_the_file(trained, tmp_path, capsys, case):
    images, named, reason = _bad_folders(tmp_path)[case]
    out = tmp_path / "out"
    assert detect(trained["checkpoint"], images, out) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {named}: ") and reason in err and err.count("\n") == 1, err
    assert not out.exists()


def test_a_file_that_is_not_a_checkpoint_is_an_error(folder, tmp_path, capsys):
    bogus = tmp_path / "model_final.pt"
    bogus.write_text("not a checkpoint")
    out = tmp_path / "out"
    assert detect(bogus, folder["dir"], out) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bogus}: cannot read the checkpoint") and err.count("\n") == 1
    assert detect(tmp_path / "absent.pt", folder["dir"], out) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'absent.pt'}: checkpoint not found")
    assert not out.exists()


def test_out_dir_inside_the_images_is_refused(trained, folder, capsys):
    out = folder["dir"] / "detections"
    assert detect(trained["checkpoint"], folder["dir"], out) == 2
    assert "--out-dir is inside --images" in capsys.readouterr().err
    assert not out.exists()


def test_score_outside_0_1_is_a_usage_error(trained, folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        detect(trained["checkpoint"], folder["dir"], tmp_path / "out", "--score", "1.5")
    assert exit_.value.code == 2
    assert "--score: must be in [0, 1]" in capsys.readouterr().err
