"""Table 1 pipeline (specreg_lib.experiments.edm.table1): paired statistics against scipy, and the smoke
pipeline end to end (fine-tune -> generate -> stand-in FID), resumable and skipped when complete."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from specreg_lib.experiments.edm.table1 import (
    Table1Plan,
    cell_dir,
    cells,
    paired_differences,
    run_table1,
    table1_status,
)


def _rows(variant, weighting, fids):
    return [{"preset": "afhqv2-64", "family": "vp", "variant": variant, "weighting": weighting, "seed_index": i,
             "fid": f} for i, f in enumerate(fids)]


def test_paired_differences_match_a_paired_t_test():
    base = [2.10, 2.20, 2.05]
    clear = [b - d for b, d in zip(base, (0.050, 0.052, 0.049))]
    noise = [b + d for b, d in zip(base, (0.02, -0.03, 0.01))]
    rows = _rows("baseline", None, base) + _rows("amp", "weighted", clear) + _rows("haar", "weighted", noise)
    out = {r["variant"]: r for r in paired_differences(rows)}
    for name, fids in (("amp", clear), ("haar", noise)):
        d = np.subtract(fids, base)
        assert out[name]["n"] == 3 and out[name]["mean_diff"] == pytest.approx(d.mean())
        assert out[name]["se"] == pytest.approx(d.std(ddof=1) / math.sqrt(3))
        ref = stats.ttest_rel(fids, base)
        assert out[name]["p_value"] == pytest.approx(ref.pvalue) and out[name]["t"] == pytest.approx(ref.statistic)
        assert out[name]["dof"] == 2 and out[name]["unpaired"] == []
    assert out["amp"]["distinguishable"] and not out["haar"]["distinguishable"]
    assert out["amp"]["direction"] == "better" and out["haar"]["direction"] == "unclear"  # FID: lower is better


def test_paired_differences_report_unmatched_seeds_and_one_seed():
    rows = _rows("baseline", None, [2.1, 2.2]) + _rows("amp", "weighted", [2.0, 2.15, 1.9])
    amp = {r["variant"]: r for r in paired_differences(rows)}["amp"]
    assert amp["n"] == 2 and amp["unpaired"] == [2] and amp["mean_diff"] == pytest.approx(-0.075)
    assert amp["p_value"] == pytest.approx(stats.ttest_rel([2.0, 2.15], [2.1, 2.2]).pvalue)
    one = paired_differences(_rows("baseline", None, [2.1]) + _rows("amp", "weighted", [2.0]))[0]
    assert one["n"] == 1 and one["mean_diff"] == pytest.approx(-0.1)
    assert one["se"] is None and one["p_value"] is None and one["t"] is None and one["dof"] is None
    assert one["direction"] == "n/a" and not one["distinguishable"]


def test_smoke_table1_runs_every_stage_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECREG_ROOT", str(tmp_path))
    plan = Table1Plan(families=("vp",), variants=("amp",), weightings=("unweighted",), seeds=(1, 2),
                      images_per_set=3, features="standin", generate_batch=3, device="cpu",
                      overrides=(("train.steps", 1), ("sample.n_samples", 2), ("sample.num_steps", 2),
                                 ("evaluate.n_reference", 8)))
    assert table1_status(plan, tmp_path)["left"] == {"finetune": 4, "generate": 6, "fid": 6}
    rows = run_table1(plan, tmp_path, progress=False)
    assert sorted((r["variant"], r["seed_index"]) for r in rows) == [
        ("amp", 0), ("amp", 1), ("baseline", 0), ("baseline", 1), ("pretrained", 0), ("pretrained", 1)]
    assert all(r["features"] == "standin" and r["fid"] >= 0 for r in rows)
    # generation sets are disjoint and paired: set i = seeds 3i..3i+2 for every cell of seed index i
    assert {tuple(r["seeds"]) for r in rows if r["seed_index"] == 1} == {(3, 5)}
    stamp = [(cell_dir(tmp_path, c) / "fid.json").stat().st_mtime_ns for c in cells(plan)]
    assert run_table1(plan, tmp_path, progress=False) == rows  # complete: nothing is redone
    assert stamp == [(cell_dir(tmp_path, c) / "fid.json").stat().st_mtime_ns for c in cells(plan)]
    status = table1_status(plan, tmp_path)
    assert status["left"] == {"finetune": 0, "generate": 0, "fid": 0} and status["eta_seconds"] == 0
    assert status["seconds_per_image"] > 0
    diffs = {r["variant"]: r for r in paired_differences(rows)}
    assert diffs["amp"]["n"] == 2 and set(diffs) == {"amp", "pretrained"}


def test_plan_refuses_bad_input():
    with pytest.raises(ValueError, match="unknown preset"):
        Table1Plan(presets=("imagenet-64",))
    with pytest.raises(ValueError, match="unknown regularizer"):
        Table1Plan(variants=("l2",))


def test_table1_frame_puts_ours_beside_the_paper():
    from specreg_lib.experiments.edm.table1 import PAPER_TABLE1, table1_frame, table1_headline

    assert PAPER_TABLE1[("ffhq-64", "vp")][("amp", "unweighted")] == (2.31, 0.03)
    assert PAPER_TABLE1[("afhqv2-64", "ve")][("pretrained", None)] == (2.17, 0.0)
    assert len(PAPER_TABLE1) == 6 and all(len(block) == 9 for block in PAPER_TABLE1.values())
    rows = _rows("baseline", None, [2.0, 2.1]) + _rows("amp", "unweighted", [1.9, 2.05])
    frame = table1_frame(rows).set_index("variant")
    assert frame.loc["amp", "fid_mean"] == pytest.approx(1.975)
    assert frame.loc["amp", "fid_std"] == pytest.approx(np.std([1.9, 2.05], ddof=1))
    assert frame.loc["amp", "paper_mean"] == 2.05  # AFHQ VP unweighted amp
    assert frame.loc["amp", "diff_vs_baseline"] == pytest.approx(-0.075)
    d = np.subtract([1.9, 2.05], [2.0, 2.1])
    assert frame.loc["amp", "diff_se"] == pytest.approx(d.std(ddof=1) / math.sqrt(2))
    assert frame.loc["amp", "p_value"] == pytest.approx(stats.ttest_rel([1.9, 2.05], [2.0, 2.1]).pvalue)
    assert frame.loc["amp", "pairs"] == 2 and frame.loc["baseline", "direction"] == "reference"
    head, glossary = table1_headline(frame.reset_index(), "standin")
    assert head == {"afhqv2-64_vp_baseline_fid": pytest.approx(2.05), "afhqv2-64_vp_amp_unweighted_fid":
                    pytest.approx(1.975)}
    assert glossary["afhqv2-64_vp_amp_unweighted_fid"]["better"] == "lower"
    assert "not FID" in glossary["afhqv2-64_vp_amp_unweighted_fid"]["meaning"]


def test_pooled_pixels_are_block_means():
    from specreg_lib.metrics import PooledPixels

    x = np.random.default_rng(0).integers(0, 256, (2, 3, 8, 8)).astype(np.uint8)
    blocks = x.astype(np.float64).reshape(2, 3, 4, 2, 4, 2).mean(axis=(3, 5)) / 255  # 2x2 blocks -> 4x4
    feats = PooledPixels(k=4)(torch.from_numpy(x))
    assert feats.shape == (2, 48)
    np.testing.assert_allclose(feats.numpy(), blocks.reshape(2, 48), rtol=1e-6)


def test_finetune_table_pairs_by_arch_and_seed():
    from types import SimpleNamespace

    from specreg_lib.experiments.edm.experiment import edm_experiment
    from specreg_lib.experiments.edm.figures import finetune_table, headline

    exp = edm_experiment("afhqv2-64")
    runs = []
    for family, variant, seed, ld in [("vp", "baseline", 1, 1.0), ("vp", "baseline", 2, 2.0), ("vp", "amp", 1, 0.5),
                                    ("vp", "amp", 2, 1.9), ("ve", "baseline", 1, 9.0)]:
        cfg = exp.config("smoke", {"model.family": family, "regularizer": variant, "train.seed": seed})
        runs.append(SimpleNamespace(config=cfg, metrics={"log_distance": ld, "fd_pixels": 0.0}))
    t = finetune_table(runs).set_index(["family", "variant"])
    assert t.loc[("vp", "amp"), "log_distance_diff"] == pytest.approx(-0.3)  # (-0.5 - 0.1) / 2
    assert t.loc[("vp", "amp"), "log_distance_diff_se"] == pytest.approx(0.4 / math.sqrt(2) / math.sqrt(2))
    assert t.loc[("vp", "baseline"), "log_distance_std"] == pytest.approx(math.sqrt(0.5))
    assert t.loc[("vp", "amp"), "log_distance_p"] == pytest.approx(stats.ttest_rel([0.5, 1.9], [1.0, 2.0]).pvalue)
    assert t.loc[("vp", "amp"), "log_distance_direction"] == "unclear"
    assert math.isnan(t.loc[("ve", "baseline"), "log_distance_std"])  # one seed: no spread, not 0
    head, glossary = headline(t.reset_index())
    assert head["vp_amp_weighted_log_distance"] == pytest.approx(1.2) and set(head) == set(glossary)
    assert glossary["vp_amp_weighted_log_distance"]["better"] == "lower"


def test_table1_plan_profiles():
    from specreg_lib.experiments.edm.table1 import table1_plan

    smoke = table1_plan("smoke")
    assert (smoke.features, smoke.seeds, smoke.images_per_set) == ("standin", (1, 2), 3)
    paper = table1_plan("paper", families=["vp"])
    assert paper.presets == ("cifar10-32", "afhqv2-64", "ffhq-64") and paper.families == ("vp",)
    assert (paper.images_per_set, paper.features) == (50_000, "inception")
    assert len(paper.variants) * len(paper.weightings) == 8


def test_table1_cli_status_and_bad_input(tmp_path, capsys):
    import json

    from specreg_lib.kit.cli import main

    assert main(["table1", "--status", "--root", str(tmp_path), "--seeds", "1,2,3"]) == 0
    status = json.loads(capsys.readouterr().out)
    # smoke: 1 preset x 1 family x 3 seeds x (pretrained, baseline, amp/unweighted)
    assert status["cells"] == 9 and status["left"] == {"finetune": 6, "generate": 9, "fid": 9}
    assert status["eta_seconds"] is None  # nothing measured yet on this machine
    assert main(["table1", "--presets", "imagenet-64", "--root", str(tmp_path)]) == 2
    assert "unknown preset" in capsys.readouterr().err
