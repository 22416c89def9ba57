"""The image study's Table 1 layout, conclusion and screen figure (specreg_lib/experiments/ab_images/figures.py)
against hand-made tables whose every sentence and cell is worked out here: a clear improvement, a clear
degradation, differences all within the floor, a p-value below 0.05 with a difference below the floor, a failed
guard, a ratio metric left out; and a hand-written choice record drawn at the right places."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from specreg_lib.experiments.ab_images.figures import (
    calibration_table,
    commands_left,
    conclusion,
    difference_spread,
    headline,
    notebook_plan,
    screen_figure,
    table1_layout,
)
from specreg_lib.experiments.ab_images.plan import pretrained_path, study_dir
from specreg_lib.experiments.ab_images.study import plan_hash
from specreg_lib.io import write_json

NAN = math.nan
FLOORS = {"log_distance": 0.02, "feature_distance": 0.25, "hf_ratio": 0.1, "train_log_distance": 0.03}


def _row(variant, metric, mean, diff=NAN, se=NAN, p=NAN, strength=None, lam=None, guard=None, seeds=3):
    return {"dataset": "photos", "variant": variant, "strength": strength, "lambda": lam, "guard_failed": guard,
            "metric": metric, "seeds": seeds, "mean": mean, "diff": diff, "diff_se": se, "p": p,
            "direction": "", "floor": FLOORS[metric], "exceeds_floor": None, "note": ""}


def hand_table() -> pd.DataFrame:
    """Baseline log_distance 1.0 / feature_distance 5.0, and four variants, one case each."""
    rows = [_row("baseline", "log_distance", 1.0), _row("baseline", "feature_distance", 5.0),
            _row("baseline", "hf_ratio", 2.0)]
    amp = {"strength": 0.1, "lam": 6.4, "guard": False}  # clear improvement in log_distance
    rows += [_row("amp/weighted", "log_distance", 0.95, -0.05, 0.01, 0.01, **amp),
             _row("amp/weighted", "feature_distance", 5.01, 0.01, 0.02, 0.6, **amp),
             _row("amp/weighted", "hf_ratio", 1.5, -0.5, 0.01, 0.001, **amp)]  # a ratio: not in the conclusion
    haar = {"strength": 0.01, "lam": 19.0, "guard": True}  # clear degradation in feature_distance; guard failed
    rows += [_row("haar/unweighted", "log_distance", 1.3, 0.3, 0.2, 0.3, **haar),
             _row("haar/unweighted", "feature_distance", 5.5, 0.5, 0.05, 0.002, **haar)]
    l1 = {"strength": 1.0, "lam": 98.0, "guard": False}  # everything within the floor, p large
    rows += [_row("pixel_l1/weighted", "log_distance", 1.2, 0.01, 0.01, 0.4, **l1),
             _row("pixel_l1/weighted", "feature_distance", 5.1, 0.1, 0.1, 0.5, **l1)]
    ff = {"strength": 0.1, "lam": 34.0, "guard": False}  # p tiny but |difference| below the floor
    rows += [_row("focal_freq/weighted", "log_distance", 1.01, -0.01, 0.001, 0.001, **ff),
             _row("focal_freq/weighted", "feature_distance", 5.0, 0.0, 0.001, 0.9, **ff)]
    return pd.DataFrame(rows)


def test_conclusion_sentences_follow_the_numbers() -> None:
    got = conclusion({"photos": hand_table()}).splitlines()
    assert got == [
        "photos: 2 of 4 variants differ from the baseline beyond the noise floor with p < 0.05; of the 8 paired "
        "tests, about 0.4 would pass by chance alone.",
        "photos, amp/weighted (ρ=0.1, λ=6.4), 3 seeds: log_distance better (Δ -0.05 ± 0.01, p = 0.01, floor 0.02).",
        "photos, haar/unweighted (ρ=0.01, λ=19), 3 seeds: feature_distance worse (Δ +0.5 ± 0.05, p = 0.002, "
        "floor 0.25).",
        "photos, pixel_l1/weighted (ρ=1, λ=98), 3 seeds: no effect detectable at this scale.",
        "photos, focal_freq/weighted (ρ=0.1, λ=34), 3 seeds: no effect detectable at this scale.",
        "photos guard: the screen's feature_distance guard failed for haar/unweighted (no strength kept "
        "feature_distance within the baseline's plus its noise floor), so the smallest strength was evaluated.",
        # best kind amp/weighted 0.95; best non-control peer focal_freq 1.01 (gap 0.06 > 0.02); control 1.2 (0.25)
        "photos, log_distance (lower is better): the best paper kind amp/weighted (0.95) is 0.06 below the best "
        "peer focal_freq/weighted (1.01; beyond the noise floor 0.02) and 0.25 below the control pixel_l1/weighted "
        "(1.2; beyond the noise floor 0.02); a gap of seed means, not a paired test.",
    ]


def test_conclusion_with_one_seed_and_without_runs() -> None:
    one = pd.DataFrame([_row("baseline", "log_distance", 1.0, seeds=1),
                        _row("amp/weighted", "log_distance", 1.001, 0.001, strength=1.0, lam=64.0, guard=False,
                             seeds=1)])
    assert conclusion({"dead_leaves": one, "photos": pd.DataFrame()}).splitlines() == [
        "dead_leaves: 0 of 1 variants differ from the baseline beyond the noise floor with p < 0.05; no paired test "
        "was possible (fewer than two seeds).",
        "dead_leaves, amp/weighted (ρ=1, λ=64), 1 seed: no effect detectable at this scale (one seed: a paired test "
        "needs at least two).",
        "dead_leaves guard: every variant had a screened strength with feature_distance within the baseline's plus "
        "its noise floor.",
        "photos: no finished evaluation runs yet, nothing to conclude."]


def test_conclusion_says_when_the_guard_admitted_every_strength() -> None:
    """A guard whose floor admits every screened strength of every variant chose nothing: the sentence says so, with
    the floor's size against the baseline's feature_distance (0.25 / 5.0 = 5%); one variant with a strength left
    out gives the ordinary sentence."""
    t = hand_table()
    t = t[t["variant"] != "haar/unweighted"].assign(candidates=[None] * 3 + [3] * 7, screened=[None] * 3 + [3] * 7)
    assert conclusion({"photos": t}).splitlines()[-2] == (
        "photos guard: feature_distance within the baseline's plus its noise floor admitted every screened strength "
        "of every variant (its noise floor 0.25 is 5% of the baseline's 5), so on photos the rule chose by "
        "log_distance alone.")
    t.loc[t["variant"] == "amp/weighted", "candidates"] = 2
    assert conclusion({"photos": t}).splitlines()[-2] == (
        "photos guard: every variant had a screened strength with feature_distance within the baseline's plus its "
        "noise floor.")


def test_table1_layout_cells_floors_and_train_data() -> None:
    t = table1_layout(hand_table(), {"photos": {"log_distance": 0.36, "feature_distance": 0.44}})
    assert list(t.columns) == ["stand-in", "method", "ρ", "λ", "guard", "seeds", "log_distance", "Δlog_distance",
                               "feature_distance", "Δfeature_distance"]  # hf_ratio is not a Table 1 column
    by = t.set_index("method")
    assert by.loc["amp/weighted", "Δlog_distance"] == "-0.05 ± 0.01, p=0.01 *"
    assert by.loc["amp/weighted", "Δfeature_distance"] == "+0.01 ± 0.02, p=0.6"
    assert by.loc["focal_freq/weighted", "Δlog_distance"] == "-0.01 ± 0.001, p=0.001"  # p small, within floor
    assert by.loc["haar/unweighted", "Δfeature_distance"] == "+0.5 ± 0.05, p=0.002 *"
    assert (by.loc["haar/unweighted", "guard"], by.loc["pixel_l1/weighted", "guard"]) == ("failed", "")
    assert (by.loc["haar/unweighted", "ρ"], by.loc["haar/unweighted", "λ"], by.loc["baseline", "λ"]) == \
        ("0.01", "19", "-")
    assert by.loc["baseline", "Δlog_distance"] == "" and by.loc["baseline", "log_distance"] == "1"
    assert list(t["method"])[-2:] == ["noise floor (held-out data)", "train_data (fresh training images)"]
    assert (by.loc["noise floor (held-out data)", "feature_distance"],
            by.loc["train_data (fresh training images)", "log_distance"]) == ("0.25", "0.36")
    assert sum(cell.endswith("*") for cell in t.filter(like="Δ").to_numpy().ravel()) == 2


def test_headline_and_spread() -> None:
    head, gloss = headline({"photos": hand_table()})
    assert head["effects_detected"] == 2.0  # the hf_ratio "effect" is not a Table 1 metric
    assert head["photos_amp_weighted_log_distance"] == 0.95 and "photos_amp_weighted_hf_ratio" not in head
    assert set(gloss) == set(head) and gloss["photos_baseline_log_distance"]["better"] == "lower"
    s = difference_spread(hand_table())
    assert (s["min"], s["max"], s["floor"]) == (0.01, 0.3, 0.02)


def test_screen_figure_draws_the_record(tmp_path) -> None:
    """A choice record written by hand: each variant's curve, the baseline, the guard limit and the red ring sit at
    the record's numbers (drawn from the file only: no run exists)."""
    plan = notebook_plan("smoke", kinds=["amp"], peers=["pixel_l1"])
    assert (plan.kinds, plan.peers, plan.weightings) == (("amp",), ("pixel_l1",), ("weighted", "unweighted"))
    d = "photos"
    key = {"plan": plan_hash(plan), "checkpoint": pretrained_path(plan, tmp_path, d).name}
    screen = [{"variant": "baseline", "weighting": None, "strength": None, "log_distance": 1.0,
               "feature_distance": 5.0}]
    chosen = {}
    for i, name in enumerate(["amp/weighted", "amp/unweighted", "pixel_l1/weighted"]):
        v, w = name.split("/")
        screen += [{"variant": v, "weighting": w, "strength": rho, "log_distance": 1.0 - 0.1 * i - rho / 10,
                    "feature_distance": 5.0 + rho} for rho in (0.1, 1.0)]
        chosen[name] = {"strength": 0.1, "lambda": 3.0, "guard_failed": i == 2, "limit": 5.25, "candidates": [0.1]}
    write_json(study_dir(plan, tmp_path) / f"choice-{d}.json", {"key": key, "screen": screen, "chosen": chosen,
               "baseline": {"log_distance": 1.0, "feature_distance": 5.0}, "feature_floor": 0.25})
    write_json(study_dir(plan, tmp_path) / f"calibration-{d}.json", {"key": key, "grad_ratio": {
        "amp/weighted": 0.0156}, "lambdas": {"amp/weighted": {"0.1": 6.4, "1.0": 64.0}}})
    fig = screen_figure(plan, tmp_path, d)
    axes = fig.axes
    assert len(axes) == 6 and [a.get_title() for a in axes[:3]] == [
        "amp/weighted: ρ=0.1", "amp/unweighted: ρ=0.1", "pixel_l1/weighted: ρ=0.1 (guard failed)"]
    ld, fd = axes[1], axes[4]  # amp/unweighted: log_distance above, feature_distance below
    curve, base, ring = ld.lines
    assert np.allclose(curve.get_xdata(), [0.1, 1.0]) and np.allclose(curve.get_ydata(), [0.89, 0.8])
    assert np.allclose(base.get_ydata(), 1.0) and np.allclose(ring.get_xydata(), [[0.1, 0.89]])
    assert ld.get_xscale() == "log"
    _, fbase, guard, fring = fd.lines
    assert np.allclose(fbase.get_ydata(), 5.0) and np.allclose(guard.get_ydata(), 5.25)
    assert np.allclose(fring.get_xydata(), [[0.1, 5.1]])
    assert screen_figure(plan, tmp_path, "dead_leaves") is None  # no record, no complete screen
    cal = calibration_table(plan, tmp_path)
    assert cal.to_dict("records") == [{"stand-in": "photos", "variant": "amp/weighted", "strength of λ=1": "0.016",
                                       "λ at ρ=0.1": "6.4", "λ at ρ=1": "64"}]


