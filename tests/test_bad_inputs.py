"""The bad-input probe as a table: every bad input across the public API and both CLIs raises the right error
type (or exits with code 2 and one line), and the message names the argument and says what to do.

Each row: (id, call, expected exception, words the message must contain). ``call`` takes the session's small
fixture files (``files``). CLI rows call ``specreg``'s ``main`` in-process and check exit code 2 and a single
stderr line; the ``cli-missing-*`` rows give every door (sweep/finetune for EDM and DiffWave in the paper profile,
generate, fid, table1) a checkpoint, dataset, Inception or reference file that is not there, with the download
cache pointed at an empty folder and the registry's files at absent paths, so nothing is downloaded.
docs/reliability.md explains how to rerun the probe and what it found.
"""

from __future__ import annotations

import os
import pickle
import re

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from specreg_lib import assets
from specreg_lib.diffusion import (
    DDPMLoss,
    DDPMSchedule,
    EDMLoss,
    Precond,
    Regularizer,
    VELoss,
    beta_schedule,
    ddim_timesteps,
    preconditioning,
)
from specreg_lib.io import atomic_open, resolve_repo_path
from specreg_lib.kit import cli
from specreg_lib.kit.parameters import parse_overrides
from specreg_lib.kit.paths import resolve_out_dir
from specreg_lib.metrics import (
    floored_spectrum,
    high_frequency_energy_ratio,
    radial_power_spectrum,
    spectral_log_distance,
    welch_power_spectrum,
)
from specreg_lib.metrics.fid import save_reference_stats
from specreg_lib.models.diffwave import build_diffwave, diffwave_params, save_lmnt_checkpoint
from specreg_lib.models.tiny_edm import write_tiny_checkpoint
from specreg_lib.spectral import SpectralLoss, amplitude_loss, amplitude_phase_loss, wavelet_loss
from specreg_lib.training import TrainConfig, load_checkpoint, resolve_device, train
from specreg_lib.training.checkpoint import check_plain

# A message "says what to do" when it holds one of these (an instruction, a valid choice, an example).
HINT = re.compile(r"\b(use|pass|convert|choose|need|needs|must|add|give|set|check|remove|delete|try|pick|move|"
                  r"resample|flatten|lower|keep|build|re-export|restore|write|compare|point|valid|known|"
                  r"available|see|at least|at most|one of)\b|e\.g\.", re.IGNORECASE)

X = torch.randn(2, 3, 16, 16)


class _Planted:
    """Unpickling this runs ``_mark`` (a stand-in for arbitrary code)."""

    def __reduce__(self):
        return (_mark, ())


RAN: list[str] = []


def _mark() -> str:
    RAN.append("code ran")
    return "pwned"


def _tiny_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Conv2d(1, 1, 3, padding=1)


def _loss(model, x0, cond=None):
    return (model(x0) - x0).square().flatten(1).mean(1)


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"steps": 2, "batch_size": 2, "progress": False, "ema_decay": 0.0, **kw})


def _train_other_arch(files):
    """Resume a checkpoint of a Conv2d(1, 1, 3) into a Conv2d(1, 2, 3)."""
    ck = files["tmp"] / "arch.pt"
    train(_tiny_net(), _loss, lambda n, g: torch.randn(n, 1, 8, 8, generator=g), _cfg(), ck)
    train(torch.nn.Conv2d(1, 2, 3, padding=1), _loss, lambda n, g: torch.randn(n, 1, 8, 8, generator=g), _cfg(), ck)


