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
def test_seed_table_holds_the_values_the_paired_differences_are_made_of(smoke) -> None:
    """seed_table's rows are the runs' own metrics: for every variant and schedule, the mean over its seeds of
    (variant - baseline of the same seed) is ab_table's paired difference."""
    from specreg_lib.experiments.ab_audio.study import seed_table

    plan, root = smoke
    table, seeds = ab_table(plan, root), seed_table(plan, root)
    assert list(seeds.columns) == ["variant", "schedule", "seed", "metric", "value"]
    assert set(seeds["seed"]) == set(plan.eval_seeds)
    checked = 0
    for r in table[table["variant"] != BASELINE].to_dict("records"):
        if not math.isfinite(r["diff"]):
            continue  # a metric the smoke net's clips leave undefined (no voiced frame: the pitch errors)
        checked += 1
        pick = seeds[(seeds["schedule"] == r["schedule"]) & (seeds["metric"] == r["metric"])]
        ours = pick[pick["variant"] == r["variant"]].set_index("seed")["value"]
        base = pick[pick["variant"] == BASELINE].set_index("seed")["value"]
        assert (ours - base).mean() == pytest.approx(r["diff"], rel=1e-9, abs=1e-12)
    assert checked >= 2 * len({*plan.kinds, *plan.peers}) * 3  # mr_stft, pesq, fd_mel at least, both schedules


@pytest.mark.slow
def test_smoke_rerun_trains_nothing_and_status_has_nothing_left(smoke) -> None:
    plan, root = smoke
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.pt")}
    run_study(plan, root, say=lambda line: pytest.fail(f"rerun did work: {line}"))
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.pt")} == before
    status = ab_status(plan, root)
    from specreg_lib.experiments.ab_audio.figures import commands_left

    assert commands_left(status) == []
    for st in status["stages"].values():
        assert st["runs_left"] == 0 and st["steps_left"] == 0 and not any(st["evals_left"].values())
        assert st["eta_seconds"] == 0.0
    assert status["stages"]["screen"]["runs"] == 1 + 2 * 2 + 2 + 2  # baseline, kinds x lambdas, mean, peer x lambdas


@pytest.mark.slow
def test_an_archived_study_resumes_on_a_fresh_clone_without_training(smoke, tmp_path, monkeypatch) -> None:
    """The archive (finished runs' metrics, calibration, floors, choice) plus the committed pretrained net is all a
    fresh clone needs: every stage counts as done, the table is the same, and a rerun trains nothing."""
    import pandas as pd

    from specreg_lib.experiments.ab_audio.plan import pretrained_path
    from specreg_lib.experiments.ab_audio.study import archive
    from specreg_lib.experiments.core.study import commit_copy

    plan, root = smoke
    monkeypatch.setenv("SPECREG_ROOT", str(tmp_path / "clone"))
    commit_copy(pretrained_path(plan, root), "ab_audio", plan.profile)
    counts = archive(plan, root, say=lambda _: None)
    assert counts["unfinished"] == 0 and counts["records"] == 3
    # every screen run (one result, fast) and evaluation run (two results: fast and full schedule)
    stages = ab_status(plan, root)["stages"]
    assert counts["runs"] == stages["screen"]["runs"] + stages["evaluate"]["runs"]
    assert counts["results"] == stages["screen"]["runs"] + 2 * stages["evaluate"]["runs"]
    assert not list((tmp_path / "clone" / "data" / "results").rglob("*.pt"))  # metrics, not audio
    fresh = tmp_path / "fresh"
    pd.testing.assert_frame_equal(ab_table(plan, fresh), ab_table(plan, root))
    run_study(plan, fresh, say=lambda line: pytest.fail(f"the archived study did work: {line}"))
    trained = [p for p in fresh.rglob("*.pt") if p.name != pretrained_path(plan, fresh).name]
    assert trained == []  # only the committed pretrained net was installed
    for st in ab_status(plan, fresh)["stages"].values():
        assert st["runs_left"] == 0 and not any(st["evals_left"].values())


