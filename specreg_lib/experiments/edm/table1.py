"""Table 1 as one resumable pipeline: checkpoint x regularizer x weighting x seed -> fine-tune -> generate -> FID,
and paired statistics the paper does not give.

Cells, per (preset, family): ``pretrained`` (the checkpoint itself, the paper's "EDM FID" column), ``baseline``
(fine-tuned with EDM's loss alone, per seed) and every (regularizer, weighting, seed). Stages, each skipped
when complete, so a GPU box runs the whole table unattended and a killed run picks up where it stopped:

1. fine-tune: :func:`specreg_lib.experiments.run` (run folders, resume);
2. generate: the EMA network's images for the cell's seed set into
   ``<root>/table1/<profile>-<features>/<preset>/<family>/<cell>-<key hash>/images`` (``generate_to_folder``
   skips images already written);
3. FID: ``fid.json`` beside the images (``metrics.fid.fid_seed_sets`` on that one set).

The cache key (:func:`cell_key`) is everything a cell's images and FID depend on: profile, network (checkpoint,
or fine-tuned run and steps), sampler settings, generation seeds, image count, feature extractor, FID mode and
reference statistics; its hash names the folder and fid.json records it, with the SHA-256 of the Inception weights
and of EDM's reference npz where a local copy is known. :func:`read_fid` reuses, skips or lists a fid.json only
when its recorded key is this one, so a smoke stand-in FID never stands in a paper table.

Pairing: the fine-tune with training seed ``seeds[i]`` is evaluated on generation seed set i (seeds
i*N .. (i+1)*N - 1, EDM's three 50k sets for N = 50,000), the baseline fine-tune with the same training seed
on the same set, and ``pretrained`` on every set: each difference compares two models on the same latents.
Smoke swaps only what cannot be had offline: Inception for ``metrics.PooledPixels`` (a stand-in feature, said
in every row it produces) and the real data and checkpoints for the stand-in ones.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...assets import AssetMissingError, locate, read_record, sha256_file
from ...data.seed_images import read_seed_images
from ...diffusion.generate import SamplerSettings, generate_to_folder, sample_images
from ...diffusion.weighting import WEIGHTING_KINDS
from ...errors import InputError
from ...io import read_json, write_json
from ...metrics.features import PooledPixels
from ...metrics.fid import (
    INCEPTION,
    fid_seed_sets,
    inception_extractor,
    reference_stats,
    save_reference_stats,
)
from ...spectral import IMAGE_PEERS
from ...text import MAX_VALUES, parse_seeds
from ...training.checkpoint import load_checkpoint
from ...training.distributed import resolve_device
from ..core.compare import compare, headline_from_table
from ..core.config import config_hash, to_dict
from ..core.runs import run, snapshot_path
from .config import FAMILIES
from .experiment import EDM_VARIANTS, PRESETS, edm_experiment

PRETRAINED, BASELINE = "pretrained", "baseline"
# what --variants takes: the paper's four (Eqs. 14-16), then the image peers on x0_hat (not in the paper: their
# paper columns stay empty), each at its registered kind's defaults, so the peers run in Table 1's loop too
TABLE1_VARIANTS = (*(v for v in EDM_VARIANTS if v != BASELINE), *IMAGE_PEERS)
FEATURES = ("inception", "standin")
# The Table 1 metric per feature extractor: (meaning, better) as in an experiment's glossary.
FID_GLOSSARY = {"inception": {"fid": ("FID: Frechet distance of Inception features, samples vs data", "lower")},
                "standin": {"fid": ("Frechet distance of pooled-pixel stand-in features, samples vs data (not FID)",
                                    "lower")}}


class PlanError(InputError, ValueError):
    """A Table 1 plan value outside its choices or range; the message names the field, its option and the choices."""


@dataclass(frozen=True)
class Table1Plan:
    """What to run: presets x families x (pretrained, baseline, variants x weightings) x seeds, and how to score."""

    profile: str = "smoke"
    presets: tuple[str, ...] = ("afhqv2-64",)
    families: tuple[str, ...] = ("vp", "ve")
    variants: tuple[str, ...] = ("amp", "amp_phase", "haar", "bior1.3")
    weightings: tuple[str, ...] = ("weighted", "unweighted")
    seeds: tuple[int, ...] = (1, 2, 3)
    images_per_set: int = 50_000  # FID-50k
    features: str = "inception"  # "inception" (EDM's, the paper's) | "standin" (PooledPixels, offline)
    overrides: tuple[tuple[str, Any], ...] = ()  # dotted config overrides for every fine-tune
    generate_batch: int = 64
    device: str = "auto"

    def __post_init__(self) -> None:
        """One rule per field, before anything is built: each list non-empty, without repeats, from its choices;
        training seeds by the one seed grammar; an image count whose generation seeds (seeds x images_per_set, all
        of which the plan lists) stay within text.MAX_VALUES."""
        choices = {"presets": tuple(PRESETS), "families": FAMILIES, "variants": TABLE1_VARIANTS,
                   "weightings": WEIGHTING_KINDS}
        for name, allowed in choices.items():
            values = getattr(self, name)
            unknown = [v for v in values if v not in allowed]
            if unknown:
                word = {"presets": "preset", "families": "family", "variants": "regularizer"}.get(name, "weighting")
                raise PlanError(f"unknown {word}(s) {unknown} (--{name}); choose from {', '.join(allowed)}")
            if not values or len(set(values)) != len(values):
                raise PlanError(f"{name} {list(values)} (--{name}): need one or more, none twice; choose from "
                                f"{', '.join(allowed)}")
        if self.features not in FEATURES:
            raise PlanError(f"features must be one of {FEATURES}, got {self.features!r}")
        parse_seeds(self.seeds, "seeds (--seeds)")
        n = self.images_per_set
        if not isinstance(n, int) or isinstance(n, bool) or not 2 <= n <= MAX_VALUES // len(self.seeds):
            raise PlanError(f"images_per_set (--images) {n!r}: need an int in [2, {MAX_VALUES // len(self.seeds)}] "
                            f"for {len(self.seeds)} seed(s) ({MAX_VALUES} generation seeds at most; the paper: "
                            "50000 x 3)")
        if not isinstance(self.generate_batch, int) or self.generate_batch < 1:
            raise PlanError(f"generate_batch must be an int >= 1, got {self.generate_batch!r}")


@dataclass(frozen=True)
class Cell:
    """One row of work: a checkpoint (preset, family), what it is (pretrained / baseline / variant), a seed index."""

    preset: str
    family: str
    variant: str
    weighting: str | None
    seed_index: int

    @property
    def name(self) -> str:
        head = self.variant if self.weighting is None else f"{self.variant}_{self.weighting}"
        return f"{head}_set{self.seed_index}"


def cells(plan: Table1Plan) -> list[Cell]:
    out = []
    for preset in plan.presets:
        for family in plan.families:
            for i in range(len(plan.seeds)):
                out.append(Cell(preset, family, PRETRAINED, None, i))
                out.append(Cell(preset, family, BASELINE, None, i))
                out += [Cell(preset, family, v, w, i) for v in plan.variants for w in plan.weightings]
    return out


def cell_config(plan: Table1Plan, cell: Cell) -> Any:
    """The fine-tuning config of a cell (None for ``pretrained``)."""
    if cell.variant == PRETRAINED:
        return None
    exp = edm_experiment(cell.preset)
    over: dict[str, Any] = {**dict(plan.overrides), "model.family": cell.family, "regularizer": cell.variant,
                            "train.seed": plan.seeds[cell.seed_index]}
    if cell.weighting is not None:
        over["regularizer.weighting"] = cell.weighting
    return exp.config(plan.profile, over)


def check_plan(plan: Table1Plan) -> None:
    """Build every cell's config once, so a bad override (``--data``, a config value) fails before any work; the
    config grammar's ValueError/KeyError there is the user's value and becomes a :class:`PlanError`."""
    try:
        for cell in cells(plan):
            _any_config(plan, cell)
    except InputError:
        raise
    except (ValueError, KeyError) as err:
        raise PlanError(err.args[0] if isinstance(err, KeyError) and err.args else str(err)) from err


def set_seeds(plan: Table1Plan, cell: Cell) -> list[int]:
    n = plan.images_per_set
    return list(range(cell.seed_index * n, (cell.seed_index + 1) * n))


def _any_config(plan: Table1Plan, cell: Cell) -> Any:
    """The cell's fine-tuning config, or for ``pretrained`` its preset's config with the cell's family."""
    return cell_config(plan, cell) or edm_experiment(cell.preset).config(
        plan.profile, {**dict(plan.overrides), "model.family": cell.family})


