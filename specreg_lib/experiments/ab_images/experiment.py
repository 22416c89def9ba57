"""The image study's experiment: EDM fine-tuning (``experiments/edm``) on the offline stand-ins, scored by metrics
that are not the trained loss, against HELD-OUT data (docs/ab_images.md).

Everything that trains is the EDM experiment's (its loader, EDM's loss and preconditioning, augment pipe, Heun
sampler with the same seeds in every run, the regularizer hook); this subclass changes only

* the data: two stand-ins built offline, deterministically, into EDM's zip layout (8-bit PNGs, as EDM's
  datasets): ``photos`` (grey 32x32 crops of the 8 training sources of scikit-image's bundled photos and textures;
  ``ImagePatches(split="train")``) and ``dead_leaves`` (RGB dead leaves, ``DeadLeaves``);
* what a run is scored against: a held-out reference drawn apart from the training zip (``photos``: the held-out
  sources coffee and gravel, ``ImagePatches(split="eval")``; ``dead_leaves``: fresh draws), quantised to 8 bits as
  the training images are, and the metrics of ``metrics/image_quality.py`` (the glossary below).

Samples are clamped to [-1, 1] and quantised to 8 bits before scoring, as EDM's generate.py writes PNGs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch

from ...data.dead_leaves import DeadLeaves
from ...data.edm_datasets import EDMImageDataset, write_edm_dataset
from ...data.patches import ImagePatches
from ...io import resolve_repo_path
from ...metrics import spectral_log_distance
from ...metrics.image_quality import (
    RandomConvFeatures,
    feature_distance,
    hf_power_ratio,
    laplacian_energy_ratio,
    nearest_neighbour_copies,
)
from ...metrics.spectra import radial_power_spectrum
from ..core.config import MAX_IMAGES, Range, check_ranges, refuse
from ..edm.config import EDMFinetuneConfig
from ..edm.experiment import EDMFinetuneExperiment

DATA_VERSION = 1  # in every zip's name: a change to how a stand-in is drawn must give new files (and run hashes)
TRAIN_SEED, REFERENCE_SEED, FLOOR_SEED, TRAIN_DRAW_SEED = 0, 1, 2, 3  # the generators of the four draws
TRAIN_REFERENCE_SEED = 4  # fresh training-source images: the reference of TRAIN_LOG_DISTANCE
SPECTRUM_FLOOR = 1e-8  # keeps a log finite; far below any stand-in's power (dead leaves' top bin ~1e-3)


@dataclass(frozen=True)
class StandIn:
    """One stand-in: its channels and how a set of ``n`` images at ``resolution`` is drawn from ``seed``; ``held_out``
    draws from what training never sees (held-out sources), ``train`` from the training source."""

    name: str
    channels: int
    description: str

    def draw(self, n: int, resolution: int, seed: int, held_out: bool) -> torch.Tensor:
        """(n, C, R, R) float32 in [-1, 1], quantised to 8 bits (what the zip stores)."""
        g = torch.Generator().manual_seed(seed)
        if self.name == "photos":
            x = ImagePatches(size=resolution, scale=2, split="eval" if held_out else "train").sample(n, g)
        else:
            x = DeadLeaves(size=resolution).sample(n, g)
        return quantize(x)


STANDINS: dict[str, StandIn] = {
    "photos": StandIn("photos", 1, "grey crops (scale 2) of scikit-image's bundled photos and textures; training: 8 "
                      "sources, held out: coffee and gravel (docs/image_standins.md)"),
    "dead_leaves": StandIn("dead_leaves", 3, "RGB dead leaves, radii ~ r^-3 in [1, side] px (docs/image_standins.md)"),
}


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> the same 8-bit values EDM's PNGs hold, read back as EDM reads them (uint8 / 127.5 - 1)."""
    u8 = (x.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return u8.float() / 127.5 - 1


def dataset_path(name: str, resolution: int, n: int) -> Path:
    """``data/ab_images/<name>-v<version>-<R>px-<n>.zip`` under the repository root."""
    if name not in STANDINS:
        raise ValueError(f"unknown stand-in {name!r}; choose one of {', '.join(STANDINS)}")
    return resolve_repo_path(f"data/ab_images/{name}-v{DATA_VERSION}-{resolution}px-{n}.zip")


def ensure_dataset(name: str, resolution: int, n: int) -> Path:
    """The training zip of stand-in ``name`` (built once, atomically, from TRAIN_SEED: same bytes on every rebuild)."""
    path = dataset_path(name, resolution, n)
    if not path.is_file():
        x = STANDINS[name].draw(n, resolution, TRAIN_SEED, held_out=False)
        u8 = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_edm_dataset((np.ascontiguousarray(a) for a in u8), path)
    return path


@dataclass(frozen=True)
class AbEvaluate:
    """What a run is scored against: ``n_reference`` held-out images of stand-in ``reference`` (REFERENCE_SEED)."""

    reference: str = "dead_leaves"
    n_reference: Annotated[int, Range(2, MAX_IMAGES)] = 1024
    hf_cutoff: Annotated[float, Range(0, 0.5, lo_open=True)] = 0.25  # cycles/pixel: half Nyquist
    copy_threshold: Annotated[float, Range(0, lo_open=True)] = 0.5  # nearest_neighbour_copies' ratio

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.reference not in STANDINS:
            raise refuse(self, "reference", f"choose one of {', '.join(STANDINS)}", "dead_leaves")


@dataclass(frozen=True)
class AbImagesConfig(EDMFinetuneConfig):
    """An EDM fine-tune scored by the study's metrics (:class:`AbEvaluate` replaces EDM's in-run metrics)."""

    evaluate: AbEvaluate = field(default_factory=AbEvaluate)


AB_GLOSSARY: dict[str, tuple[str, str]] = {
    "log_distance": ("spectral log distance of Hann-windowed radial power spectra, samples vs held-out data",
                     "lower"),
    "feature_distance": ("Frechet distance in a fixed random-conv feature space (seed 0), samples vs held-out data",
                         "lower"),
    "hf_error": ("|ln hf_ratio|: how far the power above the cutoff is from the held-out data's (0 = same)", "lower"),
    "laplacian_error": ("|ln laplacian_ratio|: the same question in pixel space (0 = same)", "lower"),
    "hf_ratio": ("power above the cutoff (0.25 cycles/px), samples over held-out data (1 = same)", "neither"),
    "laplacian_ratio": ("mean squared Laplacian, samples over held-out data (1 = same; < 1 smoother)", "neither"),
    "copy_share": ("share of samples twice as close to a training image as its own neighbours (memorisation)",
                   "lower"),
    "seconds_per_step": ("median wall time of one optimiser step", "lower"),
    "train_log_distance": ("log_distance against fresh TRAINING-source images instead of held-out ones (secondary, "
                           "added after the photos screen; no rule uses it)", "lower"),
}
TRAIN_LOG_DISTANCE = "train_log_distance"  # computed at table time from a run's stored spectrum (study.ab_table)
METRICS = ("log_distance", "feature_distance", "hf_error", "laplacian_error", "hf_ratio", "laplacian_ratio",
           "copy_share")


@cache
def reference_images(name: str, resolution: int, n: int) -> torch.Tensor:
    """The held-out reference (REFERENCE_SEED), cached per process."""
    return STANDINS[name].draw(n, resolution, REFERENCE_SEED, held_out=True)


def mean_spectrum(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(frequencies, mean power) of an image set's Hann-windowed radial power spectrum: the power is what
    log_distance compares; a run stores its samples' as ``freqs`` and ``power``."""
    freqs, power = radial_power_spectrum(images.double(), window="hann")
    return freqs, power.mean(0)


def log_distance_of(power: torch.Tensor, reference_power: torch.Tensor) -> float:
    """Spectral log distance of two mean spectra (:func:`mean_spectrum`), each floored at SPECTRUM_FLOOR."""
    return spectral_log_distance(power.clamp_min(SPECTRUM_FLOOR), reference_power.clamp_min(SPECTRUM_FLOOR))


@cache
def train_reference_spectrum(name: str, resolution: int, n: int) -> torch.Tensor:
    """The mean spectrum of ``n`` fresh training-source images (TRAIN_REFERENCE_SEED), cached per process: the
    reference of TRAIN_LOG_DISTANCE. For photos the held-out sources have 1.6x the training sources' power above
    0.25 cycles/px, so log_distance alone cannot tell "closer to photos" from "more high frequencies than the
    training photos"; this distance can."""
    return mean_spectrum(STANDINS[name].draw(n, resolution, TRAIN_REFERENCE_SEED, held_out=False))[1]


@cache
def _train_images(path: str) -> torch.Tensor:
    ds = EDMImageDataset(path, use_labels=False)
    return torch.stack([ds[i][0] for i in range(len(ds))])


def score(samples: torch.Tensor, reference: torch.Tensor, train: torch.Tensor | None, ev: AbEvaluate
          ) -> dict[str, float]:
    """The study's metrics of an image set against the reference (and the copy check against ``train``)."""
    out = {"log_distance": log_distance_of(mean_spectrum(samples)[1], mean_spectrum(reference)[1]),
           "feature_distance": feature_distance(samples, reference, RandomConvFeatures(channels=samples.shape[1])),
           "hf_ratio": hf_power_ratio(samples, reference, cutoff=ev.hf_cutoff),
           "laplacian_ratio": laplacian_energy_ratio(samples, reference)}
    out["hf_error"] = abs(float(np.log(out["hf_ratio"])))
    out["laplacian_error"] = abs(float(np.log(out["laplacian_ratio"])))
    if train is not None:
        out["copy_share"] = nearest_neighbour_copies(samples, train, ev.copy_threshold).share_below
    return {k: float(v) for k, v in out.items()}


class AbImagesExperiment(EDMFinetuneExperiment):
    """EDM fine-tuning on the image study's stand-ins, scored against held-out data (module docstring)."""

    config_class = AbImagesConfig
    glossary = AB_GLOSSARY
    task = None  # reached through ``specreg ab-images`` only

    # The stand-in zip and the start net enter a run's hash by FILE NAME, not location: each name carries what makes
    # its bytes (the zip: DATA_VERSION, resolution and count; the initial net: its architecture tag and fixed seed;
    # the pretrained net: its pretraining's run hash and steps). So a clone in another folder (or another ``--root``)
    # finds the same run folders and installs the committed pretrained nets.
    location_fields = {**EDMFinetuneExperiment.location_fields, "data.path": "by_name", "model.checkpoint": "by_name"}

    def required_files(self, profile: str) -> dict[str, tuple[str, ...]]:
        return {}  # everything is made offline: the stand-ins, the initial net, the pretrained net

    def dataset(self, cfg: AbImagesConfig) -> EDMImageDataset:
        """The training zip, built here when it is one of the study's stand-ins and missing."""
        name = cfg.data.dataset
        if name in STANDINS and not resolve_repo_path(cfg.data.path).is_file():
            ensure_dataset(name, self._load(cfg)[0].img_resolution, cfg.data.standin_images)
        return super().dataset(cfg)

    def reference(self, cfg: AbImagesConfig) -> torch.Tensor:
        net = self._load(cfg)[0]
        return reference_images(cfg.evaluate.reference, net.img_resolution, cfg.evaluate.n_reference)

    def evaluate(self, cfg: AbImagesConfig, samples: torch.Tensor) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        s = quantize(samples.clamp(-1, 1))
        ref = self.reference(cfg)
        train = _train_images(str(resolve_repo_path(cfg.data.path)))
        metrics = score(s, ref, train, cfg.evaluate)
        freqs, power = mean_spectrum(s)
        return {**metrics, "n_samples": int(s.shape[0])}, {"freqs": freqs, "power": power}


# The profiles only set the device and threads; the study's plan (plan.py) sets everything else per stage.
_COMMON = {"train.device": "cpu", "threads": 1, "train.progress": False, "data.path": "standin"}
AB_IMAGES = AbImagesExperiment("ab_images_edm", "ab_images", {}, base={},
                               profiles={"smoke": _COMMON, "cpu": _COMMON}, default_seeds={})
