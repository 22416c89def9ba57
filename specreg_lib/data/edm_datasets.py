"""Datasets in EDM's layout: a zip or folder of PNGs, optionally ``dataset.json`` with class labels.

Layout (what EDM's dataset tool writes and its loader reads): images ``{i // 1000:05d}/img{i:08d}.png`` (any
names and depth are read), sorted by their path inside the dataset; ``dataset.json`` = ``{"labels": [["00000/
img00000000.png", 6], ...]}`` (or ``{"labels": null}``); integer labels in [0, ``MAX_CLASSES``) become one-hot
vectors of size max + 1 (per item, as EDM). Zip members are read in place, never extracted, by the rules of
``folders`` (no path can escape the dataset, inflation and image sizes are bounded before reading).

Preparation (``prepare_image_folder``, ``prepare_cifar10``) follows EDM's dataset tool as edm.md 1h states
it: every image of the source, converted to RGB and resized to the target with PIL's LANCZOS filter when its
size differs, saved as PNG. AFHQv2-64 and FFHQ-64 come from the full-size images (512 and 1024 px); CIFAR-10
is kept at 32x32 with its labels. The offline stand-in (``write_standin``) is crops of scikit-image's bundled
photos and textures (``patches.ImagePatches``) written in the same layout, so smoke runs the same loader.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

from ..errors import InputError
from ..io import atomic_path
from .folders import check_zip_member, folder_files, safe_name
from .images import as_uint8, decode_image, image_channels, open_image
from .patches import SKIMAGE_IMAGES, ImagePatches

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".tif", ".tiff")
LABELS_FILE = "dataset.json"
MAX_CLASSES = 10_000  # class labels are 0..num_classes-1, num_classes <= this (ImageNet has 1000): 40 KB a one-hot
LABELS_BASE_BYTES, LABELS_BYTES_PER_IMAGE = 2**20, 2**10  # dataset.json's bound: 1 MiB + 1 KiB per image
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class DatasetError(InputError, ValueError):
    """A dataset that cannot be read as EDM's layout; the message names the file and what to do."""


