"""Pitch/voicing metrics against closed forms (tones at known F0, shifted copies, silence and noise) and the noise
floors of every audio metric (identical halves, a half-sample delay, the audio experiment's own evaluate)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from specreg_lib.errors import InputError
from specreg_lib.metrics.audio import (
    FloorInputError,
    distribution_metrics,
    half_sample_delay,
    mr_stft_distance,
    noise_floors,
    paired_metrics,
    pesq_wb,
)
from specreg_lib.metrics.pitch import FRAME_PERIOD_MS, PitchInputError, f0_rmse_cents, track_f0, vuv_error

SR = 22050
N = 2 * SR  # 2 s clips: 401 frames at 5 ms


def tone(f0: np.ndarray | float, n: int = N) -> np.ndarray:
    """A harmonic tone (7 partials, 1/k amplitudes) following the F0 contour ``f0`` (Hz per sample)."""
    phase = 2 * np.pi * np.cumsum(np.broadcast_to(np.asarray(f0, dtype=np.float64), (n,))) / SR
    return 0.3 * sum(np.sin(k * phase) / k for k in range(1, 8))


GLIDE = np.geomspace(110.0, 220.0, N)  # one octave up over 2 s
SHORT = np.geomspace(110.0, 220.0, SR)  # 1 s clips where MR-STFT and PESQ run (they cost ~1 s per 2 s of clip)


def frame_values(contour: np.ndarray, frames: int) -> np.ndarray:
    """The per-sample contour at the tracker's frame centres (frame i at i * 5 ms)."""
    return contour[np.minimum(np.round(np.arange(frames) * FRAME_PERIOD_MS / 1000 * SR).astype(int), N - 1)]


