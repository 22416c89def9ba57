"""The toy front (experiments/toy/front.py): the rule on hand-worked cases and its closed-form floor, the rule as
the docs state it, every kind and peer in the toy's loss, and a smoke front end to end (screen -> choice ->
evaluation seeds -> paired table, status, figure) checked against the run folders' own metrics files."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest

from specreg_lib.errors import InputError
from specreg_lib.experiments.core.runs import results_dir, run_state
from specreg_lib.experiments.core.study import diverged_path
from specreg_lib.experiments.toy import CHECKERBOARD
from specreg_lib.experiments.toy.front import (
    BASELINE,
    DIVERGED,
    FLOOR_SEED,
    KINDS,
    PEERS,
    RULE,
    FrontError,
    above_sentences,
    archive_front,
    calibrate,
    choice,
    choose,
    eval_configs,
    evaluation_seeds,
    extension_sentences,
    front_figure,
    front_plan,
    front_sentences,
    front_status,
    front_table,
    main,
    run_config,
    run_front,
    screen_configs,
    screen_metrics,
    study_dir,
    valid_floor,
)
from specreg_lib.io import read_json

DOCS = Path(__file__).resolve().parents[1] / "docs" / "ab_images.md"


# -- the rule -------------------------------------------------------------------------------------------------------


def _m(valid: float, log_distance: float) -> dict[str, float]:
    return {"valid_fraction": valid, "log_distance": log_distance}


def test_rule_keeps_lambdas_within_the_floor_and_takes_the_lowest_log_distance() -> None:
    base = _m(0.75, 1.2)
    screen = {0.1: _m(0.75, 1.1), 1.0: _m(0.5, 0.9), 10.0: _m(0.25, 0.4)}
    # floor 0.25: valid >= 0.5 passes (0.5 is exactly on the bound), 0.25 does not; lowest log distance: lambda 1
    out = choose(screen, base, 0.25)
    assert out["candidates"] == [0.1, 1.0] and out["lambda"] == 1.0 and not out["guard_failed"]
    # floor 0: only lambda 0.1 keeps the baseline's validity
    assert choose(screen, base, 0.0)["lambda"] == 0.1


def test_rule_tie_and_guard_failure() -> None:
    base = _m(1.0, 2.0)
    tie = {0.3: _m(1.0, 0.81234), 3.0: _m(1.0, 0.81231)}  # equal to 4 significant digits: the smaller lambda
    assert choose(tie, base, 0.0)["lambda"] == 0.3
    bad = {0.3: _m(0.5, 0.5), 3.0: _m(0.25, 0.1)}  # both below 1 - 0.125
    out = choose(bad, base, 0.125)
    assert out == {"lambda": 0.3, "guard_failed": True, "limit": 0.125, "candidates": []}


def test_a_diverged_run_is_never_chosen(tmp_path) -> None:
    base = _m(0.5, 1.2)
    assert choose({0.1: _m(0.5, 1.0), 1.0: DIVERGED}, base, 0.1)["lambda"] == 0.1
    assert choose({0.1: DIVERGED, 1.0: DIVERGED}, base, 0.1)["guard_failed"]
    # a divergence record in the front's folder makes that run's metrics DIVERGED, without any run folder
    plan = front_plan("smoke", kinds=("amp",), peers=())
    cfg = run_config(plan, "amp", 5.0, 0)
    path = diverged_path(CHECKERBOARD, cfg, tmp_path, study_dir(plan, tmp_path))
    path.parent.mkdir(parents=True)
    path.write_text('{"error": "non-finite"}', encoding="utf-8")
    assert screen_metrics(plan, tmp_path, {"amp": [0.5, 5.0]}) == {("amp", 5.0): DIVERGED}


def test_valid_floor_closed_form() -> None:
    # n = 8, 4 valid: p = 5/10, floor = sqrt(2 * 0.25 / 8) = 0.25
    assert valid_floor(0.5, 8) == pytest.approx(0.25, abs=1e-15)
    # all 128 valid: p = 129/130 (Laplace), floor = sqrt(2 * 129 / 130^2 / 128) = 0.0109216... (never 0)
    assert valid_floor(1.0, 128) == pytest.approx(math.sqrt(2 * 129 / 130 ** 2 / 128), rel=1e-12)
    assert valid_floor(1.0, 128) == pytest.approx(0.010921, abs=1e-6)


def test_docs_quote_the_rule_verbatim() -> None:
    text = " ".join(DOCS.read_text(encoding="utf-8").split())
    assert " ".join(RULE.split()) in text
    section = text.split("## Toy front", 1)[1].split("## Still to come", 1)[0]
    assert " ".join(RULE.split()) in section


def test_plan_refuses_scoring_on_the_screening_seed() -> None:
    with pytest.raises(FrontError, match="exclude the screening seed") as err:
        front_plan("smoke", eval_seeds=(0, 1))
    assert isinstance(err.value, InputError) and isinstance(err.value, ValueError)
    with pytest.raises(FrontError, match="choose one of smoke, cpu"):
        front_plan("paper")


def test_extension_seeds_are_apart_and_leave_the_records_key_alone() -> None:
    """Extension seeds must differ from the screening and registered seeds; no record depends on evaluation seeds,
    so the records' key (plan_hash) ignores them, and nothing else."""
    from specreg_lib.experiments.toy.front import plan_hash

    for bad in ((0,), (2,), (4, 4)):
        with pytest.raises(FrontError, match="extension_seeds"):
            front_plan("smoke", extension_seeds=bad)
    plan = front_plan("smoke")
    assert plan_hash(front_plan("smoke", eval_seeds=(1,), extension_seeds=(2, 3))) == plan_hash(plan)
    assert plan_hash(front_plan("smoke", screen_seed=7)) != plan_hash(plan)
    assert plan_hash(front_plan("smoke", calibration_batches=2)) != plan_hash(plan)


