"""Audio metrics on cases with known answers: identical audio, a constructed NDB case, Gaussians for FAD."""

from __future__ import annotations

import shutil
import sys

import auraloss
import numpy as np
import pytest
import torch

from specreg_lib.data.speech import read_wav
from specreg_lib.metrics import frechet_distance
from specreg_lib.metrics.audio import fad, mr_stft_distance, ndb, pesq_wb
from specreg_lib.metrics.audio_embed import load_vggish, mel_frame_features, utmos_scores

SR = 22050


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    """A spoken sentence (espeak-ng), or a voiced synthetic vowel sequence where espeak-ng is missing."""
    if shutil.which("espeak-ng"):
        from specreg_lib.data.speech_corpora import generate_standin

        folder = generate_standin(tmp_path_factory.mktemp("st"), sentences=("Spectral losses for speech.",))
        return read_wav(folder / "wavs" / "ES001-0000.wav", SR)
    t = np.arange(2 * SR) / SR
    f0 = 120 + 20 * np.sin(2 * np.pi * 3 * t)
    env = (np.sin(2 * np.pi * 2 * t) > -0.3).astype(float)
    return (0.3 * env * np.sign(np.sin(2 * np.pi * np.cumsum(f0) / SR))).astype(np.float32)


def test_mr_stft_known_answers(speech: np.ndarray) -> None:
    x = torch.from_numpy(speech)[None]
    assert float(mr_stft_distance(x, x)[0]) == 0.0
    y = 0.5 * x
    ours = mr_stft_distance(torch.stack([y[0], x[0]]), torch.stack([x[0], x[0]]))  # (B, T) per clip
    assert float(ours[1]) == 0.0
    assert float(ours[0]) == pytest.approx(float(auraloss.freq.MultiResolutionSTFTLoss()(y[:, None], x[:, None])),
                                           rel=1e-6)
    # halving a signal with energy in every bin: spectral convergence 0.5 and |log 0.5| per bin, at each of
    # the three resolutions (auraloss averages them) -> 0.5 + ln 2
    z = torch.randn(1, 20000, generator=torch.Generator().manual_seed(0))
    assert float(mr_stft_distance(0.5 * z, z)[0]) == pytest.approx(0.5 + np.log(2), rel=1e-4)
    with pytest.raises(ValueError, match="same shape"):
        mr_stft_distance(x, x[:, :-1])


def test_pesq_known_answers(speech: np.ndarray) -> None:
    assert pesq_wb(speech, speech, SR) == pytest.approx(4.644, abs=0.01)  # P.862.2's maximum
    noisy = speech + 0.05 * np.random.default_rng(0).standard_normal(speech.size).astype(np.float32)
    assert pesq_wb(speech, noisy, SR) < 3.0
    with pytest.raises(ValueError, match="same length"):
        pesq_wb(speech, speech[:-10], SR)
    with pytest.raises(ValueError, match="silent"):
        pesq_wb(np.zeros(SR), np.zeros(SR), SR)


def test_pesq_resamples_to_16k_like_an_independent_resampler(speech: np.ndarray) -> None:
    """P.862.2 is defined at 16 kHz: PESQ of a 22.05 kHz pair equals PESQ of the pair resampled by scipy's
    polyphase filter (320/441) within 0.03 MOS (the two resamplers' filters differ slightly), and is far (> 0.2, in
    at least one case) from feeding the 22.05 kHz samples to PESQ as 16 kHz (speech 1.38x slower, bands shifted)."""
    from pesq import pesq
    from scipy.signal import butter, resample_poly, sosfilt

    noisy = speech + 0.002 * np.random.default_rng(1).standard_normal(speech.size)
    low_passed = sosfilt(butter(8, 6000, fs=SR, output="sos"), speech)  # 8th-order Butterworth at 6 kHz
    gaps = []
    for degraded in (noisy.astype(np.float32), low_passed.astype(np.float32)):
        ours = pesq_wb(speech, degraded, SR)
        oracle = pesq(16000, resample_poly(speech, 320, 441), resample_poly(degraded, 320, 441), "wb")
        unresampled = pesq(16000, speech, degraded, "wb")
        assert ours == pytest.approx(oracle, abs=0.03)
        gaps.append(abs(ours - unresampled))
    # espeak speech: both gaps ~0.3; the synthetic vowels (no espeak-ng): 0.06 (noise) and 0.68 (low-pass)
    assert max(gaps) > 0.2


