"""Mixed precision on the CPU (``train.amp_on_cpu``): the bfloat16 autocast path trains,
resumes bit-identically and infers; the float16 path's GradScaler is saved and restored
with the checkpoints and skips a step whose gradients are not finite (micro profile)."""

from __future__ import annotations

import json

import pytest
import torch

from lla.engine import checkpoint as ckpt
from lla.engine.model import Amp
from lla.models.heads import DenseHead
from test_engine_runs import (assert_same_weights, data_root, train, weights,  # noqa: F401
                              write_params)

SCHEDULE = {"unit": "iteration", "length": 4, "steps": [3], "gamma": 0.1}
FRESH_SCALE = 2.0 ** 16  # torch.amp.GradScaler's initial scale


def amp_params(path, data_root, dtype: str, **overrides):  # noqa: F811
    return write_params(path, data_root, amp=True, amp_dtype=dtype, amp_on_cpu=True,
                        schedule=SCHEDULE, checkpoint_every=1, keep_last=10, **overrides)


def test_amp_is_off_on_the_cpu_unless_asked():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    paper = {"amp": True, "amp_dtype": "float16"}
    assert not Amp.from_train_settings(paper, cpu).enabled
    assert Amp.from_train_settings(paper, cuda).scales_gradients
    on_cpu = Amp.from_train_settings({**paper, "amp_on_cpu": True}, cpu)
    assert on_cpu.enabled and on_cpu.scales_gradients
    assert on_cpu.grad_scaler(cpu).is_enabled()
    bf16 = Amp.from_train_settings({**paper, "amp_dtype": "bfloat16", "amp_on_cpu": True}, cpu)
    assert bf16.enabled and bf16.dtype == torch.bfloat16 and not bf16.scales_gradients
    assert not bf16.grad_scaler(cpu).is_enabled()
    assert not Amp.from_train_settings({"amp": False, "amp_on_cpu": True}, cpu).enabled
    with pytest.raises(ValueError, match="amp_dtype"):
        Amp.from_train_settings({"amp": True, "amp_dtype": "float8"}, cpu)


def test_bfloat16_autocast_trains_resumes_and_infers_on_the_cpu(data_root, tmp_path,  # noqa: F811
                                                                monkeypatch):
    params = amp_params(tmp_path / "params.yaml", data_root, "bfloat16")
    dtypes = set()
    forward = DenseHead.forward

    def recording(self, features):
        outputs = forward(self, features)
        dtypes.add(outputs.cls_logits.dtype)
        return outputs

    monkeypatch.setattr(DenseHead, "forward", recording)
    full = tmp_path / "full"
    assert train(params, full, "--infer-out", str(tmp_path / "dets.json")) == 0
    assert dtypes == {torch.bfloat16}                     # the head ran under autocast
    final = torch.load(full / "model_final.pt", weights_only=True)
    assert all(v.dtype != torch.bfloat16 for v in final["model"].values())  # float32 weights
    assert torch.load(ckpt.checkpoint_path(full, 4), weights_only=True)["scaler"] == {}
    detections = json.loads((tmp_path / "dets.json").read_text())
    assert detections and all(d["score"] > 0 for d in detections)

    out = tmp_path / "resumed"
    assert train(params, out, "--stop-after", "2") == 0
    assert train(params, out) == 0
    assert_same_weights(weights(full / "model_final.pt"), weights(out / "model_final.pt"))


def _scaler(run, iteration):
    return torch.load(ckpt.checkpoint_path(run, iteration), weights_only=True)["scaler"]


def test_float16_grad_scaler_state_is_saved_and_resumed(data_root, tmp_path):  # noqa: F811
    params = amp_params(tmp_path / "params.yaml", data_root, "float16")
    full = tmp_path / "full"
    assert train(params, full) == 0
    scales = [_scaler(full, it) for it in range(1, 5)]
    assert all(s["scale"] > 0 and s["growth_interval"] == 2000 for s in scales)
    # the growth tracker counts the finite steps since the last overflow; it goes on counting
    # across the resume only if the scaler state was restored
    assert scales[-1]["_growth_tracker"] >= 1

    out = tmp_path / "resumed"
    assert train(params, out, "--stop-after", "2") == 0
    assert _scaler(out, 2) == scales[1]
    assert train(params, out) == 0
    assert _scaler(out, 4) == scales[3]
    assert_same_weights(weights(full / "model_final.pt"), weights(out / "model_final.pt"))


class _InfiniteGradient(torch.autograd.Function):
    """Identity forward; an infinite gradient backward (an overflow in the backward pass)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float("inf"))


def test_float16_step_with_an_infinite_gradient_is_skipped(data_root, tmp_path,  # noqa: F811
                                                           monkeypatch):
    from lla.models.detector import DenseDetector

    params = amp_params(tmp_path / "params.yaml", data_root, "float16")
    original = DenseDetector.compute_losses
    calls = {"n": 0}

    def overflow_on_second_call(self, *args, **kwargs):
        losses = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:  # iteration 2: the loss is finite, its gradient is not
            losses["loss_box"] = _InfiniteGradient.apply(losses["loss_box"])
        return losses

    monkeypatch.setattr(DenseDetector, "compute_losses", overflow_on_second_call)
    run = tmp_path / "overflow"
    assert train(params, run) == 0                      # a skipped step is no divergence
    before, skipped, after = (torch.load(ckpt.checkpoint_path(run, it), weights_only=True)
                              for it in (1, 2, 3))
    assert_same_weights(before["model"], skipped["model"])   # the optimizer step was skipped
    assert before["optimizer"]["state"].keys() == skipped["optimizer"]["state"].keys()
    for key, state in before["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], skipped["optimizer"]["state"][key]["momentum_buffer"])
    assert skipped["scaler"]["scale"] == before["scaler"]["scale"] * skipped["scaler"]["backoff_factor"]
    assert skipped["scaler"]["_growth_tracker"] == 0
    assert any(not torch.equal(v, after["model"][k]) for k, v in skipped["model"].items())
    assert after["scaler"]["_growth_tracker"] == 1       # the next step trained normally
    assert skipped["scheduler"]["last_epoch"] == 2       # the schedule still advanced
