"""Image (PNG/JPG) or WAV files: a folder (searched recursively) or a zip archive (read in place); load them.

A folder ``generate`` wrote (``generation.json`` beside ``{seed - seed % 1000:06d}/{seed:06d}.png``) gives exactly
its seed images in seed order; a dataset zip in EDM's layout (``00000/img00000000.png``, ``dataset.json``) gives
its images in the order of their names, read from the archive without extracting it. Hidden files (atomic
writers' temp files) are skipped. Images load as grayscale in [-1, 1] at their full bit depth, centre-cropped;
audio loads mixed down to mono. Every failure raises ``FolderError`` naming the folder or file and why.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from ..errors import InputError
from .seed_images import list_seed_images

IMAGE_EXTS = (".png", ".jpg", ".jpeg")
AUDIO_EXTS = (".wav",)
GENERATION_RECORD = "generation.json"  # what ``specreg generate`` writes beside its seed folders


class FolderError(InputError, ValueError):
    """A folder or file that cannot be used as images or audio; the message says which and why."""


class ZipMember:
    """One file inside a zip archive, read in place (never extracted); shown as ``archive.zip/name``."""

    def __init__(self, archive: zipfile.ZipFile, path: Path, name: str) -> None:
        self.archive, self.path, self.name = archive, path, name
        self.suffix = PurePosixPath(name).suffix

    def read_bytes(self) -> bytes:
        return self.archive.read(self.name)

    def __str__(self) -> str:
        return f"{self.path}/{self.name}"

    __repr__ = __str__


Media = Path | ZipMember  # a file of a folder, or a member of a zip archive


def natural_key(name: str) -> list[int | str]:
    """Sort key that orders digit runs by value (``img9`` before ``img10``; seed 999999 before 1000000)."""
    return [int(t) if i % 2 else t for i, t in enumerate(re.split(r"(\d+)", name))]  # str, int, str, ...


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in PurePosixPath(relative).parts)


def _members(source: Path) -> list[tuple[str, Media]]:
    """(relative name, file) of every non-hidden file of a zip archive or a folder tree."""
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise FolderError(f"{source}: neither a folder nor a zip archive; point to a folder of images/WAVs or "
                              "a dataset zip")
        try:
            archive = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError) as err:
            raise FolderError(f"{source}: cannot read the zip archive ({err}); download or build it again") from err
        return [(n, ZipMember(archive, source, n)) for n in archive.namelist() if not n.endswith("/")]
    if not source.is_dir():
        raise FolderError(f"{source}: no such folder or zip archive; check the path")
    if (source / GENERATION_RECORD).is_file():  # generate's folder: its seed images only (not a --grid PNG)
        return [(p.relative_to(source).as_posix(), p) for p in list_seed_images(source).values()]
    return [(p.relative_to(source).as_posix(), p) for p in source.rglob("*") if p.is_file()]


def list_media(source: str | Path) -> tuple[str, list[Media]]:
    """The image or WAV files of a folder (recursively) or a zip archive, in natural name order, and their kind
    ("image" or "audio")."""
    source = Path(source)
    files = [f for name, f in sorted(_members(source), key=lambda m: natural_key(m[0])) if not _hidden(name)]
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTS]
    audio = [p for p in files if p.suffix.lower() in AUDIO_EXTS]
    if images and audio:
        raise FolderError(f"{source}: mixes images ({len(images)}) and WAV files ({len(audio)}); use one kind")
    if not images and not audio:
        raise FolderError(f"{source}: no PNG/JPG images or WAV files found (searched recursively); point to the "
                          "folder or zip that holds them")
    return ("image", images) if images else ("audio", audio)


def _readable(item: Media) -> str | io.BytesIO:
    """What PIL / soundfile / open read: a file's path, or a zip member's bytes."""
    return io.BytesIO(item.read_bytes()) if isinstance(item, ZipMember) else str(item)


def image_size(path: Media) -> tuple[int, int]:
    """(H, W) of an image without decoding it."""
    from PIL import Image

    try:
        with Image.open(_readable(path)) as im:
            return im.size[1], im.size[0]
    except Exception as err:  # PIL raises several types for broken files
        raise FolderError(f"{path}: cannot read image ({err}); remove or re-export it") from err


def _gray(x: np.ndarray, path: Media) -> np.ndarray:
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


def load_image(path: Media, size: tuple[int, int]) -> torch.Tensor:
    """Grayscale image (any bit depth; opaque alpha dropped) centre-cropped to ``size``, in [-1, 1]: (1, 1, H, W).

    Read with imageio, so a 16-bit PNG keeps its 16 bits (PIL's ``convert("L")`` clips it at 255); an image
    with transparent pixels is refused (its spectrum depends on the background)."""
    import imageio.v3 as iio

    try:
        x = iio.imread(path.read_bytes() if isinstance(path, ZipMember) else path)
    except Exception as err:  # imageio/PIL raise several types for broken files
        raise FolderError(f"{path}: cannot read image ({err}); remove or re-export it") from err
    x = _gray(x, path) * 2.0 - 1.0
    top, left = (x.shape[0] - size[0]) // 2, (x.shape[1] - size[1]) // 2
    return torch.from_numpy(x[top : top + size[0], left : left + size[1]].copy()).view(1, 1, *size)


def _wav_declared_frames(path: Media, frame_bytes: int) -> int | None:
    """Frames the RIFF header's 'data' chunk declares (None if not a plain RIFF/WAVE file).

    Why by hand: libsndfile silently shortens a truncated file to what is there, so only the header knows."""
    import struct

    with _readable(path) if isinstance(path, ZipMember) else open(path, "rb") as fh:
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


def audio_info(path: Media) -> tuple[int, int]:
    """(frames, sample rate) of a WAV file; a file cut short (header promises more) raises FolderError."""
    import soundfile as sf

    try:
        info = sf.info(_readable(path))
    except Exception as err:
        raise FolderError(f"{path}: cannot read audio ({err}); remove or re-export it") from err
    bits = {"PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "PCM_U8": 8, "FLOAT": 32, "DOUBLE": 64}.get(info.subtype)
    declared = _wav_declared_frames(path, info.channels * bits // 8) if bits else None
    if declared is not None and declared > info.frames:
        raise FolderError(f"{path}: truncated WAV: its header declares {declared} frames but the file holds "
                          f"{info.frames}; re-export or remove it")
    return info.frames, info.samplerate


def load_audio(path: Media, length: int | None = None) -> torch.Tensor:
    """Mono WAV (channels averaged), whole or its first ``length`` samples: -> (1, 1, T) float64."""
    import soundfile as sf

    try:
        x, _ = sf.read(_readable(path), dtype="float64", always_2d=True, frames=-1 if length is None else length)
    except Exception as err:
        raise FolderError(f"{path}: cannot read audio ({err}); remove or re-export it") from err
    return torch.from_numpy(x.mean(1)).view(1, 1, -1)
