"""The rule that picks each (kind, weighting)'s and each peer's strength from the screening seed, fixed before any
evaluation seed runs (written down in docs/ab_images.md, which quotes :data:`RULE` verbatim: a test checks).

It looks only at the screening seed's results, per stand-in, so the evaluation seeds score a choice they took no
part in. Guard: the feature distance (a sample-quality measure the term does not train); target: the spectral log
distance (what the paper's losses are meant to improve).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.study import choose_setting

RULE = ("For each stand-in and each regularized variant (amp, amp_phase, haar, bior1.3, each weighted and "
        "unweighted; pixel_l1, dct_multiscale, focal_freq, facl weighted), among its strengths screened on seed 0, "
        "the candidates are those whose feature_distance is at most the baseline's feature_distance plus the "
        "feature_distance noise floor. The chosen strength is the candidate with the lowest log_distance; "
        "log_distance values equal to 4 significant digits are a tie, won by the smaller strength. When no "
        "strength is a candidate, the smallest strength is chosen and the variant is marked \"guard failed\".")


def choose(screen: Mapping[float, Mapping[str, float]], baseline: Mapping[str, float], feature_floor: float
           ) -> dict[str, Any]:
    """:data:`RULE` for one variant of one stand-in: ``screen`` strength -> its seed-0 metrics.

    Returns {"lambda" (here: the strength), "guard_failed", "limit", "candidates"} (``core.study.choose_setting``)."""
    return choose_setting(screen, baseline, feature_floor, guard="feature_distance", target="log_distance")