# -- the cache key: everything a cell's images and FID depend on ------------------------------------------------


def _sampler(cfg: Any) -> dict[str, Any]:
    """EDM's sampler settings of a config as JSON scalars (inf as the string "inf": strict JSON has no inf)."""
    s = dataclasses.asdict(SamplerSettings(num_steps=cfg.sample.num_steps))
    return {k: v if not isinstance(v, float) or math.isfinite(v) else str(v) for k, v in s.items()}


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """A local file's SHA-256 (its download record when the cache holds one), once per process and version."""
    return read_record(path) or sha256_file(path)


def _local_sha256(name: str) -> str | None:
    """The SHA-256 of the local copy of asset ``name`` that FID would use, or None when there is none (yet)."""
    try:
        path = locate(name)
    except AssetMissingError:  # an env var naming a missing file: the FID stage will say so
        return None
    return None if path is None else _sha256(str(path), path.stat().st_size, path.stat().st_mtime_ns)


def _reference_config(plan: Table1Plan, preset: str) -> Any:
    return edm_experiment(preset).config(plan.profile, dict(plan.overrides))


def scoring(plan: Table1Plan, preset: str) -> tuple[dict[str, Any], dict[str, str | None]]:
    """(what scores a preset's cells: feature extractor, FID mode, reference statistics; the SHA-256 of the
    Inception weights and of EDM's reference npz, None where no local copy is known yet)."""
    cfg = _reference_config(plan, preset)
    if plan.features == "inception":
        ref = f"{cfg.data.dataset}.npz"  # EDM's fid-refs
        return ({"extractor": INCEPTION, "mode": "legacy_tensorflow", "reference": ref},
                {"extractor_sha256": _local_sha256(INCEPTION), "reference_sha256": _local_sha256(ref)})
    source = edm_experiment(preset).checkpoint_source(cfg)
    ref = f"reference-standin-{config_hash({'data': cfg.data, 'model': cfg.model, 'source': source})}.npz"
    return ({"extractor": f"PooledPixels(k={PooledPixels().k})", "mode": "clean", "reference": ref},
            {"extractor_sha256": None, "reference_sha256": None})  # no weights; the npz is keyed by its data


