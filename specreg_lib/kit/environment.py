"""What this machine can run: package versions, the compute device, and which assets are present."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from pathlib import Path
from typing import Any

from .. import assets
from .paths import NOTEBOOK_DIR

PACKAGES = ("torch", "torchvision", "torchaudio", "numpy", "scipy", "PyWavelets", "pytorch-wavelets",
            "clean-fid", "papermill", "matplotlib", "seaborn", "soundfile", "scikit-image", "specreg")

# Each experiment: the notebook that reproduces it (None = planned, not in the kit yet) and the assets its
# paper profile needs (smoke/cpu profiles need none of them).
EXPERIMENTS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "spectral losses tour": ("01_spectral_losses_tour", ()),
    "checkerboard toy (Figs. 1-2)": ("02_checkerboard_toy", ()),
    "power spectra, natural images": ("03_power_spectra", ()),
    "EDM fine-tuning AFHQv2-64 (Table 1)": ("07_edm_table1", (
        "edm-afhqv2-64x64-uncond-vp.pkl", "edm-afhqv2-64x64-uncond-ve.pkl", "afhqv2-64x64.npz",
        "inception-2015-12-05.pt")),
    "EDM fine-tuning FFHQ-64 (Table 1)": ("07_edm_table1", (
        "edm-ffhq-64x64-uncond-vp.pkl", "edm-ffhq-64x64-uncond-ve.pkl", "ffhq-64x64.npz", "inception-2015-12-05.pt")),
    "EDM fine-tuning CIFAR-10 (Table 1)": ("07_edm_table1", (
        "edm-cifar10-32x32-cond-vp.pkl", "edm-cifar10-32x32-cond-ve.pkl", "cifar10-32x32.npz",
        "inception-2015-12-05.pt")),
    "DiffWave fine-tuning (Table 2)": (None, ("diffwave-ljspeech-22kHz-1000578.pt", "LJSpeech-1.1.tar.bz2")),
}


def package_versions() -> dict[str, str | None]:
    """Installed version of each package the kit uses (None when missing)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info() -> dict[str, Any]:
    """The compute device torch will use: CUDA (name, memory) if available, else CPU (cores)."""
    import torch

    info: dict[str, Any] = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                            "platform": platform.platform()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(device="cuda", name=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                    cuda=torch.version.cuda, count=torch.cuda.device_count())
    else:
        info.update(device="cpu", name=platform.processor() or platform.machine())
    return info


def default_device() -> str:
    """``"cuda"`` when a GPU is present, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def runnable_profiles(asset_status: dict[str, dict[str, Any]] | None = None,
                      notebook_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """For each experiment: "yes"/"no"/"planned" per profile, and what the paper profile still misses."""
    asset_status = asset_status if asset_status is not None else assets.status()
    notebook_dir = notebook_dir or NOTEBOOK_DIR
    out = {}
    for exp, (stem, needs) in EXPERIMENTS.items():
        present = stem is not None and (notebook_dir / f"{stem}.ipynb").is_file()
        missing = [n for n in needs if not asset_status[n]["present"]]
        here = "yes" if present else "planned"
        out[exp] = {"notebook": stem, "smoke": here, "cpu": here,
                    "paper": ("no" if missing else "yes") if present else "planned", "paper_missing": missing}
    return out


def describe() -> dict[str, Any]:
    """Everything above in one JSON-able dict (the environment notebook and the report header use it)."""
    st = assets.status()
    return {"versions": package_versions(), "device": device_info(), "executable": sys.executable,
            "assets": st, "profiles": runnable_profiles(st), "cache_dir": str(assets.cache_dir())}
