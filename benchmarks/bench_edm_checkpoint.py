"""Writing and reading a full-size EDM checkpoint (AFHQv2-64 DDPM++ / NCSN++, random weights) on the CPU.

For each architecture: the file size, the time of save_edm_checkpoint, of read_edm_pickle (the restricted
unpickler alone) and of load_edm_checkpoint (read + rebuild + strict load), and for scale the time of
torch.save / torch.load(weights_only=True) of the same state_dict, measured in the same run.
Times are median [min, max] over ``--repeats``.
Usage: python benchmarks/bench_edm_checkpoint.py [--repeats 3] [--threads 2] [--arch ddpmpp ncsnpp] [--out F]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _report import add_out_argument, spread, tee_to

from specreg_lib.models import EDMDenoiser, SongUNet, load_edm_checkpoint, read_edm_pickle, save_edm_checkpoint
from specreg_lib.models.songunet import DDPMPP, NCSNPP

AFHQ = dict(img_resolution=64, in_channels=3, out_channels=3, channel_mult=[1, 2, 2, 2], dropout=0.25,
            augment_dim=9)


def timed(repeats: int, fn, *args, **kwargs) -> str:
    """Median [min, max] wall time (s) of fn(*args, **kwargs) over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(*args, **kwargs)
        times.append(time.perf_counter() - t)
    return spread(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--arch", nargs="+", default=["ddpmpp", "ncsnpp"], choices=["ddpmpp", "ncsnpp"])
    add_out_argument(p)
    args = p.parse_args()
    with tee_to(args.out):
        run(args)


def run(args: argparse.Namespace) -> None:
    """Save and load each architecture; print the markdown table."""
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU, {args.threads} threads; seconds, median [min, max] of {args.repeats}\n")
    print("| arch | params | MiB | save_edm_checkpoint s | read_edm_pickle s | load_edm_checkpoint s | torch.save s "
          "| torch.load s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.arch:
            net = EDMDenoiser(SongUNet(**dict({"ddpmpp": DDPMPP, "ncsnpp": NCSNPP}[arch], **AFHQ))).eval()
            pkl, pt = Path(tmp) / f"{arch}.pkl", Path(tmp) / f"{arch}.pt"
            r = args.repeats
            t_save, t_read, t_load = (timed(r, save_edm_checkpoint, net, pkl), timed(r, read_edm_pickle, pkl),
                                      timed(r, load_edm_checkpoint, pkl))
            sd = net.state_dict()
            t_tsave, t_tload = timed(r, torch.save, sd, pt), timed(r, torch.load, pt, weights_only=True)
            n = sum(q.numel() for q in net.parameters())
            print(f"| {arch} | {n:,} | {pkl.stat().st_size / 2**20:.1f} | {t_save} | {t_read} | {t_load} | {t_tsave} "
                  f"| {t_tload} |")


if __name__ == "__main__":
    main()
