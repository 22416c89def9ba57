"""Checkpoints, datasets and metric weights the ``paper`` profile needs: one registry, one resolver.

Every asset can come from (in this order): an explicit local path (a notebook/CLI option), the
environment variable ``SPECREG_<NAME>`` (name upper-cased, ``-``/``.`` -> ``_``), the cache folder
(``SPECREG_CACHE`` or ``data/cache``), or a download from its URL, checked against its SHA-256.
Downloads stream to a temp file that is renamed only after the checksum matches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from tqdm.auto import tqdm

from .io import atomic_path, resolve_repo_path

EDM_BASE = "https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/"


@dataclasses.dataclass(frozen=True)
class Asset:
    """A file the paper profile downloads: its name, URL, pinned SHA-256 (None = not yet known) and use."""

    name: str
    url: str
    sha256: str | None
    kind: str  # "checkpoint" | "dataset" | "metric"
    used_by: str
    size_hint: str = ""

    @property
    def env_var(self) -> str:
        return "SPECREG_" + self.name.upper().replace("-", "_").replace(".", "_")


def _edm(name: str) -> Asset:
    # NVIDIA publishes no checksums for these pickles; the first download records one (see fetch()).
    return Asset(name, EDM_BASE + name, None, "checkpoint", "EDM fine-tuning (Table 1)", "~250 MB")


REGISTRY: dict[str, Asset] = {
    a.name: a
    for a in [
        *(_edm(f"edm-{d}-{c}-{v}.pkl") for d, c in [("afhqv2-64x64", "uncond"), ("ffhq-64x64", "uncond"),
                                                     ("cifar10-32x32", "cond"), ("cifar10-32x32", "uncond")]
          for v in ("vp", "ve")),
        Asset("afhqv2-64x64.npz", "https://nvlabs-fi-cdn.nvidia.com/edm/fid-refs/afhqv2-64x64.npz", None,
              "metric", "FID reference statistics, AFHQv2-64"),
        Asset("ffhq-64x64.npz", "https://nvlabs-fi-cdn.nvidia.com/edm/fid-refs/ffhq-64x64.npz", None,
              "metric", "FID reference statistics, FFHQ-64"),
        Asset("cifar10-32x32.npz", "https://nvlabs-fi-cdn.nvidia.com/edm/fid-refs/cifar10-32x32.npz", None,
              "metric", "FID reference statistics, CIFAR-10"),
        Asset("inception-2015-12-05.pt",
              "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
              None, "metric", "FID feature extractor (clean-fid)", "~95 MB"),
        Asset("diffwave-ljspeech-22kHz-1000578.pt",
              "https://lmnt.com/assets/diffwave/diffwave-ljspeech-22kHz-1000578.pt",
              "d415d2117bb0bba3999afabdd67ed11d9e43400af26193a451d112e2560821a8",
              "checkpoint", "DiffWave fine-tuning (Table 2)", "31 MB"),
        Asset("LJSpeech-1.1.tar.bz2", "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2", None,
              "dataset", "DiffWave fine-tuning and audio metrics (Table 2)", "2.6 GB"),
    ]
}


class AssetMissingError(FileNotFoundError):
    """Raised when an asset is neither local nor downloadable; the message says how to supply it."""


class ChecksumError(ValueError):
    """Raised when a file's SHA-256 does not match the pinned value."""


def cache_dir() -> Path:
    """The download cache: ``$SPECREG_CACHE`` or ``<repo>/data/cache``."""
    return resolve_repo_path(os.environ.get("SPECREG_CACHE", "data/cache"))


def get_asset(name: str) -> Asset:
    """Look up an asset by file name, with a clear error listing the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown asset {name!r}; known assets: {', '.join(sorted(REGISTRY))}") from None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify(path: str | os.PathLike, sha256: str | None) -> None:
    """Raise ``ChecksumError`` if ``path`` does not hash to ``sha256`` (no-op when ``sha256`` is None)."""
    if sha256 is None:
        return
    got = sha256_file(path)
    if got != sha256.lower():
        raise ChecksumError(f"{path}: SHA-256 {got} does not match the expected {sha256}; "
                            "the file is corrupt or a different version: delete it and download again")


def missing_message(asset: Asset, why: str = "") -> str:
    """The message for a missing asset: the file, its URL and every way to pass a local copy."""
    return (f"{asset.kind} file {asset.name!r} ({asset.used_by}) is not available{': ' + why if why else ''}.\n"
            f"  URL: {asset.url}\n"
            f"  Download it (or let the kit download it on a machine with internet), then either put it in "
            f"{cache_dir()}/, set {asset.env_var}=/path/to/{asset.name}, or pass the notebook parameter / "
            f"option local_path=/path/to/{asset.name}.")


def locate(name: str, local_path: str | os.PathLike | None = None) -> Path | None:
    """The local copy of an asset if one exists (explicit path, env var, cache), else None; no download."""
    asset = get_asset(name)
    if local_path is not None:
        p = Path(local_path)
        if not p.is_file():
            raise AssetMissingError(missing_message(asset, f"the given local path {p} does not exist"))
        return p
    env = os.environ.get(asset.env_var)
    if env:
        p = Path(env)
        if not p.is_file():
            raise AssetMissingError(missing_message(asset, f"{asset.env_var}={env} does not exist"))
        return p
    p = cache_dir() / asset.name
    return p if p.is_file() else None


def download(url: str, dest: str | os.PathLike, sha256: str | None = None, timeout: float = 60.0,
             progress: bool = True) -> Path:
    """Stream ``url`` to ``dest`` atomically, verifying ``sha256``; a failed check leaves nothing behind."""
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                while block := resp.read(1 << 20):
                    out.write(block)
                    bar.update(len(block))
        verify(tmp, sha256)
    return dest


def fetch(name: str, local_path: str | os.PathLike | None = None, allow_download: bool = True,
          progress: bool = True) -> Path:
    """Return a verified local path to asset ``name``, downloading it into the cache if needed."""
    asset = get_asset(name)
    found = locate(name, local_path)
    if found is not None:
        verify(found, asset.sha256)
        return found
    if not allow_download:
        raise AssetMissingError(missing_message(asset, "downloads are disabled"))
    dest = cache_dir() / asset.name
    try:
        download(asset.url, dest, asset.sha256, progress=progress)
    except (urllib.error.URLError, OSError) as err:
        if isinstance(err, ChecksumError):
            raise
        raise AssetMissingError(missing_message(asset, f"download failed ({err})")) from err
    if asset.sha256 is None:
        digest = sha256_file(dest)
        with atomic_path(dest.with_name(dest.name + ".sha256")) as tmp:
            tmp.write_text(f"{digest}  {asset.name}\n")
        warnings.warn(f"{asset.name} has no pinned SHA-256; recorded {digest} in {dest}.sha256 "
                      "(compare it with a colleague's copy)", stacklevel=2)
    return dest


def status() -> dict[str, dict[str, str | bool | None]]:
    """For every registered asset: whether a local copy exists, where, and its URL."""
    out = {}
    for name, asset in REGISTRY.items():
        try:
            p = locate(name)
        except AssetMissingError:
            p = None
        out[name] = {"kind": asset.kind, "present": p is not None, "path": str(p) if p else None,
                     "url": asset.url, "used_by": asset.used_by}
    return out


def copy_into_cache(path: str | os.PathLike, name: str) -> Path:
    """Copy a user-supplied file into the cache under the asset's name, verifying its checksum first."""
    asset = get_asset(name)
    verify(path, asset.sha256)
    dest = cache_dir() / asset.name
    with atomic_path(dest) as tmp:
        shutil.copyfile(path, tmp)
    return dest
