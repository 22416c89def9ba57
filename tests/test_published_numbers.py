"""Numbers the README and docs publish are the numbers in the committed files they come from.

Two kinds of trace:

* a claim: a fragment of a document with ``{}`` where numbers stand, and for each number the committed file and
  key it comes from (a ``metrics.json`` of ``figures/cpu/`` or a run's ``config.json``). The fragment must be in the
  document, and each number must equal the file's value to the precision the document prints (half a unit of its
  last digit), so a stale or mistyped number fails;
* a copied table: ``<!-- from benchmarks/results/NAME.txt -->`` (or ``... NAME.txt table 1 -->``, the file's second
  table) before a markdown table in a document; every row of that table must be a line of the committed benchmark
  output, which carries its date, machine and load.

Add a claim here when a document quotes a new number from a committed file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOY = "figures/cpu/02_checkerboard_toy/metrics.json"
SPECTRA = "figures/cpu/03_power_spectra/metrics.json"
SPECTRA_CONFIG = "figures/cpu/03_power_spectra/config.json"
TOY_CONFIG = "figures/cpu/02_checkerboard_toy/config.json"
PHASE_EPS = "benchmarks/results/bench_phase_eps.txt"
CHECKPOINT = "benchmarks/results/bench_edm_checkpoint.txt"
TERMS = "benchmarks/results/bench_edm_finetune_terms.txt"
SPEED = "benchmarks/results/bench_spectral.txt"
GRAD_RATIO = 7  # the grad-ratio column of the terms table
PCT = 100.0  # the document prints the file's fraction as a percentage

# a number as the documents print it: 0.702, 97.4, -2.46, 2000, 61,805,571, 1.2e6
NUMBER = r"(-?\d+(?:,\d{3})*(?:\.\d+)?(?:e[-+]?\d+)?)"


def _value(file: str, path: tuple, scale: float = 1.0) -> float:
    """The number at ``path`` in ``file``: keys into a JSON file, or (row label, column) of a benchmark's table."""
    if file.endswith(".txt"):
        label, column = path
        rows = [[c.strip() for c in line.strip("|").split("|")] for line in (ROOT / file).read_text().splitlines()
                if line.startswith(f"| {label} |")]
        assert len(rows) == 1, f"{file}: {len(rows)} rows labelled {label!r}"
        cell = re.match(r"-?[\d,]+(?:\.\d+)?(?:e[-+]?\d+)?", rows[0][column])  # "0.35x (0.32-0.41)" -> 0.35
        assert cell, f"{file}: {label!r} column {column} is {rows[0][column]!r}, not a number"
        return float(cell.group().replace(",", "")) * scale
    node = json.loads((ROOT / file).read_text())
    if path[0] == "__screen__":  # (variant, weighting, strength, metric) of a choice record's screen
        _, variant, weighting, strength, metric = path
        rows = [r for r in node["screen"] if (r["variant"], r["weighting"], r["strength"]) == (variant, weighting,
                                                                                             strength)]
        assert len(rows) == 1, f"{file}: {len(rows)} screen rows for {variant} / {weighting} at {strength}"
        return float(rows[0][metric]) * scale
    if path[0] == "__ab__":  # (stand-in, variant, metric, field) of notebook 10's table records
        _, dataset, variant, metric, field = path
        rows = [r for r in node["tables"][dataset] if r["variant"] == variant and r["metric"] == metric]
        assert len(rows) == 1, f"{file}: {len(rows)} {dataset} rows for {variant} / {metric}"
        return float(rows[0][field]) * scale
    if path[0] == "__bands__":  # (stand-in, variant, band) of notebook 10's band_ratios records
        _, dataset, variant, band = path
        rows = [r for r in node["band_ratios"][dataset] if r["variant"] == variant]
        assert len(rows) == 1, f"{file}: {len(rows)} {dataset} band rows for {variant}"
        return float(rows[0][band]) * scale
    if path[0] == "__abl__":  # (row, against, metric, field) of notebook 10's ablation records
        _, name, against, metric, field = path
        rows = [r for r in node["ablation"] if (r["row"], r["against"], r["metric"]) == (name, against, metric)]
        assert len(rows) == 1, f"{file}: {len(rows)} ablation rows for {name} / {against} / {metric}"
        return float(rows[0][field]) * scale
    if path[0] == "__tscreen__":  # (variant, lambda, metric) of the toy front's choice record's screen
        _, variant, lam, metric = path
        rows = [r for r in node["screen"] if (r["variant"], r["lambda"]) == (variant, lam)]
        assert len(rows) == 1, f"{file}: {len(rows)} screen rows for {variant} at lambda {lam}"
        return float(rows[0][metric]) * scale
    if path[0] == "__guard__":  # the toy rule's valid_fraction limit: its record's baseline minus its floor
        return (node["baseline"]["valid_fraction"] - node["valid_floor"]) * scale
    if path[0] in ("__front__", "__front5__"):  # (variant, metric, field) of notebook 12's registered / all-seed table
        _, variant, metric, field = path
        table = node["toy_front" if path[0] == "__front__" else "toy_front_extension"]
        rows = [r for r in table if (r["variant"], r["metric"]) == (variant, metric)]
        assert len(rows) == 1, f"{file}: {len(rows)} toy-front rows for {variant} / {metric}"
        return float(rows[0][field]) * scale
    if path[0] == "__audio__":  # (variant, schedule, metric, field) of notebook 11's table records
        _, variant, schedule, metric, field = path
        rows = [r for r in node["table"] if (r["variant"], r["schedule"], r["metric"]) == (variant, schedule, metric)]
        assert len(rows) == 1, f"{file}: {len(rows)} rows for {variant} / {schedule} / {metric}"
        return float(rows[0][field]) * scale
    if path[0] == "__aseed__":  # (variant, schedule, seed, metric) of notebook 11's per-seed records
        _, variant, schedule, seed, metric = path
        rows = [r for r in node["per_seed"]
                if (r["variant"], r["schedule"], r["seed"], r["metric"]) == (variant, schedule, seed, metric)]
        assert len(rows) == 1, f"{file}: {len(rows)} per-seed rows for {variant} / {schedule} / {seed} / {metric}"
        return float(rows[0]["value"]) * scale
    if path[0] == "__ainfluence__":  # (schedule, metric, seed, how): notebook 11's per-seed records, recomputed here
        return _audio_influence(node["per_seed"], *path[1:]) * scale
    if path[0] == "__ascreen__":  # (variant, bins, lambda, metric) of the audio rule's record's screen
        _, variant, bins, lam, metric = path
        rows = [r for r in node["screen"] if (r["variant"], r["bins"], r["lambda"]) == (variant, bins, lam)]
        assert len(rows) == 1, f"{file}: {len(rows)} screen rows for {variant} / {bins} at lambda {lam}"
        return float(rows[0][metric]) * scale
    if path[0] == "__tests__":  # notebook 11's paired tests (finite p) times alpha: the chance passes (1.0: the count)
        return sum(r["p"] is not None and r["p"] == r["p"] for r in node["table"]) * path[1] * scale
    if path[0] == "__ratio__":  # amp's calibrated term at lambda path[1], in % of the eps loss
        return node["spectral_mean"]["amp"] * path[1] / node["diffusion_mean"] * PCT
    for key in path:
        node = node[key]
    return float(node) * scale


