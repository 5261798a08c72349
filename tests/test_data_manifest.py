"""`lla data manifest`: every raw and converted data file of a profile, with size and sha256.

Hand-made dataset roots (the manifest reads no content, it hashes files): a synthcrowd
profile (annotation files, the generator's manifest, converted jsons) and a download
profile whose files are partly verified by the downloader already, partly not, and one
archive deleted after unpacking.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import yaml

from lla.cli import main
from lla.data import archive, registry

ROOT = Path(__file__).resolve().parents[1]
ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"   # sha256(b"abc")


def _write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _facts(content: bytes) -> dict:
    return {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}


def _converted(root: Path) -> dict:
    """Converted jsons of both splits under ``root``; their expected entries."""
    entries = {}
    for split in registry.SPLITS:
        content = f'{{"split": "{split}"}}\n'.encode()
        _write(root / "converted" / f"{split}.json", content)
        entries[f"converted/{split}.json"] = _facts(content)
    return entries


def _manifest(tmp_path: Path, profile: str, *extra: str) -> tuple[int, Path]:
    out = tmp_path / "results" / profile / "data_manifest.json"
    code = main(["data", "manifest", "--profile", profile, "--params", str(ROOT / "params.yaml"),
                 "--data-root", str(tmp_path / "data"), "--out", str(out), *extra])
    return code, out


def _synthcrowd_micro(data: Path) -> dict:
    """Every file the manifest of `micro` lists, written by hand; the expected datasets block."""
    expected = {}
    for dataset in registry.names():
        root = data / "synthcrowd" / "micro" / dataset
        raw = {}
        for number, path in enumerate(registry.get(dataset).annotation_files(root)):
            content = f"{dataset} annotations {number}\n".encode()
            raw[Path(path).relative_to(root).as_posix()] = _facts(_write(Path(path), content)
                                                                   .read_bytes())
        raw["synthcrowd_manifest.json"] = _facts(
            _write(root / "synthcrowd_manifest.json", b"abc").read_bytes())
        _write(root / "Images" / "a.jpg", b"an image: not listed")
        expected[dataset] = {"source": "synthcrowd", "root": root.as_posix(), "raw": raw,
                             "converted": _converted(root)}
    return expected


def test_synthcrowd_profile_lists_annotations_generator_manifest_and_converted_jsons(tmp_path):
    expected = _synthcrowd_micro(tmp_path / "data")
    code, out = _manifest(tmp_path, "micro")
    assert code == 0
    manifest = json.loads(out.read_text())
    assert manifest == {"version": 1, "profile": "micro", "datasets": expected}
    # the hand-worked digest of b"abc" (FIPS 180-2's first example)
    assert manifest["datasets"]["crowdhuman"]["raw"]["synthcrowd_manifest.json"] == {
        "bytes": 3, "sha256": ABC_SHA256}
    assert list(manifest["datasets"]["crowdhuman"]["raw"]) == [
        "annotation_train.odgt", "annotation_val.odgt", "synthcrowd_manifest.json"]
    assert list(manifest["datasets"]["citypersons"]["raw"])[:2] == [
        "annotations/anno_train.mat", "annotations/anno_val.mat"]


def test_the_same_data_gives_the_same_bytes_whatever_the_times(tmp_path):
    _synthcrowd_micro(tmp_path / "data")
    assert _manifest(tmp_path, "micro")[0] == 0
    first = (tmp_path / "results" / "micro" / "data_manifest.json").read_bytes()
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            os.utime(path, ns=(1, 1))
    assert _manifest(tmp_path, "micro")[0] == 0
    assert (tmp_path / "results" / "micro" / "data_manifest.json").read_bytes() == first
    # one changed byte in a converted json shows in its entry, and only there
    _write(tmp_path / "data" / "synthcrowd" / "micro" / "citypersons" / "converted" / "val.json",
           b'{"split": "VAL"}\n')
    assert _manifest(tmp_path, "micro")[0] == 0
    before, after = json.loads(first), json.loads(
        (tmp_path / "results" / "micro" / "data_manifest.json").read_bytes())
    after["datasets"]["citypersons"]["converted"]["converted/val.json"] = (
        before["datasets"]["citypersons"]["converted"]["converted/val.json"])
    assert after == before


def _download_files(dataset: str) -> list[dict]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    return params[dataset]["download"]["files"]


def test_download_profile_uses_verified_digests_hashes_the_rest_and_reads_unpack_markers(tmp_path):
    data = tmp_path / "data"
    chroot = data / "crowdhuman"
    files = {entry["name"]: entry for entry in _download_files("crowdhuman")}
    assert {"CrowdHuman_train01.zip", "CrowdHuman_val.zip", "annotation_val.odgt"} <= set(files)
    for name in files:
        if name != "CrowdHuman_val.zip":
            _write(chroot / name, f"{name} content".encode())
    # train01 was verified by the downloader: its recorded sha256 is used, not recomputed
    # (a fake digest proves the file is not read).
    verified = chroot / "CrowdHuman_train01.zip"
    stat = verified.stat()
    recorded = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": "f" * 64}
    _write(chroot / "download_manifest.json", json.dumps(
        {"version": 1, "files": {"CrowdHuman_train01.zip": recorded}}).encode())
    # the val archive was unpacked and then deleted: its marker keeps the sha256
    _write(archive.marker_path(chroot, "CrowdHuman_val.zip"),
           json.dumps({"archive": "CrowdHuman_val.zip", "sha256": "e" * 64, "files": 8}).encode())
    converted = _converted(chroot)
    city = data / "citypersons"
    for entry in _download_files("citypersons"):
        _write(city / entry.get("dest", ".") / entry["name"], b"abc")
    _converted(city)

    code, out = _manifest(tmp_path, "paper")
    assert code == 0
    manifest = json.loads(out.read_text())
    crowdhuman = manifest["datasets"]["crowdhuman"]
    assert crowdhuman["source"] == "download" and crowdhuman["root"] == chroot.as_posix()
    assert list(crowdhuman["raw"]) == list(files)
    assert crowdhuman["raw"]["CrowdHuman_train01.zip"] == {"bytes": stat.st_size, "sha256": "f" * 64}
    assert crowdhuman["raw"]["CrowdHuman_val.zip"] == {"sha256": "e" * 64, "on_disk": False}
    assert crowdhuman["raw"]["annotation_val.odgt"] == _facts(b"annotation_val.odgt content")
    assert crowdhuman["converted"] == converted
    assert manifest["datasets"]["citypersons"]["raw"]["annotations/anno_val.mat"] == {
        "bytes": 3, "sha256": ABC_SHA256}

    # a changed modification time: the downloader's record no longer vouches, the file is hashed
    os.utime(verified, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert _manifest(tmp_path, "paper")[0] == 0
    rehashed = json.loads(out.read_text())["datasets"]["crowdhuman"]["raw"]
    assert rehashed["CrowdHuman_train01.zip"] == _facts(b"CrowdHuman_train01.zip content")


@pytest.mark.parametrize("missing", ["converted", "raw", "archive"])
def test_a_missing_file_is_an_error_naming_it_and_writes_nothing(tmp_path, capsys, missing):
    _synthcrowd_micro(tmp_path / "data")
    if missing == "archive":      # a download profile's archive neither on disk nor unpacked
        profile, chroot = "paper", tmp_path / "data" / "crowdhuman"
        for entry in _download_files("crowdhuman"):
            if entry["name"] != "CrowdHuman_train02.zip":
                _write(chroot / entry["name"], b"x")
        _converted(chroot)
        path = chroot / "CrowdHuman_train02.zip"
    else:
        profile = "micro"
        root = tmp_path / "data" / "synthcrowd" / "micro" / "citypersons"
        path = root / ("converted/train.json" if missing == "converted" else "annotations/anno_val.mat")
        path.unlink()
    code, out = _manifest(tmp_path, profile)
    assert code == 2
    assert capsys.readouterr().err.startswith(f"error: {path}: missing")
    assert not out.exists()
