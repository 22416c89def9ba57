"""Denoiser networks: one configurable U-Net."""

from .unet import UNet, UNetConfig, count_parameters, timestep_embedding

__all__ = ["UNet", "UNetConfig", "count_parameters", "timestep_embedding"]
