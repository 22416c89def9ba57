"""Typed experiment configs: frozen dataclasses with named profile presets, saved as JSON beside outputs."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, TypeVar

from .io import write_json

PROFILES = ("smoke", "cpu", "paper")

C = TypeVar("C")


def check_profile(profile: str) -> str:
    """Validate a profile name (``smoke`` for CPU tests, ``cpu`` for long CPU runs, ``paper`` for GPU boxes)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return profile


def from_profile(cls: type[C], presets: dict[str, dict[str, Any]], profile: str, **overrides: Any) -> C:
    """Build ``cls`` from the named preset, then apply ``overrides`` (``None`` values are ignored).

    Unknown override names raise, so a typo in a papermill parameter never passes silently.
    """
    check_profile(profile)
    if profile not in presets:
        raise ValueError(f"{cls.__name__} has no {profile!r} preset; available: {', '.join(presets)}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {unknown}; valid fields: {sorted(names)}")
    kwargs = dict(presets[profile])
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    if "profile" in names:
        kwargs["profile"] = profile
    return cls(**kwargs)


def save_config(cfg: Any, path: str | os.PathLike) -> Path:
    """Save a dataclass config as JSON (atomic), with its class name, beside the outputs it produced."""
    if not dataclasses.is_dataclass(cfg):
        raise TypeError(f"save_config expects a dataclass instance, got {type(cfg).__name__}")
    return write_json(path, {"config_class": type(cfg).__name__, **dataclasses.asdict(cfg)})
