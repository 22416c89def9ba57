"""What an experiment is: one typed config class plus a small protocol (build data, model, loss; sample; evaluate).

The toy, the power-spectra experiment, EDM fine-tuning and DiffWave each subclass :class:`Experiment`;
:func:`specreg_lib.experiments.core.runs.run` does the rest (run folder, lock, training, snapshots, caching), the
same for all of them. Profiles are named overrides of the SAME dataclass: ``experiment.config("cpu")`` is the
dataclass defaults, then the experiment's ``base`` overrides, then the profile's, then the caller's.

An experiment also declares what the kit's doors show and take, so the kit knows no experiment by name: its
metrics (``glossary``: meaning and direction, the columns of a result table), its command-line shorthands
(``shorthands``: ``--option`` -> config field, grid axes among them), the ``specreg finetune --task``/``--preset``
names it answers to, and the files a finished run leaves beside its metrics (``write_artifacts``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ...training import TrainConfig
from ...training.distributed import world_size
from .config import PROFILES, Variant, apply_overrides, check_profile, config_hash, get_path

# Dotted paths that never change what a run computes: left out of the run folder's hash.
# ``train.steps`` is handled by snapshots (see runs.py), ``train.device`` may change on resume (CPU and GPU
# numerics differ in the last bits, not in distribution; the device used is recorded in metrics.json).
RUNTIME_FIELDS = frozenset({"train.steps", "train.checkpoint_every", "train.log_every", "train.progress",
                            "train.max_nonfinite", "train.eval_every", "train.device", "threads",
                            "sample", "evaluate"})
# How a field that says WHERE a file lies enters a hash (``Experiment.location_fields``): "anywhere" = not at all (other
# fields say what the file is: its bytes are checked against a SHA-256 before use, or it is a fixed public corpus the
# config names), so any copy gives the same run; "by_name" = by file name only (the name itself says what the bytes
# are, e.g. a stand-in whose name carries its data version). A location field not declared is hashed as written: two
# files of one name in different folders must not share a run.
LOCATION_KINDS = ("anywhere", "by_name")


@dataclass(frozen=True)
class Shorthand:
    """A command-line option an experiment declares: ``--<name> VALUE`` sets the config ``field`` (a dotted path;
    text typed by the field's declared type), ``--<name> V1,V2`` makes it a grid axis when ``axis``. A ``flag``
    takes no value: it sets ``field`` to True, or, with no field, asks ``write_artifacts`` for something. A shorthand
    with no field and a value (e.g. ``--edm-repo PATH``) is an option of ``write_artifacts`` only."""

    field: str | None
    help: str
    axis: bool = False
    flag: bool = False
    choices: tuple[str, ...] = ()  # the values the field takes, checked at the door (and shown in --help)

    def __post_init__(self) -> None:
        if self.flag and self.axis:
            raise ValueError("a flag takes no value, so it cannot be a grid axis")
        if self.field is None and self.axis:
            raise ValueError("a shorthand without a config field is an artefact writer's option, never a grid axis")


class Experiment:
    """Base protocol; subclasses set the class attributes and implement the ``build_*``/``sample``/``evaluate``."""

    name: ClassVar[str]
    config_class: ClassVar[type]
    # dotted overrides of the dataclass defaults shared by every profile, then per profile
    base: ClassVar[Mapping[str, Any]] = {}
    profiles: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    # names a sweep may use for the ``regularizer`` field: L_S only (config.Variant); None = the baseline
    variants: ClassVar[Mapping[str, Variant | None]] = {}
    # The metrics it declares, one entry each: name -> (one-line meaning, "lower" | "higher" | "neither"). A report
    # shows them beside the values; a door's result table has one column per entry a run reports, in this order.
    glossary: ClassVar[Mapping[str, tuple[str, str]]] = {}
    # Command-line shorthands of ``specreg sweep``: option name (``n-clips`` is ``--n-clips``) -> Shorthand
    shorthands: ClassVar[Mapping[str, Shorthand]] = {}
    # ``specreg finetune --task T [--preset P]`` names this experiment (the first registered one of a task is its
    # default); None: reachable by name only
    task: ClassVar[str | None] = None
    preset: str | None = None
    # dotted path -> LOCATION_KINDS entry: the fields whose location a run's and a result's hash ignore
    location_fields: ClassVar[Mapping[str, str]] = {}
    # what a notebook compares when the caller names nothing: seeds per profile, and the variants
    default_seeds: ClassVar[Mapping[str, tuple[int, ...]]] = {}
    default_variants: ClassVar[tuple[str, ...]] = ()

    def config(self, profile: str, overrides: Mapping[str, Any] | None = None) -> Any:
        """The typed config of ``profile`` with ``overrides`` (dotted paths or unique leaf names) applied."""
        check_profile(profile)
        if profile not in self.profiles:
            raise ValueError(f"experiment {self.name!r} has no {profile!r} profile; available: "
                             f"{', '.join(p for p in PROFILES if p in self.profiles)}")
        cfg = apply_overrides(self.config_class(), {**self.base, **self.profiles[profile]}, variants=self.variants)
        return apply_overrides(cfg, dict(overrides or {}), variants=self.variants)

    # -- identity of a run -------------------------------------------------------------------------------
    def run_hash(self, cfg: Any) -> str:
        """Hash of every field that can change the trained model (see RUNTIME_FIELDS for what is left out).

        What changes the numbers is the number of micro-batch shards per step, world_size x accumulate, not how
        they are spread over processes (2 ranks x 1 equals 1 process x 2 bit for bit; other layouts agree to float
        rounding, the summation order differing): the hash uses that product.
        """
        tcfg = self.train_config(cfg)
        shards = tcfg.accumulate * world_size()
        # A learning-rate schedule that decays over the run (cosine) makes the trajectory depend on the total
        # step count: extending such a run is not training it straight to more steps, so steps enter the hash.
        exclude = RUNTIME_FIELDS if tcfg.lr_schedule == "constant" else RUNTIME_FIELDS - {"train.steps"}
        return config_hash(apply_overrides(self.located(cfg), {"train.accumulate": shards}), exclude)

    def results_hash(self, cfg: Any) -> str:
        """Hash of what turns a trained model into results: the sample and evaluate sub-configs."""
        cfg = self.located(cfg)
        return config_hash({"sample": cfg.sample, "evaluate": cfg.evaluate} if hasattr(cfg, "sample") else {})

    def located(self, cfg: Any) -> Any:
        """``cfg`` as its hashes see it: each ``location_fields`` entry blanked ("anywhere") or cut to its file name
        ("by_name"), so a checkout, a ``--root`` or a verified file moved elsewhere finds the same run folders."""
        over = {}
        for path, kind in self.location_fields.items():
            if kind not in LOCATION_KINDS:
                raise ValueError(f"{type(self).__name__}.location_fields[{path!r}] = {kind!r}; choose one of "
                                 f"{', '.join(LOCATION_KINDS)}")
            value = get_path(cfg, path)
            if value:
                over[path] = "" if kind == "anywhere" else Path(str(value)).name
        return apply_overrides(cfg, over) if over else cfg

    def label(self, cfg: Any) -> str:
        """Human part of the run folder's name: the variant, its lambda and weighting, the seed."""
        reg = cfg.regularizer
        if reg is None:
            head = "baseline"
        else:
            w = reg.weighting.kind if reg.weighting is not None else "default"
            head = f"{reg.name}_lam{reg.lambda_spec:g}_{w}"
        return f"{head}_seed{self.seed(cfg)}"

    def seed(self, cfg: Any) -> int:
        return int(cfg.train.seed)

    def train_config(self, cfg: Any) -> TrainConfig:
        return cfg.train

    # -- what a subclass implements ------------------------------------------------------------------------
    def build_model(self, cfg: Any) -> nn.Module:
        """The network, freshly initialised from the global RNG (the caller seeds it)."""
        raise NotImplementedError

    def build_data(self, cfg: Any) -> Callable[[int, torch.Generator], Any]:
        """A training-loop sampler ``(batch_size, generator) -> x0 | (x0, cond)``."""
        raise NotImplementedError

    def build_loss(self, cfg: Any) -> Callable[..., torch.Tensor]:
        """The per-sample diffusion loss with the config's regularizer: ``loss(model, x0, cond, generator)``."""
        raise NotImplementedError

    def model_meta(self, cfg: Any) -> dict[str, Any]:
        """Whatever rebuilds the network from a checkpoint (stored beside the weights)."""
        return {}

    def sample(self, cfg: Any, model: nn.Module) -> torch.Tensor:
        """Samples from a trained model (the EMA copy when there is one), on the CPU."""
        raise NotImplementedError

    def evaluate(self, cfg: Any, samples: torch.Tensor) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """(scalar metrics, arrays to keep such as spectra) of one run's samples."""
        raise NotImplementedError

    def required_files(self, profile: str) -> dict[str, tuple[str, ...]]:
        """Files the profile reads that the kit cannot make offline, for the environment check: what -> the places
        it may be, any one suffices (an asset name of ``specreg_lib.assets``, or a path from the repository root).
        The default needs none (generated or stand-in data)."""
        return {}

    def check_artifact_options(self, options: Mapping[str, Any]) -> None:
        """Refuse ``write_artifacts`` options that cannot work (ValueError, one line) before any run starts, so a
        typo is not found after hours of training. The default accepts everything."""

    def write_artifacts(self, result: Any, options: Mapping[str, Any]) -> list[Path]:
        """Files a finished run (a ``runs.RunResult``) leaves beside its metrics, e.g. WAVs or a network pickle;
        ``options``: the declared shorthands given at the door (name -> value). Returns what it wrote; the
        default writes nothing."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

