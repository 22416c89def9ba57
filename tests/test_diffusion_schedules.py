"""Beta schedules, DDPMSchedule and the DiffWave step alignment."""

import math
import pickle

import pytest
import torch

from specreg_lib.diffusion.schedules import DIFFWAVE_FAST_BETAS, DDPMSchedule, align_steps, beta_schedule


def test_linear_and_diffwave_endpoints():
    b = beta_schedule("linear", 1000)
    assert b.dtype == torch.float64 and b.shape == (1000,)
    assert b[0].item() == pytest.approx(1e-4) and b[-1].item() == pytest.approx(0.02)
    d = beta_schedule("diffwave")
    assert d.shape == (50,) and d[-1].item() == pytest.approx(0.05)
    # With the linear schedule Eq. 5 divides by sqrt(abar_999) ~ 1/160 (the motivating number).
    assert 150 < 1 / DDPMSchedule(b).alpha_bar[-1].sqrt().item() < 170


def test_cosine_matches_closed_form():
    T, s = 1000, 0.008
    ab = DDPMSchedule.from_kind("cosine", T=T).alpha_bar
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    for t in (0, 10, 500, 900):
        assert ab[t].item() == pytest.approx(f[t + 1] / f[0], rel=1e-10)
    assert beta_schedule("cosine", T).max().item() <= 0.999


def test_cosine_shifted_divides_snr():
    cos = DDPMSchedule.from_kind("cosine", T=1000)
    shifted = DDPMSchedule.from_kind("cosine_shifted", T=1000, snr_scale=16)
    t = torch.arange(0, 990, 7)
    ratio = shifted.snr(t) / cos.snr(t)
    torch.testing.assert_close(ratio, torch.full_like(ratio, 1 / 16), rtol=1e-8, atol=0)


def test_schedule_object_and_pickle():
    sch = DDPMSchedule(DIFFWAVE_FAST_BETAS)
    assert sch.T == 6
    torch.testing.assert_close(sch.alpha_bar, torch.cumprod(1 - torch.tensor(DIFFWAVE_FAST_BETAS,
                                                                             dtype=torch.float64), 0))
    assert sch.snr(2).item() == pytest.approx(sch.alpha_bar[2].item() / (1 - sch.alpha_bar[2].item()))
    back = pickle.loads(pickle.dumps(sch))
    assert torch.equal(back.alpha_bar, sch.alpha_bar)
    with pytest.raises(AttributeError):
        sch.betas = torch.ones(3)  # frozen


@pytest.mark.parametrize("bad", [[], [0.0, 0.1], [0.5, 1.0], [[0.1, 0.2]]])
def test_schedule_rejects_bad_betas(bad):
    with pytest.raises(ValueError):
        DDPMSchedule(bad)


def test_bad_kinds_and_options():
    with pytest.raises(ValueError, match="unknown beta schedule"):
        beta_schedule("quadratic", 10)
    with pytest.raises(ValueError, match="T must be"):
        beta_schedule("linear", 0)
    with pytest.raises(TypeError, match="unexpected options"):
        beta_schedule("cosine", 10, beta_end=0.1)
    sch = DDPMSchedule.from_kind("linear", T=10)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        sch.check_t(torch.tensor([10]))
    with pytest.raises(TypeError, match="integer"):
        sch.check_t(torch.tensor([1.0]))


def test_align_steps_diffwave_fast_schedule():
    train, fast = DDPMSchedule.from_kind("diffwave"), DDPMSchedule(DIFFWAVE_FAST_BETAS)
    t = align_steps(train, fast)
    assert t.shape == (6,) and t[0].item() == pytest.approx(0.0, abs=1e-9)
    assert bool((t[1:] > t[:-1]).all()) and 0 <= t[-1].item() <= 49
    # Interpolating sqrt(alpha_bar) of the training schedule at t gives back each inference step's.
    sq = train.alpha_bar.sqrt()
    lo = t.floor().long().clamp(max=48)
    interp = sq[lo] + (t - lo) * (sq[lo + 1] - sq[lo])
    torch.testing.assert_close(interp, fast.alpha_bar.sqrt(), rtol=0, atol=1e-12)
    # Aligning a schedule with itself gives the integer steps.
    torch.testing.assert_close(align_steps(train, train), torch.arange(50, dtype=torch.float64))
