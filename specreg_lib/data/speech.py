"""Speech for the DiffWave vocoder: WAV reading with clear errors, LMNT's mel preprocessing, prepared corpora
(LJSpeech-1.1 or the espeak-ng stand-in) and the training crop sampler.

Mel features are LMNT's ``diffwave.preprocess.transform`` (0.1.7), exactly: ``torchaudio`` MelSpectrogram with
win 4 hop, hop 256, n_fft 1024, f_min 20, f_max sr/2, power 1, normalized=True (HTK mel scale, no filter norm,
centred frames: 1 + T // hop of them), then ``20 log10(max(x, 1e-5)) - 20`` and ``clamp((x + 100) / 100, 0, 1)``.
16-bit WAVs are scaled as LMNT does, ``int16 / 32767.5`` (not soundfile's ``/ 32768``).

A prepared corpus is a folder: ``index.json`` (settings and one entry per clip: name, split, offsets, lengths),
``audio.npy`` (float32, every clip's samples concatenated) and ``mel.npy`` (float32 (frames, n_mels),
concatenated). Both arrays are memory-mapped, so LJSpeech's 24 hours need no RAM.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import InputError
from ..io import atomic_path, write_json

INDEX, AUDIO, MEL = "index.json", "audio.npy", "mel.npy"
SPLITS = ("train", "eval")


class AudioError(InputError, ValueError):
    """An audio file or array that cannot be used; the message names it, says what is wrong and what to do."""


@dataclass(frozen=True)
class MelConfig:
    """LMNT's mel settings (params.py); ``n_mels`` differs only for the tiny smoke network."""

    sample_rate: int = 22050
    n_mels: int = 80
    n_fft: int = 1024
    hop: int = 256

    def __post_init__(self) -> None:
        if min(self.sample_rate, self.n_mels, self.n_fft, self.hop) < 1:
            raise ValueError(f"MelConfig values must be positive, got {self}")

    def transform(self) -> torch.nn.Module:
        """The torchaudio MelSpectrogram of LMNT's preprocess.py."""
        import torchaudio.transforms as TT

        return TT.MelSpectrogram(sample_rate=self.sample_rate, win_length=4 * self.hop, hop_length=self.hop,
                                 n_fft=self.n_fft, f_min=20.0, f_max=self.sample_rate / 2.0, n_mels=self.n_mels,
                                 power=1.0, normalized=True)

    def frames(self, n_samples: int) -> int:
        """Mel frames of a clip of ``n_samples`` (centred STFT): 1 + n_samples // hop."""
        return 1 + n_samples // self.hop


def log_mel(audio: torch.Tensor | np.ndarray, cfg: MelConfig = MelConfig(),
            transform: torch.nn.Module | None = None) -> torch.Tensor:
    """LMNT's normalised log-mel of audio in [-1, 1]: (T,) -> (n_mels, 1 + T // hop), or (B, T) -> (B, n_mels, F)."""
    x = torch.as_tensor(audio, dtype=torch.float32)
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise AudioError(f"audio must be (T,) or (B, T) with T > 0, got shape {tuple(x.shape)}")
    with torch.no_grad():
        spec = (transform or cfg.transform())(x.clamp(-1.0, 1.0))
        spec = 20 * torch.log10(spec.clamp(min=1e-5)) - 20
        return ((spec + 100) / 100).clamp(0.0, 1.0)


def read_wav(path: str | os.PathLike, sample_rate: int, min_peak: float = 1e-4) -> np.ndarray:
    """A mono WAV as float32 (T,) in [-1, 1] (int16 / 32767.5 as LMNT); wrong rate, stereo, empty, silent, NaN/Inf
    or beyond full scale (a float WAV, ``check_samples``) -> AudioError naming the file."""
    import soundfile as sf

    path = Path(path)
    try:
        info = sf.info(str(path))
        dtype = "int16" if info.subtype == "PCM_16" else "float32"
        x, sr = sf.read(str(path), dtype=dtype, always_2d=True)
    except Exception as err:  # soundfile raises several types for broken files
        raise AudioError(f"{path}: cannot read as audio ({err}); is it a valid WAV file?") from err
    if sr != sample_rate:
        raise AudioError(f"{path}: sample rate {sr} Hz, expected {sample_rate} Hz; resample it first, e.g. "
                         f"torchaudio.functional.resample(x, {sr}, {sample_rate})")
    if x.shape[1] != 1:
        raise AudioError(f"{path}: {x.shape[1]} channels; the vocoder takes mono audio: mix it down first "
                         "(e.g. x.mean(axis=1))")
    x = x[:, 0].astype(np.float32) / (32767.5 if dtype == "int16" else 1.0)
    check_samples(x, str(path))
    check_audio(x, str(path), min_peak)
    return x


