"""The experiment layer: typed configs, run folders (hash, steps, lock, caches), sweeps, resume after a kill."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from specreg_lib.diffusion import Regularizer, SpectralWeighting
from specreg_lib.experiments import (
    CHECKERBOARD,
    POWER_SPECTRA,
    RunLocked,
    StepsConflict,
    Sweep,
    ToyConfig,
    apply_overrides,
    config_hash,
    format_status,
    from_dict,
    load_config,
    parse_values,
    run,
    run_dir,
    run_state,
    run_sweep,
    save_config,
    sweep_status,
    to_dict,
    variant_sweep,
)
from specreg_lib.experiments.core.config import _optional_inner, get_path
from specreg_lib.experiments.core.runs import results_dir, run_lock
from specreg_lib.experiments.toy.experiment import TOY_VARIANTS

torch.set_num_threads(1)
# A checkerboard run small enough to train in well under a second.
TINY = {"data.size": 16, "model.fold": 4, "model.base_channels": 8, "diffusion.T": 10, "train.steps": 4,
        "sample.n_samples": 4, "evaluate.n_reference": 8}


def tiny(**more):
    return CHECKERBOARD.config("smoke", {**TINY, **more})


# ---------------------------------------------------------------- typed configs


def test_profiles_are_overrides_of_one_dataclass():
    cpu, smoke, paper = (CHECKERBOARD.config(p) for p in ("cpu", "smoke", "paper"))
    assert cpu == ToyConfig()  # the dataclass defaults are the checkerboard cpu settings
    assert smoke.model.base_channels == 16 and smoke.train.steps == 30 and smoke.diffusion.T == 20
    assert paper.model.channel_mult == (1, 2) and paper.train.device == "auto"
    spectra = POWER_SPECTRA.config("cpu")
    assert spectra.data.dataset == "patches" and spectra.model.base_channels == 64 and spectra.train.steps == 2000
    with pytest.raises(ValueError, match="unknown profile"):
        CHECKERBOARD.config("fast")


def test_config_json_round_trip(tmp_path):
    cfg = tiny(regularizer=TOY_VARIANTS["bior1.3"], lambda_spec=0.25, weighting="min_snr")
    assert cfg.regularizer == Regularizer("wavelet", 0.25, SpectralWeighting("min_snr"),
                                          {"wave": "bior1.3", "levels": 2})
    save_config(cfg, tmp_path / "config.json", experiment="checkerboard")
    assert load_config(ToyConfig, tmp_path / "config.json") == cfg
    assert from_dict(ToyConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg
    base = tiny(regularizer="baseline")
    assert base.regularizer is None and from_dict(ToyConfig, to_dict(base)) == base
    with pytest.raises(ValueError, match="unknown field"):
        from_dict(ToyConfig, {**to_dict(cfg), "stepz": 3})


def test_every_option_is_validated_at_construction():
    # the examples: a NaN lambda or a bad weighting must fail before any training
    for bad in ({"lambda_spec": float("nan")}, {"weighting": "snr"}, {"parametrization": "score"},
                {"data.dataset": "cifar"}, {"sampler": "heun"}, {"log_floor": 0.0}, {"data.sides": (3,)},
                {"model.fold": 5}, {"train.lr": -1.0}, {"regularizer": "fancy"}):
        with pytest.raises((ValueError, TypeError)):
            tiny(**bad)
    with pytest.raises(ValueError, match="expected an int"):
        tiny(steps=2.5)
    with pytest.raises(KeyError, match="no field 'stepz'"):
        tiny(stepz=3)
    # a leaf name is fine when unique, and its int becomes a float where a float is declared (same hash)
    assert tiny(lambda_spec=1).regularizer.lambda_spec == 1.0
    assert config_hash(tiny(lambda_spec=1)) == config_hash(tiny(lambda_spec=1.0))


def test_command_line_values_follow_the_declared_types():
    assert parse_values(ToyConfig, "lambda_spec", "0.1,1") == ("regularizer.lambda_spec", [0.1, 1.0])
    assert parse_values(ToyConfig, "steps", "100") == ("train.steps", [100])
    assert parse_values(ToyConfig, "data.sides", "[2,4],[2]") == ("data.sides", [(2, 4), (2,)])
    assert parse_values(ToyConfig, "global_pool", "false") == ("model.global_pool", [False])
    assert parse_values(ToyConfig, "regularizer", "baseline,haar", TOY_VARIANTS) == \
        ("regularizer", [None, TOY_VARIANTS["haar"]])
    with pytest.raises(ValueError, match="expected an int"):
        parse_values(ToyConfig, "steps", "many")
    with pytest.raises(ValueError, match="unknown regularizer variant"):
        parse_values(ToyConfig, "regularizer", "amp_phse", TOY_VARIANTS)


# ---------------------------------------------------------------- run folders


def test_run_hash_covers_what_changes_the_model_and_results_key_the_rest():
    cfg = tiny()
    h = CHECKERBOARD.run_hash(cfg)
    for change in ({"lambda_spec": 0.5}, {"model.base_channels": 16}, {"train.seed": 2}, {"train.lr": 1e-4},
                   {"weighting": "min_snr"}, {"train.precision": "bf16"}, {"diffusion.T": 12}):
        assert CHECKERBOARD.run_hash(tiny(**change)) != h, change
    for same in ({"train.steps": 9}, {"train.checkpoint_every": 2}, {"sample.n_samples": 2},
                 {"evaluate.log_floor": 1.0}, {"threads": 2}):
        assert CHECKERBOARD.run_hash(tiny(**same)) == h, same
    # a cosine learning rate decays over the whole run: there, extending a run is a different run
    cosine = tiny(lr_schedule="cosine")
    assert CHECKERBOARD.run_hash(apply_overrides(cosine, {"steps": 9})) != CHECKERBOARD.run_hash(cosine)
    # the bug: log_floor and n_reference changed the reference but not the cached log distance
    r = CHECKERBOARD.results_hash
    assert r(tiny(log_floor=1.0)) != r(cfg) and r(tiny(n_reference=16)) != r(cfg) and r(tiny(n_samples=2)) != r(cfg)


# What the run hash leaves out, each for a reason (the declared runtime list; a field not here changes the hash).
# Written out here, not read from protocol.RUNTIME_FIELDS, so that a field slipping into that list fails this test.
_RUNTIME_DECLARED = {
    "train.steps": "snapshots: a longer run of a constant-LR config continues the shorter one (runs.py)",
    "train.checkpoint_every": "how often the loop saves, not what it computes",
    "train.log_every": "logging only",
    "train.progress": "a progress bar",
    "train.max_nonfinite": "when the loop gives up on NaN steps; a run that finishes is the same run",
    "train.eval_every": "evaluation during training reads the model, never changes it",
    "train.device": "CPU and GPU agree in distribution; the device is recorded in metrics.json",
    "threads": "CPU threads",
    "sample": "keys the results (results_hash), not the trained model",
    "evaluate": "keys the results (results_hash), not the trained model",
}
# Where an experiment's own run_hash departs from the list, checked both ways; besides these, a location field an
# experiment declares "anywhere" (Experiment.location_fields) is runtime: a verified file gives the same run wherever
# it lies
_HASH_EXCEPTIONS = {
    # a fine-tune's steps fix its length (0 = derived from duration_kimg), so they are hashed
    "EDMFinetuneExperiment": {"runtime": set(), "hashed": {"train.steps"}},
}


def _is_runtime(path: str, exp) -> bool:
    extra = _HASH_EXCEPTIONS.get(type(exp).__name__, {"runtime": set(), "hashed": set()})
    if path in extra["hashed"]:
        return False
    parts = path.split(".")
    declared = any(".".join(parts[:i]) in _RUNTIME_DECLARED for i in range(1, len(parts) + 1))
    return declared or path in extra["runtime"] or exp.location_fields.get(path) == "anywhere"


def _other_values(value, hint):
    """Values to try in place of ``value`` (the first one the config accepts is used)."""
    import typing

    inner, optional = _optional_inner(hint)
    if optional and value is not None:
        yield None
    if isinstance(value, bool) or inner is bool:
        yield not value
    elif isinstance(value, SpectralWeighting):
        yield SpectralWeighting(value.kind, value.gamma + 1.0, value.t_max)
    elif isinstance(value, dict):  # a regularizer's options: a number changed, or the other bin reduction
        yield from ({**value, k: v * 2 or 1} for k, v in value.items() if type(v) in (int, float))
        yield {**value, "bins": "mean" if value.get("bins") == "sum" else "sum"}
    elif isinstance(value, tuple):
        yield from (value + value[-1:], value[:-1], tuple(v / 2 for v in value))
    elif inner is int or type(value) is int:
        yield from (value + 1, value * 2, value - 1, 1, 2, 8) if value is not None else (1, 2, 8)
    elif inner is float or type(value) is float:
        yield from (value * 2, value / 2, 0.5, 0.1, 1.0) if value is not None else (0.5, 0.1, 1.0)
    elif str in (inner, *typing.get_args(inner)):
        yield "zz-not-a-choice"  # refused, unless any text goes; the refusal names the choices (below)


def _perturbed(cfg, path, hint):
    """``cfg`` with the leaf at ``path`` set to another value its config accepts, or None if none is found."""
    import re

    value = get_path(cfg, path)
    for cand in _other_values(value, hint):
        if cand == value:
            continue
        try:
            return apply_overrides(cfg, {path: cand})
        except (ValueError, TypeError) as err:
            if not isinstance(cand, str):
                continue
            for word in dict.fromkeys(re.findall(r"[A-Za-z0-9_.]+", str(err))):  # the choices the refusal lists
                if word not in (value, cand):
                    try:
                        return apply_overrides(cfg, {path: word})
                    except (ValueError, TypeError, KeyError):
                        pass
    return None


def _starts(exp, top, pool):
    """Configs to move a leaf from: each profile, then each with the sub-config ``top`` from the ``pool``."""
    import dataclasses

    profiles = [exp.config(p) for p in exp.profiles]
    yield from profiles
    for cfg in profiles:
        own = getattr(cfg, top)
        for alt in pool.get((type(own), top), ()) if dataclasses.is_dataclass(own) else ():
            if top == "train":  # keep the profile's step count (runtime): EDM's 0 = "from the duration" is its own
                alt = dataclasses.replace(alt, steps=own.steps)
            try:
                yield apply_overrides(cfg, {top: alt})
            except ValueError:  # e.g. an image regularizer in the audio config
                pass


def test_the_run_hash_covers_every_field_outside_the_declared_runtime_list():
    """Generated from the configs: every leaf of every registered experiment's config, moved to another valid
    value in turn, changes the run hash unless the leaf is runtime (declared above, with its reason)."""
    import dataclasses

    from specreg_lib.experiments import EXPERIMENTS, RUNTIME_FIELDS, NotApplicable, field_paths

    assert RUNTIME_FIELDS == set(_RUNTIME_DECLARED), "the runtime list changed: say why in _RUNTIME_DECLARED"
    # starting points: every profile, and every profile with one sub-config taken from another experiment's profile
    # (fields that move only together with a sibling, e.g. the EMA half-life, need the sibling switched off first)
    pool = {}
    for exp in EXPERIMENTS.values():
        for profile in exp.profiles:
            cfg = exp.config(profile)
            for f in dataclasses.fields(cfg):
                sub = getattr(cfg, f.name)
                if dataclasses.is_dataclass(sub):
                    pool.setdefault((type(sub), f.name), []).append(sub)
    for exp in EXPERIMENTS.values():
        leaves = {p: h for p, h in field_paths(exp.config_class).items()
                  if not (dataclasses.is_dataclass(_optional_inner(h)[0]) and not _optional_inner(h)[1])
                  or _optional_inner(h)[0] is SpectralWeighting}
        wrong, untested = [], []
        for path, hint in leaves.items():
            for start in _starts(exp, path.split(".")[0], pool):
                try:
                    moved = _perturbed(start, path, hint)
                except NotApplicable:  # under a sub-config that is None in this profile (a baseline's regularizer)
                    continue
                if moved is None:
                    continue
                changed = exp.run_hash(moved) != exp.run_hash(start)
                if changed == _is_runtime(path, exp):
                    wrong.append(f"{path}: {get_path(start, path)!r} -> {get_path(moved, path)!r} "
                                 f"{'changes' if changed else 'keeps'} the hash")
                break
            else:
                untested.append(path)
        assert not wrong, (exp.name, wrong)
        assert not untested, (exp.name, "no other valid value found for", untested)


def test_a_verified_copy_moves_freely_but_same_named_data_in_two_folders_are_two_runs():
    """Experiment.location_fields: EDM's local copy of the official checkpoint (SHA-256 checked) changes no run
    wherever it lies; a dataset path is not checked, so two zips of one name in different folders are two runs; the
    audio experiment's verified files move freely, and its results hash (VGGish's path) too."""
    from specreg_lib.experiments import EXPERIMENTS

    edm = EXPERIMENTS["edm_cifar10"]
    cfg = edm.config("paper")
    a = apply_overrides(cfg, {"model.local_path": "/a/edm-cifar10-32x32-cond-vp.pkl"})
    b = apply_overrides(cfg, {"model.local_path": "/elsewhere/copy/edm-cifar10-32x32-cond-vp.pkl"})
    assert edm.run_hash(a) == edm.run_hash(b) == edm.run_hash(cfg)
    one, two = (apply_overrides(cfg, {"data.path": f"/{d}/train.zip"}) for d in ("mine", "theirs"))
    assert edm.run_hash(one) != edm.run_hash(two)
    audio = EXPERIMENTS["diffwave"]
    acfg = audio.config("paper")
    moved = apply_overrides(acfg, {"model.local_path": "/x/diffwave-ljspeech.pt", "evaluate.vggish_path": "/y/v.pth",
                                   "data.path": "/z/LJSpeech-1.1"})
    assert (audio.run_hash(moved), audio.results_hash(moved)) == (audio.run_hash(acfg), audio.results_hash(acfg))


def test_results_are_cached_and_keyed_by_evaluation_settings(tmp_path):
    cfg = tiny()
    first = run(CHECKERBOARD, cfg, tmp_path)
    assert first.samples.shape == (4, 1, 16, 16) and first.step == 4
    assert run_state(CHECKERBOARD, cfg, tmp_path) == ("done", "4 steps")
    again = run(CHECKERBOARD, cfg, tmp_path)
    assert torch.equal(again.samples, first.samples) and again.metrics == first.metrics
    floored = run(CHECKERBOARD, tiny(log_floor=1e6), tmp_path)  # same model, re-evaluated
    assert torch.equal(floored.samples, first.samples)
    assert floored.metrics["log_distance"] != first.metrics["log_distance"]
    assert floored.metrics["log_distance"] == pytest.approx(0.0, abs=1e-12)  # all power is under the floor
    folder = run_dir(CHECKERBOARD, cfg, tmp_path)
    assert json.loads((folder / "config.json").read_text())["config"]["train"]["seed"] == 1
    assert len(list((folder / "results").iterdir())) == 2
    assert oct((folder / "config.json").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    # results lost after training (e.g. a crash while evaluating): the snapshot is re-evaluated, not retrained,
    # and gives the first results exactly (the metrics' timings and loss come from the snapshot too)
    shutil.rmtree(results_dir(CHECKERBOARD, cfg, tmp_path))
    assert run_state(CHECKERBOARD, cfg, tmp_path) == ("trained", "4 steps, not evaluated")
    ck_time = (folder / "checkpoint.pt").stat().st_mtime_ns
    redone = run(CHECKERBOARD, cfg, tmp_path)
    assert torch.equal(redone.samples, first.samples) and redone.metrics == first.metrics
    assert redone.history == first.history and (folder / "checkpoint.pt").stat().st_mtime_ns == ck_time


def _umask():
    m = os.umask(0o022)
    os.umask(m)
    return m


def test_steps_never_mislabel_a_model(tmp_path):
    short, long = tiny(steps=2), tiny(steps=4)
    assert run_dir(CHECKERBOARD, short, tmp_path) == run_dir(CHECKERBOARD, long, tmp_path)  # one folder
    r2 = run(CHECKERBOARD, short, tmp_path)
    r4 = run(CHECKERBOARD, long, tmp_path)  # resumes from step 2, snapshots step 4
    assert r2.step == 2 and r4.step == 4 and not torch.equal(r2.samples, r4.samples)
    assert torch.equal(run(CHECKERBOARD, short, tmp_path).samples, r2.samples)  # still the 2-step model
    # extending equals training straight to 4 steps (bit for bit)
    straight = run(CHECKERBOARD, long, tmp_path / "other")
    assert torch.equal(straight.samples, r4.samples)
    # asking for 3 steps when the folder is at 4 with no snapshot at 3 is refused, not answered with step 4
    assert run_state(CHECKERBOARD, tiny(steps=3), tmp_path)[0] == "conflict"
    with pytest.raises(StepsConflict, match="trained to 4 steps and has no snapshot at 3"):
        run(CHECKERBOARD, tiny(steps=3), tmp_path)


def test_a_second_process_on_a_run_folder_stops_with_a_message(tmp_path):
    cfg = tiny()
    folder = run_dir(CHECKERBOARD, cfg, tmp_path)
    folder.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; fh = open(sys.argv[1], 'a+'); fcntl.flock(fh, fcntl.LOCK_EX); "
        "fh.write('pid test-holder'); fh.flush(); print('locked', flush=True); time.sleep(60)"),
        str(folder / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert run_state(CHECKERBOARD, cfg, tmp_path) == ("running", "pid test-holder")
        with pytest.raises(RunLocked, match="in use by pid test-holder"):
            run(CHECKERBOARD, cfg, tmp_path)
        assert not (folder / "checkpoint.pt").exists()  # nothing was trained beside the holder
    finally:
        holder.kill()
        holder.wait()
    with run_lock(folder):  # released by the OS when the holder died
        pass
    assert run(CHECKERBOARD, cfg, tmp_path).step == 4


# ---------------------------------------------------------------- sweeps


def test_sweep_grid_times_seeds_with_baseline_kept_once(tmp_path):
    sweep = Sweep(CHECKERBOARD, "smoke", TINY, {"regularizer": ["baseline", "amp"], "lambda_spec": [0.5, 2]},
                  seeds=(1, 2))
    cfgs = sweep.configs()
    assert len(cfgs) == 2 * (1 + 2)  # baseline once per seed (lambda does not apply), amp x 2 lambdas
    assert sorted((c.regularizer.lambda_spec if c.regularizer else 0, c.train.seed) for c in cfgs) == \
        [(0, 1), (0, 2), (0.5, 1), (0.5, 2), (2.0, 1), (2.0, 2)]
    rows = sweep_status(sweep, tmp_path)
    assert [r["state"] for r in rows] == ["missing"] * 6 and "6 runs: 6 missing" in format_status(rows)
    with pytest.raises(KeyError, match="no field"):
        Sweep(CHECKERBOARD, "smoke", TINY, {"lamda": [1]})
    with pytest.raises(ValueError):  # every point is validated when the sweep is made
        Sweep(CHECKERBOARD, "smoke", TINY, {"lambda_spec": [1, -1]})


def test_notebook_sweep_applies_lambda_to_regularized_variants_only():
    sweep = variant_sweep(CHECKERBOARD, "smoke", seeds=[3], variants=["baseline", "haar"],
                          overrides={"lambda_spec": 0.5, "steps": None})
    base, haar = sweep.configs()
    assert base.regularizer is None and haar.regularizer.lambda_spec == 0.5 and haar.regularizer.name == "haar"
    assert {c.train.seed for c in sweep.configs()} == {3} and haar.train.steps == 30


# ---------------------------------------------------------------- the door: specreg sweep (and finetune, its alias)


def _door(capsys, *argv: str) -> tuple[int, str, str]:
    from specreg_lib.kit import cli

    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _dry_run_rows(out: str) -> list[dict[str, str]]:
    """The dry-run table's rows, columns up to ``state`` (the ``detail`` cell may be empty)."""
    lines = out.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("regularizer "))
    head = lines[start].split()
    head = head[:head.index("state") + 1]
    return [dict(zip(head, line.split(), strict=False)) for line in lines[start + 1:] if " runs: " not in line]


