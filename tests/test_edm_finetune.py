"""EDM fine-tuning (specreg_lib.experiments.edm.experiment): smoke path end to end on a tiny official-format
checkpoint, lambda = 0 == baseline, resume == uninterrupted, export loads back, the loss reduction, bad input."""

import pytest
import torch

from specreg_lib.data.edm_datasets import DatasetError, write_standin
from specreg_lib.diffusion import EDMLoss, Regularizer
from specreg_lib.diffusion.edm_train import EDMTrainLoss, term_table
from specreg_lib.experiments import run
from specreg_lib.experiments.edm.experiment import PRESETS, edm_experiment
from specreg_lib.models import load_edm_checkpoint
from specreg_lib.models.tiny_edm import write_tiny_checkpoint
from specreg_lib.training import train

EXP = edm_experiment("afhqv2-64")


@pytest.fixture(autouse=True)
def _root(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECREG_ROOT", str(tmp_path))  # stand-in data and runs stay in the test's folder


def _cfg(**overrides):
    return EXP.config("smoke", {"train.checkpoint_every": 0, **overrides})


def _train(cfg, ckpt=None, steps=None):
    tcfg = EXP.train_config(cfg)
    if steps is not None:
        tcfg = tcfg.__class__(**{**tcfg.__dict__, "steps": steps})
    torch.manual_seed(EXP.seed(cfg))
    return train(EXP.build_model(cfg), EXP.build_loss(cfg), EXP.build_data(cfg), tcfg, ckpt_path=ckpt)


def _fixed_loss(cfg, net, n=4):
    """Mean fine-tuning loss of ``net`` (eval mode) on fixed batches and fixed noise."""
    data, loss = EXP.build_data(cfg), EXP.build_loss(cfg)
    g = torch.Generator().manual_seed(123)
    net.eval()
    with torch.no_grad():
        return float(torch.stack([loss(net, *data(8, g), generator=g).mean() for _ in range(n)]).mean())


def test_loss_decreases_on_the_standin():
    cfg = _cfg(**{"train.steps": 12, "train.lr": 2e-3, "train.lr_rampup_kimg": 0.0, "regularizer": "amp"})
    before = _fixed_loss(cfg, EXP.build_model(cfg))
    res = _train(cfg)
    after = _fixed_loss(cfg, res.model)
    assert after < 0.9 * before, (before, after)  # measured 0.84 (same batches and noise before and after)


def test_lambda_zero_equals_the_baseline_bit_for_bit():
    base = _train(_cfg(**{"train.steps": 3, "regularizer": "baseline"}))
    zero = _train(_cfg(**{"train.steps": 3, "regularizer": "amp_phase", "regularizer.lambda_spec": 0.0}))
    a, b = base.model.state_dict(), zero.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    amp = _train(_cfg(**{"train.steps": 3, "regularizer": "amp_phase"}))
    assert not all(torch.equal(a[k], amp.model.state_dict()[k]) for k in a)  # the term does act


def test_smoke_fine_tunes_leave_the_checkpoint_and_each_variant_differs_from_the_baseline(tmp_path):
    """The smoke profile as notebook 06 runs it: lr > 0 from step 0 (an LR ramp ran step 0 at lr 0), the baseline's
    float samples move away from the checkpoint's, and each variant's samples and metrics differ from the baseline's,
    by much less than the fine-tune itself moves them (the spectral term is small beside EDM's summed loss)."""
    base_cfg = EXP.config("smoke", {"regularizer": "baseline"})
    assert EXP.train_config(base_cfg).lr_at(0) > 0
    base = run(EXP, base_cfg, tmp_path / "runs")
    moved = float((base.samples - EXP.sample(base_cfg, EXP.build_model(base_cfg))).abs().max())
    assert moved > 0.05  # measured 0.18 (samples in [-1, 1])
    for variant, weighting in (("amp", "unweighted"), ("haar", "weighted")):  # the smallest and a large effect
        cfg = EXP.config("smoke", {"regularizer": variant, "regularizer.weighting": weighting})
        r = run(EXP, cfg, tmp_path / "runs")
        diff = float((r.samples - base.samples).abs().max())
        assert 1e-5 < diff < moved, (variant, diff)  # measured 8.3e-5 and 6.4e-3
        assert all(r.metrics[k] != base.metrics[k] for k in ("log_distance", "fd_pixels")), variant


def test_resume_equals_an_uninterrupted_run(tmp_path):
    cfg = _cfg(**{"train.steps": 4, "regularizer": "haar"})
    straight = _train(cfg)
    _train(cfg, tmp_path / "ck.pt", steps=2)
    resumed = _train(cfg, tmp_path / "ck.pt", steps=4)
    assert resumed.resumed_from == 2
    for name, ref in (("model", straight.model), ("ema", straight.ema)):
        got = resumed.model if name == "model" else resumed.ema
        a, b = ref.state_dict(), got.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_smoke_run_exports_a_checkpoint_that_loads_back(tmp_path):
    cfg = _cfg(**{"train.steps": 2, "sample.n_samples": 2, "sample.num_steps": 2, "evaluate.n_reference": 8})
    res = run(EXP, cfg, tmp_path / "runs")
    assert res.samples.shape == (2, 3, 16, 16) and res.metrics["steps"] == 2
    assert res.metrics["log_distance"] >= 0 and res.metrics["fd_pixels"] >= 0
    snap = torch.load(res.run_dir / "snapshots" / "step-0000002.pt", weights_only=True)["model"]
    net = EXP.build_model(cfg)
    net.load_state_dict(snap)
    path = EXP.export(cfg, net, tmp_path / "finetuned.pt")[0]  # the state_dict export: .pt + .json
    back = load_edm_checkpoint(path)
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in snap.items())
    assert back.edm_meta["augment_pipe"]["attributes"]["p"] == 0.12  # the source's records pass through
    x, sigma = torch.randn(2, 3, 16, 16), torch.tensor([0.5, 2.0])
    net.eval()
    assert torch.equal(net(x, sigma), back(x, sigma))


