"""Every sampler, driven by the exact denoiser of N(mu, s^2) data, reproduces its mean and std.

Deterministic samplers get standardised latents (mean 0, std 1 exactly): the sampler is affine in them, so the
check sees only discretisation error. Stochastic ones use 32k Monte Carlo values (standard errors ~0.003).
Each check is also run with a deliberately wrong schedule and must then FAIL.
"""

import math

import pytest
import torch
from gaussian_oracles import GaussianDDPMModel, GaussianDenoiser, GaussianRawNet

from specreg_lib.diffusion import ddpm, edm
from specreg_lib.diffusion.schedules import DIFFWAVE_FAST_BETAS, DDPMSchedule, align_steps

MU, S = 0.3, 0.5
LINEAR = DDPMSchedule.from_kind("linear", T=1000)


def latents(shape, seed=0, standardise=True):
    z = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return ((z - z.mean()) / z.std() if standardise else z).float()


def moments_ok(x, tol_mean=5e-3, tol_std=1e-2):
    return abs(x.mean().item() - MU) < tol_mean and abs(x.std().item() - S) < tol_std


# ---------------------------------------------------------------- DDPM / DDIM


def test_ddpm_ancestral_reproduces_gaussian():
    g = torch.Generator().manual_seed(1)
    x = ddpm.ancestral_sample(GaussianDDPMModel(LINEAR, MU, S), latents((8192, 1, 2, 2), standardise=False),
                              LINEAR, generator=g)
    assert moments_ok(x, tol_mean=1e-2)


def test_ddpm_ancestral_wrong_schedule_fails():
    # The network was trained on the linear schedule; sampling with the cosine one must show.
    g = torch.Generator().manual_seed(1)
    cosine = DDPMSchedule.from_kind("cosine", T=1000)
    x = ddpm.ancestral_sample(GaussianDDPMModel(LINEAR, MU, S), latents((8192, 1, 2, 2), standardise=False),
                              cosine, generator=g)
    assert not moments_ok(x, tol_mean=1e-2)


@pytest.mark.parametrize("parametrization", ["eps", "x0", "v"])
def test_ddim_reproduces_gaussian(parametrization):
    model = GaussianDDPMModel(LINEAR, MU, S, parametrization)
    x = ddpm.ddim_sample(model, latents((256, 1, 2, 2)), LINEAR, timesteps=ddpm.ddim_timesteps(1000, 250),
                         parametrization=parametrization)
    assert moments_ok(x)


def test_ddim_wrong_schedule_fails():
    shifted = DDPMSchedule.from_kind("cosine_shifted", T=1000, snr_scale=4)
    x = ddpm.ddim_sample(GaussianDDPMModel(LINEAR, MU, S), latents((256, 1, 2, 2)), shifted,
                         timesteps=ddpm.ddim_timesteps(1000, 250))
    assert not moments_ok(x)


def test_ddim_eta_one_is_stochastic_and_correct():
    g = torch.Generator().manual_seed(2)
    x = ddpm.ddim_sample(GaussianDDPMModel(LINEAR, MU, S), latents((8192, 1, 2, 2), standardise=False), LINEAR,
                         timesteps=ddpm.ddim_timesteps(1000, 500), eta=1.0, generator=g)
    assert moments_ok(x, tol_mean=1e-2, tol_std=1.5e-2)


def test_short_schedule_feeds_aligned_float_steps():
    train, fast = DDPMSchedule.from_kind("diffwave"), DDPMSchedule(DIFFWAVE_FAST_BETAS)
    seen = []

    def model(x, t):
        seen.append(t.clone())
        return torch.zeros_like(x)

    steps = align_steps(train, fast)
    x = ddpm.ancestral_sample(model, torch.randn(3, 1, 8), fast, model_steps=steps,
                              generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 8) and len(seen) == 6
    assert all(t.dtype == torch.float32 and t.shape == (3,) for t in seen)
    torch.testing.assert_close(torch.stack([t[0] for t in seen]).double(), steps.flip(0), rtol=0, atol=1e-6)
    # Without model_steps the model sees long step indices T-1..0.
    seen.clear()
    ddpm.ddim_sample(model, torch.randn(3, 1, 8), fast)
    assert [int(t[0]) for t in seen] == [5, 4, 3, 2, 1, 0] and seen[0].dtype == torch.long


def test_clip_x0_and_callback_and_cond():
    calls = []

    def model(x, t, cond):
        assert cond == "mel"
        return torch.zeros_like(x)

    sch = DDPMSchedule.from_kind("linear", T=20)
    x = ddpm.ddim_sample(model, 10 * torch.ones(2, 4), sch, clip_x0=1.0, cond="mel", callback=calls.append)
    assert len(calls) == 20 and calls[-1]["x0_hat"].abs().max() <= 1.0
    assert x.abs().max().item() <= 1.0 + 1e-5


