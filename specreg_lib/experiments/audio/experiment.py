"""DiffWave vocoder fine-tuning with spectral losses (paper Section 5.3, Table 2) on the experiment layer.

The objective is LMNT's: the L1 distance between eps and DiffWave's eps_hat, t uniform over the 50 training steps
of the checkpoint's ``noise_schedule`` (``DDPMLoss(norm="l1")``), plus ``lambda_spec * L_S(x0_hat, x0)`` with
x0_hat by Eq. 5 and a constant lambda (weighting "unweighted", the paper's audio setting). L_S is a 1-D
amplitude (Eq. 14), amplitude-phase (Eq. 15) or Haar / bior1.3 wavelet (Eq. 16) loss over the waveform.

The scale of L_S (the paper leaves it open; its lambdas are 1e-4..1e-6): ``loss.bins="sum"`` sums over
frequencies or wavelet coefficients, as the L1 norms ||.||_1 of Eqs. 14-16 read, with an orthonormal FFT.
Why, on evidence: for a waveform crop of N = 15,872 samples and an x0 error of RMS s, the summed amplitude loss
is about 0.5 N s while LMNT's L1 eps loss is about 0.8 s / sigma_t, so lambda * L_S / L_diff ~ lambda * 1e4 *
sigma_t, with sigma_t in [0.01, 1.6] on the 50-step schedule: lambda = 1e-4 is a moderate term (~0.01..1.6),
1e-6 a faint one, the spread the paper's grid suggests. With a mean (any FFT norm) even 1e-4 would be < 1% of
L_diff at every step, and a summed unnormalised FFT would exceed L_diff 100-fold. ``bins="mean"`` is kept.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from torch import nn

from ...assets import AssetMissingError, fetch
from ...data.speech import MelConfig, SpeechCorpus, SpeechCrops, pad_batch, write_wav
from ...data.speech_corpora import prepare_ljspeech, prepare_standin
from ...data.speech_multivoice import prepare_multivoice
from ...diffusion import DDPMLoss, DDPMSchedule, Regularizer
from ...io import resolve_repo_path
from ...models.diffwave import (
    OFFICIAL_CHECKPOINT,
    build_diffwave,
    diffwave_params,
    load_diffwave,
    read_lmnt_checkpoint,
    vocode,
)
from ...training import TrainConfig
from ...training.distributed import barrier, is_main, resolve_device, world_size
from ..core.config import (
    MAX_BATCH,
    MAX_IMAGES,
    MAX_SEED,
    MAX_THREADS,
    ConfigError,
    Range,
    Variant,
    check_ranges,
    check_run_fields,
    refuse,
)
from ..core.protocol import Experiment, Shorthand

CORPORA = ("ljspeech", "standin", "multivoice")
LATENT_SEED = 30_000  # + run seed: vocoding noise depends on the seed only, so variants are paired
PAPER_LAMBDAS = (1e-4, 1e-5, 1e-6)
PAPER_SEEDS = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class AudioData:
    """Training crops from LJSpeech-1.1 (LJ001*/LJ002* held out), the one-voice espeak-ng stand-in, or the
    nine-voice espeak-ng + flite stand-in "multivoice" (held-out speakers and sentences; docs/audio_standin.md)."""

    corpus: str = "ljspeech"
    path: str = ""  # LJSpeech archive or extracted folder; "" = data/ (downloaded when missing)
    crop_mel_frames: Annotated[int, Range(1, 4096)] = 62  # LMNT: 62 frames = 15,872 samples

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.corpus not in CORPORA:
            raise refuse(self, "corpus", f"choose one of {', '.join(CORPORA)}", "ljspeech")


@dataclass(frozen=True)
class AudioModel:
    """The network: LMNT's checkpoint ("official", or a path to a file in its layout), or a fresh init ("")."""

    checkpoint: str = "official"
    local_path: str = ""  # a local copy of the official checkpoint (else the cache, else a download)
    # fresh init only (a checkpoint brings its own architecture); bounded: LMNT's is 30 layers x 64 channels
    residual_layers: Annotated[int, Range(1, 256)] = 30
    residual_channels: Annotated[int, Range(1, 1024)] = 64
    dilation_cycle_length: Annotated[int, Range(1, 16)] = 10  # dilations 1, 2, ..., 2^(cycle - 1)
    n_mels: Annotated[int, Range(1, 512)] = 80
    # fresh init only: every variant and seed starts from the same weights, like a checkpoint
    init_seed: Annotated[int, Range(0, MAX_SEED)] = 0

    def __post_init__(self) -> None:
        check_ranges(self)
        diffwave_params(**self.arch())  # validates the architecture now

    def arch(self) -> dict[str, int]:
        return {"residual_layers": self.residual_layers, "residual_channels": self.residual_channels,
                "dilation_cycle_length": self.dilation_cycle_length, "n_mels": self.n_mels}


