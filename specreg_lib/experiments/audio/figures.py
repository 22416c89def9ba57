"""Table 2 of the paper and the audio figures: aggregation over seeds, paired differences, spectrograms, players.

Input: the ``RunResult`` list of a DiffWave sweep over regularizer x lambda x seeds. Output: plain dicts, pandas
tables and matplotlib figures; saving and labelling them is the caller's (the notebook's) job.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from ...data.speech import MelConfig, log_mel
from ..core.compare import compare, headline_from_table, wide
from ..core.runs import RunResult
from ..core.sweep import Sweep
from .experiment import AUDIO_GLOSSARY, DIFFWAVE, PAPER_LAMBDAS, PAPER_SEEDS, AudioConfig

STANDIN = "espeak-ng speech and a tiny DiffWave from scratch, not LJSpeech and LMNT's checkpoint"
METRICS = ("fad", "utmos", "pesq", "mr_stft", "ndb")  # Table 2's columns, in its order
OFFLINE_FAD = "fd_mel"  # what stands in for FAD where VGGish is not used
# Table 2 of the paper (mean, std over 5 seeds), from shared/reference/paper.md 2.3: (variant, lambda) -> metrics
PAPER_TABLE2: dict[tuple[str, float | None], dict[str, tuple[float, float]]] = {
    ("baseline", None): {"fad": (1.994, .008), "utmos": (3.941, .005), "pesq": (3.440, .002),
                         "mr_stft": (1.217, .001), "ndb": (.63, .02)},
    ("amp", 1e-4): {"fad": (1.462, .006), "utmos": (3.953, .009), "pesq": (3.477, .003), "mr_stft": (1.1802, .0005),
                    "ndb": (.65, .03)},
    ("amp", 1e-5): {"fad": (1.609, .007), "utmos": (3.953, .009), "pesq": (3.476, .001), "mr_stft": (1.1930, .0004),
                    "ndb": (.63, .02)},
    ("amp", 1e-6): {"fad": (1.775, .008), "utmos": (3.952, .006), "pesq": (3.491, .003), "mr_stft": (1.1958, .0005),
                    "ndb": (.64, .03)},
    ("amp_phase", 1e-4): {"fad": (1.694, .009), "utmos": (3.969, .008), "pesq": (3.516, .002),
                          "mr_stft": (1.1896, .0003), "ndb": (.66, .02)},
    ("amp_phase", 1e-5): {"fad": (1.543, .012), "utmos": (3.988, .003), "pesq": (3.495, .002),
                          "mr_stft": (1.1773, .0004), "ndb": (.59, .01)},
    ("amp_phase", 1e-6): {"fad": (1.539, .007), "utmos": (3.976, .008), "pesq": (3.344, .003),
                          "mr_stft": (1.1921, .0003), "ndb": (.65, .02)},
    ("haar", 1e-4): {"fad": (1.729, .016), "utmos": (3.965, .006), "pesq": (3.466, .003), "mr_stft": (1.1708, .0006),
                     "ndb": (.59, .02)},
    ("haar", 1e-5): {"fad": (1.992, .014), "utmos": (3.988, .008), "pesq": (3.485, .003), "mr_stft": (1.2163, .0002),
                     "ndb": (.66, .02)},
    ("haar", 1e-6): {"fad": (2.123, .010), "utmos": (3.923, .002), "pesq": (3.359, .002), "mr_stft": (1.2343, .0002),
                     "ndb": (.69, .03)},
    ("bior1.3", 1e-4): {"fad": (1.492, .011), "utmos": (3.977, .009), "pesq": (3.500, .002),
                        "mr_stft": (1.1768, .0002), "ndb": (.62, .01)},
    ("bior1.3", 1e-5): {"fad": (2.649, .011), "utmos": (3.927, .007), "pesq": (3.303, .001),
                        "mr_stft": (1.2949, .0004), "ndb": (.67, .04)},
    ("bior1.3", 1e-6): {"fad": (1.520, .008), "utmos": (3.985, .008), "pesq": (3.466, .003),
                        "mr_stft": (1.1787, .0003), "ndb": (.64, .02)},
}


def table2_sweep(profile: str, variants: list[str] | None = None, lambdas: list[float] | None = None,
                 seeds: list[int] | None = None, overrides: dict[str, Any] | None = None) -> Sweep:
    """Table 2's grid, variants x lambdas x seeds; None = the profile's: all of the paper's in ``paper``, a small
    grid in ``smoke`` (baseline, amp, haar at 1e-4, seeds 1 and 2: enough to show the seeds and paired stats)."""
    small = profile == "smoke"
    variants = variants or (["baseline", "amp", "haar"] if small else list(DIFFWAVE.default_variants))
    lambdas = lambdas or ([1e-4] if small else list(PAPER_LAMBDAS))
    seeds = seeds or ([1, 2] if small else list(PAPER_SEEDS))
    over = {k: v for k, v in (overrides or {}).items() if v is not None}
    return Sweep(DIFFWAVE, profile, over, {"regularizer": variants, "regularizer.lambda_spec": lambdas}, seeds)


def row_key(cfg: AudioConfig) -> tuple[str, float | None]:
    """(variant, lambda) of a run: Table 2's row."""
    reg = cfg.regularizer
    return ("baseline", None) if reg is None else (reg.name, reg.lambda_spec)


