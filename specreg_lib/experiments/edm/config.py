"""The typed config of EDM fine-tuning (``experiments/edm/experiment.py``): one frozen dataclass per concern,
validated on construction; profiles and Table 3 presets are dotted overrides of these defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from ...data.augment import AugmentPipe
from ...diffusion import Regularizer
from ...diffusion.edm_train import PIXEL_REDUCTIONS
from ...training import TrainConfig
from ..core.config import (
    MAX_IMAGES,
    MAX_KIMG,
    MAX_SEED,
    MAX_THREADS,
    Range,
    check_ranges,
    check_run_fields,
    refuse,
)

FAMILIES = ("vp", "ve")  # the paper's "VP-EDM" = DDPM++, "VE-EDM" = NCSN++, both under EDMPrecond
LENGTHS = ("table3", "five_steps")
REFERENCE_SEED = 10_007  # reference images drawn from the dataset with a seed apart from every training seed


@dataclass(frozen=True)
class EDMModel:
    """The checkpoint: ``""`` = the preset's official file for ``family``; a registry name, URL or path; or
    ``"tiny"`` (smoke: a small SongUNet of ``family`` written in the official format, the same for every seed)."""

    family: str = "vp"
    checkpoint: str = ""
    local_path: str = ""  # your copy of the official file (checked against the registry's SHA-256)
    sha256: str = ""  # expected SHA-256 of a URL or path given in ``checkpoint``; "" = the registry's
    # None = the checkpoint's own; Table 3: AFHQ 0.25, FFHQ 0.05
    dropout: Annotated[float, Range(0, 1, hi_open=True, example=0.05)] | None = None
    tiny_resolution: Annotated[int, Range(4, 256)] = 16  # smoke's tiny SongUNet: two levels, so even
    tiny_channels: Annotated[int, Range(4, 512)] = 16
    tiny_label_dim: Annotated[int, Range(0, 1000)] = 0

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.family not in FAMILIES:
            raise refuse(self, "family", f"choose one of {', '.join(FAMILIES)} (the paper's VP-EDM = the DDPM++ "
                         "network, VE-EDM = NCSN++)", "vp")
        if self.tiny_resolution % 2:
            raise refuse(self, "tiny_resolution", "need an even size (the tiny net halves it once)", 16)


@dataclass(frozen=True)
class EDMData:
    """Training images in EDM's layout (zip or folder): ``""`` = data/<dataset>.zip (see
    ``specreg_lib.data.edm_datasets.prepare_dataset``), ``"standin"`` = offline crops at the net's resolution."""

    path: str = ""
    dataset: str = "afhqv2-64x64"  # the name prepare_dataset builds; names the default path
    standin_images: Annotated[int, Range(1, MAX_IMAGES)] = 64
    max_size: Annotated[int, Range(0, 10**9)] = 0  # use only the first max_size images (0 = all)

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class EDMAugment:
    """EDM's augment pipe: ``p`` None = the checkpoint's augment_pipe record (Table 3: 0.15 at 64x64)."""

    p: Annotated[float, Range(0, 1, example=0.15)] | None = None
    resample: str = "bilinear"  # grid_sample mode (EDM: 2x wavelet supersampling; see data/augment.py)

    def __post_init__(self) -> None:
        check_ranges(self)
        AugmentPipe(p=self.p or 0.0, resample=self.resample)  # validates


@dataclass(frozen=True)
class EDMObjective:
    """How EDM's loss is reduced over C*H*W next to the spectral term (docs/edm_finetune.md)."""

    pixels: str = "sum"

    def __post_init__(self) -> None:
        if self.pixels not in PIXEL_REDUCTIONS:
            raise refuse(self, "pixels", f"choose one of {', '.join(PIXEL_REDUCTIONS)} (sum or mean over C*H*W)",
                         "sum")


@dataclass(frozen=True)
class EDMLength:
    """Fine-tuning length: Table 3's duration, or the paper text's 5 optimisation steps."""

    length: str = "table3"
    # Table 3 "Duration 0.5" in EDM's Mimg; it gives train.steps = ceil(duration / batch), so it is bounded
    duration_kimg: Annotated[float, Range(0, MAX_KIMG, lo_open=True)] = 500.0

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.length not in LENGTHS:
            raise refuse(self, "length", f"choose one of {', '.join(LENGTHS)}", "table3")


@dataclass(frozen=True)
class EDMSample:
    """Images drawn after fine-tuning with EDM's Heun sampler, from seeds shared by every run (paired)."""

    n_samples: Annotated[int, Range(2, MAX_IMAGES)] = 64  # >= 2: the pixel Frechet distance needs a covariance
    first_seed: Annotated[int, Range(0, MAX_SEED - MAX_IMAGES)] = 0  # seeds first_seed .. first_seed + n_samples - 1
    # None = the paper's (18 at 32x32, 40 at 64x64)
    num_steps: Annotated[int, Range(1, 1000, example=18)] | None = None

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class EDMEvaluate:
    """Cheap in-run metrics (FID-50k is a separate stage: kit/fid.py): spectra and a pixel Frechet distance."""

    n_reference: Annotated[int, Range(2, MAX_IMAGES)] = 256
    log_floor: Annotated[float, Range(0, lo_open=True)] = 1e-4
    # pixel Frechet distance on images average-pooled to fd_pool x fd_pool
    fd_pool: Annotated[int, Range(1, 256)] = 8

    def __post_init__(self) -> None:
        check_ranges(self)


def _train() -> TrainConfig:
    # EDM: Adam(0.9, 0.999, 1e-8), fp32, no clipping (EDM zeroes NaN gradients; our loop skips such steps),
    # EMA half-life 0.5 Mimg without ramp-up (--transfer), LR ramp shortened to 10 kimg (EDM's 10 Mimg would
    # outlast a 0.5 Mimg fine-tune); batch_size = per GPU (Table 3).
    return TrainConfig(steps=0, batch_size=16, lr=5e-5, grad_clip=0.0, ema_decay=0.0, ema_halflife_kimg=500.0,
                       lr_rampup_kimg=10.0, seed=1, device="auto", checkpoint_every=500, log_every=50)


@dataclass(frozen=True)
class EDMFinetuneConfig:
    """One fine-tuning run: checkpoint, data, augmentation, pixel reduction of the loss, regularizer (None = baseline
    fine-tune), length, train (batch PER GPU; steps come from ``finetune``), sample, evaluate."""

    model: EDMModel = field(default_factory=EDMModel)
    data: EDMData = field(default_factory=EDMData)
    augment: EDMAugment = field(default_factory=EDMAugment)
    loss: EDMObjective = field(default_factory=EDMObjective)
    regularizer: Regularizer | None = field(default_factory=lambda: Regularizer("amp", 1.0, "weighted"))
    finetune: EDMLength = field(default_factory=EDMLength)
    train: TrainConfig = field(default_factory=_train)
    sample: EDMSample = field(default_factory=EDMSample)
    evaluate: EDMEvaluate = field(default_factory=EDMEvaluate)
    # torch.set_num_threads while this run trains; 0 = leave as is (not part of the results)
    threads: Annotated[int, Range(0, MAX_THREADS)] = 0

    def __post_init__(self) -> None:
        check_run_fields(self)