def test_cpu_plan_leaves_the_checkerboard_profiles_alone() -> None:
    """The front's runs are overrides: the checkerboard cpu baseline keeps its hash; the front's is another."""
    plan = front_plan("cpu")
    own = CHECKERBOARD.config("cpu", {"regularizer": None, "train.seed": 1})
    front = run_config(plan, BASELINE, None, 1)
    assert own.data.size == 64 and front.data.size == 32 and front.threads == 1
    assert CHECKERBOARD.run_hash(own) != CHECKERBOARD.run_hash(front)
    n_runs = 1 + len(plan.variants) * len(plan.strengths) + len(plan.eval_seeds) * (1 + len(plan.variants))
    assert n_runs == 60 and plan.extension_seeds == (4, 5)  # the registered front, then 18 extension runs


def test_cpu_strong_plan_reuses_the_fronts_runs_and_only_adds_strengths(tmp_path) -> None:
    """The follow-up above rho 1 (docs/ab_images.md, Above ρ 1): the cpu front's net, training and seeds, so its
    baseline and rho-1 runs are the front's own run folders; the calibration's ratio depends on the kind, never on
    the strengths or on which other kinds are screened, so rho 1 gives the committed lambdas."""
    import argparse

    from specreg_lib.experiments.toy.front import add_arguments

    cpu, strong = front_plan("cpu"), front_plan("cpu_strong")
    assert strong.kinds == ("amp", "amp_phase") and strong.peers == () and 1.0 in strong.strengths
    assert max(strong.strengths) > max(cpu.strengths)
    assert set(evaluation_seeds(strong)) == set(evaluation_seeds(cpu)) and strong.screen_seed == cpu.screen_seed
    for seed in (cpu.screen_seed, *evaluation_seeds(cpu)):
        assert CHECKERBOARD.run_hash(run_config(strong, BASELINE, None, seed)) == \
            CHECKERBOARD.run_hash(run_config(cpu, BASELINE, None, seed))
        assert CHECKERBOARD.run_hash(run_config(strong, "amp", 5.8, seed)) == \
            CHECKERBOARD.run_hash(run_config(cpu, "amp", 5.8, seed))
    smoke = front_plan("smoke", kinds=("amp", "amp_phase"), peers=())
    one = calibrate(dataclasses.replace(smoke, kinds=("amp_phase",), strengths=(1.0, 3.0)), tmp_path, write=False)
    both = calibrate(smoke, tmp_path, write=False)
    assert one["grad_ratio"]["amp_phase"] == both["grad_ratio"]["amp_phase"]
    assert one["lambdas"]["amp_phase"][0] == both["lambdas"]["amp_phase"][smoke.strengths.index(1.0)]
    assert one["lambdas"]["amp_phase"][1] == float(f"{3 / both['grad_ratio']['amp_phase']:.2g}")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--profile", "cpu_strong"]).profile == "cpu_strong"
    with pytest.raises(SystemExit):
        parser.parse_args(["--profile", "cpu_stronger"])