def cents(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1200 * np.log2(a / b)


@pytest.mark.parametrize("f0", [110.0, 220.0])
def test_tracker_finds_a_known_constant_f0(f0: float) -> None:
    track = track_f0(tone(f0), SR)
    assert track.shape == (N // int(SR * FRAME_PERIOD_MS / 1000) + 1,)
    voiced = track > 0
    assert voiced.mean() > 0.99  # all but an edge frame
    assert abs(np.median(cents(track[voiced], f0))) < 1.0
    assert np.sqrt(np.mean(cents(track[voiced], f0) ** 2)) < 10.0  # the edge frames see the abrupt onset


def test_tracker_follows_a_glide_and_a_clip_against_itself_is_perfect() -> None:
    track = track_f0(tone(GLIDE), SR)
    voiced = track > 0
    truth = frame_values(GLIDE, track.size)
    assert np.sqrt(np.mean(cents(track[voiced], truth[voiced]) ** 2)) < 10.0
    assert f0_rmse_cents(track, track) == 0.0 and vuv_error(track, track) == 0.0


@pytest.mark.parametrize("shift_cents", [100.0, -300.0, 701.955])  # a semitone up, a minor third down, a fifth
def test_a_copy_shifted_by_a_known_ratio_is_off_by_1200_log2_ratio_cents(shift_cents: float) -> None:
    ratio = 2 ** (shift_cents / 1200)
    ref, gen = track_f0(tone(GLIDE), SR), track_f0(tone(GLIDE * ratio), SR)
    assert f0_rmse_cents(gen, ref) == pytest.approx(abs(shift_cents), abs=2.0)
    assert vuv_error(gen, ref) == 0.0


def test_voicing_error_counts_the_frames_of_silence_or_noise() -> None:
    ref = track_f0(tone(GLIDE), SR)
    half = ref.size // 2  # frame 200 of 401 is at 1.0 s, where the second half begins
    silent = tone(GLIDE)
    silent[N // 2:] = 0.0
    noisy = tone(GLIDE)
    noisy[N // 2:] = 0.1 * np.random.default_rng(0).standard_normal(N - N // 2)
    for second_half in (silent, noisy):
        gen = track_f0(second_half, SR)
        # the frames centred in the second half, except the last one (unvoiced in both: its window runs off the end)
        expected = (ref.size - half - 1) / ref.size
        assert vuv_error(gen, ref) == pytest.approx(expected, abs=2 / ref.size)
        assert f0_rmse_cents(gen, ref) < 10.0  # the first half, voiced in both, is the same glide
    assert not (track_f0(np.zeros(N), SR) > 0).any()


def test_closed_forms_on_tracks_pool_frames_over_clips() -> None:
    gen = [np.array([100.0, 200.0, 0.0, 150.0]), np.array([0.0, 440.0])]
    ref = [np.array([100.0, 100.0, 120.0, 0.0]), np.array([0.0, 220.0])]
    # voiced in both: (100, 100), (200, 100), (440, 220) -> errors 0, 1200, 1200 cents
    assert f0_rmse_cents(gen, ref) == pytest.approx(np.sqrt(2 * 1200**2 / 3))
    assert vuv_error(gen, ref) == pytest.approx(2 / 6)  # frames 3 and 4 of the first clip
    assert np.isnan(f0_rmse_cents(np.array([0.0, 100.0]), np.array([100.0, 0.0])))  # undefined, not 0


def test_bad_inputs_are_input_errors_that_say_what_to_do() -> None:
    with pytest.raises(PitchInputError, match="equal length"):
        f0_rmse_cents(np.ones(4), np.ones(5))
    with pytest.raises(PitchInputError, match="as many"):
        vuv_error([np.ones(3)], [])
    with pytest.raises(PitchInputError, match=">= 0"):
        vuv_error(np.array([-1.0]), np.array([1.0]))
    with pytest.raises(PitchInputError, match="NaN"):
        track_f0(np.array([0.0, np.nan, 0.0]), SR)
    with pytest.raises(PitchInputError, match="1-D"):
        track_f0(np.zeros((2, 100)), SR)
    with pytest.raises(PitchInputError, match="sample_rate"):
        track_f0(np.zeros(100), 1000)
    assert issubclass(PitchInputError, InputError) and issubclass(PitchInputError, ValueError)


def test_half_sample_delay_of_a_band_limited_pulse_is_the_pulse_half_a_sample_later() -> None:
    # a Gaussian of width 20 samples is band-limited to float precision (exp(-pi^2 400 / 2) at Nyquist): its
    # band-limited delay is the same Gaussian centred half a sample later, in closed form
    t = np.arange(1001.0)
    pulse = lambda centre: np.exp(-0.5 * ((t - centre) / 20) ** 2)  # noqa: E731
    np.testing.assert_allclose(half_sample_delay(pulse(400.0)), pulse(400.5), atol=1e-12)
    # a clip cut at its loudest (as a crop cuts speech): nothing wraps onto its silent start, where a circular delay
    # would put half the jump (the mean of the last and first samples) into sample 0
    cut = pulse(1000.0)
    assert np.abs(half_sample_delay(cut)[:50]).max() < 1e-3
    assert half_sample_delay(pulse(1000.0).astype(np.float32)).dtype == np.float32


def test_paired_metrics_are_the_per_clip_metrics_averaged() -> None:
    rng = np.random.default_rng(2)
    refs = [tone(SHORT, SR).astype(np.float32), tone(SHORT[::-1] * 1.2, SR).astype(np.float32)]
    gens = [(r + 0.02 * rng.standard_normal(r.size)).astype(np.float32) for r in refs]
    got = paired_metrics(gens, refs, SR)
    mr = [float(mr_stft_distance(torch.from_numpy(g)[None], torch.from_numpy(r)[None])[0]) for g, r in zip(gens, refs)]
    assert got["mr_stft"] == pytest.approx(np.mean(mr))
    assert got["pesq"] == pytest.approx(np.mean([pesq_wb(r, g, SR) for g, r in zip(gens, refs)]))
    tg, tr = [track_f0(g, SR) for g in gens], [track_f0(r, SR) for r in refs]
    assert got["f0_rmse_cents"] == f0_rmse_cents(tg, tr) and got["vuv_error"] == vuv_error(tg, tr)
    assert "pesq" not in paired_metrics(gens, refs, SR, pesq=False)


def test_noise_floors_identical_halves_give_zero_and_paired_floors_are_small_but_not_trivial() -> None:
    clip = tone(SHORT, SR).astype(np.float32)
    same = distribution_metrics([clip], [clip], SR, n_mels=20, ndb_k=5)
    assert same["ndb"] == 0.0 and same["fd_mel"] == pytest.approx(0.0, abs=1e-6)
    floors = noise_floors([clip, clip.copy()], SR, n_mels=20, ndb_k=5)  # two identical clips: identical halves
    assert floors["ndb"] == 0.0 and floors["fd_mel"] == pytest.approx(0.0, abs=1e-6)
    # the paired floors: the clip against its half-sample delay, exactly as paired_metrics scores it
    delayed = paired_metrics([half_sample_delay(clip)], [clip], SR)
    for name in ("mr_stft", "pesq", "f0_rmse_cents", "vuv_error"):
        assert floors[name] == pytest.approx(delayed[name])
    assert 0 < floors["mr_stft"] < 0.1 and floors["pesq"] > 4.0 and floors["f0_rmse_cents"] < 10.0
    # different halves are not identical: a real floor above 0
    apart = noise_floors([clip, tone(SHORT * 1.5, SR).astype(np.float32)], SR, n_mels=20, ndb_k=5, pesq=False)
    assert apart["fd_mel"] > 1e-3
    with pytest.raises(FloorInputError, match=">= 2 held-out clips"):
        noise_floors([clip], SR)


def test_the_audio_experiment_scores_ground_truth_as_perfect_and_declares_the_pitch_metrics() -> None:
    from specreg_lib.data.speech import pad_batch
    from specreg_lib.experiments.audio.experiment import AUDIO_GLOSSARY, DIFFWAVE

    cfg = DIFFWAVE.config("smoke")
    refs, _ = DIFFWAVE.eval_clips(cfg)  # the espeak-ng stand-in (generated on first use)
    metrics, _ = DIFFWAVE.evaluate(cfg, pad_batch([torch.from_numpy(r) for r in refs])[0].unsqueeze(1))
    assert metrics["f0_rmse_cents"] == 0.0 and metrics["vuv_error"] == 0.0 and metrics["mr_stft"] == 0.0
    assert metrics["ndb"] == 0.0 and metrics["fd_mel"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["pesq"] == pytest.approx(4.644, abs=0.01)
    assert AUDIO_GLOSSARY["f0_rmse_cents"][1] == "lower" and AUDIO_GLOSSARY["vuv_error"][1] == "lower"
