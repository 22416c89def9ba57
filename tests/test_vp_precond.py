"""VP preconditioning as EDM's VPPrecond computes it (``vp_form="edm"``, the default: the official VP nets were
trained on it) and the exact functions (``vp_form="accurate"``), against EDM's float32 formula written out here
(edm.md 1a) and a 50-digit ``decimal`` reference."""

from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
import torch

from specreg_lib.diffusion import edm
from specreg_lib.models.edm_precond import build_denoiser
from specreg_lib.models.songunet import DDPMPP

BETA_D, BETA_MIN, M, EPSILON_T = 19.9, 0.1, 1000, 1e-5
# 0.002..80 (the sampler's range) log-spaced, plus the small sigmas where float32 rounding of 1 + sigma^2 bites.
SIGMAS = torch.cat([torch.logspace(-2.69897, 1.90309, 97, dtype=torch.float64),
                    torch.tensor([0.002, 0.0021, 0.0025, 0.003, 0.005, 0.01, 1.0, 80.0], dtype=torch.float64)])


def edm_sigma_inv_f32(sigma: torch.Tensor) -> torch.Tensor:
    """EDM VPPrecond.sigma_inv (edm.md 1a) on float32 tensors: ln of the rounded 1 + sigma^2, sqrt(.) - beta_min."""
    assert sigma.dtype == torch.float32
    return ((BETA_MIN**2 + 2 * BETA_D * (1 + sigma**2).log()).sqrt() - BETA_MIN) / BETA_D


def edm_sigma_f32(t: float) -> float:
    """EDM VPPrecond.sigma (edm.md 1a) on a float32 tensor: sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1)."""
    t32 = torch.tensor(t, dtype=torch.float32)
    return float(((0.5 * BETA_D * t32**2 + BETA_MIN * t32).exp() - 1).sqrt())


def exact_sigma_inv(sigma: float) -> float:
    """t(sigma) in 50-digit decimal arithmetic from sigma's exact binary value."""
    with localcontext() as ctx:
        ctx.prec = 50
        s, bd, bm = Decimal(sigma), Decimal(BETA_D), Decimal(BETA_MIN)
        return float(((bm * bm + 2 * bd * (1 + s * s).ln()).sqrt() - bm) / bd)


def exact_sigma(t: float) -> float:
    """sigma(t) in 50-digit decimal arithmetic."""
    with localcontext() as ctx:
        ctx.prec = 50
        t_, bd, bm = Decimal(t), Decimal(BETA_D), Decimal(BETA_MIN)
        return float(((bd * t_ * t_ / 2 + bm * t_).exp() - 1).sqrt())


def test_default_c_noise_is_edms_float32_formula_bit_for_bit():
    s32 = SIGMAS.float()
    want = (M - 1) * edm_sigma_inv_f32(s32)
    assert torch.equal(edm.preconditioning("vp", s32)[3], want)
    assert torch.equal(edm.vp_sigma_inv(s32), edm_sigma_inv_f32(s32))
    # What the net sees: Precond on float32 x, and EDMDenoiser, which casts a float64 sigma to float32 as EDM does.
    seen = []

    def raw(x_in, c_noise, *args, **kwargs):
        seen.append(c_noise)
        return torch.zeros_like(x_in)

    x = torch.zeros(len(s32), 1, 2, 2)
    edm.Precond(raw, "vp")(x, s32)
    net = build_denoiser("VPPrecond", dict(img_resolution=8, img_channels=3, model_type="SongUNet",
                                           **dict(DDPMPP, model_channels=8, channel_mult=[1], num_blocks=1,
                                                  attn_resolutions=[])))
    net.model.forward = raw
    net(torch.zeros(len(s32), 3, 8, 8, dtype=torch.float64), SIGMAS)
    assert torch.equal(seen[0], want) and torch.equal(seen[1], want)


def test_edm_form_keeps_edms_rounding_and_accurate_form_is_exact():
    s32 = SIGMAS.float()
    truth = torch.tensor([exact_sigma_inv(s) for s in s32.tolist()], dtype=torch.float64)
    rel_edm = (edm.vp_sigma_inv(s32).double() / truth - 1).abs()
    rel_acc = (edm.vp_sigma_inv(s32, form="accurate").double() / truth - 1).abs()
    # EDM's float32 1 + sigma^2 keeps few bits of sigma^2 at small sigma: 1.3% off at 0.002, as the nets saw.
    assert 0.01 < float(rel_edm[s32 == 0.002][0]) < 0.02
    assert float(rel_acc.max()) < 4 * 2.0**-24  # a few float32 ulp at every sigma, 0.002..80
    s64 = SIGMAS
    truth64 = torch.tensor([exact_sigma_inv(s) for s in s64.tolist()], dtype=torch.float64)
    acc64 = edm.vp_sigma_inv(s64, form="accurate")
    assert float((acc64 / truth64 - 1).abs().max()) < 8 * 2.0**-53
    c_noise = edm.preconditioning("vp", s64, vp_form="accurate")[3]
    assert torch.allclose(c_noise, (M - 1) * truth64, rtol=8 * 2.0**-53, atol=0)


def test_vp_sigma_range_is_edms():
    net = edm.Precond(torch.nn.Identity(), "vp")
    # EDM: float(sigma(epsilon_t)) with exp() - 1 in float32: exp(1.000001e-6) rounds to 1 + 2^-20, so 2^-10.
    assert net.sigma_min == edm_sigma_f32(EPSILON_T) == 2.0**-10
    assert edm.vp_sigma(EPSILON_T, form="edm").item() == 2.0**-10
    assert net.sigma_max == edm_sigma_f32(1.0)
    assert net.sigma_max == pytest.approx(exact_sigma(1.0), rel=2.0**-22)
    acc = edm.Precond(torch.nn.Identity(), "vp", vp_form="accurate")
    assert acc.sigma_min == pytest.approx(exact_sigma(EPSILON_T), rel=1e-14)
    assert acc.sigma_max == pytest.approx(exact_sigma(1.0), rel=1e-14)
    assert acc.sigma_min == pytest.approx(0.0010005, rel=1e-4) and abs(net.sigma_min / acc.sigma_min - 1) > 0.02
    # A VPPrecond pickle's epsilon_t reaches the range (EDM computes sigma_min from it).
    kw = dict(img_resolution=8, img_channels=3, epsilon_t=1e-3, model_type="SongUNet",
              **dict(DDPMPP, model_channels=8, channel_mult=[1], num_blocks=1, attn_resolutions=[]))
    assert build_denoiser("VPPrecond", kw).sigma_min == edm_sigma_f32(1e-3)


def test_sampler_clamps_to_edms_vp_range():
    sigmas = edm.sampler_sigmas(edm.Precond(torch.nn.Identity(), "vp"), 18, sigma_min=0.0005, sigma_max=1000.0)
    assert sigmas[-2].item() == pytest.approx(2.0**-10, rel=1e-12)
    assert sigmas[0].item() == pytest.approx(edm_sigma_f32(1.0), rel=1e-12)


def test_unknown_vp_form_is_refused():
    with pytest.raises(ValueError, match=r"unknown VP arithmetic 'fast'.*'edm', 'accurate'"):
        edm.Precond(torch.nn.Identity(), "vp", vp_form="fast")
    with pytest.raises(ValueError, match="unknown VP arithmetic"):
        edm.vp_sigma_inv(torch.tensor([0.1]), form="log1p")
    with pytest.raises(ValueError, match="unknown VP arithmetic"):
        edm.preconditioning("vp", 0.1, vp_form="EDM")
