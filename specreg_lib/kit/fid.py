"""``specreg fid``: FID of generated images against a dataset's reference statistics (clean-fid features).

Examples:

    specreg fid out/afhq-vp --ref afhqv2-64x64.npz --num 50000 --sets 3      # the paper's protocol: 3 x 50k seeds
    specreg fid out/samples --ref my-refs.npz                                  # every image of the folder, once
    specreg fid --make-ref data/afhqv2-64x64.zip --ref refs/afhqv2-clean.npz --mode clean

--mode legacy_tensorflow (default) is the scale of EDM's fid.py, its fid-refs/*.npz and the paper's Table 1;
--mode clean is clean-fid's default (PIL bicubic resize to 299 first), with references made in that mode.
--ref takes a path or a registry name (afhqv2-64x64.npz, ffhq-64x64.npz, cifar10-32x32.npz: EDM's files,
downloaded into the cache). The Inception network (inception-2015-12-05.pt) comes from --inception, the cache
or a download, checked against its SHA-256 on every use (clean-fid's world-writable /tmp copy is never read);
offline, pass --inception with a local copy. Every option is checked before a folder is scanned or a file loaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from ..assets import REGISTRY, AssetMissingError, fetch
from ..data.edm_datasets import DATASETS, default_dataset_path
from ..io import write_json
from ..metrics import fid as F
from ..metrics.frechet import gaussian_stats
from ..training.distributed import resolve_device
from .command import device_line, standalone


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``fid`` options."""
    p.add_argument("images", nargs="?", help="folder of generated images (from specreg generate) or any folder/zip "
                                             "of images")
    p.add_argument("--ref", required=True, metavar="NPZ",
                   help="reference statistics: a path or a registry name (e.g. afhqv2-64x64.npz); with --make-ref, "
                        "the file to write")
    p.add_argument("--mode", default="legacy_tensorflow", choices=F.FID_MODES,
                   help="legacy_tensorflow = EDM's and the paper's scale (default); clean = clean-fid's default")
    p.add_argument("--num", type=int, default=None,
                   help="images per seed set (the paper: 50000); leave out to use every image of the folder once")
    p.add_argument("--sets", type=int, default=3, help="seed sets with --num (default: %(default)s; EDM uses seeds "
                                                       "0-49999, 50000-99999, 100000-149999)")
    p.add_argument("--first-seed", type=int, default=0, help="first seed of the first set (default: %(default)s)")
    p.add_argument("--ddof", type=int, default=1, choices=(0, 1),
                   help="std over seed sets with ddof 1 (sample std, default) or 0")
    p.add_argument("--make-ref", default=None, metavar="DATASET",
                   help="instead: compute reference statistics of a dataset (zip or folder) and write them to --ref")
    p.add_argument("--inception", default=None, metavar="PT", help="local copy of inception-2015-12-05.pt")
    p.add_argument("--offline", action="store_true", help="never download (missing files are an error)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present, else the CPU), cpu, cuda or cuda:N "
                                                    "(default: %(default)s; the choice is printed)")
    p.add_argument("--batch", type=int, default=64, help="images per feature batch (default: %(default)s)")
    p.add_argument("--workers", type=int, default=0, help="image-loading worker processes (default: %(default)s)")
    p.add_argument("--out", default=None, metavar="JSON", help="also write the results to this JSON file")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _reference(ref: str, offline: bool) -> str | Path:
    if Path(ref).expanduser().is_file() or ref not in REGISTRY:
        return Path(ref).expanduser()
    try:
        return fetch(ref, allow_download=not offline)
    except AssetMissingError as err:
        raise AssetMissingError(f"--ref {ref}: {str(err).rstrip('. ')}. With specreg fid: --ref PATH (your copy of "
                                f"{ref}).") from err


def _extractor(args: argparse.Namespace, device: torch.device) -> F.Extractor:
    """Inception, from --inception, the cache or a download; a missing file names --inception."""
    try:
        return F.inception_extractor(args.mode, device, args.inception, not args.offline)
    except AssetMissingError as err:
        raise AssetMissingError(f"--inception: {str(err).rstrip('. ')}. With specreg fid: --inception PATH.") from err