def table2(results: list[RunResult]) -> tuple[Any, list[str]]:
    """(DataFrame, metric names): one row per (variant, lambda) with mean, std over seeds, the paired difference
    to the baseline of the same seed (mean, standard error, paired t-test p, direction word; see
    :mod:`..core.compare`) and the paper's mean, for every metric."""
    values: dict[tuple, dict[int, dict]] = {}
    for r in results:
        values.setdefault(row_key(r.config), {})[int(r.config.train.seed)] = r.metrics
    metrics = [m for m in (*METRICS, OFFLINE_FAD) if any(m in r.metrics for r in results)]
    table = wide(compare(values, metrics, AUDIO_GLOSSARY, reference=("baseline", None)), ("variant", "lambda"))
    table.insert(0, "label", [v if lam is None else f"{v}_lam{lam:g}" for v, lam in values])
    for m in metrics:
        table.insert(table.columns.get_loc(f"{m}_direction") + 1, f"{m}_paper",
                     [PAPER_TABLE2.get(key, {}).get(m, (np.nan,))[0] for key in values])
    order = {k: i for i, k in enumerate(PAPER_TABLE2)}
    rank = [order.get(key, len(order)) for key in values]
    return table.iloc[np.argsort(rank, kind="stable")].reset_index(drop=True), metrics


def formatted(table: Any, metrics: list[str]) -> Any:
    """Table 2's layout as text cells: "ours mean +- std (paper mean)" and "diff +- se, p, direction" per metric
    (one seed or one pair: no spread, and the cell says so)."""
    import pandas as pd

    out = pd.DataFrame({"method": table["variant"], "lambda": [f"{v:g}" if v == v and v is not None else "-"
                                                                for v in table["lambda"]]})
    for m in metrics:
        out[m] = [(f"{a:.4g} ± {b:.2g}" if b == b else f"{a:.4g} (1 seed)") + (f" (paper {p:.4g})" if p == p else "")
                  for a, b, p in zip(table[f"{m}_mean"], table[f"{m}_std"], table[f"{m}_paper"], strict=True)]
        if table[f"{m}_diff"].notna().any():
            out[f"Δ{m}"] = ["" if d != d else f"{d:+.3g} (1 pair)" if s != s else f"{d:+.3g} ± {s:.2g}"
                            + (f", p={p:.2g} {w}" if p == p else "") for d, s, p, w in
                            zip(table[f"{m}_diff"], table[f"{m}_diff_se"], table[f"{m}_p"], table[f"{m}_direction"],
                                strict=True)]
    return out