def test_dry_run_shows_the_lambda_and_weighting_each_run_uses(tmp_path, capsys):
    code, out, _ = _door(capsys, "sweep", "checkerboard", "--regularizer", "baseline,amp,haar", "--set",
                         "lambda_spec=0.5", "--set", "weighting=min_snr", "--seeds", "1-2", "--dry-run",
                         "--root", str(tmp_path))
    assert code == 0 and "6 runs" in out
    rows = {(r["regularizer"], r["seed"]): (r["lambda_spec"], r["weighting"]) for r in _dry_run_rows(out)}
    assert rows == {("baseline", "1"): ("-", "-"), ("baseline", "2"): ("-", "-"),
                    ("amp", "1"): ("0.5", "min_snr"), ("amp", "2"): ("0.5", "min_snr"),
                    ("haar", "1"): ("0.5", "min_snr"), ("haar", "2"): ("0.5", "min_snr")}
    code, out, _ = _door(capsys, "sweep", "checkerboard", "--regularizer", "amp_phase", "--lambda", "0.3,3",
                         "--dry-run", "--root", str(tmp_path))  # --lambda: the alias of --lambda_spec
    assert code == 0 and [r["lambda_spec"] for r in _dry_run_rows(out)] == ["0.3", "3"]


def test_diffwave_dry_run_lists_table_2s_variants_with_the_papers_constant_lambda(tmp_path, capsys):
    code, out, _ = _door(capsys, "sweep", "diffwave", "--dry-run", "--root", str(tmp_path))
    assert code == 0 and "5 runs" in out
    rows = [(r["regularizer"], r["lambda_spec"], r["weighting"]) for r in _dry_run_rows(out)]
    # paper Sec. 5.3: lambda 1e-4 (the largest of its three), constant over time
    assert rows == [("baseline", "-", "-")] + [(v, "0.0001", "unweighted")
                                               for v in ("amp", "amp_phase", "haar", "bior1.3")]