def _audio_influence(records: list[dict], schedule: str, metric: str, seed: int, how: str) -> float:
    """The paired difference to the baseline averaged over every variant, per seed then over seeds: over all seeds
    ("all"), over ``seed`` alone ("only") or over every seed but ``seed`` ("without"); from the per-seed records,
    by plain arithmetic (an oracle for figures.seed_influence's pandas)."""
    values = {(r["variant"], r["seed"]): r["value"] for r in records
              if r["schedule"] == schedule and r["metric"] == metric}
    seeds = sorted({s for _, s in values})
    variants = sorted({v for v, _ in values} - {"baseline"})
    per_seed = {s: sum(values[v, s] - values["baseline", s] for v in variants) / len(variants) for s in seeds}
    pick = {"all": seeds, "only": [seed], "without": [s for s in seeds if s != seed]}[how]
    return sum(per_seed[s] for s in pick) / len(pick)


def _phase_eps_row(eps: str) -> list[tuple]:
    """A row of docs/spectral.md's phase_eps table: distances (white noise, image-like) in %, worst grad ratio."""
    return [(PHASE_EPS, (eps, 1), PCT), (PHASE_EPS, (eps, 4), PCT), (PHASE_EPS, (eps, 3))]


def _toy_run(name: str, seed: int) -> list[tuple]:
    """A per-seed row of docs/toy.md: valid %, binariness, peak energy, in band %, log distance, s/step."""
    run = ("runs", f"{name}_seed{seed}")
    return [(TOY, (*run, "valid_fraction"), PCT), (TOY, (*run, "binariness")), (TOY, (*run, "peak_energy_ratio")),
            (TOY, (*run, "in_band_fraction"), PCT), (TOY, (*run, "log_distance")),
            (TOY, (*run, "seconds_per_step"))]


def _toy_mean(name: str) -> list[tuple]:
    s = ("summary", name)
    return [(TOY, (*s, "valid_fraction", "mean"), PCT), (TOY, (*s, "binariness", "mean")),
            (TOY, (*s, "peak_energy_ratio", "mean")), (TOY, (*s, "in_band_fraction", "mean"), PCT),
            (TOY, (*s, "log_distance", "mean")), (TOY, (*s, "seconds_per_step", "mean"))]


def _spectra_row(name: str) -> list[tuple]:
    """A row of docs/toy.md's power-spectra table: log distance, / baseline, power above 0.25 vs data, slope."""
    sources = [(SPECTRA, ("headline", f"{name}_log_distance"))]
    if name != "baseline":
        sources.append((SPECTRA, ("headline", f"{name}_over_baseline_log_distance")))
    return sources + [(SPECTRA, ("headline", f"{name}_hf_energy_ratio")), (SPECTRA, ("power_law", name, "slope"))]


AB_IMAGES = "data/pretrained/ab_images/cpu"  # the image study's committed records (docs/ab_images.md, Results)
CALIBRATION = f"{AB_IMAGES}/calibration-photos.json"
PRETRAIN = f"{AB_IMAGES}/pretrain-photos-metrics.json"
FLOORS = f"{AB_IMAGES}/floors-photos.json"
DL_CALIBRATION = f"{AB_IMAGES}/calibration-dead_leaves.json"
DL_PRETRAIN = f"{AB_IMAGES}/pretrain-dead_leaves-metrics.json"
DL_FLOORS = f"{AB_IMAGES}/floors-dead_leaves.json"
IMAGE_METRICS = ("log_distance", "feature_distance", "hf_ratio", "laplacian_ratio", "copy_share")


def _calibration_row(variant: str) -> list[tuple]:
    """A row of docs/ab_images.md's calibration table, per stand-in: r, then lambda at rho 0.01 / 0.1 / 1."""
    rhos = ("0.01", "0.1", "1.0")
    return [source for record in (CALIBRATION, DL_CALIBRATION) for source in
            [(record, ("grad_ratio", variant)), *[(record, ("lambdas", variant, rho)) for rho in rhos]]]


AB_AUDIO = "data/pretrained/ab_audio/cpu"  # the audio study's committed records (docs/ab_audio.md, Results)
AUDIO_PRETRAIN = f"{AB_AUDIO}/pretrain-metrics.json"
AUDIO_CALIBRATION = f"{AB_AUDIO}/calibration.json"


CHOICE = f"{AB_IMAGES}/choice-photos.json"  # the rule's record of the photos screen
DL_CHOICE = f"{AB_IMAGES}/choice-dead_leaves.json"  # the rule's record of the dead-leaves screen
AB_IMAGES_FIG = "figures/cpu/10_ab_images/metrics.json"  # notebook 10's cpu tables (docs/ab_images.md, Results)
TOY_FRONT_FIG = "figures/cpu/12_toy_front/metrics.json"  # notebook 12's cpu table (docs/ab_images.md, Toy front)
TOY_FRONT_CHOICE = "data/pretrained/toy_front/cpu/choice.json"
TOY_STRONG_CHOICE = "data/pretrained/toy_front/cpu_strong/choice.json"  # the follow-up above rho 1
TOY_STRONG_ROWS = (("baseline", "", None), ("amp", "1", 5.8), ("amp", "3", 17.0), ("amp", "10", 58.0),
                   ("amp_phase", "1", 5.3), ("amp_phase", "3", 16.0), ("amp_phase", "10", 53.0))
AUDIO_CHOICE = "data/pretrained/ab_audio/cpu/choice.json"  # the audio rule's record
AB_IMAGES_COLUMNS = ("log_distance", "train_log_distance", "feature_distance", "laplacian_error")
AB_IMAGES_SECTIONS = {"photos": "### Photos", "dead_leaves": "### Dead leaves"}  # each stand-in's Results section