def _existing(path: str, option: str) -> None:
    """A folder or zip the door reads must exist; else one line saying what to pass."""
    if Path(path).expanduser().exists():
        return
    if option == "--make-ref":
        where = ", ".join(default_dataset_path(n) for n in DATASETS)
        raise ValueError(f"--make-ref {path}: no such folder or zip of images; prepared datasets are at {where} "
                         "(specreg_lib.data.edm_datasets.prepare_dataset builds them there), or pass the path of yours")
    raise ValueError(f"{path}: no such folder or zip of images; pass the --outdir specreg generate wrote, or any "
                     "folder/zip of images")


def _check_options(args: argparse.Namespace) -> None:
    """Every number option, before anything is scanned or loaded (Inception takes seconds, a folder scan minutes)."""
    bounds = [("--batch", args.batch, 1, "64"), ("--workers", args.workers, 0, "0"), ("--sets", args.sets, 1, "3"),
              ("--first-seed", args.first_seed, 0, "0")]
    if args.num is not None:
        bounds.append(("--num", args.num, 2, "50000, or leave it out to use every image once"))
    for option, value, low, example in bounds:
        if value < low:
            raise ValueError(f"{option} must be >= {low}, got {value}; e.g. {option} {example}")
    if args.make_ref and Path(args.ref).expanduser().is_dir():
        raise ValueError(f"--ref {args.ref} is a folder; with --make-ref give the .npz file to write, e.g. "
                         f"--ref {Path(args.ref) / 'reference.npz'}")


def execute(args: argparse.Namespace) -> int:
    """Entry point shared by ``specreg fid`` and ``python -m specreg_lib.kit.fid``; the exit code."""
    try:
        _check_options(args)
        device = resolve_device(args.device)
        print(device_line(f"--device {args.device}", device))
        common = dict(device=device, batch_size=args.batch, num_workers=args.workers, progress=not args.no_progress)
        if args.make_ref:
            _existing(args.make_ref, "--make-ref")  # a missing dataset fails before Inception loads
            F.image_files(args.make_ref)
            extractor = _extractor(args, device)
            feats = F.image_features(args.make_ref, args.mode, extractor, **common)
            mu, sigma = gaussian_stats(feats)
            path = F.save_reference_stats(args.ref, mu, sigma, args.mode, feats.shape[0])
            print(f"reference statistics of {feats.shape[0]} images ({args.mode}) -> {path}")
            return 0
        if not args.images:
            raise ValueError("give a folder of images (or --make-ref DATASET)")
        _existing(args.images, "images")
        ref = F.load_reference_stats(_reference(args.ref, args.offline), args.mode)  # checked before any scan
        if args.num is None:
            F.image_files(args.images)
        else:  # the seed sets are all there
            F.seed_set_files(args.images, args.num, args.sets, args.first_seed)
        extractor = _extractor(args, device)
        if args.num is None:
            summary = F.summarize([F.fid(args.images, ref, args.mode, extractor=extractor, **common)], ddof=0)
        else:
            summary = F.fid_seed_sets(args.images, ref, args.num, args.sets, args.first_seed, args.mode,
                                      args.ddof, extractor=extractor, **common)
    except (ValueError, KeyError, OSError) as err:  # AssetMissingError is an OSError
        print(f"specreg fid: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    for rng, v in zip(summary.seed_ranges or [None], summary.values):
        print(f"FID {v:.4f}" + (f"  seeds {rng[0]}-{rng[1]}" if rng else f"  {args.images}"))
    if len(summary.values) > 1:
        print(summary.text())
    if args.out:
        write_json(args.out, {"images": args.images, "ref": args.ref, "mode": args.mode,
                              "values": list(summary.values), "seed_ranges": [list(r) for r in summary.seed_ranges],
                              "mean": summary.mean, "std": summary.std if np.isfinite(summary.std) else None,
                              "ddof": summary.ddof, "min": summary.min})
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m specreg_lib.kit.fid``."""
    return standalone("fid", sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
