"""Seed statistics and paired differences (specreg_lib.experiments.core.compare) against independent oracles:
a worked example by hand, numpy's mean / std(ddof=1) / sqrt(n), scipy.stats.ttest_rel; unmatched seeds, n = 1."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from specreg_lib.experiments.core.compare import COLUMNS, compare, describe, direction, headline_from_table, wide

GLOSSARY = {"err": ("an error", "lower"), "score": ("a score", "higher"), "size": ("a size", "neither")}


def _values(**rows):
    """row name -> list of (seed, err) -> compare's input."""
    return {name: {s: {"err": v} for s, v in pairs} for name, pairs in rows.items()}


def test_worked_example_three_seeds():
    # baseline 1, 2, 3; amp 0.5, 1, 2. Differences -0.5, -1, -1: mean -5/6, squared deviations 1/9 + 1/36 + 1/36
    # = 1/6, variance (ddof 1) 1/12, SE sqrt(1/12 / 3) = 1/6, t = (-5/6) / (1/6) = -5 on 2 dof. Student t with
    # 2 dof has P(|T| > t) = 1 - t / sqrt(t^2 + 2), so p = 1 - 5 / sqrt(27).
    values = _values(baseline=[(1, 1.0), (2, 2.0), (3, 3.0)], amp=[(1, 0.5), (2, 1.0), (3, 2.0)])
    long = compare(values, ["err"], GLOSSARY, reference="baseline")
    assert list(long.columns) == list(COLUMNS)
    amp = long.set_index("row").loc["amp"]
    assert (amp["n"], amp["pairs"], amp["dof"], amp["unpaired"]) == (3, 3, 2, ())
    assert amp["mean"] == pytest.approx(7 / 6) and amp["std"] == pytest.approx(math.sqrt(7 / 12))
    assert amp["se"] == pytest.approx(math.sqrt(7) / 6)
    assert amp["diff"] == pytest.approx(-5 / 6) and amp["diff_se"] == pytest.approx(1 / 6)
    assert amp["t"] == pytest.approx(-5.0) and amp["p"] == pytest.approx(1 - 5 / math.sqrt(27))
    assert amp["direction"] == "better" and amp["note"] == ""  # lower is better, p = 0.038 < 0.05
    base = long.set_index("row").loc["baseline"]
    assert base["mean"] == pytest.approx(2.0) and base["std"] == pytest.approx(1.0)
    assert base["direction"] == "reference" and pd.isna(base["against"]) and math.isnan(base["diff"])


def test_direction_words_follow_the_declared_direction():
    p = 1 - 5 / math.sqrt(27)  # the worked example's
    assert direction(-5 / 6, p, "lower") == "better" and direction(-5 / 6, p, "higher") == "worse"
    assert direction(-5 / 6, p, "neither") == "lower" and direction(0.1, p, "neither") == "higher"
    assert direction(-5 / 6, p, "lower", alpha=0.01) == "unclear" and direction(-5 / 6, math.nan, "lower") == "n/a"


def test_random_table_matches_numpy_and_ttest_rel():
    rng = np.random.default_rng(0)
    seeds = [3, 1, 7, 5, 2]
    base, reg = rng.normal(2.0, 0.1, 5), rng.normal(1.9, 0.1, 5)
    score = rng.normal(3.0, 0.2, (2, 5))
    values = {"baseline": {s: {"err": base[i], "score": score[0, i]} for i, s in enumerate(seeds)},
              "reg": {s: {"err": reg[i], "score": score[1, i]} for i, s in enumerate(seeds)}}
    long = compare(values, ["err", "score"], GLOSSARY, reference="baseline").set_index(["row", "metric"])
    order = np.argsort(seeds)  # pairing is by seed, whatever the insertion order
    for metric, a, b in (("err", reg, base), ("score", score[1], score[0])):
        r = long.loc[("reg", metric)]
        d = a[order] - b[order]
        assert r["mean"] == pytest.approx(np.mean(a)) and r["std"] == pytest.approx(np.std(a, ddof=1))
        assert r["se"] == pytest.approx(np.std(a, ddof=1) / np.sqrt(5))
        assert r["diff"] == pytest.approx(d.mean()) and r["diff_se"] == pytest.approx(d.std(ddof=1) / np.sqrt(5))
        ref = stats.ttest_rel(a, b)
        assert r["t"] == pytest.approx(ref.statistic) and r["p"] == pytest.approx(ref.pvalue) and r["dof"] == 4