def test_every_kind_and_peer_runs_in_the_toy_loss(tmp_path) -> None:
    """Calibration builds each variant's DDPMLoss (alpha_bar weighting) on the toy's (B, 1, H, W) batches: a finite
    gradient ratio r > 0 each, and lambda = strength / r to 2 significant digits."""
    plan = front_plan("smoke")
    record = calibrate(plan, tmp_path, write=False)
    assert not (study_dir(plan, tmp_path) / "calibration.json").exists()  # write=False writes nothing
    assert set(record["grad_ratio"]) == set(KINDS) | set(PEERS)
    for kind, r in record["grad_ratio"].items():
        assert math.isfinite(r) and r > 0, kind
        cfg = run_config(plan, kind, 1.0, 0)
        assert cfg.regularizer.weighting.kind == "alpha_bar" and cfg.data.size == 32
        for rho, lam in zip(plan.strengths, record["lambdas"][kind], strict=True):
            assert abs(lam * r / rho - 1) <= 0.05, (kind, rho, lam, r)  # 2 significant digits: within 5%


# -- the smoke front end to end ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_front(tmp_path_factory):
    """One kind and one peer (the calibration test covers all eight): 1 + 2 x 2 screen runs, 2 x 3 evaluation runs."""
    root = tmp_path_factory.mktemp("front")
    plan = front_plan("smoke", kinds=("amp_phase",), peers=("focal_freq",))
    run_front(plan, root, "all", say=lambda line: None)
    return plan, root


def _metrics(cfg, root) -> dict:
    return read_json(results_dir(CHECKERBOARD, cfg, root) / "metrics.json")


def test_smoke_front_choice_follows_the_rule_from_the_run_files(smoke_front) -> None:
    plan, root = smoke_front
    record = read_json(study_dir(plan, root) / "choice.json")
    lambdas = read_json(study_dir(plan, root) / "calibration.json")["lambdas"]
    screen = screen_configs(plan, lambdas)
    assert len(screen) == 1 + 2 * len(plan.strengths)
    base = _metrics(screen[0][2], root)
    n = screen[0][2].sample.n_samples
    p = (round(base["valid_fraction"] * n) + 1) / (n + 2)
    floor = math.sqrt(2 * p * (1 - p) / n)
    assert record["valid_floor"] == pytest.approx(floor)
    for kind in plan.variants:
        rows = [(lam, _metrics(cfg, root)) for v, lam, cfg in screen if v == kind]
        ok = [(float(f"{m['log_distance']:.4g}"), lam) for lam, m in rows
              if m["valid_fraction"] >= base["valid_fraction"] - floor]
        want = min(ok)[1] if ok else min(lam for lam, _ in rows)
        assert record["chosen"][kind]["lambda"] == want
        assert record["chosen"][kind]["strength"] == plan.strengths[lambdas[kind].index(want)]


def test_smoke_front_table_pairs_each_seed_with_its_baseline(smoke_front) -> None:
    plan, root = smoke_front
    record = read_json(study_dir(plan, root) / "choice.json")
    runs = {(v, cfg.train.seed): cfg for v, cfg in eval_configs(plan, record)}
    for (v, _), cfg in runs.items():
        assert run_state(CHECKERBOARD, cfg, root)[0] == "done"
        assert (cfg.regularizer is None) == (v == BASELINE)
        if v != BASELINE:
            assert cfg.regularizer.lambda_spec == record["chosen"][v]["lambda"]
    table = front_table(plan, root)
    assert set(table["variant"]) == {BASELINE, *plan.variants}
    for kind in plan.variants:
        for metric in ("log_distance", "valid_fraction", "binariness"):
            d = [_metrics(runs[(kind, s)], root)[metric] - _metrics(runs[(BASELINE, s)], root)[metric]
                 for s in plan.eval_seeds]
            row = table[(table["variant"] == kind) & (table["metric"] == metric)].iloc[0]
            assert row["seeds"] == 2 and row["diff"] == pytest.approx((d[0] + d[1]) / 2, abs=1e-12)
            # two pairs: SE = |d1 - d2| / 2; t has 1 dof (Cauchy): p = 1 - (2 / pi) atan(|t|)
            assert row["diff_se"] == pytest.approx(abs(d[0] - d[1]) / 2, abs=1e-12)
            if d[0] != d[1]:
                t = row["diff"] / row["diff_se"]
                assert row["p"] == pytest.approx(1 - 2 / math.pi * math.atan(abs(t)), rel=1e-6)
            assert row["effect"] == (row["p"] < 0.05 and abs(row["diff"]) > row["floor"]) if metric != \
                "binariness" else not row["effect"]


