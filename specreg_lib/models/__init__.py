"""Denoiser networks: one configurable U-Net, and EDM's SongUNet (DDPM++ / NCSN++) with its checkpoint loader."""

from .diffwave import DiffWaveEps, build_diffwave, load_diffwave, save_lmnt_checkpoint, vocode
from .edm_checkpoint import EDMCheckpointError, load_edm_checkpoint, read_edm_pickle, save_edm_checkpoint
from .edm_precond import EDMDenoiser
from .songunet import SongUNet
from .unet import UNet, UNetConfig, count_parameters, timestep_embedding

__all__ = [
    "DiffWaveEps", "build_diffwave", "load_diffwave", "save_lmnt_checkpoint", "vocode",
    "EDMCheckpointError", "EDMDenoiser", "SongUNet", "load_edm_checkpoint", "read_edm_pickle", "save_edm_checkpoint",
    "UNet", "UNetConfig", "count_parameters", "timestep_embedding",
]
