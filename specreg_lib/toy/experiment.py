"""The toy experiments' driver: train baseline and regularized DDPMs per seed, sample, measure.

Used by the ``checkerboard_toy`` notebook (Figs. 1-2) and the ``power_spectra`` notebook (natural-image
patches), and from the shell, resumable, for the long ``cpu`` profile:

    nohup .venv/bin/python -m specreg_lib.toy.experiment --profile cpu > runs/toy_cpu.log 2>&1 &

Every (variant, seed) run lives in ``<root>/<profile>/<variant>_seed<k>_<hash>/`` (``checkpoint.pt``,
``samples.pt``, ``metrics.json``, ``config.json``); the hash covers every setting that changes the trained
model except ``steps``, so raising ``steps`` resumes and finished runs are only re-read.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import check_profile, from_profile, save_config
from ..data import ImagePatches
from ..diffusion import DDPMLoss, DDPMSchedule, ancestral_sample, ddim_sample, ddim_timesteps
from ..io import atomic_path, write_json
from ..models import UNet, UNetConfig, count_parameters
from ..spectral import SpectralLoss, radial_power_spectrum, spectral_log_distance
from ..training import TrainConfig, train
from .checkerboard import CheckerboardFamily, structure_metrics

# variant name -> SpectralLoss(kind, **options); "baseline" is the plain eps-MSE loss.
VARIANTS: dict[str, tuple[str, dict[str, Any]] | None] = {
    "baseline": None,
    "amp": ("amp", {}),  # Eq. 14
    "amp_phase": ("amp_phase", {}),  # Eq. 15
    "haar": ("wavelet", {"wave": "haar"}),  # Eq. 16
    "bior1.3": ("wavelet", {"wave": "bior1.3"}),
}
DATASETS = ("checkerboard", "patches")
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "checkpoints" / "toy"  # git-ignored, beside the repo
# Settings that do not change the trained model (left out of the run-directory hash).
_NOT_HASHED = {"profile", "seeds", "variants", "steps", "n_samples", "n_reference", "sampler", "sample_steps",
               "clip_x0", "log_floor", "device", "checkpoint_every", "threads", "progress"}


@dataclass(frozen=True)
class ToyConfig:
    """One toy experiment: data, U-Net, DDPM, optimisation, sampling. Presets in TOY_PRESETS / SPECTRA_PRESETS."""

    profile: str = "smoke"
    dataset: str = "checkerboard"  # "checkerboard" (Figs. 1-2) or "patches" (natural-image stand-in)
    size: int = 64
    sides: tuple[int, ...] = (2, 4)  # checkerboard cell sides in pixels
    patch_scale: int = 2  # patches: average-pool factor of each crop
    seeds: tuple[int, ...] = (1,)
    variants: tuple[str, ...] = ("baseline", "amp_phase")
    lambda_spec: float = 1.0
    weighting: str = "alpha_bar"  # time weighting of the spectral term (diffusion.weighting)
    wavelet_levels: int = 2  # DWT levels of the haar / bior1.3 variants
    # U-Net
    base_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1)
    num_res_blocks: int = 1
    fold: int = 8
    global_pool: bool = True
    # DDPM
    schedule: str = "cosine_shifted"
    T: int = 200
    snr_scale: float = 16.0  # cosine_shifted only: SNR divided by this
    parametrization: str = "v"  # network output; the loss is still the eps-MSE of Eq. 3
    # optimisation
    steps: int = 5000
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 200
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    # sampling and evaluation
    n_samples: int = 64
    sampler: str = "ancestral"  # or "ddim"
    sample_steps: int = 0  # ddim only; 0 = all T
    clip_x0: float = 1.0  # clamp x0_hat while sampling; 0 = off
    n_reference: int = 256  # ground-truth images for the reference spectrum
    log_floor: float = 1e-3  # spectra floored here before the log distance (white noise of std ~0.03)
    device: str = "cpu"
    checkpoint_every: int = 500
    threads: int = 0  # torch.set_num_threads; 0 = leave as is
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("sides", "seeds", "variants", "channel_mult"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        check_profile(self.profile)
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants or not self.seeds:
            raise ValueError(f"need seeds and variants from {list(VARIANTS)}; got {self.variants}")
        if self.lambda_spec < 0 or self.steps < 0 or self.n_samples < 1 or self.n_reference < 1:
            raise ValueError("need lambda_spec >= 0, steps >= 0, n_samples >= 1, n_reference >= 1")
        if self.sampler not in ("ancestral", "ddim"):
            raise ValueError(f"sampler must be 'ancestral' or 'ddim', got {self.sampler!r}")
        if self.log_floor <= 0:
            raise ValueError("log_floor must be > 0")
        self.unet_config()  # validates the architecture against the image size
        self.diffusion_schedule()

    def unet_config(self) -> UNetConfig:
        return UNetConfig(resolution=self.size, base_channels=self.base_channels, channel_mult=self.channel_mult,
                          num_res_blocks=self.num_res_blocks, fold=self.fold, global_pool=self.global_pool)

    def diffusion_schedule(self) -> DDPMSchedule:
        kw = {"snr_scale": self.snr_scale} if self.schedule == "cosine_shifted" else {}
        return DDPMSchedule.from_kind(self.schedule, T=self.T, **kw)

    def train_config(self, seed: int) -> TrainConfig:
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr, warmup_steps=self.warmup_steps,
                           ema_decay=self.ema_decay, grad_clip=self.grad_clip, seed=seed, device=self.device,
                           checkpoint_every=self.checkpoint_every, progress=self.progress, log_every=50)

    def loss(self, variant: str) -> DDPMLoss:
        """The eps-MSE loss, plus lambda_spec * w(t) * L_S(x0_hat, x0) for a regularized variant (Eq. 17)."""
        spec = VARIANTS[variant]
        opts = {**spec[1], "levels": self.wavelet_levels} if spec and spec[0] == "wavelet" else spec and spec[1]
        spectral = SpectralLoss(spec[0], **opts) if spec else None
        return DDPMLoss(self.diffusion_schedule(), parametrization=self.parametrization, spectral=spectral,
                        lambda_spec=self.lambda_spec if spec else 0.0, weighting=self.weighting)

    def data(self) -> CheckerboardFamily | ImagePatches:
        if self.dataset == "checkerboard":
            return CheckerboardFamily(size=self.size, sides=self.sides)
        return ImagePatches(size=self.size, scale=self.patch_scale)

    def run_name(self, variant: str, seed: int) -> str:
        """``<variant>[_lam<lambda>]_seed<k>_<hash of the model-changing settings>``."""
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in _NOT_HASHED}
        if variant == "baseline":
            d.pop("lambda_spec"), d.pop("weighting"), d.pop("wavelet_levels")
        digest = hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]
        lam = "" if variant == "baseline" else f"_lam{self.lambda_spec:g}"
        return f"{variant}{lam}_seed{seed}_{digest}"


_COMMON = dict(channel_mult=(1, 1), num_res_blocks=1, fold=8, global_pool=True, schedule="cosine_shifted",
               T=200, snr_scale=16.0, parametrization="v", lr=1e-3, ema_decay=0.999)
TOY_PRESETS: dict[str, dict[str, Any]] = {
    # the pipeline end to end in seconds: a tiny net, a few steps, a short schedule (shows no effect)
    "smoke": {**_COMMON, "seeds": (1,), "base_channels": 16, "T": 20, "steps": 30, "warmup_steps": 5,
              "ema_decay": 0.9, "n_samples": 8, "n_reference": 64, "checkpoint_every": 0,
              "progress": False, "threads": 1},
    # the paper's 64x64 on a 2-core CPU: 3 evaluation seeds (seed 0 was used for tuning)
    "cpu": {**_COMMON, "seeds": (1, 2, 3), "base_channels": 128, "steps": 5000, "warmup_steps": 200,
            "n_samples": 64, "threads": 1},
    "paper": {**_COMMON, "seeds": (1, 2, 3, 4, 5), "base_channels": 128, "channel_mult": (1, 2), "num_res_blocks": 2,
              "steps": 20000, "warmup_steps": 500, "n_samples": 256, "device": "auto"},
}
_PATCHES = dict(dataset="patches", size=32, patch_scale=2, fold=2, global_pool=False, channel_mult=(1, 2),
                num_res_blocks=1, schedule="cosine", T=200, parametrization="v", lr=5e-4, clip_x0=1.0,
                variants=("baseline", "amp", "amp_phase", "haar", "bior1.3"), lambda_spec=1.0)
SPECTRA_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {**_PATCHES, "seeds": (1,), "base_channels": 16, "T": 20, "steps": 20, "warmup_steps": 5,
              "ema_decay": 0.9, "n_samples": 8, "n_reference": 64, "checkpoint_every": 0,
              "progress": False, "threads": 1},
    "cpu": {**_PATCHES, "seeds": (1,), "base_channels": 64, "steps": 4000, "warmup_steps": 200, "n_samples": 128,
            "threads": 1},
    "paper": {**_PATCHES, "size": 64, "fold": 2, "seeds": (1, 2, 3), "base_channels": 128, "steps": 50000,
              "warmup_steps": 1000, "n_samples": 512, "device": "auto"},
}


def toy_config(profile: str, **overrides: Any) -> ToyConfig:
    """The checkerboard experiment's preset for ``profile`` with overrides (None = keep the preset)."""
    return from_profile(ToyConfig, TOY_PRESETS, profile, **overrides)