def test_reduction_sum_is_edm_loop_and_spectral_term_is_added_once():
    net = load_edm_checkpoint(write_tiny_checkpoint(_tmp_pkl(), resolution=8, channels=16)).train(False)
    y = torch.rand(2, 3, 8, 8) * 2 - 1
    reg = Regularizer("amp", 0.5, "unweighted")
    parts = {}
    for red in ("sum", "mean"):
        loss = EDMTrainLoss(EDMLoss(regularizer=reg), red)
        parts[red] = loss(net, y, generator=torch.Generator().manual_seed(0), return_parts=True)
    assert torch.allclose(parts["sum"]["diffusion"], parts["mean"]["diffusion"] * 3 * 64, rtol=1e-6)
    for red, p in parts.items():
        assert torch.allclose(p["loss"], p["diffusion"] + 0.5 * p["spectral"], rtol=1e-6), red
    # EDM's own loop: weighted squared error summed over C*H*W, per sample
    g = torch.Generator().manual_seed(0)
    sigma = (torch.randn(2, generator=g) * 1.2 - 1.2).exp().reshape(-1, 1, 1, 1)
    n = torch.randn(y.shape, generator=g) * sigma
    lam = (sigma**2 + 0.25) / (sigma * 0.5) ** 2
    edm = (lam * (net(y + n, sigma) - y) ** 2).sum(dim=(1, 2, 3))
    assert torch.allclose(parts["sum"]["diffusion"], edm, rtol=1e-5)


def test_mean_with_lambda_over_chw_is_the_summed_objective_over_chw():
    """The lambda that makes the pixel reductions equal: "mean" with lambda / (C H W) has exactly the "sum"
    objective's gradient divided by C H W (same batch, noise and net); the same lambda does not. What Adam makes of
    the constant factor (it divides it out up to its eps) is measured by benchmarks/bench_pixel_reduction.py."""
    net = load_edm_checkpoint(write_tiny_checkpoint(_tmp_pkl(), resolution=8, channels=16)).train(False)
    y = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    chw = 3 * 8 * 8

    def grads(pixels, lam):
        net.zero_grad(set_to_none=True)
        loss = EDMTrainLoss(EDMLoss(regularizer=Regularizer("amp", lam, "weighted")), pixels)
        loss(net, y, generator=torch.Generator().manual_seed(0)).sum().backward()
        return torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])

    summed, matched, same = grads("sum", 50.0), grads("mean", 50.0 / chw), grads("mean", 50.0)
    torch.testing.assert_close(matched * chw, summed, rtol=1e-4, atol=1e-6 * float(summed.abs().max()))
    assert not torch.allclose(same * chw, summed, rtol=1e-2)


