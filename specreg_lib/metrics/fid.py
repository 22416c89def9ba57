"""FID (Heusel et al. 2017): clean-fid's image pipeline and Inception features, the kit's one Frechet distance.

Two modes, both clean-fid's, both with NVIDIA's TorchScript port of the TF Inception (``inception-2015-12-05.pt``,
2048-d pool3 features):

* ``"legacy_tensorflow"`` (default): uint8 images go in at their own size and the network resizes them inside,
  as TF's original FID did. This is what EDM's ``fid.py`` does with the same NVIDIA detector (edm.md 1h), so it
  is the scale of EDM's published FIDs, of EDM's reference statistics ``fid-refs/*.npz`` and of the paper's
  Table 1 (clean-fid documents this mode as equal to the TF implementation to ~2e-5).
* ``"clean"``: clean-fid's default: PIL bicubic resize to 299x299 in float before the network. Numbers are
  not comparable with EDM's; its reference statistics must be made in the same mode (``reference_stats``).

The statistics are ``gaussian_stats`` (float64 mean, ddof = 1 covariance, as EDM's fid.py) and the distance
is ``frechet_distance``; clean-fid supplies only images -> features. A custom extractor
(``extractor(x (B, 3, H, W) float in [0, 255]) -> (B, D)``) replaces Inception, e.g. offline in tests.
"""

from __future__ import annotations

import dataclasses
import io
import os
import sys
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..assets import AssetMissingError, get_asset, read_verified
from ..data.folders import FolderError
from ..data.seed_images import list_seed_images
from ..errors import InputError
from .frechet import frechet_distance, gaussian_stats

FID_MODES = ("legacy_tensorflow", "clean")
INCEPTION = "inception-2015-12-05.pt"
INCEPTION_DIM = 2048  # pool3 features
MAX_FEATURE_DIM = 4096  # the largest D a reference npz may declare without a known extractor: sigma 128 MiB
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
Extractor = Callable[[torch.Tensor], torch.Tensor]
REFS_URL = "https://nvlabs-fi-cdn.nvidia.com/edm/fid-refs/"
MAKE_REF = "`specreg fid --make-ref DATASET --ref OUT.npz`"


class FIDFileError(InputError, ValueError):
    """A reference npz, Inception file or image source FID cannot use; the message names it and what to do."""


def _check_mode(mode: str) -> None:
    if mode not in FID_MODES:
        raise ValueError(f"FID mode must be one of {FID_MODES} ('legacy_tensorflow' = EDM's and the paper's "
                         f"scale, 'clean' = clean-fid's default), got {mode!r}")


def cleanfid_inception_path() -> Path:
    """Where clean-fid itself keeps (and downloads) the Inception file: hard-coded /tmp (./ on Windows).

    Never read: anyone can write /tmp, so a program planted there would run unverified. It is only named in the
    missing-file message, so that a user who trusts that copy passes it explicitly (and it is checked then)."""
    return Path("./" if sys.platform == "win32" else "/tmp") / INCEPTION


def inception_program(local_path: str | os.PathLike | None = None, allow_download: bool = True
                      ) -> tuple[Path, bytes]:
    """(path, bytes) of ``inception-2015-12-05.pt``, checked by ``assets.read_verified``: the given path,
    ``$SPECREG_INCEPTION_2015_12_05_PT``, the kit's cache or a download into it; else ``AssetMissingError``
    saying how to supply it. No other place (clean-fid's /tmp copy) is looked at."""
    try:
        return read_verified(INCEPTION, local_path, allow_download)
    except AssetMissingError as err:
        theirs = cleanfid_inception_path()
        if local_path is None and theirs.is_file():
            raise AssetMissingError(f"{err} clean-fid's copy {theirs} is not used (anyone can write there): if you "
                                    f"trust it, pass it as local_path={theirs}.") from err
        raise