def spectra_config(profile: str, **overrides: Any) -> ToyConfig:
    """The natural-image power-spectra experiment's preset for ``profile``."""
    return from_profile(ToyConfig, SPECTRA_PRESETS, profile, **overrides)


def reference(cfg: ToyConfig) -> torch.Tensor:
    """Ground-truth images (n_reference, 1, size, size) from a fixed seed, apart from every training seed."""
    return cfg.data()(cfg.n_reference, torch.Generator().manual_seed(10_007))


@torch.no_grad()
def draw_samples(cfg: ToyConfig, model: torch.nn.Module, seed: int) -> torch.Tensor:
    """``n_samples`` samples (CPU, (N, 1, size, size)); latents depend on the seed only, so variants are paired."""
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(20_000 + seed)
    latents = torch.randn(cfg.n_samples, 1, cfg.size, cfg.size, generator=g, device=device)
    kw = dict(clip_x0=cfg.clip_x0 or None, generator=g, parametrization=cfg.parametrization)
    sched = cfg.diffusion_schedule()
    model.eval()
    if cfg.sampler == "ddim":
        ts = ddim_timesteps(cfg.T, cfg.sample_steps or cfg.T)
        return ddim_sample(model, latents, sched, timesteps=ts, **kw).cpu()
    return ancestral_sample(model, latents, sched, **kw).cpu()