def cell_key(plan: Table1Plan, cell: Cell) -> dict[str, Any]:
    """Everything a cell's images and FID depend on but the weights' hashes: profile, network (the checkpoint,
    or the fine-tuned run and its steps), sampler, generation seeds, image count, extractor, FID mode, reference."""
    exp, cfg = edm_experiment(cell.preset), _any_config(plan, cell)
    if cell.variant == PRETRAINED:
        network = {"checkpoint": exp.checkpoint_source(cfg), "model": to_dict(cfg.model)}
    else:
        network = {"run": f"{exp.label(cfg)}_{exp.run_hash(cfg)}", "steps": exp.train_config(cfg).steps}
    seeds = set_seeds(plan, cell)
    return {"profile": plan.profile, "preset": cell.preset, "family": cell.family, "cell": cell.name,
            "network": network, "sampler": _sampler(cfg), "images": plan.images_per_set,
            "seeds": [seeds[0], seeds[-1]], "features": plan.features, **scoring(plan, cell.preset)[0]}


def cell_dir(plan: Table1Plan, cell: Cell, root: str | Path) -> Path:
    """``<root>/table1/<profile>-<features>/<preset>/<family>/<cell>-<hash of cell_key>/``: images, fid.json."""
    return (Path(root) / "table1" / f"{plan.profile}-{plan.features}" / cell.preset / cell.family /
            f"{cell.name}-{config_hash(cell_key(plan, cell))}")


