"""Data sources that need no download: stand-in natural-image patches."""

from .patches import SKIMAGE_IMAGES, ImagePatches, load_gray

__all__ = ["SKIMAGE_IMAGES", "ImagePatches", "load_gray"]
