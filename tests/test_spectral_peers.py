"""The peer kinds "mrstft" and "logmel_l1" against auraloss called directly, numpy, LMNT's mel and closed forms."""

from __future__ import annotations

import math
import pickle

import auraloss
import numpy as np
import pytest
import torch

from specreg_lib.diffusion import Regularizer
from specreg_lib.errors import InputError
from specreg_lib.experiments import DIFFWAVE
from specreg_lib.spectral import (
    KINDS,
    SpectralLoss,
    logmel_bin_count,
    logmel_l1_loss,
    mrstft_bin_count,
    mrstft_loss,
)
from specreg_lib.training import train

TINY_STFT = {"fft_sizes": [8, 16], "hop_sizes": [2, 4], "win_lengths": [6, 16]}  # gradcheck-sized resolutions
TINY_MEL = {"sample_rate": 8000, "n_fft": 16, "win_length": 16, "hop_length": 4, "n_mels": 3}


def _pair(shape, dtype=torch.float32, seed=0, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype), \
        (scale * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)


def test_both_kinds_are_registered_and_exported():
    assert KINDS["mrstft"] is mrstft_loss and KINDS["logmel_l1"] is logmel_l1_loss


@pytest.mark.parametrize("shape, dtype", [((3, 1, 4096), torch.float32), ((2, 2, 3000), torch.float32),
                                          ((2, 1, 2500), torch.float64)])
def test_mrstft_is_auraloss_one_sample_at_a_time(shape, dtype):
    x0_hat, x0 = _pair(shape, dtype)
    for bins in ("mean", "sum"):
        ours = mrstft_loss(x0_hat, x0, bins=bins)
        assert ours.shape == (shape[0],) and ours.dtype == dtype
        aura = auraloss.freq.MultiResolutionSTFTLoss(reduction=bins)  # its defaults: 1024/2048/512, 120/240/50, ...
        for i in range(shape[0]):
            expect = aura(x0_hat[i: i + 1], x0[i: i + 1]).to(dtype)
            torch.testing.assert_close(ours[i], expect, rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=0)


def test_mrstft_values_are_per_sample_unlike_a_batched_auraloss_call():
    # auraloss's spectral convergence is one ratio over the batch; ours must not couple the samples
    x0_hat, x0 = _pair((2, 1, 2048))
    louder = torch.cat([x0_hat[:1], 10 * x0_hat[1:]])
    a, b = mrstft_loss(x0_hat, x0), mrstft_loss(louder, x0)
    assert a[0] == b[0] and b[1] > a[1]
    batched = auraloss.freq.MultiResolutionSTFTLoss()
    assert not torch.isclose(batched(louder, x0), batched(x0_hat, x0))  # the coupling we avoid


def test_mrstft_closed_form_for_a_halved_signal_and_the_bin_count():
    # |STFT(x/2)| = |STFT x| / 2: spectral convergence 1/2 and |ln| = ln 2 in every bin, per resolution
    x0, _ = _pair((2, 1, 4096), torch.float64)
    torch.testing.assert_close(mrstft_loss(x0 / 2, x0), torch.full((2,), 0.5 + math.log(2), dtype=torch.float64))
    # "sum": ln 2 summed over C x bins x frames of each resolution, averaged over the three: ln 2 x the bin count
    summed = mrstft_loss(x0 / 2, x0, bins="sum", w_sc=0.0)
    count = (513 * (1 + 4096 // 120) + 1025 * (1 + 4096 // 240) + 257 * (1 + 4096 // 50)) / 3
    assert mrstft_bin_count(4096) == count
    torch.testing.assert_close(summed, torch.full((2,), math.log(2) * count, dtype=torch.float64))
    two_ch = torch.cat([x0, x0], 1)
    torch.testing.assert_close(mrstft_loss(two_ch / 2, two_ch, bins="sum", w_sc=0.0),
                               torch.full((2,), math.log(2) * mrstft_bin_count(4096, channels=2), dtype=torch.float64))


def _hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)  # periodic, as torch.hann_window


def _htk_mel_filters(sample_rate, n_fft, n_mels, f_min, f_max) -> np.ndarray:
    """Closed-form HTK triangles on the rfft frequencies, peak 1, no area norm: (n_fft // 2 + 1, n_mels)."""
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(mel(f_min), mel(f_max), n_mels + 2))
    f = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)[:, None]
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    return np.clip(np.minimum((f - lo) / (mid - lo), (hi - f) / (hi - mid)), 0, None)


