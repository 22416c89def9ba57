"""Folders of images (PNG/JPG) or WAV files: list them, read their sizes, load them on a common crop.

Images load as grayscale in [-1, 1] at their full bit depth, centre-cropped; audio loads mixed down to mono.
Every failure raises ``FolderError`` naming the folder or file and why.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

IMAGE_EXTS = (".png", ".jpg", ".jpeg")
AUDIO_EXTS = (".wav",)


class FolderError(ValueError):
    """A folder or file that cannot be used as images or audio; the message says which and why."""


def list_media(folder: str | Path) -> tuple[str, list[Path]]:
    """Sorted image or WAV files of ``folder`` and their kind ("image" or "audio")."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FolderError(f"{folder}: no such folder; check the path")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTS]
    audio = [p for p in files if p.suffix.lower() in AUDIO_EXTS]
    if images and audio:
        raise FolderError(f"{folder}: mixes images ({len(images)}) and WAV files ({len(audio)}); use one kind")
    if not images and not audio:
        raise FolderError(f"{folder}: no PNG/JPG images or WAV files found; point to the folder that holds them")
    return ("image", images) if images else ("audio", audio)


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image without decoding it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except Exception as err:  # PIL raises several types for broken files
        raise FolderError(f"{path}: cannot read image ({err}); remove or re-export it") from err


def _gray(x: np.ndarray, path: Path) -> np.ndarray:
    """An image array (H, W[, C]) of any integer depth or float -> grayscale float64 in [0, 1]."""
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64) / np.iinfo(x.dtype).max  # 8-bit /255, 16-bit /65535: no clipping at 255
    else:
        x = x.astype(np.float64)
    if x.ndim == 3 and x.shape[-1] in (2, 4):  # gray+alpha or RGBA
        alpha, x = x[..., -1], x[..., :-1]
        if alpha.min() < 1.0:  # the spectrum of a see-through picture depends on what is behind it
            raise FolderError(f"{path}: {np.mean(alpha < 1.0):.0%} of the pixels are transparent (alpha < 1); "
                              "flatten the image onto a background first (e.g. PIL Image.alpha_composite)")
    if x.ndim == 3:
        x = x[..., :3] @ np.array([0.299, 0.587, 0.114]) if x.shape[-1] >= 3 else x[..., 0]  # ITU-R 601 luma
    if x.ndim != 2:
        raise FolderError(f"{path}: an image of shape {x.shape} is neither grayscale nor RGB(A)")
    return x


def load_image(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """Grayscale image (any bit depth; opaque alpha dropped) centre-cropped to ``size``, in [-1, 1]: (1, 1, H, W).

    Read with imageio, so a 16-bit PNG keeps its 16 bits (PIL's ``convert("L")`` clips it at 255); an image
    with transparent pixels is refused (its spectrum depends on the background)."""
    import imageio.v3 as iio

    try:
        x = iio.imread(path)
    except Exception as err:  # imageio/PIL raise several types for broken files
        raise FolderError(f"{path}: cannot read image ({err}); remove or re-export it") from err
    x = _gray(x, path) * 2.0 - 1.0
    top, left = (x.shape[0] - size[0]) // 2, (x.shape[1] - size[1]) // 2
    return torch.from_numpy(x[top : top + size[0], left : left + size[1]].copy()).view(1, 1, *size)


def _wav_declared_frames(path: Path, frame_bytes: int) -> int | None:
    """Frames the RIFF header's 'data' chunk declares (None if not a plain RIFF/WAVE file).

    Why by hand: libsndfile silently shortens a truncated file to what is there, so only the header knows."""
    import struct

    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
            return None
        while chunk := fh.read(8):
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                return size // frame_bytes if frame_bytes else None
            fh.seek(size + (size & 1), 1)
    return None


def audio_info(path: Path) -> tuple[int, int]:
    """(frames, sample rate) of a WAV file; a file cut short (header promises more) raises FolderError."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as err:
        raise FolderError(f"{path}: cannot read audio ({err}); remove or re-export it") from err
    bits = {"PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "PCM_U8": 8, "FLOAT": 32, "DOUBLE": 64}.get(info.subtype)
    declared = _wav_declared_frames(path, info.channels * bits // 8) if bits else None
    if declared is not None and declared > info.frames:
        raise FolderError(f"{path}: truncated WAV: its header declares {declared} frames but the file holds "
                          f"{info.frames}; re-export or remove it")
    return info.frames, info.samplerate


def load_audio(path: Path, length: int | None = None) -> torch.Tensor:
    """Mono WAV (channels averaged), whole or its first ``length`` samples: -> (1, 1, T) float64."""
    import soundfile as sf

    try:
        x, _ = sf.read(str(path), dtype="float64", always_2d=True, frames=-1 if length is None else length)
    except Exception as err:
        raise FolderError(f"{path}: cannot read audio ({err}); remove or re-export it") from err
    return torch.from_numpy(x.mean(1)).view(1, 1, -1)