def test_an_extension_seed_is_tabled_beside_the_registered_ones_never_instead(smoke_front) -> None:
    """The smoke front's seeds 1 and 2 read as registered seed 1 plus extension seed 2 (same records, same runs):
    the registered table is seed 1 alone, the extended one is the full front's table, and status counts both."""
    import pandas as pd

    plan, root = smoke_front
    split = front_plan("smoke", kinds=plan.kinds, peers=plan.peers, eval_seeds=(1,), extension_seeds=(2,))
    registered, extended = front_table(split, root), front_table(split, root, extension=True)
    assert set(registered["seeds"]) == {1} and set(extended["seeds"]) == {2}
    pd.testing.assert_frame_equal(extended, front_table(plan, root))
    assert front_status(split, root)["stages"]["evaluate"]["evaluations_done"] == 2 * (1 + len(plan.variants))
    assert extension_sentences(registered, registered) == (
        "No extension seed has finished yet: the registered table is all there is.")
    # the figure: registered means filled, all-seed means hollow beside them, one marker per variant each
    drawn = {"filled": {}, "hollow": {}}
    for bar in front_figure(split, root).axes[0].containers:
        line = bar.lines[0]
        kind = "hollow" if line.get_markerfacecolor() == "none" else "filled"
        drawn[kind][(float(line.get_xdata()[0]), float(line.get_ydata()[0]))] = bar.get_label()
    for kind, rows in (("filled", registered), ("hollow", extended)):
        by = rows.set_index(["variant", "metric"])["mean"]
        want = {(float(by[(v, "log_distance")]), float(by[(v, "valid_fraction")])) for v in rows["variant"].unique()}
        assert set(drawn[kind]) == want, kind
    assert "seeds 1,2 mean ± SE (extension)" in drawn["hollow"].values()
    assert "seeds 1 mean ± SE" in drawn["filled"].values()
    unfinished = front_plan("smoke", kinds=plan.kinds, peers=plan.peers, eval_seeds=(1,), extension_seeds=(2, 3))
    assert all(b.lines[0].get_markerfacecolor() != "none"  # seed 3 never ran: no hollow point is drawn
               for b in front_figure(unfinished, root).axes[0].containers)


def test_extension_sentences_follow_the_rule() -> None:
    """Hand-made tables: a registered effect holds when it is an effect over all seeds with the same sign; one that
    loses p, the floor or its sign does not hold; an effect only over all seeds is named as such."""
    import pandas as pd

    def r(variant, metric, diff, p, seeds, floor=0.01):
        return {"variant": variant, "metric": metric, "seeds": seeds, "diff": diff, "diff_se": 0.01, "p": p,
                "floor": floor, "effect": variant != BASELINE and p < 0.05 and abs(diff) > floor}

    registered = pd.DataFrame([r(BASELINE, "log_distance", math.nan, math.nan, 3),
                               r("amp", "log_distance", -0.3, 0.01, 3), r("haar", "log_distance", -0.2, 0.02, 3),
                               r("facl", "log_distance", 0.3, 0.03, 3), r("focal_freq", "log_distance", -0.1, 0.2, 3)])
    extended = pd.DataFrame([r(BASELINE, "log_distance", math.nan, math.nan, 5),
                             r("amp", "log_distance", -0.25, 0.001, 5), r("haar", "log_distance", -0.2, 0.09, 5),
                             r("facl", "log_distance", -0.3, 0.01, 5), r("focal_freq", "log_distance", -0.1, 0.01, 5)])
    assert extension_sentences(registered, extended).splitlines() == [
        "amp log_distance: holds over 5 seeds (Δ -0.25 ± 0.01, p = 0.001; registered Δ -0.3, p = 0.01).",
        "haar log_distance: does not hold over 5 seeds (Δ -0.2 ± 0.01, p = 0.09; registered Δ -0.2, p = 0.02).",
        "facl log_distance: does not hold over 5 seeds (Δ -0.3 ± 0.01, p = 0.01; registered Δ +0.3, p = 0.03).",
        "focal_freq log_distance: an effect only over 5 seeds (Δ -0.1 ± 0.01, p = 0.01), not in the registered "
        "result."]