def read_fid(plan: Table1Plan, cell: Cell, root: str | Path) -> dict[str, Any] | None:
    """The cell's fid.json if it was scored under this very key (and with the same weights, where both hashes
    are known), else None: a result made with other settings is never reused, skipped over or listed."""
    path = cell_dir(plan, cell, root) / "fid.json"
    if not path.is_file():
        return None
    record = read_json(path, f"delete {path} to score the cell again")
    if record.get("key") != json.loads(json.dumps(cell_key(plan, cell))):
        return None
    recorded, known = record.get("weights", {}), scoring(plan, cell.preset)[1]
    if any(v is not None and recorded.get(k) != v for k, v in known.items()):
        return None
    return record


def _network(plan: Table1Plan, cell: Cell, root: Path) -> torch.nn.Module:
    """The cell's EMA network: the checkpoint itself (pretrained) or the fine-tuned snapshot."""
    exp = edm_experiment(cell.preset)
    cfg = _any_config(plan, cell)
    net = exp.build_model(cfg)
    if cell.variant != PRETRAINED:
        net.load_state_dict(load_checkpoint(snapshot_path(exp, cfg, root))["model"])
    return net.eval()


def _network_name(plan: Table1Plan, cell: Cell, root: Path) -> str:
    """What :func:`_network` loads, for messages: the fine-tuned snapshot's path, or the pretrained checkpoint."""
    exp, cfg = edm_experiment(cell.preset), _any_config(plan, cell)
    if cell.variant == PRETRAINED:
        return f"cell {cell.name}: checkpoint {exp.checkpoint_source(cfg)}"
    return f"cell {cell.name}: {snapshot_path(exp, cfg, root)}"


def _extractor(plan: Table1Plan, device: torch.device) -> torch.nn.Module:
    return PooledPixels() if plan.features == "standin" else inception_extractor("legacy_tensorflow", device)


def reference(plan: Table1Plan, preset: str, root: Path, extractor: torch.nn.Module) -> tuple[np.ndarray, ...]:
    """The reference statistics: EDM's fid-refs npz (Inception), or the stand-in features of the training data
    (cached under the name :func:`scoring` gives, keyed by the data and the network's geometry)."""
    exp = edm_experiment(preset)
    cfg = _reference_config(plan, preset)
    name = scoring(plan, preset)[0]["reference"]
    if plan.features == "inception":
        from ...assets import fetch
        from ...metrics.fid import load_reference_stats

        return load_reference_stats(fetch(name), "legacy_tensorflow")
    path = Path(root) / "table1" / f"{plan.profile}-{plan.features}" / preset / name
    if not path.exists():
        mu, sigma, n = reference_stats(exp.dataset(cfg).path, "clean", extractor=extractor, progress=False)
        save_reference_stats(path, mu, sigma, "clean", n)
    with np.load(path) as z:
        return z["mu"], z["sigma"]


def run_table1(plan: Table1Plan, root: str | Path, progress: bool = True) -> list[dict[str, Any]]:
    """Every stage of every cell, skipping what is complete under the cell's key; returns the FID rows."""
    root = Path(root)
    device = resolve_device(plan.device)
    extractor, refs = None, {}
    for cell in cells(plan):
        if read_fid(plan, cell, root) is not None:
            continue
        folder = cell_dir(plan, cell, root)
        cfg = cell_config(plan, cell)
        if cfg is not None:
            run(edm_experiment(cell.preset), cfg, root)  # stage 1 (cached when done)
        seeds = set_seeds(plan, cell)
        t0 = time.perf_counter()  # stage 2
        written = generate_to_folder(_network(plan, cell, root), folder / "images", seeds,
                                     SamplerSettings(num_steps=_any_config(plan, cell).sample.num_steps),
                                     batch_size=plan.generate_batch, device=device, progress=progress,
                                     source=_network_name(plan, cell, root))
        if written:
            write_json(folder / "generate.json", {"images": len(written), "device": str(device),
                                                  "seconds_per_image": (time.perf_counter() - t0) / len(written)})
        extractor = extractor or _extractor(plan, device)  # stage 3
        if cell.preset not in refs:
            refs[cell.preset] = reference(plan, cell.preset, root, extractor)
        t0 = time.perf_counter()
        summary = fid_seed_sets(folder / "images", tuple(refs[cell.preset]), num=plan.images_per_set, sets=1,
                                first_seed=seeds[0], mode=scoring(plan, cell.preset)[0]["mode"],
                                extractor=extractor, device=device, progress=False)
        write_json(folder / "fid.json", {
            "fid": summary.values[0], "seeds": [seeds[0], seeds[-1]], "profile": plan.profile,
            "features": plan.features, "seconds_per_image": (time.perf_counter() - t0) / plan.images_per_set,
            "cell": cell.__dict__, "key": cell_key(plan, cell), "weights": scoring(plan, cell.preset)[1]})
    return fid_rows(plan, root)


