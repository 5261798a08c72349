"""benchmarks/gpu_check.py on the CPU (`--device cpu --iterations 2`: the GPU path up to the
device), and the one-process torchrun group its NCCL check relies on."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from lla.engine.distributed import cleanup_distributed, setup_distributed

REPO = Path(__file__).resolve().parents[1]


def test_a_launched_process_joins_a_group_even_when_alone(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for name, value in dict(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                            MASTER_PORT=str(port)).items():
        monkeypatch.setenv(name, value)
    info = setup_distributed("cpu")
    try:
        assert info.world_size == 1 and info.in_process_group and info.distributed
        assert dist.is_initialized() and dist.get_backend() == "gloo"
    finally:
        cleanup_distributed()
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name)
    plain = setup_distributed("cpu")
    assert not plain.distributed and not dist.is_initialized()


@pytest.mark.slow
def test_gpu_check_runs_end_to_end_on_the_cpu(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"),
                             "--device", "cpu", "--iterations", "2",
                             "--workdir", str(tmp_path / "work")],
                            capture_output=True, text=True, timeout=1800)
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = {row.split("|")[1].strip(): row.split("|")[2].strip()
             for row in result.stdout.splitlines() if row.startswith("| ")}
    step = r"\d+\.\d{3} s \([0-9.e-]+ images/s\)"
    assert re.fullmatch(step, table["FCOS training step (R-50, 2 images, float32)"])
    assert re.fullmatch(step, table["LLA.FCOS training step (R-50, 2 images, float32)"])
    assert re.fullmatch(r"[+-]\d+\.\d %", table["LLA step overhead vs FCOS"])
    fcos_share, lla_share = re.fullmatch(r"(\d+\.\d) % / (\d+\.\d) %",
                                         table["assignment share of the step (FCOS / LLA.FCOS)"]).groups()
    assert 0 < float(fcos_share) < 100 and 0 < float(lla_share) < 100
    assert re.fullmatch(r"\d+\.\d\d / \d+\.\d\d GiB",
                        table["peak RSS per image (CPU) (FCOS / LLA.FCOS)"])
    assert re.fullmatch(r"[0-9.e-]+ images/s",
                        table["inference, LLA.FCOS (float32, data loading included)"])
    assert table["torchrun --nproc_per_node=1, one training iteration"].startswith(
        "ok: gloo process group")
    mr, ap, recall, ji = map(float, table[
        "CrowdHuman evaluation of the detections (MR / AP / Recall / JI)"].split(" / "))
    assert 0 <= ap <= recall <= 1 and 0 < mr <= 1 and 0 <= ji <= 1