def test_above_sentences_follow_the_registered_rule() -> None:
    """Hand-made records (docs/ab_images.md, Above ρ 1): a kind whose stronger lambdas fail the guard stays, and
    says so with their valid fractions; one whose stronger candidate has a higher log distance stays, and says
    that; one where no lambda passes says so; one that moves is judged per metric against the front's row over the
    same seeds: a gain beyond sqrt(SE^2 + SE^2) is a yes, an effect in the worse direction a cost, a smaller gain
    none."""
    import pandas as pd

    def pt(variant, lam, ld, valid):
        return {"variant": variant, "lambda": lam, "log_distance": ld, "valid_fraction": valid, "binariness": 0.4}

    def pick(lam, strength, candidates, failed=False):
        return {"lambda": lam, "strength": strength, "candidates": candidates, "guard_failed": failed, "limit": 0.58}

    record = {"screen": [pt(BASELINE, None, 1.7, 0.48),
                         pt("amp", 5.8, 1.1, 0.43), pt("amp", 17, 0.9, 0.2), pt("amp", 58, 0.8, 0.1),
                         pt("haar", 0.1, 1.5, 0.6), pt("haar", 0.3, 1.6, 0.6),
                         pt("facl", 2.0, 1.6, 0.3), pt("facl", 6.0, 1.5, 0.2),
                         pt("amp_phase", 5.3, 1.2, 0.77), pt("amp_phase", 16, 1.0, 0.7), pt("amp_phase", 53, 1.3, 0.6),
                         pt("pixel_l1", 3.0, 1.6, 0.9), pt("pixel_l1", 9.0, 1.5, 0.9)],
              "chosen": {"amp": pick(5.8, 1.0, [5.8]), "haar": pick(0.1, 1.0, [0.1, 0.3]),
                         "facl": pick(2.0, 1.0, [], failed=True), "amp_phase": pick(16, 3.0, [5.3, 16, 53]),
                         "pixel_l1": pick(9.0, 3.0, [3.0, 9.0])}}

    def row(variant, metric, diff, se, p, strength, floor=0.01):
        return {"variant": variant, "metric": metric, "seeds": 5, "diff": diff, "diff_se": se, "p": p,
                "strength": strength, "effect": p < 0.05 and abs(diff) > floor}

    table = pd.DataFrame([row("amp_phase", "log_distance", -0.7, 0.03, 0.001, 3.0),
                          row("amp_phase", "valid_fraction", -0.2, 0.03, 0.01, 3.0),
                          row("pixel_l1", "log_distance", -0.15, 0.01, 0.001, 3.0),
                          row("pixel_l1", "valid_fraction", 0.02, 0.03, 0.5, 3.0)])
    reference = pd.DataFrame([row("amp_phase", "log_distance", -0.5, 0.02, 0.001, 1.0),
                              row("amp_phase", "valid_fraction", 0.14, 0.034, 0.016, 1.0),
                              row("pixel_l1", "log_distance", -0.14, 0.01, 0.001, 1.0),
                              row("pixel_l1", "valid_fraction", 0.47, 0.034, 0.001, 1.0)])
    assert above_sentences(record, table, reference).splitlines() == [
        "amp: the rule stays at ρ 1 (λ 5.8; λ 17: valid_fraction 0.2, below the guard's 0.42; λ 58: valid_fraction "
        "0.1, below the guard's 0.42): no, a stronger term is not taken on seed 0.",
        "haar: the rule stays at ρ 1 (λ 0.1; λ 0.3: log distance 1.6, not below 1.5): no, a stronger term is not "
        "taken on seed 0.",
        "facl: no strength passes the guard on seed 0 (valid_fraction at least 0.42; λ 2: 0.3; λ 6: 0.2), ρ 1 "
        "included: nothing stronger is taken.",
        "amp_phase: the rule moves to ρ 3 (λ 16); over 5 seeds, log_distance Δ -0.7 ± 0.03 (p 0.001) against ρ 1's "
        "-0.5 ± 0.02: yes, beyond ρ 1's by 0.2 (> 0.036); valid_fraction Δ -0.2 ± 0.03 (p 0.01) against ρ 1's "
        "+0.14 ± 0.034: a cost.",
        "pixel_l1: the rule moves to ρ 3 (λ 9); over 5 seeds, log_distance Δ -0.15 ± 0.01 (p 0.001) against ρ 1's "
        "-0.14 ± 0.01: no gain over ρ 1 (by +0.01, margin 0.014); valid_fraction Δ +0.02 ± 0.03 (p 0.5) against "
        "ρ 1's +0.47 ± 0.034: not an effect."]


