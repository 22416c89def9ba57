"""Every config value is validated when the config is built, by one rule per type (issue 20, findings 6-8).

The sweep: every numeric leaf of every registered experiment's config x {nan, inf, -inf, -1, 0, huge}. The oracle
is written here, not read from the code: a value is accepted only where 0 means something documented (off, all,
none, the first seed) or where a finite float has no upper bound; everything else is a ConfigError that names the
dotted path. Then the issue's cases one by one, the command-line door, and ``load_config``'s messages.
"""

from __future__ import annotations

import json
import math
import pickle
import typing

import pytest

from specreg_lib.errors import InputError
from specreg_lib.experiments import EXPERIMENTS, field_paths, load_config, save_config
from specreg_lib.experiments.core.config import (
    ConfigError,
    ConfigTypeError,
    _optional_inner,
    declared_ranges,
    get_path,
)
from specreg_lib.kit import cli
from specreg_lib.training import TrainConfig

HUGE_INT, HUGE_FLOAT = 10**18, 1e300
BAD = (math.nan, math.inf, -math.inf, -1, 0, "huge")

# Leaves where 0 is a documented setting (the comment beside each field says what it means).
ZERO_MEANS = {
    "regularizer.lambda_spec",  # the baseline loss exactly
    "train.warmup_steps", "train.weight_decay", "train.grad_clip", "train.ema_decay", "train.checkpoint_every",
    "train.max_nonfinite", "train.ema_halflife_kimg", "train.lr_rampup_kimg", "train.eval_every",  # off / never
    "train.betas",  # beta1 = 0: Adam without momentum
    "train.seed", "model.init_seed", "sample.first_seed",  # seed 0
    "threads",  # leave torch's thread count as is
    "sample.sample_steps", "sample.n_clips", "sample.max_frames", "evaluate.max_feature_frames", "data.max_size",
    "sample.clip_x0", "sample.clip_x",  # 0 = all T / all clips / whole clips / all frames / all images / no clamp
    "model.dropout", "augment.p", "model.tiny_label_dim",  # no dropout, no augmentation, unconditional
}
ZERO_MEANS_IN = {"train.steps": {"edm_afhqv2", "edm_ffhq", "edm_cifar10"}}  # EDM: steps from finetune.duration_kimg
# Finite floats with no upper bound: a huge value is a legitimate (if odd) setting that neither hangs nor overflows.
UNBOUNDED = {"regularizer.lambda_spec", "train.grad_clip", "sample.clip_x0", "sample.clip_x", "evaluate.log_floor"}


def _numeric_leaves(cls: type) -> dict[str, tuple[type, bool]]:
    """dotted path -> (int | float, is a tuple) for every numeric leaf of a config class."""
    out = {}
    for path, hint in field_paths(cls).items():
        inner, _ = _optional_inner(hint)
        is_tuple = typing.get_origin(inner) is tuple
        elem = typing.get_args(inner)[0] if is_tuple else inner
        if elem in (int, float):
            out[path] = (elem, is_tuple)
    return out


def _bad_value(path: str, kind: type, is_tuple: bool, v):
    v = (HUGE_INT if kind is int else HUGE_FLOAT) if v == "huge" else v
    if is_tuple:
        return (v, 0.999) if path == "train.betas" else (v,)
    return v


def _expect_accepted(exp_name: str, path: str, kind: type, raw) -> bool:
    if isinstance(raw, float) and not math.isfinite(raw):
        return False
    if raw == 0:
        return path in ZERO_MEANS or exp_name in ZERO_MEANS_IN.get(path, ())
    if raw == "huge":
        return kind is float and path in UNBOUNDED
    return False  # -1: nothing is negative


def test_every_numeric_field_declares_its_range():
    """No numeric field skips the rule: each one of every config class declares a Range beside it (the
    regularizer's lambda_spec is checked by Regularizer itself, below the config layer)."""
    for exp in EXPERIMENTS.values():
        for path in _numeric_leaves(exp.config_class):
            if path.startswith("regularizer."):
                continue
            *parents, leaf = path.split(".")
            cls = exp.config_class
            for part in parents:
                cls = _optional_inner(typing.get_type_hints(cls)[part])[0]
            assert leaf in {d[0] for d in declared_ranges(cls)}, (exp.name, path)