def test_sampler_bad_inputs():
    model = GaussianDDPMModel(LINEAR, MU, S)
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="strictly decreasing"):
        ddpm.ddim_sample(model, x, LINEAR, timesteps=[10, 20])
    with pytest.raises(ValueError, match="strictly decreasing"):
        ddpm.ddim_sample(model, x, LINEAR, timesteps=[1000, 5])
    with pytest.raises(ValueError, match="parametrization"):
        ddpm.ancestral_sample(model, x, LINEAR, parametrization="score")
    with pytest.raises(ValueError, match="eta"):
        ddpm.ddim_sample(model, x, LINEAR, eta=-1)
    with pytest.raises(ValueError, match="clip_x0"):
        ddpm.ancestral_sample(model, x, LINEAR, clip_x0=0.0)
    with pytest.raises(ValueError, match="model_steps"):
        ddpm.ancestral_sample(model, x, LINEAR, model_steps=[0.0, 1.0])
    with pytest.raises(TypeError, match="DDPMSchedule"):
        ddpm.ancestral_sample(model, x, LINEAR.betas)


# ---------------------------------------------------------------- EDM


@pytest.mark.parametrize("kind", ["vp", "ve", "edm"])
@pytest.mark.parametrize("sampler,num_steps", [(edm.heun_sample, 40), (edm.euler_sample, 256)])
def test_edm_samplers_reproduce_gaussian(kind, sampler, num_steps):
    D = edm.Precond(GaussianRawNet(MU, S, kind), kind)  # exact D(x; sigma) through the preconditioning
    sigmas = edm.sampler_sigmas(D, num_steps)
    x = sampler(D, latents((256, 1, 2, 2)), sigmas)
    assert moments_ok(x)


@pytest.mark.parametrize("sampler,num_steps", [(edm.heun_sample, 40), (edm.euler_sample, 256)])
def test_edm_samplers_wrong_schedule_fail(sampler, num_steps):
    D = GaussianDenoiser(MU, S)
    sigmas = edm.sigma_steps(num_steps)
    x = sampler(lambda x, sigma: D(x, 1.3 * sigma), latents((256, 1, 2, 2)), sigmas)  # mismatched sigma
    assert not moments_ok(x)
    # A raw network trained for another sigma_data than the preconditioning assumes must also fail.
    bad = edm.Precond(GaussianRawNet(MU, S, "edm", sigma_data=1.0), "edm", sigma_data=0.5)
    assert not moments_ok(sampler(bad, latents((256, 1, 2, 2)), sigmas))


def test_heun_with_churn_reproduces_gaussian():
    g = torch.Generator().manual_seed(3)
    D = GaussianDenoiser(MU, S)
    x = edm.heun_sample(D, latents((8192, 1, 2, 2), standardise=False), edm.sigma_steps(100), S_churn=40,
                        S_min=0.05, S_max=50, S_noise=1.0, generator=g)
    assert moments_ok(x, tol_mean=1e-2, tol_std=1.5e-2)


def test_heun_float64_latents_and_nfe():
    calls = []

    def denoise(x, sigma):
        calls.append(sigma)
        return GaussianDenoiser(MU, S)(x, sigma)

    x = edm.heun_sample(denoise, latents((64, 1, 2, 2)).double(), edm.sigma_steps(18))
    assert x.dtype == torch.float64 and len(calls) == 2 * 18 - 1
    assert all(c.shape == (64,) and c.dtype == torch.float64 for c in calls)
    calls.clear()
    edm.euler_sample(denoise, latents((64, 1, 2, 2)), edm.sigma_steps(18))
    assert len(calls) == 18


def test_sigma_steps_closed_form_and_clamping():
    s = edm.sigma_steps(18)
    assert s.dtype == torch.float64 and s.shape == (19,) and s[-1].item() == 0.0
    assert s[0].item() == pytest.approx(80.0) and s[-2].item() == pytest.approx(0.002)
    i, rho = 5, 7.0
    want = (80 ** (1 / rho) + i / 17 * (0.002 ** (1 / rho) - 80 ** (1 / rho))) ** rho
    assert s[i].item() == pytest.approx(want, rel=1e-12)
    ve = edm.sampler_sigmas(edm.Precond(torch.nn.Identity(), "ve"), 18)
    assert ve[0].item() == pytest.approx(80.0) and ve[-2].item() == pytest.approx(0.02)
    vp = edm.Precond(torch.nn.Identity(), "vp")
    assert vp.sigma_min == 2.0**-10 and vp.sigma_max == pytest.approx(152.17, rel=1e-3)  # EDM's float32 sigma(1e-5)
    assert edm.sampler_sigmas(vp, 18)[-2].item() == pytest.approx(0.002)
    assert edm.sigma_steps(1).tolist() == [80.0, 0.0]


def test_edm_sampler_bad_inputs():
    D = GaussianDenoiser(MU, S)
    with pytest.raises(ValueError, match="strictly decreasing"):
        edm.heun_sample(D, torch.randn(2, 3), [0.0, 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        edm.euler_sample(D, torch.randn(2, 3), [1.0, -0.5])
    with pytest.raises(ValueError, match="1-D"):
        edm.heun_sample(D, torch.randn(2, 3), [1.0])
    with pytest.raises(ValueError, match="num_steps"):
        edm.sigma_steps(0)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        edm.sigma_steps(10, sigma_min=1.0, sigma_max=0.5)
    assert math.isfinite(edm.sigma_steps(10, sigma_min=0.0)[-2].item())