def test_above_report_reads_a_follow_up_where_it_stands(smoke_front, monkeypatch) -> None:
    """A follow-up plan (``PLANS[<profile>_strong]``) with one strength above the smoke front's: before it runs the
    report says what to run; after, its shared seed-0 points are the front's own runs (difference 0), its text is
    the rule's sentences on its table against the front's, and metrics.json gets its screen, choice and table."""
    from specreg_lib.experiments.toy import front as front_module

    plan, root = smoke_front
    strong = front_plan("smoke", kinds=plan.kinds, peers=(), strengths=(*plan.strengths, 3.0))
    strong = dataclasses.replace(strong, profile="smoke_strong")
    assert front_module.above_report(plan, root, front_table(plan, root))["text"].startswith("This profile has no")
    monkeypatch.setitem(front_module.PLANS, "smoke_strong", strong)
    before = front_module.above_report(plan, root, front_table(plan, root))
    assert before["text"] == "The follow-up's screen is not complete: specreg toy-front --profile smoke_strong."
    assert before["metrics"] == {} and before["status"]["stages"]["screen"]["runs_left"] == 1  # only the new rho
    run_front(strong, root, "all", say=lambda line: None)
    extended = front_table(plan, root)
    report = front_module.above_report(plan, root, extended)
    rep = report["reproduction"]
    assert len(rep) == 3 * (1 + len(plan.strengths)) and (rep["difference"] == 0).all()  # baseline + shared lambdas
    record = choice(strong, root, write=False)
    assert report["text"] == above_sentences(record, front_table(strong, root), extended)
    assert report["metrics"]["above_chosen"] == record["chosen"]
    assert len(report["metrics"]["above_table"]) == len(front_table(strong, root))
    lines = {ln.get_label(): ln for ln in front_figure(plan, root).axes[0].get_lines()}
    screened = {p["lambda"]: p for p in record["screen"] if p["variant"] == plan.kinds[0]}
    dotted = lines[f"{plan.kinds[0]}: above the top strength"]  # from the front's top point to the follow-up's
    assert list(dotted.get_xdata()) == [screened[lam]["log_distance"] for lam in sorted(screened)[-2:]]


def test_front_table_floors_are_the_data_draw_and_the_binomial_floor(smoke_front) -> None:
    """log_distance's floor is a fresh draw of true checkerboards (n_samples, FLOOR_SEED) scored against the
    ground-truth reference, written out here from the metric functions; valid_fraction's is the binomial closed
    form at the baseline's mean rate over the evaluation seeds; binariness has none."""
    import torch

    from specreg_lib.experiments.toy.experiment import reference
    from specreg_lib.metrics import floored_spectrum, spectral_log_distance

    plan, root = smoke_front
    table = front_table(plan, root)
    cfg = run_config(plan, BASELINE, None, plan.screen_seed)
    n = cfg.sample.n_samples
    draw = cfg.data.build()(n, torch.Generator().manual_seed(FLOOR_SEED))
    want = spectral_log_distance(floored_spectrum(draw, cfg.evaluate.log_floor)[1],
                                 floored_spectrum(reference(cfg), cfg.evaluate.log_floor)[1])
    by = {(r["variant"], r["metric"]): r for r in table.to_dict("records")}
    assert by[(plan.variants[0], "log_distance")]["floor"] == pytest.approx(float(want), rel=1e-12)
    assert 0 < float(want) < 0.1 * by[(BASELINE, "log_distance")]["mean"]  # the data are far closer than a model
    k = round(by[(BASELINE, "valid_fraction")]["mean"] * n)
    p = (k + 1) / (n + 2)
    assert by[(plan.variants[0], "valid_fraction")]["floor"] == pytest.approx(math.sqrt(2 * p * (1 - p) / n))
    assert all(r["floor"] is None or (isinstance(r["floor"], float) and math.isnan(r["floor"]))
               for r in table.to_dict("records") if r["metric"] == "binariness")


