"""Table 1 pipeline (specreg_lib.experiments.edm_table1): paired statistics against scipy, and the smoke
pipeline end to end (fine-tune -> generate -> stand-in FID), resumable and skipped when complete."""

import math

import numpy as np
import pytest
from scipy import stats

from specreg_lib.experiments.edm_table1 import Table1Plan, cell_dir, cells, paired_differences, run_table1, table1_status


def _rows(variant, weighting, fids):
    return [{"preset": "afhqv2-64", "arch": "vp", "variant": variant, "weighting": weighting, "seed_index": i,
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
        assert out[name]["p_value"] == pytest.approx(stats.ttest_rel(fids, base).pvalue)
    assert out["amp"]["distinguishable"] and not out["haar"]["distinguishable"]


def test_smoke_table1_runs_every_stage_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECREG_ROOT", str(tmp_path))
    plan = Table1Plan(archs=("vp",), variants=("amp",), weightings=("unweighted",), seeds=(1, 2),
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
