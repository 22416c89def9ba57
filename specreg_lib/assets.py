"""Checkpoints, datasets and metric weights the ``paper`` profile needs: one registry, one resolver.

Every asset can come from (in this order): an explicit local path (a notebook/CLI option), the
environment variable ``SPECREG_<NAME>`` (name upper-cased, ``-``/``.`` -> ``_``), the cache folder
(``SPECREG_CACHE`` or ``data/cache``), or a download from its URL, checked against its SHA-256.
Downloads stream to a temp file that is renamed only after the checksum matches.

One rule for every file read through here: it is checked against its SHA-256 on every use (``fetch``; the
pin, else for cached files the hash recorded on first download), and no other location is ever looked at (no
shared fallback such as clean-fid's world-writable ``/tmp``). A recorded hash is only as safe as its folder: in a
cache others can write, an unpinned file is refused. ``read_verified`` returns the very bytes it checked, so a
file swapped between the check and the load is never used. The explicit override is the pin itself: ``sha256=``
or ``SPECREG_<NAME>_SHA256`` names the version you trust.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from .errors import InputError
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
        # EDM's image datasets (docs/edm_generation.md): CIFAR-10's binary release (SHA-256 as in the TFDS
        # checksum registry, 170,052,171 bytes; read without pickle) and AFHQv2 from StarGAN v2's link.
        # FFHQ has no direct URL (Google Drive via NVIDIA's download_ffhq.py): prepare it from a local copy.
        Asset("cifar-10-binary.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
              "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", "dataset",
              "CIFAR-10 32x32 (EDM fine-tuning, FID references)", "163 MB"),
        Asset("afhq_v2.zip", "https://www.dropbox.com/s/vkzjokiwof5h8w6/afhq_v2.zip?dl=1", None, "dataset",
              "AFHQv2 512x512 -> AFHQv2-64 (EDM fine-tuning, FID references)", "~7 GB"),
        Asset("diffwave-ljspeech-22kHz-1000578.pt",
              "https://lmnt.com/assets/diffwave/diffwave-ljspeech-22kHz-1000578.pt",
              "d415d2117bb0bba3999afabdd67ed11d9e43400af26193a451d112e2560821a8",
              "checkpoint", "DiffWave fine-tuning (Table 2)", "31 MB"),
        Asset("LJSpeech-1.1.tar.bz2", "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2", None,
              "dataset", "DiffWave fine-tuning and audio metrics (Table 2)", "2.6 GB"),
        # torch.hub names it by the first 8 hex digits of its SHA-256 (10086976); the full hash is recorded on
        # first download (see fetch)
        Asset("vggish-10086976.pth", "https://github.com/harritaylor/torchvggish/releases/download/v0.1/"
              "vggish-10086976.pth", None, "metric", "FAD embedding (VGGish, Table 2)", "~280 MB"),
    ]
}


class AssetMissingError(InputError, FileNotFoundError):
    """Raised when an asset is neither local nor downloadable; the message says how to supply it."""


class ChecksumError(InputError, ValueError):
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


# SHA-256 of files hashed in this process, by (real path, device, inode, size, mtime_ns): a file used again
# unchanged is not read twice. Only files last modified well before they were hashed are kept (as git's "racy"
# rule): file times tick coarsely, so a rewrite within the same tick would otherwise keep the old entry.
_HASHED: dict[tuple[str, int, int, int, int], str] = {}
_RACY_NS = 2_000_000_000


def _identity(path: str | os.PathLike) -> tuple[str, int, int, int, int]:
    st = os.stat(path)
    return os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def file_sha256(path: str | os.PathLike) -> str:
    """``sha256_file(path)``, computed once per process for a file that has not changed (path, inode, size, mtime)."""
    key = _identity(path)
    if key in _HASHED:
        return _HASHED[key]
    started = time.time_ns()
    digest = sha256_file(path)
    if _identity(path) == key and key[4] < started - _RACY_NS:
        _HASHED[key] = digest
    return digest


def verify(path: str | os.PathLike, sha256: str | None, label: str | None = None, fix: str | None = None) -> None:
    """Raise ``ChecksumError`` if ``path`` does not hash to ``sha256`` (no-op when ``sha256`` is None).

    ``label`` names the file in the message when ``path`` is a temp file that is about to be deleted; ``fix`` says
    what to do (for a registry asset: its URL and every way to pass a copy, see ``_fix``)."""
    if sha256 is None:
        return
    got = file_sha256(path)
    if got != sha256.strip().lower():
        raise ChecksumError(f"{label or path}: SHA-256 {got} does not match the expected {sha256}; the file is "
                            "corrupt, truncated, tampered with or a different version: "
                            + (fix or "delete it and download again (or pin the hash you trust, see docs/kit.md)"))


def _fix(asset: Asset) -> str:
    """What to do about a file that fails its check: where to get the right one, how to pass it, how to pin."""
    return (f"delete it and download again from {asset.url} (or pass a copy you trust: put it in {cache_dir()}/, set "
            f"{asset.env_var}=/path/to/{asset.name} or local_path=/path/to/{asset.name}); a different version you "
            f"trust needs its hash pinned: sha256=<hex> or {asset.env_var}_SHA256=<hex>")


def _writable_by_others(path: Path) -> bool:
    """Whether users other than the owner may write ``path`` (POSIX mode o+w; never on Windows)."""
    return os.name == "posix" and path.exists() and bool(path.stat().st_mode & stat.S_IWOTH)


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def read_record(path: str | os.PathLike) -> str | None:
    """The SHA-256 recorded beside a cached file on its first download (``<file>.sha256``), else None."""
    rec = _record_path(Path(path))
    if not rec.is_file():
        return None
    digest = (rec.read_text().split() or [""])[0].lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ChecksumError(f"{rec}: not a SHA-256 record (expected '<64 hex digits>  <name>'); delete it and "
                            f"{Path(path).name} and download again")
    return digest


def _write_record(path: Path, digest: str) -> None:
    with atomic_path(_record_path(path)) as tmp:
        tmp.write_text(f"{digest}  {path.name}\n")


def _pin(asset: Asset, sha256: str | None) -> str | None:
    """The hash to check against: an explicit ``sha256`` option, then ``SPECREG_<NAME>_SHA256``, then the registry."""
    pin = sha256 or os.environ.get(asset.env_var + "_SHA256") or asset.sha256
    if pin is not None:
        pin = pin.strip().lower()
        if len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
            raise ValueError(f"sha256 for {asset.name} must be 64 hex digits, got {pin!r}; pass the value "
                             f"printed by `sha256sum {asset.name}` (option sha256= or {asset.env_var}_SHA256)")
    return pin


def missing_message(asset: Asset, why: str = "") -> str:
    """The message for a missing asset: the file, its URL and every way to pass a local copy."""
    return (f"{asset.kind} file {asset.name!r} ({asset.used_by}) is not available{': ' + why if why else ''}.\n"
            f"  URL: {asset.url}\n"
            f"  Download it (or let the kit download it on a machine with internet), then either put it in "
            f"{cache_dir()}/, set {asset.env_var}=/path/to/{asset.name}, or pass the notebook parameter / "
            f"option local_path=/path/to/{asset.name}.")


def locate(name: str, local_path: str | os.PathLike | None = None) -> Path | None:
    """The local copy of an asset if one exists (explicit path, env var, cache), else None; no download.

    Nothing is verified here: read a file through ``fetch`` or ``read_verified``, which check it."""
    asset = get_asset(name)
    if local_path is not None:
        p = Path(local_path).expanduser()
        if not p.is_file():
            raise AssetMissingError(missing_message(asset, f"the given local path {p} does not exist"))
        return p
    env = os.environ.get(asset.env_var)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise AssetMissingError(missing_message(asset, f"{asset.env_var}={env} does not exist"))
        return p
    p = cache_dir() / asset.name
    return p if p.is_file() else None


class TruncatedDownloadError(InputError, OSError):
    """Raised when a download ends before the ``Content-Length`` the server announced."""


def download(url: str, dest: str | os.PathLike, sha256: str | None = None, timeout: float = 60.0,
             progress: bool = True, fix: str | None = None) -> Path:
    """Stream ``url`` to ``dest`` atomically, checking its length and ``sha256``; a failure leaves nothing."""
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            got = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                while block := resp.read(1 << 20):
                    out.write(block)
                    got += len(block)
                    bar.update(len(block))
            if total is not None and got != total:
                raise TruncatedDownloadError(f"{url}: received {got} of the {total} bytes announced "
                                             "(connection cut short); nothing was kept, try again")
            out.flush()
            os.fsync(out.fileno())
        verify(tmp, sha256, label=f"{dest} (downloaded from {url}; nothing was kept)", fix=fix)
    return dest


def _check_private(dest: Path, fix: str) -> None:
    """An unpinned cached file is trusted through the hash recorded beside it: refuse that where others can write
    (e.g. ``SPECREG_CACHE=/tmp``), since anyone could plant both the file and its record there."""
    unsafe = [p for p in (dest.parent, dest, _record_path(dest)) if _writable_by_others(p)]
    if unsafe:
        raise ChecksumError(f"{dest}: cannot be verified: {unsafe[0]} is writable by other users, so a hash recorded "
                            f"there proves nothing; use a private cache (SPECREG_CACHE=/a/folder/of/yours) or pin "
                            f"the hash you trust. To get a good copy: {fix}")


def _cached_fetch(dest: Path, url: str, pin: str | None, allow_download: bool, progress: bool,
                  missing: Callable[[str], str], fix: str) -> tuple[Path, str | None]:
    """Shared by fetch/fetch_url: reuse ``dest`` if it matches the pin or its record, else download it;
    -> (path, the SHA-256 it was checked against).

    An unpinned file's SHA-256 is recorded in ``<dest>.sha256`` on first download and checked on every reuse,
    so a cache corrupted later (disk error, partial copy, tampering) is refused."""
    if pin is None and dest.parent.is_dir():
        _check_private(dest, fix)
    if dest.is_file():
        expected = pin or read_record(dest)
        verify(dest, expected, label=f"{dest} (cached copy of {url}; hash from "
               f"{'the pin' if pin else _record_path(dest)})", fix=fix)
        if expected is None:  # placed there by hand: record it now
            expected = file_sha256(dest)
            _write_record(dest, expected)
        return dest, expected
    if not allow_download:
        raise AssetMissingError(missing("downloads are disabled"))
    try:
        download(url, dest, pin, progress=progress, fix=fix)
    except ChecksumError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise AssetMissingError(missing(f"download failed ({err})")) from err
    digest = file_sha256(dest)
    _write_record(dest, digest)
    if pin is None:
        warnings.warn(f"{dest.name} has no pinned SHA-256; recorded {digest} in {_record_path(dest)} and every "
                      "reuse is checked against it (compare it with a colleague's copy, or pin it)", stacklevel=4)
    return dest, digest


def _fetch(name: str, local_path: str | os.PathLike | None, allow_download: bool, progress: bool,
           sha256: str | None) -> tuple[Path, str | None]:
    """``fetch``'s work: -> (verified path, the SHA-256 it was checked against, None for an unpinned own copy)."""
    asset = get_asset(name)
    pin = _pin(asset, sha256)
    found = locate(name, local_path)
    if found is not None and found != cache_dir() / asset.name:
        # a user's own file (local_path or SPECREG_<NAME>): checked against the pin whenever the asset has one
        verify(found, pin, label=f"{found} (local copy of {asset.name}; hash from the pin)", fix=_fix(asset))
        return found, pin
    return _cached_fetch(cache_dir() / asset.name, asset.url, pin, allow_download, progress,
                         lambda why: missing_message(asset, why), _fix(asset))