@pytest.mark.parametrize("sweep_argv, finetune_argv", [
    (["edm_afhqv2"], ["--task", "edm"]),
    (["edm_ffhq"], ["--task", "edm", "--preset", "ffhq-64"]),
    (["diffwave", "--lambda_spec", "1e-5,1e-6"], ["--task", "audio", "--lambda", "1e-5,1e-6"]),
    (["edm_cifar10", "--family", "vp,ve"], ["edm_cifar10", "--family", "vp,ve"]),
])
def test_finetune_is_the_sweep_door_under_task_names(tmp_path, capsys, sweep_argv, finetune_argv):
    common = ["--dry-run", "--root", str(tmp_path)]
    code_s, out_s, _ = _door(capsys, "sweep", *sweep_argv, *common)
    code_f, out_f, _ = _door(capsys, "finetune", *finetune_argv, *common)
    assert code_s == code_f == 0 and out_s == out_f and " runs under " in out_s


def test_variant_tables_name_the_spectral_loss_only():
    from specreg_lib.experiments import EXPERIMENTS, Variant

    for exp in EXPERIMENTS.values():
        for name, variant in exp.variants.items():
            assert variant is None or (isinstance(variant, Variant) and not hasattr(variant, "lambda_spec"))
            if variant is None:
                continue
            for cfg in (exp.config("smoke"), exp.config("smoke", {"lambda_spec": 0.25, "weighting": "unweighted"})):
                reg = apply_overrides(cfg, {"regularizer": name}, variants=exp.variants).regularizer
                assert (reg.kind, reg.options) == (variant.kind, variant.options), (exp.name, name)
                assert (reg.lambda_spec, reg.weighting) == (cfg.regularizer.lambda_spec, cfg.regularizer.weighting)
    # from a baseline config a variant takes the dataclass default's lambda_spec and weighting
    reg = apply_overrides(tiny(regularizer="baseline"), {"regularizer": "haar"}, variants=TOY_VARIANTS).regularizer
    assert (reg.name, reg.lambda_spec, reg.weighting.kind) == ("haar", 1.0, "alpha_bar")
    # an explicit Regularizer is taken as it is
    explicit = Regularizer("amp", 0.7, "unweighted")
    assert apply_overrides(tiny(lambda_spec=3.0), {"regularizer": explicit}).regularizer == explicit


