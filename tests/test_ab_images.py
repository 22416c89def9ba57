"""The image A/B study (specreg_lib/experiments/ab_images): the rule against hand-worked cases and the doc, the
stand-ins' 8-bit round trip through EDM's zip layout, the metrics' zero points, the strengths against gradient norms
computed here with torch.autograd, and the smoke study end to end (every stage, choice written before evaluation,
a table with every variant, a rerun that trains nothing, a status with nothing left, the door's one-line errors)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from specreg_lib.data.edm_datasets import EDMImageDataset
from specreg_lib.experiments.ab_images import RULE, ab_images_plan, ab_status, ab_table, choose, run_study
from specreg_lib.experiments.ab_images.experiment import (
    AB_IMAGES,
    STANDINS,
    TRAIN_SEED,
    AbEvaluate,
    ensure_dataset,
    quantize,
    score,
)
from specreg_lib.experiments.ab_images.plan import BASELINE, PlanError, Point, finetune_config, regularized
from specreg_lib.experiments.ab_images.study import StageNotReady, variant_name

DOC = Path(__file__).resolve().parents[1] / "docs" / "ab_images.md"


def test_rule_is_the_documented_rule_and_picks_by_hand_worked_cases() -> None:
    assert " ".join(RULE.split()) in " ".join(DOC.read_text().split())
    base = {"feature_distance": 2.0, "log_distance": 0.5}
    screen = {1.0: {"feature_distance": 2.31, "log_distance": 0.1},  # best target, guard above 2.0 + 0.3
              0.1: {"feature_distance": 2.3, "log_distance": 0.4},  # on the limit: a candidate
              0.01: {"feature_distance": 1.9, "log_distance": 0.45}}
    got = choose(screen, base, 0.3)
    assert (got["lambda"], got["guard_failed"], got["candidates"]) == (0.1, False, [0.01, 0.1])
    tie = {0.1: {"feature_distance": 2.0, "log_distance": 0.400001}, 0.01: {"feature_distance": 2.0,
                                                                           "log_distance": 0.400004}}
    assert choose(tie, base, 0.0)["lambda"] == 0.01  # equal to 4 significant digits: the smaller strength
    failed = choose({1.0: {"feature_distance": 9.0, "log_distance": 0.1}}, base, 0.1)
    assert failed["lambda"] == 1.0 and failed["guard_failed"] and math.isclose(failed["limit"], 2.1)
    with pytest.raises(ValueError, match="noise floor"):
        choose(screen, base, -1.0)


def test_plan_refuses_bad_values() -> None:
    with pytest.raises(PlanError, match="screening seed"):
        ab_images_plan("smoke", eval_seeds=(0, 1))
    with pytest.raises(PlanError, match="unknown regularizer"):
        ab_images_plan("smoke", peers=("no_such_kind",))
    with pytest.raises(PlanError, match="strengths"):
        ab_images_plan("smoke", strengths=(0.1, 0.1))
    with pytest.raises(PlanError, match="unknown profile"):
        ab_images_plan("paper")


@pytest.mark.parametrize("name", list(STANDINS))
def test_stand_in_zip_holds_exactly_the_quantised_draw(name, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SPECREG_ROOT", str(tmp_path))
    path = ensure_dataset(name, 16, 12)
    ds = EDMImageDataset(path, use_labels=False)
    got = torch.stack([ds[i][0] for i in range(len(ds))])
    want = STANDINS[name].draw(12, 16, TRAIN_SEED, held_out=False)
    assert got.shape == (12, STANDINS[name].channels, 16, 16)
    assert torch.equal(got, want)  # the PNGs hold the 8-bit values the reference and samples are quantised to
    # quantize is EDM's uint8 / 127.5 - 1 of round-to-nearest levels: idempotent, at most half a level away
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    q = quantize(x)
    assert torch.equal(quantize(q), q) and float((q - x).abs().max()) <= 0.5 / 127.5 + 1e-6
    levels = (q + 1) * 127.5
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert int(levels.round().min()) >= 0 and int(levels.round().max()) <= 255
    ensure_dataset(name, 16, 12)  # present: not rebuilt
    assert EDMImageDataset(path, use_labels=False)[3][0].equal(want[3])


def test_metrics_of_a_set_against_itself_are_at_their_zero_points() -> None:
    x = quantize(STANDINS["dead_leaves"].draw(64, 16, 5, held_out=True))
    m = score(x, x, x, AbEvaluate(n_reference=64))
    assert m["log_distance"] == 0.0 and m["hf_ratio"] == 1.0 and m["laplacian_ratio"] == 1.0
    assert m["hf_error"] == 0.0 and m["laplacian_error"] == 0.0
    assert abs(m["feature_distance"]) < 1e-6  # sqrtm round-off; a real difference is >= 1e-3 here
    assert m["copy_share"] == 1.0  # every sample is its own training image
    blurred = torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    mb = score(blurred, x, None, AbEvaluate(n_reference=64))
    assert mb["hf_ratio"] < 0.5 and mb["laplacian_ratio"] < 0.5 and "copy_share" not in mb


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("ab_images")
    mp = pytest.MonkeyPatch()
    mp.setenv("SPECREG_ROOT", str(root))
    plan = ab_images_plan("smoke", kinds=("amp_phase", "haar"), peers=("pixel_l1",))  # every stage, fewer variants
    try:
        with pytest.raises(StageNotReady, match="pretrain"):
            run_study(plan, root / "ck", stage="screen", say=lambda _: None)
        assert ab_status(plan, root / "ck")["stages"]["pretrain"]["runs_left"] == 2
        run_study(plan, root / "ck", say=lambda _: None)
        yield plan, root / "ck"
    finally:
        mp.undo()


@pytest.fixture
def study(smoke, monkeypatch):
    """The smoke study, with $SPECREG_ROOT as it was built under (conftest clears it for every test): the stand-in
    zips resolve there, and their paths are part of every run's config."""
    plan, root = smoke
    monkeypatch.setenv("SPECREG_ROOT", str(root.parent))
    return plan, root


