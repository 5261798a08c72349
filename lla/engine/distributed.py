"""Process-group set-up for one process per device, as launched by ``torchrun``.

``torchrun`` (and ``srun`` through torchrun's rendezvous) exports ``RANK``, ``LOCAL_RANK``
and ``WORLD_SIZE``; when they are absent the run is a single process on one device and
no process group is created. NCCL is used when the process owns a CUDA device, gloo on
the CPU.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

# How long a collective may wait for a slow rank before the process group gives up
# (a rank saving a large checkpoint while the others wait at a barrier).
PROCESS_GROUP_TIMEOUT = datetime.timedelta(minutes=30)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job.

    Attributes:
        rank: global rank, 0 .. world_size - 1 (0 saves checkpoints and logs).
        local_rank: rank on this node (selects the CUDA device).
        world_size: number of processes.
        device: the device this process computes on.
    """

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def pick_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """The device of ``device`` ("auto": CUDA when available, else the CPU; "cpu"; "cuda");
    a CUDA device is chosen by ``local_rank`` and made the current one."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but CUDA is not available")
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        return torch.device("cuda", torch.cuda.current_device())
    if device == "cpu":
        return torch.device("cpu")
    raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")


def setup_distributed(device: str = "auto") -> DistInfo:
    """Read the torchrun environment, pick the device and join the process group.

    Args:
        device: "auto" (CUDA when available, else CPU), "cpu" or "cuda".

    A plain process (no ``WORLD_SIZE``) gets rank 0 of 1 and no process group.
    """
    rank, local_rank, world_size = _env_int("RANK"), _env_int("LOCAL_RANK"), _env_int("WORLD_SIZE")
    world_size = world_size or 1
    rank = rank or 0
    local_rank = local_rank if local_rank is not None else rank
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} outside 0..WORLD_SIZE-1 (WORLD_SIZE={world_size})")

    torch_device = pick_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if torch_device.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"backend": backend, "rank": rank, "world_size": world_size,
                                  "timeout": PROCESS_GROUP_TIMEOUT}
        if backend == "nccl":
            kwargs["device_id"] = torch_device
        dist.init_process_group(**kwargs)
        logger.debug("rank %d/%d joined the %s process group on %s", rank, world_size, backend,
                     torch_device)
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size, device=torch_device)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum of ``values`` (any shape) over ranks; ``values`` itself when not distributed."""
    if not info.distributed:
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` when not distributed."""
    if not info.distributed:
        return [obj]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.distributed:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