def _ab_images_rows(dataset: str) -> list[tuple[str, str, list[tuple]]]:
    """docs/ab_images.md's result table of ``dataset``: one claim per variant (the baseline's means; each other
    variant's rho, lambda and per column "paired difference ± SE (p P)", ``*`` where core.compare.detected), and the
    noise floors' row, all from notebook 10's committed cpu metrics."""
    from specreg_lib.experiments.core.compare import detected

    path = ROOT / AB_IMAGES_FIG
    if not path.is_file():
        return []
    doc = f"docs/ab_images.md#{AB_IMAGES_SECTIONS[dataset]}"
    records = json.loads(path.read_text())["tables"].get(dataset, [])
    claims = []
    for variant in dict.fromkeys(r["variant"] for r in records):
        rec = {r["metric"]: r for r in records if r["variant"] == variant}
        src = [(AB_IMAGES_FIG, ("__ab__", dataset, variant, m, f)) for m in AB_IMAGES_COLUMNS
               for f in (("mean",) if variant == "baseline" else ("diff", "diff_se", "p"))]
        if variant == "baseline":
            cells = " | ".join("{}" for _ in AB_IMAGES_COLUMNS)
            claims.append((doc, f"| baseline | | | {cells} |", src))
            floors = [(AB_IMAGES_FIG, ("__ab__", dataset, variant, m, "floor")) for m in AB_IMAGES_COLUMNS]
            claims.append((doc, f"| noise floor | | | {cells} |", floors))
            continue
        cells = " | ".join("{} ± {} (p {})" + ("*" if detected(rec[m]) else "") for m in AB_IMAGES_COLUMNS)
        head = [(AB_IMAGES_FIG, ("__ab__", dataset, variant, "log_distance", f)) for f in ("strength", "lambda")]
        claims.append((doc, f"| {variant.replace('/', ' / ')} | {{}} | {{}} | {cells} |", head + src))
    return claims


ABLATION_COLUMNS = (("variant", "log_distance"), ("variant", "laplacian_error"), ("variant", "feature_distance"),
                    ("reference", "log_distance"), ("reference", "laplacian_error"))


def _ablation_rows() -> list[tuple[str, str, list[tuple]]]:
    """docs/ab_images.md's ablation table: per row its lambda and seeds, and per column "paired difference ± SE
    (p P)" against the variant at its chosen setting or against its reference baseline, ``*`` where
    core.compare.detected, all from notebook 10's committed cpu metrics."""
    from specreg_lib.experiments.core.compare import detected

    path = ROOT / AB_IMAGES_FIG
    if not path.is_file():
        return []
    records = json.loads(path.read_text()).get("ablation") or []
    claims = []
    for name in dict.fromkeys(r["row"] for r in records):
        rec = {(r["against"], r["metric"]): r for r in records if r["row"] == name}
        if any(col not in rec for col in ABLATION_COLUMNS):
            continue  # a row without a paired difference yet is not in the document
        cells = " | ".join("{} ± {} (p {})" + ("*" if detected(rec[col]) else "") for col in ABLATION_COLUMNS)
        src = [(AB_IMAGES_FIG, ("__abl__", name, "variant", "log_distance", f)) for f in ("lambda", "seeds")]
        src += [(AB_IMAGES_FIG, ("__abl__", name, *col, f)) for col in ABLATION_COLUMNS
                for f in ("diff", "diff_se", "p")]
        claims.append(("docs/ab_images.md#### Ablation", f"| {name} | {{}} | {{}} | {cells} |", src))
    return claims


FRONT_COLUMNS = ("log_distance", "valid_fraction", "binariness")


def _front_rows(key: str = "toy_front", doc: str = "docs/ab_images.md#### Toy front", seeds: int = 3
                ) -> list[tuple[str, str, list[tuple]]]:
    """docs/ab_images.md's toy-front table (``key``: the registered "toy_front", or "toy_front_extension" over every
    seed, in the section ``doc``): the baseline's means, per kind and peer its rho, lambda and per column "paired
    difference ± SE (p P)" (``*`` where the table's ``effect``), and the floors' row, all from notebook 12's committed
    cpu metrics; nothing while fewer than ``seeds`` seeds are in the table there."""
    path = ROOT / TOY_FRONT_FIG
    if not path.is_file():
        return []
    records = json.loads(path.read_text()).get(key) or []
    if not records or any(r["seeds"] < seeds for r in records):
        return []
    tag = "__front__" if key == "toy_front" else "__front5__"
    claims = []
    for variant in dict.fromkeys(r["variant"] for r in records):
        rec = {r["metric"]: r for r in records if r["variant"] == variant}
        if variant == "baseline":
            cells = " | ".join("{}" for _ in FRONT_COLUMNS)
            claims.append((doc, f"| baseline | | | {cells} |",
                           [(TOY_FRONT_FIG, (tag, variant, m, "mean")) for m in FRONT_COLUMNS]))
            claims.append((doc, "| noise floor | | | {} | {} | none |",
                           [(TOY_FRONT_FIG, (tag, variant, m, "floor")) for m in FRONT_COLUMNS[:2]]))
            continue
        cells = " | ".join("{} ± {} (p {})" + ("*" if rec[m]["effect"] else "") for m in FRONT_COLUMNS)
        src = [(TOY_FRONT_FIG, (tag, variant, "log_distance", f)) for f in ("strength", "lambda")]
        src += [(TOY_FRONT_FIG, (tag, variant, m, f)) for m in FRONT_COLUMNS for f in ("diff", "diff_se", "p")]
        claims.append((doc, f"| {variant} | {{}} | {{}} | {cells} |", src))
    return claims


AB_AUDIO_FIG = "figures/cpu/11_ab_audio/metrics.json"  # notebook 11's cpu tables (docs/ab_audio.md, Results)
AB_AUDIO_COLUMNS = ("mr_stft", "fd_mel", "pesq", "f0_rmse_cents", "vuv_error")


def _audio_rows() -> list[tuple[str, str, list[tuple]]]:
    """docs/ab_audio.md's result tables, one per schedule: the baseline's means, per variant its lambda and per
    column "paired difference ± SE (p P)" (``*`` where core.compare.detected), and the floors' row, all from
    notebook 11's committed cpu metrics; nothing while its evaluation is incomplete there."""
    from specreg_lib.experiments.core.compare import detected

    path = ROOT / AB_AUDIO_FIG
    if not path.is_file():
        return []
    records = json.loads(path.read_text()).get("table") or []
    if not records or any(r["seeds"] < 5 for r in records if r["variant"] == "baseline"):
        return []
    claims = []
    for schedule in ("fast", "full"):
        doc = f"docs/ab_audio.md##### {schedule.capitalize()} schedule"
        part = [r for r in records if r["schedule"] == schedule]
        for variant in dict.fromkeys(r["variant"] for r in part):
            rec = {r["metric"]: r for r in part if r["variant"] == variant}
            key = ("__audio__", variant, schedule)
            if variant == "baseline":
                cells = " | ".join("{}" for _ in AB_AUDIO_COLUMNS)
                claims.append((doc, f"| baseline | | {cells} |",
                               [(AB_AUDIO_FIG, (*key, m, "mean")) for m in AB_AUDIO_COLUMNS]))
                claims.append((doc, f"| noise floor | | {cells} |",
                               [(AB_AUDIO_FIG, (*key, m, "floor")) for m in AB_AUDIO_COLUMNS]))
                continue
            # a cell over fewer seeds (a metric a run could not measure) says how many
            cells = " | ".join("{} ± {} (p {}" + (", {} seeds" if rec[m]["seeds"] < 5 else "") + ")"
                               + ("*" if detected(rec[m]) else "") for m in AB_AUDIO_COLUMNS)
            src = [(AB_AUDIO_FIG, (*key, "mr_stft", "lambda"))]
            src += [(AB_AUDIO_FIG, (*key, m, f)) for m in AB_AUDIO_COLUMNS
                    for f in ("diff", "diff_se", "p", "seeds")[:3 + (rec[m]["seeds"] < 5)]]
            claims.append((doc, f"| {variant} | {{}} | {cells} |", src))
    return claims


