"""A sweep: a grid over named config fields times seeds, run one point after the other, resumable.

``Sweep(experiment, profile, overrides, grid, seeds)`` expands to one config per grid point and seed
(points that are the same run, e.g. a baseline under several lambdas, are kept once). A variant on the
``regularizer`` axis is L_S only (``config.Variant``): each run's lambda_spec and weighting are the profile's,
or ``overrides``', or those of axes of their own; :meth:`Sweep.describe` shows the values each run uses.
:func:`run_sweep` runs them in order through :func:`runs.run`: finished runs are only re-read, a killed sweep
resumes from each run's last checkpoint, and :func:`sweep_status` tells which runs are done, partial or missing.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import apply_overrides, get_path, resolve_path, resolve_variant
from .protocol import Experiment
from .runs import RunLocked, RunResult, run, run_dir, run_state


@dataclass(frozen=True)
class Sweep:
    """Grid axes ``{field: values}`` (dotted paths or unique leaf names) times ``seeds`` over a profile's config."""

    experiment: Experiment
    profile: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    seeds: Sequence[int] = (1,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if not self.seeds:
            raise ValueError("a sweep needs at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeat: {self.seeds}")
        cls = self.experiment.config_class
        grid = {resolve_path(cls, k): list(v) for k, v in self.grid.items()}
        for path, values in grid.items():
            if not values:
                raise ValueError(f"grid axis {path} has no values")
        if "regularizer" in grid:  # variant names -> Variants (L_S only), completed where they are applied
            known = self.experiment.variants
            grid["regularizer"] = [resolve_variant(v, known) if isinstance(v, str) else v
                                   for v in grid["regularizer"]]
        object.__setattr__(self, "grid", grid)
        self.configs()  # every point is built and validated now, before anything trains

    def base_config(self) -> Any:
        """The profile's config with the overrides, and every single-valued grid axis where it applies."""
        cfg = self.experiment.config(self.profile, self.overrides)
        return self._apply(cfg, {k: v[0] for k, v in self.grid.items() if len(v) == 1})

    def _apply(self, base: Any, point: dict[str, Any]) -> Any:
        """``base`` with one grid point applied. A variant on the ``regularizer`` axis brings its L_S (kind and
        options) and takes the base's lambda_spec and weighting (``config.apply_overrides``), unless axes of their
        own set them; a baseline point skips those axes."""
        return apply_overrides(base, point, skip_not_applicable=True, variants=self.experiment.variants)

    def configs(self) -> list[Any]:
        """One validated config per (grid point, seed), duplicates (same run, same results) removed."""
        base = self.experiment.config(self.profile, self.overrides)
        axes = list(self.grid.items())
        out, seen = [], set()
        for values in itertools.product(*(v for _, v in axes)):
            cfg = self._apply(base, dict(zip((k for k, _ in axes), values, strict=True)))
            for seed in self.seeds:
                c = apply_overrides(cfg, {"train.seed": seed})
                key = (self.experiment.run_hash(c), self.experiment.results_hash(c), c.train.steps)
                if key not in seen:
                    seen.add(key)
                    out.append(c)
        return out

    def describe(self, cfg: Any) -> dict[str, Any]:
        """One run as a row: the regularizer, lambda_spec and weighting it uses (when its config has one), the
        other grid values (what differs between runs), and its seed."""
        row: dict[str, Any] = {}
        if hasattr(cfg, "regularizer"):
            reg = cfg.regularizer
            row["regularizer"] = "baseline" if reg is None else reg.name
            row["lambda_spec"] = None if reg is None else reg.lambda_spec
            row["weighting"] = None if reg is None else reg.weighting.kind if reg.weighting else "default"
        row |= {k: get_path(cfg, k) for k in self.grid if k.split(".")[0] != "regularizer"}
        return row | {"seed": self.experiment.seed(cfg)}


def variant_sweep(experiment: Experiment, profile: str, seeds: Sequence[int] | None = None,
                  variants: Sequence[str] | None = None, overrides: Mapping[str, Any] | None = None) -> Sweep:
    """The comparison a notebook shows: ``variants`` (regularizer names) x ``seeds`` on ``profile``.

    None means the experiment's defaults for the profile; overrides whose value is None are dropped.
    """
    over = {resolve_path(experiment.config_class, k): v for k, v in (overrides or {}).items() if v is not None}
    grid = {"regularizer": list(variants or experiment.default_variants)}
    return Sweep(experiment, profile, over, grid, tuple(seeds or experiment.default_seeds.get(profile, (1,))))


def run_sweep(sweep: Sweep, root: str | os.PathLike, wait: bool = False,
              skip_locked: bool = False) -> list[RunResult]:
    """Run (or resume, or re-read) every point of ``sweep`` in order; returns their results in that order.

    ``skip_locked``: a run another process holds is put off and awaited at the end, so several workers
    (e.g. one per CPU core) can share one sweep. Otherwise a locked run waits (``wait``) or raises RunLocked.
    """
    configs = sweep.configs()
    results: dict[int, RunResult] = {}
    later = []
    for k, cfg in enumerate(configs):
        desc = f"[{k + 1}/{len(configs)}] {sweep.experiment.label(cfg)}"
        try:
            results[k] = run(sweep.experiment, cfg, root, wait=wait and not skip_locked, desc=desc)
        except RunLocked:
            if not skip_locked:
                raise
            later.append((k, desc))
    for k, desc in later:
        results[k] = run(sweep.experiment, configs[k], root, wait=True, desc=desc)
    return [results[k] for k in range(len(configs))]


def sweep_status(sweep: Sweep, root: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per run: the grid values, the state (done/running/trained/partial/conflict/missing), the folder."""
    rows = []
    for cfg in sweep.configs():
        state, detail = run_state(sweep.experiment, cfg, root)
        rows.append({**sweep.describe(cfg), "state": state, "detail": detail,
                     "run_dir": str(run_dir(sweep.experiment, cfg, root))})
    return rows


def format_status(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`sweep_status` rows, with a count per state."""
    if not rows:
        return "(no runs)"
    cols = [c for c in rows[0] if c != "run_dir"] + ["run_dir"]
    cells = [[_fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    counts = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    lines.append(f"{len(rows)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if hasattr(v, "name") and hasattr(v, "lambda_spec"):  # a Regularizer
        return v.name
    if hasattr(v, "kind") and hasattr(v, "sigma_gate"):  # a SpectralWeighting
        return v.kind
    return f"{v:g}" if isinstance(v, float) else str(v)
