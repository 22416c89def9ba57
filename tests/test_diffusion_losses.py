"""Preconditioning closed forms, the losses with the spectral hook, weighting, pickling and bad inputs."""

import io
import math
import pickle

import pytest
import torch
from torch import nn

from specreg_lib.diffusion import Regularizer, ddpm, edm
from specreg_lib.diffusion.schedules import DDPMSchedule
from specreg_lib.diffusion.weighting import SpectralWeighting, as_weighting, spectral_weight
from specreg_lib.spectral import SpectralLoss

SIGMAS = [0.002, 0.1, 0.5, 1.0, 3.7, 80.0]


class L1Spectral:
    """Picklable test double of SpectralLoss: per-sample mean |x0_hat - x0|; records what it was given."""

    def __init__(self):
        self.seen = []

    def __call__(self, x0_hat, x0):
        self.seen.append((x0_hat.requires_grad, x0.requires_grad))
        return (x0_hat - x0).abs().flatten(1).mean(1)


class TinyNet(nn.Module):
    """A picklable net usable as DDPM eps-net (x, t) and as raw EDM net F(x, c_noise)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x, t):
        return self.conv(x) * (1 + 1e-3 * t.float().reshape(-1, 1, 1, 1))


LOSSES = {
    "ddpm": lambda **kw: ddpm.DDPMLoss(DDPMSchedule.from_kind("linear", T=100), **kw),
    "ddpm_l1_v": lambda **kw: ddpm.DDPMLoss(DDPMSchedule.from_kind("cosine", T=100), parametrization="v",
                                            norm="l1", **kw),
    "edm": lambda **kw: edm.EDMLoss(**kw),
    "vp": lambda **kw: edm.VPLoss(**kw),
    "ve": lambda **kw: edm.VELoss(**kw),
}


def model_for(name):
    torch.manual_seed(0)
    net = TinyNet()
    return net if name.startswith("ddpm") else edm.Precond(net, name)


def run(loss, model, seed=0, **kw):
    x0 = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(123))
    return loss(model, x0, generator=torch.Generator().manual_seed(seed), **kw)


# ---------------------------------------------------------------- preconditioning


@pytest.mark.parametrize("sigma", SIGMAS)
def test_preconditioning_closed_forms(sigma):
    sd = 0.5
    c = [v.item() for v in edm.preconditioning("edm", torch.tensor(sigma, dtype=torch.float64), sd)]
    want = [sd**2 / (sigma**2 + sd**2), sigma * sd / math.sqrt(sigma**2 + sd**2),
            1 / math.sqrt(sigma**2 + sd**2), math.log(sigma) / 4]
    assert c == pytest.approx(want, rel=1e-12)
    lam = (sigma**2 + sd**2) / (sigma * sd) ** 2
    assert lam * c[1] ** 2 == pytest.approx(1.0)  # EDM: lambda c_out^2 = 1
    c = [v.item() for v in edm.preconditioning("ve", sigma)]
    assert c == pytest.approx([1.0, sigma, 1.0, math.log(sigma / 2)], rel=1e-12)
    c = [v.item() for v in edm.preconditioning("vp", sigma)]
    t = (math.sqrt(0.1**2 + 2 * 19.9 * math.log1p(sigma**2)) - 0.1) / 19.9
    assert c == pytest.approx([1.0, -sigma, 1 / math.sqrt(sigma**2 + 1), 999 * t], rel=1e-10)
    assert edm.vp_sigma(t).item() == pytest.approx(sigma, rel=1e-9)  # sigma(t) inverts sigma^-1


def test_preconditioning_shapes_and_errors():
    s = torch.tensor(SIGMAS).reshape(-1, 1, 1, 1)
    for kind in edm.KINDS:
        assert all(c.shape == s.shape for c in edm.preconditioning(kind, s))
    with pytest.raises(ValueError, match="unknown preconditioning kind"):
        edm.preconditioning("iddpm", 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        edm.preconditioning("edm", -0.1)


def test_precond_wraps_raw_net():
    calls = {}

    def raw(x_in, c_noise, cond=None):
        calls.update(x_in=x_in, c_noise=c_noise, cond=cond)
        return torch.full_like(x_in, 2.0)

    x, sigma = torch.randn(3, 2, 4, 4), torch.tensor([0.1, 1.0, 10.0])
    D = edm.Precond(raw, "edm")(x, sigma, cond="label")
    c_skip, c_out, c_in, c_noise = edm.preconditioning("edm", sigma.reshape(-1, 1, 1, 1))
    torch.testing.assert_close(D, c_skip * x + c_out * 2.0)
    torch.testing.assert_close(calls["x_in"], c_in * x)
    assert calls["c_noise"].shape == (3,) and calls["cond"] == "label"
    # scalar and (B, 1, 1, 1) sigma are accepted; others fail clearly.
    P = edm.Precond(raw, "ve")
    assert P(x, 0.5).shape == x.shape and P(x, sigma.reshape(3, 1, 1, 1)).shape == x.shape
    for bad in (torch.ones(2), torch.ones(3, 2), torch.ones(3, 1, 2, 1)):
        with pytest.raises(ValueError, match="cannot be read as per-sample"):
            P(x, bad)
    with pytest.raises(ValueError, match=">= 0"):
        P(x, torch.tensor([0.1, -1.0, 1.0]))
    with pytest.raises(ValueError, match="unknown preconditioning kind"):
        edm.Precond(raw, "karras")


# ---------------------------------------------------------------- losses and the hook


@pytest.mark.parametrize("name", list(LOSSES))
def test_lambda_zero_equals_baseline_bit_for_bit(name):
    model = model_for(name)
    base = run(LOSSES[name](), model)
    assert base.shape == (8,) and base.dtype == torch.float32
    spec = L1Spectral()
    assert torch.equal(run(LOSSES[name](regularizer=Regularizer(spec, lambda_spec=0.0)), model), base)
    assert torch.equal(run(LOSSES[name](regularizer=None), model), base)
    assert spec.seen == []  # the spectral term is not even evaluated
    on = run(LOSSES[name](regularizer=Regularizer(L1Spectral(), lambda_spec=0.1, weighting="unweighted")), model)
    assert bool((on > base).all())


@pytest.mark.parametrize("name", list(LOSSES))
def test_hook_adds_weighted_term_on_x0_hat_only(name):
    model, spec = model_for(name), L1Spectral()
    loss = LOSSES[name](regularizer=Regularizer(spec, lambda_spec=0.3, weighting="weighted"))
    parts = run(loss, model, return_parts=True)
    torch.testing.assert_close(parts["loss"], parts["diffusion"] + 0.3 * parts["weight"] * parts["spectral"])
    torch.testing.assert_close(parts["diffusion"], run(LOSSES[name](), model))
    assert spec.seen == [(True, False)]  # x0_hat carries the graph, x0 is a detached target
    assert not parts["weight"].requires_grad
    # The gradient of the total minus the baseline is exactly that of the spectral term through x0_hat.
    params = list(model.parameters())
    g_tot = torch.autograd.grad(parts["loss"].sum(), params, retain_graph=True)
    g_diff = torch.autograd.grad(parts["diffusion"].sum(), params, retain_graph=True)
    g_spec = torch.autograd.grad((0.3 * parts["weight"] * parts["spectral"]).sum(), params)
    for a, b, c in zip(g_tot, g_diff, g_spec):
        torch.testing.assert_close(a, b + c)
        assert c.abs().sum() > 0


def test_x0_requiring_grad_is_detached_in_spectral_target():
    spec = L1Spectral()
    x0 = torch.randn(4, 1, 8, 8, requires_grad=True)
    edm.EDMLoss(regularizer=Regularizer(spec, lambda_spec=1.0))(edm.Precond(TinyNet()), x0)
    assert spec.seen == [(True, False)]


def test_weights_per_formulation():
    x0 = torch.randn(16, 1, 4, 4)
    sd = 0.5
    reg = Regularizer(L1Spectral(), lambda_spec=1.0)
    p = edm.EDMLoss(regularizer=reg)(edm.Precond(TinyNet()), x0, return_parts=True)
    s = p["sigma"]
    torch.testing.assert_close(p["weight"], (s**2 + sd**2) / (s * sd) ** 2)  # lambda_EDM, the paper's
    p = edm.VELoss(regularizer=reg)(edm.Precond(TinyNet(), "ve"), x0, return_parts=True)
    torch.testing.assert_close(p["weight"], 1 / p["sigma"] ** 2)
    assert bool((p["sigma"] >= 0.02).all() and (p["sigma"] <= 100).all())
    sch = DDPMSchedule.from_kind("linear", T=1000)
    loss = ddpm.DDPMLoss(sch, regularizer=Regularizer(L1Spectral(), lambda_spec=1.0, weighting="weighted"))
    p = loss(TinyNet(), x0, return_parts=True)
    torch.testing.assert_close(p["weight"], sch.snr(p["t"]).float())
    p = ddpm.DDPMLoss(sch, regularizer=Regularizer(L1Spectral(), lambda_spec=1.0))(TinyNet(), x0, return_parts=True)
    torch.testing.assert_close(p["weight"], sch.alpha_bar_at(p["t"]).float())  # the DDPM default
    assert ddpm.DDPMLoss(sch).weighting.kind == "alpha_bar" and edm.EDMLoss().weighting.kind == "weighted"


def test_weighting_kinds():
    sigma = torch.tensor([0.1, 0.5, 1.0, 10.0])
    lam = torch.tensor([1.0, 2.0, 3.0, 4.0])
    t = torch.tensor([1, 5, 50, 500])
    assert torch.equal(spectral_weight("unweighted", sigma, lam), torch.ones(4))
    assert torch.equal(spectral_weight("weighted", sigma, lam), lam)
    torch.testing.assert_close(spectral_weight("min_snr", sigma, lam, gamma=5.0),
                               torch.tensor([5.0, 4.0, 1.0, 0.01]))
    torch.testing.assert_close(spectral_weight("alpha_bar", sigma, lam), 1 / (1 + sigma**2))
    assert spectral_weight("t_gate", sigma, lam, t, t_max=50).tolist() == [1, 1, 1, 0]
    assert spectral_weight("t_gate", sigma, lam, sigma_gate=0.5).tolist() == [1, 1, 0, 0]
    with pytest.raises(ValueError, match="unknown weighting"):
        SpectralWeighting("snr")
    with pytest.raises(ValueError, match="t_gate needs"):
        SpectralWeighting("t_gate")
    with pytest.raises(ValueError, match="only apply"):
        SpectralWeighting("weighted", t_max=3)
    with pytest.raises(ValueError, match="needs DDPM step"):
        spectral_weight("t_gate", sigma, lam, t_max=3)
    with pytest.raises(TypeError, match="unknown weighting options"):
        as_weighting("min_snr", gama=5)
    with pytest.raises(ValueError, match="unknown weighting"):
        Regularizer("amp", weighting="snr")  # validated when the value is built, not at the first step


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_pickle(name):
    loss = LOSSES[name](regularizer=Regularizer(L1Spectral(), 0.5, SpectralWeighting("min_snr", gamma=2.0)))
    model = model_for(name)
    back = pickle.loads(pickle.dumps(loss))
    torch.testing.assert_close(run(back, model), run(loss, model))
    buf = io.BytesIO()
    torch.save(model, buf)  # Precond around a module is a plain nn.Module
    assert "min_snr" in repr(back)


def test_bad_loss_inputs():
    sch = DDPMSchedule.from_kind("linear", T=10)
    with pytest.raises(ValueError, match="parametrization"):
        ddpm.DDPMLoss(sch, parametrization="score")
    with pytest.raises(ValueError, match="norm"):
        ddpm.DDPMLoss(sch, norm="huber")
    for bad in (-1.0, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match="lambda_spec"):
            Regularizer(L1Spectral(), lambda_spec=bad)
    with pytest.raises(TypeError, match="Regularizer"):
        edm.EDMLoss(regularizer="amp")
    with pytest.raises(TypeError, match="callable"):
        Regularizer(3, lambda_spec=1.0)
    with pytest.raises(ValueError, match="unknown spectral loss kind"):
        Regularizer("amp_phse")
    with pytest.raises(TypeError, match="unknown option"):
        Regularizer("wavelet", options={"wav": "haar"})
    with pytest.raises(TypeError, match="built-in kinds"):
        Regularizer(L1Spectral(), options={"norm": "ortho"})
    with pytest.raises(TypeError, match="DDPMSchedule"):
        ddpm.DDPMLoss(sch.betas)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        edm.VELoss(sigma_min=1.0, sigma_max=0.1)

    def per_element(x0_hat, x0):
        return (x0_hat - x0).abs()

    with pytest.raises(ValueError, match="per-sample"):
        loss = edm.EDMLoss(regularizer=Regularizer(per_element, lambda_spec=1.0))
        loss(edm.Precond(TinyNet()), torch.randn(2, 1, 4, 4))
    x = torch.randn(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        ddpm.q_sample(sch, x, torch.tensor([0, 10]), x)
    with pytest.raises(ValueError, match="shape"):
        ddpm.predict_eps_x0(sch, x, x, torch.tensor([1, 2, 3]))


def test_parametrisations_round_trip():
    sch = DDPMSchedule.from_kind("cosine", T=50)
    x0, eps = torch.randn(6, 3, 4, dtype=torch.float64), torch.randn(6, 3, 4, dtype=torch.float64)
    t = torch.tensor([0, 3, 10, 25, 40, 49])
    x_t = ddpm.q_sample(sch, x0, t, eps)
    ab = sch.alpha_bar_at(t).reshape(-1, 1, 1)
    outputs = {"eps": eps, "x0": x0, "v": ab.sqrt() * eps - (1 - ab).sqrt() * x0}
    for p, out in outputs.items():
        e, x = ddpm.predict_eps_x0(sch, out, x_t, t, p)
        torch.testing.assert_close(e, eps)
        torch.testing.assert_close(x, x0)


def test_real_spectral_loss_amp():
    for name in ("ddpm", "edm"):
        model = model_for(name)
        base = run(LOSSES[name](), model)
        loss = LOSSES[name](regularizer=Regularizer("amp", lambda_spec=1e-2))
        assert loss.spectral == SpectralLoss("amp")
        assert torch.equal(run(LOSSES[name](regularizer=Regularizer("amp", lambda_spec=0.0)), model), base)
        parts = run(pickle.loads(pickle.dumps(loss)), model, return_parts=True)
        assert parts["spectral"].shape == (8,) and bool((parts["spectral"] > 0).all())
        parts["loss"].sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_regularizer_is_one_picklable_json_value():
    reg = Regularizer("wavelet", 0.5, SpectralWeighting("t_gate", sigma_gate=2.0), {"wave": "bior1.3", "levels": 2})
    assert reg.name == "bior1.3" and Regularizer("amp_phase").name == "amp_phase"
    import json
    back = Regularizer.from_dict(json.loads(json.dumps(reg.to_dict())))
    assert back == reg and pickle.loads(pickle.dumps(reg)) == reg
    assert Regularizer("amp", weighting="min_snr").weighting == SpectralWeighting("min_snr")
    with pytest.raises(ValueError, match="unknown Regularizer field"):
        Regularizer.from_dict({**reg.to_dict(), "lam": 1})
    with pytest.raises(TypeError, match="JSON"):
        Regularizer(L1Spectral()).to_dict()
    # None weighting = the loss's own default, resolved by each formulation
    assert ddpm.DDPMLoss(DDPMSchedule.from_kind("linear", T=10), regularizer=Regularizer("amp")).weighting.kind \
        == "alpha_bar"
    assert edm.EDMLoss(regularizer=Regularizer("amp")).weighting.kind == "weighted"
    loss = edm.EDMLoss(regularizer=Regularizer("amp", 2.0, "unweighted"))
    assert loss.lambda_spec == 2.0 and loss.weighting.kind == "unweighted" and loss.spectral == SpectralLoss("amp")
