"""EDM fine-tuning with spectral losses (paper Section 5.2, Table 1, Table 3) on the experiment layer.

One experiment per dataset preset of Table 3 (``edm_afhqv2``, ``edm_ffhq``, ``edm_cifar10``; :func:`edm_experiment`
looks one up), one typed config (:class:`EDMFinetuneConfig`). A run starts from an EDM checkpoint loaded with
``load_edm_checkpoint`` (the preset's official ``edm-*-vp.pkl`` / ``-ve.pkl``, a path or URL, or in smoke a tiny
SongUNet written in the official format), and minimises EDM's loss under the file's own preconditioning and
loss settings on augmented images y (EDM's non-leaky augment pipe, its labels fed to the net), reduced as
EDM's loop does (``loss.pixels="sum"``, see ``diffusion/edm_train.py``), plus lambda_spec * w * L_S(D(y; sigma),
y) through the Regularizer: Adam, EMA by half-life in images, a short LR ramp-up, dropout from the checkpoint
(or Table 3), NaN guard, atomic checkpoints and resume from the training loop.

Length: Table 3's "Duration 0.5" (0.5 Mimg in EDM's units, ``finetune.length="table3"``, default) contradicts the
text's "5 optimization steps" (``finetune.length="five_steps"``: 5 Adam steps, no LR ramp, no EMA, since an
EMA with a 500 kimg half-life would not move in 80 images). Batch: ``train.batch_size`` is PER GPU (Table 3:
16); the global batch is that times the world size, and enters the run hash.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...assets import REGISTRY, AssetMissingError
from ...data.augment import AUGMENT_DIM, AugmentPipe
from ...data.edm_datasets import DATASETS, DatasetError, EDMImageDataset, default_dataset_path, write_standin
from ...diffusion.edm_train import EDMTrainLoss, edm_loss_from_record
from ...diffusion.generate import SamplerSettings, sample_images
from ...io import resolve_repo_path
from ...metrics import floored_spectrum, spectral_log_distance
from ...metrics.frechet import frechet_distance, gaussian_stats
from ...models import EDMDenoiser, read_edm_pickle
from ...models.edm_checkpoint import denoiser_from_pickle, resolve_checkpoint
from ...models.edm_export import EDM_REPO_ENV, EDM_URL, check_export, export_network
from ...models.edm_layers import UNetBlock
from ...models.tiny_edm import write_tiny_checkpoint
from ...training import TrainConfig
from ...training.checkpoint import load_checkpoint
from ...training.distributed import world_size
from ..core.config import Variant, apply_overrides, config_hash
from ..core.protocol import Experiment, Shorthand
from .config import (
    FAMILIES,
    LENGTHS,
    REFERENCE_SEED,
    EDMFinetuneConfig,
)

# Variants a sweep names, L_S only: lambda_spec (1) and the weighting ("weighted" = lambda_EDM) are the config's;
# --weighting weighted,unweighted (or --lambda_spec L1,L2) makes them axes.
EDM_VARIANTS: dict[str, Variant | None] = {
    "baseline": None,  # EDM's loss alone: the fine-tune every regularized run is compared with
    "amp": Variant("amp"),  # Eq. 14
    "amp_phase": Variant("amp_phase"),  # Eq. 15
    "haar": Variant("wavelet", {"wave": "haar", "levels": 2}),  # Eq. 16
    "bior1.3": Variant("wavelet", {"wave": "bior1.3", "levels": 2}),  # Eq. 16
}

EDM_SHORTHANDS: dict[str, Shorthand] = {
    "family": Shorthand("model.family", "which official checkpoint(s), comma-separated: vp (DDPM++, default) and/or ve "
                      "(NCSN++)", axis=True, choices=FAMILIES),
    "weighting": Shorthand("regularizer.weighting", "the time weighting w of lambda_spec * w * L_S, comma-separated: "
                           "weighted (lambda_EDM, default) and/or unweighted (w = 1)", axis=True,
                           choices=("weighted", "unweighted")),
    "length": Shorthand("finetune.length", "table3 = Table 3's 0.5 Mimg (default); five_steps = the paper text's "
                        "'5 optimization steps' (no LR ramp, no EMA). The paper contradicts itself; both are runnable",
                        choices=LENGTHS),
    "pixels": Shorthand("loss.pixels", "EDM's loss summed over C*H*W as EDM's training loop (default) or "
                           "averaged as this kit's losses; decides what lambda_spec means (docs/edm_finetune.md)",
                           choices=("sum", "mean")),
    "augment": Shorthand("augment.p", "EDM's augment probability (Table 3: 0.15 at 64x64; default: the preset's)"),
    "checkpoint": Shorthand("model.checkpoint", "a registry name, URL or path of an EDM pickle (default: the "
                            "preset's official edm-*-<family>.pkl; smoke: 'tiny')"),
    "data": Shorthand("data.path", "a zip or folder in EDM's layout (default data/<dataset>.zip; 'standin' = "
                      "offline crops)"),
    "steps": Shorthand("train.steps", "optimiser steps (default: the profile's)"),
    "export": Shorthand(None, "also write each fine-tuned EMA network into its run folder: network-snapshot-<steps>"
                        ".pt + .json (state_dict + EDM's init kwargs; loads with load_edm_checkpoint, EDM's own "
                        "classes or any tool), and with --edm-repo network-snapshot-<steps>.pkl, EDM's own pickle "
                        "that its generate.py / fid.py load (specreg export converts later)", flag=True),
    "edm-repo": Shorthand(None, f"with --export: your EDM checkout (a clone of {EDM_URL}; default "
                          f"${EDM_REPO_ENV}); EDM's native pickle is built with its classes (the kit ships none)"),
}

EDM_GLOSSARY: dict[str, tuple[str, str]] = {
    "log_distance": ("spectral log distance between samples' and data's radially averaged power spectra", "lower"),
    "fd_pixels": ("Frechet distance of average-pooled pixels, samples vs data (a cheap stand-in, not FID)", "lower"),
    "seconds_per_step": ("median wall time of one optimiser step", "lower"),
    "images_per_second": ("median global training throughput", "higher"),
}


class EDMFinetuneExperiment(Experiment):
    """Fine-tune an EDM checkpoint with EDM's loss (+ lambda_spec * w * L_S); sample with Heun; spectra + FD."""

    config_class = EDMFinetuneConfig
    variants = EDM_VARIANTS
    glossary = EDM_GLOSSARY
    shorthands = EDM_SHORTHANDS
    task = "edm"  # specreg finetune --task edm --preset <self.preset>
    # your copy of the official checkpoint is SHA-256 checked: where it lies changes no run. data.path and a
    # checkpoint path stay as written (their bytes are not checked: two files of one name must not share a run)
    location_fields = {"model.local_path": "anywhere"}

    def __init__(self, name: str, preset: str, checkpoints: dict[str, str], base: dict[str, Any],
                 profiles: dict[str, dict[str, Any]], default_seeds: dict[str, tuple[int, ...]]) -> None:
        self.name, self.preset, self.checkpoints = name, preset, checkpoints
        self.base, self.profiles, self.default_seeds = base, profiles, default_seeds
        self.default_variants = tuple(EDM_VARIANTS)
        self._nets: dict[str, tuple[EDMDenoiser, dict[str, Any]]] = {}  # checkpoint key -> (net, records)

    # -- identity --------------------------------------------------------------------------------------------
    def train_config(self, cfg: EDMFinetuneConfig) -> TrainConfig:
        """The loop's settings: the global batch (per-GPU batch x world size) and the steps of the length."""
        t = cfg.train
        batch = t.batch_size * world_size()
        if cfg.finetune.length == "five_steps":
            return dataclasses.replace(t, batch_size=batch, steps=5, lr_rampup_kimg=0.0, ema_halflife_kimg=0.0)
        steps = t.steps or math.ceil(cfg.finetune.duration_kimg * 1e3 / batch)  # EDM stops at >= duration
        return dataclasses.replace(t, batch_size=batch, steps=steps)

    def run_hash(self, cfg: EDMFinetuneConfig) -> str:
        """The layer's hash with the GLOBAL batch in it (the per-GPU batch alone does not fix the run)."""
        tcfg = self.train_config(cfg)
        exclude = {"train.checkpoint_every", "train.log_every", "train.progress", "train.max_nonfinite",
                   "train.eval_every", "train.device", "sample", "evaluate", "threads"}
        if cfg.finetune.length == "table3" and not cfg.train.steps:
            exclude.add("train.steps")
        return config_hash(apply_overrides(self.located(cfg), {"train.batch_size": tcfg.batch_size,
                                                 "train.accumulate": tcfg.accumulate * world_size()}), exclude)

    def label(self, cfg: EDMFinetuneConfig) -> str:
        return f"{cfg.model.family}_{super().label(cfg)}"

    # -- model ---------------------------------------------------------------------------------------------
    def checkpoint_source(self, cfg: EDMFinetuneConfig) -> str:
        """The checkpoint a run starts from: the config's, or the preset's official file for its family."""
        return cfg.model.checkpoint or self.checkpoints[cfg.model.family]

    def required_files(self, profile: str) -> dict[str, tuple[str, ...]]:
        """Both official checkpoints (Table 1 fine-tunes VP and VE), the prepared dataset, and for Table 1's FID
        EDM's reference statistics and the Inception weights; smoke needs none (tiny net, stand-in crops)."""
        from ...data.edm_datasets import default_dataset_path

        cfg, out = self.config(profile), {}
        if cfg.model.checkpoint != "tiny":
            out.update({f"checkpoint ({f})": (cfg.model.local_path or cfg.model.checkpoint or self.checkpoints[f],)
                        for f in FAMILIES})
        if cfg.data.path != "standin":
            out["dataset"] = (cfg.data.path or default_dataset_path(cfg.data.dataset),)
            out["FID reference statistics"] = (f"{cfg.data.dataset}.npz",)
            out["FID Inception weights"] = ("inception-2015-12-05.pt",)
        return out

    def _load(self, cfg: EDMFinetuneConfig) -> tuple[EDMDenoiser, dict[str, Any]]:
        """(the checkpoint's network, its other entries as records), read once per process."""
        m = cfg.model
        key = config_hash({"model": m, "source": self.checkpoint_source(cfg)})
        if key not in self._nets:
            with tempfile.TemporaryDirectory() as tmp:
                if m.checkpoint == "tiny":  # the official format, written and read back
                    path = write_tiny_checkpoint(Path(tmp) / "tiny.pkl", m.family, m.tiny_resolution,
                                                 m.tiny_channels, m.tiny_label_dim)
                else:
                    path = self._checkpoint_file(cfg)
                ckpt = read_edm_pickle(path)  # what load_edm_checkpoint does, keeping the records for export
                net = denoiser_from_pickle(ckpt)
                net.edm_meta = ckpt.meta()
            records = {"loss_fn": ckpt.loss_fn, "augment_pipe": ckpt.augment_pipe,
                       "dataset_kwargs": ckpt.dataset_kwargs}
            self._nets[key] = (net, records)
        return self._nets[key]

    def _checkpoint_file(self, cfg: EDMFinetuneConfig) -> Path:
        """The checkpoint on disk (cache, download or path); a missing one is an AssetMissingError that says which
        option passes a local copy."""
        m = cfg.model
        try:
            return resolve_checkpoint(self.checkpoint_source(cfg), m.sha256 or None, local_path=m.local_path or None)
        except FileNotFoundError as err:  # AssetMissingError included
            hint = ("A file on disk, with specreg sweep/finetune: --checkpoint PATH (any EDM pickle; model.checkpoint) "
                    "or --set model.local_path=PATH (your copy of the official file, hash-checked).")
            raise AssetMissingError(f"model.checkpoint: {str(err).rstrip('. ')}. {hint}") from err

    def build_model(self, cfg: EDMFinetuneConfig) -> EDMDenoiser:
        """A fresh copy of the checkpoint's network in training mode, with Table 3's dropout when set."""
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        net = load_state_copy(self._load(cfg)[0])
        if cfg.model.dropout is not None:
            for block in net.modules():
                if isinstance(block, UNetBlock):
                    block.dropout = cfg.model.dropout
            net.model.init_kwargs["dropout"] = cfg.model.dropout
        return net.train()

    def model_meta(self, cfg: EDMFinetuneConfig) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint_source(cfg), "preset": self.preset}

    # -- data and loss -------------------------------------------------------------------------------------
    def dataset(self, cfg: EDMFinetuneConfig) -> EDMImageDataset:
        """The training images, checked against the network (resolution, channels, labels) before training."""
        net = self._load(cfg)[0]
        R, C, label_dim = net.img_resolution, net.img_channels, net.label_dim
        d = cfg.data
        if d.path == "standin":
            path = resolve_repo_path(f"data/edm-standin-{R}px-{C}ch-{d.standin_images}.zip")
            if not path.exists():
                write_standin(path, n=d.standin_images, resolution=R, channels=C)
        else:
            path = resolve_repo_path(d.path or default_dataset_path(d.dataset))
            if not path.exists():
                raise DatasetError(missing_dataset_message(d.dataset, path, given=bool(d.path)))
        ds = EDMImageDataset(path, use_labels=label_dim > 0, max_size=d.max_size or None)
        if ds.resolution != R or ds.channels != C:
            raise DatasetError(f"data.path: {path} holds {ds.channels}x{ds.resolution}x{ds.resolution} images but the "
                               f"checkpoint's network takes {C}x{R}x{R}; use the dataset the checkpoint was trained "
                               f"on (prepare_dataset resizes to {R}x{R})")
        if ds.label_dim != label_dim:
            raise DatasetError(f"data.path: {path} has {ds.label_dim} class labels per image but the checkpoint's "
                               f"network has label_dim={label_dim}; a conditional net needs dataset.json with "
                               "the same classes (CIFAR-10: prepare_dataset('cifar10-32x32', ...))")
        return ds

    def augment_pipe(self, cfg: EDMFinetuneConfig) -> AugmentPipe | None:
        """EDM's pipe from the checkpoint's record (p from the config when set), or None for a net without
        augment labels."""
        net = self._load(cfg)[0]
        augment_dim = net.model.init_kwargs.get("augment_dim", 0)
        record = net.edm_meta.get("augment_pipe")
        p = cfg.augment.p if cfg.augment.p is not None else (record or {}).get("attributes", {}).get("p", 0.0)
        if augment_dim == 0:
            if p:
                raise ValueError(f"augment.p={p}: the checkpoint's network has no augment labels (augment_dim=0); "
                                 "EDM trains it without augmentation: set augment.p=0")
            return None
        if augment_dim != AUGMENT_DIM:
            raise ValueError(f"the checkpoint's network has augment_dim={augment_dim}; EDM's pipe gives {AUGMENT_DIM}")
        return AugmentPipe.from_record(record, p=p, resample=cfg.augment.resample)

    def build_data(self, cfg: EDMFinetuneConfig) -> EDMSampler:
        return EDMSampler(self.dataset(cfg), self.augment_pipe(cfg), self._load(cfg)[0].label_dim)

    def build_loss(self, cfg: EDMFinetuneConfig) -> EDMTrainLoss:
        """EDM's loss as the checkpoint's loss_fn record sets it, + the regularizer, reduced as configured."""
        net = self._load(cfg)[0]
        loss = edm_loss_from_record(net.edm_meta.get("loss_fn"), cfg.regularizer)
        return EDMTrainLoss(loss, cfg.loss.pixels, net.label_dim)

    # -- results -------------------------------------------------------------------------------------------
    def sample(self, cfg: EDMFinetuneConfig, model: nn.Module) -> torch.Tensor:
        """``n_samples`` images from seeds first_seed.. (the same for every run: baseline and variants paired)."""
        s = cfg.sample
        device = next(model.parameters()).device
        seeds = list(range(s.first_seed, s.first_seed + s.n_samples))
        # one batch for all seeds (per_image=False): the same batch in every run, so runs stay paired bit for bit
        return sample_images(model.eval(), seeds, SamplerSettings(num_steps=s.num_steps), device=device,
                             per_image=False).cpu()

    def reference(self, cfg: EDMFinetuneConfig) -> torch.Tensor:
        """Dataset images (n, C, R, R) in [-1, 1], drawn with a fixed seed."""
        ds = self.dataset(cfg)
        g = torch.Generator().manual_seed(REFERENCE_SEED)
        idx = torch.randint(len(ds), (cfg.evaluate.n_reference,), generator=g)
        return torch.stack([ds[int(i)][0] for i in idx])

    def evaluate(self, cfg: EDMFinetuneConfig, samples: torch.Tensor
                 ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        ref = self.reference(cfg)
        e = cfg.evaluate
        _, p_ref = floored_spectrum(ref, e.log_floor)
        freqs, p = floored_spectrum(samples, e.log_floor)
        pool = torch.nn.functional.adaptive_avg_pool2d
        f_s, f_r = (pool(x.double(), e.fd_pool).flatten(1).numpy() for x in (samples, ref))
        fd = frechet_distance(*gaussian_stats(f_s), *gaussian_stats(f_r))
        metrics = {"log_distance": spectral_log_distance(p, p_ref), "fd_pixels": float(fd),
                   "global_batch": self.train_config(cfg).batch_size, "world_size": world_size()}
        return metrics, {"freqs": freqs, "power": p}

    def export(self, cfg: EDMFinetuneConfig, model: nn.Module, dest: str | Path, fmt: str = "state_dict",
               edm_repo: str | Path | None = None) -> list[Path]:
        """Write a fine-tuned network with the source file's loss_fn / augment_pipe / dataset_kwargs
        (``models.edm_export``): "state_dict" = dest's stem .pt + .json; "edm" = EDM's native pickle, built with
        the classes of the EDM checkout ``edm_repo``. Returns the files written."""
        return export_network(model, dest, fmt, edm_repo, **self._load(cfg)[1])

    def write_network(self, result: Any, edm_repo: str | Path | None = None) -> list[Path]:
        """A finished run's EMA network as ``<run folder>/network-snapshot-<steps>.pt`` + ``.json``, and with
        ``edm_repo`` also as EDM's ``network-snapshot-<steps>.pkl``."""
        net = self.build_model(result.config)
        net.load_state_dict(load_checkpoint(result.run_dir / "snapshots" / f"step-{result.step:07d}.pt")["model"])
        stem = result.run_dir / f"network-snapshot-{result.step:07d}"
        files = self.export(result.config, net.eval(), stem.with_suffix(".pt"))  # first what needs nothing
        if edm_repo:
            files += self.export(result.config, net, stem.with_suffix(".pkl"), "edm", edm_repo)
        return files

    def check_artifact_options(self, options: Mapping[str, Any]) -> None:
        """``--edm-repo`` needs ``--export``, and must be an EDM checkout whose modules import (before training)."""
        if options.get("edm-repo") and not options.get("export"):
            raise ValueError("--edm-repo is where --export builds EDM's own pickle; add --export, or drop --edm-repo")
        if options.get("export") and _edm_repo(options):
            check_export("edm", _edm_repo(options))

    def write_artifacts(self, result: Any, options: Mapping[str, Any]) -> list[Path]:
        """``--export [--edm-repo PATH]``: the run's EMA network for other tools (:meth:`write_network`)."""
        return self.write_network(result, _edm_repo(options)) if options.get("export") else []


def _edm_repo(options: Mapping[str, Any]) -> str | None:
    """The EDM checkout of ``--edm-repo``, else ``$SPECREG_EDM_REPO``, else None."""
    return options.get("edm-repo") or os.environ.get(EDM_REPO_ENV) or None


def missing_dataset_message(dataset: str, path: Path, given: bool) -> str:
    """What to do about a dataset that is not at ``path``: build it there (with its source's URL) or pass one."""
    if given:
        return (f"data.path: the dataset {path} does not exist; check the path passed with --data (a zip or folder "
                "in EDM's layout; data.path=PATH in --set or a notebook), or use --data standin for offline crops")
    source = DATASETS.get(dataset, (None, 0))[0]
    origin = (f", which downloads {source} from {REGISTRY[source].url}" if source in REGISTRY else
              ", from your local copy of its source images (source=PATH)" if dataset in DATASETS else "")
    return (f"data.path: dataset {dataset!r} not found at {path} (the default, {default_dataset_path('<dataset>')} "
            f"under the repository root); build it there with specreg_lib.data.edm_datasets.prepare_dataset("
            f"{dataset!r}, {str(path)!r}){origin}, or pass --data PATH (a zip or folder in EDM's layout; "
            "data.path=PATH in --set or a notebook), or use --data standin for offline crops")


def load_state_copy(net: EDMDenoiser) -> EDMDenoiser:
    """An independent copy of ``net`` (weights cloned), keeping its ``edm_meta``."""
    import copy

    out = copy.deepcopy(net)
    out.edm_meta = getattr(net, "edm_meta", {})
    return out


class EDMSampler:
    """The loop's data: ``(batch, generator) -> (y, cond)``: images drawn with replacement, augmented, and
    cond = [one-hot class labels, augment labels] (B, label_dim + 9), or None when there are neither."""

    def __init__(self, dataset: EDMImageDataset, pipe: AugmentPipe | None, label_dim: int) -> None:
        self.dataset, self.pipe, self.label_dim = dataset, pipe, label_dim

    def __call__(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = torch.randint(len(self.dataset), (batch,), generator=generator)
        items = [self.dataset[int(i)] for i in idx]
        x = torch.stack([im for im, _ in items])  # (B, C, R, R) in [-1, 1]
        parts = [torch.stack([lab for _, lab in items])] if self.label_dim else []
        if self.pipe is not None:
            x, labels = self.pipe(x, generator)
            parts.append(labels)
        return x, torch.cat(parts, dim=1) if parts else None


def _official(dataset: str) -> dict[str, str]:
    return {family: f"edm-{dataset}-{family}.pkl" for family in FAMILIES}


# Smoke: the tiny official-format net, stand-in crops, 8 CPU steps at lr 1e-3; same code as paper. No LR ramp:
# EDM's ramp runs step 0 at lr 0, which in a run this short left a fine-tune (nearly) at the checkpoint. The
# variants still differ little (measured: samples by 8e-5..3e-2 of [-1, 1] where fine-tuning moves them by 0.2-0.3,
# metrics by 2e-6..3e-3): the spectral term's gradient is 1e-4..3e-2 of EDM's summed loss's (term_table).
_SMOKE = {"model.checkpoint": "tiny", "data.path": "standin", "data.standin_images": 32, "augment.p": 0.15,
          "train.batch_size": 4, "train.lr": 1e-3, "train.lr_rampup_kimg": 0.0, "train.ema_halflife_kimg": 0.02,
          "train.device": "cpu", "train.checkpoint_every": 0, "threads": 1, "train.progress": False,
          "finetune.duration_kimg": 0.032, "sample.n_samples": 8, "sample.num_steps": 4,
          "evaluate.n_reference": 32, "evaluate.fd_pool": 2}
# Table 3 presets: lr, dropout and augment per dataset (CIFAR-10 "-": the checkpoint's own settings).
PRESETS: dict[str, EDMFinetuneExperiment] = {
    "afhqv2-64": EDMFinetuneExperiment(
        "edm_afhqv2", "afhqv2-64", _official("afhqv2-64x64-uncond"),
        base={"data.dataset": "afhqv2-64x64", "train.lr": 5e-5, "model.dropout": 0.25, "augment.p": 0.15},
        profiles={"smoke": _SMOKE, "paper": {}}, default_seeds={"smoke": (1,), "paper": (1, 2, 3)}),
    "ffhq-64": EDMFinetuneExperiment(
        "edm_ffhq", "ffhq-64", _official("ffhq-64x64-uncond"),
        base={"data.dataset": "ffhq-64x64", "train.lr": 5e-5, "model.dropout": 0.05, "augment.p": 0.15},
        profiles={"smoke": _SMOKE, "paper": {}}, default_seeds={"smoke": (1,), "paper": (1, 2, 3)}),
    "cifar10-32": EDMFinetuneExperiment(
        "edm_cifar10", "cifar10-32", _official("cifar10-32x32-cond"),
        base={"data.dataset": "cifar10-32x32", "train.lr": 2e-4},
        profiles={"smoke": _SMOKE, "paper": {}}, default_seeds={"smoke": (1,), "paper": (1, 2, 3)}),
}


def edm_experiment(preset: str) -> EDMFinetuneExperiment:
    """The experiment of a Table 3 preset ("afhqv2-64", "ffhq-64", "cifar10-32")."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; Table 3 has {', '.join(PRESETS)}")
    return PRESETS[preset]

