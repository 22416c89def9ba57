"""The rule that picks each kind's lambda from the screening seed, fixed before any evaluation seed runs.

``RULE`` is the rule in words; docs/ab_audio.md quotes it verbatim (a test checks), and :func:`choose` is that
rule and nothing else. It looks only at the screening seed's fast-schedule results, so the evaluation seeds score
a choice they took no part in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.study import choose_setting

RULE = ("For each kind (amp, amp_phase, haar, bior1.3, mrstft, logmel_l1), among its lambdas under bins=\"sum\" "
        "screened on seed 0 with the fast schedule, the candidates are those whose fd_mel is at most the "
        "baseline's fd_mel plus the fd_mel noise floor. The chosen lambda is the candidate with the lowest "
        "mr_stft; mr_stft values equal to 4 significant digits are a tie, won by the smaller lambda. When no "
        "lambda is a candidate, the smallest lambda is chosen and the kind is marked \"guard failed\".")


def choose(screen: Mapping[float, Mapping[str, float]], baseline: Mapping[str, float], fd_mel_floor: float
           ) -> dict[str, Any]:
    """:data:`RULE` for one kind: ``screen`` lambda -> its seed-0 metrics, ``baseline`` the baseline's.

    Returns {"lambda", "guard_failed", "limit" (the fd_mel bound), "candidates" (lambdas that passed)}."""
    return choose_setting(screen, baseline, fd_mel_floor, guard="fd_mel", target="mr_stft")
