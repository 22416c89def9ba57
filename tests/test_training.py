"""The shared training loop in one process: bit-exact resume, the shard/seeding rule, gradient accumulation,
mixed precision, EMA (decay and EDM half-life), LR ramps, the eval hook, NaN guard, data-only checkpoints."""

import dataclasses
import os
import pickle
import warnings

import pytest
import torch
from torch import nn

from specreg_lib.data import TensorSampler
from specreg_lib.training import EMA, TrainConfig, load_checkpoint, save_checkpoint, shard_seed, train
from specreg_lib.training.loop import NonFiniteSteps
from specreg_lib.training.streams import DATA, GLOBAL, NOISE

torch.set_num_threads(1)


class NoisyRegression:
    """Per-sample loss that draws noise from the loop's generator: ||net(x + n) - x||^2, (B,)."""

    def __call__(self, net, x0, cond=None, generator=None):
        n = torch.randn(x0.shape, generator=generator)
        out = net(x0 + 0.1 * n) if cond is None else net(x0 + 0.1 * n) * cond
        return (out - x0).square().flatten(1).mean(1)


class Regression:
    """A noiseless per-sample loss ||net(x) - x||^2, (B,); records the dtype the net computed in."""

    def __init__(self, scale: float = 1.0):
        self.scale, self.dtypes = scale, set()

    def __call__(self, net, x0, cond=None):
        out = net(x0)
        self.dtypes.add(out.dtype)
        return self.scale * (out.float() - x0).square().mean(1)


def _net(dropout: float = 0.1) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.Dropout(dropout), nn.Tanh(), nn.Linear(16, 4))


def _data(batch_size, generator):
    return torch.randn(batch_size, 4, generator=generator)