class InceptionFeatures(torch.nn.Module):
    """clean-fid's ``InceptionV3W`` (same forward) around NVIDIA's TorchScript Inception, taken from verified bytes:
    ``InceptionV3W`` loads ``<folder>/inception-2015-12-05.pt`` by path, which could change after the check."""

    def __init__(self, base: torch.jit.ScriptModule, resize_inside: bool) -> None:
        super().__init__()
        self.base, self.layers, self.resize_inside = base, base.layers, resize_inside

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 255] -> (B, 2048); without ``resize_inside`` the images must be 299x299 already."""
        from cleanfid.inception_torchscript import disable_gpu_fuser_on_pt19

        with disable_gpu_fuser_on_pt19():
            if self.resize_inside:
                return self.base(x, return_features=True).view((x.shape[0], INCEPTION_DIM))
            if tuple(x.shape[2:]) != (299, 299):
                raise ValueError(f"mode 'clean' feeds 299x299 images to Inception, got {tuple(x.shape[2:])}")
            return self.layers.forward((x - 128) / 128).view((x.shape[0], INCEPTION_DIM))


def inception_extractor(mode: str = "legacy_tensorflow", device: str | torch.device = "cpu",
                        local_path: str | os.PathLike | None = None, allow_download: bool = True) -> Extractor:
    """clean-fid's Inception feature extractor for ``mode``, from ``inception_program(...)`` (no /tmp involved).

    The file is NVIDIA's TorchScript program (loaded with ``torch.jit.load``, as clean-fid and EDM do): use a copy
    from the URL in ``specreg_lib.assets.REGISTRY`` (its SHA-256 is recorded on first download and checked on
    every use; pin it with ``SPECREG_INCEPTION_2015_12_05_PT_SHA256``).
    """
    _check_mode(mode)
    path, program = inception_program(local_path, allow_download)
    try:
        base = torch.jit.load(io.BytesIO(program), map_location="cpu").eval()
        base.layers  # noqa: B018 (clean-fid's 'clean' mode calls it; a program without it is not the Inception)
    except (RuntimeError, AttributeError) as err:
        raise FIDFileError(f"{path}: not a loadable TorchScript Inception ({' '.join(str(err).split()[:12])}); "
                           f"delete it and download {get_asset(INCEPTION).url} again") from err
    return InceptionFeatures(base, resize_inside=mode == "legacy_tensorflow").to(torch.device(device)).eval()


def image_files(source: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[list[str], str | None]:
    """Image files of a folder (recursive, sorted, hidden/temp files skipped), a zip (member names) or a list:
    -> (names, zip path or None)."""
    if not isinstance(source, str | os.PathLike):
        files = [str(p) for p in source]
        if not files:
            raise ValueError("no image files given")
        return files, None
    path = Path(source)
    if path.is_file() and path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                names = sorted(n for n in zf.namelist() if Path(n).suffix.lower() in EXTENSIONS)
        except zipfile.BadZipFile as err:
            raise FIDFileError(f"{path}: not a readable zip of images ({err}; truncated?); copy or prepare it "
                               "again, or pass a folder of images") from err
        if not names:
            raise ValueError(f"{path}: the zip holds no image files ({', '.join(EXTENSIONS)})")
        return names, str(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder or zip of images")
    files = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise ValueError(f"{path}: no image files ({', '.join(EXTENSIONS)}) found")
    return files, None


def image_features(source: str | os.PathLike | Sequence[str | os.PathLike], mode: str = "legacy_tensorflow",
                   extractor: Extractor | None = None, device: str | torch.device = "cpu", batch_size: int = 64,
                   num_workers: int = 0, inception_path: str | os.PathLike | None = None,
                   allow_download: bool = True, progress: bool = True) -> np.ndarray:
    """Features (N, D) float64 of the images in a folder, zip or file list, through clean-fid's loader for
    ``mode`` and Inception (or ``extractor``)."""
    from cleanfid.fid import get_files_features

    _check_mode(mode)
    files, zip_path = image_files(source)
    model = extractor or inception_extractor(mode, device, inception_path, allow_download)
    with torch.no_grad():
        feats = get_files_features(files, model, num_workers=num_workers, batch_size=batch_size,
                                   device=torch.device(device), mode=mode, fdir=zip_path, verbose=progress,
                                   description=f"features {Path(zip_path or files[0]).parent.name}: ")
    return np.asarray(feats, dtype=np.float64)


def _bad_ref(path: Path, why: str) -> FIDFileError:
    return FIDFileError(f"{path}: not a readable .npz of reference statistics: {why}; download EDM's again from "
                        f"{REFS_URL} or make it again with {MAKE_REF}")


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header bytes) of one .npy member, from its header alone (nothing inflated past it)."""
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f".npy format version {version} (expected 1.0 or 2.0)")
        return shape, dtype, fh.tell()


