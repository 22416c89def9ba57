"""LMNT DiffWave on the kit's contract: forward order, checkpoints in LMNT's layout, inference, the L1 objective."""

from __future__ import annotations

import inspect
import os

import numpy as np
import pytest
import torch
from diffwave.model import DiffWave
from diffwave.params import AttrDict

from specreg_lib.assets import ChecksumError
from specreg_lib.diffusion import DDPMLoss, DDPMSchedule, Regularizer, align_steps
from specreg_lib.models.diffwave import (
    build_diffwave,
    diffwave_params,
    inference_schedule,
    load_diffwave,
    read_lmnt_checkpoint,
    save_lmnt_checkpoint,
    tiny_params,
    vocode,
)

HOP = 256


@pytest.fixture(scope="module")
def tiny() -> DiffWave:
    torch.manual_seed(0)
    model = build_diffwave(tiny_params())
    with torch.no_grad():  # LMNT zero-inits the output projection: give it weights so outputs are not all 0
        model.output_projection.weight.normal_(0, 0.1)
    return model.eval()


def test_installed_package_forward_order() -> None:
    # PyPI diffwave 0.1.7: forward(audio, spectrogram, diffusion_step); DiffWaveEps relies on that order
    assert list(inspect.signature(DiffWave.forward).parameters) == ["self", "audio", "spectrogram", "diffusion_step"]


def test_forward_is_lmnts_with_reordered_arguments(tiny: DiffWave) -> None:
    x, mel, t = torch.randn(2, 1, 4 * HOP), torch.rand(2, 20, 4), torch.tensor([3, 41])
    out = tiny(x, t, mel)
    assert out.shape == (2, 1, 4 * HOP)
    assert torch.equal(out, DiffWave.forward(tiny, x.squeeze(1), mel, t))


def test_forward_bad_inputs(tiny: DiffWave) -> None:
    with pytest.raises(ValueError, match="mel-conditioned"):
        tiny(torch.randn(1, 1, 4 * HOP), torch.tensor([0]))
    with pytest.raises(ValueError, match="mel/audio length mismatch"):
        tiny(torch.randn(1, 1, 4 * HOP + 1), torch.tensor([0]), torch.rand(1, 20, 4))
    with pytest.raises(ValueError, match="same for the whole batch"):
        tiny(torch.randn(2, 1, HOP), torch.tensor([1.5, 2.5]), torch.rand(2, 20, 1))
    with pytest.raises(KeyError, match="unknown DiffWave param"):
        diffwave_params(residual_layer=3)


@pytest.mark.parametrize("params_as", ["dict", "attrdict"])
def test_checkpoint_round_trip_in_lmnt_layout(tiny: DiffWave, tmp_path, params_as: str) -> None:
    path = save_lmnt_checkpoint(tiny, tmp_path / "weights-7.pt", step=7,
                                optimizer=torch.optim.Adam(tiny.parameters(), lr=2e-4))
    if params_as == "attrdict":  # the same file with LMNT's AttrDict object itself as params
        ck = torch.load(path, weights_only=True)  # our own file, written just above: plain data
        ck["params"] = AttrDict(ck["params"])
        torch.save(ck, path)
    ck = read_lmnt_checkpoint(path)
    assert set(ck) == {"step", "model", "optimizer", "params", "scaler"}  # LMNT learner.state_dict keys
    model, info = load_diffwave(path)
    assert info["step"] == 7 and model.params.residual_layers == 4 and model.params.n_mels == 20
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), tiny.state_dict().values(),
                                                 strict=True))
    x, mel = torch.randn(1, 1, 2 * HOP), torch.rand(1, 20, 2)
    assert torch.equal(model.eval()(x, torch.tensor([5]), mel), tiny(x, torch.tensor([5]), mel))


def test_checkpoint_refusals(tiny: DiffWave, tmp_path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"model": {}, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="weights_only"):
        read_lmnt_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(FileNotFoundError):
        read_lmnt_checkpoint(tmp_path / "missing.pt")
    path = save_lmnt_checkpoint(tiny, tmp_path / "tiny.pt")
    # the official name with a file that is not LMNT's: the SHA-256 pin refuses it before anything is loaded
    with pytest.raises(ChecksumError, match="SHA-256"):
        load_diffwave(local_path=path)
    with pytest.raises(ValueError, match="architecture"):
        load_diffwave(path, residual_layers=30)