def test_ndb_constructed_case() -> None:
    # four well-separated clusters of 250 reference points; K-means with K=4 finds them
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)
    ref = np.concatenate([c + 0.1 * rng.standard_normal((250, 2)) for c in centres])
    same = np.concatenate([c + 0.1 * rng.standard_normal((250, 2)) for c in centres])
    assert ndb(ref, same, k=4) == 0.0
    # generated proportions 0.4 / 0.1 / 0.25 / 0.25 of 1000: bins 0 and 1 differ (|z| ~ 6.5), bins 2, 3 do not
    counts = [400, 100, 250, 250]
    skewed = np.concatenate([c + 0.1 * rng.standard_normal((n, 2)) for c, n in zip(centres, counts, strict=True)])
    assert ndb(ref, skewed, k=4) == 0.5
    assert ndb(ref, centres[[0]].repeat(1000, 0), k=4) == 1.0  # everything in one bin: all four differ
    with pytest.raises(ValueError, match="same D"):
        ndb(ref, np.zeros((5, 3)), k=4)


def test_ndb_worked_example_against_two_proportion_z_tests() -> None:
    """Five tight clusters (K-means recovers them exactly), 200 reference points each; generated counts chosen so
    that bin 2's two-tailed p-value lies between alpha/10 and alpha: the pooled two-proportion z-test, written
    out here with scipy.stats.norm, flags bins 0, 2, 3, 4 -> NDB/K = 4/5."""
    from scipy.stats import norm

    rng = np.random.default_rng(3)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [20, 5]], dtype=float)
    ref_counts, gen_counts = np.full(5, 200), np.array([290, 200, 240, 140, 130])

    def cloud(counts: np.ndarray) -> np.ndarray:
        return np.concatenate([c + 0.1 * rng.standard_normal((n, 2)) for c, n in zip(centres, counts, strict=True)])

    n1, n2 = ref_counts.sum(), gen_counts.sum()
    pooled = (ref_counts + gen_counts) / (n1 + n2)
    z = (ref_counts / n1 - gen_counts / n2) / np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p_values = 2 * norm.sf(np.abs(z))
    # by hand, e.g. bin 2: (0.20 - 0.24) / sqrt(0.22 * 0.78 * (2 / 1000)) = -2.1592
    np.testing.assert_allclose(z, [-4.6792, 0.0, -2.1592, 3.5717, 4.2169], atol=1e-4)
    alpha = 0.05
    assert int((p_values < alpha).sum()) == 4 and int((p_values < alpha / 10).sum()) == 3
    assert alpha / 10 < p_values[2] < alpha  # the bin that tells alpha from alpha / 10
    ref, gen = cloud(ref_counts), cloud(gen_counts)
    assert ndb(ref, gen, k=5, alpha=alpha) == pytest.approx(4 / 5)
    assert ndb(ref, gen, k=5, alpha=0.02) == pytest.approx(3 / 5)  # p_2 ~ 0.031 is no longer significant


def test_fad_is_the_shared_frechet_distance_of_gaussians() -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = np.zeros(3), np.array([1.0, 0.0, 2.0])
    s1, s2 = np.diag([1.0, 2.0, 0.5]), np.diag([2.0, 2.0, 0.5])
    a = rng.multivariate_normal(mu1, s1, 200_000)
    b = rng.multivariate_normal(mu2, s2, 200_000)
    closed = 5.0 + (1 + 2 - 2 * np.sqrt(2))  # ||mu1-mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), diagonal case
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(closed, rel=1e-9)
    assert fad(a, b) == pytest.approx(closed, abs=0.03)
    assert fad(a, a) == pytest.approx(0.0, abs=1e-6)


def test_mel_features_and_offline_fd(speech: np.ndarray) -> None:
    f = mel_frame_features([speech, speech[: SR // 2]], SR, n_mels=80, max_frames=0)
    assert f.shape == (2 + speech.size // 256 + (SR // 2) // 256, 80)
    sub = mel_frame_features([speech], SR, max_frames=50, seed=3)
    assert sub.shape == (50, 80) and np.array_equal(sub, mel_frame_features([speech], SR, max_frames=50, seed=3))
    assert fad(f, f) == pytest.approx(0.0, abs=1e-6)


def test_vggish_and_utmos_need_explicit_sources(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvggish", None)  # as on a machine without the package
    with pytest.raises(ImportError, match="pip install torchvggish"):
        load_vggish()
    with pytest.raises(PermissionError, match="EXECUTES code"):
        utmos_scores([np.zeros(100)], SR)

    class Predictor(torch.nn.Module):  # stands for SpeechMOS: (1, T), sr -> (1,)
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, wave: torch.Tensor, sr: int) -> torch.Tensor:
            return 1 + 4 * wave.abs().mean(dim=1) * self.w

    scores = utmos_scores([np.full(100, 0.5), np.zeros(100)], SR, predictor=Predictor())
    np.testing.assert_allclose(scores, [3.0, 1.0])
