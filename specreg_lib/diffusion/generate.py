"""Image generation with an EDM denoiser: per-seed latents, the EDM sampler settings and resumable generation of
N images to a folder, one PNG per seed (edm.md 1c).

* **Seeds.** Every image has its own seed: its latent (C, H, W) ~ N(0, I) and, for a conditional net, its class
  label come from a CPU ``torch.Generator`` seeded with that seed alone, so an image never depends on the batch
  it was drawn in or on how seeds are split between ``torchrun`` ranks. EDM draws them with a CUDA generator on
  the GPU; image-for-image equality with EDM's own script is not a goal, the distribution is the same.
* **Bit for bit.** CPU convolutions and matrix products round differently for different batch sizes (~1e-6),
  so ``per_image`` (default: on CPU) runs the network one image at a time inside each batch: then an image is
  the same bits whatever the batch size or number of ranks (tested). On CUDA batches run whole (cuDNN picks
  algorithms per shape anyway); images then agree across batch sizes to float rounding only.
* **Sampler.** The deterministic Heun sampler (``diffusion.edm.heun_sample``, EDM Algorithm 2) over the rho = 7
  steps, the requested sigma range clamped to the net's (``sampler_sigmas``). The paper uses 18 steps for
  CIFAR-10 32x32 and 40 for AFHQv2/FFHQ 64x64 (NFE 35 and 79). The ODE state is kept in float64 and the
  denoiser runs in float32 (or bf16 autocast), as EDM's sampler does.
* **Files.** ``outdir/{seed - seed % 1000:06d}/{seed:06d}.png`` (the layout, seed ranges, uint8 quantisation
  and grids: ``data.seed_images``); written atomically; images already on disk are skipped, so a killed run
  resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..data.seed_images import image_path, to_uint8, write_png
from ..errors import InputError
from ..text import parse_seeds
from .edm import euler_sample, heun_sample, sampler_sigmas

# EDM "steps" N per resolution as the paper uses them (paper.md 2.2): Heun, NFE = 2N - 1.
PAPER_STEPS = {32: 18, 64: 40}
SOLVERS = ("heun", "euler")


MAX_STEPS = 10_000  # sampler steps N: the paper uses 18-40 and EDM's ablations stay below 1,000


class SamplerSettingsError(InputError, ValueError):
    """A sampler setting outside its range: ``field`` (e.g. ``rho``), its ``value`` and the ``rule`` it breaks,
    so a door can name its own option (``--rho``)."""

    def __init__(self, field: str, value: Any, rule: str) -> None:
        super().__init__(f"{field}={value!r}: {rule}")
        self.field, self.value, self.rule = field, value, rule


class NonFiniteImagesError(InputError, ValueError):
    """The sampler returned NaN or inf for some seeds (a checkpoint with NaN weights, a diverged fine-tune); no PNG
    of that batch is written, since uint8 quantisation would turn NaN into black images without a word."""


def _real(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _finite(v: Any) -> bool:
    return _real(v) and math.isfinite(v)


@dataclasses.dataclass(frozen=True)
class SamplerSettings:
    """EDM sampler settings (edm.md 1c): ``num_steps`` N (None: the paper's for the resolution), the sigma
    range before clamping to the net's, rho, stochastic churn (0 = deterministic) and the solver. Every value is
    checked when the settings are made (:meth:`rules`): a NaN or infinite setting would give NaN images."""

    num_steps: int | None = None
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    S_churn: float = 0.0
    S_min: float = 0.0
    S_max: float = math.inf
    S_noise: float = 1.0
    solver: str = "heun"

    def rules(self) -> tuple[tuple[str, bool, str], ...]:
        """(field, holds, the rule in words) per setting, in field order (later rules may use earlier fields)."""
        steps_ok = self.num_steps is None or (_real(self.num_steps) and isinstance(self.num_steps, int)
                                              and 1 <= self.num_steps <= MAX_STEPS)
        return (
            ("num_steps", steps_ok, f"must be an int in [1, {MAX_STEPS}] (the paper: 18 at 32x32, 40 at 64x64), "
                                    "or None for the paper's"),
            ("sigma_min", _finite(self.sigma_min) and self.sigma_min >= 0, "must be a finite number >= 0 (EDM: "
                                                                           "0.002)"),
            ("sigma_max", _finite(self.sigma_max) and self.sigma_max > self.sigma_min,
             f"must be a finite number above sigma_min={self.sigma_min} (EDM: 80)"),
            ("rho", _finite(self.rho) and self.rho > 0, "must be a finite number > 0 (EDM: 7)"),
            ("S_churn", _finite(self.S_churn) and self.S_churn >= 0, "must be a finite number >= 0 (0: "
                                                                     "deterministic; EDM's stochastic runs use 0-80)"),
            ("S_min", _finite(self.S_min) and self.S_min >= 0, "must be a finite number >= 0 (EDM: 0 to 1)"),
            ("S_max", _real(self.S_max) and self.S_max >= self.S_min,
             f"must be a number >= S_min={self.S_min} (inf: churn at every noise level)"),
            ("S_noise", _finite(self.S_noise) and self.S_noise > 0, "must be a finite number > 0 (EDM: 1 to 1.007)"),
            ("solver", self.solver in SOLVERS, f"must be one of {', '.join(SOLVERS)}"),
        )

    def __post_init__(self) -> None:
        for name, holds, rule in self.rules():
            if not holds:
                raise SamplerSettingsError(name, getattr(self, name), rule)

    def steps_for(self, resolution: int) -> int:
        """N for this resolution: ``num_steps`` or the paper's (18 at 32x32, 40 at 64x64)."""
        if self.num_steps is not None:
            return self.num_steps
        if resolution not in PAPER_STEPS:
            raise ValueError(f"no paper default for {resolution}x{resolution} images (known: {sorted(PAPER_STEPS)}); "
                             "pass num_steps")
        return PAPER_STEPS[resolution]

    def nfe(self, resolution: int) -> int:
        """Network evaluations per image: 2N - 1 for Heun (no correction on the last step), N for Euler."""
        n = self.steps_for(resolution)
        return 2 * n - 1 if self.solver == "heun" else n


def seed_latents(seeds: Sequence[int], shape: Sequence[int], label_dim: int = 0, class_idx: int | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-seed latents (B, *shape) float32 ~ N(0, I) and one-hot labels (B, label_dim) (None when 0), on CPU.

    Seed s seeds its own generator: first the latent, then (label_dim > 0, no ``class_idx``) a uniform class.
    """
    if class_idx is not None and not 0 <= class_idx < label_dim:
        raise ValueError(f"class_idx={class_idx} needs a conditional net with class_idx < label_dim "
                         f"(label_dim={label_dim})")
    latents, classes = [], []
    for s in seeds:
        g = torch.Generator().manual_seed(int(s) % (1 << 64))
        latents.append(torch.randn(tuple(shape), generator=g))
        if label_dim:
            classes.append(class_idx if class_idx is not None else int(torch.randint(label_dim, (), generator=g)))
    labels = torch.eye(label_dim)[classes] if label_dim else None  # (B, label_dim) one-hot
    return torch.stack(latents), labels


def net_geometry(net: Any) -> tuple[int, int, int]:
    """(channels, resolution, label_dim) read from the denoiser (EDM names ``img_channels``, ``img_resolution``,
    ``label_dim``, on the net or its ``model``/``net`` backbone)."""
    found: dict[str, int] = {}
    for obj in (net, getattr(net, "model", None), getattr(net, "net", None)):
        for ours, names in (("channels", ("img_channels", "in_channels")), ("resolution", ("img_resolution",)),
                            ("label_dim", ("label_dim",))):
            for name in names:
                if ours not in found and isinstance(getattr(obj, name, None), int):
                    found[ours] = getattr(obj, name)
    missing = [k for k in ("channels", "resolution") if k not in found]
    if missing:
        raise ValueError(f"cannot read the image {' and '.join(missing)} from the denoiser ({type(net).__name__}: "
                         "no img_channels / img_resolution attributes); pass geometry=(channels, resolution, "
                         "label_dim)")
    return found["channels"], found["resolution"], found.get("label_dim", 0)


def _denoiser(net: Any, labels: torch.Tensor | None, bf16: bool, channels_last: bool, per_image: bool
              ) -> Callable:
    """D(x; sigma) for the sampler: float32 (or bf16 autocast) inside, the sampler's dtype (float64) outside;
    ``per_image`` calls the net on one image at a time (batch-size-independent rounding)."""
    def call(x: torch.Tensor, sigma: torch.Tensor, lab: torch.Tensor | None) -> torch.Tensor:
        x32 = x.to(torch.float32)
        if channels_last:
            x32 = x32.contiguous(memory_format=torch.channels_last)
        ctx = torch.autocast(x.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            return net(x32, sigma.to(torch.float32), lab).to(x.dtype)

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if not per_image:
            return call(x, sigma, labels)
        return torch.cat([call(x[i:i + 1], sigma[i:i + 1], None if labels is None else labels[i:i + 1])
                          for i in range(x.shape[0])])

    return denoise


@torch.no_grad()
def sample_images(net: Any, seeds: Sequence[int], settings: SamplerSettings = SamplerSettings(),
                  class_idx: int | None = None, device: str | torch.device = "cpu", bf16: bool = False,
                  channels_last: bool = False, geometry: tuple[int, int, int] | None = None,
                  per_image: bool | None = None) -> torch.Tensor:
    """Images (B, C, H, W) float32 in about [-1, 1] for ``seeds`` with the EDM sampler, on ``device``.

    ``net(x, sigma, class_labels)`` is D(x; sigma) (e.g. ``load_edm_checkpoint``'s result); it must already be
    on ``device`` (``generate_to_folder`` moves it). ``geometry`` = (channels, resolution, label_dim) when the
    net does not carry EDM's attribute names. ``per_image`` (None: True on CPU) evaluates the net one image at
    a time so that each image's bits do not depend on the batch.
    """
    device = torch.device(device)
    per_image = device.type == "cpu" if per_image is None else per_image
    C, R, label_dim = geometry or net_geometry(net)
    latents, labels = seed_latents(seeds, (C, R, R), label_dim, class_idx)
    labels = labels.to(device) if labels is not None else None
    sigmas = sampler_sigmas(net, settings.steps_for(R), settings.sigma_min, settings.sigma_max, settings.rho)
    solve = heun_sample if settings.solver == "heun" else euler_sample
    x = solve(_denoiser(net, labels, bf16, channels_last, per_image), latents.to(device, torch.float64), sigmas,
              S_churn=settings.S_churn, S_min=settings.S_min, S_max=settings.S_max, S_noise=settings.S_noise)
    return x.to(torch.float32)


def generate_to_folder(net: Any, outdir: str | os.PathLike, seeds: Sequence[int],
                       settings: SamplerSettings = SamplerSettings(), batch_size: int = 64,
                       class_idx: int | None = None, device: str | torch.device = "cpu", bf16: bool = False,
                       channels_last: bool = False, geometry: tuple[int, int, int] | None = None,
                       rank: int = 0, world_size: int = 1, progress: bool = True,
                       per_image: bool | None = None, source: str | None = None) -> list[int]:
    """Generate one PNG per seed into ``outdir`` (see ``image_path``); returns the seeds this call wrote.

    Rank r of ``world_size`` takes seeds[r::world_size] (fixed by the seed list, not by what is on disk, so
    ranks never race) and skips those already present. Every image depends on its seed only, so the folder is
    the same for any batch size or number of ranks. The progress bar shows on rank 0. A batch with a non-finite
    value is not written: :class:`NonFiniteImagesError` names ``source`` (the checkpoint) and the seeds.
    """
    from tqdm.auto import tqdm

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    seeds = parse_seeds(seeds)
    device = torch.device(device)
    geometry = geometry or net_geometry(net)
    if isinstance(net, torch.nn.Module):
        net = net.to(device).eval()
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
    todo = [s for s in seeds[rank::world_size] if not image_path(outdir, s).is_file()]
    written: list[int] = []
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    bar = tqdm(total=len(todo), unit="img", desc=f"generate {Path(outdir).name}", disable=not progress or rank != 0)
    for batch in batches:
        x = sample_images(net, batch, settings, class_idx, device, bf16, channels_last, geometry, per_image)
        bad = [s for s, ok in zip(batch, x.flatten(1).isfinite().all(1).tolist(), strict=True) if not ok]
        if bad:
            bar.close()
            shown = ", ".join(map(str, bad[:8])) + (f", ... ({len(bad)} of {len(batch)})" if len(bad) > 8 else "")
            raise NonFiniteImagesError(
                f"{source or 'the network'}: the sampler returned NaN/inf for seed(s) {shown}; no image of this "
                f"batch was written ({len(written)} earlier ones were). The weights or the sampler settings give "
                "NaN: check the checkpoint (re-download it, or retrain a fine-tune that diverged) and the sampler "
                "options (sigma range, S_churn, S_noise)")
        images = to_uint8(x)
        for s, img in zip(batch, images):
            write_png(img, image_path(outdir, s))
            written.append(s)
        bar.update(len(batch))
    bar.close()
    return written