@dataclass(frozen=True)
class AudioLoss:
    """How L_S is reduced over its terms (see the module docstring for the default)."""

    bins: str = "sum"  # L_S summed over frequency bins / coefficients (||.||_1 of Eqs. 14-16) | "mean"

    def __post_init__(self) -> None:
        if self.bins not in ("sum", "mean"):
            raise refuse(self, "bins", "choose 'sum' or 'mean' (over frequency bins)", "sum")


@dataclass(frozen=True)
class AudioSample:
    """Inference on the held-out clips, conditioned on their ground-truth mels."""

    schedule: str = "fast"  # "fast" (LMNT's 6 steps, the paper's) | "full" (the 50 training steps)
    n_clips: Annotated[int, Range(0, MAX_IMAGES)] = 0  # held-out clips to vocode; 0 = all
    # crop every clip to its first max_frames mel frames; 0 = whole clips (LJSpeech's longest is ~870)
    max_frames: Annotated[int, Range(0, 100_000)] = 0
    batch_size: Annotated[int, Range(1, MAX_BATCH)] = 8
    clip_x: Annotated[float, Range(0)] = 1.0  # LMNT clamps the waveform to [-1, 1] after every step; 0 = off

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.schedule not in ("fast", "full"):
            raise refuse(self, "schedule", "choose 'fast' or 'full'", "fast")


@dataclass(frozen=True)
class AudioEvaluate:
    """Metrics against the ground-truth held-out clips (docs/audio.md gives each protocol)."""

    fad_embedding: str = "vggish"  # "vggish" (paper; weights file) | "mel" (offline log-mel frames)
    vggish_path: str = ""  # local vggish-10086976.pth; "" = cache or download
    ndb_k: Annotated[int, Range(2, 10_000)] = 50
    ndb_alpha: Annotated[float, Range(0, 1, lo_open=True, hi_open=True)] = 0.05
    # log-mel frames per set for NDB (and mel FAD), fixed-seed subsample; 0 = all
    max_feature_frames: Annotated[int, Range(0, 10**7)] = 20000
    pesq: bool = True
    utmos: bool = False  # SpeechMOS via torch.hub: downloads and RUNS remote code; opt in explicitly

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.fad_embedding not in ("vggish", "mel"):
            raise refuse(self, "fad_embedding", "choose 'vggish' or 'mel'", "vggish")


def _audio_train() -> TrainConfig:
    # LMNT: Adam lr 2e-4, batch 16, no grad clipping (max_grad_norm None), fp16 + GradScaler, no EMA
    return TrainConfig(steps=150_000, batch_size=16, lr=2e-4, grad_clip=0.0, ema_decay=0.0, seed=1,
                       device="auto", precision="fp16", checkpoint_every=5000, log_every=100)


def _amp() -> Regularizer:
    return Regularizer("amp", 1e-4, "unweighted", {"ndim": 1})


