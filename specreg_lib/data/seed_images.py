"""One PNG per seed, EDM's layout for generated images: ``outdir/{seed - seed % 1000:06d}/{seed:06d}.png``.

The format shared by generation (``diffusion.generate``) and FID (``metrics.fid``): EDM's uint8
quantisation, writing (atomically), listing and reading the seed images, and image grids.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_path
from .images import as_uint8, decode_image


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats (B, C, H, W) -> uint8 (B, C, H, W) on CPU as EDM: (x * 127.5 + 128).clip(0, 255), truncated."""
    return (images.detach().to(torch.float32) * 127.5 + 128).clip(0, 255).to(torch.uint8).cpu()


def image_path(outdir: str | os.PathLike, seed: int) -> Path:
    """Where seed s is stored: ``outdir/{s - s % 1000:06d}/{s:06d}.png`` (EDM's layout, 1000 files a folder)."""
    return Path(outdir) / f"{seed - seed % 1000:06d}" / f"{seed:06d}.png"


def write_png(image: torch.Tensor | np.ndarray, path: str | os.PathLike) -> Path:
    """One uint8 image (C, H, W) (C = 1 or 3) as a PNG, atomically."""
    from PIL import Image

    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[0] not in (1, 3):
        raise ValueError(f"write_png takes a uint8 (C, H, W) image with C in (1, 3), got {a.dtype} {a.shape}")
    pil = Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
    with atomic_path(path) as tmp:
        pil.save(tmp, format="PNG")
    return Path(path)


def list_seed_images(outdir: str | os.PathLike) -> dict[int, Path]:
    """The ``{seed: path}`` of the generated PNGs in ``outdir`` (names ``NNNNNN.png``; temp files ignored)."""
    outdir = Path(outdir)
    if not outdir.is_dir():
        raise FileNotFoundError(f"{outdir}: no such folder of generated images")
    return {int(p.stem): p for p in sorted(outdir.glob("*/*.png")) if p.stem.isdigit()}


def read_seed_images(outdir: str | os.PathLike, seeds: Sequence[int]) -> torch.Tensor:
    """The generated PNGs of ``seeds`` back as uint8 (B, C, H, W) (e.g. for a grid), read by ``images``' rule
    (pixel cap before decoding, 16 bits rounded to 8, no transparency; FolderError naming the file)."""
    out = []
    for s in seeds:
        path = image_path(outdir, s)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: seed {s} has not been generated into {outdir}")
        a = as_uint8(decode_image(path, str(path)))
        out.append(torch.from_numpy((a[None] if a.ndim == 2 else a.transpose(2, 0, 1)).copy()))  # (C, H, W)
    return torch.stack(out)


def image_grid(images: torch.Tensor | np.ndarray, nrow: int, padding: int = 0, pad_value: float = 255,
               border: bool = True) -> np.ndarray:
    """(B, C, H, W) -> one (rows (H + p) - p + 2b, n (W + p) - p + 2b, C) array in the images' dtype, row-major.

    n = min(nrow, B) images a row (``nrow`` as torchvision's make_grid), rows = ceil(B / n); p = ``padding``
    between tiles, b = p around them with ``border`` (as make_grid), else 0. Gaps and empty cells are
    ``pad_value``: 255 (white) for uint8 images, NaN for float images shown through a colormap.
    """
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"image_grid takes a non-empty batch (B, C, H, W), got shape {x.shape}")
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1 or padding < 0:
        raise ValueError(f"need an int nrow >= 1 and padding >= 0, got nrow={nrow!r}, padding={padding!r}")
    B, C, H, W = x.shape
    ncols = min(nrow, B)
    rows = -(-B // ncols)
    b = padding if border else 0
    grid = np.full((rows * (H + padding) - padding + 2 * b, ncols * (W + padding) - padding + 2 * b, C), pad_value,
                   dtype=x.dtype)
    for k in range(B):
        r, c = divmod(k, ncols)
        top, left = b + r * (H + padding), b + c * (W + padding)
        grid[top:top + H, left:left + W] = x[k].transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    return grid


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int, padding: int = 0) -> Path:
    """Write ``image_grid(images, nrow, padding)`` of uint8 images (B, C, H, W) as a PNG, atomically."""
    return write_png(image_grid(images, nrow, padding).transpose(2, 0, 1), path)
