"""DiffWave fine-tuning on the experiment layer: configs and presets, the summed spectral losses, fp16, resume."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import pywt
import torch

from specreg_lib.diffusion import Regularizer
from specreg_lib.experiments import DIFFWAVE, Sweep, run
from specreg_lib.experiments.audio.experiment import PAPER_LAMBDAS, PAPER_SEEDS, SummedSpectralLoss
from specreg_lib.training import train

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")


def test_paper_profile_and_presets() -> None:
    cfg = DIFFWAVE.config("paper")
    t = cfg.train
    assert (t.steps, t.batch_size, t.lr, t.precision, t.grad_clip, t.ema_decay) == (150_000, 16, 2e-4, "fp16", 0, 0)
    assert (cfg.model.checkpoint, cfg.data.corpus, cfg.data.crop_mel_frames) == ("official", "ljspeech", 62)
    assert cfg.regularizer.weighting.kind == "unweighted" and cfg.sample.schedule == "fast"
    sweep = Sweep(DIFFWAVE, "paper", grid={"regularizer": list(DIFFWAVE.default_variants),
                                           "lambda_spec": list(PAPER_LAMBDAS)}, seeds=PAPER_SEEDS)
    # Table 2: the baseline once, four losses x three lambdas, five seeds each
    assert len(sweep.configs()) == (1 + 4 * 3) * 5
    with pytest.raises(ValueError, match="ndim=1"):
        DIFFWAVE.config("smoke", {"regularizer": Regularizer("amp", 1e-4, "unweighted")})
    with pytest.raises(ValueError, match="reduction"):
        DIFFWAVE.config("smoke", {"loss.reduction": "max"})


def test_summed_losses_are_l1_norms() -> None:
    g = torch.Generator().manual_seed(0)
    x0, x0_hat = torch.randn(2, 1, 1000, generator=g, dtype=torch.float64), torch.randn(2, 1, 1000, generator=g,
                                                                                          dtype=torch.float64)
    amp = SummedSpectralLoss("amp", {"ndim": 1})(x0_hat, x0)
    A = lambda x: np.abs(np.fft.fft(x.numpy()[:, 0], norm="ortho"))  # noqa: E731 - two-sided spectrum
    np.testing.assert_allclose(amp.numpy(), np.abs(A(x0_hat) - A(x0)).sum(1), rtol=1e-10)  # ||A0 - A0_hat||_1
    for wave in ("haar", "bior1.3"):
        ours = SummedSpectralLoss("wavelet", {"wave": wave, "levels": 5, "ndim": 1})(x0_hat, x0)
        coeffs = pywt.wavedec((x0_hat - x0).numpy()[:, 0], wave, mode="zero", level=5, axis=-1)
        np.testing.assert_allclose(ours.numpy(), sum(np.abs(c).sum(1) for c in coeffs), rtol=1e-10)


def test_lambda_zero_is_the_baseline_bit_for_bit() -> None:
    torch.manual_seed(0)
    cfg = DIFFWAVE.config("smoke")
    model = DIFFWAVE.build_model(cfg)
    with torch.no_grad():
        model.output_projection.weight.normal_(0, 0.1)
    x0, mel = torch.rand(2, 1, 8 * 256) - 0.5, torch.rand(2, 20, 8)
    base = DIFFWAVE.build_loss(dataclasses.replace(cfg, regularizer=None))
    zero = DIFFWAVE.build_loss(DIFFWAVE.config("smoke", {"lambda_spec": 0.0}))
    on = DIFFWAVE.build_loss(cfg)
    a, b, c = (f(model, x0, mel, generator=torch.Generator().manual_seed(1)) for f in (base, zero, on))
    assert torch.equal(a, b) and bool((c > a).all())


@pytest.mark.parametrize("variant", ["amp", "amp_phase", "haar", "bior1.3"])
def test_fp16_steps_with_every_regularizer(variant: str) -> None:
    # LMNT trains with fp16 autocast + GradScaler; torch 2.9 autocasts fp16 on the CPU too
    cfg = DIFFWAVE.config("smoke", {"regularizer": DIFFWAVE.variants[variant], "precision": "fp16",
                                    "steps": 2})
    torch.manual_seed(0)
    model = DIFFWAVE.build_model(cfg)
    x0, mel = torch.rand(2, 1, 8 * 256) - 0.5, torch.rand(2, 20, 8)
    res = train(model, DIFFWAVE.build_loss(cfg), [(x0, mel)], cfg.train)
    assert res.nonfinite_steps == 0 and all(np.isfinite(res.history["loss"]))


@needs_espeak
def test_smoke_run_resumes_bit_for_bit(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SPECREG_ROOT", str(tmp_path))  # the stand-in corpus is generated under tmp_path/data
    cfg4 = DIFFWAVE.config("smoke", {"regularizer": DIFFWAVE.variants["haar"]})
    cfg2 = DIFFWAVE.config("smoke", {"regularizer": DIFFWAVE.variants["haar"], "steps": 2})
    straight = run(DIFFWAVE, cfg4, tmp_path / "a")
    run(DIFFWAVE, cfg2, tmp_path / "b")
    resumed = run(DIFFWAVE, cfg4, tmp_path / "b")  # extends the 2-step run to 4 steps
    snap = lambda r: torch.load(r.run_dir / "snapshots" / "step-0000004.pt", weights_only=True)  # noqa: E731
    sa, sb = snap(straight)["model"], snap(resumed)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert straight.history["loss"] == resumed.history["loss"]
    assert torch.equal(straight.samples, resumed.samples)
    m = straight.metrics
    assert {"mr_stft", "pesq", "ndb", "fd_mel"} <= set(m) and m["n_clips"] == 2
    assert straight.samples.shape == (2, 1, 40 * 256) and float(straight.samples.abs().max()) <= 1.0


def test_finetune_cli_help_and_refusals(capsys, tmp_path) -> None:
    from specreg_lib.kit.cli import main

    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    text = capsys.readouterr().out
    for option in ("--task", "--profile", "--regularizer", "--lambda", "--seeds", "--steps", "--checkpoint",
                   "--data", "--vggish", "--schedule", "--n-clips", "--utmos", "--set", "--root", "--resume",
                   "--wait", "--dry-run"):
        assert option in text
    assert main(["finetune", "--task", "audio", "--regularizer", "amp,nope", "--root", str(tmp_path)]) == 2
    assert "unknown regularizer variant" in capsys.readouterr().err
    argv = ["finetune", "--task", "audio", "--profile", "paper", "--regularizer", "baseline,amp", "--lambda",
            "1e-4,1e-5", "--seeds", "1,2", "--root", str(tmp_path)]
    assert main([*argv, "--dry-run"]) == 0
    assert "6 runs" in capsys.readouterr().out  # (baseline + amp x 2 lambdas) x 2 seeds
    assert main([*argv, "--resume"]) == 2  # nothing to continue: refused before anything is fetched or trained
    assert "no checkpoint to continue" in capsys.readouterr().err


def test_file_locations_do_not_change_the_run() -> None:
    a = DIFFWAVE.config("paper")
    b = DIFFWAVE.config("paper", {"model.local_path": "/x/diffwave.pt", "data.path": "/y/LJSpeech-1.1",
                                  "evaluate.vggish_path": "/z/vggish.pth"})
    assert DIFFWAVE.run_hash(a) == DIFFWAVE.run_hash(b) and DIFFWAVE.results_hash(a) == DIFFWAVE.results_hash(b)
    assert DIFFWAVE.run_hash(a) != DIFFWAVE.run_hash(DIFFWAVE.config("paper", {"model.checkpoint": "/x/other.pt"}))
