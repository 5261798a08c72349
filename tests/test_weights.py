"""ImageNet backbone weights: torchvision's files, fetched once into <data_root>/pretrained/
(`lla data weights`) and verified by the hash prefix in their names; training reads the local
file, loading a checkpoint reads none. The fetches go to an HTTP server on 127.0.0.1."""

from __future__ import annotations

import copy
import hashlib
import io
import socket
from pathlib import Path

import pytest
import torch
from test_download import FileServer, Route, server  # noqa: F401 (the server fixture)
from torchvision.models import resnet

import lla.cli
from lla import layout
from lla.config import load_params
from lla.data import weights
from lla.data.download import MANIFEST_NAME, TransferSettings
from lla.engine.experiment import resolve_experiment
from lla.engine.model import build_model, load_model
from lla.models import build_detector

PARAMS = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
QUICK = TransferSettings(timeout_s=2, attempts_per_url=1, retry_wait_s=0)


def fake_weights(seed: int = 0) -> tuple[str, bytes]:
    """A small state dict saved as torch.hub names its files: ``resnet50-<sha256[:8]>.pth``."""
    buffer = io.BytesIO()
    torch.save({"conv1.weight": torch.full((2, 3), float(seed))}, buffer)
    data = buffer.getvalue()
    return f"resnet50-{hashlib.sha256(data).hexdigest()[:8]}.pth", data


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def params_with_data_root(root: Path) -> dict:
    params = copy.deepcopy(PARAMS)
    params["data_root"] = str(root)
    return params


# --------------------------------------------------------------------------- the files

def test_imagenet_files_are_torchvisions_with_their_hash_prefix():
    r50, r101 = weights.imagenet_file(50), weights.imagenet_file(101)
    assert (r50.name, r50.sha256_prefix) == ("resnet50-0676ba61.pth", "0676ba61")
    assert (r101.name, r101.sha256_prefix) == ("resnet101-63fe2227.pth", "63fe2227")
    assert r50.urls == (resnet.ResNet50_Weights.IMAGENET1K_V1.url,)
    assert weights.imagenet_path({"data_root": "d"}, 101) == Path("d/pretrained/resnet101-63fe2227.pth")
    assert layout.pretrained_dir({"data_root": "d"}) == Path("d/pretrained")
    with pytest.raises(ValueError, match="carries no hash prefix"):
        weights.weights_file("http://host/resnet50.pth")


def test_experiments_resolve_imagenet_to_the_local_file():
    params = params_with_data_root(Path("/data"))
    r50 = resolve_experiment(params, "retinanet_r50", "paper").model
    r101 = resolve_experiment(params, "lla_retinanet_star_a1_r101", "official_code").model
    assert r50["backbone"]["weights"] == "/data/pretrained/resnet50-0676ba61.pth"
    assert r101["backbone"]["weights"] == "/data/pretrained/resnet101-63fe2227.pth"
    assert weights.pretrained_file(r101) == "/data/pretrained/resnet101-63fe2227.pth"
    # mini/micro train a tiny body from scratch: nothing to fetch
    micro = resolve_experiment(params, "retinanet_r101", "micro").model
    assert micro["backbone"]["weights"] is None and weights.pretrained_file(micro) is None
    # a path of one's own is kept; so is a config without ImageNet weights
    own = copy.deepcopy(r50)
    own["backbone"]["weights"] = "my/r50.pth"
    assert weights.resolve(params, own) == own
    assert weights.pretrained_file(own) == "my/r50.pth"


def test_mini_starts_from_the_pretrained_body_of_its_depth():
    params = params_with_data_root(Path("/data"))
    r50 = resolve_experiment(params, "lla_fcos_r50", "mini").model
    r101 = resolve_experiment(params, "retinanet_r101", "mini").model
    assert r50["backbone"]["weights"] == "runs/mini/pretrain/body_r50.pt"
    assert r101["backbone"]["weights"] == "runs/mini/pretrain/body_r101.pt"
    assert weights.pretrained_file(r101) == "runs/mini/pretrain/body_r101.pt"
    # the keyword belongs to the tiny body; `pretrain` on a ResNet is not resolved
    resnet = copy.deepcopy(resolve_experiment(params, "retinanet_r50", "paper").model)
    resnet["backbone"]["weights"] = "pretrain"
    assert weights.resolve(params, resnet, "paper") == resnet
    # one file per depth ({depth: file}) names the file of the body's depth
    tiny = copy.deepcopy(r50)
    tiny["backbone"]["weights"] = {50: "a.pt", 101: "b.pt"}
    assert weights.pretrained_file(tiny) == "a.pt"
    tiny["backbone"]["depth"] = 101
    assert weights.pretrained_file(tiny) == "b.pt"