def fid_rows(plan: Table1Plan, root: str | Path) -> list[dict[str, Any]]:
    """One row per cell finished under this plan's key: preset, family, variant, weighting, seed index, FID,
    profile, features (results made with another profile, extractor, image count, ... are not listed)."""
    rows = []
    for cell in cells(plan):
        record = read_fid(plan, cell, root)
        if record is not None:
            rows.append({**cell.__dict__, **{k: record[k] for k in ("fid", "seeds", "profile", "features")}})
    return rows


def image_differences(plan: Table1Plan, root: str | Path, against: str = BASELINE, limit: int = 256
                      ) -> list[dict[str, Any]]:
    """How each finished cell's 8-bit images differ from those of the ``against`` cell of the same checkpoint and
    generation set (the same seeds, so the same latents; the set's first ``limit`` images): values compared,
    values that differ, the largest difference; where every value coincides, also the largest float difference
    of the set's first image (sampled again from both networks): the models differ by less than one 8-bit level
    there."""
    root, out = Path(root), []
    device = resolve_device(plan.device)
    todo = [c for c in cells(plan) if c.variant != against and read_fid(plan, c, root) is not None]
    for cell in todo:
        ref = dataclasses.replace(cell, variant=against, weighting=None)
        if read_fid(plan, ref, root) is None:
            continue
        seeds = set_seeds(plan, cell)[:limit]
        a, b = (read_seed_images(cell_dir(plan, c, root) / "images", seeds).int() for c in (cell, ref))
        diff = (a - b).abs()  # (N, C, H, W) in 0..255
        row = {**cell.__dict__, "against": against, "values": diff.numel(), "values_differing": int((diff > 0).sum()),
               "max_8bit_diff": int(diff.max()), "max_float_diff": None}
        if row["values_differing"] == 0:
            settings = SamplerSettings(num_steps=_any_config(plan, cell).sample.num_steps)
            x, y = (sample_images(_network(plan, c, root).to(device), seeds[:1], settings, device=device)
                    for c in (cell, ref))
            row["max_float_diff"] = float((x - y).abs().max())  # in [-1, 1] units; one 8-bit level = 2/255
        out.append(row)
    return out

def _fid_values(rows: list[dict[str, Any]]) -> dict[tuple, dict[int, dict[str, float]]]:
    """FID rows -> :func:`..core.compare.compare`'s input: (preset, family, variant, weighting) -> seed index -> fid."""
    values: dict[tuple, dict[int, dict[str, float]]] = {}
    for r in rows:
        values.setdefault((r["preset"], r["family"], r["variant"], r["weighting"]), {})[r["seed_index"]] = \
            {"fid": r["fid"]}
    return values