def floored_spectrum(x: torch.Tensor, floor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Radially averaged power (batch mean) clamped below at ``floor``: (B, 1, H, W) -> (n,), (n,)."""
    freqs, power = radial_power_spectrum(x.double())
    return freqs, power.mean(0).clamp_min(floor)


def run_one(cfg: ToyConfig, variant: str, seed: int, root: str | Path, ref: torch.Tensor) -> dict[str, Any]:
    """Train (or resume, or just reload) one run, sample it once, and return its metrics and samples."""
    run_dir = Path(root) / cfg.profile / cfg.run_name(variant, seed)
    samples_path = run_dir / "samples.pt"
    sample_key = {k: getattr(cfg, k) for k in ("steps", "n_samples", "sampler", "sample_steps", "clip_x0")}
    if samples_path.exists():
        cached = torch.load(samples_path, weights_only=False)
        if cached["key"] == sample_key:
            return cached["result"]
    torch.manual_seed(seed)  # the initial weights: identical for every variant of a seed
    model = UNet(cfg.unet_config())
    t0 = time.perf_counter()
    res = train(model, cfg.loss(variant), cfg.data(), cfg.train_config(seed), ckpt_path=run_dir / "checkpoint.pt",
                desc=f"{variant} seed {seed}", meta={"unet": dataclasses.asdict(cfg.unet_config())})
    train_time = time.perf_counter() - t0
    save_config(cfg, run_dir / "config.json")
    samples = draw_samples(cfg, res.sampling_model, seed)
    _, p_ref = floored_spectrum(ref, cfg.log_floor)
    freqs, p = floored_spectrum(samples, cfg.log_floor)
    metrics: dict[str, Any] = {
        "variant": variant, "seed": seed, "steps": res.step, "parameters": count_parameters(model),
        "log_distance": spectral_log_distance(p, p_ref),
        "seconds_per_step": res.seconds_per_step, "train_seconds": res.train_seconds,
        "this_session_seconds": train_time, "nonfinite_steps": res.nonfinite_steps,
        "final_loss": sum(res.history["loss"][-100:]) / max(1, len(res.history["loss"][-100:])),
    }
    if cfg.dataset == "checkerboard":
        metrics.update(structure_metrics(samples, cfg.data(), reference=ref))
    result = {"metrics": metrics, "samples": samples, "freqs": freqs, "power": p,
              "loss_history": res.history["loss"]}
    write_json(run_dir / "metrics.json", metrics)
    with atomic_path(samples_path) as tmp:
        torch.save({"key": sample_key, "result": result}, tmp)
    return result


def run_experiment(cfg: ToyConfig, root: str | Path | None = None) -> dict[str, Any]:
    """All (variant, seed) runs of ``cfg``; finished ones are reloaded. Returns runs, reference and summary."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    root = root or DEFAULT_ROOT
    ref = reference(cfg)
    runs = {(v, s): run_one(cfg, v, s, root, ref) for s in cfg.seeds for v in cfg.variants}
    freqs, p_ref = floored_spectrum(ref, cfg.log_floor)
    return {"config": cfg, "runs": runs, "reference": ref, "freqs": freqs, "reference_power": p_ref,
            "summary": summarize(cfg, runs)}


def summarize(cfg: ToyConfig, runs: dict[tuple[str, int], dict[str, Any]]) -> dict[str, Any]:
    """Per variant: mean and std over seeds of every scalar metric; ratios to the baseline's log distance."""
    out: dict[str, Any] = {}
    for v in cfg.variants:
        ms = [runs[(v, s)]["metrics"] for s in cfg.seeds]
        keys = [k for k, val in ms[0].items() if isinstance(val, int | float) and k != "seed"]
        out[v] = {k: {"mean": _mean([m[k] for m in ms]), "std": _std([m[k] for m in ms])} for k in keys}
        out[v]["per_seed_log_distance"] = [m["log_distance"] for m in ms]
        if v != "baseline" and "baseline" in cfg.variants:
            base = [runs[("baseline", s)]["metrics"]["log_distance"] for s in cfg.seeds]
            out[v]["over_baseline_log_distance"] = _mean(out[v]["per_seed_log_distance"]) / _mean(base)
            out[v]["per_seed_ratio"] = [a / b for a, b in zip(out[v]["per_seed_log_distance"], base)]
    return out


def _mean(v: list[float]) -> float:
    return float(sum(v) / len(v))


def _std(v: list[float]) -> float:
    return float(torch.tensor(v, dtype=torch.float64).std(unbiased=False)) if len(v) > 1 else 0.0


def main(argv: list[str] | None = None) -> None:
    """CLI: run (or resume) a profile, then write its figures and metrics like the notebook does."""
    import matplotlib.pyplot as plt

    from .report import write_report

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--experiment", choices=("checkerboard", "spectra"), default="checkerboard")
    ap.add_argument("--root", default=str(DEFAULT_ROOT))
    ap.add_argument("--out-dir", default=None,
                    help="default figures/<profile>/02_checkerboard_toy (or 03_power_spectra)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--lambda-spec", type=float, default=None)
    ap.add_argument("--seeds", type=int, nargs="*", default=None)
    ap.add_argument("--variants", nargs="*", default=None)
    a = ap.parse_args(argv)
    make = toy_config if a.experiment == "checkerboard" else spectra_config
    cfg = make(a.profile, steps=a.steps, lambda_spec=a.lambda_spec, seeds=tuple(a.seeds) if a.seeds else None,
               variants=tuple(a.variants) if a.variants else None)
    name = "02_checkerboard_toy" if a.experiment == "checkerboard" else "03_power_spectra"
    out_dir = a.out_dir or f"figures/{a.profile}/{name}"
    results = run_experiment(cfg, a.root)
    for fig in write_report(results, out_dir).values():
        plt.close(fig)
    print(json.dumps(results["summary"], indent=1, default=float))


if __name__ == "__main__":
    main()