def _l1_pixels(x0_hat, x0, *, check_finite=True, bins="mean"):
    return (x0_hat - x0).abs().flatten(1).mean(1)


def test_a_registered_kind_is_swept_by_name(tmp_path, capsys, monkeypatch):
    from specreg_lib.spectral import KINDS

    monkeypatch.setitem(KINDS, "l1_pixels", _l1_pixels)
    code, out, _ = _door(capsys, "sweep", "checkerboard", "--regularizer", "baseline,l1_pixels", "--set",
                         "lambda_spec=0.2", "--dry-run", "--root", str(tmp_path))
    assert code == 0
    assert [(r["regularizer"], r["lambda_spec"], r["weighting"]) for r in _dry_run_rows(out)] == \
        [("baseline", "-", "-"), ("l1_pixels", "0.2", "alpha_bar")]


@pytest.mark.parametrize("argv, words", [
    (["sweep", "checkerboard", "--seeds", "1,x"], ["--seeds '1,x'", "1-5"]),
    (["finetune", "--task", "edm", "--seeds", "3-1"], ["--seeds '3-1'", "backwards"]),
    (["sweep", "diffwave", "--seeds", "1,1"], ["--seeds '1,1'", "none twice"]),
])
def test_bad_seeds_exit_2_with_one_line(tmp_path, capsys, argv, words):
    code, out, err = _door(capsys, *argv, "--dry-run", "--root", str(tmp_path))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert all(w in err for w in words), err


