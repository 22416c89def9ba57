"""A tiny SongUNet checkpoint in the official EDM format, for smoke runs and tests: the same loader, the same
records (EDMLoss, AugmentPipe at EDM's --augment settings, dataset_kwargs) as an edm-*.pkl, a few MB smaller."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .edm_checkpoint import save_edm_checkpoint
from .edm_pickle import PersistentRecord
from .edm_precond import EDMDenoiser
from .songunet import DDPMPP, NCSNPP, SongUNet

TINY_SEED = 0  # every tiny checkpoint of a given shape has the same weights, like a downloaded file
# EDM's AugmentPipe at train.py --augment=0.12 (its CIFAR-10 default): the settings an official file records.
AUGMENT_RECORD = dict(p=0.12, xflip=1e8, yflip=1, scale=1, rotate_frac=1, aniso=1, translate_frac=1)


def write_tiny_checkpoint(path: str | os.PathLike, family: str = "vp", resolution: int = 16, channels: int = 16,
                          label_dim: int = 0, img_channels: int = 3, channel_mult: tuple[int, ...] = (1, 2),
                          attn_resolutions: tuple[int, ...] | None = None, dropout: float = 0.1,
                          seed: int = TINY_SEED) -> Path:
    """A small DDPM++ ("vp") or NCSN++ ("ve") SongUNet under EDMPrecond with augment_dim 9, written with
    ``save_edm_checkpoint`` (loads back with ``load_edm_checkpoint``); weights from ``seed``.

    Defaults: two levels (``channel_mult`` (1, 2)), one block each, attention at half the resolution
    (``attn_resolutions=None``; ``()`` for none), dropout 0.1. Also the from-scratch initialisation of the image
    study's pretraining (experiments/ab_images)."""
    base = {"vp": DDPMPP, "ve": NCSNPP}[family]
    attn = [resolution // 2] if attn_resolutions is None else list(attn_resolutions)
    kwargs = {**base, "model_channels": channels, "channel_mult": list(channel_mult), "num_blocks": 1,
              "attn_resolutions": attn, "dropout": dropout}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = SongUNet(img_resolution=resolution, in_channels=img_channels, out_channels=img_channels,
                        label_dim=label_dim, augment_dim=9, **kwargs)
    net = EDMDenoiser(unet, "edm")
    loss = PersistentRecord.from_kwargs("EDMLoss", {"P_mean": -1.2, "P_std": 1.2, "sigma_data": 0.5},
                                        P_mean=-1.2, P_std=1.2, sigma_data=0.5)
    augment = PersistentRecord.from_kwargs("AugmentPipe", AUGMENT_RECORD, **{k: float(v) for k, v in
                                                                             AUGMENT_RECORD.items()})
    return save_edm_checkpoint(net, path, loss_fn=loss, augment_pipe=augment,
                               dataset_kwargs={"resolution": resolution, "use_labels": bool(label_dim)})
