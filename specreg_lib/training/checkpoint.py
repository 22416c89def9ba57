"""Checkpoints: everything needed to resume a run bit-exactly, written atomically, read as data only.

A checkpoint holds tensors and plain containers (dict, list, tuple, str, int, float, bool, None) only, so it
loads with ``torch.load(weights_only=True)``: a file from elsewhere can never run code on load.

Reading goes through :func:`specreg_lib.torchfile.read_torch_file`, the one reader of untrusted torch files (its
errors are re-exported here).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..io import atomic_path
from ..torchfile import (  # noqa: F401 (re-exported: the errors a checkpoint load raises)
    CheckpointError,
    CheckpointMissingError,
    UnsafePickleError,
    read_torch_file,
)

_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


def check_plain(obj: Any, where: str = "payload") -> None:
    """Raise TypeError unless ``obj`` is tensors and plain containers (what ``weights_only=True`` loads)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str | int):
                raise TypeError(f"{where}: dict key {k!r} is a {type(k).__name__}; use str or int keys")
            check_plain(v, f"{where}[{k!r}]")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
    elif not isinstance(obj, _PLAIN):
        raise TypeError(f"{where} is a {type(obj).__name__}: checkpoints hold only tensors, str, int, float, bool, "
                        f"None, lists, tuples and dicts (they load with weights_only=True); convert it, e.g. "
                        f"dataclasses.asdict or str()")


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """``torch.save`` to a temp file beside ``path``, then rename: a crash never leaves half a checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint as data (``weights_only=True``); a file holding any other object is refused.

    The one reader of every torch file the kit writes (checkpoints, snapshots, results): none may run code."""
    if not Path(path).is_file():
        raise CheckpointMissingError(f"checkpoint {path} does not exist; check the path (or start a new run)")
    return read_torch_file(
        path, path, map_location=map_location, mmap=mmap,
        refused="Training checkpoints never hold such objects; was this file written by specreg_lib.training? "
                "Use a checkpoint saved by specreg_lib.training (tensors and plain containers only)",
        corrupt="delete it to start over, or restore it from a backup")