@pytest.mark.slow
def test_smoke_study_runs_every_stage_and_tabulates_every_variant(study) -> None:
    plan, root = study
    files = root / "ab_images" / "smoke"
    variants = {BASELINE, *(f"{v}/{w}" for v, w in regularized(plan))}
    assert len(variants) == 6  # baseline, amp_phase and haar weighted and unweighted, pixel_l1
    for d in plan.datasets:
        table = ab_table(plan, root, d)
        assert set(table["variant"]) == variants
        rows = table[table["metric"] == "log_distance"]
        assert np.isfinite(rows["mean"]).all() and rows["floor"].notna().all()
        assert np.isfinite(rows[rows["variant"] != BASELINE]["diff"]).all()
        record = json.loads((files / f"choice-{d}.json").read_text())
        assert record["rule"] == RULE and set(record["chosen"]) == variants - {BASELINE}
        calib = json.loads((files / f"calibration-{d}.json").read_text())
        for key, c in record["chosen"].items():
            # the chosen strength's lambda is the calibrated one, and lambda x (gradient ratio) = the strength
            assert c["strength"] in plan.strengths and c["lambda"] == calib["lambdas"][key][str(c["strength"])]
            assert math.isclose(c["lambda"] * calib["grad_ratio"][key], c["strength"], rel_tol=0.06)
        # the choice was written before any evaluation seed trained
        choice_time = (files / f"choice-{d}.json").stat().st_mtime
        for seed in plan.eval_seeds:
            cfg = finetune_config(plan, root, Point(d, BASELINE, None, None, None, seed))
            from specreg_lib.experiments.core.runs import run_dir

            assert (run_dir(AB_IMAGES, cfg, root) / "config.json").stat().st_mtime >= choice_time
    status = ab_status(plan, root)
    assert all(st["runs_left"] == 0 and st["eta_seconds"] == 0 for st in status["stages"].values())


