"""The shard rule: each micro-batch of an optimiser step owns seeded data, noise and global-RNG streams.

An optimiser step's global batch of B samples is split into S = world_size * accumulate micro-batches
("shards") of B / S. Shard m = round * world_size + rank draws its data from its own CPU generator, the
loss noise from its own device generator, and runs its forward/backward with the global RNG (dropout,
losses without a ``generator`` argument) set to its own state. So what shard m sees depends on
(seed, m, step) only, never on how the S shards are laid out over processes and rounds: a 2-rank run
and a 1-process ``accumulate=2`` run draw the same global batch, noise and dropout masks.

Shard 0 keeps the single-process loop's historic seeds (data ``seed``, noise ``seed + 1``, global RNG
``torch.manual_seed(seed)``), so one-process ``accumulate=1`` runs are bit-identical to the old loop.
Other shards get SplitMix64 mixes of (seed, m, stream), well apart from every small seed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

DATA, NOISE, GLOBAL = 0, 1, 2  # stream ids
_MASK = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """One SplitMix64 output for state ``x`` (Steele, Lea & Flood 2014): a 64-bit avalanche mix."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def shard_seed(seed: int, shard: int, stream: int) -> int:
    """Seed of ``stream`` (DATA, NOISE or GLOBAL) for micro-batch ``shard``; shard 0 keeps the historic seeds."""
    if shard == 0:
        return seed + 1 if stream == NOISE else seed
    x = 0
    for word in (seed, shard, stream):
        x = _splitmix64(x ^ (word & _MASK))
    return x >> 1  # 63 bits: valid for torch.manual_seed everywhere


class ShardStreams:
    """The generators and global-RNG states of the shards one rank owns (``shards``, in round order)."""

    def __init__(self, seed: int, shards: list[int], device: torch.device) -> None:
        self.shards, self.device = list(shards), device
        self.data = [torch.Generator().manual_seed(shard_seed(seed, m, DATA)) for m in self.shards]
        self.noise = [torch.Generator(device=device).manual_seed(shard_seed(seed, m, NOISE)) for m in self.shards]
        self._global: list[dict[str, Any]] = []
        for m in self.shards:
            torch.manual_seed(shard_seed(seed, m, GLOBAL))  # seeds CPU and CUDA, as the old loop did
            self._global.append(self._capture())

    def _capture(self) -> dict[str, Any]:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return {"cpu": torch.get_rng_state(), "cuda": cuda}

    @contextlib.contextmanager
    def global_rng(self, i: int) -> Iterator[None]:
        """Run the block with the global RNG set to local shard ``i``'s state, then store where it got to."""
        torch.set_rng_state(self._global[i]["cpu"])
        if self._global[i]["cuda"] is not None:
            torch.cuda.set_rng_state(self._global[i]["cuda"], self.device)
        try:
            yield
        finally:
            self._global[i] = self._capture()

    def state_dict(self) -> dict[int, dict[str, Any]]:
        """{shard m: {data, noise, cpu, cuda}} (CPU byte tensors; cuda is None off CUDA)."""
        return {m: {"data": self.data[i].get_state(), "noise": self.noise[i].get_state(), **self._global[i]}
                for i, m in enumerate(self.shards)}

    def load_state_dict(self, states: dict[int, dict[str, Any]]) -> None:
        """Restore this rank's shards from a checkpoint's merged {shard: state} (all ranks' shards)."""
        for i, m in enumerate(self.shards):
            s = states[m]
            self.data[i].set_state(s["data"])
            self.noise[i].set_state(s["noise"])
            cuda = s["cuda"] if self.device.type == "cuda" else None
            self._global[i] = {"cpu": s["cpu"], "cuda": cuda}
            if cuda is None and self.device.type == "cuda":  # written on a CPU run: keep the fresh CUDA stream
                self._global[i]["cuda"] = torch.cuda.get_rng_state(self.device)


def legacy_rng(rng: dict[str, Any], device: torch.device) -> dict[int, dict[str, Any]]:
    """A checkpoint from the single-process loop (one stream set) as {0: shard state}."""
    cuda = None
    if "torch_cuda" in rng and device.type == "cuda":
        cuda = rng["torch_cuda"][device.index or 0]
    return {0: {"data": rng["generators"]["data"], "noise": rng["generators"]["noise"],
                "cpu": rng["torch_cpu"], "cuda": cuda}}