def test_the_kit_knows_no_experiment_by_name():
    """What the kit shows comes from the registry's declarations: no experiment name or metric key is written in
    kit/*.py, as a string value, an identifier, or a command line of its examples."""
    import ast
    import re

    from specreg_lib.experiments import EXPERIMENTS

    words = set(EXPERIMENTS) | {k for e in EXPERIMENTS.values() for k in e.glossary}
    assert {"diffwave", "edm_afhqv2", "checkerboard", "fad", "log_distance"} <= words
    found = []
    for path in sorted((Path(__file__).parents[1] / "specreg_lib" / "kit").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                found += [(path.name, text) for w in words if text == w]
                for line in text.splitlines():
                    if "specreg " in line or "specreg_lib.kit" in line:  # an example command
                        found += [(path.name, line) for w in words if re.search(rf"(?<![\w.-]){re.escape(w)}"
                                                                               rf"(?![\w.-])", line)]
            names = [node.id] if isinstance(node, ast.Name) else [node.attr] if isinstance(node, ast.Attribute) \
                else [a.name for a in node.names] if isinstance(node, ast.ImportFrom) else []
            found += [(path.name, n) for n in names if n.lower() in words]
    assert not found, found


def test_result_table_columns_are_the_declared_metrics(capsys):
    from types import SimpleNamespace

    from specreg_lib.experiments import Experiment
    from specreg_lib.kit.sweep import print_results

    class Declared(Experiment):
        name = "declared"
        glossary = {"zeta": ("z of a run", "lower"), "alpha": ("a of a run", "higher"), "unseen": ("u", "neither")}

    results = [SimpleNamespace(run_dir=Path("/r/run_a"), metrics={"alpha": 2.0, "zeta": 1.0, "undeclared": 3.0}),
               SimpleNamespace(run_dir=Path("/r/run_b"), metrics={"zeta": 0.5})]
    print_results(Declared(), results)
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert lines == [["run", "zeta", "alpha"], ["run_a", "1", "2"], ["run_b", "0.5", "-"]]
    assert Declared().write_artifacts(results[0], {}) == []  # no artefacts unless an experiment declares some


def test_every_shorthand_is_a_field_of_its_experiment():
    from specreg_lib.experiments import EXPERIMENTS
    from specreg_lib.experiments.core.config import resolve_path
    from specreg_lib.kit.sweep import declared_shorthands

    declared_shorthands()  # no shorthand shadows a kit option; a name is a flag everywhere or nowhere
    for exp in EXPERIMENTS.values():
        for name, sh in exp.shorthands.items():
            if sh.field is None:
                continue
            assert resolve_path(exp.config_class, sh.field) == sh.field, (exp.name, name)
            for choice in sh.choices:  # every declared choice is a value the config accepts
                exp.config("smoke", {sh.field: choice})


_KILL_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from specreg_lib.experiments import CHECKERBOARD, Sweep, run_sweep
tiny = {tiny!r}
run_sweep(Sweep(CHECKERBOARD, "smoke", {{**tiny, "train.steps": 120, "train.checkpoint_every": 10}},
                {{"regularizer": ["amp"]}}, seeds=(1,)), sys.argv[1])
"""


def test_a_killed_sweep_resumes_where_it_stopped(tmp_path):
    over = {**TINY, "train.steps": 120, "train.checkpoint_every": 10}
    sweep = Sweep(CHECKERBOARD, "smoke", over, {"regularizer": ["amp"]}, seeds=(1,))
    cfg = sweep.configs()[0]
    ck = run_dir(CHECKERBOARD, cfg, tmp_path / "killed") / "checkpoint.pt"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT.format(tiny=TINY), str(tmp_path / "killed")],
                            cwd=Path(__file__).parents[1], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not ck.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    row = sweep_status(sweep, tmp_path / "killed")[0]
    state, detail = row["state"], row["detail"]
    assert state == "partial" and detail.startswith("step "), (state, detail)
    resumed = run_sweep(sweep, tmp_path / "killed")[0]
    straight = run_sweep(sweep, tmp_path / "straight")[0]
    assert resumed.step == straight.step == 120
    assert torch.equal(resumed.samples, straight.samples)  # resume is bit-exact
    assert resumed.history["loss"] == straight.history["loss"]
    assert not list((tmp_path / "killed").rglob("*.tmp*"))  # nothing half-written left behind


def test_apply_overrides_reaches_nested_fields_and_refuses_none_subconfigs():
    cfg = tiny(regularizer="baseline")
    from specreg_lib.experiments import NotApplicable

    with pytest.raises(NotApplicable):
        apply_overrides(cfg, {"lambda_spec": 2.0})
    assert apply_overrides(cfg, {"lambda_spec": 2.0}, skip_not_applicable=True) == cfg
    assert apply_overrides(cfg, {"regularizer": "amp", "lambda_spec": 2.0},
                           variants=TOY_VARIANTS).regularizer.lambda_spec == 2.0


@pytest.mark.slow
def test_torchrun_sweep_is_the_one_process_run_with_as_many_shards(tmp_path):
    """``torchrun --nproc_per_node 2 ... sweep`` (gloo on CPU) trains the same numbers as one process with
    ``accumulate=2`` (the loop's shard streams make them equal bit for bit), so both name the same run folder:
    the second finds the first's results. A fresh one-process run elsewhere reproduces them exactly."""
    sets = [f"--set={k}={v}" for k, v in {**TINY, "train.steps": 6}.items()]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "specreg_lib.kit.sweep", "checkerboard", "--profile", "smoke", "--grid", "regularizer=amp",
           "--seeds", "1", "--root", str(tmp_path / "ddp"), *sets]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    cfg = CHECKERBOARD.config("smoke", {**TINY, "train.steps": 6, "regularizer": "amp", "train.accumulate": 2})
    assert run_state(CHECKERBOARD, cfg, tmp_path / "ddp")[0] == "done"  # same folder as the 2-rank run
    two_ranks = run(CHECKERBOARD, cfg, tmp_path / "ddp")
    one_process = run(CHECKERBOARD, cfg, tmp_path / "single")
    assert torch.equal(two_ranks.samples, one_process.samples)
    assert two_ranks.history["loss"] == one_process.history["loss"]


@pytest.mark.slow
def test_torchrun_sweep_stops_on_every_rank_when_the_run_is_locked(tmp_path):
    """Rank 0 cannot take the lock: every rank must stop with the message, none may wait in a collective."""
    cfg = CHECKERBOARD.config("smoke", {**TINY, "regularizer": "amp", "train.accumulate": 2})
    folder = run_dir(CHECKERBOARD, cfg, tmp_path)  # 2 ranks x accumulate 1 = this folder
    with run_lock(folder):
        sets = [f"--set={k}={v}" for k, v in TINY.items()]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "specreg_lib.kit.sweep", "checkerboard", "--profile", "smoke", "--grid", "regularizer=amp",
               "--seeds", "1", "--root", str(tmp_path), *sets]
        done = subprocess.run(cmd, cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode != 0
    assert done.stderr.count("is in use by pid") == 2, done.stderr[-2000:]  # both ranks said why
    assert not (folder / "checkpoint.pt").exists()


def test_a_status_total_says_what_is_known_and_which_stages_lack_a_measurement():
    """core.study.estimate then total_line: the sum of the stages' measured ETAs (steps x s/step + evaluations x
    s/evaluation, worked out here by hand); a stage without its measurement is named, never summed as zero."""
    from specreg_lib.experiments.core.study import estimate, total_line

    def stage(steps, evals):
        return {"steps_left": steps, "evals_left": evals}

    stages = {"screen": stage(600, {"screen": 2}), "evaluate": stage(0, {"screen": 3})}
    total = estimate(stages, {"screen": 30.0}, lambda name, st: 0.5)
    assert total == 600 * 0.5 + 2 * 30 + 3 * 30 == 450.0
    assert total_line(stages) == "all stages: 7.5 min left (from this plan's own measured step and evaluation times)"
    stages["ablate"] = stage(100, {"ablate": 1})
    assert estimate(stages, {"screen": 30.0}, lambda name, st: None if name == "ablate" else 0.5) is None
    assert total_line(stages, "this front's") == ("all stages: at least 7.5 min left (from this front's own measured "
                                                  "step and evaluation times), plus ablate (no measurement of this "
                                                  "configuration yet)")
    only = {"screen": stage(10, {})}
    estimate(only, {}, lambda name, st: None)
    assert total_line(only) == "all stages: ETA unknown, no measurement of this configuration yet (screen)"
