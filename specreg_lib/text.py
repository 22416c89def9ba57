"""The one text grammar of every door: command-line scalars (``--set``, ``--grid``, the notebooks' ``-p``), lists of
ints with ranges, seeds (``specreg sweep/finetune/table1 --seeds``, ``specreg generate --seeds``, a notebook's
``seeds``). Words are case-insensitive; a config field's declared type picks the converter
(``experiments.core.config.parse_text``).

Lists of ints and seeds are bounded before they are expanded: at most ``MAX_VALUES`` values (a range counts its
length, so ``0-3000000000`` is refused at once instead of filling memory), and a seed lies in [0, ``MAX_SEED``], the
range every generator the library seeds accepts (numpy's legacy ``seed`` included)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .errors import InputError

MAX_VALUES = 10**6  # values in one list / seed list: ~7x EDM's three FID-50k seed sets, tens of MB as Python ints
MAX_SEED = 2**32 - 1
NONE_WORDS = ("none", "null")  # for an optional field only; a plain str field keeps the text
TRUE_WORDS, FALSE_WORDS = ("true", "yes", "1"), ("false", "no", "0")


class OptionError(InputError, ValueError):
    """A command-line option (or its text) the door cannot use; the message names the option and what to pass."""


def parse_scalar(text: str, kind: type) -> Any:
    """One command-line scalar as ``kind``: bool words (true/false, yes/no, 1/0, any case), int, float, or str
    (surrounding quotes removed). The one grammar of ``--set``, ``--grid`` and the notebooks' ``-p``."""
    t = text.strip()
    if kind is str:
        return t[1:-1] if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"" else t
    if kind is bool:
        if t.lower() in TRUE_WORDS:
            return True
        if t.lower() in FALSE_WORDS:
            return False
        raise ValueError(f"expected a bool (true/false, yes/no, 1/0), got {text!r}")
    if kind in (int, float):
        try:
            return kind(t)  # int("3.5") and float("x") raise
        except ValueError:
            raise ValueError(f"expected {'an int' if kind is int else 'a number'}, got {text!r}") from None
    raise ValueError(f"cannot parse {text!r} as {kind}")


def is_none_word(text: str) -> bool:
    """Whether ``text`` spells None (for an optional field): none or null, any case."""
    return text.strip().lower() in NONE_WORDS


_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")


def parse_int_list(text: str, max_values: int = MAX_VALUES) -> list[int]:
    """``"1,2,3"``, ``"[1, 2]"``, ranges ``"1-5"`` (inclusive) and mixes ``"1-3,7"`` -> a list of ints; more than
    ``max_values`` values in all is an :class:`OptionError`, raised before any range is expanded."""
    t = text.strip()
    if t[:1] + t[-1:] in ("[]", "()"):
        t = t[1:-1]
    items = [s.strip() for s in t.split(",")]
    ranges = [_RANGE.match(item) for item in items]
    for item, m in zip(items, ranges, strict=True):
        if m and int(m[1]) > int(m[2]):
            raise OptionError(f"range {item!r} runs backwards; write it as {m[2]}-{m[1]}")
    count = sum(int(m[2]) - int(m[1]) + 1 if m else bool(item) for item, m in zip(items, ranges, strict=True))
    if count > max_values:
        raise OptionError(f"{count} values is more than the {max_values} one list may hold; give fewer (e.g. split "
                          "the range over several runs)")
    out: list[int] = []
    for item, m in zip(items, ranges, strict=True):
        if not item:
            continue  # "1," and "" are allowed
        if m:
            out += range(int(m[1]), int(m[2]) + 1)
        else:
            out.append(parse_scalar(item, int))
    return out


def parse_seeds(text: str | int | Iterable[int], option: str = "--seeds") -> list[int]:
    """The one seed grammar: ``"1,2,3"``, ``"1-5"``, ``"0-49999"``, ``"1-3,7"`` (or an int, or ints) -> distinct
    ints in [0, MAX_SEED], at most MAX_VALUES of them, in the order given; else an :class:`OptionError` naming
    ``option``."""
    shown = repr(text) if isinstance(text, str | int) else "(a list)"
    shown = shown if len(shown) <= 60 else f"{shown[:40]}...'"  # a line, not a screenful
    try:
        if isinstance(text, int):
            seeds = [text]
        elif isinstance(text, str):
            seeds = parse_int_list(text)
        else:
            seeds = []
            for s in text:
                seeds.append(int(s))
                if len(seeds) > MAX_VALUES:
                    raise ValueError(f"more than the {MAX_VALUES} seeds one list may hold; give fewer")
    except ValueError as err:
        raise OptionError(f"{option} {shown}: {err}; write seeds as 1,2,3 or a range 1-5") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise OptionError(f"{option} {shown}: need at least one seed, each >= 0 and none twice; write seeds as "
                          "1,2,3 or a range 1-5")
    if max(seeds) > MAX_SEED:
        raise OptionError(f"{option} {shown}: seed {max(seeds)} is above {MAX_SEED} (2^32 - 1: every generator "
                          "accepts that, numpy's legacy seed included); write seeds as 1,2,3 or a range 1-5")
    return seeds


def split_top(text: str) -> list[str]:
    """Split on commas that are not inside brackets: ``"[2,4],[2]"`` -> ``["[2,4]", "[2]"]``."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[("
        depth -= ch in "])"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]
