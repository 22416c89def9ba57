"""The drop-in API (diffusion/hook.py, schedules' constructors, term_balance): a diffusers loop with the
term added in three lines, schedules equal to diffusers', the mix-ups refused, sigma shapes, and the drop-in
term equal bit for bit to what DDPMLoss / EDMLoss add internally."""

from __future__ import annotations

import pickle

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel

from specreg_lib.data.patches import ImagePatches
from specreg_lib.diffusion import (
    DDPMLoss,
    DDPMSchedule,
    EDMLoss,
    Precond,
    Regularizer,
    VPLoss,
    diffusers_parametrization,
    predict_eps_x0,
    spectral_term,
    term_balance,
    time_weight,
)


def tiny_unet(seed: int = 0) -> UNet2DModel:
    torch.manual_seed(seed)
    return UNet2DModel(sample_size=16, in_channels=1, out_channels=1, block_out_channels=(16, 32),
                       layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=8)


def test_diffusers_loop_with_the_term_added_in_three_lines():
    unet, scheduler = tiny_unet(), DDPMScheduler(num_train_timesteps=1000)
    opt = torch.optim.Adam(unet.parameters(), lr=2e-3)
    g, data = torch.Generator().manual_seed(0), ImagePatches(size=16, scale=2)
    schedule, reg = DDPMSchedule.from_diffusers(scheduler), Regularizer("amp", lambda_spec=0.1)  # added line 1
    losses, terms = [], []
    for _ in range(12):
        x0 = data(16, g)
        noise, t = torch.randn(x0.shape, generator=g), torch.randint(0, 1000, (16,), generator=g)
        x_t = scheduler.add_noise(x0, noise, t)
        out = unet(x_t, t).sample
        loss = (out - noise).square().mean(dim=(1, 2, 3))
        eps_mse = loss.detach()  # (test bookkeeping)
        _, x0_hat = predict_eps_x0(schedule, out, x_t, t)  # added line 2
        loss = loss + reg(x0_hat, x0, t=t, schedule=schedule)  # added line 3
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
        losses.append(loss.mean().item())
        terms.append((loss.detach() - eps_mse).mean().item())
    assert sum(losses[-3:]) < 0.5 * sum(losses[:3]), losses
    assert all(v > 0 for v in terms)  # the term is really in the loss (amplitude L1 of an imperfect x0_hat)


@pytest.mark.parametrize("kw", [{"beta_schedule": "linear"}, {"beta_schedule": "scaled_linear"},
                                {"beta_schedule": "squaredcos_cap_v2"},
                                {"beta_schedule": "linear", "rescale_betas_zero_snr": True}],
                         ids=["linear", "scaled_linear", "squaredcos_cap_v2", "zero_snr"])
def test_schedule_from_diffusers_equals_alphas_cumprod(kw):
    scheduler = DDPMScheduler(num_train_timesteps=1000, **kw)
    sch = DDPMSchedule.from_diffusers(scheduler)
    ref = scheduler.alphas_cumprod.double()
    torch.testing.assert_close(sch.alpha_bar, ref, rtol=0, atol=0)  # kept exactly as given
    torch.testing.assert_close(torch.cumprod(1 - sch.betas, 0), ref, rtol=1e-12, atol=1e-15)  # consistent betas
    torch.testing.assert_close(sch.betas, scheduler.betas.double(), rtol=1e-5, atol=2e-7)  # float32 betas
    assert sch.zero_terminal_snr == bool(kw.get("rescale_betas_zero_snr", False))
    t = torch.tensor([0, 1, 500, 999])
    torch.testing.assert_close(sch.alpha_bar_at(t), ref[t])
    assert pickle.loads(pickle.dumps(sch)).alpha_bar.equal(sch.alpha_bar)


def test_schedule_constructors_agree_and_mixups_are_refused():
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    a, b = DDPMSchedule.from_betas(betas), DDPMSchedule.from_alphas_cumprod(torch.cumprod(1 - betas, 0))
    torch.testing.assert_close(a.alpha_bar, b.alpha_bar, rtol=0, atol=0)
    torch.testing.assert_close(a.betas, b.betas, rtol=1e-9, atol=1e-15)
    with pytest.raises(ValueError, match="look like alphas_cumprod.*from_alphas_cumprod"):
        DDPMSchedule(a.alpha_bar)  # alphas_cumprod passed as betas
    with pytest.raises(ValueError, match="look like betas.*DDPMSchedule\\(betas\\)"):
        DDPMSchedule.from_alphas_cumprod(betas)  # betas passed as alphas_cumprod
    with pytest.raises(ValueError, match="the last may be exactly 1"):
        DDPMSchedule([0.1, 1.0, 0.2])  # beta = 1 anywhere but last
    with pytest.raises(ValueError, match="decrease strictly"):
        DDPMSchedule.from_alphas_cumprod([0.9, 0.9, 0.5])
    with pytest.raises(TypeError, match="no alphas_cumprod"):
        DDPMSchedule.from_diffusers(object())
    assert diffusers_parametrization(DDPMScheduler(prediction_type="v_prediction")) == "v"
    assert diffusers_parametrization(DDPMScheduler()) == "eps"