def _ref_member(path: Path, zf: zipfile.ZipFile, key: str, dims: Sequence[int] | None, kinds: str,
                max_bytes: int) -> np.ndarray:
    """Array ``key`` of a reference npz, read only after its declared shape, dtype and sizes pass: ``dims``
    (None = a scalar), a dtype kind in ``kinds``, at most ``max_bytes`` of data, and the zip's declared
    uncompressed size equal to header + data (so inflation stops there)."""
    info = zf.getinfo(f"{key}.npy")
    try:
        shape, dtype, header = _npy_header(zf, info)
    except ValueError as err:
        raise _bad_ref(path, f"'{key}' has no valid .npy header ({err})") from err
    if dtype.hasobject or dtype.kind not in kinds:
        raise _bad_ref(path, f"'{key}' has dtype {dtype}" + (" (Python objects, i.e. a pickle, never loaded)"
                                                             if dtype.hasobject else f" (expected kind {kinds!r})"))
    want = () if dims is None else tuple(dims)
    if shape != want:
        raise _bad_ref(path, f"'{key}' has shape {shape}, expected {want}")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes > max_bytes or info.file_size != header + nbytes:
        raise _bad_ref(path, f"'{key}' declares {info.file_size} bytes in the zip, but its header {shape} {dtype} "
                             f"needs {header + nbytes} (at most {max_bytes} of data)")
    with zf.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def load_reference_stats(path: str | os.PathLike, mode: str | None = None, dim: int | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(mu (D,), sigma (D, D)) from an npz with keys ``mu`` and ``sigma`` (EDM's ``fid-refs/*.npz`` or ours), read
    as data. A file without ``mode`` is taken as EDM's (legacy_tensorflow); a different ``mode`` is refused.

    Every array's declared shape, dtype and size is checked from its .npy header and the zip's directory before
    anything is inflated: D must be ``dim`` (the extractor's, e.g. ``INCEPTION_DIM``) or, when unknown, at most
    ``MAX_FEATURE_DIM``; numbers only (``allow_pickle`` stays False); values finite."""
    path = Path(path)
    if not path.is_file():
        raise AssetMissingError(f"{path}: no such reference statistics file (EDM's are at {REFS_URL}; or make one "
                                f"with {MAKE_REF})")
    max_d = MAX_FEATURE_DIM if dim is None else dim
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            keys = sorted(n[:-4] for n in names if n.endswith(".npy"))
            if not {"mu.npy", "sigma.npy"} <= names:
                raise FIDFileError(f"{path}: reference statistics need arrays 'mu' and 'sigma', found {keys}; "
                                   f"make them with {MAKE_REF}")
            d = _npy_header(zf, zf.getinfo("mu.npy"))[0]
            if len(d) != 1 or not 1 <= d[0] <= max_d or (dim is not None and d[0] != dim):
                raise _bad_ref(path, f"mu has shape {d}, expected (D,) with D = {dim}" if dim is not None else
                               f"mu has shape {d}, expected (D,) with 1 <= D <= {MAX_FEATURE_DIM}")
            mu = _ref_member(path, zf, "mu", d, "fiu", 8 * max_d)
            sigma = _ref_member(path, zf, "sigma", (d[0], d[0]), "fiu", 8 * max_d * max_d)
            ref_mode = "legacy_tensorflow"  # EDM's files hold mu and sigma only
            if "mode.npy" in names:
                ref_mode = str(_ref_member(path, zf, "mode", None, "U", 4 * 64))  # at most 64 characters
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, NotImplementedError, ValueError,
            OSError) as err:
        if isinstance(err, InputError):
            raise
        raise _bad_ref(path, f"{type(err).__name__}: {err} (not an npz, or truncated or corrupt)") from err
    mu, sigma = mu.astype(np.float64), sigma.astype(np.float64)
    for key, a in (("mu", mu), ("sigma", sigma)):
        if not np.isfinite(a).all():
            raise _bad_ref(path, f"{key} holds {int((~np.isfinite(a)).sum())} NaN or Inf values")
    if mode is not None and ref_mode != mode:
        raise FIDFileError(f"{path} holds {ref_mode} statistics but FID mode {mode!r} was asked for; use "
                           f"mode={ref_mode!r} or make references in {mode!r} mode (reference_stats)")
    return mu, sigma


def save_reference_stats(path: str | os.PathLike, mu: np.ndarray, sigma: np.ndarray, mode: str,
                         num_images: int) -> Path:
    """Write (mu, sigma) as an npz EDM's layout reads (keys mu, sigma), plus ``mode`` and ``num_images``, atomically."""
    from ..io import atomic_path

    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64), mode=np.asarray(mode),
                 num_images=np.asarray(num_images))
    return Path(path)


def reference_stats(dataset: str | os.PathLike, mode: str = "legacy_tensorflow", **kwargs
                    ) -> tuple[np.ndarray, np.ndarray, int]:
    """(mu, sigma, N) of a dataset (zip or folder of images, e.g. EDM's dataset zip), like EDM's ``fid.py ref``.
    ``kwargs`` go to ``image_features``."""
    feats = image_features(dataset, mode, **kwargs)
    mu, sigma = gaussian_stats(feats)
    return mu, sigma, feats.shape[0]


def _load_reference(path: str | os.PathLike, mode: str, extractor: Extractor | None) -> tuple[np.ndarray, np.ndarray]:
    """Reference statistics for Inception (mode and D = 2048 checked) or for a custom extractor (neither known)."""
    if extractor is not None:
        return load_reference_stats(path, None, None)
    return load_reference_stats(path, mode, INCEPTION_DIM)


def fid(source: str | os.PathLike | Sequence[str | os.PathLike], reference: str | os.PathLike | tuple,
        mode: str = "legacy_tensorflow", **kwargs) -> float:
    """FID of the images in ``source`` against ``reference`` (an npz path or (mu, sigma)), in ``mode``."""
    if isinstance(reference, tuple):
        mu_r, sigma_r = reference
    else:
        mu_r, sigma_r = _load_reference(reference, mode, kwargs.get("extractor"))
    mu, sigma = gaussian_stats(image_features(source, mode, **kwargs))
    if mu.shape != np.shape(mu_r):
        raise ValueError(f"features have {mu.shape[0]} dimensions but the reference has {np.shape(mu_r)[0]}: "
                         "were they made with the same feature extractor?")
    return frechet_distance(mu, sigma, mu_r, sigma_r)


@dataclasses.dataclass(frozen=True)
class FIDSummary:
    """FIDs of several seed sets: ``values``, ``mean``, ``std`` (ddof as given), ``min`` (EDM reports the min)."""

    values: tuple[float, ...]
    seed_ranges: tuple[tuple[int, int], ...]
    ddof: int
    mean: float
    std: float
    min: float

    def text(self) -> str:
        """One line: mean +- std (min)."""
        return f"FID {self.mean:.4f} +- {self.std:.4f} (min {self.min:.4f}, {len(self.values)} seed sets)"


def summarize(values: Sequence[float], seed_ranges: Sequence[tuple[int, int]] = (), ddof: int = 1) -> FIDSummary:
    """Mean, std and min of FIDs over seed sets. The paper reports mean +- std over 3 seeds without saying which
    std: ``ddof=1`` (sample std, the usual run-to-run spread) is our default; ddof=0 is sqrt(2/3) of it for 3."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 1 or not np.isfinite(v).all():
        raise ValueError(f"need one or more finite FID values, got {values!r}")
    std = float(v.std(ddof=ddof)) if v.size > ddof else float("nan")
    return FIDSummary(tuple(v.tolist()), tuple(tuple(r) for r in seed_ranges), ddof, float(v.mean()), std,
                      float(v.min()))


def seed_set_files(folder: str | os.PathLike, num: int = 50_000, sets: int = 3, first_seed: int = 0
                   ) -> list[tuple[tuple[int, int], list[Path]]]:
    """The generated files of seed sets [first + k num, first + (k + 1) num), k < sets (EDM: 0-49999, 50000-99999,
    100000-149999), from a folder written by ``generate_to_folder``; an incomplete set is an error."""
    for name, v, low in (("num", num, 2), ("sets", sets, 1), ("first_seed", first_seed, 0)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < low:
            raise ValueError(f"{name} must be an int >= {low} (the paper: num=50000, sets=3, first_seed=0), got {v!r}")
    have = list_seed_images(folder)
    out = []
    for k in range(sets):
        lo, hi = first_seed + k * num, first_seed + (k + 1) * num
        found = sum(lo <= s < hi for s in have)  # counted over the files, never over range(lo, hi): num may be huge
        if found < num:
            first = next(s for s in range(lo, hi) if s not in have)  # within found + 1 steps
            raise FolderError(f"{folder}: seed set {lo}-{hi - 1} lacks {num - found} of {num} images (first missing "
                              f"seed {first}); generate them: specreg generate --seeds {lo}-{hi - 1} ...")
        out.append(((lo, hi - 1), [have[s] for s in range(lo, hi)]))
    return out


def fid_seed_sets(folder: str | os.PathLike, reference: str | os.PathLike | tuple, num: int = 50_000,
                  sets: int = 3, first_seed: int = 0, mode: str = "legacy_tensorflow", ddof: int = 1,
                  **kwargs) -> FIDSummary:
    """The paper's protocol: FID of each of ``sets`` sets of ``num`` generated images (seeds from ``first_seed``)
    against the reference statistics -> mean +- std and min (``summarize``)."""
    seed_sets = seed_set_files(folder, num, sets, first_seed)  # every image there before anything loads
    if not isinstance(reference, tuple):
        reference = _load_reference(reference, mode, kwargs.get("extractor"))
    if kwargs.get("extractor") is None:  # load Inception once for every set
        kwargs["extractor"] = inception_extractor(mode, kwargs.get("device", "cpu"), kwargs.pop("inception_path", None),
                                                  kwargs.pop("allow_download", True))
    ranges, values = [], []
    for rng, files in seed_sets:
        ranges.append(rng)
        values.append(fid(files, reference, mode, **kwargs))
    return summarize(values, ranges, ddof)
