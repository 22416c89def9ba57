"""Seed statistics, written once for every table: per row the mean over seeds, its spread and standard error; per
row and metric the paired difference to a reference row (matched by seed), its standard error, a paired t-test
and a plain word for what it means given the metric's declared direction.

Input: ``values[row][seed][metric] = value``, where a row key is any hashable (a table's row: ``(family, variant,
weighting)``, ``(variant, lambda)``, ...) and a metric may be missing for some seeds (it is then left out for that
seed only). Output: :func:`compare` returns a long DataFrame, one row per (row key, metric), with the columns
``COLUMNS`` (documented there); :func:`wide` lays it out one row per row key with ``<metric>_<stat>`` columns, as
the paper's tables are; :func:`headline_from_table` turns such a table into a metrics file's headline numbers and
their glossary.

Undefined statistics are NaN and say why in ``note``: std and SE with one seed; the paired SE, t and p with fewer
than two matched seeds. A seed of the row without a partner in the reference is listed in ``unpaired``, never
silently dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

Key = Hashable
Values = Mapping[Key, Mapping[int, Mapping[str, float]]]  # row -> seed -> metric -> value
Glossary = Mapping[str, tuple[str, str]]  # metric -> (one-line meaning, "lower" | "higher" | "neither" is better)

# One row of compare(): what each column holds.
COLUMNS: dict[str, str] = {
    "row": "the row key, as given",
    "metric": "the metric's name",
    "seeds": "seeds of the row (any metric)",
    "n": "seeds with a value of this metric",
    "mean": "mean over those seeds",
    "std": "standard deviation over seeds (ddof 1); NaN with one seed",
    "se": "standard error of the mean, std / sqrt(n); NaN with one seed",
    "against": "the reference row's key; missing (None / NaN) for the reference row itself or without a reference",
    "pairs": "seeds with a value in both this row and the reference",
    "unpaired": "seeds of this row without a partner in the reference (left out of the difference)",
    "diff": "mean over pairs of (row - reference)",
    "diff_se": "standard error of diff, std(differences, ddof 1) / sqrt(pairs); NaN with fewer than 2 pairs",
    "t": "paired t statistic (scipy.stats.ttest_rel)",
    "p": "its two-sided p-value; NaN when undefined (fewer than 2 pairs, or every difference 0)",
    "dof": "degrees of freedom, pairs - 1",
    "direction": "better | worse (p < alpha, by the glossary's direction), higher | lower (p < alpha, a metric "
                 "with no better direction), unclear (p >= alpha), n/a (no p), reference (the reference row)",
    "note": "why a statistic is NaN or a seed unpaired; empty when nothing is",
}


def _seed_stats(x: np.ndarray) -> tuple[float, float, float]:
    """(mean, std ddof 1, SE) of a 1-D array; std and SE are NaN for fewer than 2 values, all NaN for none."""
    if x.size == 0:
        return math.nan, math.nan, math.nan
    if x.size == 1:
        return float(x.mean()), math.nan, math.nan
    std = float(x.std(ddof=1))
    return float(x.mean()), std, std / math.sqrt(x.size)


def direction(diff: float, p: float, better: str, alpha: float = 0.05) -> str:
    """A plain word for a paired difference: better / worse / higher / lower when p < alpha, else unclear (or n/a)."""
    if not math.isfinite(p):
        return "n/a"
    if p >= alpha:
        return "unclear"
    if better not in ("lower", "higher"):
        return "higher" if diff > 0 else "lower"
    return "better" if (diff > 0) == (better == "higher") else "worse"


def finite(x: Any) -> bool:
    """A real, finite number (not None, a bool, NaN or inf): a table cell a statistic can be read from."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(float(x))


def detected(row: Mapping[str, Any], alpha: float = 0.05) -> bool:
    """The A/B studies' criterion for an effect: p < alpha AND |paired difference| above the metric's noise floor
    (a row of a study's table: ``p``, ``diff``, ``floor``)."""
    floor, diff, p = row.get("floor"), row.get("diff"), row.get("p")
    return finite(p) and p < alpha and finite(floor) and finite(diff) and abs(diff) > floor