def test_check_t_validates_on_cpu_without_changing_values():
    sch = DDPMSchedule.from_kind("linear", T=10)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        sch.check_t(torch.tensor([3, 10]))
    with pytest.raises(TypeError, match="integer"):
        sch.check_t(torch.tensor([1.0]))
    assert sch.check_t(torch.tensor([0, 9], dtype=torch.int32)).dtype == torch.long


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: checks that a loss step never syncs")
def test_no_host_sync_in_a_ddpm_and_edm_step():
    dev = torch.device("cuda")
    sch, reg = DDPMSchedule.from_kind("linear"), Regularizer("amp", lambda_spec=0.5)
    x0 = torch.randn(4, 1, 16, 16, device=dev)
    net = torch.nn.Conv2d(1, 1, 3, padding=1).to(dev)
    ddpm, edm = DDPMLoss(sch, regularizer=reg), EDMLoss(regularizer=reg)
    ddpm(lambda x, t: net(x), x0)  # warm-up: the schedule's device table is copied once, here
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        ddpm(lambda x, t: net(x), x0).mean().backward()
        edm(lambda x, s: net(x), x0).mean().backward()
        edm(Precond(lambda x, c_noise: net(x), "edm"), x0).mean().backward()
        t = torch.randint(0, 1000, (4,), device=dev)
        reg(x0 + 0.1, x0, t=t, schedule=sch)
        reg(x0 + 0.1, x0, sigma=torch.rand(4, device=dev))
    finally:
        torch.cuda.set_sync_debug_mode("default")