@pytest.mark.parametrize("left, want", [
    ("pretrain", ["specreg ab-images --profile cpu --status",
                  "nohup specreg ab-images --profile cpu --stage pretrain > logs/abi_pre.log 2>&1 &",
                  "# after the pretraining, one worker per core:",
                  "nohup specreg ab-images --profile cpu > logs/abi_1.log 2>&1 &",
                  "nohup specreg ab-images --profile cpu > logs/abi_2.log 2>&1 &"]),
    ("evaluate", ["specreg ab-images --profile cpu --status",
                  "nohup specreg ab-images --profile cpu > logs/abi_1.log 2>&1 &",
                  "nohup specreg ab-images --profile cpu > logs/abi_2.log 2>&1 &"]),
    (None, [])])
def test_commands_left(left, want) -> None:
    stages = {s: {"runs_left": int(s == left), "evaluations_done": 1, "evaluations": 1}
              for s in ("pretrain", "screen", "evaluate")}
    assert commands_left({"profile": "cpu", "stages": stages}) == want


def test_ablation_sentences_and_layout_follow_the_numbers() -> None:
    import pandas as pd

    from specreg_lib.experiments.ab_images.figures import ablation_layout, ablation_sentences

    def r(row, against, metric, diff, p, floor=0.01, se=0.002, mean=0.5, with_="amp/weighted"):
        return {"row": row, "against": against, "compared_with": with_, "lambda": 0.3, "metric": metric,
                "seeds": 3, "mean": mean, "diff": diff, "diff_se": se, "p": p, "direction": "", "floor": floor,
                "exceeds_floor": None}

    five, levels = "amp/weighted: five steps", "haar/weighted: levels 3"
    table = pd.DataFrame([
        r(five, "variant", "log_distance", 0.05, 0.01),  # worse, beyond the floor, p small
        r(five, "variant", "feature_distance", 0.002, 0.01),  # p small but within the floor
        r(five, "reference", "log_distance", -0.001, 0.5, with_="baseline: five steps"),
        r(five, "reference", "laplacian_error", -0.03, 0.004, with_="baseline: five steps"),  # better
        r(levels, "variant", "log_distance", -0.03, 0.02, with_="haar/weighted"),  # better
        r(levels, "variant", "feature_distance", 0.5, 0.3, floor=0.1, with_="haar/weighted"),  # not significant
        r(levels, "variant", "laplacian_error", 0.04, 0.001, with_="haar/weighted"),  # worse, beyond the floor
    ])
    assert ablation_sentences(table).splitlines() == [
        "amp/weighted: five steps (3 seeds), against amp/weighted at its chosen setting: log_distance worse "
        "(Δ +0.05 ± 0.002, p = 0.01, floor 0.01); feature_distance no effect (Δ +0.002, p = 0.01, floor 0.01). "
        "Then, against baseline: five steps: log_distance no effect (Δ -0.001, p = 0.5, floor 0.01); "
        "laplacian_error better (Δ -0.03 ± 0.002, p = 0.004, floor 0.01).",
        "haar/weighted: levels 3 (3 seeds), against haar/weighted at its chosen setting: log_distance better "
        "(Δ -0.03 ± 0.002, p = 0.02, floor 0.01); feature_distance no effect (Δ +0.5, p = 0.3, floor 0.1); "
        "laplacian_error worse (Δ +0.04 ± 0.002, p = 0.001, floor 0.01).",
    ]
    lay = ablation_layout(table).set_index("row")
    assert lay.loc[five, "Δlog_distance vs variant"] == "+0.05 ± 0.002, p=0.01 *"
    assert lay.loc[five, "Δlog_distance vs baseline"] == "-0.001 ± 0.002, p=0.5"
    assert lay.loc[levels, "Δfeature_distance vs variant"] == "+0.5 ± 0.002, p=0.3"
    assert ablation_sentences(table.iloc[:0]) == "No ablation run has finished yet."


