"""What this machine can run: package versions, the compute device, and which assets are present."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from typing import Any

from .. import assets
from ..experiments import EXPERIMENTS, PROFILES
from ..io import resolve_repo_path

PACKAGES = ("torch", "torchvision", "torchaudio", "numpy", "scipy", "PyWavelets", "pytorch-wavelets",
            "clean-fid", "papermill", "matplotlib", "seaborn", "soundfile", "scikit-image", "specreg")

# The paper profile is the paper's settings for a GPU box (README, "Profiles"): it counts as runnable only with one.
GPU_PROFILES = ("paper",)


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


def _present(place: str, asset_status: dict[str, dict[str, Any]]) -> bool:
    """Whether one place of a required file holds it: a registry asset found locally, or an existing path."""
    if place in asset_status:
        return bool(asset_status[place]["present"])
    return resolve_repo_path(place).exists()


def runnable_profiles(asset_status: dict[str, dict[str, Any]] | None = None, gpu: bool | None = None,
                      experiments: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """For each registered experiment and profile: "yes", "no" (with why in ``missing``) or "-" (no such profile).

    A profile is runnable when every file its experiment declares for it (``required_files``) is here and, for
    the paper profile, torch sees a CUDA GPU. ``missing`` lists, per profile that cannot run, what is lacking."""
    asset_status = asset_status if asset_status is not None else assets.status()
    if gpu is None:
        import torch

        gpu = torch.cuda.is_available()
    out = {}
    for name, exp in (experiments if experiments is not None else EXPERIMENTS).items():
        row: dict[str, Any] = {"missing": {}}
        for profile in PROFILES:
            if profile not in exp.profiles:
                row[profile] = "-"
                continue
            lacking = [] if gpu or profile not in GPU_PROFILES else ["a CUDA GPU"]
            lacking += [f"{what} ({' or '.join(places)})" for what, places in exp.required_files(profile).items()
                        if not any(_present(p, asset_status) for p in places)]
            row[profile] = "no" if lacking else "yes"
            if lacking:
                row["missing"][profile] = lacking
        out[name] = row
    return out


def describe() -> dict[str, Any]:
    """Everything above in one JSON-able dict (the environment notebook and the report header use it)."""
    st, dev = assets.status(), device_info()
    return {"versions": package_versions(), "device": dev, "executable": sys.executable,
            "assets": st, "profiles": runnable_profiles(st, gpu=dev["device"] == "cuda"),
            "cache_dir": str(assets.cache_dir())}