def test_term_table_rows_scale_by_chw():
    net = load_edm_checkpoint(write_tiny_checkpoint(_tmp_pkl(), resolution=8, channels=16))
    y = torch.rand(2, 3, 8, 8) * 2 - 1
    rows = term_table(net, y, {"amp": Regularizer("amp"), "haar": Regularizer("wavelet", options={"wave": "haar"})})
    assert [(r["regularizer"], r["pixels"]) for r in rows] == [("amp", "sum"), ("amp", "mean"),
                                                                   ("haar", "sum"), ("haar", "mean")]
    s, m = rows[0], rows[1]
    assert s["diffusion"] == pytest.approx(m["diffusion"] * 192) and s["spectral"] == m["spectral"]
    assert s["grad_ratio"] * 192 == pytest.approx(m["grad_ratio"])
    assert rows[0]["diffusion"] == rows[2]["diffusion"]  # same noise for every regularizer


_COUNT = [0]


def _tmp_pkl():
    import tempfile
    from pathlib import Path

    _COUNT[0] += 1
    return Path(tempfile.mkdtemp()) / f"tiny{_COUNT[0]}.pkl"


def test_five_steps_reading_and_table3_length():
    t3 = EXP.train_config(EXP.config("paper"))
    assert (t3.steps, t3.batch_size, t3.lr, t3.ema_halflife_kimg) == (31250, 16, 5e-5, 500.0)  # 0.5 Mimg / 16
    five = EXP.train_config(EXP.config("paper", {"finetune.length": "five_steps"}))
    assert (five.steps, five.lr_rampup_kimg, five.ema_halflife_kimg) == (5, 0.0, 0.0)
    assert EXP.run_hash(EXP.config("paper")) != EXP.run_hash(EXP.config("paper", {"finetune.length": "five_steps"}))
    assert PRESETS["cifar10-32"].config("paper").train.lr == 2e-4


def _assert_refused_before_training(tmp_path, cfg, error, match):
    with pytest.raises(error, match=match):
        run(EXP, cfg, tmp_path / "runs")
    assert not list((tmp_path / "runs").rglob("checkpoint.pt"))


def test_bad_input_is_refused_before_training(tmp_path):
    _assert_refused_before_training(tmp_path, _cfg(**{"data.path": str(tmp_path / "nope.zip")}), DatasetError,
                                    "does not exist")
    write_standin(tmp_path / "big.zip", n=4, resolution=32)
    _assert_refused_before_training(tmp_path, _cfg(**{"data.path": str(tmp_path / "big.zip")}), DatasetError,
                                    "3x32x32 images but the checkpoint's network takes 3x16x16")
    write_standin(tmp_path / "gray.zip", n=4, resolution=16, channels=1)
    _assert_refused_before_training(tmp_path, _cfg(**{"data.path": str(tmp_path / "gray.zip")}), DatasetError,
                                    "1x16x16")
    _assert_refused_before_training(tmp_path, _cfg(**{"model.tiny_label_dim": 10}), DatasetError, "label_dim=10")
    with pytest.raises(ValueError, match="unknown preset 'imagenet'; Table 3 has afhqv2-64"):
        edm_experiment("imagenet")
    with pytest.raises(ValueError, match="model.family"):
        _cfg(**{"model.family": "adm"})
    with pytest.raises(ValueError, match="loss.pixels"):
        _cfg(**{"loss.pixels": "median"})


def test_cli_edm_task_runs_exports_and_refuses_misplaced_options(tmp_path, capsys):
    from specreg_lib.kit.finetune import main

    root = str(tmp_path / "ck")
    argv = ["--task", "edm", "--profile", "smoke", "--regularizer", "amp", "--weighting", "unweighted",
            "--root", root, "--set", "train.steps=1", "--set", "sample.n_samples=2", "--set", "sample.num_steps=1"]
    assert main([*argv, "--resume"]) == 2  # nothing to continue yet
    assert main([*argv, "--export"]) == 0
    exported = next((tmp_path / "ck" / "edm_afhqv2").rglob("network-snapshot-0000001.json"))
    assert load_edm_checkpoint(exported).img_resolution == 16
    assert "vp_amp_lam1_unweighted_seed1" in capsys.readouterr().out
    assert main(["--task", "audio", "--family", "vp", "--dry-run"]) == 2
    assert "--family applies to --task edm only" in capsys.readouterr().err
    assert main(["--task", "edm", "--preset", "afhqv2-64", "--profile", "smoke", "--set", "model.family=adm"]) == 2


def test_cli_help_documents_every_option(capsys):
    from specreg_lib.kit.finetune import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for opt in ("--task", "--preset", "--family", "--weighting", "--length", "--pixels", "--augment", "--export",
                "--regularizer", "--lambda", "--seeds", "--steps", "--checkpoint", "--data", "--set", "--root",
                "--resume", "--wait", "--dry-run"):
        assert opt in text, opt
    assert "five_steps" in text and "contradicts itself" in text
