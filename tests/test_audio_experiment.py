"""DiffWave fine-tuning on the experiment layer: configs and presets, the summed spectral losses, fp16, resume."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import pywt
import torch

from specreg_lib.diffusion import Regularizer
from specreg_lib.experiments import DIFFWAVE, Sweep, run
from specreg_lib.experiments.audio.experiment import PAPER_LAMBDAS, PAPER_SEEDS
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
    with pytest.raises(ValueError, match="loss.bins"):
        DIFFWAVE.config("smoke", {"loss.bins": "max"})


def test_summed_losses_are_l1_norms() -> None:
    # the L_S the audio experiment trains with (loss.bins="sum") against ||.||_1 of Eqs. 14-16 written out
    g = torch.Generator().manual_seed(0)
    x0, x0_hat = torch.randn(2, 1, 1000, generator=g, dtype=torch.float64), torch.randn(2, 1, 1000, generator=g,
                                                                                          dtype=torch.float64)
    spectral = {v: DIFFWAVE.build_loss(DIFFWAVE.config("smoke", {"regularizer": v})).spectral
                for v in ("amp", "amp_phase", "haar", "bior1.3")}
    assert all("bins" not in DIFFWAVE.variants[v].options for v in spectral)  # the config (its hash) keeps no "bins"
    F = lambda x: np.fft.fft(x.numpy()[:, 0], norm="ortho")  # noqa: E731 - two-sided spectrum
    dA = np.abs(np.abs(F(x0_hat)) - np.abs(F(x0)))
    dphi = np.abs(np.angle(F(x0_hat) * np.conj(F(x0))))  # wrapped phase difference
    np.testing.assert_allclose(spectral["amp"](x0_hat, x0).numpy(), dA.sum(1), rtol=1e-10)  # ||A0 - A0_hat||_1
    np.testing.assert_allclose(spectral["amp_phase"](x0_hat, x0).numpy(), (dA * (1 + dphi)).sum(1), rtol=1e-10)
    for wave in ("haar", "bior1.3"):
        ours = spectral[wave](x0_hat, x0)
        coeffs = pywt.wavedec((x0_hat - x0).numpy()[:, 0], wave, mode="zero", level=5, axis=-1)
        np.testing.assert_allclose(ours.numpy(), sum(np.abs(c).sum(1) for c in coeffs), rtol=1e-10)
    mean = DIFFWAVE.build_loss(DIFFWAVE.config("smoke", {"loss.bins": "mean"})).spectral
    np.testing.assert_allclose(mean(x0_hat, x0).numpy(), dA.mean(1), rtol=1e-10)


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
    cfg4 = DIFFWAVE.config("smoke", {"regularizer": DIFFWAVE.variants["haar"], "steps": 4})
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


@needs_espeak
def test_smoke_variants_differ_from_the_baseline_but_pesq_is_that_of_noise(tmp_path, monkeypatch) -> None:
    # notebooks 08/09 in smoke: the fine-tune moves the vocoded clips, each variant moves them differently; PESQ is
    # that of Gaussian noise against the same clips (its floor, ~1.02): it cannot tell runs apart at this size
    from specreg_lib.metrics.audio import pesq_wb

    monkeypatch.setenv("SPECREG_ROOT", str(tmp_path))
    base_cfg = DIFFWAVE.config("smoke", {"regularizer": None})
    base = run(DIFFWAVE, base_cfg, tmp_path / "runs")
    moved = float((base.samples - DIFFWAVE.sample(base_cfg, DIFFWAVE.build_model(base_cfg))).abs().max())
    assert moved > 0.01  # measured 0.076
    haar = run(DIFFWAVE, DIFFWAVE.config("smoke", {"regularizer": DIFFWAVE.variants["haar"]}), tmp_path / "runs")
    diff = float((haar.samples - base.samples).abs().max())
    assert 1e-4 < diff < moved  # measured 8.3e-4 (the smallest variant's)
    assert haar.metrics["mr_stft"] != base.metrics["mr_stft"] and haar.metrics["fd_mel"] != base.metrics["fd_mel"]
    refs, _ = DIFFWAVE.eval_clips(base_cfg)
    rng = np.random.default_rng(0)
    noise = np.mean([pesq_wb(r, rng.standard_normal(len(r)).astype(np.float32) * 0.5,
                            base_cfg.mel_config().sample_rate) for r in refs])
    assert abs(base.metrics["pesq"] - noise) < 0.01 and abs(haar.metrics["pesq"] - noise) < 0.01


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



@needs_espeak
def test_sweep_door_trains_writes_wavs_and_tabulates_the_declared_metrics(capsys, tmp_path) -> None:
    from specreg_lib.kit.cli import main

    assert main(["sweep", "diffwave", "--regularizer", "amp", "--set", "train.steps=1", "--root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    wavs = [Path(line.removeprefix("wrote ")) for line in lines if line.startswith("wrote ")]
    assert len(wavs) == 1 and len(list(wavs[0].glob("*.wav"))) == 2  # smoke vocodes two held-out clips
    header = next(line.split() for line in lines if line.startswith("run "))
    assert header[0] == "run" and {"fd_mel", "pesq", "mr_stft", "ndb"} <= set(header[1:])
    assert header[1:] == [k for k in DIFFWAVE.glossary if k in header]  # the declared metrics, in declared order

def test_file_locations_do_not_change_the_run() -> None:
    a = DIFFWAVE.config("paper")
    b = DIFFWAVE.config("paper", {"model.local_path": "/x/diffwave.pt", "data.path": "/y/LJSpeech-1.1",
                                  "evaluate.vggish_path": "/z/vggish.pth"})
    assert DIFFWAVE.run_hash(a) == DIFFWAVE.run_hash(b) and DIFFWAVE.results_hash(a) == DIFFWAVE.results_hash(b)
    assert DIFFWAVE.run_hash(a) != DIFFWAVE.run_hash(DIFFWAVE.config("paper", {"model.checkpoint": "/x/other.pt"}))


def test_table2_pairs_by_seed_against_the_baseline() -> None:
    from types import SimpleNamespace

    from scipy import stats

    from specreg_lib.experiments.audio.figures import formatted, headline, table2

    runs = []
    # (variant, seed, mr_stft, pesq); the haar run of seed 4 has no baseline partner
    for variant, seed, mr, pesq in [("haar", 1, 1.10, 3.0), ("baseline", 1, 1.20, 3.1), ("baseline", 2, 1.25, 3.2),
                                    ("baseline", 3, 1.22, 3.3), ("haar", 2, 1.18, 3.4), ("amp", 1, 1.15, 3.3),
                                    ("amp", 2, 1.17, 3.5), ("amp", 3, 1.19, 3.2), ("haar", 4, 1.30, 3.0)]:
        over = {"regularizer": variant, "train.seed": seed} | ({} if variant == "baseline" else
                                                               {"regularizer.lambda_spec": 1e-4})
        runs.append(SimpleNamespace(config=DIFFWAVE.config("smoke", over), metrics={"mr_stft": mr, "pesq": pesq}))
    tab, metrics = table2(runs)
    assert metrics == ["pesq", "mr_stft"]  # Table 2's column order
    assert list(tab["label"]) == ["baseline", "amp_lam0.0001", "haar_lam0.0001"]  # Table 2's row order
    amp, haar = tab.iloc[1], tab.iloc[2]
    assert amp["mr_stft_mean"] == pytest.approx(np.mean([1.15, 1.17, 1.19]))
    assert amp["mr_stft_std"] == pytest.approx(np.std([1.15, 1.17, 1.19], ddof=1))
    d = np.subtract([3.3, 3.5, 3.2], [3.1, 3.2, 3.3])
    assert amp["pesq_diff"] == pytest.approx(d.mean()) and amp["pesq_diff_se"] == pytest.approx(d.std(ddof=1) / 3**.5)
    assert amp["pesq_p"] == pytest.approx(stats.ttest_rel([3.3, 3.5, 3.2], [3.1, 3.2, 3.3]).pvalue)
    assert haar["mr_stft_diff"] == pytest.approx(np.mean([1.10 - 1.20, 1.18 - 1.25]))  # seed 4 is unpaired
    assert haar["mr_stft_paper"] == 1.1708 and np.isnan(tab.iloc[0]["mr_stft_diff"])
    cells = formatted(tab, metrics)
    assert cells["mr_stft"][0].startswith("1.223 ± ") and "(paper 1.217)" in cells["mr_stft"][0]
    assert cells["Δpesq"][0] == "" and "p=" in cells["Δpesq"][1]
    head, glossary = headline(tab, metrics)
    assert head["amp_lam0.0001_pesq"] == pytest.approx(10 / 3) and glossary["amp_lam0.0001_pesq"]["better"] == "higher"