class EDMImageDataset(torch.utils.data.Dataset):
    """Images of an EDM dataset (zip or folder) as ``(x (C, H, W) float32 in [-1, 1], label (label_dim,))``.

    Every image must have the same size and channel count (checked from the headers when the dataset opens);
    ``resolution`` (optional) must match. ``use_labels=False`` (or no ``dataset.json``) gives labels of
    shape (0,). ``max_size`` keeps the first images in path order. Files are read by ``folders``' rules
    (names inside the dataset, bounded zip members, the pixel cap, 16-bit images rounded to 8 bits, no
    transparent pixels). ``labels`` holds class indices (N,) (one-hot per item, as EDM) or vectors (N, D).
    """

    def __init__(self, path: str | os.PathLike, resolution: int | None = None, use_labels: bool = True,
                 max_size: int | None = None) -> None:
        self.path = Path(path)
        if self.path.is_file() and zipfile.is_zipfile(self.path):
            self.kind = "zip"
            try:
                with zipfile.ZipFile(self.path) as zf:
                    infos = {i.filename: i for i in zf.infolist() if not i.is_dir()}
            except (zipfile.BadZipFile, OSError) as err:
                raise DatasetError(f"{self.path}: cannot read the zip archive ({err}); build or download it "
                                   "again") from err
            names = list(infos)
        elif self.path.is_dir():
            self.kind = "folder"
            names = [p.relative_to(self.path).as_posix() for p in folder_files(self.path, DatasetError)]
        elif self.path.exists():
            raise DatasetError(f"{self.path}: neither a folder nor a zip archive of images")
        else:
            raise DatasetError(f"{self.path}: no such dataset (a folder or zip of PNGs in EDM's layout; see "
                               "specreg_lib.data.edm_datasets)")
        self._zip: zipfile.ZipFile | None = None
        unsafe = [n for n in names if not safe_name(n)]
        if unsafe:
            raise DatasetError(f"{self.path}: member {unsafe[0]!r} points outside the dataset; refusing it (a "
                               "dataset holds relative names such as 00000/img00000000.png)")
        self.names = sorted(n for n in names if PurePosixPath(n).suffix.lower() in IMAGE_EXTS
                            and not any(part.startswith(".") for part in PurePosixPath(n).parts))
        n_images = len(self.names)
        if self.kind == "zip":  # every member read later, checked now (method, declared size)
            for n in [*self.names, *([LABELS_FILE] if LABELS_FILE in infos else [])]:
                check_zip_member(infos[n], self.path, DatasetError)
        if max_size is not None:
            self.names = self.names[:max_size]
        if not self.names:
            raise DatasetError(f"{self.path}: no images ({', '.join(IMAGE_EXTS)}) found")
        self.channels, self.resolution = self._check_shapes(resolution)
        self.labels = self._load_labels(n_images) if use_labels and LABELS_FILE in names else None
        self.label_dim = 0 if self.labels is None else (self.labels.shape[1] if self.labels.ndim == 2
                                                          else int(self.labels.max()) + 1)

    def _open(self, name: str):
        if self.kind == "folder":
            return open(self.path / name, "rb")
        if self._zip is None:  # opened lazily, so the dataset pickles into DataLoader workers
            self._zip = zipfile.ZipFile(self.path)
        return self._zip.open(name)  # read by PIL in small steps: inflation bounded, stops at the declared size

    def _check_shapes(self, resolution: int | None) -> tuple[int, int]:
        shapes = {}
        for name in self.names:
            try:
                fh = self._open(name)
            except (OSError, zipfile.BadZipFile) as err:
                raise DatasetError(f"{self.path}/{name}: cannot open ({err}); prepare the dataset again") from err
            with fh, open_image(fh, f"{self.path}/{name}", DatasetError) as im:
                shapes.setdefault((im.size, image_channels(im)), name)
        if len(shapes) > 1:
            found = "; ".join(f"{w}x{h}x{c} (e.g. {n})" for ((w, h), c), n in shapes.items())
            raise DatasetError(f"{self.path}: images differ in size or channels: {found}; prepare the dataset at "
                               "one resolution (prepare_image_folder)")
        ((w, h), c), = shapes
        if w != h:
            raise DatasetError(f"{self.path}: images are {w}x{h}; EDM's networks need square images")
        if resolution is not None and w != resolution:
            raise DatasetError(f"{self.path}: images are {w}x{w} but resolution={resolution} was asked for")
        return c, w

    def _load_labels(self, n_images: int) -> np.ndarray | None:
        """Labels of ``self.names`` from dataset.json, its size bounded by the number of images before parsing:
        class indices (N,) int64 in [0, MAX_CLASSES), or finite vectors (N, D) float32 with D <= MAX_CLASSES."""
        where = f"{self.path}/{LABELS_FILE}"
        limit = LABELS_BASE_BYTES + LABELS_BYTES_PER_IMAGE * n_images
        try:
            with self._open(LABELS_FILE) as fh:
                text = fh.read(limit + 1)  # never more than the bound, whatever the file or zip header claims
            if len(text) > limit:
                raise DatasetError(f"{where}: larger than {limit} bytes ({LABELS_BASE_BYTES} + "
                                   f"{LABELS_BYTES_PER_IMAGE} per image for {n_images} images); a dataset.json "
                                   "holds one [file name, label] pair per image: write it again")
            raw = json.loads(text)
        except (OSError, ValueError, RecursionError, zipfile.BadZipFile) as err:
            raise DatasetError(f"{where}: not valid JSON ({err}); write it again, e.g. "
                               '{"labels": [["00000/img00000000.png", 6]]}') from err
        raw = raw.get("labels") if isinstance(raw, dict) else raw
        if raw is None:
            return None
        try:
            table = {str(name): label for name, label in raw}
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: labels must be a list of [file name, label] pairs, "
                               'e.g. {"labels": [["00000/img00000000.png", 6]]}') from None
        missing = [n for n in self.names if n not in table]
        if missing:
            raise DatasetError(f"{where}: no label for {len(missing)} images (first: {missing[0]}); label every "
                               f"image or remove {LABELS_FILE}")
        values = [table[n] for n in self.names]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):  # class indices
            bad = next((v for v in values if not 0 <= v < MAX_CLASSES), None)
            if bad is not None:
                raise DatasetError(f"{where}: class label {bad} is outside [0, {MAX_CLASSES}); class labels are "
                                   f"integers 0..num_classes-1 with num_classes <= {MAX_CLASSES}: renumber them")
            return np.asarray(values, dtype=np.int64)
        is_vector = all(isinstance(v, list) and len(v) == len(values[0]) and all(
            isinstance(e, int | float) and not isinstance(e, bool) for e in v) for v in values)
        if not is_vector or not 0 < len(values[0]) <= MAX_CLASSES:
            raise DatasetError(f"{where}: labels must be class integers in [0, {MAX_CLASSES}) or equal-length "
                               f"number vectors of at most {MAX_CLASSES} entries")
        vectors = np.asarray(values, dtype=np.float64)
        if not np.isfinite(vectors).all() or np.abs(vectors).max() > np.finfo(np.float32).max:
            raise DatasetError(f"{where}: label vectors hold NaN, Inf or values beyond float32; fix the labels")
        return vectors.astype(np.float32)

    def label(self, i: int) -> np.ndarray:
        """Label i as (label_dim,) float32: a class index one-hot (as EDM's get_label), or its vector."""
        if self.labels is None:
            return np.zeros(0, dtype=np.float32)
        if self.labels.ndim == 2:
            return self.labels[i]
        onehot = np.zeros(self.label_dim, dtype=np.float32)
        onehot[self.labels[i]] = 1
        return onehot

    def __len__(self) -> int:
        return len(self.names)

    def image_uint8(self, i: int) -> np.ndarray:
        """Image i as uint8 (C, H, W); 16-bit images rounded to 8 bits (v / 257), never clipped."""
        name = self.names[i]
        try:
            fh = self._open(name)
        except (OSError, zipfile.BadZipFile) as err:
            raise DatasetError(f"{self.path}/{name}: cannot open ({err}); prepare the dataset again") from err
        with fh:
            a = as_uint8(decode_image(fh, f"{self.path}/{name}", DatasetError))  # (H, W) or (H, W, 3)
        return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(self.image_uint8(i).astype(np.float32) / 127.5 - 1)  # EDM: uint8 / 127.5 - 1
        return x, torch.from_numpy(self.label(i))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_zip": None}


