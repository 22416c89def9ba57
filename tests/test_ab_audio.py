"""The audio A/B study (specreg_lib/experiments/ab_audio): the rule against hand-worked cases and the doc, the
matched reduction against an rfft count, and the smoke study end to end (every stage, a table with every variant,
a rerun that trains nothing, a status with nothing left, the door's one-line errors)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from specreg_lib.experiments.ab_audio import RULE, ab_audio_plan, ab_status, ab_table, choose, run_study
from specreg_lib.experiments.ab_audio.plan import BASELINE, PlanError, bins_count, crop_samples, matched_lambda
from specreg_lib.spectral import SpectralLoss

DOC = Path(__file__).resolve().parents[1] / "docs" / "ab_audio.md"


def test_rule_is_the_documented_rule_and_picks_by_hand_worked_cases() -> None:
    assert " ".join(RULE.split()) in " ".join(DOC.read_text().split())
    base = {"fd_mel": 1.0, "mr_stft": 5.0}
    screen = {1e-4: {"fd_mel": 1.3, "mr_stft": 4.0},  # best mr_stft but fd_mel above 1.0 + 0.2: not a candidate
              1e-5: {"fd_mel": 1.2, "mr_stft": 4.5},  # on the limit: a candidate
              1e-6: {"fd_mel": 0.9, "mr_stft": 4.6}}
    got = choose(screen, base, 0.2)
    assert (got["lambda"], got["guard_failed"], got["candidates"]) == (1e-5, False, [1e-6, 1e-5])
    tie = {1e-5: {"fd_mel": 1.0, "mr_stft": 4.50001}, 1e-6: {"fd_mel": 1.0, "mr_stft": 4.50004}}  # equal to 4 digits
    assert choose(tie, base, 0.0)["lambda"] == 1e-6
    failed = choose({1e-4: {"fd_mel": 9.0, "mr_stft": 1.0}, 1e-5: {"fd_mel": 8.0, "mr_stft": 2.0}}, base, 0.1)
    assert failed["lambda"] == 1e-5 and failed["guard_failed"] and math.isclose(failed["limit"], 1.1)
    with pytest.raises(ValueError, match="noise floor"):
        choose(screen, base, float("nan"))


def test_matched_mean_lambda_is_the_rfft_count_for_amp() -> None:
    plan = ab_audio_plan("smoke")
    n = crop_samples(plan)
    assert n == 8 * 256  # the smoke profile's 8-frame crops
    x, y = torch.randn(3, 1, n, dtype=torch.float64), torch.randn(3, 1, n, dtype=torch.float64)
    ratio = SpectralLoss("amp", ndim=1, bins="sum")(x, y) / SpectralLoss("amp", ndim=1, bins="mean")(x, y)
    assert torch.allclose(ratio, ratio[0].expand(3)), "sum / mean is one count for every input"
    assert bins_count(plan, "amp") == float(f"{float(ratio[0]):.3g}")
    assert matched_lambda(plan, "amp") == float(f"{plan.matched_lambda * bins_count(plan, 'amp'):.3g}")
    assert float(ratio[0]) == n  # amp's sum and mean run over the same n terms per crop (measured count: n)
    with pytest.raises(PlanError, match="screening seed"):
        ab_audio_plan("smoke", eval_seeds=(0, 1))
    with pytest.raises(PlanError, match="unknown regularizer"):
        ab_audio_plan("smoke", peers=("no_such_kind",))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("ab_audio")
    mp = pytest.MonkeyPatch()
    mp.setenv("SPECREG_ROOT", str(root))
    plan = ab_audio_plan("smoke", kinds=("amp", "haar"), peers=("mrstft",))  # every stage, fewer variants
    try:
        run_study(plan, root / "ck", say=lambda _: None)
        yield plan, root / "ck"
    finally:
        mp.undo()


@pytest.mark.slow
def test_smoke_study_runs_every_stage_and_tabulates_every_variant(smoke) -> None:
    plan, root = smoke
    table = ab_table(plan, root)
    variants = {BASELINE, *plan.kinds, *plan.peers}
    assert set(table["variant"]) == variants and set(table["schedule"]) == {"fast", "full"}
    for metric in ("mr_stft", "pesq", "ndb", "fd_mel"):
        rows = table[table["metric"] == metric]
        assert len(rows) == 2 * len(variants) and np.isfinite(rows["mean"]).all()
        assert np.isfinite(rows[rows["variant"] != BASELINE]["diff"]).all()
        assert rows["floor"].notna().all()
    choice = (root / "ab_audio" / "smoke" / "choice.json").read_text()
    assert "guard" in choice and all(f'"{k}"' in choice for k in (*plan.kinds, *plan.peers))
    chosen = table[table["variant"] != BASELINE].groupby("variant")["lambda"].first()
    assert set(chosen.index) == variants - {BASELINE}


@pytest.mark.slow
def test_smoke_rerun_trains_nothing_and_status_has_nothing_left(smoke) -> None:
    plan, root = smoke
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.pt")}
    run_study(plan, root, say=lambda line: pytest.fail(f"rerun did work: {line}"))
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.pt")} == before
    status = ab_status(plan, root)
    for st in status["stages"].values():
        assert st["runs_left"] == 0 and st["steps_left"] == 0 and not any(st["evals_left"].values())
        assert st["eta_seconds"] == 0.0
    assert status["stages"]["screen"]["runs"] == 1 + 2 * 2 + 2 + 2  # baseline, kinds x lambdas, mean, peer x lambdas


def test_door_status_and_one_line_errors(tmp_path, monkeypatch, capsys) -> None:
    from specreg_lib.kit.cli import main

    monkeypatch.setenv("SPECREG_ROOT", str(tmp_path))
    assert main(["ab-audio", "--profile", "smoke", "--status"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"pretrain\s+0 / 1", out) and "pending in evaluate" in out
    assert main(["ab-audio", "--profile", "smoke", "--stage", "screen"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--stage pretrain first" in err[0]
