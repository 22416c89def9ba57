"""Image (PNG/JPG) or WAV files: a folder (searched recursively) or a zip archive (read in place); load them.

A folder ``generate`` wrote (``generation.json`` beside ``{seed - seed % 1000:06d}/{seed:06d}.png``) gives exactly
its seed images in seed order; a dataset zip in EDM's layout (``00000/img00000000.png``, ``dataset.json``) gives
its images in the order of their names, read from the archive without extracting it. Hidden files (atomic
writers' temp files) are skipped. Images load as grayscale in [-1, 1] at their full bit depth, centre-cropped;
audio loads mixed down to mono. Every failure raises ``FolderError`` naming the folder or file and why
(``AudioError`` for WAV samples that are not finite or beyond full scale).

The rules for untrusted files live here, once, and the EDM dataset loader uses them too:

* names: a member of a zip or folder must stay inside it (no absolute path, drive, ``..`` part or backslash; a
  folder's symbolic link must resolve inside the folder);
* zip members: only stored or deflated ones are read (``zipfile`` inflates those in bounded steps and never past
  the declared size; its bzip2/LZMA readers inflate a whole block at once), declared size at most
  ``MAX_MEMBER_BYTES``, checked before reading, read in chunks and CRC-checked;
* images: ``images.py``'s rule (the header's size and mode checked before decoding, 16 bits kept, CMYK and
  palette to RGB, float and transparent images refused);
* WAV samples: see ``speech.check_samples`` (finite, within full scale).
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from ..errors import InputError
from .images import (  # noqa: F401 (re-exported: the reading rule's names, as before)
    COLOR_MODES,
    GRAY_MODES,
    MAX_IMAGE_PIXELS,
    FolderError,
    as_uint8,
    decode_image,
    image_channels,
    open_image,
)
from .seed_images import list_seed_images
from .speech import check_samples

IMAGE_EXTS = (".png", ".jpg", ".jpeg")
AUDIO_EXTS = (".wav",)
GENERATION_RECORD = "generation.json"  # what ``specreg generate`` writes beside its seed folders
MAX_MEMBER_BYTES = 2**30  # one zip member, uncompressed (an hour of 16-bit stereo 44.1 kHz WAV is 0.64 GB)
READ_CHUNK = 2**20  # zip members are read in 1 MiB steps, so inflation is bounded by each step


def safe_name(name: str) -> bool:
    """True when a member name stays inside its archive or folder: relative, no drive, ``..`` or backslash."""
    p = PurePosixPath(name)
    return not (p.is_absolute() or ".." in p.parts or "\\" in name or re.match(r"[A-Za-z]:", name) or "\0" in name)


def check_zip_member(info: zipfile.ZipInfo, archive: Path, error: type[InputError] = FolderError,
                     limit: int = MAX_MEMBER_BYTES) -> None:
    """Refuse a member before reading it: a name leaving the archive, a compression whose inflation zipfile does
    not bound (anything but stored/deflated), a declared size over ``limit``."""
    where = f"{archive}/{info.filename}"
    if not safe_name(info.filename):
        raise error(f"{archive}: member {info.filename!r} points outside the archive; refusing it (members are "
                    "relative names such as 00000/img00000000.png): rebuild the zip")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise error(f"{where}: compressed with zip method {info.compress_type}; only stored or deflated members are "
                    "read (their inflation is bounded): rebuild the zip with zipfile.ZIP_STORED or ZIP_DEFLATED")
    if info.file_size > limit:
        raise error(f"{where}: declares {info.file_size} bytes uncompressed, over the limit of {limit} bytes for "
                    "one member; remove it from the zip or split the file")


def read_zip_member(archive: zipfile.ZipFile, name: str, path: Path, error: type[InputError] = FolderError,
                    limit: int = MAX_MEMBER_BYTES) -> bytes:
    """A member's bytes, checked first (``check_zip_member``) and read in bounded chunks up to its declared size
    (zipfile stops there and checks the CRC, so a member that inflates past its declared size is refused)."""
    info = archive.getinfo(name)
    check_zip_member(info, path, error, limit)
    chunks = []
    try:
        with archive.open(info) as fh:
            while chunk := fh.read(READ_CHUNK):
                chunks.append(chunk)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as err:  # CRC mismatch, broken deflate stream
        raise error(f"{path}/{name}: corrupt zip member ({err}); download or build the zip again") from err
    return b"".join(chunks)


def folder_files(root: Path, error: type[InputError] = FolderError) -> list[Path]:
    """Every file under ``root`` (recursively); a link resolving outside ``root`` is refused, never read."""
    top = root.resolve()
    files = [p for p in root.rglob("*") if p.is_file()]
    for p in files:
        if p.is_symlink() and not p.resolve().is_relative_to(top):
            raise error(f"{p}: a link to {p.resolve()}, outside {root}; refusing it: copy the file into the folder "
                        "or remove the link")
    return files


class ZipMember:
    """One file inside a zip archive, read in place (never extracted); shown as ``archive.zip/name``."""

    def __init__(self, archive: zipfile.ZipFile, path: Path, name: str) -> None:
        self.archive, self.path, self.name = archive, path, name
        self.suffix = PurePosixPath(name).suffix

    def read_bytes(self) -> bytes:
        return read_zip_member(self.archive, self.name, self.path)

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
        names = [n for n in archive.namelist() if not n.endswith("/")]
        for n in names:
            if not safe_name(n):
                raise FolderError(f"{source}: member {n!r} points outside the archive; refusing it (members are "
                                  "relative names such as 00000/img00000000.png): rebuild the zip")
        return [(n, ZipMember(archive, source, n)) for n in names]
    if not source.is_dir():
        raise FolderError(f"{source}: no such folder or zip archive; check the path")
    if (source / GENERATION_RECORD).is_file():  # generate's folder: its seed images only (not a --grid PNG)
        return [(p.relative_to(source).as_posix(), p) for p in list_seed_images(source).values()]
    return [(p.relative_to(source).as_posix(), p) for p in folder_files(source)]


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
    """What PIL / soundfile / open read: a file's path, or a zip member's bytes (bounded read)."""
    return io.BytesIO(item.read_bytes()) if isinstance(item, ZipMember) else str(item)


# ------------------------------------------------------------------ images: read by images.py's rule


def image_size(path: Media) -> tuple[int, int]:
    """(H, W) of an image without decoding it (size and mode checked)."""
    with open_image(_readable(path), str(path)) as im:
        return im.size[1], im.size[0]


def _gray(x: np.ndarray) -> np.ndarray:
    """Opaque pixels (H, W[, 3]) of any integer depth -> grayscale float64 in [0, 1] (ITU-R 601 luma for RGB)."""
    x = x.astype(np.float64) / np.iinfo(x.dtype).max  # 8-bit /255, 16-bit /65535: no clipping at 255
    return x @ np.array([0.299, 0.587, 0.114]) if x.ndim == 3 else x


def load_image(path: Media, size: tuple[int, int]) -> torch.Tensor:
    """Grayscale image (any bit depth; opaque alpha dropped) centre-cropped to ``size``, in [-1, 1]: (1, 1, H, W).

    Read by ``decode_image``: a 16-bit PNG keeps its 16 bits, CMYK is converted to RGB, a transparent image or
    one over ``MAX_IMAGE_PIXELS`` is refused."""
    x = _gray(decode_image(_readable(path), str(path))) * 2.0 - 1.0
    top, left = (x.shape[0] - size[0]) // 2, (x.shape[1] - size[1]) // 2
    return torch.from_numpy(x[top : top + size[0], left : left + size[1]].copy()).view(1, 1, *size)


# ------------------------------------------------------------------ audio


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
    """Mono WAV (channels averaged), whole or its first ``length`` samples: -> (1, 1, T) float64.

    Samples must be finite and within full scale (``speech.check_samples``; AudioError otherwise)."""
    import soundfile as sf

    try:
        x, _ = sf.read(_readable(path), dtype="float64", always_2d=True, frames=-1 if length is None else length)
    except Exception as err:
        raise FolderError(f"{path}: cannot read audio ({err}); remove or re-export it") from err
    check_samples(x, str(path))
    return torch.from_numpy(x.mean(1)).view(1, 1, -1)