class Recording(torch.nn.Module):
    """A small conv net that remembers its last inputs and output (to recompute the term outside the loss)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x, s):
        self.seen = (x, s)
        self.out = self.conv(x) * 0.5
        return self.out


@pytest.mark.parametrize("weighting", [None, "unweighted", "weighted", "min_snr"])
@pytest.mark.parametrize("kind", ["amp", "amp_phase"])
def test_drop_in_term_equals_what_the_losses_add(kind, weighting):
    x0 = ImagePatches(size=16, scale=2)(4, torch.Generator().manual_seed(1))
    reg = Regularizer(kind, lambda_spec=0.3, weighting=weighting)
    sch, net = DDPMSchedule.from_kind("cosine"), Recording()
    for param in ("eps", "v"):
        p = DDPMLoss(sch, parametrization=param, regularizer=reg)(net, x0, generator=torch.Generator().manual_seed(2),
                                                                  return_parts=True)
        x_t, t = net.seen
        _, x0_hat = predict_eps_x0(sch, net.out, x_t, t, param)
        term = reg(x0_hat, x0, t=t, schedule=sch)
        assert torch.equal(p["loss"], p["diffusion"] + term)
        assert torch.equal(reg.weight(t=t, schedule=sch, like=x0), p["weight"])
    for loss in (EDMLoss(regularizer=reg), VPLoss(regularizer=reg)):
        p = loss(net, x0, generator=torch.Generator().manual_seed(3), return_parts=True)
        _, sigma = net.seen
        lam = loss.weight(sigma).flatten() if isinstance(loss, VPLoss) else None  # EDM's lambda is the default
        term = reg(net.out, x0, sigma=sigma, lam=lam)
        assert torch.equal(p["loss"], p["diffusion"] + term)


def test_sigma_shapes_give_the_same_term():
    x0 = ImagePatches(size=16, scale=2)(3, torch.Generator().manual_seed(4))
    x0_hat = x0 + 0.1 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))
    sigma = torch.tensor([0.05, 0.7, 12.0])
    for weighting in ("weighted", "unweighted", "min_snr", "alpha_bar"):
        reg = Regularizer("wavelet", lambda_spec=2.0, weighting=weighting, options={"levels": 2})
        flat = reg(x0_hat, x0, sigma=sigma)
        assert torch.equal(flat, reg(x0_hat, x0, sigma=sigma.view(3, 1, 1, 1)))
        assert torch.equal(flat, spectral_term(reg, x0_hat, x0, sigma=sigma))
        assert flat.shape == (3,)
    same = Regularizer("amp")(x0_hat, x0, sigma=0.7)
    assert torch.equal(same, Regularizer("amp")(x0_hat, x0, sigma=torch.full((3,), 0.7)))
    with pytest.raises(ValueError, match="one noise level per sample"):
        Regularizer("amp")(x0_hat, x0, sigma=torch.ones(3, 2))
    with pytest.raises(ValueError, match="give the noise level once"):
        Regularizer("amp")(x0_hat, x0)
    with pytest.raises(TypeError, match="from_diffusers"):
        Regularizer("amp")(x0_hat, x0, t=torch.tensor([1, 2, 3]))


def test_time_weight_from_t_is_the_documented_formula():
    sch, t = DDPMSchedule.from_kind("linear"), torch.tensor([0, 10, 500, 999])
    like = torch.zeros(4, 1, 8, 8)
    torch.testing.assert_close(time_weight("alpha_bar", t=t, schedule=sch, like=like),
                               sch.alpha_bar_at(t).float())
    torch.testing.assert_close(time_weight("weighted", t=t, schedule=sch, like=like), sch.snr(t).float())
    torch.testing.assert_close(time_weight("weighted", t=t, schedule=sch, like=like, norm="l1"),
                               sch.snr(t).sqrt().float())
    s = torch.tensor([0.1, 1.0, 3.0, 80.0])
    torch.testing.assert_close(time_weight(None, sigma=s, like=like), (s**2 + 0.25) / (0.5 * s) ** 2)


def test_zero_terminal_snr_last_step_is_excluded_and_finite():
    sch = DDPMSchedule.from_diffusers(DDPMScheduler(rescale_betas_zero_snr=True))
    x0 = ImagePatches(size=16, scale=2)(2, torch.Generator().manual_seed(6))
    t = torch.tensor([sch.T - 1, 500])
    out = torch.randn(x0.shape, requires_grad=True)
    x_t = torch.randn(x0.shape)
    _, x0_hat = predict_eps_x0(sch, out, x_t, t, "eps")
    assert torch.isfinite(x0_hat).all() and torch.equal(x0_hat[0], torch.zeros_like(x0_hat[0]))
    _, x0_v = predict_eps_x0(sch, out, x_t, t, "v")
    torch.testing.assert_close(x0_v[0], -out[0])  # v defines x0_hat at alpha_bar = 0: -v
    for weighting in ("unweighted", "alpha_bar", "weighted", "min_snr"):
        parts = Regularizer("amp", weighting=weighting)(x0_hat, x0, t=t, schedule=sch, return_parts=True)
        assert parts["weight"][0] == 0 and parts["weight"][1] > 0 and torch.isfinite(parts["term"]).all()
    parts["term"].sum().backward()
    assert torch.isfinite(out.grad).all() and torch.equal(out.grad[0], torch.zeros_like(out.grad[0]))
    loss = DDPMLoss(sch, regularizer=Regularizer("amp", weighting="unweighted"))
    assert torch.isfinite(loss(lambda x, t: torch.zeros_like(x), x0.repeat(64, 1, 1, 1))).all()


def test_diffusers_models_work_and_other_objects_name_the_adapter():
    unet, x0 = tiny_unet(), torch.zeros(2, 1, 16, 16)
    reg = Regularizer("amp")
    assert DDPMLoss(DDPMSchedule.from_kind("linear"), regularizer=reg)(unet, x0).shape == (2,)
    assert EDMLoss(regularizer=reg)(Precond(unet), x0).shape == (2,)  # Precond unwraps UNet2DOutput
    with pytest.raises(TypeError, match=r"net = lambda x, t: unet\(x, t\)\[0\]"):
        DDPMLoss(DDPMSchedule.from_kind("linear"))(lambda x, t: (x,), x0)


def test_term_balance_measures_the_two_gradients():
    x0 = ImagePatches(size=16, scale=2)(8, torch.Generator().manual_seed(7))
    net, reg = Precond(Recording()), Regularizer("amp")
    b = term_balance(EDMLoss(regularizer=reg), net, x0, generator=torch.Generator().manual_seed(8),
                     target_ratio=0.2)
    # Cross-check: the gradient of (loss at lambda_spec = 1) - (baseline loss) on the same draw is the
    # spectral term's gradient.
    full = EDMLoss(regularizer=reg)(net, x0, generator=torch.Generator().manual_seed(8)).mean()
    base = EDMLoss()(net, x0, generator=torch.Generator().manual_seed(8)).mean()
    params = list(net.parameters())
    g_full, g_base = torch.autograd.grad(full, params), torch.autograd.grad(base, params)
    g_spec = torch.cat([(a - b_).flatten() for a, b_ in zip(g_full, g_base)]).norm().item()
    assert b["grad_spectral"] == pytest.approx(g_spec, rel=1e-4)
    assert b["grad_diffusion"] == pytest.approx(torch.cat([g.flatten() for g in g_base]).norm().item(), rel=1e-5)
    assert b["lambda_spec"] * b["grad_spectral"] == pytest.approx(0.2 * b["grad_diffusion"], rel=1e-9)
    # Linear in the spectral loss: twice L_S, twice the size and gradient.
    double = Regularizer(Twice())
    b2 = term_balance(EDMLoss(regularizer=double), net, x0, generator=torch.Generator().manual_seed(8))
    assert b2["spectral"] == pytest.approx(2 * b["spectral"], rel=1e-5)
    assert b2["grad_spectral"] == pytest.approx(2 * b["grad_spectral"], rel=1e-4)
    with pytest.raises(ValueError, match="with a regularizer"):
        term_balance(EDMLoss(), net, x0)


class Twice:
    """2 x the amplitude loss (picklable, module level)."""

    def __call__(self, x0_hat, x0):
        from specreg_lib.spectral import amplitude_loss

        return 2 * amplitude_loss(x0_hat, x0)