def test_door_status_and_one_line_errors(tmp_path, monkeypatch, capsys) -> None:
    from specreg_lib.kit.cli import main

    monkeypatch.setenv("SPECREG_ROOT", str(tmp_path))
    assert main(["ab-audio", "--profile", "smoke", "--status"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"pretrain\s+0 / 1", out) and "pending in evaluate" in out
    assert main(["ab-audio", "--profile", "smoke", "--stage", "screen"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--stage pretrain first" in err[0]
    # the notebook's "commands to finish the study": the pretraining alone first (docs/ab_audio.md, "Running it")
    from specreg_lib.experiments.ab_audio.figures import commands_left

    cmds = commands_left(ab_status(ab_audio_plan("smoke"), tmp_path), "runs")
    assert cmds[0] == "specreg ab-audio --profile smoke --root runs --status"
    assert cmds[1] == "nohup specreg ab-audio --profile smoke --root runs --stage pretrain > logs/ab_pre.log 2>&1 &"


# -- the conclusion (figures.conclusion): exact sentences for hand-made tables --------------------------------------


def _row(variant, metric, diff, p, floor, seeds=5, se=0.01, schedule="fast", lam=1e-5):
    return {"variant": variant, "schedule": schedule, "lambda": None if variant == BASELINE else lam,
            "metric": metric, "seeds": seeds, "mean": 1.0, "diff": math.nan if variant == BASELINE else diff,
            "diff_se": math.nan if variant == BASELINE else se, "p": math.nan if variant == BASELINE else p,
            "direction": "", "floor": floor, "exceeds_floor": None, "note": ""}


def test_conclusion_sentences_follow_from_hand_made_tables() -> None:
    import pandas as pd

    from specreg_lib.experiments.ab_audio.figures import conclusion, table2_layout

    table = pd.DataFrame([
        _row(BASELINE, "mr_stft", 0, 0, 0.05), _row(BASELINE, "pesq", 0, 0, 0.02),
        # a clear improvement: mr_stft (lower is better) down well past its floor, p 0.001
        _row("amp", "mr_stft", -0.2, 0.001, 0.05, se=0.02), _row("amp", "pesq", 0.001, 0.6, 0.02),
        # a clear degradation: pesq (higher is better) down past its floor, p 0.004
        _row("haar", "mr_stft", 0.01, 0.3, 0.05), _row("haar", "pesq", -0.3, 0.004, 0.02, se=0.05),
        # everything within the floors, p large
        _row("bior1.3", "mr_stft", 0.01, 0.5, 0.05), _row("bior1.3", "pesq", -0.01, 0.7, 0.02),
        # p small but |difference| below the floor: not an effect at this scale
        _row("mrstft", "mr_stft", -0.04, 0.001, 0.05, lam=1.7e-7), _row("mrstft", "pesq", 0.005, 0.01, 0.02,
                                                                         lam=1.7e-7)])
    choice = {"chosen": {"amp": {"guard_failed": False}, "haar": {"guard_failed": True},
                         "bior1.3": {"guard_failed": True}, "mrstft": {"guard_failed": False}}}
    assert conclusion(table, choice).splitlines() == [
        "2 of 4 variant-schedule rows differ from the baseline beyond the noise floor with p < 0.05.",
        "Of the 8 paired tests, about 0.4 would pass p < 0.05 by chance alone.",
        "Guard: the screen's fd_mel guard failed for haar, bior1.3 (no lambda kept fd_mel within the baseline's plus "
        "its noise floor), so the smallest lambda was evaluated.",
        "amp (λ=1e-05), fast schedule, 5 seeds: mr_stft better (Δ -0.2 ± 0.02, p = 0.001, floor 0.05).",
        "haar (λ=1e-05), fast schedule, 5 seeds: pesq worse (Δ -0.3 ± 0.05, p = 0.004, floor 0.02).",
        "bior1.3 (λ=1e-05), fast schedule, 5 seeds: no effect detectable at this scale.",
        "mrstft (λ=1.7e-07), fast schedule, 5 seeds: no effect detectable at this scale."]
    # the same improvement beyond the floor but at p = 0.2 is no effect either; one seed says why there is no test
    weak = pd.DataFrame([_row(BASELINE, "mr_stft", 0, 0, 0.05), _row("amp", "mr_stft", -0.2, 0.2, 0.05),
                         _row("amp", "mr_stft", -0.2, math.nan, 0.05, seeds=1, schedule="full")])
    assert conclusion(weak, {"chosen": {"amp": {"guard_failed": False}}}).splitlines() == [
        "0 of 2 variant-schedule rows differ from the baseline beyond the noise floor with p < 0.05.",
        "Of the 1 paired tests, about 0.1 would pass p < 0.05 by chance alone.",
        "Guard: every kind had a screened lambda with fd_mel within the baseline's plus its noise floor.",
        "amp (λ=1e-05), fast schedule, 5 seeds: no effect detectable at this scale.",
        "amp (λ=1e-05), full schedule, 1 seed: no effect detectable at this scale (one seed: a paired test needs at "
        "least two)."]
    assert conclusion(table.iloc[:0]) == "No finished evaluation runs yet: nothing to conclude."
    # Table 2's layout: the paper's mean beside ours at the same (variant, lambda) (amp 1e-5: Table 2's 1.1930), the
    # effect starred, the floors in the last row
    layout = table2_layout(table).set_index("method")
    assert layout.loc["amp", "mr_stft"] == "1 (paper 1.193)" and layout.loc["mrstft", "mr_stft"] == "1"
    assert layout.loc["amp", "Δmr_stft"] == "-0.2 ± 0.02, p=0.001 *"
    assert layout.loc["mrstft", "Δmr_stft"] == "-0.04 ± 0.01, p=0.001"  # p small, within the floor: no star
    assert layout.loc["noise floor", "pesq"] == "0.02"


def test_seed_influence_names_the_seed_that_carries_a_common_shift() -> None:
    """Hand-made seeds: the baseline of seed 1 ends high, both variants of seed 1 end 0.3 lower, the other seeds'
    pairs differ by +-0.01 (mean 0): the average difference is -0.3 / 3, seed 1 carries it, without it the average is
    0. Fewer than 3 paired seeds: the sentence says so instead."""
    import pandas as pd

    from specreg_lib.experiments.ab_audio.figures import seed_influence

    base = {1: 2.9, 2: 2.5, 3: 2.6}
    offset = {("amp", 1): -0.3, ("amp", 2): 0.01, ("amp", 3): -0.01,
              ("haar", 1): -0.3, ("haar", 2): -0.01, ("haar", 3): 0.01}
    seeds = pd.DataFrame([{"variant": BASELINE, "schedule": "fast", "seed": s, "metric": "mr_stft", "value": v}
                          for s, v in base.items()]
                         + [{"variant": v, "schedule": "fast", "seed": s, "metric": "mr_stft", "value": base[s] + d}
                            for (v, s), d in offset.items()])
    table = pd.DataFrame([_row(BASELINE, "mr_stft", 0, 0, 0.1)])
    assert seed_influence(seeds, table) == (
        "mr_stft, fast schedule: the baseline's 3 seeds span 2.5 .. 2.9 (range 0.4, 4.0x the noise floor 0.1). "
        "Averaged over the 2 variants, the paired difference to the baseline is -0.1; seed 1's variants differ most "
        "from its baseline (-0.3), and without seed 1 the average is +0.")
    two = seeds[seeds["seed"] != 3]
    assert seed_influence(two, table) == "mr_stft, fast schedule: 2 paired seed(s); the seed influence needs 3."
    assert seed_influence(seeds.iloc[:0], table) == ""


@pytest.mark.slow
def test_status_reads_only_even_before_choice_json_exists(smoke, capsys) -> None:
    """--status on a finished smoke study writes nothing: no file created or touched, not even choice.json or
    floors.json when they are missing (it computes the same choice in memory and says the evaluate stage writes it)."""
    from specreg_lib.experiments.ab_audio import format_ab_status
    from specreg_lib.experiments.ab_audio.study import choice
    from specreg_lib.kit.cli import main

    plan, root = smoke
    study = root / "ab_audio" / "smoke"
    saved = {name: (study / name).read_bytes() for name in ("choice.json", "floors.json")}
    written = choice(plan, root)
    try:
        for name in saved:
            (study / name).unlink()
        tree = root.parent  # the run folders, the study's files and the corpus under SPECREG_ROOT
        before = {p: p.stat().st_mtime_ns for p in tree.rglob("*")}
        status = ab_status(plan, root)
        text = format_ab_status(status)
        assert main(["ab-audio", "--profile", "smoke", "--status", "--root", str(root)]) == 0  # the door's plan
        assert {p: p.stat().st_mtime_ns for p in tree.rglob("*")} == before
        assert status["chosen"] == {k: v["lambda"] for k, v in written["chosen"].items()}
        assert not status["choice_written"] and "the evaluate stage writes choice.json" in text
        assert all(st["runs_left"] == 0 for st in status["stages"].values())
    finally:
        for name, data in saved.items():
            (study / name).write_bytes(data)
    assert ab_status(plan, root)["choice_written"]
    capsys.readouterr()


def test_pesq_floor_is_measured_from_a_perfect_score() -> None:
    """A difference in PESQ is judged against the floor's distance from pesq_wb(x, x), not against the score."""
    from specreg_lib.metrics.audio import PESQ_WB_MAX, difference_floor, pesq_wb

    t = np.arange(16000) / 16000
    x = (np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) * 0.3).astype(np.float64)  # a voiced burst
    assert abs(pesq_wb(x, x, 16000) - PESQ_WB_MAX) < 1e-4
    assert difference_floor("pesq", 4.63) == pytest.approx(PESQ_WB_MAX - 4.63)
    assert difference_floor("mr_stft", 0.052) == 0.052 and difference_floor("fd_mel", 0.2) == 0.2