class _WrongChannels(torch.nn.Module):
    def forward(self, x, c_noise):
        return x[:, :1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Small bad and good inputs on disk, made once."""
    tmp = tmp_path_factory.mktemp("bad")
    g = np.random.default_rng(0)

    def folder(name: str) -> object:
        p = tmp / name
        p.mkdir()
        return p

    good = folder("good")
    for i in range(2):
        Image.fromarray(g.integers(0, 256, (16, 16), dtype=np.uint8)).save(good / f"{i}.png")
    tiny = folder("tiny")
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(tiny / "a.png")
    flat = folder("flat")
    Image.fromarray(np.full((16, 16), 128, np.uint8)).save(flat / "a.png")
    alpha = folder("alpha")
    rgba = g.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    rgba[..., 3] = 0
    Image.fromarray(rgba, "RGBA").save(alpha / "a.png")
    (folder("empty") / "notes.txt").write_text("x")
    wav = folder("wav")
    sf.write(wav / "a.wav", 0.1 * g.standard_normal(4096), 8000)
    silent = folder("silent")
    sf.write(silent / "a.wav", np.zeros(4096), 8000)
    short = folder("short")
    sf.write(short / "a.wav", 0.1 * g.standard_normal(300), 8000)
    trunc = folder("trunc")
    sf.write(tmp / "full.wav", 0.1 * g.standard_normal(4096), 8000)
    (trunc / "a.wav").write_bytes((tmp / "full.wav").read_bytes()[:2000])
    rates = folder("rates")
    sf.write(rates / "a.wav", 0.1 * g.standard_normal(4096), 8000)
    sf.write(rates / "b.wav", 0.1 * g.standard_normal(4096), 16000)
    (tmp / "a_file").write_text("x")
    with open(tmp / "planted.pt", "wb") as fh:
        pickle.dump({"step": _Planted()}, fh)
    torch.save({"step": 1, "x": _Planted()}, tmp / "planted_torch.pt")
    (tmp / "corrupt.pt").write_bytes(b"PK\x03\x04 not really a zip")
    payload = b"weights"
    (tmp / "remote.bin").write_bytes(payload)
    write_tiny_checkpoint(tmp / "tiny16.pkl", "vp", 16, 8)  # an EDM pickle at a resolution the paper has no steps for
    save_reference_stats(tmp / "ref.npz", np.zeros(3), np.eye(3), "legacy_tensorflow", 10)
    torch.manual_seed(0)  # a small DiffWave in LMNT's layout with the paper's 80 mels
    save_lmnt_checkpoint(build_diffwave(diffwave_params(residual_layers=2, residual_channels=4,
                                                        dilation_cycle_length=1)), tmp / "lmnt.pt")
    return {"tmp": tmp, "good": good, "tiny": tiny, "flat": flat, "alpha": alpha, "empty": tmp / "empty",
            "wav": wav, "silent": silent, "short": short, "trunc": trunc, "rates": rates,
            "file": tmp / "a_file", "remote": tmp / "remote.bin", "tiny16": tmp / "tiny16.pkl",
            "ref": tmp / "ref.npz", "lmnt": tmp / "lmnt.pt"}


def _door(*argv: str):
    """A call of the training door (``specreg sweep`` / ``finetune``) that stops before anything is run."""
    return lambda f: cli.main([*argv, "--dry-run", "--root", str(f["tmp"] / "runs")])


def _spectrum(*args: str):
    return lambda f: cli.main(["spectrum", *[a.format(**{k: str(v) for k, v in f.items()}) for a in args]])


def _cli(*args: str, env: dict[str, str] | None = None, unless: str | None = None):
    """``specreg ARGS`` with ``{name}`` filled from the fixture files and ``env`` set for the call; skipped when
    a repository path matches the glob ``unless`` (the file the row makes missing is there on this machine)."""
    def call(f):
        if unless and any(resolve_repo_path(".").glob(unless)):
            pytest.skip(f"{unless} exists here")
        fill = {k: str(v) for k, v in f.items()}
        saved = {k: os.environ.get(k) for k in env or {}}
        os.environ.update({k: v.format(**fill) for k, v in (env or {}).items()})
        try:
            return cli.main([a.format(**fill) for a in args])
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return call


# The training doors on the paper profile, one run, stopping at the first missing file (before any step).
EDM_PAPER = ("--task", "edm", "--profile", "paper", "--regularizer", "baseline", "--seeds", "1", "--root", "{tmp}/runs")
AUDIO_PAPER = ("--profile", "paper", "--regularizer", "baseline", "--seeds", "1", "--root", "{tmp}/runs")
EDM_VP = "edm-afhqv2-64x64-uncond-vp.pkl"
NO_FILES = {a.env_var: "{tmp}/absent/" + a.name for a in assets.REGISTRY.values()}  # every registry file: absent


def _fake_asset(f, sha):
    asset = assets.Asset("model.bin", f["remote"].as_uri(), sha, "checkpoint", "a test")
    assets.REGISTRY["model.bin"] = asset
    return "model.bin"


CASES = [
    # ---- spectral losses (Eqs. 14-16)
    ("loss-not-tensor", lambda f: amplitude_loss([1.0], X), TypeError, ["x0_hat", "torch.Tensor"]),
    ("loss-int-dtype", lambda f: amplitude_loss(X.long(), X), TypeError, ["x0_hat", "float"]),
    ("loss-complex", lambda f: amplitude_loss(X.to(torch.complex64), X), TypeError, ["x0_hat", "complex"]),
    ("loss-nan", lambda f: amplitude_loss(X * float("nan"), X), ValueError, ["x0_hat", "check_finite"]),
    ("loss-shape", lambda f: amplitude_loss(X, X[:, :1]), ValueError, ["x0_hat", "x0", "shape"]),
    ("loss-too-few-axes", lambda f: amplitude_loss(X[0, 0], X[0, 0]), ValueError, ["x0_hat", "unsqueeze"]),
    ("loss-empty-axis", lambda f: amplitude_loss(X[:0], X[:0]), ValueError, ["x0_hat", "empty"]),
    ("loss-norm", lambda f: amplitude_loss(X, X, norm="unitary"), ValueError, ["norm", "ortho"]),
    ("loss-coupling", lambda f: amplitude_phase_loss(X, X, coupling="x"), ValueError, ["coupling", "per_frequency"]),
    ("loss-phase-eps", lambda f: amplitude_phase_loss(X, X, phase_eps=0.0), ValueError, ["phase_eps", "> 0"]),
    ("loss-phase-eps-nan", lambda f: amplitude_phase_loss(X, X, phase_eps=float("nan")), ValueError, ["phase_eps"]),
    ("spectral-kind", lambda f: SpectralLoss("fourier"), ValueError, ["kind", "amp_phase"]),
    ("spectral-option", lambda f: SpectralLoss("amp", wave="haar"), TypeError, ["wave", "valid"]),
    ("wavelet-name", lambda f: wavelet_loss(X, X, "nope"), ValueError, ["wavelet", "haar"]),
    ("wavelet-continuous", lambda f: wavelet_loss(X, X, "morl"), ValueError, ["wavelet", "pywt.wavelist"]),
    ("wavelet-mode", lambda f: wavelet_loss(X, X, mode="smooth"), ValueError, ["mode", "zero"]),
    ("wavelet-levels-0", lambda f: wavelet_loss(X, X, levels=0), ValueError, ["levels", "positive"]),
    ("wavelet-ndim-3", lambda f: wavelet_loss(X, X, ndim=3), ValueError, ["ndim=1", "ndim=2"]),
    ("wavelet-gamma-len", lambda f: wavelet_loss(X, X, levels=2, gamma=[1, 2]), ValueError, ["gamma", "3"]),
    ("wavelet-gamma-nan", lambda f: wavelet_loss(X, X, levels=1, gamma=[1, float("nan")]), ValueError, ["gamma"]),
    ("wavelet-reflect-deep", lambda f: wavelet_loss(X, X, "haar", 5, mode="reflect"), ValueError,
     ["levels", "reflect"]),
    # ---- diffusion (Eqs. 1-7, 17)
    ("reg-lambda-inf", lambda f: Regularizer("amp", lambda_spec=float("inf")), ValueError, ["lambda_spec", "finite"]),
    ("reg-lambda-neg", lambda f: Regularizer("amp", lambda_spec=-1.0), ValueError, ["lambda_spec", ">= 0"]),
    ("reg-kind", lambda f: Regularizer("phase"), ValueError, ["kind", "amp"]),
    ("reg-kind-type", lambda f: Regularizer(3), TypeError, ["kind", "callable"]),
    ("reg-weighting-type", lambda f: Regularizer("amp", weighting=3), TypeError, ["weighting", "SpectralWeighting"]),
    ("reg-custom-options", lambda f: Regularizer(amplitude_loss, options={"norm": "ortho"}), TypeError,
     ["options", "SpectralFn"]),
    ("reg-from-dict", lambda f: Regularizer.from_dict({"kind": "amp", "lam": 1}), ValueError, ["lam", "Regularizer"]),
    ("loss-regularizer-type", lambda f: EDMLoss(regularizer="amp"), TypeError, ["regularizer", "Regularizer("]),
    ("precond-sigma-inf", lambda f: Precond(_WrongChannels())(X, float("inf")), ValueError, ["sigma", "finite"]),
    ("precond-sigma-neg", lambda f: Precond(_WrongChannels())(X, -1.0), ValueError, ["sigma", ">= 0"]),
    ("precond-sigma-data-0", lambda f: Precond(_WrongChannels(), sigma_data=0.0), ValueError, ["sigma_data", "> 0"]),
    ("precond-channels", lambda f: Precond(_WrongChannels())(X, 1.0), ValueError, ["out_channels", "shaped like"]),
    ("precond-kind", lambda f: Precond(_WrongChannels(), kind="ddpm"), ValueError, ["kind", "edm"]),
    ("precond-sigma-shape", lambda f: Precond(_WrongChannels())(X, torch.ones(3)), ValueError, ["sigma", "scalar"]),
    ("preconditioning-nan", lambda f: preconditioning("edm", float("nan")), ValueError, ["sigma", "finite"]),
    ("edm-sigma-data-0", lambda f: EDMLoss(sigma_data=0.0), ValueError, ["sigma_data", "> 0"]),
    ("edm-empty-batch", lambda f: EDMLoss()(Precond(_WrongChannels()), X[:0]), ValueError, ["x0", "B >= 1"]),
    ("edm-int-data", lambda f: EDMLoss()(Precond(_WrongChannels()), (X * 100).to(torch.uint8)), TypeError,
     ["x0", "x.float()"]),
    ("ddpm-int-data", lambda f: DDPMLoss(DDPMSchedule(beta_schedule("linear", 10)))(None, X.long()), TypeError,
     ["x0", "x.float()"]),
    ("ddpm-schedule-type", lambda f: DDPMLoss("linear"), TypeError, ["schedule", "DDPMSchedule"]),
    ("ddim-steps-0", lambda f: ddim_timesteps(100, 0), ValueError, ["num_steps", "[1, 100]"]),
    ("ddim-steps-big", lambda f: ddim_timesteps(100, 101), ValueError, ["num_steps", "[1, 100]"]),
    ("ve-range", lambda f: VELoss(sigma_min=10.0, sigma_max=1.0), ValueError, ["sigma_min", "sigma_max"]),
    # ---- training
    ("cfg-grad-clip-nan", lambda f: TrainConfig(grad_clip=float("nan")), ValueError, ["grad_clip", "finite"]),
    ("cfg-lr-inf", lambda f: TrainConfig(lr=float("inf")), ValueError, ["lr", "finite"]),
    ("cfg-steps-float", lambda f: TrainConfig(steps=2.5), TypeError, ["steps", "int"]),
    ("cfg-precision", lambda f: TrainConfig(precision="fp8"), ValueError, ["precision", "bf16"]),
    ("cfg-betas", lambda f: TrainConfig(betas=(0.9,)), ValueError, ["betas", "[0, 1)"]),
    ("cfg-accumulate", lambda f: TrainConfig(batch_size=6, accumulate=4), ValueError, ["accumulate", "batch_size"]),
    ("cfg-two-ema", lambda f: TrainConfig(ema_halflife_kimg=10.0), ValueError, ["ema_decay", "ema_halflife_kimg"]),
    ("device-cuda-missing", lambda f: resolve_device("cuda:7" if torch.cuda.is_available() else "cuda"), ValueError,
     ["device=", "auto"]),
    ("device-name", lambda f: resolve_device("gpu"), ValueError, ["device=", "cuda"]),
    ("ckpt-planted", lambda f: load_checkpoint(f["tmp"] / "planted.pt"), pickle.UnpicklingError,
     ["planted.pt", "refusing"]),
    ("ckpt-planted-torch", lambda f: load_checkpoint(f["tmp"] / "planted_torch.pt"), pickle.UnpicklingError,
     ["planted_torch.pt", "refusing"]),
    ("ckpt-corrupt", lambda f: load_checkpoint(f["tmp"] / "corrupt.pt"), ValueError, ["corrupt.pt", "delete"]),
    ("ckpt-missing", lambda f: load_checkpoint(f["tmp"] / "nope.pt"), FileNotFoundError, ["nope.pt", "check"]),
    ("ckpt-other-arch", _train_other_arch, ValueError, ["arch.pt", "architecture"]),
    ("ckpt-meta-object", lambda f: check_plain({"cfg": object()}, "meta"), TypeError, ["meta['cfg']", "convert"]),
    ("train-meta-object", lambda f: train(_tiny_net(), _loss, lambda n, g: torch.randn(n, 1, 8, 8), _cfg(),
                                          meta={"net": _tiny_net()}), TypeError, ["meta['net']", "convert"]),
    ("train-int-data", lambda f: train(_tiny_net(), _loss, lambda n, g: torch.ones(n, 1, 8, 8, dtype=torch.long),
                                       _cfg()), TypeError, ["x0", "float()"]),
    # ---- metrics
    ("spectrum-3d", lambda f: radial_power_spectrum(X[0]), ValueError, ["kind='audio'", "kind='image'"]),
    ("spectrum-1x1", lambda f: radial_power_spectrum(X[..., :1, :1]), ValueError, ["2x2"]),
    ("spectrum-window", lambda f: radial_power_spectrum(X, window="hamming"), ValueError, ["window", "hann"]),
    ("spectrum-kind", lambda f: radial_power_spectrum(X, kind="video"), ValueError, ["kind", "audio"]),
    ("hf-cutoff", lambda f: high_frequency_energy_ratio(np.linspace(0, 0.5, 5), np.ones(5), np.ones(5), 0.9),
     ValueError, ["cutoff", "0.5"]),
    ("log-distance-len", lambda f: spectral_log_distance(np.ones(5), np.ones(4)), ValueError, ["differ in length"]),
    ("welch-short", lambda f: welch_power_spectrum(np.zeros(10), 64), ValueError, ["nperseg", "smaller nperseg"]),
    ("floor-0", lambda f: floored_spectrum(X, 0.0), ValueError, ["floor", "> 0"]),
    # ---- files and downloads
    ("atomic-read-mode", lambda f: atomic_open(f["tmp"] / "x", "r").__enter__(), ValueError, ["mode", "'w'"]),
    ("asset-unknown", lambda f: assets.fetch("edm-nope.pkl"), KeyError, ["edm-nope.pkl", "known assets"]),
    ("asset-local-missing", lambda f: assets.fetch(_fake_asset(f, None), local_path=f["tmp"] / "no.bin"),
     assets.AssetMissingError, ["no.bin", "local_path="]),
    ("asset-no-download", lambda f: assets.fetch(_fake_asset(f, None), allow_download=False),
     assets.AssetMissingError, ["model.bin", "downloads are disabled"]),
    ("asset-bad-pin", lambda f: assets.fetch(_fake_asset(f, None), sha256="abc"), ValueError, ["sha256", "64 hex"]),
    ("asset-checksum", lambda f: assets.fetch(_fake_asset(f, "0" * 64), progress=False), assets.ChecksumError,
     ["model.bin", "download again"]),
    ("url-not-url", lambda f: assets.fetch_url("edm.pkl"), ValueError, ["url", "https://"]),
    ("url-no-file", lambda f: assets.fetch_url("https://example.org/dir/"), ValueError, ["url", "names no file"]),
    ("url-missing", lambda f: assets.fetch_url((f["tmp"] / "gone.pkl").as_uri(), progress=False),
     assets.AssetMissingError, ["gone.pkl", "put it in"]),
    # ---- the notebook kit (papermill parameters, output folders)
    ("kit-profile", lambda f: resolve_out_dir("figures/{profile}/x", "gpu"), ValueError, ["profile", "smoke"]),
    ("kit-override", lambda f: parse_overrides(["seed"]), ValueError, ["seed", "key=value"]),
    # ---- CLIs: exit code 2, one line on stderr
    ("cli-spectrum-missing", _spectrum("{tmp}/nope", "{good}", "--out", "{tmp}/o"), 2, ["nope", "no such folder"]),
    ("cli-spectrum-empty", _spectrum("{empty}", "{good}", "--out", "{tmp}/o"), 2, ["empty", "PNG"]),
    ("cli-spectrum-cutoff", _spectrum("{good}", "{good}", "--cutoff", "0.9", "--out", "{tmp}/o"), 2,
     ["--cutoff 0.9", "0.25"]),
    ("cli-spectrum-cutoff-0", _spectrum("{good}", "{good}", "--cutoff", "0", "--out", "{tmp}/o"), 2, ["--cutoff"]),
    ("cli-spectrum-1x1", _spectrum("{tiny}", "{good}", "--out", "{tmp}/o"), 2, ["a.png", "at least 8x8"]),
    ("cli-spectrum-1x1-b", _spectrum("{good}", "{tiny}", "--out", "{tmp}/o"), 2, ["a.png", "at least 8x8"]),
    ("cli-spectrum-constant", _spectrum("{flat}", "{good}", "--out", "{tmp}/o"), 2, ["flat", "constant"]),
    ("cli-spectrum-constant-b", _spectrum("{good}", "{flat}", "--out", "{tmp}/o"), 2, ["flat", "constant"]),
    ("cli-spectrum-silent", _spectrum("{silent}", "{wav}", "--out", "{tmp}/o"), 2, ["silent", "constant"]),
    ("cli-spectrum-silent-b", _spectrum("{wav}", "{silent}", "--out", "{tmp}/o"), 2, ["silent", "constant"]),
    ("cli-spectrum-out-under-file", _spectrum("{good}", "{good}", "--out", "{file}/fig"), 2, ["--out", "a_file"]),
    ("cli-spectrum-alpha", _spectrum("{alpha}", "{good}", "--out", "{tmp}/o"), 2, ["a.png", "transparent"]),
    ("cli-spectrum-truncated", _spectrum("{trunc}", "{wav}", "--out", "{tmp}/o"), 2, ["a.wav", "truncated"]),
    ("cli-spectrum-short", _spectrum("{short}", "{wav}", "--out", "{tmp}/o"), 2, ["a.wav", "--nperseg"]),
    ("cli-spectrum-rates", _spectrum("{rates}", "{rates}", "--out", "{tmp}/o"), 2, ["sample rates", "resample"]),
    ("cli-spectrum-kinds", _spectrum("{good}", "{wav}", "--out", "{tmp}/o"), 2, ["image files", "audio files"]),
    ("cli-spectrum-nperseg", _spectrum("{wav}", "{wav}", "--nperseg", "2", "--out", "{tmp}/o"), 2, ["--nperseg"]),
    ("cli-reproduce-only", lambda f: cli.main(["reproduce", "--only", "99_nope"]), 2, ["--only", "available"]),
    ("cli-reproduce-profile-param", lambda f: cli.main(["reproduce", "--only", "00_environment", "-p",
                                                        "profile=cpu"]), 2, ["profile", "--profile"]),
    ("cli-reproduce-unknown-param", lambda f: cli.main(["reproduce", "--only", "00_environment", "-p", "zzz=1"]), 2,
     ["zzz", "--list"]),
    ("cli-reproduce-bad-pair", lambda f: cli.main(["reproduce", "-p", "seed"]), 2, ["seed", "key=value"]),
    ("cli-sweep-grid", lambda f: cli.main(["sweep", "checkerboard", "--grid", "nope=1,2", "--dry-run",
                                           "--root", str(f["tmp"] / "runs")]), 2, ["nope"]),
    ("cli-sweep-seeds", _door("sweep", "checkerboard", "--seeds", "1,x"), 2, ["--seeds '1,x'", "1-5"]),
    ("cli-finetune-seeds", _door("finetune", "--task", "edm", "--seeds", "3-1"), 2, ["--seeds '3-1'", "backwards"]),
    ("cli-sweep-variant", _door("sweep", "checkerboard", "--regularizer", "amp,nope"), 2, ["'nope'", "amp_phase"]),
    ("cli-sweep-option-elsewhere", _door("sweep", "diffwave", "--family", "vp"), 2, ["--family", "edm_afhqv2"]),
    ("cli-finetune-option-elsewhere", _door("finetune", "--task", "audio", "--length", "five_steps"), 2,
     ["--length", "--task edm"]),
    ("cli-sweep-choice", _door("sweep", "edm_afhqv2", "--family", "vp,xx"), 2, ["--family", "vp, ve"]),
    ("cli-sweep-twice", _door("sweep", "checkerboard", "--regularizer", "amp", "--grid", "regularizer=haar"), 2,
     ["regularizer", "once"]),
    ("cli-finetune-preset", _door("finetune", "--task", "audio", "--preset", "ffhq-64"), 2, ["--preset", "--task edm"]),
    ("cli-finetune-both", _door("finetune", "diffwave", "--task", "edm"), 2, ["--task", "not both"]),
    # ---- CLIs: a missing checkpoint, dataset, Inception or reference file at every door (exit 2, one line)
    ("cli-missing-finetune-edm-data", _cli("finetune", *EDM_PAPER, "--checkpoint", "tiny", "--data", "{tmp}/no.zip"),
     2, ["no.zip", "check the path passed with --data", "--data standin"]),
    ("cli-missing-finetune-edm-default-data", _cli("finetune", *EDM_PAPER, "--checkpoint", "tiny",
                                                   unless="data/afhqv2-64x64.zip"), 2,
     [str(resolve_repo_path("data/afhqv2-64x64.zip")), "prepare_dataset('afhqv2-64x64'",
      assets.REGISTRY["afhq_v2.zip"].url, "--data PATH"]),
    ("cli-missing-finetune-edm-checkpoint", _cli("finetune", *EDM_PAPER, "--checkpoint", "{tmp}/no.pkl"), 2,
     ["no.pkl", "--checkpoint PATH"]),
    ("cli-missing-finetune-edm-local-copy", _cli("finetune", *EDM_PAPER, "--set", "model.local_path={tmp}/no.pkl"), 2,
     [EDM_VP, "no.pkl", assets.REGISTRY[EDM_VP].url, "--set model.local_path=PATH"]),
    ("cli-missing-sweep-edm-official", _cli("sweep", "edm_afhqv2", *EDM_PAPER[2:], env=NO_FILES), 2,
     [EDM_VP, "absent", assets.REGISTRY[EDM_VP].env_var, assets.REGISTRY[EDM_VP].url, "--checkpoint PATH"]),
    ("cli-missing-sweep-diffwave-checkpoint", _cli("sweep", "diffwave", *AUDIO_PAPER, "--checkpoint", "{tmp}/no.pt"),
     2, ["diffwave-ljspeech-22kHz-1000578.pt", "no.pt", "lmnt.com", "--checkpoint PATH"]),
    ("cli-missing-finetune-audio-official", _cli("finetune", "--task", "audio", *AUDIO_PAPER, env=NO_FILES), 2,
     ["diffwave-ljspeech-22kHz-1000578.pt", "absent", "lmnt.com", "--checkpoint PATH"]),
    ("cli-missing-sweep-diffwave-own-checkpoint", _cli("sweep", "diffwave", *AUDIO_PAPER, "--set",
                                                       "model.checkpoint={tmp}/no.pt"), 2,
     ["model.checkpoint", "no.pt", "--set model.checkpoint=PATH"]),
    ("cli-missing-sweep-diffwave-data", _cli("sweep", "diffwave", *AUDIO_PAPER, "--set", "model.checkpoint={lmnt}",
                                             "--data", "{tmp}/no.tar.bz2", unless="data/LJSpeech-1.1*"), 2,
     ["LJSpeech-1.1.tar.bz2", "no.tar.bz2", "keithito.com", "--data PATH"]),
    ("cli-missing-generate-checkpoint", _cli("generate", "--network", "{tmp}/no.pkl", "--outdir", "{tmp}/g"), 2,
     ["no.pkl", "--network PATH"]),
    ("cli-missing-generate-offline", _cli("generate", "--network", EDM_VP, "--outdir", "{tmp}/g", "--offline"), 2,
     [EDM_VP, "downloads are disabled", assets.REGISTRY[EDM_VP].url, "--network PATH"]),
    ("cli-missing-generate-env", _cli("generate", "--network", EDM_VP, "--outdir", "{tmp}/g", env=NO_FILES), 2,
     [EDM_VP, "absent", assets.REGISTRY[EDM_VP].env_var, "--network PATH"]),
    ("cli-generate-steps", _cli("generate", "--network", "{tiny16}", "--outdir", "{tmp}/g16", "--seeds", "0"), 2,
     ["16x16", "--steps N"]),
    ("cli-missing-fid-inception", _cli("fid", "{good}", "--ref", "{ref}", "--inception", "{tmp}/no.pt"), 2,
     ["inception-2015-12-05.pt", "no.pt", "nvlabs-fi-cdn.nvidia.com", "--inception PATH"]),
    ("cli-missing-fid-make-ref-inception", _cli("fid", "--make-ref", "{good}", "--ref", "{tmp}/r.npz", "--inception",
                                                "{tmp}/no.pt"), 2, ["inception-2015-12-05.pt", "--inception PATH"]),
    ("cli-missing-fid-reference", _cli("fid", "{good}", "--ref", "afhqv2-64x64.npz", "--offline"), 2,
     ["afhqv2-64x64.npz", "downloads are disabled", "fid-refs", "--ref PATH"]),
    ("cli-missing-fid-dataset", _cli("fid", "--make-ref", "{tmp}/no.zip", "--ref", "{tmp}/r.npz"), 2,
     ["no.zip", "data/afhqv2-64x64.zip", "prepare_dataset"]),
    ("cli-missing-fid-images", _cli("fid", "{tmp}/no_images", "--ref", "{ref}"), 2, ["no_images", "--outdir"]),
    ("cli-missing-table1-checkpoint", _cli("table1", "--profile", "paper", "--presets", "afhqv2-64", "--families", "vp",
                                           "--variants", "amp", "--weightings", "weighted", "--seeds", "1", "--images",
                                           "3", "--root", "{tmp}/t1", env=NO_FILES), 2,
     ["absent", "nvlabs-fi-cdn.nvidia.com", "SPECREG_"]),
]


def _hint_ok(message: str) -> bool:
    return bool(HINT.search(message))


@pytest.mark.filterwarnings("ignore::UserWarning")  # e.g. levels beyond dwt_max_level warn before they fail
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly(case, files, capsys, monkeypatch):
    """The error type (or exit code 2), the argument named, and an instruction in the message."""
    name, call, expected, words = case
    monkeypatch.setattr(assets, "REGISTRY", dict(assets.REGISTRY))  # _fake_asset's entry goes with the test
    monkeypatch.setenv("SPECREG_CACHE", str(files["tmp"] / "cache"))  # an empty cache: nothing found, nothing reused
    for asset in assets.REGISTRY.values():  # no copy the machine points at either
        monkeypatch.delenv(asset.env_var, raising=False)
    RAN.clear()
    if expected == 2:
        code = _exit_code(call, files)
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.strip() and not _is_progress(ln)]
        assert code == 2, f"{name}: exit code {code}, stderr {err!r}"
        one_line = name.startswith(("cli-spectrum", "cli-missing", "cli-generate"))
        assert len(lines) == 1 or not one_line, f"{name}: {len(lines)} lines: {lines}"
        message = " ".join(lines)
    else:
        with pytest.raises(expected) as info:
            call(files)
        message = str(info.value.args[0]) if isinstance(info.value, KeyError) else str(info.value)
    for word in words:
        assert word in message, f"{name}: {word!r} not in {message!r}"
    assert _hint_ok(message), f"{name}: the message does not say what to do: {message!r}"
    assert not RAN, f"{name}: loading the file ran code"


def _exit_code(call, files) -> int:
    try:
        return call(files)
    except SystemExit as exc:  # argparse's own errors
        return int(exc.code)


def _is_progress(line: str) -> bool:
    return "it/s]" in line or "file/s]" in line or "s/file]" in line or "|" in line and "%" in line


def test_probe_covers_sixty_inputs_across_layers():
    """The table is the probe: at least 60 inputs, from the losses to both CLIs."""
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)
    groups = {c[0].split("-")[0] for c in CASES}
    assert {"loss", "wavelet", "reg", "precond", "cfg", "ckpt", "spectrum", "asset", "url", "kit", "cli"} <= groups



def test_every_door_help_reads_whole(capsys):
    """Each subcommand's --help: a description that ends its sentence (the docstring's whole first paragraph), and
    every example's shell line continuation followed by its indented continuation line."""
    from specreg_lib.experiments import COMMANDS

    for name in [*cli.KIT_COMMANDS, *COMMANDS]:
        with pytest.raises(SystemExit):
            cli.main([name, "--help"])
        text = capsys.readouterr().out
        description = text.split("\n\n")[1]  # argparse: usage, blank line, description, blank line, options
        assert description.rstrip().endswith((".", ")")), f"{name}: the description stops mid-sentence: {description!r}"
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.endswith("\\"):
                follow = lines[i + 1] if i + 1 < len(lines) else ""
                indent = len(line) - len(line.lstrip())
                assert follow.strip() and len(follow) - len(follow.lstrip()) > indent and not line.endswith("\\\\"), \
                    f"{name}: broken line continuation: {line!r} then {follow!r}"