@pytest.mark.slow
def test_strength_is_a_gradient_norm_ratio_measured_independently(study) -> None:
    """Recompute ||grad w L_S|| / ||grad L_EDM|| for amp/weighted on the calibration's first batch with autograd
    (not term_table): the calibration's ratio is the mean over its batches, so with 1 batch (smoke) it is equal."""
    plan, root = study
    d = "dead_leaves"
    cfg = finetune_config(plan, root, Point(d, "amp_phase", "weighted", 1.0, 1.0, plan.screen_seed))
    net = AB_IMAGES.build_model(cfg).eval()
    y, cond = AB_IMAGES.build_data(cfg)(cfg.train.batch_size, torch.Generator().manual_seed(plan.screen_seed))
    loss = AB_IMAGES.build_loss(cfg)
    parts = loss(net, y, cond, generator=torch.Generator().manual_seed(0), return_parts=True)
    params = [p for p in net.parameters() if p.requires_grad]

    def norm(t: torch.Tensor) -> float:
        grads = torch.autograd.grad(t, params, retain_graph=True, allow_unused=True)
        return math.sqrt(sum(float(g.double().square().sum()) for g in grads if g is not None))

    ratio = norm((parts["weight"] * parts["spectral"]).mean()) / norm(parts["diffusion"].mean())
    calib = json.loads((root / "ab_images" / "smoke" / f"calibration-{d}.json").read_text())
    assert math.isclose(calib["grad_ratio"]["amp_phase/weighted"], ratio, rel_tol=1e-4)


@pytest.mark.slow
def test_rerun_trains_nothing_and_variants_differ(study) -> None:
    plan, root = study
    said: list[str] = []
    run_study(plan, root, say=said.append)
    assert said == []  # every run is only re-read
    from specreg_lib.experiments.ab_images.study import evaluate_configs
    from specreg_lib.experiments.core.runs import run

    samples = {variant_name(c): run(AB_IMAGES, c, root).samples for c in evaluate_configs(plan, root, "photos")}
    base = samples.pop(BASELINE)
    assert all(not torch.equal(s, base) for s in samples.values())  # the term changes the fine-tune's samples