@dataclass(frozen=True)
class AudioConfig:
    """One DiffWave fine-tuning run: data, model, regularizer (None = baseline), loss, train, sample, evaluate."""

    data: AudioData = field(default_factory=AudioData)
    model: AudioModel = field(default_factory=AudioModel)
    regularizer: Regularizer | None = field(default_factory=_amp)
    loss: AudioLoss = field(default_factory=AudioLoss)
    train: TrainConfig = field(default_factory=_audio_train)
    sample: AudioSample = field(default_factory=AudioSample)
    evaluate: AudioEvaluate = field(default_factory=AudioEvaluate)
    threads: Annotated[int, Range(0, MAX_THREADS)] = 0  # torch.set_num_threads while this run trains; 0 = as is

    def __post_init__(self) -> None:
        check_run_fields(self)
        reg = self.regularizer
        if reg is not None and reg.options.get("ndim") != 1:
            raise refuse(self, "regularizer", f"audio regularizers work on the waveform: options need ndim=1, got "
                         f"{reg.options}")
        if self.train.steps < 1:  # TrainConfig allows 0 (EDM derives it); here 0 would train nothing
            raise ConfigError("train.steps", "need an int >= 1", self.train.steps, 150_000)

    def mel_config(self) -> MelConfig:
        return MelConfig(n_mels=self.model.n_mels)


def _wavelet(wave: str) -> Variant:
    # 5 levels: the detail bands then split 0-11 kHz into octaves down to 345-690 Hz (speech formants)
    return Variant("wavelet", {"wave": wave, "levels": 5, "ndim": 1})


# L_S only, on the waveform (ndim=1); lambda_spec (1e-4) and the weighting ("unweighted", a constant lambda) are
# the config's: --lambda_spec 1e-4,1e-5,1e-6 sweeps the paper's three.
AUDIO_VARIANTS: dict[str, Variant | None] = {
    "baseline": None,
    "amp": Variant("amp", {"ndim": 1}),  # Eq. 14
    "amp_phase": Variant("amp_phase", {"ndim": 1}),  # Eq. 15
    "haar": _wavelet("haar"),  # Eq. 16
    "bior1.3": _wavelet("bior1.3"),  # Eq. 16
    # peers on x0_hat from the vocoder literature, not in the paper (spectral/peers.py): auraloss's multi-resolution
    # STFT loss and HiFi-GAN's log-mel L1 on LMNT's mel (22.05 kHz, the sample rate of every profile)
    "mrstft": Variant("mrstft", {"ndim": 1}),
    "logmel_l1": Variant("logmel_l1", {"ndim": 1}),
}

AUDIO_SHORTHANDS: dict[str, Shorthand] = {
    "checkpoint": Shorthand("model.local_path", "a local copy of LMNT's diffwave-ljspeech-22kHz-1000578.pt, checked "
                            "against its SHA-256 (default: the cache, else a download); another file in LMNT's "
                            "layout: --set model.checkpoint=PATH"),
    "data": Shorthand("data.path", "the LJSpeech-1.1 archive or extracted folder (default: data/, downloaded if "
                      "missing)"),
    "vggish": Shorthand("evaluate.vggish_path", "a local vggish-10086976.pth for FAD (default: the cache, else a "
                        "download)"),
    "steps": Shorthand("train.steps", "optimiser steps (default: the profile's)"),
    "schedule": Shorthand("sample.schedule", "inference: LMNT's 6-step fast schedule (paper) or the 50 training "
                          "steps", choices=("fast", "full")),
    "n-clips": Shorthand("sample.n_clips", "held-out clips to vocode and score (0 = all LJ001*/LJ002*)"),
    "utmos": Shorthand("evaluate.utmos", "also score UTMOS (SpeechMOS via torch.hub: DOWNLOADS AND RUNS remote code)",
                       flag=True),
}


