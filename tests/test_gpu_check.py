"""The one-process torchrun group (the GPU check's NCCL step relies on it)."""

from __future__ import annotations

import socket

import torch.distributed as dist

from lla.engine.distributed import cleanup_distributed, setup_distributed


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