def test_door_errors_are_one_line(tmp_path, monkeypatch, capsys) -> None:
    from specreg_lib.kit.cli import main

    monkeypatch.setenv("SPECREG_ROOT", str(tmp_path))
    assert main(["ab-images", "--profile", "smoke", "--stage", "evaluate", "--root", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--stage screen first" in err[0]
    assert main(["ab-images", "--profile", "smoke", "--status", "--root", str(tmp_path / "r")]) == 0
    assert "pretrain" in capsys.readouterr().out


@pytest.mark.slow
def test_ablation_rows_follow_the_ranking_and_pair_with_their_references(study) -> None:
    from specreg_lib.experiments.ab_images.ablate import ablation_configs, ablation_table, ranking, row_lambdas

    plan, root = study
    ranked = ranking(plan, root)
    assert [v for v, _ in ranked] != [] and all(d0 <= d1 for (_, d0), (_, d1) in zip(ranked, ranked[1:]))
    record = json.loads((root / "ab_images" / "smoke" / "ablation-dead_leaves.json").read_text())
    assert record == json.loads(json.dumps(row_lambdas(plan, root, write=False)))
    names = [r["name"] for r in record["rows"]]
    best, worst = ranked[0][0], ranked[-1][0]
    for v in {best, worst}:
        assert f"{v}: five steps" in names and f"{v}: 4x longer" in names and any(
            n.startswith(f"{v}: low-noise gate") for n in names)
        assert (f"{v}: bins sum" in names) == v.startswith("haar/")  # a Fourier kind's reduction is a rescaling
    assert sum(n.endswith("coupling global") or n.endswith("phase_eps 0.1") for n in names) == 2
    assert sum(n.endswith("levels 1") or n.endswith("levels 3") for n in names) == 2
    chosen = json.loads((root / "ab_images" / "smoke" / "choice-dead_leaves.json").read_text())["chosen"]
    for r in record["rows"]:  # same-strength rows: lambda x (the changed term's gradient ratio) = the strength
        if r["same_strength"]:
            strength = chosen[r["variant"]]["strength"]
            assert math.isclose(record["lambdas"][r["name"]] * record["grad_ratio"][r["name"]], strength, rel_tol=0.06)
        else:
            assert record["lambdas"][r["name"]] == chosen[r["variant"]]["lambda"]
    configs = ablation_configs(plan, root, write=False)
    five = next(n for n in names if n.endswith("five steps"))
    assert AB_IMAGES.train_config(configs[(five, 1)]).steps == 5
    assert AB_IMAGES.train_config(configs[("baseline: five steps", 1)]).steps == 5
    assert configs[("baseline: five steps", 1)].regularizer is None
    table = ablation_table(plan, root)
    assert set(table["row"]) == set(names) and set(table["against"]) == {"variant", "reference"}
    assert np.isfinite(table[table["metric"] == "log_distance"]["diff"]).all()


@pytest.mark.parametrize("kind,options", [("amp", {}), ("amp_phase", {}), ("amp_phase", {"coupling": "global"})])
def test_fft_norm_only_rescales_the_loss(kind, options) -> None:
    """Why the ablation has no FFT-norm row: under "ortho" L_S (and its gradient) is exactly 1/sqrt(H W) times
    L_S under "backward", for every input: a lambda convention, not another objective."""
    from specreg_lib.spectral import SpectralLoss

    g = torch.Generator().manual_seed(0)
    x, y = (torch.randn(3, 2, 12, 10, generator=g, dtype=torch.float64) for _ in range(2))
    x.requires_grad_(True)
    ortho = SpectralLoss(kind, norm="ortho", **options)(x, y)
    (g_o,) = torch.autograd.grad(ortho.sum(), x)
    backward = SpectralLoss(kind, norm="backward", **options)(x, y)
    (g_b,) = torch.autograd.grad(backward.sum(), x)
    assert torch.allclose(ortho, backward / math.sqrt(120), rtol=1e-12)
    assert torch.allclose(g_o, g_b / math.sqrt(120), rtol=1e-9, atol=1e-15)


def test_a_diverged_run_is_recorded_once_and_never_retried(tmp_path, monkeypatch) -> None:
    from specreg_lib.experiments.core import study as core_study
    from specreg_lib.training.loop import NonFiniteSteps

    cfgs = [AB_IMAGES.config("smoke", {"train.seed": s}) for s in (1, 2)]
    calls = []

    def fake_run(experiment, cfg, root, wait=False):
        calls.append(cfg.train.seed)
        raise NonFiniteSteps(f"seed {cfg.train.seed}: 5 of 5 steps skipped as non-finite")

    monkeypatch.setattr(core_study, "run", fake_run)
    monkeypatch.setattr(core_study, "run_state", lambda *a: ("missing", ""))
    out = core_study.run_all(AB_IMAGES, tmp_path, cfgs, tmp_path / "study", lambda _: None, allow_divergence=True)
    assert out == [None, None] and calls == [1, 2]
    assert "5 of 5 steps" in core_study.diverged(AB_IMAGES, cfgs[0], tmp_path, tmp_path / "study")["error"]
    core_study.run_all(AB_IMAGES, tmp_path, cfgs, tmp_path / "study", lambda _: None, allow_divergence=True)
    assert calls == [1, 2]  # recorded: not retried
    with pytest.raises(NonFiniteSteps):  # a study that does not allow divergence stops on it
        core_study.run_all(AB_IMAGES, tmp_path / "other", cfgs, tmp_path / "s2", lambda _: None)


def test_workers_on_one_stand_in_share_the_study_files_with_the_whole_plan() -> None:
    from specreg_lib.experiments.ab_images.plan import plan_hash

    plan = ab_images_plan("cpu")
    assert plan_hash(ab_images_plan("cpu", datasets=("photos",))) == plan_hash(plan)
    assert plan_hash(ab_images_plan("cpu", strengths=(0.1, 1.0))) != plan_hash(plan)  # a decision input: a new key


def test_a_committed_pretrained_net_replaces_the_pretraining(tmp_path, monkeypatch) -> None:
    """The repository keeps pretrained nets (data/pretrained/<study>/<profile>/, with a .sha256): a study whose
    pretrained file is missing installs the committed copy instead of pretraining, and refuses a tampered one."""
    import shutil

    from specreg_lib.experiments.ab_images.plan import pretrain_config, pretrained_path
    from specreg_lib.experiments.ab_images.study import pretrain_done
    from specreg_lib.experiments.core.runs import run_dir
    from specreg_lib.experiments.core.study import CommittedCopyError, commit_copy

    monkeypatch.setenv("SPECREG_ROOT", str(tmp_path))
    plan, root = ab_images_plan("smoke", datasets=("photos",), kinds=("amp",), peers=()), tmp_path / "ck"
    run_study(plan, root, stage="pretrain", say=lambda _: None)
    path = pretrained_path(plan, root, "photos")
    original = path.read_bytes()
    copy = commit_copy(path, "ab_images", "smoke")
    assert copy == tmp_path / "data" / "pretrained" / "ab_images" / "smoke" / path.name
    path.unlink()
    shutil.rmtree(run_dir(AB_IMAGES, pretrain_config(plan, root, "photos"), root))
    assert pretrain_done(plan, root, "photos")  # the committed copy counts (status reads only)
    assert ab_status(plan, root)["stages"]["pretrain"]["runs_left"] == 0
    said: list[str] = []
    run_study(plan, root, stage="pretrain", say=said.append)
    assert said == [] and path.read_bytes() == original  # installed, not pretrained again
    path.unlink()
    copy.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # one bit flipped
    with pytest.raises(CommittedCopyError, match="does not match"):
        run_study(plan, root, stage="pretrain", say=lambda _: None)
    assert not path.exists()


def test_run_names_do_not_depend_on_where_the_checkout_or_the_runs_lie(tmp_path, monkeypatch) -> None:
    """The stand-in zip and the start net enter a run's hash by file name (which carries what makes their bytes),
    so a clone elsewhere, or another --root, finds the same run folders and the committed pretrained nets; the hash
    still follows what the files are (another pretraining gives other names)."""
    from specreg_lib.experiments.ab_images.plan import pretrained_path

    plan, p = ab_images_plan("cpu"), Point("photos", "amp", "weighted", 1.0, 120.0, 0)

    def names(root):
        return AB_IMAGES.run_hash(finetune_config(plan, root, p)), pretrained_path(plan, root, "photos").name

    here = names("checkpoints")
    monkeypatch.setenv("SPECREG_ROOT", str(tmp_path))  # another checkout
    assert str(tmp_path) in finetune_config(plan, tmp_path / "runs", p).data.path  # the paths themselves moved
    assert names(tmp_path / "runs") == here
    longer = ab_images_plan("cpu", pretrain=(*plan.pretrain, ("train.steps", 6000)))
    assert pretrained_path(longer, "checkpoints", "photos").name != here[1]
    assert AB_IMAGES.run_hash(finetune_config(longer, "checkpoints", p)) != here[0]


@pytest.mark.slow
def test_train_log_distance_is_the_runs_spectrum_against_fresh_training_images(study) -> None:
    """The secondary metric: each evaluation run's stored samples' spectrum against fresh TRAINING-source images
    (not the held-out reference), recomputed here with numpy from the stored arrays; its floor and train_data value
    are a run-sized training draw against the same images."""
    from specreg_lib.experiments.ab_images.experiment import TRAIN_REFERENCE_SEED, mean_spectrum
    from specreg_lib.experiments.ab_images.figures import train_data
    from specreg_lib.experiments.core.runs import run

    plan, root = study

    def log_distance_np(p, q):  # mean over the non-DC bins of |log10 p - log10 q|, both floored at 1e-8
        p, q = (np.maximum(np.asarray(x, dtype=np.float64), 1e-8) for x in (p, q))
        return float(np.mean(np.abs(np.log10(p) - np.log10(q))[1:]))

    for d in plan.datasets:
        table = ab_table(plan, root, d)
        rows = table[table["metric"] == "train_log_distance"].set_index("variant")
        assert set(rows.index) == set(table["variant"])
        n_ref, spec = plan_n_reference(plan, root, d), STANDINS[d]
        train_ref = mean_spectrum(spec.draw(n_ref, plan.resolution, TRAIN_REFERENCE_SEED, held_out=False))[1].numpy()
        held_ref = mean_spectrum(spec.draw(n_ref, plan.resolution, 1, held_out=True))[1].numpy()
        seed = plan.eval_seeds[0]
        power = run(AB_IMAGES, finetune_config(plan, root, Point(d, BASELINE, None, None, None, seed)), root
                    ).arrays["power"].numpy()
        assert len(plan.eval_seeds) == 1 and math.isclose(rows.loc[BASELINE, "mean"], log_distance_np(power, train_ref),
                                                          rel_tol=1e-9)
        if d == "photos":  # a different reference: the held-out sources are not the training ones
            assert not math.isclose(log_distance_np(power, train_ref), log_distance_np(power, held_ref), rel_tol=1e-3)
        draw = spec.draw(plan_n_samples(plan, root, d), plan.resolution, 3, held_out=False)
        floor = log_distance_np(mean_spectrum(draw)[1].numpy(), train_ref)
        assert math.isclose(rows.loc[BASELINE, "floor"], floor, rel_tol=1e-9)
        assert math.isclose(train_data(plan, root, {d: table})[d]["train_log_distance"], floor, rel_tol=1e-9)


@pytest.mark.slow
def test_band_table_is_each_runs_power_over_the_references_per_octave(study) -> None:
    """figures.band_table against numpy on the stored arrays: per variant and octave (0, 1/16], (1/16, 1/8],
    (1/8, 1/4], (1/4, 1/2] cycles/px, the geometric mean of the run's power over the held-out reference's, then the
    mean over the evaluation seeds; the octaves hold every frequency but DC once."""
    from specreg_lib.experiments.ab_images.experiment import mean_spectrum, reference_images
    from specreg_lib.experiments.ab_images.figures import band_table
    from specreg_lib.experiments.ab_images.study import evaluate_configs, variant_name
    from specreg_lib.experiments.core.runs import run

    plan, root = study
    edges = [0, 1 / 16, 1 / 8, 1 / 4, 1 / 2]
    for d in plan.datasets:
        table = band_table(plan, root, d).set_index("variant")
        ref = mean_spectrum(reference_images(d, plan.resolution, plan_n_reference(plan, root, d)))[1].numpy()
        expected: dict[str, list] = {}
        for cfg in evaluate_configs(plan, root, d, write=False):
            arrays = run(AB_IMAGES, cfg, root).arrays
            f, power = arrays["freqs"].numpy(), arrays["power"].numpy()
            masks = [(f > lo) & (f <= hi) for lo, hi in zip(edges, edges[1:], strict=False)]
            assert (sum(m.astype(int) for m in masks) == (f > 0)).all() and all(m.any() for m in masks)
            expected.setdefault(variant_name(cfg), []).append(
                [np.exp(np.log(power[m] / ref[m]).mean()) for m in masks])
        assert list(table.index) == list(expected) and table.index[0] == BASELINE
        for v, per_seed in expected.items():
            assert table.loc[v, "seeds"] == len(per_seed) == len(plan.eval_seeds)
            np.testing.assert_allclose(table.loc[v, ["0-0.0625", "0.0625-0.125", "0.125-0.25", "0.25-0.5"]]
                                       .to_numpy(float), np.mean(per_seed, axis=0), rtol=1e-12)


def plan_n_reference(plan, root, dataset) -> int:
    return finetune_config(plan, root, Point(dataset, BASELINE, None, None, None, 0)).evaluate.n_reference


def plan_n_samples(plan, root, dataset) -> int:
    return finetune_config(plan, root, Point(dataset, BASELINE, None, None, None, 0)).sample.n_samples
