"""Folders of images (PNG/JPG) or WAV files: list them, read their sizes, load them on a common crop.

Images load as grayscale in [-1, 1], centre-cropped; audio loads mixed down to mono, cropped to the first
samples. Every failure raises ``FolderError`` naming the folder or file and why.
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
        raise FolderError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTS]
    audio = [p for p in files if p.suffix.lower() in AUDIO_EXTS]
    if images and audio:
        raise FolderError(f"{folder}: mixes images ({len(images)}) and WAV files ({len(audio)}); use one kind")
    if not images and not audio:
        raise FolderError(f"{folder}: no PNG/JPG images or WAV files found")
    return ("image", images) if images else ("audio", audio)


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image without decoding it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except Exception as err:  # PIL raises several types for broken files
        raise FolderError(f"{path}: cannot read image ({err})") from err


def load_image(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """Grayscale image centre-cropped to ``size``, in [-1, 1]: -> (1, 1, H, W) float64."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            x = np.asarray(im.convert("L"), dtype=np.float64) / 127.5 - 1.0
    except Exception as err:
        raise FolderError(f"{path}: cannot read image ({err})") from err
    top, left = (x.shape[0] - size[0]) // 2, (x.shape[1] - size[1]) // 2
    return torch.from_numpy(x[top : top + size[0], left : left + size[1]].copy()).view(1, 1, *size)


def audio_info(path: Path) -> tuple[int, int]:
    """(frames, sample rate) of a WAV file."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as err:
        raise FolderError(f"{path}: cannot read audio ({err})") from err
    return info.frames, info.samplerate


def load_audio(path: Path, length: int) -> torch.Tensor:
    """Mono WAV cropped to its first ``length`` samples: -> (1, 1, T) float64."""
    import soundfile as sf

    try:
        x, _ = sf.read(str(path), dtype="float64", always_2d=True, frames=length)
    except Exception as err:
        raise FolderError(f"{path}: cannot read audio ({err})") from err
    return torch.from_numpy(x.mean(1)).view(1, 1, -1)
