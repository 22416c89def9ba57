"""Speech data: LMNT's mel preprocessing against an independent numpy reference, WAV errors, corpora, crops."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from specreg_lib.data import speech_corpora
from specreg_lib.data.speech import (
    AudioError,
    MelConfig,
    SpeechCorpus,
    SpeechCrops,
    check_pair,
    log_mel,
    prepare_corpus,
    read_wav,
)
from specreg_lib.data.speech_corpora import MissingToolError, generate_standin, ljspeech_split

SR = 22050


def _numpy_log_mel(x: np.ndarray, n_mels: int) -> np.ndarray:
    """LMNT's preprocessing from its definition: centred (reflect) periodic-Hann STFT, |.|, divided by the
    window's L2 norm (torchaudio normalized=True), HTK mel filters 20 Hz..sr/2, 20 log10 - 20, (x+100)/100."""
    n_fft, hop = 1024, 256
    pad = np.pad(x.astype(np.float64), n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.stack([pad[i * hop: i * hop + n_fft] * window for i in range(1 + len(x) // hop)])
    mag = np.abs(np.fft.rfft(frames, axis=1)) / np.sqrt((window ** 2).sum())  # (F, 513)
    fb = AF.melscale_fbanks(n_fft // 2 + 1, 20.0, SR / 2, n_mels, SR, norm=None, mel_scale="htk").double().numpy()
    mel = mag @ fb  # (F, n_mels)
    db = 20 * np.log10(np.maximum(mel, 1e-5)) - 20
    return np.clip((db + 100) / 100, 0, 1).T


def test_log_mel_matches_independent_reference() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(5000) / SR
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    ours = log_mel(x, MelConfig()).numpy()
    assert ours.shape == (80, 1 + 5000 // 256)
    np.testing.assert_allclose(ours, _numpy_log_mel(x, 80), atol=2e-5)
    batch = log_mel(np.stack([x, x]), MelConfig())
    assert batch.shape == (2, 80, 20) and torch.allclose(batch[1], torch.from_numpy(ours))


def _write(path, x, sr=SR, subtype="PCM_16"):
    sf.write(str(path), x, sr, subtype=subtype)
    return path


def test_read_wav_scaling_and_errors(tmp_path) -> None:
    ints = np.array([0, 32767, -32768, 1000] * 100, dtype=np.int16)
    sf.write(str(tmp_path / "a.wav"), ints, SR, subtype="PCM_16")
    np.testing.assert_array_equal(read_wav(tmp_path / "a.wav", SR), ints.astype(np.float32) / 32767.5)  # LMNT
    tone = 0.3 * np.sin(np.linspace(0, 100, 4000))
    cases = {
        "sample rate 16000 Hz, expected 22050": _write(tmp_path / "rate.wav", tone, 16000),
        "2 channels": _write(tmp_path / "stereo.wav", np.stack([tone, tone], 1)),
        "empty clip": _write(tmp_path / "empty.wav", np.zeros(0)),
        "silent clip": _write(tmp_path / "silent.wav", np.zeros(4000)),
    }
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00junk" * 10)
    cases["cannot read as audio"] = tmp_path / "corrupt.wav"
    for message, path in cases.items():
        with pytest.raises(AudioError, match=message):
            read_wav(path, SR)
    with pytest.raises(AudioError, match="mel/audio length mismatch"):
        check_pair(np.zeros(1024), np.zeros((80, 4)), MelConfig())  # needs 1 + 1024 // 256 = 5 frames


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> SpeechCorpus:
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(1)
    wavs = []
    for name, n in (("LJ001-0001", 9000), ("LJ002-0002", 7000), ("LJ003-0001", 12000), ("LJ010-0005", 3000)):
        wavs.append(_write(root / f"{name}.wav", (0.2 * rng.standard_normal(n)).clip(-1, 1)))
    return SpeechCorpus(prepare_corpus(wavs, root / "prepared", MelConfig(n_mels=20), ljspeech_split,
                                       progress=False))


def test_corpus_split_and_contents(corpus: SpeechCorpus) -> None:
    assert corpus.names("eval") == ["LJ001-0001", "LJ002-0002"]  # the paper's held-out LJ001*/LJ002*
    assert corpus.names("train") == ["LJ003-0001", "LJ010-0005"]
    audio, mels = corpus.eval_set()
    wav = read_wav(corpus.folder.parent / "LJ002-0002.wav", SR)
    np.testing.assert_array_equal(audio[1], wav)
    np.testing.assert_allclose(mels[1], log_mel(wav, MelConfig(n_mels=20)).numpy(), atol=0)
    check_pair(audio[1], mels[1], corpus.cfg)
    with pytest.raises(ValueError, match="prepared with"):
        SpeechCorpus(corpus.folder, MelConfig(n_mels=80))


def test_crops_follow_lmnt_collator(corpus: SpeechCorpus) -> None:
    crops = SpeechCrops(corpus, crop_frames=16)  # 16 frames: LJ010-0005 (12 frames) is left out, as LMNT does
    assert [e["name"] for e in crops.entries] == ["LJ003-0001"]
    audio, mel = crops(4, torch.Generator().manual_seed(0))
    assert audio.shape == (4, 1, 16 * 256) and mel.shape == (4, 20, 16)
    e = crops.entries[0]
    full = np.asarray(corpus.audio[e["offset"]: e["offset"] + e["length"]])
    full_mel = np.asarray(corpus.mel[e["mel_offset"]: e["mel_offset"] + e["frames"]]).T
    for b in range(4):  # every crop is a frame-aligned slice of its clip, zero-padded past the end
        start = int(np.argmin([np.abs(full_mel[:, s: s + 16] - mel[b].numpy()).sum()
                               for s in range(e["frames"] - 15)]))
        np.testing.assert_array_equal(mel[b].numpy(), full_mel[:, start: start + 16])
        ref = np.zeros(16 * 256, np.float32)
        seg = full[start * 256: (start + 16) * 256]
        ref[: len(seg)] = seg
        np.testing.assert_array_equal(audio[b, 0].numpy(), ref)
    again = crops(4, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], audio) and torch.equal(again[1], mel)
    with pytest.raises(ValueError, match="no train clip has >= 99"):
        SpeechCrops(corpus, crop_frames=99)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_standin_manifest_and_reuse(tmp_path) -> None:
    folder = generate_standin(tmp_path / "st", sentences=("One short sentence.", "Another one."))
    m = json.loads((folder / "manifest.json").read_text())
    assert m["espeak_ng"].startswith("eSpeak NG") and m["voice"] == "en-us"
    for name in m["names"]:
        x = read_wav(folder / "wavs" / f"{name}.wav", SR)  # 22.05 kHz mono 16-bit, speech
        assert x.size > SR // 2
        assert speech_corpora._sha256(folder / "wavs" / f"{name}.wav") == m["sha256"][name]
    mtime = (folder / "wavs" / f"{m['names'][0]}.wav").stat().st_mtime_ns
    generate_standin(tmp_path / "st", sentences=("One short sentence.", "Another one."))
    assert (folder / "wavs" / f"{m['names'][0]}.wav").stat().st_mtime_ns == mtime  # reused, not regenerated


def test_missing_espeak_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setattr(speech_corpora.shutil, "which", lambda name: None)
    with pytest.raises(MissingToolError, match="apt-get install -y --no-install-recommends espeak-ng"):
        speech_corpora.espeak_version()
