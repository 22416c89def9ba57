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
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..assets import AssetMissingError, fetch, get_asset, locate, missing_message
from ..data.seed_images import list_seed_images
from .frechet import frechet_distance, gaussian_stats

FID_MODES = ("legacy_tensorflow", "clean")
INCEPTION = "inception-2015-12-05.pt"
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
Extractor = Callable[[torch.Tensor], torch.Tensor]


def _check_mode(mode: str) -> None:
    if mode not in FID_MODES:
        raise ValueError(f"FID mode must be one of {FID_MODES} ('legacy_tensorflow' = EDM's and the paper's "
                         f"scale, 'clean' = clean-fid's default), got {mode!r}")


def cleanfid_inception_path() -> Path:
    """Where clean-fid itself keeps (and downloads) the Inception file: hard-coded /tmp (./ on Windows)."""
    return Path("./" if sys.platform == "win32" else "/tmp") / INCEPTION


def inception_file(local_path: str | os.PathLike | None = None, allow_download: bool = True) -> Path:
    """A local ``inception-2015-12-05.pt``: the given path, ``$SPECREG_INCEPTION_2015_12_05_PT``, the kit's cache,
    clean-fid's own copy (/tmp), or a download into the cache; else ``AssetMissingError`` saying how to supply it."""
    found = locate(INCEPTION, local_path)
    if found is not None:
        return found
    cleanfid_copy = cleanfid_inception_path()
    if cleanfid_copy.is_file():
        return cleanfid_copy
    if not allow_download:
        raise AssetMissingError(missing_message(get_asset(INCEPTION), "it is not in the cache and downloads are off "
                                                "(offline)"))
    return fetch(INCEPTION)


def inception_extractor(mode: str = "legacy_tensorflow", device: str | torch.device = "cpu",
                        local_path: str | os.PathLike | None = None, allow_download: bool = True) -> Extractor:
    """clean-fid's Inception feature extractor for ``mode``, loaded from ``inception_file(...)`` (no /tmp needed).

    The file is NVIDIA's TorchScript program (loaded with ``torch.jit.load``, as clean-fid and EDM do): use a copy
    from the URL in ``specreg_lib.assets.REGISTRY`` (its SHA-256 is recorded on first download).
    """
    from cleanfid.inception_torchscript import InceptionV3W

    _check_mode(mode)
    path = inception_file(local_path, allow_download)
    folder = path.parent
    if path.name != INCEPTION:  # clean-fid loads <folder>/inception-2015-12-05.pt: give it that name
        from ..assets import copy_into_cache

        folder = copy_into_cache(path, INCEPTION).parent
    try:
        model = InceptionV3W(str(folder), download=False, resize_inside=mode == "legacy_tensorflow")
    except RuntimeError as err:
        raise ValueError(f"{folder / INCEPTION}: not a loadable TorchScript Inception ({err}); delete it and "
                         f"download {get_asset(INCEPTION).url} again") from err
    return model.to(torch.device(device)).eval()


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
        import zipfile

        with zipfile.ZipFile(path) as zf:
            names = sorted(n for n in zf.namelist() if Path(n).suffix.lower() in EXTENSIONS)
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


def load_reference_stats(path: str | os.PathLike, mode: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mu (D,), sigma (D, D)) from an npz with keys ``mu`` and ``sigma`` (EDM's ``fid-refs/*.npz`` or ours), read
    as data. A file without ``mode`` is taken as EDM's (legacy_tensorflow); a different ``mode`` is refused."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if not {"mu", "sigma"} <= keys:
                raise ValueError(f"{path}: reference statistics need arrays 'mu' and 'sigma', found {sorted(keys)}")
            mu, sigma = z["mu"].astype(np.float64), z["sigma"].astype(np.float64)
            ref_mode = str(z["mode"]) if "mode" in keys else "legacy_tensorflow"
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such reference statistics file (EDM's are at "
                                "https://nvlabs-fi-cdn.nvidia.com/edm/fid-refs/; or make one with "
                                "`specreg fid --make-ref DATASET --ref OUT.npz`)") from None
    except (OSError, ValueError) as err:
        if isinstance(err, ValueError) and "reference statistics" in str(err):
            raise
        raise ValueError(f"{path}: not a readable .npz of reference statistics ({err})") from err
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"{path}: mu must be (D,) and sigma (D, D), got {mu.shape} and {sigma.shape}")
    if mode is not None and ref_mode != mode:
        raise ValueError(f"{path} holds {ref_mode} statistics but FID mode {mode!r} was asked for; use "
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


def fid(source: str | os.PathLike | Sequence[str | os.PathLike], reference: str | os.PathLike | tuple,
        mode: str = "legacy_tensorflow", **kwargs) -> float:
    """FID of the images in ``source`` against ``reference`` (an npz path or (mu, sigma)), in ``mode``."""
    if isinstance(reference, tuple):
        mu_r, sigma_r = reference
    else:
        mu_r, sigma_r = load_reference_stats(reference, None if kwargs.get("extractor") else mode)
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
    if num < 2 or sets < 1:
        raise ValueError(f"need num >= 2 images per set and sets >= 1, got num={num}, sets={sets}")
    have = list_seed_images(folder)
    out = []
    for k in range(sets):
        lo, hi = first_seed + k * num, first_seed + (k + 1) * num
        missing = [s for s in range(lo, hi) if s not in have]
        if missing:
            raise ValueError(f"{folder}: seed set {lo}-{hi - 1} lacks {len(missing)} of {num} images (first missing "
                             f"seed {missing[0]}); generate them: specreg generate --seeds {lo}-{hi - 1} ...")
        out.append(((lo, hi - 1), [have[s] for s in range(lo, hi)]))
    return out


def fid_seed_sets(folder: str | os.PathLike, reference: str | os.PathLike | tuple, num: int = 50_000,
                  sets: int = 3, first_seed: int = 0, mode: str = "legacy_tensorflow", ddof: int = 1,
                  **kwargs) -> FIDSummary:
    """The paper's protocol: FID of each of ``sets`` sets of ``num`` generated images (seeds from ``first_seed``)
    against the reference statistics -> mean +- std and min (``summarize``)."""
    if not isinstance(reference, tuple):
        reference = load_reference_stats(reference, None if kwargs.get("extractor") else mode)
    if kwargs.get("extractor") is None:  # load Inception once for every set
        kwargs["extractor"] = inception_extractor(mode, kwargs.get("device", "cpu"), kwargs.pop("inception_path", None),
                                                  kwargs.pop("allow_download", True))
    ranges, values = [], []
    for rng, files in seed_set_files(folder, num, sets, first_seed):
        ranges.append(rng)
        values.append(fid(files, reference, mode, **kwargs))
    return summarize(values, ranges, ddof)