def _against(name: str) -> Any:
    """The reference row of a cell: the ``name`` cell (pretrained or baseline) of the same checkpoint."""
    return lambda key: (key[0], key[1], name, None)


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def paired_differences(rows: list[dict[str, Any]], against: str = BASELINE, alpha: float = 0.05
                       ) -> list[dict[str, Any]]:
    """For each (preset, family, variant, weighting): FID(variant) - FID(``against``) per seed index (paired: same
    training seed and generation set), their mean, standard error (ddof 1), a paired t-test (scipy.stats.ttest_rel:
    t, p_value, dof), whether the difference is distinguishable from zero at ``alpha`` and the direction word of
    :func:`..core.compare.direction` (FID: lower is better); se, t, p_value and dof are None where undefined (one
    seed; identical differences), seeds without a partner are listed in ``unpaired``."""
    long = compare(_fid_values(rows), ["fid"], FID_GLOSSARY["inception"], reference=_against(against), alpha=alpha)
    out = []
    for r in sorted(long.to_dict("records"), key=lambda r: str(r["row"])):
        preset, family, variant, weighting = r["row"]
        if variant in (PRETRAINED, BASELINE) and variant == against:
            continue
        p = _finite(r["p"])  # undefined: one seed, or identical differences
        out.append({"preset": preset, "family": family, "variant": variant, "weighting": weighting, "against": against,
                    "n": r["pairs"], "mean_diff": r["diff"], "se": _finite(r["diff_se"]), "p_value": p,
                    "distinguishable": p is not None and p < alpha, "t": _finite(r["t"]),
                    "dof": None if r["dof"] != r["dof"] else int(r["dof"]), "direction": r["direction"],
                    "unpaired": list(r["unpaired"])})
    return out


def _paper(weighted: tuple[float, ...], unweighted: tuple[float, ...], stds_w: tuple[float, ...],
           stds_u: tuple[float, ...]) -> dict[tuple[str, str], tuple[float, float]]:
    out = {}
    for k, v in enumerate(("amp", "amp_phase", "haar", "bior1.3")):
        out[(v, "weighted")] = (weighted[k], stds_w[k])
        out[(v, "unweighted")] = (unweighted[k], stds_u[k])
    return out


# The paper's Table 1 (FID-50k, mean +- std over 3 seeds), transcribed from paper.md: (preset, family) ->
# {(variant, weighting): (mean, std)} and the "EDM FID" column under ("pretrained", None).
PAPER_TABLE1: dict[tuple[str, str], dict[tuple[str, str | None], tuple[float, float]]] = {
    ("cifar10-32", "ve"): {**_paper((1.82, 1.82, 1.81, 1.82), (1.82, 1.82, 1.81, 1.81), (.01, .01, .01, .01),
                                    (.01, .01, .02, .02)), (PRETRAINED, None): (1.81, 0.01)},
    ("cifar10-32", "vp"): {**_paper((1.84, 1.84, 1.84, 1.83), (1.84, 1.84, 1.84, 1.84), (.02, .02, .02, .02),
                                    (.02, .02, .02, .02)), (PRETRAINED, None): (1.84, 0.02)},
    ("afhqv2-64", "ve"): {**_paper((2.13, 2.13, 2.14, 2.14), (2.14, 2.16, 2.14, 2.14), (.00, .01, .01, .01),
                                   (.00, .01, .00, .01)), (PRETRAINED, None): (2.17, 0.00)},
    ("afhqv2-64", "vp"): {**_paper((2.03, 2.04, 2.05, 2.07), (2.05, 2.03, 2.03, 2.05), (.02, .02, .02, .02),
                                   (.02, .02, .03, .02)), (PRETRAINED, None): (2.04, 0.00)},
    ("ffhq-64", "ve"): {**_paper((2.50, 2.49, 2.50, 2.51), (2.51, 2.50, 2.49, 2.50), (.02, .02, .02, .02),
                                 (.02, .02, .02, .02)), (PRETRAINED, None): (2.56, 0.03)},
    ("ffhq-64", "vp"): {**_paper((2.35, 2.33, 2.33, 2.34), (2.31, 2.34, 2.33, 2.32), (.03, .03, .04, .04),
                                 (.03, .03, .04, .04)), (PRETRAINED, None): (2.38, 0.01)},
}


def table1_frame(rows: list[dict[str, Any]]) -> Any:
    """Table 1's layout: one row per (preset, family, variant, weighting) with our FID mean +- std over seeds
    (ddof 1), the paper's, and the paired difference to the baseline fine-tune (mean +- SE, p, distinguishable,
    direction, pairs and a note where a statistic is undefined)."""
    import pandas as pd

    long = compare(_fid_values(rows), ["fid"], FID_GLOSSARY["inception"], reference=_against(BASELINE))
    out = []
    for r in long.to_dict("records"):
        key = r["row"]
        paper = PAPER_TABLE1.get(key[:2], {}).get(key[2:], (math.nan, math.nan))
        out.append({"preset": key[0], "family": key[1], "variant": key[2], "weighting": key[3] or "-",
                    "seeds": r["n"], "fid_mean": r["mean"], "fid_std": r["std"], "paper_mean": paper[0],
                    "paper_std": paper[1], "diff_vs_baseline": r["diff"], "diff_se": r["diff_se"], "p_value": r["p"],
                    "distinguishable": bool(r["p"] < 0.05), "direction": r["direction"], "pairs": r["pairs"],
                    "note": r["note"]})
    return pd.DataFrame(out)


