"""``specreg spectrum A B [--out FIG]``: compare the power spectra of two folders of images or WAV files.

A and B are folders (searched recursively: what ``specreg generate`` writes, ``OUTDIR/000000/000123.png``, is
read in seed order) or zip archives read in place (a dataset in EDM's layout, e.g. ``data/afhqv2-64x64.zip``).
Images (PNG/JPG, 8 or 16 bit, compared in grayscale in [-1, 1]) of different sizes are centre-cropped to the
smallest common size, Hann-windowed (``--window none`` to switch off) and radially averaged. WAV files (mixed
down to mono, one sample rate) are Welch-averaged (Hann segments of ``--nperseg`` samples, 50% overlap), so
clips of any length average onto the same frequency bins. Writes FIG.png and FIG.pdf (log-log spectra and
their ratio, the high-frequency band's start marked and labelled) and prints the spectral log distance and the
high-frequency energy ratio of A relative to B. Unusable input ends with exit code 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.folders import FolderError, audio_info, image_size, list_media, load_audio, load_image
from ..io import save_figure
from ..metrics import (
    fit_power_law_slope,
    high_frequency_energy_ratio,
    radial_power_spectrum,
    spectral_log_distance,
    welch_power_spectrum,
)
from .command import standalone

MIN_IMAGE = 8  # pixels per side: fewer leaves < 4 frequency bins, too few for a slope or a band ratio


def folder_spectra(a: str | Path, b: str | Path, window: str | None = "hann", nperseg: int = 1024) -> dict:
    """Mean power spectra of two folders of the same kind (images: radial, on a common crop; audio: Welch)."""
    (kind_a, files_a), (kind_b, files_b) = list_media(a), list_media(b)
    if kind_a != kind_b:
        raise FolderError(f"{a} holds {kind_a} files but {b} holds {kind_b} files; compare two folders of one kind")
    notes, rate = [], None
    if kind_a == "image":
        sizes = [image_size(p) for p in files_a + files_b]
        crop = (min(s[0] for s in sizes), min(s[1] for s in sizes))
        if min(crop) < MIN_IMAGE:
            small = next(p for p, s in zip(files_a + files_b, sizes, strict=True) if min(s) < MIN_IMAGE)
            raise FolderError(f"{small}: {crop[0]}x{crop[1]} pixels is too small for a spectrum; need at least "
                              f"{MIN_IMAGE}x{MIN_IMAGE}")
        if len(set(sizes)) > 1:
            notes.append(f"images differ in size; all centre-cropped to {crop[0]}x{crop[1]}")
        load = functools.partial(load_image, size=crop)

        def spectrum(path: Path) -> tuple[np.ndarray, np.ndarray]:
            f, p = radial_power_spectrum(load(path), window=window)
            return f.numpy(), p[0].numpy()
    else:
        infos = [audio_info(p) for p in files_a + files_b]
        rates = sorted({r for _, r in infos})
        if len(rates) > 1:
            raise FolderError(f"WAV files have different sample rates {rates}; resample them to one rate")
        rate = rates[0]
        short = [(p, n) for p, (n, _) in zip(files_a + files_b, infos, strict=True) if n < nperseg]
        if short:
            raise FolderError(f"{short[0][0]}: {short[0][1]} samples, fewer than one Welch segment "
                              f"(--nperseg {nperseg}); remove it or pass a smaller --nperseg")

        def spectrum(path: Path) -> tuple[np.ndarray, np.ndarray]:
            return welch_power_spectrum(load_audio(path), nperseg)
    out = {"kind": kind_a, "notes": notes, "sample_rate": rate, "counts": (len(files_a), len(files_b))}
    for key, files, folder in (("a", files_a, a), ("b", files_b, b)):
        total = None
        for path in tqdm(files, desc=f"spectra {Path(folder).name}", unit="file", file=sys.stderr):
            freqs, power = spectrum(path)
            total = power if total is None else total + power
        out["freqs"], out[key] = freqs, total / len(files)
        if not out[key][1:].max() > 0:  # silent clips / flat images: every log ratio would be log 0
            what = "silent audio" if kind_a == "audio" else "flat images"
            raise FolderError(f"{folder}: every {kind_a} file is constant (no power above frequency 0: {what}); "
                              "check the export, or remove them")
    return out


def _log_ticks(axis, unit: str) -> None:
    """Readable ticks on a log frequency axis: powers of two as fractions (cycles/pixel) or 1-2-5 steps in Hz,
    and no labels on the minor ticks (matplotlib labels those when the axis spans under two decades)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    if unit == "Hz":
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k" if v >= 1000 else f"{v:g}"))
    else:  # 1/N cycles per pixel: N = 2, 4, 8, ... (the Nyquist frequency is 1/2)
        axis.set_major_locator(FixedLocator([2.0 ** -k for k in range(1, 16)]))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"1/{round(1 / v)}" if v > 0 else ""))
    axis.set_minor_formatter(NullFormatter())