AUDIO_GLOSSARY: dict[str, tuple[str, str]] = {
    "fad": ("Frechet distance of VGGish embeddings, generated vs ground-truth held-out clips", "lower"),
    "fd_mel": ("Frechet distance of log-mel frames (offline stand-in for FAD; not comparable with it)", "lower"),
    "utmos": ("UTMOS22 strong predicted MOS of the generated clips", "higher"),
    "pesq": ("wide-band PESQ (16 kHz) of each generated clip against its ground truth, mean", "higher"),
    "mr_stft": ("multi-resolution STFT distance (auraloss defaults) to the ground truth, mean over clips", "lower"),
    "ndb": ("NDB/K: share of K=50 k-means bins of ground-truth log-mel frames whose proportion differs (z-test)",
            "lower"),
    "f0_rmse_cents": ("F0 RMSE in cents (WORLD DIO + StoneMask) to the ground truth, frames voiced in both, pooled "
                      "over clips", "lower"),
    "vuv_error": ("voiced/unvoiced error: share of frames voiced in one of generated and ground truth only", "lower"),
    "seconds_per_step": ("median wall time of one optimiser step on this machine", "lower"),
}


class AudioExperiment(Experiment):
    """LMNT DiffWave + L1 eps loss (+ lambda_spec * L_S(x0_hat, x0)); vocodes held-out mels; Table 2's metrics."""

    name = "diffwave"
    config_class = AudioConfig
    variants = AUDIO_VARIANTS
    glossary = AUDIO_GLOSSARY
    shorthands = AUDIO_SHORTHANDS
    task = "audio"  # specreg finetune --task audio
    default_seeds = {"smoke": (1,), "cpu": (1,), "paper": PAPER_SEEDS}
    default_variants = ("baseline", "amp", "amp_phase", "haar", "bior1.3")
    # where LJSpeech, LMNT's checkpoint (SHA-256 checked) and VGGish (SHA-256 checked) lie changes no run
    location_fields = {"data.path": "anywhere", "model.local_path": "anywhere", "evaluate.vggish_path": "anywhere"}
    profiles = {
        # the pipeline end to end in seconds on a CPU: the espeak-ng stand-in, a tiny DiffWave from scratch, 8 steps
        # at lr 1e-3 (measured: LMNT's 2e-4 for 4 steps moved the clips by 6e-3 and the variants apart by 3e-5; now
        # 8e-2 and 8e-4..1e-2). The clips are still noise: PESQ is that of Gaussian noise (~1.02) for every variant
        "smoke": {"data.corpus": "standin", "data.crop_mel_frames": 8, "model.checkpoint": "",
                  **{f"model.{k}": v for k, v in {"residual_layers": 4, "residual_channels": 8,
                                                   "dilation_cycle_length": 2, "n_mels": 20}.items()},
                  "train.steps": 8, "train.lr": 1e-3, "train.batch_size": 2, "train.precision": "fp32",
                  "train.device": "cpu", "train.checkpoint_every": 0, "train.progress": False, "threads": 1,
                  "sample.n_clips": 2, "sample.max_frames": 40, "sample.batch_size": 2,
                  "evaluate.fad_embedding": "mel", "evaluate.ndb_k": 5, "evaluate.pesq": True},
        # a longer CPU run on the stand-in: a small DiffWave (8 x 16, 80 mels) from scratch, 1000 steps
        "cpu": {"data.corpus": "standin", "data.crop_mel_frames": 16, "model.checkpoint": "",
                "model.residual_layers": 8, "model.residual_channels": 16, "model.dilation_cycle_length": 4,
                "train.steps": 1000, "train.batch_size": 8, "train.lr": 1e-3, "train.precision": "fp32",
                "train.device": "cpu", "train.checkpoint_every": 250, "threads": 1, "sample.n_clips": 4,
                "sample.max_frames": 120, "sample.batch_size": 4, "evaluate.fad_embedding": "mel",
                "evaluate.ndb_k": 10},
        # the paper: LMNT's checkpoint, LJSpeech, 150k steps, batch 16, fp16, all held-out clips, five metrics
        "paper": {},
    }

    def required_files(self, profile: str) -> dict[str, tuple[str, ...]]:
        """LMNT's checkpoint, LJSpeech (prepared, extracted or the archive) and VGGish for FAD, where the profile
        uses them; smoke and cpu need none (the espeak-ng stand-in, a fresh net, log-mel FD)."""
        cfg, out = self.config(profile), {}
        if cfg.model.checkpoint == "official":
            out["DiffWave checkpoint"] = tuple(p for p in (cfg.model.local_path, OFFICIAL_CHECKPOINT) if p)
        if cfg.data.corpus == "ljspeech":
            out["LJSpeech"] = tuple(p for p in (cfg.data.path, f"data/LJSpeech-1.1-prepared-{cfg.model.n_mels}mel/"
                                                "index.json", "data/LJSpeech-1.1/wavs", "LJSpeech-1.1.tar.bz2") if p)
        if cfg.evaluate.fad_embedding == "vggish":
            out["VGGish (FAD)"] = tuple(p for p in (cfg.evaluate.vggish_path, "vggish-10086976.pth") if p)
        return out

    def corpus(self, cfg: AudioConfig) -> SpeechCorpus:
        """The prepared corpus of the config (generated/downloaded and prepared on first use)."""
        if cfg.data.corpus == "standin":
            return prepare_standin(cfg.mel_config())
        if cfg.data.corpus == "multivoice":
            return SpeechCorpus(prepare_multivoice(cfg.mel_config(), progress=True), cfg.mel_config())
        try:
            return prepare_ljspeech(cfg.mel_config(), local_path=cfg.data.path or None)
        except AssetMissingError as err:
            raise _with_option(err, "data.path", "--data") from err

    def checkpoint_file(self, cfg: AudioConfig) -> Path:
        """The checkpoint on disk: LMNT's (a local copy, the cache or a download) or the file ``model.checkpoint``
        names; a missing one is an AssetMissingError naming the option that passes a local copy."""
        m = cfg.model
        if m.checkpoint != "official":
            path = resolve_repo_path(m.checkpoint)  # a relative path from the output root, as every path here
            if not path.is_file():
                raise AssetMissingError(f"model.checkpoint: {path} does not exist; pass an existing file in LMNT's "
                                        "layout with --set model.checkpoint=PATH, or model.checkpoint=official for "
                                        f"LMNT's {OFFICIAL_CHECKPOINT} (a local copy of it: --checkpoint PATH)")
            return path
        try:
            return fetch(OFFICIAL_CHECKPOINT, local_path=m.local_path or None)
        except AssetMissingError as err:
            raise _with_option(err, "model.local_path", "--checkpoint") from err

    def build_model(self, cfg: AudioConfig) -> nn.Module:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        m = cfg.model
        if m.checkpoint:
            model, _ = load_diffwave(self.checkpoint_file(cfg))
            if model.params.n_mels != m.n_mels:
                raise ValueError(f"the checkpoint has n_mels={model.params.n_mels}, the config {m.n_mels}")
            return model
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(m.init_seed)
            return build_diffwave(m.arch())

    def model_meta(self, cfg: AudioConfig) -> dict[str, Any]:
        return {"diffwave": dataclasses.asdict(cfg.model)}

    def build_data(self, cfg: AudioConfig) -> SpeechCrops:
        if world_size() > 1:  # under torchrun rank 0 generates/prepares the corpus, the others then read it
            if is_main():
                self.corpus(cfg)
            barrier()
        return SpeechCrops(self.corpus(cfg), cfg.data.crop_mel_frames)

    def train_schedule(self, cfg: AudioConfig) -> DDPMSchedule:
        """The 50-step training schedule: the checkpoint's ``noise_schedule`` (LMNT's params), or LMNT's default."""
        betas = diffwave_params().noise_schedule
        if cfg.model.checkpoint:
            params = read_lmnt_checkpoint(self.checkpoint_file(cfg)).get("params")
            betas = dict(params or {}).get("noise_schedule", betas)
        return DDPMSchedule(torch.tensor(betas, dtype=torch.float64))

    def build_loss(self, cfg: AudioConfig) -> DDPMLoss:
        """LMNT's L1 eps loss on its training schedule (+ lambda_spec * L_S(x0_hat, x0), Eq. 17)."""
        schedule = self.train_schedule(cfg)
        reg = cfg.regularizer
        if reg is not None:  # L_S summed or averaged over bins; set on the loss, not the config (run hashes)
            reg = dataclasses.replace(reg, options={**reg.options, "bins": cfg.loss.bins})
        return DDPMLoss(schedule, parametrization="eps", norm="l1", regularizer=reg)

    def eval_clips(self, cfg: AudioConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Ground-truth held-out (audio, mel) lists as the config selects them."""
        return self.corpus(cfg).eval_set(cfg.sample.n_clips, cfg.sample.max_frames or None)

    def sample(self, cfg: AudioConfig, model: nn.Module) -> torch.Tensor:
        """Vocoded held-out clips, zero-padded (N, 1, T_max) on the CPU, conditioned on ground-truth mels."""
        _, mels = self.eval_clips(cfg)
        s = cfg.sample
        model = model.to(resolve_device(cfg.train.device))  # a snapshot is rebuilt on the CPU
        clips = vocode(model, mels, s.schedule, s.batch_size, LATENT_SEED + self.seed(cfg), s.clip_x or None,
                       progress=cfg.train.progress)
        return pad_batch(clips)[0].unsqueeze(1)

    def evaluate(self, cfg: AudioConfig, samples: torch.Tensor) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        from ...metrics.audio import distribution_metrics, paired_metrics

        refs, _ = self.eval_clips(cfg)
        sr, ev = cfg.mel_config().sample_rate, cfg.evaluate
        gens = [samples[i, 0, : len(r)].numpy() for i, r in enumerate(refs)]  # trimmed to the reference length
        metrics: dict[str, Any] = {"n_clips": len(refs), "seconds_generated": sum(map(len, gens)) / sr}
        # mr_stft, pesq, f0_rmse_cents, vuv_error: each clip against its own ground truth
        metrics.update(paired_metrics(gens, refs, sr, pesq=ev.pesq))
        embed = None  # None: Frechet distance of log-mel frames (fd_mel); else VGGish embeddings (fad)
        if ev.fad_embedding != "mel":
            from ...metrics.audio_embed import load_vggish, vggish_embeddings

            try:
                net = load_vggish(ev.vggish_path or None, device="cuda" if torch.cuda.is_available() else "cpu")
            except AssetMissingError as err:
                raise _with_option(err, "evaluate.vggish_path", "--vggish") from err
            embed = functools.partial(vggish_embeddings, sample_rate=sr, net=net)
        metrics.update(distribution_metrics(gens, refs, sr, n_mels=cfg.model.n_mels,
                                            max_feature_frames=ev.max_feature_frames, ndb_k=ev.ndb_k,
                                            ndb_alpha=ev.ndb_alpha, embed=embed))
        if ev.utmos:
            from ...metrics.audio_embed import utmos_scores

            device = "cuda" if torch.cuda.is_available() else "cpu"
            metrics["utmos"] = float(np.mean(utmos_scores(gens, sr, allow_remote_code=True, device=device)))
        return metrics, {}

    def write_wavs(self, result: Any) -> Path:
        """Write a finished run's vocoded held-out clips as WAVs in its results folder (``.../wavs/<clip>.wav``)."""
        cfg = result.config
        folder = (result.run_dir / "results" / f"step-{cfg.train.steps:07d}-{self.results_hash(cfg)}" / "wavs")
        refs, _ = self.eval_clips(cfg)
        names = self.corpus(cfg).names("eval")
        for i, ref in enumerate(refs):
            write_wav(folder / f"{names[i]}.wav", result.samples[i, 0, : len(ref)], cfg.mel_config().sample_rate)
        return folder

    def write_artifacts(self, result: Any, options: Mapping[str, Any]) -> list[Path]:
        """Every run's vocoded held-out clips as WAVs (:meth:`write_wavs`)."""
        return [self.write_wavs(result)]


DIFFWAVE = AudioExperiment()


def _with_option(err: AssetMissingError, field: str, option: str) -> AssetMissingError:
    """``err`` (a missing file) with the door option and config field that pass a local copy."""
    return AssetMissingError(f"{field}: {str(err).rstrip('. ')}. With specreg sweep/finetune: {option} PATH "
                             f"({field}=PATH in --set or a notebook).")
