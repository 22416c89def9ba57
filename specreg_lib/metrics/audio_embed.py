"""Features behind NDB and FAD, and the UTMOS predictor: each loaded from a local file or an explicit opt-in.

* ``mel_frame_features``: LMNT's normalised log-mel frames (80-d, one row per 256-sample frame) of every clip,
  a fixed-seed subsample when there are too many. It needs no weights: the NDB feature of every profile and the
  offline FAD embedding ("FD of log-mel frames", labelled as such; it is not comparable with VGGish FAD).
* ``vggish_embeddings``: the 128-d VGGish embedding (before PCA/quantisation, as the common FAD tools use it) of
  every 0.96 s patch at 16 kHz, with ``torchvggish``'s network and front end and its weights file
  ``vggish-10086976.pth`` from a local path, the cache, or a download (``assets.read_verified``: the bytes
  checked against its SHA-256 are the bytes loaded, ``weights_only``).
* ``utmos_scores``: SpeechMOS ``utmos22_strong`` through ``torch.hub``, which DOWNLOADS AND RUNS CODE from
  GitHub (tarepan/SpeechMOS v1.2.0), so it runs only with ``allow_remote_code=True``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

VGGISH_WEIGHTS = "vggish-10086976.pth"
VGGISH_RATE = 16000
UTMOS_REPO, UTMOS_MODEL = "tarepan/SpeechMOS:v1.2.0", "utmos22_strong"


def mel_frame_features(clips: Sequence[np.ndarray], sample_rate: int, n_mels: int = 80, max_frames: int = 20000,
                       seed: int = 0) -> np.ndarray:
    """LMNT log-mel frames of all clips stacked, (N, n_mels); at most ``max_frames`` rows (fixed-seed subsample)."""
    from ..data.speech import MelConfig, log_mel

    if not clips:
        raise ValueError("no clips to take features of")
    cfg = MelConfig(sample_rate=sample_rate, n_mels=n_mels)
    transform = cfg.transform()
    rows = np.concatenate([log_mel(np.asarray(c, np.float32), cfg, transform).numpy().T for c in clips])
    if max_frames and rows.shape[0] > max_frames:
        keep = np.sort(np.random.default_rng(seed).choice(rows.shape[0], max_frames, replace=False))
        rows = rows[keep]
    return rows.astype(np.float64)


def load_vggish(weights: str | os.PathLike | None = None, allow_download: bool = True,
                device: str = "cpu") -> torch.nn.Module:
    """torchvggish's VGGish network (no PCA) with weights from ``weights``, the cache, or a download."""
    try:
        from torchvggish.torchvggish import _vgg
    except ImportError as err:
        raise ImportError(f"FAD with VGGish needs the torchvggish package ({err}): pip install torchvggish resampy; "
                          "or evaluate with fad_embedding='mel' (offline, not comparable with VGGish FAD)") from err
    from ..assets import read_verified
    from ..torchfile import read_torch_file

    # the bytes that matched the pin or the recorded hash, not a second read of a file that may have changed since
    data = read_verified(VGGISH_WEIGHTS, local_path=weights, allow_download=allow_download)[1]
    state = read_torch_file(data, VGGISH_WEIGHTS, refused="use the official VGGish weights (download them again)",
                            corrupt="delete it and download it again, or pass the path of a good copy")
    net = _vgg(postprocess=False)
    net.load_state_dict(state)
    return net.to(device).eval()


def vggish_embeddings(clips: Sequence[np.ndarray], sample_rate: int, net: torch.nn.Module,
                      batch_size: int = 256) -> np.ndarray:
    """128-d VGGish embeddings of every 0.96 s patch of every clip (resampled to 16 kHz): (N_patches, 128)."""
    import torchaudio.functional as AF
    from torchvggish.vggish_input import waveform_to_examples

    device = next(net.parameters()).device
    out = []
    for clip in clips:
        x = AF.resample(torch.as_tensor(np.asarray(clip, np.float32)), sample_rate, VGGISH_RATE).numpy()
        examples = waveform_to_examples(x, VGGISH_RATE, return_tensor=True).detach()  # (P, 1, 96, 64)
        if examples.shape[0] == 0:
            continue  # shorter than one 0.96 s patch
        with torch.no_grad():
            for i in range(0, examples.shape[0], batch_size):
                out.append(net(examples[i: i + batch_size].to(device)).cpu().double().numpy())
    if not out:
        raise ValueError("every clip is shorter than one VGGish patch (0.96 s)")
    return np.concatenate(out)


def utmos_scores(clips: Sequence[np.ndarray], sample_rate: int, allow_remote_code: bool = False,
                 device: str = "cpu", predictor: torch.nn.Module | None = None) -> np.ndarray:
    """Predicted MOS (UTMOS22 strong, about 1..5) per clip; (N,). ``predictor(wave (1, T), sr) -> (1,)`` may be
    passed in; otherwise SpeechMOS is loaded through torch.hub, which needs ``allow_remote_code=True``."""
    if predictor is None:
        if not allow_remote_code:
            raise PermissionError(
                f"UTMOS loads {UTMOS_REPO} ({UTMOS_MODEL}) with torch.hub, which downloads and EXECUTES code from "
                "GitHub and fetches its weights from there. Opt in with allow_remote_code=True (CLI/notebook: "
                "utmos=True) on a machine with internet, or pass predictor=<a local model>.")
        predictor = torch.hub.load(UTMOS_REPO, UTMOS_MODEL, trust_repo=True).to(device).eval()
    dev = next(predictor.parameters()).device if any(True for _ in predictor.parameters()) else torch.device("cpu")
    scores = []
    with torch.no_grad():
        for clip in clips:
            wave = torch.as_tensor(np.asarray(clip, np.float32)).unsqueeze(0).to(dev)  # (1, T)
            scores.append(float(predictor(wave, sample_rate).reshape(-1)[0]))
    return np.asarray(scores)