def _log_power_ticks(axis, values: np.ndarray) -> None:
    """Readable ticks on a log power axis: decades when the data span one or more, else 1-2-5 steps."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    positive = values[values > 0]
    if positive.size and positive.max() / positive.min() < 10:  # under a decade: decades alone label <= 1 tick
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    else:
        axis.set_major_locator(LogLocator(base=10, numticks=6))
    axis.set_minor_formatter(NullFormatter())


def plot_spectra(spec: dict, label_a: str, label_b: str, cutoff: float | None = None):
    """Log-log spectra of both folders and their ratio, the band f >= cutoff (a fraction of the sampling rate)
    marked and labelled: a matplotlib Figure (no pyplot state)."""
    from matplotlib.figure import Figure

    f = spec["freqs"][1:]
    audio = spec["sample_rate"] is not None
    x, unit = (f * spec["sample_rate"], "Hz") if audio else (f, "cycles/pixel")
    ylabel = "power per bin (Welch average)" if audio else "radially averaged power (Hann window)"
    fig = Figure(figsize=(9, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.loglog(x, spec["a"][1:], label=label_a)
    ax1.loglog(x, spec["b"][1:], label=label_b, linestyle="--")
    ax1.set(xlabel=f"frequency ({unit})", ylabel=ylabel, title="power spectra")
    _log_power_ticks(ax1.yaxis, np.concatenate([spec["a"][1:], spec["b"][1:]]))
    ax2.semilogx(x, np.log10(np.maximum(spec["a"][1:], 1e-300) / np.maximum(spec["b"][1:], 1e-300)))
    ax2.axhline(0, color="0.5", lw=0.8)
    ax2.set(xlabel=f"frequency ({unit})", ylabel="log10 P_A / P_B", title="ratio")
    if cutoff is not None:
        at = cutoff * (spec["sample_rate"] or 1)
        where = f"{at:g} Hz" if audio else f"{cutoff:g} cycles/pixel"
        for ax in (ax1, ax2):
            ax.axvline(at, color="0.4", ls=":", lw=1.0, label=f"cutoff {where} (high band to the right)")
            ax.axvspan(at, x[-1], color="0.5", alpha=0.08, lw=0)
    for ax in (ax1, ax2):
        _log_ticks(ax.xaxis, unit)
        ax.set_xlim(x[0], x[-1])
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of the spectrum command, for ``specreg spectrum`` or a standalone parser."""
    parser.add_argument("a", help="folder (searched recursively) or zip of images or WAVs, e.g. generate's --outdir")
    parser.add_argument("b", help="folder or zip of the same kind, e.g. a dataset zip in EDM's layout")
    parser.add_argument("--out", default="spectrum_comparison",
                        help="figure path without extension; writes .png and .pdf (default: %(default)s)")
    parser.add_argument("--cutoff", type=float, default=0.25,
                        help="high-frequency band start as a fraction of the sampling rate, in (0, 0.5] "
                             "(cycles/pixel or cycles/sample; 0.25 = half of Nyquist; printed in Hz for audio) "
                             "(default: %(default)s)")
    parser.add_argument("--window", choices=("hann", "none"), default="hann",
                        help="taper for image crops (default: %(default)s; 'none' only for periodic images)")
    parser.add_argument("--nperseg", type=int, default=1024,
                        help="Welch segment length in samples for audio (default: %(default)s)")
    return parser


def _fail(message: str) -> int:
    print(f"specreg spectrum: error: {message}", file=sys.stderr)
    return 2


def execute(args: argparse.Namespace) -> int:
    """Run the spectrum comparison; 0 on success, 2 on unusable input (one line on stderr)."""
    if not 0 < args.cutoff <= 0.5:
        return _fail(f"--cutoff {args.cutoff} is outside (0, 0.5]: it is a fraction of the sampling rate "
                     "(0.5 = Nyquist); e.g. --cutoff 0.25")
    if args.nperseg < 8:
        return _fail(f"--nperseg {args.nperseg} is too short for a spectrum; use at least 8 (default 1024)")
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)  # fail before the work, not after it
    except OSError as err:
        return _fail(f"--out {args.out}: cannot create folder {out.parent} ({err.strerror}); pick another path")
    try:
        spec = folder_spectra(args.a, args.b, None if args.window == "none" else args.window, args.nperseg)
        hf = high_frequency_energy_ratio(spec["freqs"], spec["a"], spec["b"], cutoff=args.cutoff)
        slopes = {k: fit_power_law_slope(spec["freqs"], spec[k]) for k in ("a", "b")}
    except (FolderError, ValueError) as err:
        return _fail(str(err).splitlines()[0])
    for note in spec["notes"]:
        print(f"note: {note}")
    try:
        paths = save_figure(plot_spectra(spec, f"A: {args.a}", f"B: {args.b}", args.cutoff), out)
    except OSError as err:
        return _fail(f"--out {args.out}: cannot write the figure ({err.strerror}); pick another path")
    band = f"f >= {args.cutoff}" + (f" = {args.cutoff * spec['sample_rate']:g} Hz" if spec["sample_rate"] else "")
    print(f"{spec['kind']} files: A={spec['counts'][0]}, B={spec['counts'][1]}")
    print(f"spectral_log_distance(A, B) = {spectral_log_distance(spec['a'], spec['b']):.4f}  (mean |log10 P_A/P_B|)")
    print(f"high_frequency_energy_ratio(A/B, {band}) = {hf:.4f}  (1 = matched)")
    for key in ("a", "b"):
        print(f"power-law slope {key.upper()} = {slopes[key]:.3f}")
    print("figure: " + ", ".join(str(p) for p in paths))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: ``python -m specreg_lib.kit.spectrum A B [--out FIG]``."""
    return standalone("spectrum", sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