def test_smoke_front_resumes_and_reports_nothing_left(smoke_front) -> None:
    plan, root = smoke_front
    files = sorted((root / "checkerboard").glob("*/results/*/metrics.json"))
    stamps = [f.stat().st_mtime_ns for f in files]
    run_front(plan, root, "all", say=lambda line: None)  # everything is only re-read
    assert [f.stat().st_mtime_ns for f in files] == stamps
    status = front_status(plan, root)
    for name in ("screen", "evaluate"):
        st = status["stages"][name]
        assert st["runs_left"] == 0 and st["steps_left"] == 0 and st["evaluations_done"] == st["evaluations"]
    assert status["stages"]["evaluate"]["evaluations"] == len(plan.eval_seeds) * 3 and status["eta_seconds"] == 0


def test_smoke_front_figure_draws_the_screen_lines(smoke_front, tmp_path) -> None:
    plan, root = smoke_front
    lambdas = read_json(study_dir(plan, root) / "calibration.json")["lambdas"]
    fig = front_figure(plan, root)
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    for kind in plan.variants:
        cfgs = [cfg for v, _, cfg in screen_configs(plan, lambdas) if v == kind]  # in lambda order
        assert list(lines[kind].get_xdata()) == [_metrics(c, root)["log_distance"] for c in cfgs]
        assert list(lines[kind].get_ydata()) == [_metrics(c, root)["valid_fraction"] for c in cfgs]
    labels = {t.get_text() for t in ax.texts}
    assert {f"{lam:g}" for kind in plan.variants for lam in lambdas[kind]} <= labels
    fig.savefig(tmp_path / "front.png")
    assert (tmp_path / "front.png").stat().st_size > 10_000


def test_an_archived_front_resumes_on_a_fresh_clone_without_training(smoke_front, tmp_path, monkeypatch) -> None:
    """--archive copies the finished runs' metrics (never their arrays) and the study's records into the checkout;
    a fresh root then counts every run as done, rebuilds the same table and screen figure, trains nothing, and
    still refuses an archived result whose config was edited."""
    import pandas as pd

    from specreg_lib.experiments.core.runs import RunFolderError, archive_result, run

    plan, root = smoke_front
    clone = tmp_path / "clone"  # the checkout the archive is committed in
    monkeypatch.setenv("SPECREG_ROOT", str(clone))
    said = []
    assert archive_front(plan, root, say=said.append) == {"runs": 11, "results": 11, "records": 2, "unfinished": 0}
    assert said[0].startswith("archived the metrics of 11 finished runs (11 results) in data/results/checkerboard/")
    archived = sorted((clone / "data/results/checkerboard").glob("*/results/*/metrics.json"))
    assert len(archived) == 1 + 2 * 2 + 3 * len(plan.eval_seeds)
    assert not list((clone / "data/results").rglob("*.pt"))  # metrics only: samples stay with the run folders
    assert read_json(clone / "data/pretrained/toy_front/smoke/choice.json") == read_json(
        study_dir(plan, root) / "choice.json")

    fresh = tmp_path / "fresh"
    status = front_status(plan, fresh)
    for name in ("screen", "evaluate"):
        st = status["stages"][name]
        assert st["runs_left"] == 0 and st["evaluations_done"] == st["evaluations"] > 0, (name, st)
    pd.testing.assert_frame_equal(front_table(plan, fresh), front_table(plan, root))
    lambdas = read_json(study_dir(plan, root) / "calibration.json")["lambdas"]
    lines = {ln.get_label(): ln for ln in front_figure(plan, fresh).axes[0].get_lines()}
    for kind in plan.variants:  # the screen drawn from the committed choice record: the run files' numbers
        cfgs = [cfg for v, _, cfg in screen_configs(plan, lambdas) if v == kind]
        assert list(lines[kind].get_xdata()) == [_metrics(c, root)["log_distance"] for c in cfgs]
    run_front(plan, fresh, "all", say=lambda line: None)  # only re-reads
    assert not list(fresh.rglob("*.pt"))  # nothing trained, sampled or snapshotted
    record = read_json(study_dir(plan, root) / "choice.json")
    cfg = eval_configs(plan, record)[0][1]
    res = run(CHECKERBOARD, cfg, fresh)
    assert res.archived and res.arrays == {} and res.metrics == _metrics(cfg, root)
    with pytest.raises(RunFolderError, match="installed from the archive"):
        res.samples  # noqa: B018

    # an archived result whose config was edited is refused where it is read, as a local one is
    edited = results_dir(CHECKERBOARD, cfg, clone / "data/results") / "config.json"
    edited.write_text(edited.read_text().replace('"seed": 1', '"seed": 7', 1))
    with pytest.raises(RunFolderError, match="describes another run"):
        run(CHECKERBOARD, cfg, tmp_path / "other")
    unfinished = run_config(plan, BASELINE, None, 99)
    with pytest.raises(RunFolderError, match="only a finished run can be archived"):
        archive_result(CHECKERBOARD, unfinished, root)