def edm_name(i: int) -> str:
    """Image i's name in EDM's layout: ``{i // 1000:05d}/img{i:08d}.png``."""
    return f"{i // 1000:05d}/img{i:08d}.png"


def _png_bytes(image: np.ndarray) -> bytes:
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3)):
        raise ValueError(f"images must be uint8 (H, W) or (H, W, C) with C in (1, 3), got {a.dtype} {a.shape}")
    buf = io.BytesIO()
    Image.fromarray(a[..., 0] if a.ndim == 3 and a.shape[2] == 1 else a).save(buf, format="PNG")
    return buf.getvalue()


def write_edm_dataset(images: Iterable[np.ndarray], dest: str | os.PathLike, labels: Iterable[int] | None = None
                      ) -> int:
    """Write uint8 (H, W[, C]) images in EDM's layout to ``dest`` (``.zip``: one archive written atomically;
    else a folder), with ``dataset.json`` (labels or null); returns the number of images."""
    dest = Path(dest)
    labels = None if labels is None else list(labels)
    if dest.suffix.lower() == ".zip":
        with atomic_path(dest) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            n = 0
            for n, img in enumerate(images, 1):
                zf.writestr(edm_name(n - 1), _png_bytes(img))
            zf.writestr(LABELS_FILE, json.dumps(_labels_json(n, labels)))
        return n
    n = 0
    for n, img in enumerate(images, 1):
        with atomic_path(dest / edm_name(n - 1)) as tmp:
            tmp.write_bytes(_png_bytes(img))
    with atomic_path(dest / LABELS_FILE) as tmp:
        tmp.write_text(json.dumps(_labels_json(n, labels)))
    return n


def _labels_json(n: int, labels: list[int] | None) -> dict:
    if labels is not None and len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for {n} images")
    return {"labels": None if labels is None else [[edm_name(i), int(c)] for i, c in enumerate(labels)]}


def _source_images(source: Path) -> tuple[list[str], zipfile.ZipFile | None]:
    """Sorted image names under a folder (paths) or in a zip (member names, read in place)."""
    if source.is_file() and zipfile.is_zipfile(source):
        zf = zipfile.ZipFile(source)
        names = sorted(n for n in zf.namelist() if PurePosixPath(n).suffix.lower() in IMAGE_EXTS
                       and not any(part.startswith(".") for part in PurePosixPath(n).parts))
        for n in names:
            check_zip_member(zf.getinfo(n), source, DatasetError)
    elif source.is_dir():
        zf = None
        names = sorted(str(p) for p in folder_files(source, DatasetError) if p.suffix.lower() in IMAGE_EXTS)
    else:
        raise DatasetError(f"{source}: no such folder or zip of source images (e.g. afhq_v2.zip or FFHQ's "
                           "images1024x1024 folder)")
    if not names:
        raise DatasetError(f"{source}: no images ({', '.join(IMAGE_EXTS)}) found")
    return names, zf


def resized(fh: str | os.PathLike | io.IOBase, resolution: int, name: str = "") -> np.ndarray:
    """One source image as uint8 RGB (resolution, resolution, 3): PIL LANCZOS when its size differs (EDM's tool)."""
    a = as_uint8(decode_image(fh, str(name or fh), DatasetError))  # the pixel cap, 16 bits rounded, opaque
    im = Image.fromarray(a).convert("RGB")
    if im.size != (resolution, resolution):
        im = im.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(im)


