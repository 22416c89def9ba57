"""The shared training loop: bit-exact resume, EMA, NaN guard, LR schedule, samplers and iterables."""

import pytest
import torch
from torch import nn

from specreg_lib.training import EMA, TensorSampler, TrainConfig, load_checkpoint, train

torch.set_num_threads(1)


class NoisyRegression:
    """Per-sample loss that draws noise from the loop's generator: ||net(x + n) - x||^2, (B,)."""

    def __call__(self, net, x0, cond=None, generator=None):
        n = torch.randn(x0.shape, generator=generator)
        out = net(x0 + 0.1 * n) if cond is None else net(x0 + 0.1 * n) * cond
        return (out - x0).square().flatten(1).mean(1)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.1), nn.Tanh(), nn.Linear(16, 4))


def _data(batch_size, generator):
    return torch.randn(batch_size, 4, generator=generator)


CFG = dict(batch_size=8, lr=1e-2, warmup_steps=3, ema_decay=0.9, seed=7, progress=False, log_every=2)


def test_resume_is_bit_exact(tmp_path):
    straight = train(_net(), NoisyRegression(), _data, TrainConfig(steps=10, **CFG), tmp_path / "a.pt")
    first = train(_net(), NoisyRegression(), _data, TrainConfig(steps=5, checkpoint_every=2, **CFG), tmp_path / "b.pt")
    assert first.step == 5
    resumed = train(_net(), NoisyRegression(), _data, TrainConfig(steps=10, **CFG), tmp_path / "b.pt")
    assert resumed.resumed_from == 5 and resumed.step == 10
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)
    for p, q in zip(straight.ema.parameters(), resumed.ema.parameters()):
        assert torch.equal(p, q)
    assert straight.history["loss"] == resumed.history["loss"]
    ck = load_checkpoint(tmp_path / "b.pt")
    assert ck["step"] == 10 and ck["config"]["steps"] == 10
    # a finished run returns at once, without training
    again = train(_net(), NoisyRegression(), _data, TrainConfig(steps=10, **CFG), tmp_path / "b.pt")
    assert again.resumed_from == 10 and torch.equal(next(again.model.parameters()), next(straight.model.parameters()))


def test_refuses_to_resume_with_other_settings(tmp_path):
    train(_net(), NoisyRegression(), _data, TrainConfig(steps=2, **CFG), tmp_path / "c.pt")
    with pytest.raises(ValueError, match="different settings"):
        train(_net(), NoisyRegression(), _data, TrainConfig(steps=4, **{**CFG, "lr": 1e-3}), tmp_path / "c.pt")


def test_loss_decreases_and_history():
    res = train(_net(), NoisyRegression(), _data, TrainConfig(steps=150, **{**CFG, "lr": 3e-2}))
    h = res.history
    assert len(h["loss"]) == len(h["grad_norm"]) == len(h["lr"]) == len(h["step_time"]) == 150
    assert sum(h["loss"][-20:]) < 0.5 * sum(h["loss"][:20])
    assert h["lr"][0] == pytest.approx(1e-2) and h["lr"][2] == pytest.approx(3e-2)  # warm-up ramp
    assert res.seconds_per_step > 0 and res.train_seconds > 0


class NaNEvery3:
    """A loss that is NaN on every third call."""

    def __init__(self):
        self.calls = 0

    def __call__(self, net, x0, cond=None):
        self.calls += 1
        loss = (net(x0) - x0).square().mean(1)
        return loss * float("nan") if self.calls % 3 == 0 else loss


def test_nonfinite_steps_are_skipped_then_raise():
    net = _net()
    res = train(net, NaNEvery3(), _data, TrainConfig(steps=9, max_nonfinite=5, **CFG))
    assert res.nonfinite_steps == 3
    assert all(torch.isfinite(p).all() for p in res.model.parameters())
    with pytest.raises(FloatingPointError):
        train(_net(), NaNEvery3(), _data, TrainConfig(steps=9, max_nonfinite=2, **CFG))


def test_tensor_sampler_with_cond_and_iterable_data():
    x, c = torch.randn(20, 4), torch.ones(20, 1)
    res = train(_net(), NoisyRegression(), TensorSampler(x, c), TrainConfig(steps=3, **CFG))
    assert res.step == 3
    batches = [torch.randn(8, 4) for _ in range(2)]  # an iterable is cycled
    res = train(_net(), NoisyRegression(), batches, TrainConfig(steps=5, **{**CFG, "ema_decay": 0.0}))
    assert res.ema is None and res.sampling_model is res.model


def test_ema_and_config_validation():
    net = nn.Linear(2, 2)
    ema = EMA(net, decay=0.5, warmup=False)
    with torch.no_grad():
        net.weight.add_(2.0)
    ema.update(net)
    assert torch.allclose(ema.model.weight, net.weight - 1.0)
    for bad in (dict(steps=-1), dict(lr=0), dict(ema_decay=1.0), dict(optimizer="sgd"), dict(lr_schedule="step")):
        with pytest.raises(ValueError):
            TrainConfig(**bad)
    cos = TrainConfig(steps=10, lr=1.0, lr_schedule="cosine")
    assert cos.lr_at(0) == pytest.approx(1.0) and cos.lr_at(10) == pytest.approx(0.0)
