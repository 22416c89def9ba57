"""The one rule for reading an image file the kit did not write itself (datasets, folders, seed images).

Size and mode are checked from the header before any pixel is decoded (``MAX_IMAGE_PIXELS``; Pillow opens lazily
and its own limit only warns below 2x its 89 Mpx); 16-bit grayscale keeps its range (``convert("L")`` clips it at
255); CMYK and palette images are converted to RGB; floating-point pixels are refused (no fixed range); an image
with any transparent pixel is refused (its content depends on the background), an opaque alpha channel dropped.
``folders.py`` (folders and zips), ``edm_datasets.py`` and ``seed_images.py`` all read through it.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import InputError

MAX_IMAGE_PIXELS = 2**25  # 33.5 Mpx (8K UHD, 7680x4320, fits); a spectrum costs ~24 bytes a pixel: ~0.8 GB here
GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N")  # Pillow modes read as one channel
COLOR_MODES = ("RGB", "RGBA", "RGBa", "RGBX", "P", "PA", "CMYK", "YCbCr")  # ... and as RGB


class FolderError(InputError, ValueError):
    """A folder or file that cannot be used as images or audio; the message says which and why."""


@contextlib.contextmanager
def open_image(source: str | Path | IO[bytes], name: str, error: type[InputError] = FolderError
               ) -> Iterator:
    """A PIL image opened lazily (header only), its size checked against ``MAX_IMAGE_PIXELS`` and its mode
    against the modes read here before any pixel is decoded."""
    from PIL import Image

    try:
        with warnings.catch_warnings():  # Pillow warns from 89 Mpx on; the cap below answers first, in one line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(source)
    except Image.DecompressionBombError as err:
        raise error(f"{name}: the image declares more than {MAX_IMAGE_PIXELS} pixels ({err}); images are read "
                    f"up to {MAX_IMAGE_PIXELS} pixels: downscale it") from err
    except Image.UnidentifiedImageError as err:
        raise error(f"{name}: cannot read image: not a readable image file (no PNG/JPG header PIL knows); remove "
                    "it or re-export it as PNG") from err
    except Exception as err:  # PIL raises several types for broken headers
        raise error(f"{name}: cannot read image: not a readable image file ({err}); remove it or re-export it "
                    "as PNG") from err
    with im:
        (w, h), mode = im.size, im.mode
        if w * h > MAX_IMAGE_PIXELS:
            raise error(f"{name}: the header declares {w}x{h} = {w * h} pixels, over the limit of "
                        f"{MAX_IMAGE_PIXELS} (about 8K UHD) per image; downscale it (nothing was decoded)")
        if mode not in GRAY_MODES + COLOR_MODES:
            what = "floating-point pixels have no fixed range" if mode.startswith("F") else "an unsupported mode"
            raise error(f"{name}: image mode {mode!r} ({what}); save it as an 8- or 16-bit grayscale or RGB PNG")
        yield im


def image_channels(im) -> int:
    """1 for grayscale Pillow modes (any depth, with or without alpha), else 3 (RGB after conversion)."""
    return 1 if im.mode in GRAY_MODES else 3


def _pixels(im, name: str, error: type[InputError]) -> np.ndarray:
    """Decode an opened image: (H, W[, C]) uint8, or uint16 for 16-bit grayscale; alpha kept for the check."""
    mode = im.mode
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)  # native byte order, all 16 bits
    if mode == "I":  # 32-bit container (old Pillow's 16-bit PNGs): accepted within the 16-bit range
        a = np.asarray(im)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise error(f"{name}: 32-bit integer pixels in [{a.min()}, {a.max()}], beyond 16 bits; save it as an "
                        "8- or 16-bit PNG")
        return a.astype(np.uint16)
    if mode in ("L", "LA", "RGB", "RGBA"):
        return np.asarray(im)
    if mode == "1":
        return np.asarray(im.convert("L"))
    if mode == "La":
        return np.asarray(im.convert("LA"))
    if mode in ("RGBa", "PA") or (mode == "P" and "transparency" in im.info):
        return np.asarray(im.convert("RGBA"))
    return np.asarray(im.convert("RGB"))  # P, RGBX, YCbCr, CMYK (Pillow's conversion; no ICC profile applied)


def decode_image(source: str | Path | IO[bytes], name: str, error: type[InputError] = FolderError) -> np.ndarray:
    """An image's pixels, opaque: (H, W) or (H, W, 3), uint8 or uint16 (16-bit grayscale keeps its 16 bits).

    One rule for every image the kit reads: size and mode checked from the header first (``open_image``), a
    truncated or corrupt file named, and an image with any transparent pixel (alpha below full) refused; an
    opaque alpha channel is dropped."""
    with open_image(source, name, error) as im:
        try:
            a = _pixels(im, name, error)
        except InputError:
            raise
        except Exception as err:  # PIL raises OSError, SyntaxError, ValueError... for broken pixel data
            raise error(f"{name}: cannot decode image ({err}); the file is corrupt or truncated: re-export it "
                        "(or prepare the dataset again)") from err
    if a.ndim == 3 and a.shape[-1] in (2, 4):  # gray+alpha or RGBA
        alpha = a[..., -1]
        if (alpha < np.iinfo(a.dtype).max).any():  # the picture depends on what is behind it
            raise error(f"{name}: {np.mean(alpha < np.iinfo(a.dtype).max):.0%} of the pixels are transparent "
                        "(alpha < 1); flatten the image onto a background first (e.g. PIL Image.alpha_composite)")
        a = a[..., 0] if a.shape[-1] == 2 else a[..., :3]
    return a


def as_uint8(a: np.ndarray) -> np.ndarray:
    """uint8 pixels as they are; 16-bit ones rounded to the nearest 8-bit level (v / 257: 65535 -> 255)."""
    return a if a.dtype == np.uint8 else ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