@torch.no_grad()
def _lmnt_predict(model: DiffWave, mel: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """LMNT inference.predict (fast), written out from its equations: steps aligned on sqrt(alpha_bar)."""
    train = np.array(model.params.noise_schedule)
    beta = np.array(model.params.inference_noise_schedule)
    talpha_cum, alpha, alpha_cum = np.cumprod(1 - train), 1 - beta, np.cumprod(1 - beta)
    T = []
    for s in range(len(beta)):
        for t in range(len(train) - 1):
            if talpha_cum[t + 1] <= alpha_cum[s] <= talpha_cum[t]:
                T.append(t + (talpha_cum[t] ** 0.5 - alpha_cum[s] ** 0.5)
                         / (talpha_cum[t] ** 0.5 - talpha_cum[t + 1] ** 0.5))
                break
    audio = torch.randn(mel.shape[0], 1, HOP * mel.shape[-1], generator=g)
    for n in range(len(alpha) - 1, -1, -1):
        eps = model(audio, torch.tensor([T[n]] * mel.shape[0], dtype=torch.float32), mel)
        audio = (audio - beta[n] / (1 - alpha_cum[n]) ** 0.5 * eps) / alpha[n] ** 0.5
        if n > 0:
            audio = audio + ((1 - alpha_cum[n - 1]) / (1 - alpha_cum[n]) * beta[n]) ** 0.5 * torch.randn(
                audio.shape, generator=g)
        audio = audio.clamp(-1, 1)
    return audio


def test_vocode_matches_lmnt_fast_inference(tiny: DiffWave) -> None:
    mel = torch.rand(2, 20, 3)
    ref = _lmnt_predict(tiny, mel, torch.Generator().manual_seed(5))
    out = vocode(tiny, [mel[0].numpy(), mel[1].numpy()], "fast", batch_size=2, seed=5, progress=False)
    assert out[0].shape == (3 * HOP,)
    np.testing.assert_allclose(np.stack(out), ref[:, 0].numpy(), atol=2e-5)
    _, steps = inference_schedule(tiny, "fast")
    assert steps.shape == (6,) and float(steps[0]) == pytest.approx(0.0, abs=1e-9)
    assert inference_schedule(tiny, "full")[0].T == 50
    with pytest.raises(ValueError, match="clip_x must be > 0"):
        vocode(tiny, [mel[0].numpy()], clip_x=-1.0, progress=False)
    with pytest.raises(ValueError, match="must be \\(20, frames\\)"):
        vocode(tiny, [np.zeros((80, 3))], progress=False)


def test_l1_objective_is_lmnts_bit_for_bit_and_lambda0_is_baseline(tiny: DiffWave) -> None:
    sched = DDPMSchedule(torch.tensor(tiny.params.noise_schedule, dtype=torch.float64))
    x0, mel = torch.rand(3, 1, 2 * HOP) - 0.5, torch.rand(3, 20, 2)
    base = DDPMLoss(sched, norm="l1")(tiny, x0, mel, generator=torch.Generator().manual_seed(3))
    zero = DDPMLoss(sched, norm="l1", regularizer=Regularizer("amp", 0.0, "unweighted", {"ndim": 1}))(
        tiny, x0, mel, generator=torch.Generator().manual_seed(3))
    assert torch.equal(base, zero)
    # LMNT's learner.train_step with the same draws: float32 noise levels, nn.L1Loss on the whole batch
    g = torch.Generator().manual_seed(3)
    t = torch.randint(0, 50, (3,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    level = torch.tensor(np.cumprod(1 - np.array(tiny.params.noise_schedule)).astype(np.float32))[t]
    noisy = level.sqrt()[:, None, None] * x0 + (1.0 - level)[:, None, None] ** 0.5 * noise
    lmnt = torch.nn.L1Loss()(noise.squeeze(1), DiffWave.forward(tiny, noisy.squeeze(1), mel, t).squeeze(1))
    # same terms; only the float32 summation order differs (per-sample means, then their mean)
    torch.testing.assert_close(base.mean(), lmnt, rtol=1e-6, atol=0)
    assert align_steps(sched, sched).allclose(torch.arange(50, dtype=torch.float64))