def _audio_term_share(lam: float) -> tuple:
    """amp's term at ``lam`` over the eps loss, in %: a number the calibration file gives as a ratio of two keys."""
    return (AUDIO_CALIBRATION, ("__ratio__", lam))


HEADLINE = (TOY, ("headline", "amp_phase_over_baseline_log_distance"))
PER_SEED_RATIO = [(TOY, ("summary", "amp_phase", "per_seed_ratio", i)) for i in range(3)]
VALID_AP = (TOY, ("headline", "amp_phase_valid_fraction"), PCT)
VALID_BASE = (TOY, ("headline", "baseline_valid_fraction"), PCT)
SPECTRA_STEPS = (SPECTRA_CONFIG, ("config", "train", "steps"))
TOY_STEPS = (TOY_CONFIG, ("config", "train", "steps"))

# (document, fragment with {} per number, the number's sources in order)
CLAIMS: list[tuple[str, str, list[tuple]]] = [
    # docs/ab_audio.md: the pretrained net and the size of the paper's lambdas at it
    ("docs/ab_audio.md", "(8,000 steps, {} s/step on one core) on the 6 held-out clips, fast schedule: MR-STFT\n{}, "
                         "PESQ {} (Gaussian noise scores 1.02), NDB/K {}, fd_mel {}, F0 RMSE {} cents, V/UV error {}.",
     [(AUDIO_PRETRAIN, (k,)) for k in ("seconds_per_step", "mr_stft", "pesq", "ndb", "fd_mel", "f0_rmse_cents",
                                      "vuv_error")]),
    ("docs/ab_audio.md", "eps loss is {} and amp's L_S under `bins=\"sum\"` at lambda 1 is {}: lambda = 1e-4, 1e-5, "
                         "1e-6 make amp's term\nabout {}%, {}% and {}% of the eps loss",
     [(AUDIO_CALIBRATION, ("diffusion_mean",)), (AUDIO_CALIBRATION, ("spectral_mean", "amp")),
      _audio_term_share(1e-4), _audio_term_share(1e-5), _audio_term_share(1e-6)]),
    # docs/ab_images.md: the calibration at the pretrained photos net and that net against the floors
    *[("docs/ab_images.md", f"| {v.replace('/', ' / ')} | {{}} | {{}} / {{}} / {{}} | {{}} | {{}} / {{}} / {{}} |",
       _calibration_row(v))
      for v in ("amp/weighted", "amp/unweighted", "amp_phase/weighted", "amp_phase/unweighted", "haar/weighted",
                "haar/unweighted", "bior1.3/weighted", "bior1.3/unweighted", "pixel_l1/weighted",
                "dct_multiscale/weighted", "focal_freq/weighted", "facl/weighted")],
    *[claim for name, pre, floors in (("photos", PRETRAIN, FLOORS), ("dead leaves", DL_PRETRAIN, DL_FLOORS))
      for claim in [
        ("docs/ab_images.md", f"| {name} | pretrained net (EMA) | {{}} | {{}} | {{}} | {{}} | {{}} |",
         [(pre, (m,)) for m in IMAGE_METRICS]),
        ("docs/ab_images.md", f"| {name} | held-out data (floor) | {{}} | {{}} | {{}} | {{}} | {{}} |",
         [(floors, ("floors", "held_out", m)) for m in IMAGE_METRICS]),
        ("docs/ab_images.md", f"| {name} | training-source data (`train_data`) | {{}} | {{}} | {{}} | {{}} | {{}} |",
         [(floors, ("floors", "train_data", m)) for m in IMAGE_METRICS])]],
    ("docs/ab_images.md", "(5,000 steps each; photos {} s/step, dead leaves {} s/step on one core)",
     [(PRETRAIN, ("seconds_per_step",)), (DL_PRETRAIN, ("seconds_per_step",))]),
    *_ab_images_rows("photos"),
    *_ab_images_rows("dead_leaves"),
    *_ablation_rows(),
    *_front_rows(),
    *_front_rows("toy_front_extension", "docs/ab_images.md##### Extension: seeds 4 and 5", 5),
    *[("docs/ab_images.md##### Above ρ 1",
       f"| {v} | {rho} | {'' if lam is None else f'{lam:g}'} | {{}} | {{}} | {{}} | "
       + ("{} / {} |" if rho in ("", "1") else "|"),
       [(TOY_STRONG_CHOICE, ("__tscreen__", v, lam, m)) for m in ("log_distance", "valid_fraction", "binariness")]
       + ([(TOY_FRONT_CHOICE, ("__tscreen__", v, lam, m)) for m in ("log_distance", "valid_fraction")]
          if rho in ("", "1") else [])) for v, rho, lam in TOY_STRONG_ROWS],
    ("docs/ab_images.md##### Above ρ 1", "valid_fraction at least {} (the re-run baseline's {} minus its floor {})",
     [(TOY_STRONG_CHOICE, ("__guard__",)), (TOY_STRONG_CHOICE, ("baseline", "valid_fraction")),
      (TOY_STRONG_CHOICE, ("valid_floor",))]),
    *_audio_rows(),
    ("docs/ab_audio.md#### Complete", "NDB/K is not in the table: no variant's mean moved\nby more than one of its K = "
                                      "10 bins (baseline {} fast, {} full; floor {}).",
     [(AB_AUDIO_FIG, ("__audio__", "baseline", s, "ndb", "mean")) for s in ("fast", "full")]
     + [(AB_AUDIO_FIG, ("__audio__", "baseline", "fast", "ndb", "floor"))]),
    ("docs/ab_audio.md#### Complete", "amp's V/UV error on the fast schedule, worse by {} ± {} (p {}). About {} of\n  "
                                      "{} tests (with NDB) pass by chance alone, the same variant on the full "
                                      "schedule moves the other way ({},\n  p {})",
     [(AB_AUDIO_FIG, ("__audio__", "amp", "fast", "vuv_error", f)) for f in ("diff", "diff_se", "p")]
     + [(AB_AUDIO_FIG, ("__tests__", 0.05)), (AB_AUDIO_FIG, ("__tests__", 1.0))]
     + [(AB_AUDIO_FIG, ("__audio__", "amp", "full", "vuv_error", f)) for f in ("diff", "p")]),
    ("docs/ab_audio.md#### Complete", "except amp_phase's MR-STFT ({} fast, {} full, floor {}, p {} both)",
     [(AB_AUDIO_FIG, ("__audio__", "amp_phase", s, "mr_stft", "diff")) for s in ("fast", "full")]
     + [(AB_AUDIO_FIG, ("__audio__", "amp_phase", "fast", "mr_stft", f)) for f in ("floor", "p")]),
    ("docs/ab_audio.md#### Complete", "the baseline fine-tune of training seed 1 ended at MR-STFT {} (fast\n  schedule)"
                                      " against {}-{} for seeds 2-5, and every variant of seed 1 ended below it "
                                      "(amp_phase lowest, {}).",
     [(AB_AUDIO_FIG, ("__aseed__", "baseline", "fast", 1, "mr_stft")),
      (AB_AUDIO_FIG, ("__aseed__", "baseline", "fast", 4, "mr_stft")),
      (AB_AUDIO_FIG, ("__aseed__", "baseline", "fast", 2, "mr_stft")),
      (AB_AUDIO_FIG, ("__aseed__", "amp_phase", "fast", 1, "mr_stft"))]),
    ("docs/ab_audio.md#### Complete", "Averaged over the six variants the paired difference is {}; over seed 1's pairs "
                                      "alone it is {}, and\n  without seed 1 it is {}, a fifth of the floor.",
     [(AB_AUDIO_FIG, ("__ainfluence__", "fast", "mr_stft", 1, how)) for how in ("all", "only", "without")]),
    ("docs/ab_audio.md#### Complete", "(amp {} against {}, amp_phase {} against {}); for the wavelet kinds",
     [(AUDIO_CHOICE, ("__ascreen__", v, b, lam, "mr_stft")) for v, lams in
      (("amp", (0.041, 1e-5)), ("amp_phase", (0.041, 1e-5))) for b, lam in zip(("mean", "sum"), lams)]),
    ("docs/ab_audio.md#### Complete", "(haar {} against {},\n  bior1.3 {} against {}; one seed)",
     [(AUDIO_CHOICE, ("__ascreen__", v, b, lam, "mr_stft")) for v, lams in
      (("haar", (0.00681, 1e-5)), ("bior1.3", (0.0068, 1e-5))) for b, lam in zip(("mean", "sum"), lams)]),
    ("docs/ab_audio.md", "every kind\nat λ = {} (amp, amp_phase, haar, bior1.3), mrstft at {}, logmel_l1 at {}; "
                         "no guard failed (the fd_mel\nfloor, {}, is wide",
     [(AUDIO_CHOICE, ("chosen", "amp", "lambda")), (AUDIO_CHOICE, ("chosen", "mrstft", "lambda")),
      (AUDIO_CHOICE, ("chosen", "logmel_l1", "lambda")), (AUDIO_CHOICE, ("fd_mel_floor",))]),
    ("docs/ab_images.md#### Toy front", "guard (seed 0: {} valid against the baseline's {}).",
     [(TOY_FRONT_CHOICE, ("__tscreen__", "amp", 5.8, "valid_fraction")),
      (TOY_FRONT_CHOICE, ("baseline", "valid_fraction"))]),
    ("docs/ab_images.md#### Toy front", "at ρ 1 the seed-0 valid fraction fell to {} for haar\n  and {} for bior1.3",
     [(TOY_FRONT_CHOICE, ("__tscreen__", "haar", 0.45, "valid_fraction")),
      (TOY_FRONT_CHOICE, ("__tscreen__", "bior1.3", 0.64, "valid_fraction"))]),
    ("README.md", "the rule chose λ {} for every kind (amp's term {}% of the eps loss)",
     [(AUDIO_CHOICE, ("chosen", k, "lambda")) for k in ("amp",)] + [_audio_term_share(1e-5)]),
    ("README.md", "1 of 60 paired tests passes p < 0.05 beyond its floor (amp's V/UV error, fast schedule, **+{}**, "
                  "floor {}; about {} pass by chance)",
     [(AB_AUDIO_FIG, ("__audio__", "amp", "fast", "vuv_error", f)) for f in ("diff", "floor")]
     + [(AB_AUDIO_FIG, ("__tests__", 0.05))]),
    ("README.md", "every variant's MR-STFT sits a little below the baseline's ({} .. {}, floor {}), carried by one "
                  "seed whose baseline fine-tune ended high ({} against {}-{})",
     [(AB_AUDIO_FIG, ("mr_stft_abs_diff_range", i), -1.0) for i in (0, 1)]
     + [(AB_AUDIO_FIG, ("__audio__", "baseline", "fast", "mr_stft", "floor"))]
     + [(AB_AUDIO_FIG, ("__aseed__", "baseline", "fast", s, "mr_stft")) for s in (1, 4, 2)]),
    ("README.md", "amp and amp_phase cut the log distance to the ground truth by **{}** and **{}** decades (baseline "
                  "{}, floor {})",
     [(TOY_FRONT_FIG, ("__front__", v, "log_distance", "diff")) for v in ("amp", "amp_phase")]
     + [(TOY_FRONT_FIG, ("__front__", "baseline", "log_distance", f)) for f in ("mean", "floor")]),
    ("README.md", "only amp_phase also raises the share of valid checkerboards (+{}, p {}); the pixel-L1 control "
                  "and FACL raise validity most (+{}, +{})",
     [(TOY_FRONT_FIG, ("__front__", "amp_phase", "valid_fraction", f)) for f in ("diff", "p")]
     + [(TOY_FRONT_FIG, ("__front__", v, "valid_fraction", "diff")) for v in ("pixel_l1", "facl")]),
    ("docs/ab_images.md", "the ground-truth reference, {} decades (the seed-0 baseline: {})",
     [(TOY_FRONT_FIG, ("__front__", "baseline", "log_distance", "floor")),
      (TOY_FRONT_CHOICE, ("baseline", "log_distance"))]),
    ("docs/ab_images.md", "(0.25-0.5 cycles/px: {} of the held-out photos'); amp weighted lifts it to {} and amp "
                          "unweighted to {}",
     [(AB_IMAGES_FIG, ("__bands__", "photos", v, "0.25-0.5")) for v in ("baseline", "amp/weighted",
                                                                         "amp/unweighted")]),
    ("docs/ab_images.md", "The largest paired difference is amp_phase unweighted's, {} ± {} against a floor of {}",
     [(AB_IMAGES_FIG, ("__ab__", "dead_leaves", "amp_phase/unweighted", "log_distance", f))
      for f in ("diff", "diff_se", "floor")]),
    ("docs/ab_images.md", "the data ({}, against {} for fresh training draws)",
     [(AB_IMAGES_FIG, ("__ab__", "dead_leaves", "baseline", "log_distance", "mean")),
      (DL_FLOORS, ("floors", "train_data", "log_distance"))]),
    ("docs/ab_images.md", "amp and amp_phase at ρ = 0.1 (λ {}, {}, {}, {}) cut",
     [(AB_IMAGES_FIG, ("__ab__", "dead_leaves", v, "log_distance", "lambda")) for v in
      ("amp/weighted", "amp/unweighted", "amp_phase/weighted", "amp_phase/unweighted")]),
    ("docs/ab_images.md", "(amp_phase unweighted: {} of the baseline's {})",
     [(AB_IMAGES_FIG, ("__ab__", "dead_leaves", "amp_phase/unweighted", "laplacian_error", "diff")),
      (AB_IMAGES_FIG, ("__ab__", "dead_leaves", "baseline", "laplacian_error", "mean"))]),
    ("docs/ab_images.md", "coarse scales ({}x the data's below 1/16 cycles/px, {}x up to 1/8) and too little only in "
                          "the top octave ({}x); amp_phase unweighted lifts the top octave to {}x but also lifts the "
                          "bands that already had too much ({}x and {}x, from {}x and {}x)",
     [(AB_IMAGES_FIG, ("__bands__", "dead_leaves", v, band)) for v, band in
      (("baseline", "0-0.0625"), ("baseline", "0.0625-0.125"), ("baseline", "0.25-0.5"),
       ("amp_phase/unweighted", "0.25-0.5"), ("amp_phase/unweighted", "0.0625-0.125"),
       ("amp_phase/unweighted", "0.125-0.25"), ("baseline", "0.0625-0.125"), ("baseline", "0.125-0.25"))]),
    ("docs/ab_images.md", "at ρ = 1 raised the log distance to {} and {} (the baseline's: {}), while amp_phase "
                          "weighted at ρ = 1 brought the Laplacian-energy error down to {} (the baseline's: {}) and "
                          "still raised the log distance ({})",
     [(DL_CHOICE, ("__screen__", "amp", "unweighted", 1.0, "log_distance")),
      (DL_CHOICE, ("__screen__", "amp_phase", "unweighted", 1.0, "log_distance")),
      (DL_CHOICE, ("baseline", "log_distance")),
      (DL_CHOICE, ("__screen__", "amp_phase", "weighted", 1.0, "laplacian_error")),
      (DL_CHOICE, ("baseline", "laplacian_error")),
      (DL_CHOICE, ("__screen__", "amp_phase", "weighted", 1.0, "log_distance"))]),
    ("docs/ab_images.md", "The feature-distance floor, {}, is 21% of the baseline's {}",
     [(AB_IMAGES_FIG, ("__ab__", "dead_leaves", "baseline", "feature_distance", f)) for f in ("floor", "mean")]),
    ("docs/ab_images.md", "(haar unweighted at ρ = 1: {}) and so did pixel L1 ({} at ρ = 1)",
     [(DL_CHOICE, ("__screen__", "haar", "unweighted", 1.0, "log_distance")),
      (DL_CHOICE, ("__screen__", "pixel_l1", "weighted", 1.0, "log_distance"))]),
    ("docs/ab_images.md", "FACL at ρ = 1 (λ {}) restores more Laplacian energy than the amplitude terms ({}, 10 "
                          "floors) and lifts the coarse-scale excess further ({}x below 1/16 cycles/px); focal "
                          "frequency at ρ = 1 has a small Laplacian effect ({}, 1.7 floors)",
     [(AB_IMAGES_FIG, ("__ab__", "dead_leaves", "facl/weighted", "log_distance", "lambda")),
      (AB_IMAGES_FIG, ("__ab__", "dead_leaves", "facl/weighted", "laplacian_error", "diff")),
      (AB_IMAGES_FIG, ("__bands__", "dead_leaves", "facl/weighted", "0-0.0625")),
      (AB_IMAGES_FIG, ("__ab__", "dead_leaves", "focal_freq/weighted", "laplacian_error", "diff"))]),
    ("docs/ab_images.md", "which is ρ {}-{} on photos and {}-{} on dead leaves here",
     [(CALIBRATION, ("grad_ratio", "amp/unweighted")), (CALIBRATION, ("grad_ratio", "haar/weighted")),
      (DL_CALIBRATION, ("grad_ratio", "amp/unweighted")), (DL_CALIBRATION, ("grad_ratio", "haar/weighted"))]),
    ("README.md", "moves the log distance to held-out photos by **{} ± {}** (floor {}) and the feature distance "
                  "by {} ± {}",
     [(AB_IMAGES_FIG, ("__ab__", "photos", "amp/weighted", m, f)) for m, fs in
      (("log_distance", ("diff", "diff_se", "floor")), ("feature_distance", ("diff", "diff_se"))) for f in fs]),
    ("docs/ab_images.md", "FACL restores more Laplacian energy than any amplitude variant ({} against amp_phase "
                          "unweighted's {})",
     [(AB_IMAGES_FIG, ("__ab__", "dead_leaves", v, "laplacian_error", "diff"))
      for v in ("facl/weighted", "amp_phase/unweighted")]),
    ("README.md", "(largest: amp_phase unweighted **{}**, floor {})",
     [(AB_IMAGES_FIG, ("__ab__", "dead_leaves", "amp_phase/unweighted", "log_distance", f))
      for f in ("diff", "floor")]),
    ("README.md", "a log-distance effect beyond the floor (**{}**, floor {})",
     [(AB_IMAGES_FIG, ("__abl__", "amp_phase/unweighted: 4x longer", "reference", "log_distance", f))
      for f in ("diff", "floor")]),
    ("docs/ab_images.md", "it keeps less than a quarter of the high-frequency effect (Laplacian-energy error {} "
                          "against the baseline, where the ungated term gives {})",
     [(AB_IMAGES_FIG, ("__abl__", "amp_phase/unweighted: low-noise gate (sigma <= 0.5)", "reference",
                       "laplacian_error", "diff")),
      (AB_IMAGES_FIG, ("__ab__", "dead_leaves", "amp_phase/unweighted", "laplacian_error", "diff"))]),
    ("docs/ab_images.md", "(the largest: amp_phase unweighted, {} against the baseline's {})",
     [(CHOICE, ("__screen__", "amp_phase", "unweighted", 0.01, "log_distance")),
      (CHOICE, ("baseline", "log_distance"))]),
    ("docs/ab_images.md", "also raised the log distance at rho = 1 on the screen ({} against the baseline's {})",
     [(CHOICE, ("__screen__", "pixel_l1", "weighted", 1.0, "log_distance")), (CHOICE, ("baseline", "log_distance"))]),
    # README: the toy headline and the reproduction table
    ("README.md", "**+AP/baseline log distance {}** (per seed {}, {}, {}; goal <= 0.5 not met)",
     [HEADLINE, *PER_SEED_RATIO]),
    ("README.md", "**valid checkerboards {}% (+AP) vs {}% (baseline)**", [VALID_AP, VALID_BASE]),
    ("README.md", "baseline {}% valid checkerboards, +AP {}%; +AP/baseline log distance **{}**",
     [VALID_BASE, VALID_AP, HEADLINE]),
    ("README.md", "(`cpu` profile, {} steps, 64 samples per run;", [TOY_STEPS]),
    ("README.md", "cpu (1 seed, {} steps): log distance to the data / baseline: amp {}, **amp-phase {}** (power above "
                  "0.25 cyc/px {} of the data's vs {} for the baseline), haar {}, bior1.3 {}",
     [SPECTRA_STEPS, (SPECTRA, ("headline", "amp_over_baseline_log_distance")),
      (SPECTRA, ("headline", "amp_phase_over_baseline_log_distance")),
      (SPECTRA, ("headline", "amp_phase_hf_energy_ratio")), (SPECTRA, ("headline", "baseline_hf_energy_ratio")),
      (SPECTRA, ("headline", "haar_over_baseline_log_distance")),
      (SPECTRA, ("headline", "bior1.3_over_baseline_log_distance"))]),
    # docs/toy.md: the seeds 1-3 table, its headline and the power-spectra experiment
    ("docs/toy.md", "log distance {} on seeds 1-3 (`figures/cpu/02_checkerboard_toy/metrics.json`)", [HEADLINE]),
    *[("docs/toy.md", f"| {seed} | baseline | {{}}% | {{}} | {{}} | {{}}% | {{}} | {{}} |", _toy_run("baseline", seed))
      for seed in (1, 2, 3)],
    *[("docs/toy.md", f"| {seed} | +amp-phase (lambda 1, alpha_bar) | {{}}% | {{}} | {{}} | {{}}% | {{}} | {{}} |",
       _toy_run("amp_phase", seed)) for seed in (1, 2, 3)],
    ("docs/toy.md", "| **mean** | baseline | **{}%** | {} | {} | {}% | **{}** | {} |", _toy_mean("baseline")),
    ("docs/toy.md", "| **mean** | +amp-phase | **{}%** | {} | {} | {}% | **{}** | {} |", _toy_mean("amp_phase")),
    ("docs/toy.md", "= **{}** (ratio of the 3-seed means; per seed {}, {}, {})", [HEADLINE, *PER_SEED_RATIO]),
    ("docs/toy.md", "(in band {}% -> {}%), sharpens the values (binariness {} -> {}) and keeps more energy on the "
                    "peaks ({} -> {} of the ground truth), at ~2 points fewer valid samples ({}% -> {}%)",
     [(TOY, ("summary", "baseline", "in_band_fraction", "mean"), PCT),
      (TOY, ("summary", "amp_phase", "in_band_fraction", "mean"), PCT),
      (TOY, ("headline", "baseline_binariness")), (TOY, ("headline", "amp_phase_binariness")),
      (TOY, ("summary", "baseline", "peak_energy_ratio", "mean")),
      (TOY, ("summary", "amp_phase", "peak_energy_ratio", "mean")), VALID_BASE, VALID_AP]),
    ("docs/toy.md", "`specreg sweep power_spectra --profile cpu` (32x32 patches, 5 variants x {} steps)",
     [SPECTRA_STEPS]),
    ("docs/toy.md", "64-channel U-Net, cosine T=200, {} steps, lambda 1", [SPECTRA_STEPS]),
    ("docs/toy.md", "| baseline (MSE) | {} | 1 | {} | {} |", _spectra_row("baseline")),
    ("docs/toy.md", "| +amplitude (Eq. 14) | {} | {} | {} | {} |", _spectra_row("amp")),
    ("docs/toy.md", "| +amp-phase (Eq. 15) | **{}** | **{}** | **{}** | {} |", _spectra_row("amp_phase")),
    ("docs/toy.md", "| +Haar (Eq. 16) | {} | {} | {} | {} |", _spectra_row("haar")),
    ("docs/toy.md", "| +bior1.3 (Eq. 16) | {} | {} | {} | {} |", _spectra_row("bior1.3")),
    ("docs/toy.md", "fitted slope (data {})", [(SPECTRA, ("power_law", "ground_truth", "slope"))]),
    ("README.md", "(AFHQv2-64: {} and {} parameters, as the official files)",
     [(CHECKPOINT, ("ddpmpp", 1)), (CHECKPOINT, ("ncsnpp", 1))]),
    ("README.md", "fine-tuning is {} to {} of the diffusion gradient (AFHQv2-64 DDPM++, random weights)",
     [(TERMS, ("amp/unweighted | sum", GRAD_RATIO)), (TERMS, ("haar/weighted | sum", GRAD_RATIO))]),
    ("docs/edm_finetune.md", "lambda_spec = 1 is {} (amp, unweighted) to {} (Haar, weighted) of the diffusion gradient",
     [(TERMS, ("amp/unweighted | sum", GRAD_RATIO)), (TERMS, ("haar/weighted | sum", GRAD_RATIO))]),
    ("docs/edm_finetune.md", "the same lambda gives {}x (amp, unweighted) to {}x (Haar, weighted)",
     [(TERMS, ("amp/unweighted | mean", GRAD_RATIO)), (TERMS, ("haar/weighted | mean", GRAD_RATIO))]),
    ("README.md", "Haar {}x (images) and {}x (audio), met on both; amplitude {}x (images), met, and {}x (audio), "
                  "missed by a little",
     [(SPEED, ("wavelet_loss haar J=3 (Eq. 16)", 2)), (SPEED, ("wavelet_loss haar J=3 (Eq. 16)", 4)),
      (SPEED, ("amplitude_loss (Eq. 14)", 2)), (SPEED, ("amplitude_loss (Eq. 14)", 4))]),
    # docs/spectral.md: the phase_eps table, from the deterministic benchmark's committed output
    ("docs/spectral.md", "| exact autograd | 0 | 0 | {} |", [(PHASE_EPS, ("exact autograd", 3))]),
    *[("docs/spectral.md", f"| {label} | {{}}% | {{}}% | {{}} |", _phase_eps_row(eps))
      for eps, label in [("0.3", "0.3"), ("0.1", "0.1 (old default)"), ("0.03", "0.03"), ("0.003", "0.003"),
                         ("0.001", "0.001")]],
    ("docs/spectral.md", "| **0.01 (default)** | **{}%** | **{}%** | **{}** |", _phase_eps_row("0.01")),
    ("docs/spectral.md", "the gradient is the amplitude term's, {}, for every value",
     [(PHASE_EPS, ("0.01", 2))]),
]


