"""LMNT's DiffWave vocoder (PyPI ``diffwave`` 0.1.7) on the kit's network contract, and its checkpoints.

The network IS LMNT's class: :class:`DiffWaveEps` subclasses ``diffwave.model.DiffWave`` only to reorder the
forward arguments (LMNT 0.1.7: ``forward(audio (B, T), spectrogram (B, n_mels, F), diffusion_step (B,))`` ->
(B, 1, T)) into the kit's ``model(x_t (B, 1, T), t (B,), cond=mel)``. Parameter names are LMNT's, so the official
checkpoint's state dict loads unchanged. ``t`` may be a long step index or a float (LMNT's fast inference
interpolates the step embedding between training steps).

The official checkpoint ``diffwave-ljspeech-22kHz-1000578.pt`` was written by LMNT's ``DiffWaveLearner.state_dict``
(learner.py at the release commit 3d82a82, Oct 2020): ``{"step": int, "model": state dict, "optimizer": Adam
state, "params": dict(params), "scaler": GradScaler state}``. ``params`` is a PLAIN dict there (ints, floats, None,
a list of floats), so ``torch.load(weights_only=True)`` reads it with no allow-listed class. A copy re-saved with
the ``AttrDict`` itself also loads: we allow-list exactly ``diffwave.params.AttrDict`` (a dict subclass without
code of its own) for that one load, and nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from diffwave.model import DiffWave
from diffwave.params import AttrDict
from diffwave.params import params as LMNT_PARAMS

from ..errors import InputError
from ..io import atomic_path
from ..torchfile import read_torch_file

OFFICIAL_CHECKPOINT = "diffwave-ljspeech-22kHz-1000578.pt"
# LMNT's params.py keys that shape the network (the rest are audio/training settings kept for reference)
ARCH_KEYS = ("residual_layers", "residual_channels", "dilation_cycle_length", "n_mels", "noise_schedule")
# Upper bounds on the architecture, checked before anything is built (a file's residual_layers=10**6 once took
# 133 s and 4.3 GB): each well above the real configs (audio.md: LMNT 30 layers x 64 channels, dilation cycle 10,
# 80 mels, 50 training steps; the unconditional DiffWave 36 x 256, cycle 12, 200 steps).
ARCH_BOUNDS = {"residual_layers": 128, "residual_channels": 1024, "dilation_cycle_length": 20, "n_mels": 512,
               "hop_samples": 256}
MAX_SCHEDULE = 10_000  # betas in noise_schedule / inference_noise_schedule


class DiffWaveCheckpointError(InputError, ValueError):
    """A DiffWave checkpoint that cannot be used: truncated, not LMNT's layout, or an architecture out of bounds."""


def diffwave_params(**overrides: Any) -> AttrDict:
    """LMNT's ``params`` (0.1.7) with ``overrides``; unknown keys are an error. A fresh AttrDict every call."""
    unknown = sorted(set(overrides) - set(LMNT_PARAMS))
    if unknown:
        raise KeyError(f"unknown DiffWave param(s) {unknown}; LMNT's params are {sorted(LMNT_PARAMS)}")
    p = AttrDict({k: (list(v) if isinstance(v, list | tuple) else v) for k, v in LMNT_PARAMS.items()})
    p.override({k: (list(v) if isinstance(v, list | tuple) else v) for k, v in overrides.items()})
    for key, most in ARCH_BOUNDS.items():
        if not isinstance(p[key], int) or isinstance(p[key], bool) or not 1 <= p[key] <= most:
            raise ValueError(f"DiffWave param {key} must be an int in [1, {most}], got {_short(p[key])} (the bound "
                             f"is far above every published DiffWave; LMNT's is {LMNT_PARAMS[key]})")
    if p.hop_samples != 256:
        # The mel upsampler is two transposed convolutions of stride 16: 16 x 16 = 256 samples per frame.
        raise ValueError(f"hop_samples={p.hop_samples}: LMNT's DiffWave upsamples mel frames by exactly 256")
    for key in ("noise_schedule", "inference_noise_schedule"):
        betas = p[key]
        if (not isinstance(betas, list) or not 1 <= len(betas) <= MAX_SCHEDULE
                or not all(isinstance(b, int | float) and not isinstance(b, bool) and 0 < b < 1 for b in betas)):
            raise ValueError(f"DiffWave param {key} must be a list of 1 to {MAX_SCHEDULE} betas in (0, 1), got "
                             f"{_short(betas)}")
    return p


