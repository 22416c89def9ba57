"""Data sources: the checkerboard family, stand-in natural-image patches (no download needed), image/WAV folders."""

from .checkerboard import CheckerboardFamily
from .folders import FolderError, list_media, load_audio, load_image
from .patches import SKIMAGE_IMAGES, ImagePatches, load_gray
from .samplers import TensorSampler

__all__ = [
    "CheckerboardFamily",
    "FolderError",
    "list_media",
    "load_audio",
    "load_image",
    "SKIMAGE_IMAGES",
    "ImagePatches",
    "load_gray",
    "TensorSampler",
]