def _document(doc: str) -> str:
    """A document's text; ``path#### Heading``: only that section (to the next heading of its level), for claims
    whose text repeats in another section (the image study's tables of each stand-in)."""
    path, _, heading = doc.partition("#")
    text = (ROOT / path).read_text()
    if not heading:
        return text
    level = "#" * (len(heading) - len(heading.lstrip("#")))
    start = text.index(f"\n{heading}")
    end = text.find(f"\n{level} ", start + 1)
    return text[start:end if end >= 0 else None]


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _pattern(fragment: str) -> re.Pattern:
    parts = _normalise(fragment).split("{}")
    return re.compile(NUMBER.join(re.escape(p) for p in parts))


def _half_unit(printed: str) -> float:
    """Half a unit of the last digit ``printed`` shows (0.702 -> 0.0005, 97.4 -> 0.05, 2000 -> 0.5)."""
    mantissa, _, exponent = printed.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 0.5 * 10.0 ** (-decimals + (int(exponent) if exponent else 0))


@pytest.mark.parametrize("doc, fragment, sources", CLAIMS, ids=[f"{d}:{f[:40]}" for d, f, _ in CLAIMS])
def test_published_number_equals_its_file(doc, fragment, sources):
    text = _normalise(_document(doc))
    match = _pattern(fragment).search(text)
    assert match, f"{doc} no longer says {fragment!r}: update the claim here with the text (numbers from the file)"
    assert len(match.groups()) == len(sources)
    for printed, source in zip(match.groups(), sources, strict=True):
        expected = _value(*source)
        assert abs(float(printed.replace(",", "")) - expected) <= _half_unit(printed) * (1 + 1e-9), (
            f"{doc} prints {printed} where {source[0]} {source[1]} holds {expected:.6g}")


