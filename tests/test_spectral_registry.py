"""A new spectral loss is one function plus ``register_kind``: SpectralLoss, Regularizer (JSON), DDPMLoss, configs."""

import dataclasses
import json
import pickle

import pytest
import torch

from specreg_lib.diffusion import DDPMLoss, DDPMSchedule, Regularizer, beta_schedule
from specreg_lib.experiments import EXPERIMENTS
from specreg_lib.experiments.core.config import from_dict, to_dict
from specreg_lib.spectral import KINDS, SpectralLoss, register_kind


def pixel_l1(x0_hat: torch.Tensor, x0: torch.Tensor, *, scale: float = 1.0, check_finite: bool = True,
             bins: str = "mean") -> torch.Tensor:
    """A tiny example kind (not shipped): scale * L1 over channels and pixels; (B, C, *S) -> (B,)."""
    err = scale * (x0_hat - x0).abs().flatten(1)
    return err.sum(1) if bins == "sum" else err.mean(1)


@pytest.fixture
def pixel_kind():
    """The test's ``pixel_l1`` registered as "scaled_l1" (the library owns "pixel_l1"); unregistered afterwards."""
    register_kind("scaled_l1")(pixel_l1)  # the decorator form
    yield "scaled_l1"
    KINDS.pop("scaled_l1")


def test_registered_kind_is_a_spectral_loss(pixel_kind):
    x0, x0_hat = torch.randn(3, 2, 5, 7), torch.randn(3, 2, 5, 7)
    loss = SpectralLoss(pixel_kind, scale=2.0, bins="sum")
    torch.testing.assert_close(loss(x0_hat, x0), 2.0 * (x0_hat - x0).abs().sum((1, 2, 3)))
    torch.testing.assert_close(SpectralLoss(pixel_kind)(x0_hat, x0), (x0_hat - x0).abs().mean((1, 2, 3)))
    assert pickle.loads(pickle.dumps(loss)) == loss  # by name, like the built-ins
    with pytest.raises(TypeError, match="unknown option"):
        SpectralLoss(pixel_kind, wave="haar")
    with pytest.raises(ValueError, match="unknown bins reduction"):
        SpectralLoss(pixel_kind, bins="pixels")


def test_regularizer_json_round_trip_and_config_check(pixel_kind):
    reg = Regularizer(pixel_kind, 0.5, "unweighted", {"scale": 3.0})
    back = Regularizer.from_dict(json.loads(json.dumps(reg.to_dict())))
    assert back == reg and back.kind == "scaled_l1" and back.options == {"scale": 3.0}
    # an experiment config accepts it and saves it as JSON by name
    cfg = dataclasses.replace(EXPERIMENTS["checkerboard"].config("smoke"), regularizer=reg)
    assert from_dict(type(cfg), json.loads(json.dumps(to_dict(cfg)))).regularizer == reg


def test_ddpm_loss_adds_the_registered_term(pixel_kind):
    # x0-parametrised net that predicts 0: x0_hat = 0, so L_S = mean |x0| whatever t; w = 1 ("unweighted")
    schedule = DDPMSchedule(beta_schedule("linear", 10))
    reg = Regularizer(pixel_kind, 0.5, "unweighted")
    x0 = torch.randn(4, 3, 8, 8)

    def zero_net(x, t):
        return torch.zeros_like(x)

    base = DDPMLoss(schedule, parametrization="x0")
    loss = pickle.loads(pickle.dumps(DDPMLoss(schedule, parametrization="x0", regularizer=reg)))
    a = base(zero_net, x0, generator=torch.Generator().manual_seed(0))
    parts = loss(zero_net, x0, generator=torch.Generator().manual_seed(0), return_parts=True)
    torch.testing.assert_close(parts["spectral"], x0.abs().mean((1, 2, 3)))
    torch.testing.assert_close(parts["loss"], a + 0.5 * x0.abs().mean((1, 2, 3)))


def test_register_kind_rejects_clashes_and_bad_signatures(pixel_kind):
    assert register_kind(pixel_kind, pixel_l1) is pixel_l1  # the same function again: a no-op
    with pytest.raises(ValueError, match="already registered"):
        register_kind("amp", pixel_l1)

    def no_bins(x0_hat, x0, check_finite=True):
        return (x0_hat - x0).abs().flatten(1).mean(1)

    with pytest.raises(TypeError, match="bins"):
        register_kind("no_bins", no_bins)
    with pytest.raises(ValueError, match="non-empty string"):
        register_kind("", pixel_l1)
    assert "no_bins" not in KINDS
    with pytest.raises(ValueError, match="unknown spectral loss kind 'pixel'.*register_kind"):
        SpectralLoss("pixel")