def _short(value: Any) -> str:
    """A value for a message, cut short (a file may hold a 10^6-element list or a 10^5-digit int)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an int of {value.bit_length()} bits"
    text = repr(value) if not isinstance(value, list | tuple) or len(value) <= 8 else f"{len(value)} values"
    return text if len(text) <= 80 else text[:77] + "..."


class DiffWaveEps(DiffWave):
    """LMNT's DiffWave as an eps-prediction network ``(x_t (B, 1, T), t (B,), mel (B, n_mels, T/256)) -> (B, 1, T)``."""

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        if cond is None:
            raise ValueError("DiffWave (LMNT 0.1.7) is a mel-conditioned vocoder: pass cond=mel (B, n_mels, frames)")
        if x_t.ndim != 3 or x_t.shape[1] != 1:
            raise ValueError(f"x_t must be (B, 1, T) audio, got shape {tuple(x_t.shape)}")
        frames = cond.shape[-1]
        if cond.ndim != 3 or cond.shape[0] != x_t.shape[0] or x_t.shape[-1] != frames * self.params.hop_samples:
            raise ValueError(f"mel/audio length mismatch: mel {tuple(cond.shape)} needs audio of "
                             f"{frames} x {self.params.hop_samples} samples, got x_t {tuple(x_t.shape)}")
        t = torch.as_tensor(t, device=x_t.device)
        if t.is_floating_point():
            # LMNT's _lerp_embedding interpolates ONE shared float step (its inference passes a (1,) tensor);
            # the (1, 512) embedding then broadcasts over the batch
            if t.numel() > 1 and not bool((t == t.reshape(-1)[0]).all()):
                raise ValueError("a float (interpolated) diffusion step must be the same for the whole batch")
            t = t.reshape(-1)[:1]
        return super().forward(x_t.squeeze(1), cond, t)  # LMNT 0.1.7 order: (audio, spectrogram, step)


def build_diffwave(params: Mapping[str, Any] | None = None) -> DiffWaveEps:
    """A freshly initialised DiffWave (LMNT's init, from the global RNG) with LMNT's params + overrides."""
    return DiffWaveEps(diffwave_params(**dict(params or {})))


def tiny_params() -> dict[str, Any]:
    """The smoke configuration of the same class: 4 layers x 8 channels, dilation cycle 2, 20 mel bands."""
    return {"residual_layers": 4, "residual_channels": 8, "dilation_cycle_length": 2, "n_mels": 20}


def read_lmnt_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read an LMNT-layout checkpoint as data (``weights_only``; only ``AttrDict`` is allow-listed), its ``params``
    checked like :func:`diffwave_params`' (bounded architecture) before anything is built from them."""
    path = Path(path)
    ck = read_torch_file(path, path, safe_globals=[AttrDict],
                         refused="Use LMNT's file or one written by save_lmnt_checkpoint",
                         corrupt="download LMNT's file again, or pass one written by save_lmnt_checkpoint")
    if (not isinstance(ck, dict) or not isinstance(ck.get("model"), dict)
            or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in ck["model"].items())):
        keys = sorted(map(str, ck)) if isinstance(ck, dict) else type(ck).__name__
        raise DiffWaveCheckpointError(f"{path}: expected LMNT's layout {{'model': state_dict (name -> tensor), "
                                      f"'params', 'step', ...}}, got {keys}; use LMNT's file or one written by "
                                      "save_lmnt_checkpoint")
    step, params = ck.get("step", 0), ck.get("params")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise DiffWaveCheckpointError(f"{path}: 'step' must be a non-negative int, got {_short(step)}; the file is "
                                      "not LMNT's layout (use LMNT's file or one written by save_lmnt_checkpoint)")
    if params is not None and not isinstance(params, dict):
        raise DiffWaveCheckpointError(f"{path}: 'params' must be a dict of LMNT's params, got "
                                      f"{type(params).__name__}")
    try:
        diffwave_params(**file_params(ck))
    except (ValueError, TypeError) as err:
        raise DiffWaveCheckpointError(f"{path}: {err}; this is not a DiffWave this kit builds (use LMNT's file or "
                                      "one written by save_lmnt_checkpoint)") from None
    return ck


def file_params(ck: Mapping[str, Any]) -> dict[str, Any]:
    """The LMNT params a checkpoint records (other keys ignored, missing ones take LMNT's defaults)."""
    return {k: v for k, v in dict(ck.get("params") or {}).items() if k in LMNT_PARAMS}