def _same_params(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


CFG = dict(batch_size=8, lr=1e-2, warmup_steps=3, ema_decay=0.9, seed=7, progress=False, log_every=2)


def test_resume_is_bit_exact(tmp_path):
    straight = train(_net(), NoisyRegression(), _data, TrainConfig(steps=10, **CFG), tmp_path / "a.pt")
    first = train(_net(), NoisyRegression(), _data, TrainConfig(steps=5, checkpoint_every=2, **CFG), tmp_path / "b.pt")
    assert first.step == 5
    resumed = train(_net(), NoisyRegression(), _data, TrainConfig(steps=10, **CFG), tmp_path / "b.pt")
    assert resumed.resumed_from == 5 and resumed.step == 10
    assert _same_params(straight.model, resumed.model) and _same_params(straight.ema, resumed.ema)
    assert straight.history["loss"] == resumed.history["loss"]
    ck = load_checkpoint(tmp_path / "b.pt")
    assert ck["step"] == 10 and ck["config"]["steps"] == 10
    assert ck["layout"] == {"world_size": 1, "accumulate": 1, "shards": 1}
    # a finished run returns at once, without training
    again = train(_net(), NoisyRegression(), _data, TrainConfig(steps=10, **CFG), tmp_path / "b.pt")
    assert again.resumed_from == 10 and torch.equal(next(again.model.parameters()), next(straight.model.parameters()))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_resume_with_accumulation_is_bit_exact(tmp_path, precision):
    """Every shard's streams and (fp16) the GradScaler state survive a checkpoint."""
    if precision == "fp16" and not _cpu_fp16_autocast():
        pytest.skip(f"torch {torch.__version__} cannot autocast to float16 on CPU")
    kw = dict(accumulate=2, precision=precision, **CFG)
    loss = NoisyRegression if precision == "fp32" else lambda: Regression(scale=100.0)  # fp16: some overflow
    straight = train(_net(), loss(), _data, TrainConfig(steps=8, **kw), tmp_path / "a.pt")
    train(_net(), loss(), _data, TrainConfig(steps=3, **kw), tmp_path / "b.pt")
    resumed = train(_net(), loss(), _data, TrainConfig(steps=8, **kw), tmp_path / "b.pt")
    assert resumed.resumed_from == 3 and resumed.overflow_steps == straight.overflow_steps
    assert _same_params(straight.model, resumed.model) and _same_params(straight.ema, resumed.ema)
    assert straight.history["loss"] == resumed.history["loss"]


# The loss history and two parameter sums of TrainConfig(steps=6, **CFG) on _net() / NoisyRegression,
# computed with the loop as it was before shards existed (git 6fbb04b). Shard 0 must keep its seeds
# (data: seed, noise: seed + 1, global: seed) so that committed results stay reproducible; a change of
# seeding moves these values by O(0.1). The tolerance only absorbs CPU kernel differences between
# machines; on one machine the new loop reproduced the old one bit for bit (every parameter, torch.equal).
GOLDEN_LOSS = [1.0571961402893066, 1.232927918434143, 0.6667730808258057, 0.7633847594261169,
               0.7866398096084595, 0.45161688327789307]
GOLDEN_W0_SUM, GOLDEN_EMA_B3_SUM = -1.968846082687378, -0.19833846390247345


def test_single_process_matches_the_old_loop():
    res = train(_net(), NoisyRegression(), _data, TrainConfig(steps=6, **CFG))
    assert res.history["loss"] == pytest.approx(GOLDEN_LOSS, rel=1e-5)
    assert float(res.model[0].weight.detach().sum()) == pytest.approx(GOLDEN_W0_SUM, rel=1e-5)
    assert float(res.ema[3].bias.sum()) == pytest.approx(GOLDEN_EMA_B3_SUM, rel=1e-5)
    assert [shard_seed(7, 0, s) for s in (DATA, NOISE, GLOBAL)] == [7, 8, 7]
    other = {shard_seed(7, m, s) for m in range(1, 4) for s in (DATA, NOISE, GLOBAL)}
    assert len(other) == 9 and not other & set(range(-1000, 1000))  # distinct, and apart from small seeds


def test_accumulation_equals_hand_computed_two_micro_batch_step():
    """accumulate=2: one Adam step on the mean of the two micro-batches' gradients, each micro-batch drawn with
    its own shard streams (data, noise, and dropout from the global RNG). Bit-exact: halving is exact."""
    cfg = TrainConfig(steps=1, batch_size=8, accumulate=2, lr=1e-2, grad_clip=0, ema_decay=0, seed=5,
                      progress=False)
    res = train(_net(), NoisyRegression(), _data, cfg)

    net = _net()
    params = list(net.parameters())
    grads, losses = [], []
    for m in range(2):
        torch.manual_seed(shard_seed(5, m, GLOBAL))  # dropout masks of shard m
        x0 = _data(4, torch.Generator().manual_seed(shard_seed(5, m, DATA)))
        loss = NoisyRegression()(net, x0, generator=torch.Generator().manual_seed(shard_seed(5, m, NOISE))).mean()
        grads.append(torch.autograd.grad(loss, params))
        losses.append(float(loss.detach()))
    opt = torch.optim.Adam(params, lr=1e-2)
    for p, g0, g1 in zip(params, *grads):
        p.grad = (g0 + g1) / 2
    opt.step()
    assert _same_params(res.model, net)
    assert res.history["loss"] == [(losses[0] + losses[1]) / 2]


def test_accumulating_an_iterable_splits_its_global_batches():
    """An iterable yields global batches; accumulate=2 takes rows [0:4] and [4:8]: the same gradient as the whole
    batch up to float rounding (a mean of two means of 4 vs a mean of 8)."""
    batches = [torch.randn(8, 4) for _ in range(3)]
    kw = dict(steps=5, batch_size=8, lr=1e-2, ema_decay=0, progress=False)
    whole = train(_net(0.0), Regression(), batches, TrainConfig(**kw))
    split = train(_net(0.0), Regression(), batches, TrainConfig(accumulate=2, **kw))
    for p, q in zip(whole.model.parameters(), split.model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert split.history["loss"] == pytest.approx(whole.history["loss"], rel=1e-6)
    with pytest.raises(ValueError, match="global batches of batch_size=8"):
        train(_net(0.0), Regression(), [torch.randn(6, 4)], TrainConfig(accumulate=2, **kw))


def test_refuses_to_resume_with_other_settings_or_shards(tmp_path):
    train(_net(), NoisyRegression(), _data, TrainConfig(steps=2, **CFG), tmp_path / "c.pt")
    with pytest.raises(ValueError, match="different settings"):
        train(_net(), NoisyRegression(), _data, TrainConfig(steps=4, **{**CFG, "lr": 1e-3}), tmp_path / "c.pt")
    with pytest.raises(ValueError, match="1 micro-batches per step .* this run has 2"):
        train(_net(), NoisyRegression(), _data, TrainConfig(steps=4, accumulate=2, **CFG), tmp_path / "c.pt")
    # what does not change the trained model may change
    res = train(_net(), NoisyRegression(), _data, TrainConfig(steps=3, **{**CFG, "log_every": 1, "eval_every": 5,
                                                                          "max_nonfinite": 3}), tmp_path / "c.pt")
    assert res.resumed_from == 2 and res.step == 3


def test_loss_decreases_and_history():
    res = train(_net(), NoisyRegression(), _data, TrainConfig(steps=150, **{**CFG, "lr": 3e-2}))
    h = res.history
    assert len(h["loss"]) == len(h["grad_norm"]) == len(h["lr"]) == len(h["step_time"]) == 150
    assert len(h["images_per_second"]) == 150 and h["eval"] == []
    assert sum(h["loss"][-20:]) < 0.5 * sum(h["loss"][:20])
    assert h["lr"][0] == pytest.approx(1e-2) and h["lr"][2] == pytest.approx(3e-2)  # warm-up ramp
    assert h["images_per_second"] == [8 / t for t in h["step_time"]]
    assert res.images_per_second == sorted(h["images_per_second"])[75]  # the median step's throughput


class NaNEvery3:
    """A loss that is NaN on every ``period``-th call (every third by default)."""

    def __init__(self, period=3):
        self.calls, self.period = 0, period

    def __call__(self, net, x0, cond=None):
        self.calls += 1
        loss = (net(x0) - x0).square().mean(1)
        return loss * float("nan") if self.calls % self.period == 0 else loss


def test_nonfinite_steps_are_skipped_then_raise():
    res = train(_net(), NaNEvery3(), _data, TrainConfig(steps=9, max_nonfinite=5, **CFG))
    assert res.nonfinite_steps == 3
    assert all(torch.isfinite(p).all() for p in res.model.parameters())
    with pytest.raises(FloatingPointError):
        train(_net(), NaNEvery3(), _data, TrainConfig(steps=9, max_nonfinite=2, **CFG))
    # accumulate=2: calls 5 and 10 are NaN, the first micro-batch of step 3 and the last of step 5; each NaN
    # micro-batch skips its whole step
    res = train(_net(), NaNEvery3(5), _data, TrainConfig(steps=6, accumulate=2, max_nonfinite=5, **CFG))
    assert res.nonfinite_steps == 2 and all(torch.isfinite(p).all() for p in res.model.parameters())
    # every third call NaN skips steps 2, 3, 5, 6 of 6: more than half, a run that did not train (issue 20)
    with pytest.raises(NonFiniteSteps, match="4 of the 6 steps of this call"):
        train(_net(), NaNEvery3(), _data, TrainConfig(steps=6, accumulate=2, max_nonfinite=5, **CFG))


def test_tensor_sampler_with_cond_and_iterable_data():
    x, c = torch.randn(20, 4), torch.ones(20, 1)
    res = train(_net(), NoisyRegression(), TensorSampler(x, c), TrainConfig(steps=3, **CFG))
    assert res.step == 3
    batches = [torch.randn(8, 4) for _ in range(2)]  # an iterable is cycled
    res = train(_net(), NoisyRegression(), batches, TrainConfig(steps=5, **{**CFG, "ema_decay": 0.0}))
    assert res.ema is None and res.sampling_model is res.model
    with pytest.raises(ValueError, match="exhausted"):
        train(_net(), NoisyRegression(), iter([]), TrainConfig(steps=1, **CFG))


def test_bf16_autocast_keeps_float32_master_weights():
    loss = Regression()
    res = train(_net(), loss, _data, TrainConfig(steps=20, precision="bf16", **CFG))
    ref = train(_net(), Regression(), _data, TrainConfig(steps=20, **CFG))
    assert loss.dtypes == {torch.bfloat16}  # the forward ran under autocast
    assert all(torch.isfinite(torch.tensor(res.history["loss"])))
    assert all(p.dtype == torch.float32 for p in (*res.model.parameters(), *res.ema.parameters()))
    assert not _same_params(res.model, ref.model)  # bf16 rounding changed the trajectory, only slightly:
    for p, q in zip(res.model.parameters(), ref.model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0.05)


def _cpu_fp16_autocast() -> bool:
    with warnings.catch_warnings():  # an unsupported dtype warns and disables autocast
        warnings.simplefilter("ignore")
        with torch.autocast("cpu", dtype=torch.float16):
            return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.float16


@pytest.mark.skipif(not _cpu_fp16_autocast(), reason=f"torch {torch.__version__} cannot autocast to float16 on CPU")
def test_fp16_grad_scaler_skips_overflow_steps(tmp_path):
    # x 100 makes the first scaled gradients (x 65536) overflow float16: GradScaler halves its scale and skips
    loss = Regression(scale=100.0)
    res = train(_net(), loss, _data, TrainConfig(steps=12, precision="fp16", **CFG), tmp_path / "h.pt")
    assert loss.dtypes == {torch.float16}
    assert res.nonfinite_steps == 0 and 1 <= res.overflow_steps < 12
    ck = load_checkpoint(tmp_path / "h.pt")  # the scaler state loads as data too
    assert ck["scaler"]["scale"] == 65536.0 * 0.5 ** res.overflow_steps  # one halving per skipped step
    assert ck["optimizer"]["state"][0]["step"] == 12 - res.overflow_steps  # Adam stepped on the others only
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in res.model.parameters())


def test_ema_class_and_halflife_closed_form():
    net = nn.Linear(2, 2)
    ema = EMA(net, decay=0.5, warmup=False)
    with torch.no_grad():
        net.weight.add_(2.0)
    ema.update(net)
    assert torch.allclose(ema.model.weight, net.weight - 1.0)
    # half-life: with constant parameters c, ema - c shrinks by beta per step and halves every halflife images
    cfg = TrainConfig(batch_size=8, ema_decay=0.0, ema_halflife_kimg=0.032)  # 32 images = 4 steps
    beta = 0.5 ** (8 / 32)
    assert all(cfg.ema_beta_at(k) == beta for k in range(10))
    e0 = ema.model.weight.clone()
    with torch.no_grad():
        net.weight.fill_(3.0)
    for k in range(4):
        ema.update(net, cfg.ema_beta_at(k))
    torch.testing.assert_close(ema.model.weight - 3.0, 0.5 * (e0 - 3.0))
    # EDM ramp-up: half-life <= ratio * images seen before the step; 0 images -> beta 0 (a copy)
    ramp = dataclasses.replace(cfg, ema_rampup_ratio=0.5)
    assert ramp.ema_beta_at(0) == 0.0 and ramp.ema_beta_at(2) == 0.5 ** (8 / 8) and ramp.ema_beta_at(100) == beta
    assert TrainConfig(ema_decay=0.9).ema_beta_at(3) is None


@pytest.mark.parametrize("ratio", [None, 0.25])
def test_loop_applies_the_halflife_ema(ratio):
    """Replaying ema <- lerp(ema, params_k, 1 - beta_k) with the closed-form beta_k over the parameters the loop
    produced after each step reproduces the loop's EMA bit for bit."""
    net = _net()
    snaps = [[p.detach().clone() for p in net.parameters()]]
    cfg = TrainConfig(steps=6, **{**CFG, "ema_decay": 0.0}, ema_halflife_kimg=0.02, ema_rampup_ratio=ratio)
    res = train(net, NoisyRegression(), _data, cfg,
                callback=lambda step, rec: snaps.append([p.detach().clone() for p in net.parameters()]))
    ema = snaps[0]
    for k in range(6):
        beta = 0.5 ** (8 / max(min(20.0, 8 * k * ratio) if ratio else 20.0, 1e-8))
        assert cfg.ema_beta_at(k) == beta
        ema = [e.lerp(p, 1.0 - beta) for e, p in zip(ema, snaps[k + 1])]
    assert all(torch.equal(e, q) for e, q in zip(ema, res.ema.parameters()))


def test_lr_rampup_in_images():
    """EDM: lr * min(images before the step / (1000 * lr_rampup_kimg), 1); step 0 runs at lr 0."""
    init = [p.detach().clone() for p in _net().parameters()]
    one = train(_net(), NoisyRegression(), _data, TrainConfig(steps=1, **{**CFG, "warmup_steps": 0},
                                                               lr_rampup_kimg=0.032))
    assert all(torch.equal(p, q) for p, q in zip(one.model.parameters(), init))  # lr 0 moves nothing
    res = train(_net(), NoisyRegression(), _data, TrainConfig(steps=7, **{**CFG, "warmup_steps": 0},
                                                               lr_rampup_kimg=0.032))
    assert res.history["lr"] == [1e-2 * min(8 * k / 32, 1.0) for k in range(7)]


def test_eval_hook_runs_at_its_steps_and_does_not_perturb_training():
    calls = []

    def evaluate(step, model, ema_model):
        calls.append((step, model.training, ema_model))
        torch.rand(100)  # an evaluation that draws from the global RNG must not change training
        return {"loss_probe": float(model(torch.ones(1, 4)).sum()), "ema_probe": torch.tensor(1.5)}

    cfg = TrainConfig(steps=7, eval_every=3, **CFG)
    res = train(_net(), NoisyRegression(), _data, cfg, evaluate=evaluate)
    plain = train(_net(), NoisyRegression(), _data, cfg)
    assert [c[0] for c in calls] == [3, 6, 7]  # every 3 steps and at the end
    assert all(not training for _, training, _ in calls)  # called in eval mode
    assert all(e is res.ema for _, _, e in calls) and res.model.training is False
    assert [e["step"] for e in res.history["eval"]] == [3, 6, 7] and res.history["eval"][0]["ema_probe"] == 1.5
    assert _same_params(res.model, plain.model) and res.history["loss"] == plain.history["loss"]
    with pytest.warns(UserWarning, match="eval_every=0"):
        train(_net(), NoisyRegression(), _data, TrainConfig(steps=1, **CFG), evaluate=evaluate)


def test_checkpoints_are_data_only(tmp_path):
    class Exploit:
        def __reduce__(self):
            return os.mkdir, (str(tmp_path / "pwned"),)

    bad = tmp_path / "planted.pt"
    torch.save({"model": {}, "x": Exploit()}, bad)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load .*planted.pt"):
        load_checkpoint(bad)
    assert not (tmp_path / "pwned").exists()  # nothing ran
    with pytest.raises(pickle.UnpicklingError, match="planted.pt"):  # and train() refuses to resume from it
        train(_net(), NoisyRegression(), _data, TrainConfig(steps=1, **CFG), bad)
    with pytest.raises(TypeError, match=r"meta\['path'\] is a PosixPath"):
        train(_net(), NoisyRegression(), _data, TrainConfig(steps=1, **CFG), meta={"path": tmp_path})
    save_checkpoint(tmp_path / "ok.pt", {"t": torch.ones(2), "cfg": {"betas": (0.9, 0.99), "r": None}})
    assert load_checkpoint(tmp_path / "ok.pt")["cfg"] == {"betas": (0.9, 0.99), "r": None}


def test_config_validation():
    for bad in (dict(steps=-1), dict(lr=0), dict(ema_decay=1.0), dict(optimizer="sgd"), dict(lr_schedule="step"),
                dict(accumulate=0), dict(batch_size=6, accumulate=4), dict(precision="fp8"), dict(eval_every=-1),
                dict(ema_rampup_ratio=0.05), dict(ema_decay=0, ema_halflife_kimg=-1.0)):
        with pytest.raises(ValueError):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="set ema_decay=0 to use the half-life"):
        TrainConfig(ema_halflife_kimg=500)  # ema_decay defaults to 0.999
    with pytest.raises(ValueError, match="two LR ramps"):
        TrainConfig(warmup_steps=10, lr_rampup_kimg=10)
    assert TrainConfig(ema_decay=0, ema_halflife_kimg=500, ema_rampup_ratio=0.05).uses_ema
    assert not TrainConfig(ema_decay=0).uses_ema
    cos = TrainConfig(steps=10, lr=1.0, lr_schedule="cosine")
    assert cos.lr_at(0) == pytest.approx(1.0) and cos.lr_at(10) == pytest.approx(0.0)