FULL_SCALE_TOLERANCE = 2.0**-15  # one 16-bit step: int16 -32768 / 32767.5 (LMNT's scaling) is -1.0000153


def check_samples(x: np.ndarray, name: str) -> np.ndarray:
    """The one rule for samples read from a WAV: finite, and within full scale [-1, 1] (+ one 16-bit step).

    Integer WAVs always are; a float WAV may hold anything (NaN, 3.9e30), which every later step would clip
    or propagate silently, so it is refused, naming the file, rather than clipped."""
    x = np.asarray(x)
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise AudioError(f"{name}: {bad} non-finite samples (NaN or Inf); re-export the clip as 16-bit PCM or "
                         "remove it")
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > 1.0 + FULL_SCALE_TOLERANCE:
        raise AudioError(f"{name}: samples reach {peak:.3g}, outside full scale [-1, 1]; normalise the clip "
                         "(x / abs(x).max()) or re-export it as 16-bit PCM")
    return x


def check_audio(x: np.ndarray, name: str = "audio", min_peak: float = 1e-4) -> np.ndarray:
    """Require a finite, non-empty, non-silent 1-D clip."""
    x = np.asarray(x)
    if x.ndim != 1:
        raise AudioError(f"{name}: expected a mono (T,) clip, got shape {x.shape}")
    if x.size == 0:
        raise AudioError(f"{name}: empty clip (0 samples)")
    if not np.isfinite(x).all():
        raise AudioError(f"{name}: {x.size - np.count_nonzero(np.isfinite(x))} non-finite samples (NaN or Inf); "
                         "remove or replace them")
    if np.abs(x).max() < min_peak:
        raise AudioError(f"{name}: silent clip (peak {np.abs(x).max():.2g} < {min_peak:g}); remove it")
    return x


def check_pair(audio: np.ndarray, mel: np.ndarray, cfg: MelConfig, name: str = "clip") -> None:
    """A clip's mel must have n_mels rows and 1 + T // hop frames."""
    if mel.ndim != 2 or mel.shape[0] != cfg.n_mels or mel.shape[1] != cfg.frames(len(audio)):
        raise AudioError(f"{name}: mel/audio length mismatch: mel {mel.shape}, audio {len(audio)} samples needs "
                         f"({cfg.n_mels}, {cfg.frames(len(audio))}) (n_mels, 1 + T // {cfg.hop})")


# ------------------------------------------------------------------ prepared corpora


def prepare_corpus(wavs: Iterable[Path], out_dir: str | os.PathLike, cfg: MelConfig,
                   split: Callable[[str], str], source: dict | None = None, progress: bool = True) -> Path:
    """Read every WAV, compute its mel, and write the corpus folder (atomically: a temp folder, then a rename).

    ``split(name) -> "train" | "eval"`` (e.g. LJ001*/LJ002* -> "eval"); ``source`` is recorded in the index.
    """
    wavs = sorted(Path(p) for p in wavs)
    if not wavs:
        raise AudioError("no WAV files to prepare")
    out_dir = Path(out_dir)
    transform = cfg.transform()
    clips, audio_parts, mel_parts, offset, mel_offset = [], [], [], 0, 0
    for path in tqdm(wavs, desc=f"mels -> {out_dir.name}", disable=not progress):
        x = read_wav(path, cfg.sample_rate)
        mel = log_mel(x, cfg, transform).numpy().astype(np.float32)  # (n_mels, F)
        s = split(path.stem)
        if s not in SPLITS:
            raise ValueError(f"split({path.stem!r}) returned {s!r}; expected one of {SPLITS}")
        clips.append({"name": path.stem, "split": s, "offset": offset, "length": len(x),
                      "mel_offset": mel_offset, "frames": mel.shape[1]})
        audio_parts.append(x)
        mel_parts.append(mel.T)
        offset, mel_offset = offset + len(x), mel_offset + mel.shape[1]
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / AUDIO, np.concatenate(audio_parts))
    np.save(tmp / MEL, np.concatenate(mel_parts))
    write_json(tmp / INDEX, {"sample_rate": cfg.sample_rate, "n_mels": cfg.n_mels, "n_fft": cfg.n_fft,
                             "hop": cfg.hop, "source": source or {}, "clips": clips})
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir


class SpeechCorpus:
    """A prepared corpus folder: clips by split, memory-mapped audio and mels."""

    def __init__(self, folder: str | os.PathLike, cfg: MelConfig | None = None) -> None:
        self.folder = Path(folder)
        if not (self.folder / INDEX).is_file():
            raise FileNotFoundError(f"{self.folder} is not a prepared speech corpus (no {INDEX}); prepare it with "
                                    "specreg_lib.data.prepare_ljspeech or prepare_standin")
        index = json.loads((self.folder / INDEX).read_text())
        self.cfg = MelConfig(index["sample_rate"], index["n_mels"], index["n_fft"], index["hop"])
        if cfg is not None and cfg != self.cfg:
            raise ValueError(f"{self.folder} was prepared with {self.cfg}, the run needs {cfg}: prepare it again")
        self.source = index.get("source", {})
        self.clips = index["clips"]
        self.audio = np.load(self.folder / AUDIO, mmap_mode="r")
        self.mel = np.load(self.folder / MEL, mmap_mode="r")

    def names(self, split: str) -> list[str]:
        """Clip names of a split, in index order."""
        return [c["name"] for c in self._split(split)]

    def _split(self, split: str) -> list[dict]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return [c for c in self.clips if c["split"] == split]

    def clip(self, entry: dict, max_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(audio (T,), mel (n_mels, F)) of one index entry, optionally the first ``max_frames`` frames only."""
        frames = entry["frames"] if max_frames is None else min(entry["frames"], max_frames)
        n = min(entry["length"], frames * self.cfg.hop)
        audio = np.array(self.audio[entry["offset"]: entry["offset"] + n], dtype=np.float32)
        mel = np.array(self.mel[entry["mel_offset"]: entry["mel_offset"] + frames].T, dtype=np.float32)
        return audio, mel

    def eval_set(self, n_clips: int = 0, max_frames: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The held-out clips (all, or the first ``n_clips``): lists of audio (T,) and mels (n_mels, F)."""
        entries = self._split("eval")
        if not entries:
            raise ValueError(f"{self.folder} has no held-out ('eval') clips")
        pairs = [self.clip(e, max_frames) for e in entries[: n_clips or None]]
        return [a for a, _ in pairs], [m for _, m in pairs]


class SpeechCrops:
    """Training sampler ``(batch_size, generator) -> (audio (B, 1, crop*hop), mel (B, n_mels, crop))``.

    As LMNT's collator: clips shorter than ``crop_frames`` are left out, a crop starts at a uniform mel frame, and
    audio past the clip's end is zero-padded. Unlike LMNT's epochs over a shuffled list, clips are drawn with
    replacement from the generator, so the stream is reproducible and a resumed run is bit-exact.
    """

    def __init__(self, corpus: SpeechCorpus, crop_frames: int, split: str = "train") -> None:
        if crop_frames < 1:
            raise ValueError(f"crop_frames must be >= 1, got {crop_frames}")
        self.corpus, self.crop = corpus, crop_frames
        self.entries = [c for c in corpus._split(split) if c["frames"] >= crop_frames]
        if not self.entries:
            raise ValueError(f"{corpus.folder}: no {split} clip has >= {crop_frames} mel frames")

    def __call__(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        hop, crop = self.corpus.cfg.hop, self.crop
        idx = torch.randint(len(self.entries), (batch_size,), generator=generator).tolist()
        u = torch.rand(batch_size, generator=generator, dtype=torch.float64).tolist()
        audio = np.zeros((batch_size, 1, crop * hop), dtype=np.float32)
        mel = np.empty((batch_size, self.corpus.cfg.n_mels, crop), dtype=np.float32)
        for b, (i, ub) in enumerate(zip(idx, u, strict=True)):
            e = self.entries[i]
            start = min(int(ub * (e["frames"] - crop + 1)), e["frames"] - crop)  # uniform in [0, frames - crop]
            mel[b] = self.corpus.mel[e["mel_offset"] + start: e["mel_offset"] + start + crop].T
            a = self.corpus.audio[e["offset"] + start * hop: e["offset"] + min((start + crop) * hop, e["length"])]
            audio[b, 0, : len(a)] = a
        return torch.from_numpy(audio), torch.from_numpy(mel)


def write_wav(path: str | os.PathLike, audio: np.ndarray | torch.Tensor, sample_rate: int) -> Path:
    """Write a mono clip (T,) in [-1, 1] as 16-bit PCM WAV, atomically."""
    import soundfile as sf

    x = np.asarray(torch.as_tensor(audio).detach().cpu().float().numpy()).reshape(-1)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.clip(x, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    return Path(path)


def pad_batch(clips: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-length arrays (..., T_i) -> zero-padded (N, ..., T_max) tensor and lengths (N,)."""
    lengths = torch.tensor([c.shape[-1] for c in clips])
    out = torch.zeros(len(clips), *clips[0].shape[:-1], int(lengths.max()))
    for i, c in enumerate(clips):
        out[i, ..., : c.shape[-1]] = torch.as_tensor(c)
    return out, lengths