def test_claim_checker_catches_a_stale_number():
    """The checker itself: 0.702 is the toy headline, 0.71 and 4000 steps are not."""
    assert abs(0.702 - _value(*HEADLINE)) <= _half_unit("0.702")
    assert abs(0.71 - _value(*HEADLINE)) > _half_unit("0.71")
    assert abs(4000 - _value(*SPECTRA_STEPS)) > _half_unit("4000")
    assert _pattern("x {} steps").search("5 variants x 2000 steps").group(1) == "2000"


# ------------------------------------------------------------------------------ tables copied from benchmarks

MARKER = re.compile(r"<!-- from (benchmarks/results/[\w.-]+\.txt)(?: table \d+)? -->")
DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]


def _copied_tables() -> list[tuple[str, str, list[str]]]:
    """(document, results file, the table's lines) for every marked table."""
    found = []
    for doc in DOCS:
        lines = (ROOT / doc).read_text().splitlines()
        for i, line in enumerate(lines):
            m = MARKER.search(line)
            if m:
                rows = []
                for row in lines[i + 1:]:
                    if not row.startswith("|"):
                        break
                    rows.append(row)
                found.append((doc, m.group(1), rows))
    return found


def test_benchmark_tables_in_docs_are_marked():
    """Every benchmark the docs quote a table of has its committed output (README and docs/spectral.md at least)."""
    sources = {(doc, src) for doc, src, _ in _copied_tables()}
    assert ("README.md", "benchmarks/results/bench_spectral.txt") in sources
    assert ("docs/spectral.md", "benchmarks/results/bench_spectral.txt") in sources
    assert ("README.md", "benchmarks/results/bench_runner.txt") in sources
    assert ("docs/diffusion.md", "benchmarks/results/bench_samplers.txt") in sources


