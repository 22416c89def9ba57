"""What is left of a Table 1 plan, per (preset, family) and stage, and the time it needs: measured rates only from
this plan's own finished cells (same profile, network, sampler and extractor), never from another configuration.

``table1_status(plan, root)`` -> a dict (``specreg table1 --status --json``); ``format_table1_status`` -> the table
``specreg table1 --status`` prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...data.seed_images import list_seed_images
from ...io import read_json
from ..core.runs import results_dir, run_state
from ..core.study import NO_MEASUREMENT, format_duration, median
from .experiment import edm_experiment
from .table1 import Table1Plan, cell_config, cell_dir, cells, read_fid, set_seeds

STAGES = ("finetune", "generate", "fid")


def _json(path: Path, fix: str | None = None) -> dict[str, Any] | None:
    """A record the pipeline wrote (a run's metrics.json, a cell's generate.json), None when absent; one that does
    not read is a CorruptFileError naming it and ``fix`` (``io.read_json``)."""
    return read_json(path, fix) if path.is_file() else None


def table1_status(plan: Table1Plan, root: str | Path) -> dict[str, Any]:
    """Done and left per stage for each (preset, family) block, and an ETA per block from that block's own
    measured rates (median seconds per fine-tune step, per generated image, per scored image); a block with work
    left in a stage it has no measurement of has ``eta_seconds`` None (and so has the total)."""
    root = Path(root)
    blocks: dict[tuple[str, str], dict[str, Any]] = {}
    for cell in cells(plan):
        b = blocks.setdefault((cell.preset, cell.family), {
            "preset": cell.preset, "family": cell.family, "cells": 0, **{s: {"done": 0, "left": 0} for s in STAGES},
            "steps_left": 0, "images_left": 0, "fid_images_left": 0, "rates": {s: [] for s in STAGES}})
        b["cells"] += 1
        folder = cell_dir(plan, cell, root)
        cfg = cell_config(plan, cell)
        if cfg is not None:  # stage 1: the fine-tune's run folder
            exp = edm_experiment(cell.preset)
            done = run_state(exp, cfg, root)[0] in ("done", "trained")
            b["finetune"]["done" if done else "left"] += 1
            if not done:
                b["steps_left"] += exp.train_config(cfg).steps
            results = results_dir(exp, cfg, root)
            metrics = _json(results / "metrics.json", f"delete the results folder {results} to evaluate the "
                                                      "trained snapshot again")
            if metrics and metrics.get("seconds_per_step"):
                b["rates"]["finetune"].append(metrics["seconds_per_step"])
        seeds = set(set_seeds(plan, cell))  # stage 2: this cell's images under its key
        have = len(seeds & set(list_seed_images(folder / "images"))) if (folder / "images").is_dir() else 0
        b["generate"]["done" if have == len(seeds) else "left"] += 1
        b["images_left"] += len(seeds) - have
        gen = _json(folder / "generate.json")
        if gen and gen.get("seconds_per_image"):
            b["rates"]["generate"].append(gen["seconds_per_image"])
        record = read_fid(plan, cell, root)  # stage 3: a fid.json under this cell's key
        b["fid"]["done" if record else "left"] += 1
        if record is None:
            b["fid_images_left"] += len(seeds)
        elif record.get("seconds_per_image"):
            b["rates"]["fid"].append(record["seconds_per_image"])
    out = []
    for b in blocks.values():
        rates = {s: median(v) for s, v in b.pop("rates").items()}
        work = {"finetune": b["steps_left"], "generate": b["images_left"], "fid": b["fid_images_left"]}
        missing = [s for s in STAGES if work[s] and rates[s] is None]
        eta = None if missing else sum(work[s] * (rates[s] or 0.0) for s in STAGES)
        out.append({**b, "seconds_per_step": rates["finetune"], "seconds_per_image": rates["generate"],
                    "fid_seconds_per_image": rates["fid"], "eta_seconds": eta, "unmeasured": missing})
    left = {s: sum(b[s]["left"] for b in out) for s in STAGES}
    etas = [b["eta_seconds"] for b in out]
    return {"profile": plan.profile, "features": plan.features, "images_per_set": plan.images_per_set,
            "cells": len(cells(plan)), "left": left, "blocks": out,
            "eta_seconds": None if None in etas else float(sum(etas))}


def _eta_text(block: dict[str, Any]) -> str:
    if block["eta_seconds"] is not None:
        return format_duration(block["eta_seconds"])
    return f"{NO_MEASUREMENT} ({', '.join(block['unmeasured'])})"


def format_table1_status(status: dict[str, Any]) -> str:
    """A plain-text table of :func:`table1_status`: per (preset, family) each stage's done / left cells, the work
    left and the ETA from this configuration's own measurements."""
    head = ["preset", "family", "fine-tune done/left", "generate done/left", "FID done/left", "steps left",
            "images left", "ETA"]
    rows = [[b["preset"], b["family"], *(f"{b[s]['done']} / {b[s]['left']}" for s in STAGES),
             str(b["steps_left"]), str(b["images_left"]), _eta_text(b)] for b in status["blocks"]]
    done = {s: sum(b[s]["done"] for b in status["blocks"]) for s in STAGES}
    eta = status["eta_seconds"]
    rows.append(["all", "", *(f"{done[s]} / {status['left'][s]}" for s in STAGES),
                 str(sum(b["steps_left"] for b in status["blocks"])),
                 str(sum(b["images_left"] for b in status["blocks"])),
                 NO_MEASUREMENT if eta is None else format_duration(eta)])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = [f"Table 1, profile {status['profile']} ({status['features']} features, {status['images_per_set']} "
             f"images per set): {status['cells']} cells",
             "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines += ["ETA: from this configuration's own finished fine-tunes, generations and FIDs (same profile,",
              "network, sampler and extractor); a stage without one is not guessed from another configuration."]
    return "\n".join(lines)