def prepare_image_folder(source: str | os.PathLike, dest: str | os.PathLike, resolution: int = 64,
                         progress: bool = True) -> int:
    """AFHQv2-64 / FFHQ-64 from their full-size images: every image in ``source`` (a folder, or a zip read in
    place such as afhq_v2.zip; sorted names) resized to ``resolution`` with LANCZOS, written in EDM's layout to
    ``dest`` (no labels). Returns the count."""
    from tqdm.auto import tqdm

    names, zf = _source_images(Path(source))

    def images() -> Iterator[np.ndarray]:
        for name in tqdm(names, unit="img", desc=f"prepare {Path(dest).name}", disable=not progress):
            if zf is None:
                yield resized(name, resolution, name)
            else:
                with zf.open(name) as fh:
                    yield resized(fh, resolution, f"{source}:{name}")

    try:
        return write_edm_dataset(images(), dest)
    finally:
        if zf is not None:
            zf.close()


def cifar10_records(tarball: str | os.PathLike, split: str = "train") -> Iterator[tuple[np.ndarray, int]]:
    """(image uint8 (32, 32, 3), label) of CIFAR-10's binary release (``cifar-10-binary.tar.gz``), read from the
    archive in place; train = data_batch_1..5 (50,000), test = test_batch (10,000). No pickle involved."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            members = {PurePosixPath(m.name).name: m for m in tar.getmembers() if m.isfile()}
            for name in names:
                if name not in members:
                    raise DatasetError(f"{tarball}: no {name}; is this cifar-10-binary.tar.gz (the binary version)?")
                raw = np.frombuffer(tar.extractfile(members[name]).read(), dtype=np.uint8)
                if raw.size % 3073:
                    raise DatasetError(f"{tarball}:{name}: {raw.size} bytes is not a whole number of 3073-byte "
                                       "records (1 label + 32x32x3 pixels); the file is truncated")
                rec = raw.reshape(-1, 3073)
                for row in rec:  # label byte, then the R, G and B planes of 32x32
                    yield row[1:].reshape(3, 32, 32).transpose(1, 2, 0), int(row[0])
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DatasetError(f"{tarball}: not a readable cifar-10-binary.tar.gz ({err}); download it again") from err


def prepare_cifar10(tarball: str | os.PathLike, dest: str | os.PathLike, split: str = "train") -> int:
    """CIFAR-10 32x32 in EDM's layout with class labels (EDM's cifar10-32x32.zip is the train split)."""
    records = list(cifar10_records(tarball, split))
    return write_edm_dataset((img for img, _ in records), dest, [c for _, c in records])


def write_standin(dest: str | os.PathLike, n: int = 64, resolution: int = 64, channels: int = 3, scale: int = 2,
                  seed: int = 0) -> int:
    """The offline stand-in: ``n`` random crops of scikit-image's bundled photos and textures
    (``ImagePatches``, grayscale, repeated to ``channels``), quantised to uint8, in EDM's layout."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    crops = ImagePatches(size=resolution, scale=scale, images=SKIMAGE_IMAGES).sample(n, torch.Generator().manual_seed(
        seed))  # (n, 1, R, R) in [-1, 1]
    u8 = (crops * 127.5 + 128).clip(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (n, R, R, 1)
    return write_edm_dataset((np.repeat(a, channels, axis=2) for a in u8), dest)


# name -> (source asset or None, resolution): what prepare_dataset builds (EDM README's dataset commands).
DATASETS = {"cifar10-32x32": ("cifar-10-binary.tar.gz", 32), "afhqv2-64x64": ("afhq_v2.zip", 64),
            "ffhq-64x64": (None, 64)}
DATASET_DIR = "data"  # where prepared datasets live by default, relative to the repository root


def default_dataset_path(name: str) -> str:
    """The one default location of a prepared dataset: ``data/<name>.zip`` (repository-relative), where the EDM
    experiments, ``specreg table1``, the notebooks and the README expect ``prepare_dataset``'s output."""
    return f"{DATASET_DIR}/{name}.zip"


def prepare_dataset(name: str, dest: str | os.PathLike, source: str | os.PathLike | None = None,
                    allow_download: bool = True, progress: bool = True) -> int:
    """Build one of EDM's datasets (``DATASETS``) as a zip at ``dest``: CIFAR-10 from its binary tarball, AFHQv2
    from afhq_v2.zip (downloaded and checked by ``specreg_lib.assets`` unless ``source`` is given), FFHQ-64 from
    a local ``source`` folder of the 1024x1024 images (no direct download exists)."""
    from ..assets import fetch

    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    asset, resolution = DATASETS[name]
    if source is None:
        if asset is None:
            raise ValueError(f"{name}: pass source=<folder of FFHQ's images1024x1024> (download it with NVIDIA's "
                             "download_ffhq.py from https://github.com/NVlabs/ffhq-dataset)")
        source = fetch(asset, allow_download=allow_download, progress=progress)
    if name == "cifar10-32x32":
        return prepare_cifar10(source, dest)
    return prepare_image_folder(source, dest, resolution, progress)