def _numpy_log_mel(x: np.ndarray, sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256, n_mels=80,
                   f_min=20.0, f_max=None, floor=1e-5) -> np.ndarray:
    """Centred reflect-padded frames, Hann (zero-padded to n_fft), |rfft| / ||window||, HTK mel, ln: (T,) -> (M, F)."""
    w = np.zeros(n_fft)
    start = (n_fft - win_length) // 2
    w[start: start + win_length] = _hann(win_length)
    xp = np.pad(x, n_fft // 2, mode="reflect")
    frames = np.stack([xp[i: i + n_fft] for i in range(0, len(xp) - n_fft + 1, hop_length)])
    mag = np.abs(np.fft.rfft(frames * w, axis=1)) / np.sqrt((w ** 2).sum())
    fb = _htk_mel_filters(sample_rate, n_fft, n_mels, f_min, sample_rate / 2 if f_max is None else f_max)
    return np.log(np.maximum(mag @ fb, floor)).T


@pytest.mark.parametrize("options", [{}, {"win_length": 600, "n_mels": 40, "f_max": 8000.0}, TINY_MEL])
def test_logmel_l1_against_numpy_frames_and_closed_form_mel_triangles(options):
    x0_hat, x0 = _pair((2, 1, 4100), torch.float64)
    x0_hat[1, 0, :2000] = 0.0  # silence: whole frames at the floor, where the window normalisation matters
    ours = {b: logmel_l1_loss(x0_hat, x0, bins=b, **options) for b in ("mean", "sum")}
    for i in range(2):
        d = np.abs(_numpy_log_mel(x0_hat[i, 0].numpy(), **options) - _numpy_log_mel(x0[i, 0].numpy(), **options))
        # rel 1e-6: torchaudio builds the window and the filterbank in float32, whatever the input's dtype
        assert ours["mean"][i].item() == pytest.approx(d.mean(), rel=1e-6)
        assert ours["sum"][i].item() == pytest.approx(d.sum(), rel=1e-6)
    count = logmel_bin_count(4100, n_mels=options.get("n_mels", 80), hop_length=options.get("hop_length", 256),
                             n_fft=options.get("n_fft", 1024))
    assert count == options.get("n_mels", 80) * (1 + 4100 // options.get("hop_length", 256))
    torch.testing.assert_close(ours["sum"], count * ours["mean"])


def test_logmel_l1_defaults_are_lmnt_diffwaves_mel():
    from specreg_lib.data.speech import MelConfig

    x0_hat, x0 = _pair((2, 1, 4096))
    x0_hat[0, 0, :2000] = 0.0  # whole frames at the floor: the same window normalisation as LMNT's, or a mismatch
    lmnt = MelConfig().transform()  # the conditioning mel of the audio experiment (LMNT's preprocess.py)
    log = lambda x: lmnt(x[:, 0]).clamp_min(1e-5).log()  # noqa: E731
    torch.testing.assert_close(logmel_l1_loss(x0_hat, x0), (log(x0_hat) - log(x0)).abs().flatten(1).mean(1))


def test_logmel_l1_is_zero_for_equal_inputs_and_a_gain_gives_its_log():
    x0, _ = _pair((3, 1, 4096), torch.float64)
    assert torch.equal(logmel_l1_loss(x0, x0), torch.zeros(3, dtype=torch.float64))
    assert torch.equal(mrstft_loss(x0, x0), torch.zeros(3, dtype=torch.float64))
    for gain in (2.0, 0.5, 10.0):  # mel(a x) = a mel(x) above the floor: |ln a| in every value
        torch.testing.assert_close(logmel_l1_loss(gain * x0, x0), torch.full((3,), abs(math.log(gain)),
                                                                               dtype=torch.float64))
    # two channels: the mean over both equals one channel's; the sum doubles
    two = torch.cat([x0, x0], 1)
    torch.testing.assert_close(logmel_l1_loss(2 * two, two), logmel_l1_loss(2 * x0, x0))
    torch.testing.assert_close(logmel_l1_loss(2 * two, two, bins="sum"), 2 * logmel_l1_loss(2 * x0, x0, bins="sum"))


@pytest.mark.parametrize("kind, options", [("mrstft", TINY_STFT), ("logmel_l1", TINY_MEL)])
def test_finite_difference_gradients(kind, options):
    # w.r.t. x0_hat (the only path to the network) in full; "sum" and w.r.t. both in gradcheck's cheaper
    # random-projection mode
    x0_hat, x0 = _pair((2, 1, 24), torch.float64, seed=3)
    fn = KINDS[kind]
    assert torch.autograd.gradcheck(lambda a: fn(a, x0, **options), (x0_hat.clone().requires_grad_(),), eps=1e-6,
                                    atol=1e-6)
    assert torch.autograd.gradcheck(lambda a, b: fn(a, b, bins="sum", **options),
                                    (x0_hat.requires_grad_(), x0.requires_grad_()), eps=1e-6, atol=1e-6,
                                    fast_mode=True)


@pytest.mark.parametrize("kind", ["mrstft", "logmel_l1"])
def test_no_nan_at_equal_inputs_or_silence(kind):
    speech, _ = _pair((2, 1, 2048))
    silence = torch.zeros_like(speech)
    for a, b in ((speech, speech), (silence, silence), (silence, speech), (speech, silence)):
        a = a.clone().requires_grad_()
        value = KINDS[kind](a, b)
        value.sum().backward()
        assert torch.isfinite(value).all() and torch.isfinite(a.grad).all()
        if a is b or torch.equal(a.detach(), b):
            assert torch.equal(value, torch.zeros(2)) and torch.equal(a.grad, torch.zeros_like(a))


@pytest.mark.parametrize("kind", ["mrstft", "logmel_l1"])
def test_precision_half_and_autocast_compute_in_float32(kind):
    x0_hat, x0 = _pair((2, 1, 2048))
    full = KINDS[kind](x0_hat, x0)
    half = KINDS[kind](x0_hat.half(), x0.half())
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, KINDS[kind](x0_hat.half().float(), x0.half().float()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = KINDS[kind](x0_hat, x0)
    assert auto.dtype == torch.float32 and torch.equal(auto, full)


@pytest.mark.parametrize("kind, options, match", [
    ("mrstft", {"ndim": 2}, "ndim=1"),
    ("mrstft", {"fft_sizes": [512], "hop_sizes": [50, 60], "win_lengths": [512]}, "one entry per resolution"),
    ("mrstft", {"fft_sizes": [256], "hop_sizes": [64], "win_lengths": [300]}, "exceeds its FFT size"),
    ("mrstft", {"fft_sizes": [256], "hop_sizes": [0], "win_lengths": [256]}, r"hop_sizes\[0\]"),
    ("mrstft", {"fft_sizes": "1024"}, "non-empty list"),
    ("mrstft", {"w_sc": -1.0}, "w_sc"),
    ("mrstft", {"w_sc": 0.0, "w_log_mag": 0}, "both 0"),
    ("mrstft", {"fft_sizes": [4096, 512], "hop_sizes": [256, 64], "win_lengths": [4096, 512]}, "too short"),
    ("logmel_l1", {"ndim": 2}, "ndim=1"),
    ("logmel_l1", {"f_max": 12000.0}, "f_max"),
    ("logmel_l1", {"f_min": 9000.0, "f_max": 8000.0}, "f_min"),
    ("logmel_l1", {"floor": 0.0}, "floor"),
    ("logmel_l1", {"win_length": 2048}, "exceeds n_fft"),
    ("logmel_l1", {"n_mels": 0}, "n_mels"),
    ("logmel_l1", {"n_fft": 4096, "win_length": 4096}, "too short"),
])
def test_bad_options_name_the_option(kind, options, match):
    x0_hat, x0 = _pair((2, 1, 2048))
    with pytest.raises(InputError, match=match) as err:
        KINDS[kind](x0_hat, x0, **options)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("kind", ["mrstft", "logmel_l1"])
def test_bad_tensors_are_refused(kind):
    x0_hat, x0 = _pair((2, 1, 2048))
    bad = x0_hat.clone()
    bad[0, 0, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        KINDS[kind](bad, x0)
    assert torch.isnan(KINDS[kind](bad, x0, check_finite=False)[0])  # the training hook's path: NaN reaches the guard
    with pytest.raises(ValueError, match="shape mismatch"):
        KINDS[kind](x0_hat, x0[..., :-1])
    with pytest.raises(ValueError, match="bins"):
        KINDS[kind](x0_hat, x0, bins="max")
    with pytest.raises(TypeError, match="unknown option"):
        SpectralLoss(kind, n_fft_size=1024)


@pytest.mark.parametrize("kind", ["mrstft", "logmel_l1"])
def test_regularizer_json_pickle_and_the_audio_training_loss(kind):
    reg = Regularizer(kind, lambda_spec=1e-4, weighting="unweighted", options={"ndim": 1})
    assert Regularizer.from_dict(reg.to_dict()) == reg and pickle.loads(pickle.dumps(reg)) == reg
    x0_hat, target = _pair((2, 1, 2048))
    torch.testing.assert_close(reg.spectral_loss()(x0_hat, target), KINDS[kind](x0_hat, target))

    # the audio experiment's variant: the term in the loss is lambda * L_S with the config's bins ("sum")
    cfg = DIFFWAVE.config("smoke", {"regularizer": kind})
    assert cfg.regularizer.kind == kind and cfg.regularizer.options == {"ndim": 1}
    torch.manual_seed(0)
    model = DIFFWAVE.build_model(cfg)
    x0, mel = torch.rand(2, 1, 8 * 256) - 0.5, torch.rand(2, 20, 8)
    base = DIFFWAVE.build_loss(DIFFWAVE.config("smoke", {"regularizer": "baseline"}))
    parts = DIFFWAVE.build_loss(cfg)(model, x0, mel, generator=torch.Generator().manual_seed(1), return_parts=True)
    torch.testing.assert_close(parts["diffusion"], base(model, x0, mel, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(parts["term"], 1e-4 * parts["weight"] * parts["spectral"])
    assert bool((parts["spectral"] > 0).all())
    spectral = DIFFWAVE.build_loss(cfg).spectral  # L_S as the loss holds it: the audio default bins="sum"
    torch.testing.assert_close(spectral(x0_hat, target), KINDS[kind](x0_hat, target, bins="sum"))
    assert not torch.allclose(spectral(x0_hat, target), KINDS[kind](x0_hat, target))

    # and LMNT's fp16 training steps run (autocast + GradScaler, the paper profile's precision)
    cfg16 = DIFFWAVE.config("smoke", {"regularizer": kind, "precision": "fp16", "steps": 2})
    res = train(DIFFWAVE.build_model(cfg16), DIFFWAVE.build_loss(cfg16), [(x0, mel)], cfg16.train)
    assert res.nonfinite_steps == 0 and all(np.isfinite(res.history["loss"]))