def test_every_numeric_field_x_nan_inf_negative_zero_huge():
    """The issue's probe (198 of 537 accepted, 13 of them non-finite): now each value is either in range and kept,
    or a ConfigError naming the dotted path; no non-finite value and no huge int is accepted anywhere."""
    wrong, accepted_nonfinite, cases = [], [], 0
    for exp in EXPERIMENTS.values():
        for path, (kind, is_tuple) in _numeric_leaves(exp.config_class).items():
            for raw in BAD:
                value = _bad_value(path, kind, is_tuple, raw)
                cases += 1
                try:
                    cfg = exp.config("smoke", {path: value})
                except ConfigError as err:
                    if _expect_accepted(exp.name, path, kind, raw):
                        wrong.append(f"{exp.name} {path}={value!r} refused: {err}")
                    elif f"{path}=" not in str(err):
                        wrong.append(f"{exp.name} {path}={value!r}: the message names no path: {err}")
                    continue
                except Exception as err:  # noqa: BLE001 -- the test reports any other error type as a finding
                    wrong.append(f"{exp.name} {path}={value!r}: {type(err).__name__}: {err}")
                    continue
                if isinstance(raw, float) and not math.isfinite(raw):
                    accepted_nonfinite.append(f"{exp.name} {path}={value!r}")
                if not _expect_accepted(exp.name, path, kind, raw):
                    wrong.append(f"{exp.name} {path}={value!r} accepted")
                elif get_path(cfg, path) != value:
                    wrong.append(f"{exp.name} {path}={value!r} became {get_path(cfg, path)!r}")
    assert cases > 1000  # six experiments x ~60 numeric leaves x six values
    assert not accepted_nonfinite, accepted_nonfinite
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("experiment, path, text", [
    # issue 20 finding 7: checked only after training, or never
    ("checkerboard", "sample.clip_x0", "nan"),
    ("edm_afhqv2", "sample.num_steps", "0"),
    ("edm_afhqv2", "finetune.duration_kimg", "inf"),  # was an OverflowError even under --dry-run
    ("edm_afhqv2", "data.standin_images", "0"),
    ("checkerboard", "train.lr", "1e300"),
    ("diffwave", "train.lr", "1e300"),
    ("edm_afhqv2", "evaluate.log_floor", "inf"),
    ("checkerboard", "train.steps", "0"),  # a toy or DiffWave run of 0 steps trains nothing, reported done
    ("diffwave", "train.steps", "0"),
    ("checkerboard", "sample.sample_steps", "21"),  # more DDIM steps than the smoke profile's T = 20
    ("diffwave", "model.residual_layers", "1000000"),  # finding 4: 133 s and 4.3 GB before
    ("edm_afhqv2", "train.ema_rampup_ratio", "nan"),
    ("power_spectra", "diffusion.snr_scale", "nan"),  # unused by the cosine schedule, still never NaN
])
def test_the_issues_cases_are_refused_when_the_config_is_built(experiment, path, text):
    with pytest.raises(ConfigError) as info:
        EXPERIMENTS[experiment].config("smoke", {path: text})  # text as from --set
    message = str(info.value)
    assert message.startswith(f"{path}=") and "e.g." in message, message
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("argv, path", [
    (["sweep", "checkerboard", "--profile", "smoke", "--set", "sample.clip_x0=nan"], "sample.clip_x0"),
    (["finetune", "--task", "edm", "--profile", "smoke", "--set", "finetune.duration_kimg=inf"],
     "finetune.duration_kimg"),
    (["sweep", "diffwave", "--profile", "smoke", "--set", "steps=0"], "train.steps"),
    (["sweep", "checkerboard", "--profile", "smoke", "--grid", "train.lr=1e-4,1e300"], "train.lr"),
])
def test_the_door_answers_a_bad_config_value_in_one_line(argv, path, tmp_path, capsys):
    code = cli.main([*argv, "--dry-run", "--root", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and f"{path}=" in err, (code, err)


def test_train_config_keeps_its_error_types_and_names_the_field():
    with pytest.raises(ConfigTypeError, match=r"TrainConfig\.steps=2\.5: expected an int") as info:
        TrainConfig(steps=2.5)
    assert isinstance(info.value, TypeError) and isinstance(info.value, InputError)
    with pytest.raises(ConfigError, match=r"TrainConfig\.lr=inf: need a finite number in \(0, 10\]"):
        TrainConfig(lr=math.inf)
    with pytest.raises(ConfigError, match="accumulate.*batch_size=6"):
        TrainConfig(batch_size=6, accumulate=4)
    err = pickle.loads(pickle.dumps(ConfigError("train.steps", "need an int >= 1", 0, 5)))  # across processes
    assert str(err) == "train.steps=0: need an int >= 1 (e.g. train.steps=5)"


def test_load_config_names_the_dotted_path_and_the_file(tmp_path):
    exp = EXPERIMENTS["checkerboard"]
    path = tmp_path / "config.json"
    save_config(exp.config("smoke"), path)
    assert load_config(exp.config_class, path) == exp.config("smoke")
    data = json.loads(path.read_text())
    for value, words in (("abc", "expected an int"), (-1, "need an int in [0, ")):
        data["config"]["train"]["steps"] = value
        path.write_text(json.dumps(data))
        with pytest.raises(ConfigError) as info:
            load_config(exp.config_class, path)
        message = str(info.value)
        assert f"{path}: train.steps={value!r}" in message and words in message, message  # was "trainsteps"
    data["config"]["train"]["steps"] = 30
    data["config"]["sample"]["clip_x0"] = None
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="sample.clip_x0=None: null is not allowed"):
        load_config(exp.config_class, path)
    path.write_text(path.read_text()[:40])
    with pytest.raises(ConfigError, match="config.json: is not the JSON save_config writes"):
        load_config(exp.config_class, path)