def test_conclusion_says_when_the_best_kind_left_the_training_spectrum() -> None:
    """The best paper kind on log_distance (against held-out data) gets a caveat when its train_log_distance is worse
    than the baseline's beyond the floor with p < 0.05, and none when that difference is within the floor."""
    amp = {"strength": 0.1, "lam": 6.4, "guard": False}
    for diff, caveat in ((0.08, True), (0.01, False)):
        table = pd.concat([hand_table(), pd.DataFrame([
            _row("baseline", "train_log_distance", 0.5),
            _row("amp/weighted", "train_log_distance", 0.5 + diff, diff, 0.005, 0.004, **amp)])])
        last = conclusion({"photos": table}).splitlines()[-1]
        assert last.endswith("a gap of seed means, not a paired test.") != caveat
        if caveat:
            assert last.endswith("But amp/weighted is farther than the baseline from the TRAINING images' spectrum "
                                 "(train_log_distance Δ +0.08): part of its lead is power the training set does not "
                                 "have.")


def test_a_cpu_notebook_run_without_the_runs_does_not_erase_committed_results(tmp_path) -> None:
    """The image study's runs are not archived: a clone running notebook 10 with profile cpu has none of them, and
    must stop (one clear error) instead of replacing committed tables by empty ones; smoke, a run that has
    evaluations, and an output folder without results go on."""
    from specreg_lib.experiments.ab_images.figures import ResultsElsewhere, refuse_to_erase
    from specreg_lib.io import write_json

    def status(done: int) -> dict:
        return {"stages": {"evaluate": {"evaluations_done": done, "evaluations": 78}}}

    refuse_to_erase(tmp_path, status(0), "cpu")  # nothing committed there: nothing to protect
    write_json(tmp_path / "metrics.json", {"tables": {"photos": [], "dead_leaves": []}})
    refuse_to_erase(tmp_path, status(0), "cpu")  # empty tables: nothing to protect
    write_json(tmp_path / "metrics.json", {"tables": {"photos": [{"variant": "baseline"}]}, "written_at": "then"})
    with pytest.raises(ResultsElsewhere, match="would replace them with empty tables.*specreg ab-images --profile cpu"):
        refuse_to_erase(tmp_path, status(0), "cpu")
    refuse_to_erase(tmp_path, status(1), "cpu")  # the study's runs are here: rebuild
    refuse_to_erase(tmp_path, status(0), "smoke")  # smoke always rebuilds