def test_no_document_quotes_minimum_only_timings():
    """Minima flatter a loaded machine by up to 2x against the median: tables give median and spread."""
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        for stale in ("| loss (min) |", "min (median)", "min over 7", "the minimum over 40 repeats is shown"):
            assert stale not in text, f"{doc} still reports {stale!r}"


@pytest.mark.parametrize("doc, src, rows", _copied_tables(), ids=[f"{d}<-{s}" for d, s, _ in _copied_tables()])
def test_copied_benchmark_table_matches_committed_output(doc, src, rows):
    path = ROOT / src
    assert path.is_file(), f"{doc} cites {src}, which is not committed: run the benchmark with --out {src}"
    lines = set(path.read_text().splitlines())
    assert len(rows) >= 3, f"{doc}: the marker for {src} is not followed by a markdown table"
    stale = [row for row in rows if row not in lines]
    assert not stale, f"{doc}: rows not in {src} (re-copy the table from the file):\n" + "\n".join(stale)


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks" / "results").glob("*.txt")), ids=lambda p: p.name)
def test_benchmark_output_says_when_where_and_under_what_load(path):
    head = path.read_text().splitlines()[:4]
    assert head[0].startswith("# date: ") and head[1].startswith("# machine: "), head
    assert head[2].startswith("# load average") and head[3].startswith("# command: python benchmarks/"), head
    script = head[3].split()[3]
    assert (ROOT / script).is_file(), f"{path.name} was written by {script}, which is not in the repository"