def load_diffwave(path: str | os.PathLike | None = None, local_path: str | os.PathLike | None = None,
                  allow_download: bool = True, **params: Any) -> tuple[DiffWaveEps, dict[str, Any]]:
    """(model, info) from an LMNT checkpoint: ``path``, or the official one via ``assets.fetch`` (SHA-256 checked).

    The architecture comes from the file's ``params`` (falling back to LMNT's defaults for keys it lacks), with
    ``params`` keyword overrides for non-architecture keys (e.g. ``inference_noise_schedule``). The network is
    first built on the meta device (no memory, no RNG draws) and its shapes compared with the file's weights, so
    a file never makes the kit allocate a network bigger than the weights it holds.
    """
    if path is None:
        from ..assets import fetch

        path = fetch(OFFICIAL_CHECKPOINT, local_path=local_path, allow_download=allow_download)
    ck = read_lmnt_checkpoint(path)
    saved = file_params(ck)
    clash = sorted(k for k in params if k in ARCH_KEYS and k in saved and params[k] != saved[k])
    if clash:
        raise ValueError(f"cannot override architecture key(s) {clash} of checkpoint {path}")
    arch = diffwave_params(**{**saved, **params})
    with torch.device("meta"):
        want = {k: tuple(v.shape) for k, v in DiffWaveEps(arch).state_dict().items()}
    have = {k: tuple(v.shape) for k, v in ck["model"].items()}
    if want != have:
        wrong = sorted(set(want) ^ set(have)) + sorted(k for k in set(want) & set(have) if want[k] != have[k])
        raise DiffWaveCheckpointError(f"{path}: weights do not fit DiffWave{_arch(arch)} ({len(wrong)} missing, "
                                      f"unexpected or mis-shaped; first: {wrong[:5]}); use LMNT's file or one "
                                      "written by save_lmnt_checkpoint")
    model = DiffWaveEps(arch)
    model.load_state_dict(ck["model"])
    return model, {"path": str(path), "step": ck.get("step", 0), "params": dict(model.params)}


def _arch(p: Mapping[str, Any]) -> str:
    return f"(layers={p['residual_layers']}, channels={p['residual_channels']}, n_mels={p['n_mels']})"


def save_lmnt_checkpoint(model: DiffWave, path: str | os.PathLike, step: int = 0,
                         optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write ``model`` in LMNT's checkpoint layout (atomically): loadable by LMNT's code and :func:`load_diffwave`."""
    model = getattr(model, "module", model)
    state = {
        "step": int(step),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else {"state": {}, "param_groups": []},
        "params": dict(model.params),
        "scaler": {},
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


# ------------------------------------------------------------------ inference


def inference_schedule(model: DiffWave, schedule: str = "fast"):
    """(schedule, model_steps) of LMNT's inference: "fast" = its 6-step ``inference_noise_schedule`` with the
    training step embedding interpolated at matching noise levels; "full" = the training schedule itself."""
    from ..diffusion import DDPMSchedule, align_steps

    train = DDPMSchedule(torch.tensor(model.params.noise_schedule, dtype=torch.float64))
    if schedule == "full":
        return train, None
    if schedule != "fast":
        raise ValueError(f"schedule must be 'fast' (LMNT's 6 steps) or 'full' (the training steps), got {schedule!r}")
    fast = DDPMSchedule(torch.tensor(model.params.inference_noise_schedule, dtype=torch.float64))
    return fast, align_steps(train, fast)


@torch.no_grad()
def vocode(model: DiffWave, mels: list, schedule: str = "fast", batch_size: int = 8, seed: int = 0,
           clip_x: float | None = 1.0, progress: bool = True) -> list:
    """Waveforms (float32 numpy (F * 256,)) for mel spectrograms (n_mels, F), as LMNT's ``inference.predict``.

    Ancestral DDPM sampling (``diffusion.ancestral_sample``) on the fast or full schedule, the waveform clamped
    to [-clip_x, clip_x] after every step as LMNT does. Clips are batched by length; a shorter clip's mel is
    padded with zeros (the -100 dB floor, i.e. silence) up to the longest of its batch, so only its last
    receptive field (~6k samples for the 30-layer net) can see the padding. Latents and noise come from one
    generator seeded with ``seed``: the output depends on the seed, the clips and ``batch_size``.
    """
    import numpy as np
    from tqdm.auto import tqdm

    from ..diffusion import ancestral_sample

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n_mels, hop = model.params.n_mels, model.params.hop_samples
    for i, m in enumerate(mels):
        if np.ndim(m) != 2 or np.shape(m)[0] != n_mels or np.shape(m)[1] < 1:
            raise ValueError(f"mels[{i}] must be ({n_mels}, frames), got shape {np.shape(m)}")
    sched, steps = inference_schedule(model, schedule)
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    order = sorted(range(len(mels)), key=lambda i: np.shape(mels[i])[1])
    out: list = [None] * len(mels)
    model.eval()
    for start in tqdm(range(0, len(order), batch_size), desc=f"vocode ({schedule})", disable=not progress):
        idx = order[start: start + batch_size]
        frames = max(np.shape(mels[i])[1] for i in idx)
        cond = torch.zeros(len(idx), n_mels, frames, device=device)
        for b, i in enumerate(idx):
            m = torch.as_tensor(np.asarray(mels[i], np.float32))
            cond[b, :, : m.shape[1]] = m
        latents = torch.randn(len(idx), 1, frames * hop, generator=g, device=device)
        audio = ancestral_sample(model, latents, sched, generator=g, cond=cond, model_steps=steps, clip_x=clip_x)
        for b, i in enumerate(idx):
            out[i] = audio[b, 0, : np.shape(mels[i])[1] * hop].float().cpu().numpy()
    return out