# --------------------------------------------------------------------------- fetching

def test_fetch_from_a_server_verifies_the_hash_prefix_and_fetches_once(tmp_path, server):
    name, data = fake_weights()
    server.routes[f"/models/{name}"] = Route(data)
    spec = weights.weights_file(server.url(f"/models/{name}"))
    assert weights.fetch([spec], tmp_path, QUICK) == []
    assert (tmp_path / name).read_bytes() == data
    assert (tmp_path / MANIFEST_NAME).is_file()
    # verified once: a second fetch neither downloads nor fails
    assert weights.fetch([spec], tmp_path, QUICK) == []
    assert len(server.requests) == 1


def test_a_file_that_does_not_match_its_hash_prefix_is_rejected(tmp_path, server):
    name, _ = fake_weights(seed=0)
    _, other = fake_weights(seed=1)
    server.routes[f"/{name}"] = Route(other)
    missing = weights.fetch([weights.weights_file(server.url(f"/{name}"))], tmp_path, QUICK)
    assert [m.spec.name for m in missing] == [name]
    assert "did not match (sha256 is " in missing[0].reasons[0]
    assert f"expected one that starts with {name[9:17]}" in missing[0].reasons[0]
    assert not (tmp_path / name).exists()
    assert not list(tmp_path.glob("*.part"))


def test_a_file_placed_by_hand_is_verified_without_going_online(tmp_path):
    name, data = fake_weights()
    (tmp_path / name).write_bytes(data)
    spec = weights.weights_file(f"http://127.0.0.1:{closed_port()}/{name}")
    assert weights.fetch([spec], tmp_path, QUICK) == []
    # a wrong file under that name is moved aside, never deleted
    bad_name, _ = fake_weights(seed=2)
    (tmp_path / bad_name).write_bytes(data)
    missing = weights.fetch([weights.weights_file(f"http://127.0.0.1:{closed_port()}/{bad_name}")],
                            tmp_path, QUICK)
    assert len(missing) == 1 and (tmp_path / f"{bad_name}.rejected").read_bytes() == data


def test_offline_one_message_names_the_file_its_url_and_where_to_put_it(tmp_path, monkeypatch,
                                                                        capsys):
    urls = {depth: f"http://127.0.0.1:{closed_port()}/models/{name}"
            for depth, name in ((50, "resnet50-0676ba61.pth"), (101, "resnet101-63fe2227.pth"))}
    monkeypatch.setattr(weights, "torchvision_url", urls.get)
    monkeypatch.setattr(weights, "SETTINGS", QUICK)
    out = tmp_path / "pretrained dir"
    assert lla.cli.main(["data", "weights", "resnet50", "resnet101", "--out-dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("2 file(s) of the ImageNet backbone weights could not be downloaded. "
                          "Put each one into the directory shown, then rerun `lla data weights "
                          f"resnet50 resnet101 --out-dir '{out}'`")
    assert f"  into {out.resolve()}/\n    resnet50-0676ba61.pth  (sha256_prefix 0676ba61)\n" in err
    assert f"how to get it: torchvision's ResNet-101 ImageNet weights (IMAGENET1K_V1); on a " \
           f"machine online: wget {urls[101]}" in err
    assert "connection failed" in err
    assert not list(out.glob("*.pth*"))


# --------------------------------------------------------------------------- reading them

def test_training_reads_the_local_file_and_a_checkpoint_needs_none(tmp_path):
    params = params_with_data_root(tmp_path)
    reference = resnet.resnet50(weights=None)
    torch.nn.init.constant_(reference.conv1.weight, 0.5)
    path = weights.imagenet_path(params, 50)
    with pytest.raises(FileNotFoundError, match="`lla data weights resnet50` fetches"):
        build_detector(params, "retinanet", "paper")
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    exp = resolve_experiment(params, "retinanet_r50", "paper")
    model = build_model(exp)
    assert torch.equal(model.backbone.body.stem[0].weight, reference.conv1.weight)
    assert torch.equal(build_detector(params, "retinanet", "paper").backbone.body.stem[0].weight,
                       reference.conv1.weight)
    # a checkpoint holds every weight: loading it reads no ImageNet file (analyses, inference)
    state = {"config": exp.to_dict(), "model": model.state_dict()}
    path.unlink()
    loaded, loaded_exp = load_model(state, torch.device("cpu"))
    assert loaded_exp.model["backbone"]["weights"] == str(path)
    assert torch.equal(loaded.backbone.body.stem[0].weight, reference.conv1.weight)