def _column(file: str, column: int) -> list[float]:
    """Column ``column`` of every data row of a committed benchmark table, as numbers (a trailing % dropped)."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in (ROOT / file).read_text().splitlines()
            if line.startswith("| ") and not line.startswith("|---")]
    return [float(r[column].rstrip("%")) for r in rows[1:]]  # rows[0] is the header


def test_goals_the_docs_call_met_hold_in_the_files():
    """README and docs/diffusion.md say every sampler's overhead is below 1% of a network evaluation."""
    samplers = _column("benchmarks/results/bench_samplers.txt", 4)
    assert len(samplers) == 11 and max(samplers) < 1.0, samplers
    assert "met by every sampler" in (ROOT / "README.md").read_text()
    assert "Every sampler stays far below the 1% goal" in (ROOT / "docs/diffusion.md").read_text()


@pytest.mark.parametrize("record, study", [(CALIBRATION, "photos"), (f"{AB_IMAGES}/calibration-dead_leaves.json",
                                           "dead_leaves"), (AUDIO_CALIBRATION, "audio")])
def test_committed_calibrations_are_keyed_to_the_current_cpu_plans(record, study, tmp_path):
    """A committed calibration record is the one the cpu plan uses only while its key (plan hash, pretrained file) is
    the plan's own: a plan-hash change would make the study recalibrate silently and the docs quote a stale file."""
    if study != "audio":
        from specreg_lib.experiments.ab_images.plan import ab_images_plan, plan_hash, pretrained_path

        plan = ab_images_plan("cpu")
        want = {"plan": plan_hash(plan), "checkpoint": pretrained_path(plan, tmp_path, study).name}
    else:
        from specreg_lib.experiments.ab_audio.plan import ab_audio_plan, plan_hash, pretrained_path

        plan = ab_audio_plan("cpu")
        want = {"plan": plan_hash(plan), "checkpoint": pretrained_path(plan, tmp_path).name}
    assert json.loads((ROOT / record).read_text())["key"] == want


def test_committed_toy_front_records_are_keyed_to_the_cpu_front_plan():
    """The toy front's committed calibration and the rule's choice (written from the complete seed-0 screen before
    any evaluation seed trained; docs/ab_images.md "Toy front") belong to the current cpu plan: a plan change would
    make the front recalibrate and rechoose silently while the docs quote these files."""
    from specreg_lib.experiments.toy.front import front_plan, plan_hash

    want = plan_hash(front_plan("cpu"))
    for name in ("calibration.json", "choice.json"):
        assert json.loads((ROOT / "data/pretrained/toy_front/cpu" / name).read_text())["plan"] == want, name