def fetch(name: str, local_path: str | os.PathLike | None = None, allow_download: bool = True,
          progress: bool = True, sha256: str | None = None) -> Path:
    """Return a verified local path to asset ``name``, downloading it into the cache if needed.

    The hash checked is ``sha256`` (option), else ``SPECREG_<NAME>_SHA256``, else the registry's pin, else (cached
    files only) the hash recorded on first download. A user's own copy of an unpinned asset is used as given."""
    return _fetch(name, local_path, allow_download, progress, sha256)[0]


def read_verified(name: str, local_path: str | os.PathLike | None = None, allow_download: bool = True,
                  progress: bool = True, sha256: str | None = None) -> tuple[Path, bytes]:
    """(path, contents) of asset ``name`` as ``fetch`` finds it, the contents being the very bytes that matched
    the hash, so a file replaced between the check and the load (a race on a shared disk) is never used."""
    path, expected = _fetch(name, local_path, allow_download, progress, sha256)
    data = path.read_bytes()
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise ChecksumError(f"{path}: changed while it was being read (its SHA-256 no longer matches {expected}); "
                            f"something else is writing it: {_fix(get_asset(name))}")
    return path, data


def fetch_url(url: str, sha256: str | None = None, allow_download: bool = True, progress: bool = True) -> Path:
    """Like :func:`fetch` for a URL outside the registry: cached by its basename, hash pinned or recorded."""
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"url must be a URL such as https://host/file.pkl or file:///path, got {url!r}; "
                         "for a file on disk pass its path instead")
    path = urllib.parse.unquote(urllib.parse.urlparse(url).path)
    base = Path(path).name
    if not base or path.endswith("/"):
        raise ValueError(f"url {url!r} names no file (its path ends in '/'); give the URL of the file itself")
    asset = Asset(base, url, sha256, "downloaded", f"fetched from {url}")
    pin = _pin(asset, None)

    def missing(why: str) -> str:
        return (f"file {base!r} is not available: {why}.\n  URL: {url}\n  Download it on a machine with "
                f"internet and put it in {cache_dir()}/ (or pass its local path instead of the URL).")

    fix = (f"delete it and download again from {url} (or pass the local path of a copy you trust instead of the "
           f"URL); a different version you trust needs its hash pinned: sha256=<hex>")
    return _cached_fetch(cache_dir() / base, url, pin, allow_download, progress, missing, fix)[0]


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
    verify(path, _pin(asset, None), label=f"{path} (to be cached as {asset.name})", fix=_fix(asset))
    dest = cache_dir() / asset.name
    with atomic_path(dest) as tmp:
        shutil.copyfile(path, tmp)
    _write_record(dest, file_sha256(dest))
    return dest
