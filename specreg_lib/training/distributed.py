"""Process-group helpers for ``torchrun``: device per rank, rank/world size, barrier, reductions.

Everything is a no-op in a single process (WORLD_SIZE unset or 1), so the same script runs on a laptop and
under ``torchrun --nproc_per_node N``. The backend follows the device: NCCL for CUDA, gloo for CPU.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from ..errors import InputError


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _launched() -> bool:
    """True under a multi-process launcher (torchrun sets WORLD_SIZE, RANK, LOCAL_RANK)."""
    return _env_int("WORLD_SIZE", 1) > 1


def is_initialized() -> bool:
    """Whether a process group is up (with any world size)."""
    return dist.is_available() and dist.is_initialized()


def backend() -> str | None:
    """The process group's backend ("nccl", "gloo"), None without one."""
    return str(dist.get_backend()) if is_initialized() else None


def world_size() -> int:
    """Number of ranks; 1 without a process group."""
    return dist.get_world_size() if is_initialized() else 1


def rank() -> int:
    """This process's global rank; 0 without a process group."""
    return dist.get_rank() if is_initialized() else 0


def local_rank() -> int:
    """This process's rank on its node (torchrun's LOCAL_RANK); 0 in a single process."""
    return _env_int("LOCAL_RANK", 0) if _launched() else 0


def is_main() -> bool:
    """Rank 0: the one that writes files, shows progress and evaluates."""
    return rank() == 0


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available else CPU; under torchrun ``"cuda"``/``"auto"`` -> ``cuda:LOCAL_RANK``."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and _launched():
        return torch.device("cuda", local_rank())
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not a device name; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if _launched() and resolved.type == "cuda" and resolved.index not in (None, local_rank()):
        raise ValueError(f"device={device!r} under torchrun: rank {_env_int('RANK', 0)} must use cuda:{local_rank()} "
                         f"(LOCAL_RANK); pass device='cuda' or 'auto'")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but this torch sees no CUDA GPU (torch {torch.__version__}, "
                         f"cuda build {torch.version.cuda}); use device='auto' (CUDA when present, else CPU) or 'cpu'")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(f"device={device!r} but only {torch.cuda.device_count()} CUDA device(s) are visible; "
                         "use 'cuda' or 'auto'")
    return resolved


def init_distributed(device: str = "auto", init_method: str | None = None,
                     timeout: datetime.timedelta | None = None) -> bool:
    """Join torchrun's process group (env RANK/WORLD_SIZE/LOCAL_RANK); no-op without one. True when joined.

    NCCL when ``device`` resolves to CUDA (which also becomes this process's current device), else gloo.
    ``init_method`` defaults to ``env://`` (torchrun's MASTER_ADDR/PORT); a ``file://`` path also works.
    """
    if is_initialized():
        return True
    if not _launched():
        return False
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", init_method=init_method or "env://",
                            rank=_env_int("RANK", 0), world_size=_env_int("WORLD_SIZE", 1), **kwargs)
    return True


def close_distributed() -> None:
    """Leave the process group (call once at the end of a torchrun script); no-op without one."""
    if is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank; no-op without a process group."""
    if is_initialized():  # NCCL wants the device of this rank named, else it guesses (and warns)
        dist.barrier(device_ids=[torch.cuda.current_device()] if backend() == "nccl" else None)


def from_rank0(value: Any) -> Any:
    """Rank 0's ``value`` (any picklable object) on every rank; itself without a process group. For decisions
    every rank must take alike (e.g. whether a result is already on disk)."""
    if not is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_rank0(fn: Callable[[], Any]) -> Any:
    """``fn()`` run by rank 0 alone, its value on every rank; an :class:`InputError` it raises is raised on every
    rank (same type and message), so no rank is left waiting in a collective for a rank that stopped."""
    if not is_initialized():
        return fn()
    value = error = None
    if is_main():
        try:
            value = fn()
        except InputError as err:
            error = err
    value, error = from_rank0((value, error))
    if error is not None:
        raise error
    return value


def reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over ranks (a new tensor; ``x`` itself is left alone)."""
    x = x.detach().clone()
    if is_initialized() and world_size() > 1:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ranks (a new tensor)."""
    return reduce_sum(x) / world_size()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable, our own in-process data), in rank order; ``[obj]`` in one process."""
    if not is_initialized() or world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out