def table1_headline(frame: Any, features: str) -> tuple[dict[str, float], dict[str, dict[str, str]]]:
    """(headline, glossary) for metrics.json: ``<preset>_<family>_<variant>[_<weighting>]_fid`` = the mean over
    seeds of a :func:`table1_frame` row, explained for the ``features`` used ("inception" | "standin")."""
    labels = [f"{p}_{a}_{v}" + ("" if w == "-" else f"_{w}")
              for p, a, v, w in zip(frame["preset"], frame["family"], frame["variant"], frame["weighting"],
                                    strict=True)]
    return headline_from_table(frame, labels, ["fid"], FID_GLOSSARY[features])


def table1_plan(profile: str, presets: Sequence[str] | None = None, families: Sequence[str] | None = None,
                variants: Sequence[str] | None = None, weightings: Sequence[str] | None = None,
                seeds: Sequence[int] | None = None, images_per_set: int | None = None) -> Table1Plan:
    """The plan a notebook or script runs: the whole Table 1 in ``paper`` (FID-50k with Inception), a
    2-seed, one-cell pipeline in ``smoke`` (stand-in features, 3 images per set, 4-step fine-tunes without the
    LR ramp-up, which would hold a short fine-tune near lr 0 and leave every variant equal to the checkpoint)."""
    if profile == "smoke":
        base = Table1Plan(profile="smoke", families=("vp",), variants=("amp",), weightings=("unweighted",),
                          seeds=(1, 2), images_per_set=3, features="standin", generate_batch=3, device="cpu",
                          overrides=(("train.steps", 4), ("train.lr_rampup_kimg", 0.0), ("sample.n_samples", 2),
                                     ("sample.num_steps", 2), ("evaluate.n_reference", 8)))
    else:
        base = Table1Plan(profile=profile, presets=("cifar10-32", "afhqv2-64", "ffhq-64"))
    given = {"presets": presets, "families": families, "variants": variants, "weightings": weightings, "seeds": seeds}
    kw = {k: tuple(v) for k, v in given.items() if v is not None}
    if images_per_set is not None:
        kw["images_per_set"] = images_per_set
    return dataclasses.replace(base, **kw)


def table1_figure(frame: Any) -> Any:
    """One panel per (preset, family): our paired difference to the baseline fine-tune (+- SE over seeds) per
    regularizer and weighting, beside the paper's difference to its EDM column (no pairing or SE given)."""
    import matplotlib.pyplot as plt

    blocks = list(dict.fromkeys(zip(frame["preset"], frame["family"], strict=True)))
    fig, axes = plt.subplots(1, len(blocks), figsize=(4.2 * len(blocks), 3.2), squeeze=False)
    for ax, (preset, family) in zip(axes[0], blocks, strict=True):
        sub = frame[(frame["preset"] == preset) & (frame["family"] == family) & ~frame["variant"].isin([BASELINE,
                                                                                                    PRETRAINED])]
        x = np.arange(len(sub))
        ax.errorbar(x - 0.1, sub["diff_vs_baseline"], yerr=sub["diff_se"], fmt="o", label="ours: paired diff +- SE")
        edm = PAPER_TABLE1.get((preset, family), {}).get((PRETRAINED, None), (math.nan, math.nan))[0]
        ax.plot(x + 0.1, sub["paper_mean"] - edm, "s", label="paper: FID - EDM FID")
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xticks(x, [f"{v}\n{w}" for v, w in zip(sub["variant"], sub["weighting"], strict=True)], fontsize=7)
        ax.set_title(f"{preset} {family.upper()}-EDM", fontsize=9)
        ax.set_ylabel("FID difference (lower = better)", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig
