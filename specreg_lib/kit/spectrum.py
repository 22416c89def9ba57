"""``specreg spectrum A B [--out FIG]``: compare the radially averaged power spectra of two folders.

A folder holds images (PNG/JPG, compared in grayscale in [-1, 1]) or WAV files (mixed down to mono).
Images of different sizes are centre-cropped to the smallest common size; audio clips are cropped to the
shortest clip; all WAVs must share one sample rate. Writes FIG.png and FIG.pdf (log-log spectra and their
ratio) and prints the spectral log distance and the high-frequency energy ratio of A relative to B.
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
)


def folder_spectra(a: str | Path, b: str | Path) -> dict:
    """Mean radial power spectra of two folders of the same kind, on a common crop."""
    (kind_a, files_a), (kind_b, files_b) = list_media(a), list_media(b)
    if kind_a != kind_b:
        raise FolderError(f"{a} holds {kind_a} files but {b} holds {kind_b} files")
    notes, rate = [], None
    if kind_a == "image":
        sizes = [image_size(p) for p in files_a + files_b]
        crop = (min(s[0] for s in sizes), min(s[1] for s in sizes))
        if len(set(sizes)) > 1:
            notes.append(f"images differ in size; all centre-cropped to {crop[0]}x{crop[1]}")
        load = functools.partial(load_image, size=crop)
    else:
        infos = [audio_info(p) for p in files_a + files_b]
        rates = sorted({r for _, r in infos})
        if len(rates) > 1:
            raise FolderError(f"WAV files have different sample rates {rates}; resample them to one rate")
        rate, crop = rates[0], min(n for n, _ in infos)
        if crop < 2:
            raise FolderError("a WAV file has fewer than 2 samples")
        if len({n for n, _ in infos}) > 1:
            notes.append(f"clips differ in length; all cropped to the first {crop} samples")
        load = functools.partial(load_audio, length=crop)
    out = {"kind": kind_a, "notes": notes, "sample_rate": rate, "counts": (len(files_a), len(files_b))}
    for key, files, folder in (("a", files_a, a), ("b", files_b, b)):
        total = None
        for path in tqdm(files, desc=f"spectra {Path(folder).name}", unit="file", file=sys.stderr):
            freqs, power = radial_power_spectrum(load(path))
            total = power[0] if total is None else total + power[0]
        out["freqs"], out[key] = freqs.numpy(), (total / len(files)).numpy()
    return out


def plot_spectra(spec: dict, label_a: str, label_b: str):
    """Log-log spectra of both folders and their ratio: a matplotlib Figure (no pyplot state)."""
    from matplotlib.figure import Figure

    f = spec["freqs"][1:]
    x, unit = (f * spec["sample_rate"], "Hz") if spec["sample_rate"] else (f, "cycles/pixel")
    fig = Figure(figsize=(9, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.loglog(x, spec["a"][1:], label=label_a)
    ax1.loglog(x, spec["b"][1:], label=label_b, linestyle="--")
    ax1.set(xlabel=f"frequency ({unit})", ylabel="radially averaged power", title="power spectra")
    ax1.legend()
    ax2.semilogx(x, np.log10(np.maximum(spec["a"][1:], 1e-300) / np.maximum(spec["b"][1:], 1e-300)))
    ax2.axhline(0, color="0.5", lw=0.8)
    ax2.set(xlabel=f"frequency ({unit})", ylabel="log10 P_A / P_B", title="ratio")
    fig.tight_layout()
    return fig


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of the spectrum command, for ``specreg spectrum`` or a standalone parser."""
    parser.add_argument("a", help="folder A (images or WAVs), e.g. generated samples")
    parser.add_argument("b", help="folder B of the same kind, e.g. reference data")
    parser.add_argument("--out", default="spectrum_comparison",
                        help="figure path without extension; writes .png and .pdf (default: %(default)s)")
    parser.add_argument("--cutoff", type=float, default=0.25,
                        help="high-frequency band start in cycles/sample (default: %(default)s = Nyquist/2)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the spectrum comparison; 0 on success, 2 on unusable input (message on stderr)."""
    try:
        spec = folder_spectra(args.a, args.b)
        hf = high_frequency_energy_ratio(spec["freqs"], spec["a"], spec["b"], cutoff=args.cutoff)
    except FolderError as err:
        print(f"specreg spectrum: error: {err}", file=sys.stderr)
        return 2
    for note in spec["notes"]:
        print(f"note: {note}")
    paths = save_figure(plot_spectra(spec, f"A: {args.a}", f"B: {args.b}"), args.out)
    print(f"{spec['kind']} files: A={spec['counts'][0]}, B={spec['counts'][1]}")
    print(f"spectral_log_distance(A, B) = {spectral_log_distance(spec['a'], spec['b']):.4f}  (mean |log10 P_A/P_B|)")
    print(f"high_frequency_energy_ratio(A/B, f >= {args.cutoff}) = {hf:.4f}  (1 = matched)")
    for key in ("a", "b"):
        print(f"power-law slope {key.upper()} = {fit_power_law_slope(spec['freqs'], spec[key]):.3f}")
    print("figure: " + ", ".join(str(p) for p in paths))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: ``python -m specreg_lib.kit.spectrum A B [--out FIG]``."""
    parser = add_arguments(argparse.ArgumentParser(prog="specreg spectrum", description=__doc__.splitlines()[0]))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