def test_door_status_and_a_stage_asked_for_too_early(tmp_path, capsys) -> None:
    assert main(["--profile", "smoke", "--root", str(tmp_path), "--status"]) == 0
    assert "toy front, profile smoke" in capsys.readouterr().out
    assert main(["--profile", "smoke", "--root", str(tmp_path), "--stage", "evaluate"]) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"toy front: error: .*run --stage screen first.*", err) and "\n" not in err


def test_front_sentences_follow_the_numbers() -> None:
    """Hand-made table: an effect needs p < 0.05 AND |Δ| beyond the floor; the closing line names the variants with
    a lower log distance that did not lose valid checkerboards."""
    import pandas as pd

    def r(variant, metric, diff, p, floor, guard=False):
        return {"variant": variant, "lambda": 2.0, "strength": 0.2, "guard_failed": guard, "metric": metric,
                "seeds": 3, "mean": 0.5, "se": 0.01, "diff": diff, "diff_se": 0.01, "p": p, "direction": "",
                "note": "", "floor": floor, "effect": p < 0.05 and abs(diff) > floor}

    table = pd.DataFrame([
        r(BASELINE, "log_distance", math.nan, math.nan, 0.01), r(BASELINE, "valid_fraction", math.nan, math.nan, 0.06),
        r("amp", "log_distance", -0.3, 0.01, 0.01), r("amp", "valid_fraction", -0.02, 0.3, 0.06),
        r("haar", "log_distance", -0.3, 0.01, 0.01, guard=True),
        r("haar", "valid_fraction", -0.2, 0.01, 0.06, guard=True),
        r("facl", "log_distance", -0.005, 0.001, 0.01), r("facl", "valid_fraction", 0.1, 0.04, 0.06),
    ])
    assert front_sentences(table).splitlines() == [
        "amp (ρ=0.2, λ=2), 3 seeds: log_distance better (Δ -0.3 ± 0.01, p = 0.01, floor 0.01); valid_fraction "
        "no effect (Δ -0.02, p = 0.3, floor 0.06).",
        "haar (ρ=0.2, λ=2), 3 seeds: log_distance better (Δ -0.3 ± 0.01, p = 0.01, floor 0.01); valid_fraction "
        "worse (Δ -0.2 ± 0.01, p = 0.01, floor 0.06); its guard failed (no screened lambda kept the baseline's "
        "validity).",
        "facl (ρ=0.2, λ=2), 3 seeds: log_distance no effect (Δ -0.005, p = 0.001, floor 0.01); valid_fraction "
        "better (Δ +0.1 ± 0.01, p = 0.04, floor 0.06).",
        "Lower log distance without losing valid checkerboards: amp.",
    ]
    assert front_sentences(table.iloc[:0]) == "No evaluation run of the toy front has finished yet."