def compare(values: Values, metrics: Sequence[str], glossary: Glossary,
            reference: Key | Callable[[Key], Key] | None = None, alpha: float = 0.05) -> Any:
    """Long DataFrame (``COLUMNS``), one row per (row key, metric) in the order given: seed statistics and the paired
    difference to ``reference`` (a row key, or a function of the row's key for per-group references such as one
    baseline per architecture; None: no differences). Directions come from ``glossary`` ("neither" if absent)."""
    import pandas as pd

    out = []
    for key, by_seed in values.items():
        ref_key = reference(key) if callable(reference) else reference
        is_ref = ref_key is not None and ref_key == key
        ref = values.get(ref_key, {}) if ref_key is not None and not is_ref else None
        for m in metrics:
            seeds = [s for s in sorted(by_seed) if m in by_seed[s]]
            mean, std, se = _seed_stats(np.array([by_seed[s][m] for s in seeds], dtype=float))
            notes = ["1 seed: std and SE undefined"] if len(seeds) == 1 else []
            row = {"row": key, "metric": m, "seeds": len(by_seed), "n": len(seeds), "mean": mean, "std": std,
                   "se": se, "against": None if ref is None else ref_key, "pairs": 0, "unpaired": (),
                   "diff": math.nan, "diff_se": math.nan, "t": math.nan, "p": math.nan, "dof": math.nan,
                   "direction": "reference" if is_ref else "n/a"}
            if ref is not None:
                paired = [s for s in seeds if s in ref and m in ref[s]]
                row["unpaired"] = tuple(s for s in seeds if s not in paired)
                d = np.array([by_seed[s][m] - ref[s][m] for s in paired], dtype=float)  # (pairs,)
                row["pairs"] = d.size
                row["diff"], _, row["diff_se"] = _seed_stats(d)
                if d.size >= 2:
                    res = stats.ttest_rel([by_seed[s][m] for s in paired], [ref[s][m] for s in paired])
                    row["t"], row["p"], row["dof"] = float(res.statistic), float(res.pvalue), int(res.df)
                row["direction"] = direction(row["diff"], row["p"], glossary.get(m, ("", "neither"))[1], alpha)
                if not ref:
                    notes.append(f"no reference row {ref_key!r}")
                elif d.size < 2:
                    notes.append(f"{d.size} matched seed{'s' * (d.size != 1)}: paired SE, t and p undefined")
                if row["unpaired"] and ref:
                    notes.append(f"seeds {list(row['unpaired'])} have no partner in the reference")
            row["note"] = "; ".join(notes)
            out.append(row)
    return pd.DataFrame(out, columns=list(COLUMNS))


def wide(long: Any, names: Sequence[str], columns: Sequence[str] = ("mean", "std", "diff", "diff_se", "p",
                                                                     "direction")) -> Any:
    """One row per row key, in :func:`compare`'s order: the key's parts under ``names`` (a scalar key under
    ``names[0]``), ``seeds``, then ``<metric>_<column>`` for every metric and column."""
    import pandas as pd

    rows: dict[Any, dict[str, Any]] = {}
    for r in long.to_dict("records"):
        parts = r["row"] if isinstance(r["row"], tuple) else (r["row"],)
        row = rows.setdefault(r["row"], {**dict(zip(names, parts, strict=True)), "seeds": r["seeds"]})
        row.update({f"{r['metric']}_{c}": r[c] for c in columns})
    return pd.DataFrame(list(rows.values()))


def describe(label: str, metric: str, glossary: Glossary, seeds: int | None = None) -> dict[str, str]:
    """A headline number's glossary entry: ``{"meaning": "<label>: <meaning> (mean over N seeds)", "better"}``."""
    meaning, better = glossary[metric]
    over = "seeds" if seeds is None else f"{seeds} seed{'s' * (seeds != 1)}"
    return {"meaning": f"{label}: {meaning} (mean over {over})", "better": better}


def headline_from_table(table: Any, labels: Iterable[str], metrics: Sequence[str], glossary: Glossary
             ) -> tuple[dict[str, float], dict[str, dict[str, str]]]:
    """(headline, glossary) for a metrics file from a :func:`wide` table: ``<label>_<metric>`` = the row's mean over
    seeds, explained by the experiment's glossary; ``labels`` name the table's rows in order."""
    head, gloss = {}, {}
    for label, row in zip(labels, table.to_dict("records"), strict=True):
        for m in metrics:
            head[f"{label}_{m}"] = float(row[f"{m}_mean"])
            gloss[f"{label}_{m}"] = describe(label, m, glossary, int(row["seeds"]))
    return head, gloss