def test_unmatched_seeds_are_reported_not_dropped_silently():
    values = _values(baseline=[(1, 1.0), (2, 2.0), (3, 3.0)], amp=[(1, 0.5), (2, 1.0), (3, 2.0), (9, 7.0)])
    amp = compare(values, ["err"], GLOSSARY, reference="baseline").set_index("row").loc["amp"]
    assert amp["n"] == 4 and amp["mean"] == pytest.approx(10.5 / 4)  # seed statistics use every seed
    assert amp["pairs"] == 3 and amp["unpaired"] == (9,) and "[9]" in amp["note"]
    assert amp["diff"] == pytest.approx(-5 / 6)  # the difference uses the matched seeds only
    assert amp["p"] == pytest.approx(stats.ttest_rel([0.5, 1.0, 2.0], [1.0, 2.0, 3.0]).pvalue)


def test_one_seed_gives_nan_spread_and_says_so():
    values = _values(baseline=[(1, 1.0)], amp=[(1, 0.5)])
    long = compare(values, ["err"], GLOSSARY, reference="baseline").set_index("row")
    amp = long.loc["amp"]
    assert amp["mean"] == 0.5 and amp["diff"] == -0.5 and amp["pairs"] == 1
    assert all(math.isnan(amp[k]) for k in ("std", "se", "diff_se", "t", "p", "dof"))
    assert amp["direction"] == "n/a" and "1 seed" in amp["note"] and "1 matched seed" in amp["note"]
    assert math.isnan(long.loc["baseline", "std"]) and "1 seed" in long.loc["baseline", "note"]


def test_missing_reference_metric_gaps_and_group_references():
    values = {("ve", "amp"): {1: {"err": 1.0}, 2: {"err": 2.0}},
              ("vp", "base"): {1: {"err": 4.0}, 2: {"err": 6.0}},
              ("vp", "amp"): {1: {"err": 3.0}, 2: {"err": 4.0, "score": 1.0}}}
    long = compare(values, ["err", "score"], GLOSSARY, reference=lambda key: (key[0], "base"))
    long = {(r["row"], r["metric"]): r for r in long.to_dict("records")}  # tuple row keys: a plain dict
    ve = long[(("ve", "amp"), "err")]
    assert ve["against"] == ("ve", "base") and ve["pairs"] == 0 and ve["unpaired"] == (1, 2)
    assert math.isnan(ve["diff"]) and "no reference row" in ve["note"] and ve["direction"] == "n/a"
    vp = long[(("vp", "amp"), "err")]
    assert vp["against"] == ("vp", "base") and vp["diff"] == pytest.approx(-1.5) and vp["diff_se"] == pytest.approx(
        0.5)
    score = long[(("vp", "amp"), "score")]  # present for seed 2 only; the reference has none
    assert (score["seeds"], score["n"], score["mean"], score["pairs"], score["unpaired"]) == (2, 1, 1.0, 0, (2,))


def test_wide_table_and_headline():
    values = _values(baseline=[(1, 1.0), (2, 2.0), (3, 3.0)], amp=[(1, 0.5), (2, 1.0), (3, 2.0)])
    values = {(k, None if k == "baseline" else "weighted"): v for k, v in values.items()}
    table = wide(compare(values, ["err"], GLOSSARY, reference=("baseline", None)), ("variant", "weighting"))
    assert list(table.columns) == ["variant", "weighting", "seeds", "err_mean", "err_std", "err_diff", "err_diff_se",
                                   "err_p", "err_direction"]
    assert list(table["variant"]) == ["baseline", "amp"] and table["weighting"][1] == "weighted"
    assert table["err_diff"][1] == pytest.approx(-5 / 6) and table["err_direction"][1] == "better"
    head, gloss = headline_from_table(table, ["baseline", "amp_weighted"], ["err"], GLOSSARY)
    assert head == {"baseline_err": pytest.approx(2.0), "amp_weighted_err": pytest.approx(7 / 6)}
    assert gloss["amp_weighted_err"] == {"meaning": "amp_weighted: an error (mean over 3 seeds)", "better": "lower"}
    assert describe("x", "size", GLOSSARY, 1)["meaning"] == "x: a size (mean over 1 seed)"


def test_detected_needs_both_a_small_p_and_a_difference_beyond_the_floor() -> None:
    from specreg_lib.experiments.core.compare import detected, finite

    assert detected({"p": 0.01, "diff": -0.3, "floor": 0.2})
    assert not detected({"p": 0.01, "diff": -0.1, "floor": 0.2})  # significant but within the floor
    assert not detected({"p": 0.2, "diff": -0.3, "floor": 0.2})  # beyond the floor but not significant
    assert not detected({"p": 0.04, "diff": 0.3, "floor": 0.2}, alpha=0.01)
    assert not detected({"p": float("nan"), "diff": 1.0, "floor": 0.1})  # one pair: no p
    assert not detected({"p": 0.01, "diff": 1.0, "floor": None})  # no floor: no claim
    assert [finite(x) for x in (1, 2.5, True, None, float("inf"), float("nan"), "1")] == [
        True, True, False, False, False, False, False]
