"""Table 1 pipeline (specreg_lib.experiments.edm.table1): paired statistics against scipy, and the smoke
pipeline end to end (fine-tune -> generate -> stand-in FID), resumable and skipped when complete, its results
keyed so that no smoke result is ever reused or listed as a paper one, and its status table."""

import dataclasses
import hashlib
import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from specreg_lib.experiments.edm.table1 import (
    Table1Plan,
    cell_config,
    cell_dir,
    cell_key,
    cells,
    fid_rows,
    image_differences,
    paired_differences,
    read_fid,
    run_table1,
    table1_plan,
)
from specreg_lib.experiments.edm.table1_status import format_table1_status, table1_status
from specreg_lib.io import write_json


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


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke Table 1 run once for this module: (plan, root, status before the run, FID rows)."""
    root = tmp_path_factory.mktemp("table1")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPECREG_ROOT", str(root))  # the stand-in data zip goes under the root too
        mp.setenv("SPECREG_CACHE", str(root / "cache"))  # (module fixtures set up before conftest's isolation)
        plan = table1_plan("smoke")
        before = table1_status(plan, root)
        rows = run_table1(plan, root, progress=False)
    return plan, root, before, rows


def test_smoke_table1_runs_every_stage_once(smoke, monkeypatch):
    plan, tmp_path, before, rows = smoke
    monkeypatch.setenv("SPECREG_ROOT", str(tmp_path))
    assert before["left"] == {"finetune": 4, "generate": 6, "fid": 6}
    assert sorted((r["variant"], r["seed_index"]) for r in rows) == [
        ("amp", 0), ("amp", 1), ("baseline", 0), ("baseline", 1), ("pretrained", 0), ("pretrained", 1)]
    assert all(r["features"] == "standin" and r["profile"] == "smoke" and r["fid"] >= 0 for r in rows)
    # generation sets are disjoint and paired: set i = seeds 3i..3i+2 for every cell of seed index i
    assert {tuple(r["seeds"]) for r in rows if r["seed_index"] == 1} == {(3, 5)}
    stamp = [(cell_dir(plan, c, tmp_path) / "fid.json").stat().st_mtime_ns for c in cells(plan)]
    assert run_table1(plan, tmp_path, progress=False) == rows  # complete: nothing is redone
    assert stamp == [(cell_dir(plan, c, tmp_path) / "fid.json").stat().st_mtime_ns for c in cells(plan)]
    status = table1_status(plan, tmp_path)
    assert status["left"] == {"finetune": 0, "generate": 0, "fid": 0} and status["eta_seconds"] == 0
    assert status["blocks"][0]["seconds_per_image"] > 0
    diffs = {r["variant"]: r for r in paired_differences(rows)}
    assert diffs["amp"]["n"] == 2 and set(diffs) == {"amp", "pretrained"}


def test_smoke_results_are_never_paper_results(smoke):
    """After the smoke Table 1, the paper plan on the same root sees every cell left and lists no row; so does a
    smoke plan that differs in one thing its FIDs depend on (image count, extractor, sampler)."""
    plan, root, _, rows = smoke
    paper = table1_plan("paper")
    n = len(cells(paper))
    assert n == 3 * 2 * 3 * (2 + 4 * 2)  # presets x families x seeds x (pretrained, baseline, 4 x 2 variants)
    status = table1_status(paper, root)
    assert status["left"] == {"finetune": n - 3 * 2 * 3, "generate": n, "fid": n}
    assert fid_rows(paper, root) == [] and status["eta_seconds"] is None  # smoke timings are not this config's
    assert all(b["eta_seconds"] is None for b in status["blocks"])
    assert "no measurement of this configuration yet" in format_table1_status(status)
    same_cells = [table1_plan("paper", presets=["afhqv2-64"], families=["vp"], variants=["amp"],
                              weightings=["unweighted"], seeds=[1, 2], images_per_set=3),
                  dataclasses.replace(plan, images_per_set=4), dataclasses.replace(plan, features="inception"),
                  dataclasses.replace(plan, overrides=(*plan.overrides, ("sample.num_steps", 3)))]
    for other in same_cells:
        assert fid_rows(other, root) == [] and table1_status(other, root)["left"]["fid"] == 6
        assert {cell_dir(other, c, root) for c in cells(other)}.isdisjoint(cell_dir(plan, c, root)
                                                                          for c in cells(plan))
    assert len(fid_rows(plan, root)) == len(rows) == 6


def test_a_fid_json_with_another_key_is_not_reused(smoke, monkeypatch):
    plan, root, _, rows = smoke
    monkeypatch.setenv("SPECREG_ROOT", str(root))
    cell = next(c for c in cells(plan) if c.variant == "amp" and c.seed_index == 1)
    path = cell_dir(plan, cell, root) / "fid.json"
    record = json.loads(path.read_text())
    truth = record["fid"]
    record["fid"], record["key"]["images"] = 123.0, 50_000  # e.g. a result of another image count
    path.write_text(json.dumps(record))
    old = next(c for c in cells(plan) if c.variant == "pretrained" and c.seed_index == 0)
    old_path = cell_dir(plan, old, root) / "fid.json"
    kept = old_path.read_text()
    old_path.write_text(json.dumps({"fid": 9.0, "seeds": [0, 2], "features": "standin", "cell": old.__dict__}))
    assert len(fid_rows(plan, root)) == 4 and table1_status(plan, root)["left"]["fid"] == 2  # no key: not reused
    old_path.write_text(kept)
    assert len(fid_rows(plan, root)) == 5 and table1_status(plan, root)["left"]["fid"] == 1
    again = {(r["variant"], r["seed_index"]): r["fid"] for r in run_table1(plan, root, progress=False)}
    assert again[("amp", 1)] == pytest.approx(truth, rel=1e-9)  # scored again from the same images
    assert json.loads(path.read_text())["key"]["images"] == 3


def test_inception_weights_hash_is_part_of_the_key(tmp_path, monkeypatch):
    """A fid.json scored with other Inception weights (another SHA-256 than the local file's) is not reused;
    where no local copy is known the recorded hash cannot be checked and is kept."""
    monkeypatch.setenv("SPECREG_CACHE", str(tmp_path / "cache"))
    plan = dataclasses.replace(table1_plan("smoke"), features="inception")
    cell = cells(plan)[0]
    folder = cell_dir(plan, cell, tmp_path)
    folder.mkdir(parents=True)
    weights = tmp_path / "inception.pt"
    weights.write_bytes(b"stand-in weights")
    ours = hashlib.sha256(b"stand-in weights").hexdigest()
    for recorded, with_file, reused in (("0" * 64, True, False), (ours, True, True), ("0" * 64, False, True)):
        monkeypatch.setenv("SPECREG_INCEPTION_2015_12_05_PT", str(weights) if with_file else "")
        write_json(folder / "fid.json", {"fid": 1.0, "seeds": [0, 2], "profile": "smoke", "features": "inception",
                                         "key": cell_key(plan, cell),
                                         "weights": {"extractor_sha256": recorded, "reference_sha256": None}})
        assert (read_fid(plan, cell, tmp_path) is not None) == reused


def test_smoke_variants_differ(smoke):
    """The smoke fine-tunes move the weights (lr > 0 from the first step), so pretrained, baseline and amp differ:
    in the snapshots, and in the 8-bit images, compared here with PIL, or else by less than one 8-bit level."""
    from PIL import Image

    from specreg_lib.experiments.core.runs import snapshot_path
    from specreg_lib.experiments.edm.experiment import edm_experiment

    plan, root, _, rows = smoke
    exp = edm_experiment("afhqv2-64")
    cfgs = {c.variant: cell_config(plan, c) for c in cells(plan) if c.seed_index == 0 and c.variant != "pretrained"}
    assert exp.train_config(cfgs["amp"]).lr_at(0) > 0
    snaps = {v: torch.load(snapshot_path(exp, cfg, root), weights_only=True)["model"] for v, cfg in cfgs.items()}
    assert any(not torch.equal(snaps["amp"][k], snaps["baseline"][k]) for k in snaps["amp"])
    fid = {(r["variant"], r["seed_index"]): r["fid"] for r in rows}
    assert fid[("pretrained", 0)] != fid[("baseline", 0)]

    def pixels(cell):
        return np.stack([np.asarray(Image.open(p)) for p in sorted((cell_dir(plan, cell, root) / "images").rglob(
            "*.png"))]).astype(int)

    by = {(c.variant, c.seed_index): c for c in cells(plan)}
    found = {(d["variant"], d["seed_index"]): d for d in image_differences(plan, root)}
    assert set(found) == {("pretrained", 0), ("pretrained", 1), ("amp", 0), ("amp", 1)}
    for (variant, i), d in found.items():
        diff = np.abs(pixels(by[(variant, i)]) - pixels(by[("baseline", i)]))
        assert d["values"] == diff.size and d["values_differing"] == int((diff > 0).sum())
        assert d["max_8bit_diff"] == diff.max()
        assert d["values_differing"] > 0 or 0 < d["max_float_diff"] < 2 / 255
    assert found[("pretrained", 0)]["values_differing"] > 0


def test_plan_refuses_bad_input():
    with pytest.raises(ValueError, match="unknown preset"):
        Table1Plan(presets=("imagenet-64",))
    with pytest.raises(ValueError, match="unknown regularizer"):
        Table1Plan(variants=("l2",))


def test_table1_takes_the_image_peers_beside_the_paper_variants():
    """--variants takes the image peers (issue 21: peers selectable on the GPU too): a peer's cells fine-tune with
    the registered peer loss at its defaults (here focal frequency loss, tested against the PyPI package in
    test_spectral_image_peers.py), under the weighting asked for, and the table leaves its paper columns empty."""
    from specreg_lib.experiments.edm.table1 import Cell, table1_frame
    from specreg_lib.spectral import IMAGE_PEERS, focal_frequency_loss

    plan = Table1Plan(families=("vp",), variants=("amp", *IMAGE_PEERS), weightings=("weighted",), seeds=(1,))
    assert [c.variant for c in cells(plan)] == ["pretrained", "baseline", "amp", *IMAGE_PEERS]
    cfg = cell_config(plan, Cell("afhqv2-64", "vp", "focal_freq", "weighted", 0))
    assert cfg.regularizer.kind == "focal_freq" and cfg.regularizer.weighting.kind == "weighted"
    x, y = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)).unbind(0)
    x, y = x[None].repeat(2, 1, 1, 1), y[None].repeat(2, 1, 1, 1)
    torch.testing.assert_close(cfg.regularizer.spectral_loss()(x, y), focal_frequency_loss(x, y))
    frame = table1_frame(_rows("baseline", None, [2.0, 2.1]) + _rows("focal_freq", "weighted", [1.9, 2.0]))
    peer = frame.set_index("variant").loc["focal_freq"]
    assert math.isnan(peer["paper_mean"]) and peer["diff_vs_baseline"] == pytest.approx(-0.1)


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

    assert main(["table1", "--status", "--json", "--root", str(tmp_path), "--seeds", "1,2,3"]) == 0
    status = json.loads(capsys.readouterr().out)
    # smoke: 1 preset x 1 family x 3 seeds x (pretrained, baseline, amp/unweighted)
    assert status["cells"] == 9 and status["left"] == {"finetune": 6, "generate": 9, "fid": 9}
    assert status["eta_seconds"] is None  # nothing measured yet on this machine
    assert main(["table1", "--status", "--root", str(tmp_path), "--seeds", "1,2,3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Table 1, profile smoke (standin features, 3 images per set): 9 cells"
    head = lines[1].split()
    assert head[:3] == ["preset", "family", "fine-tune"] and head[-1] == "ETA"
    # one row per (preset, family): done / left per stage, steps and images left (3 sets x 3 images), no guess
    assert lines[2].split()[:11] == ["afhqv2-64", "vp", "0", "/", "6", "0", "/", "9", "0", "/", "9"]
    assert lines[2].split()[11:13] == [str(6 * 4), "27"]  # 6 fine-tunes x 4 steps; 9 cells x 3 images
    assert lines[2].endswith("no measurement of this configuration yet (finetune, generate, fid)")
    assert lines[3].startswith("all ") and lines[3].endswith("no measurement of this configuration yet")
    assert main(["table1", "--presets", "imagenet-64", "--root", str(tmp_path)]) == 2
    assert "unknown preset" in capsys.readouterr().err
