"""The typed config of EDM fine-tuning (``experiments/edm/experiment.py``): one frozen dataclass per concern,
validated on construction; profiles and Table 3 presets are dotted overrides of these defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...data.augment import AugmentPipe
from ...diffusion import Regularizer
from ...diffusion.edm_train import PIXEL_REDUCTIONS
from ...training import TrainConfig
from ..core.config import check_run_fields

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
    dropout: float | None = None  # None = the checkpoint's own; Table 3: AFHQ 0.25, FFHQ 0.05
    tiny_resolution: int = 16
    tiny_channels: int = 16
    tiny_label_dim: int = 0

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"model.family must be one of {FAMILIES} (the paper's VP-EDM = the DDPM++ network, "
                             f"VE-EDM = NCSN++), got {self.family!r}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError(f"model.dropout must be in [0, 1) or None (the checkpoint's), got {self.dropout}")


@dataclass(frozen=True)
class EDMData:
    """Training images in EDM's layout (zip or folder): ``""`` = data/<dataset>.zip (see
    ``specreg_lib.data.edm_datasets.prepare_dataset``), ``"standin"`` = offline crops at the net's resolution."""

    path: str = ""
    dataset: str = "afhqv2-64x64"  # the name prepare_dataset builds; names the default path
    standin_images: int = 64
    max_size: int = 0  # use only the first max_size images (0 = all)


@dataclass(frozen=True)
class EDMAugment:
    """EDM's augment pipe: ``p`` None = the checkpoint's augment_pipe record (Table 3: 0.15 at 64x64)."""

    p: float | None = None
    resample: str = "bilinear"  # grid_sample mode (EDM: 2x wavelet supersampling; see data/augment.py)

    def __post_init__(self) -> None:
        AugmentPipe(p=self.p or 0.0, resample=self.resample)  # validates


@dataclass(frozen=True)
class EDMObjective:
    """How EDM's loss is reduced over C*H*W next to the spectral term (docs/edm_finetune.md)."""

    pixels: str = "sum"

    def __post_init__(self) -> None:
        if self.pixels not in PIXEL_REDUCTIONS:
            raise ValueError(f"loss.pixels must be one of {PIXEL_REDUCTIONS} (sum or mean over C*H*W), "
                             f"got {self.pixels!r}")


@dataclass(frozen=True)
class EDMLength:
    """Fine-tuning length: Table 3's duration, or the paper text's 5 optimisation steps."""

    length: str = "table3"
    duration_kimg: float = 500.0  # Table 3 "Duration 0.5" in EDM's Mimg

    def __post_init__(self) -> None:
        if self.length not in LENGTHS:
            raise ValueError(f"finetune.length must be one of {LENGTHS}, got {self.length!r}")
        if not self.duration_kimg > 0:
            raise ValueError(f"finetune.duration_kimg must be > 0, got {self.duration_kimg}")


@dataclass(frozen=True)
class EDMSample:
    """Images drawn after fine-tuning with EDM's Heun sampler, from seeds shared by every run (paired)."""

    n_samples: int = 64
    first_seed: int = 0
    num_steps: int | None = None  # None = the paper's (18 at 32x32, 40 at 64x64)

    def __post_init__(self) -> None:
        if self.n_samples < 2 or self.first_seed < 0:
            raise ValueError("need sample.n_samples >= 2 and sample.first_seed >= 0")


@dataclass(frozen=True)
class EDMEvaluate:
    """Cheap in-run metrics (FID-50k is a separate stage: kit/fid.py): spectra and a pixel Frechet distance."""

    n_reference: int = 256
    log_floor: float = 1e-4
    fd_pool: int = 8  # pixel Frechet distance on images average-pooled to fd_pool x fd_pool

    def __post_init__(self) -> None:
        if self.n_reference < 2 or not self.log_floor > 0 or self.fd_pool < 1:
            raise ValueError("need evaluate.n_reference >= 2, evaluate.log_floor > 0, evaluate.fd_pool >= 1")


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
    threads: int = 0  # torch.set_num_threads while this run trains; 0 = leave as is (not part of the results)

    def __post_init__(self) -> None:
        check_run_fields(self.threads, self.regularizer)