def headline(table: Any, metrics: list[str]) -> tuple[dict[str, float], dict[str, dict[str, str]]]:
    """(headline, glossary) for metrics.json: ``<label>_<metric>`` = the mean over seeds of each row."""
    return headline_from_table(table, table["label"], metrics, AUDIO_GLOSSARY)


def bar_figure(table: Any, metrics: list[str]) -> plt.Figure:
    """One panel per metric: ours (mean +- std over seeds) beside the paper's, per (variant, lambda)."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.4), squeeze=False)
    labels = [v if lam != lam or lam is None else f"{v}\n{lam:g}" for v, lam in zip(table["variant"],
                                                                                    table["lambda"], strict=True)]
    x = np.arange(len(labels))
    for ax, m in zip(axes[0], metrics, strict=True):
        ax.bar(x - 0.2, table[f"{m}_mean"], 0.4, yerr=table[f"{m}_std"], capsize=2, label="ours")
        if table[f"{m}_paper"].notna().any():
            ax.bar(x + 0.2, table[f"{m}_paper"], 0.4, color="0.7", label="paper")
        better = AUDIO_GLOSSARY.get(m, ("", "neither"))[1]
        ax.set_title(f"{m} ({better} is better)", fontsize=9)
        ax.set_xticks(x, labels, fontsize=6, rotation=90)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def spectrogram_figure(results: list[RunResult], clip: int = 0) -> plt.Figure:
    """Log-mel spectrograms of one held-out clip: ground truth, then each run's vocoded version."""
    cfg = results[0].config
    refs, _ = DIFFWAVE.eval_clips(cfg)
    mel_cfg = MelConfig(n_mels=80)
    rows = [("ground truth", refs[clip])] + [
        (f"{row_key(r.config)[0]}" + (f" λ={row_key(r.config)[1]:g}" if r.config.regularizer else ""),
         r.samples[clip, 0, : len(refs[clip])].numpy()) for r in results]
    fig, axes = plt.subplots(len(rows), 1, figsize=(7, 1.5 * len(rows)), sharex=True)
    for ax, (name, audio) in zip(np.atleast_1d(axes), rows, strict=True):
        ax.imshow(log_mel(audio, mel_cfg).numpy(), origin="lower", aspect="auto", vmin=0, vmax=1, cmap="magma")
        ax.set_ylabel(name, fontsize=7, rotation=0, ha="right")
        ax.set_yticks([])
    np.atleast_1d(axes)[-1].set_xlabel(f"mel frame ({mel_cfg.hop} samples at {mel_cfg.sample_rate} Hz)")
    fig.tight_layout()
    return fig


def player_clips(results: list[RunResult], clip: int = 0) -> tuple[list[tuple[str, np.ndarray]], int]:
    """([(label, waveform (T,))], sample rate): held-out clip ``clip``'s ground truth, then each run's vocoding."""
    cfg = results[0].config
    refs, _ = DIFFWAVE.eval_clips(cfg)
    items = [("ground truth", refs[clip])] + [(row_key(r.config)[0], r.samples[clip, 0, : len(refs[clip])].numpy())
                                              for r in results]
    return items, cfg.mel_config().sample_rate


def audio_players(results: list[RunResult], clip: int = 0) -> Any:
    """An ipywidgets box of audio players: ground truth, then each run's vocoded clip."""
    import io

    import ipywidgets as widgets
    import soundfile as sf

    items, sr = player_clips(results, clip)
    boxes = []
    for name, audio in items:
        buf = io.BytesIO()
        sf.write(buf, np.clip(audio, -1, 1), sr, format="WAV", subtype="PCM_16")
        boxes.append(widgets.VBox([widgets.Label(name), widgets.Audio(value=buf.getvalue(), format="wav",
                                                                      autoplay=False)]))
    return widgets.HBox(boxes)
