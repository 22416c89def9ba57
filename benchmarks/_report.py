"""Shared by the benchmark scripts: median-and-spread formatting and ``--out`` (the printed table, saved with
the date, machine and load it was measured under, so a number quoted in the docs traces to a committed file)."""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import platform
import statistics
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path


def spread(values: Sequence[float], fmt: str = ".2f") -> str:
    """``median [min, max]`` of ``values``: the median is the number to quote, the range how far load moved it."""
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}, {max(values):{fmt}}]"


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(q1, median, q3) of ``values`` (inclusive method, defined for any n >= 1)."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, med, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, med, q3


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def header(load_before: tuple[float, float, float]) -> str:
    """Where and when the table was measured: date (UTC), machine, load averages before and after, command."""
    load_after = os.getloadavg()
    return "\n".join([
        f"# date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"# machine: {_cpu_model()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}",
        f"# load average (1/5/15 min): before {' '.join(f'{v:.2f}' for v in load_before)}, "
        f"after {' '.join(f'{v:.2f}' for v in load_after)}",
        f"# command: python {' '.join(sys.argv)}",
        "",
    ])


class _Tee(io.TextIOBase):
    def __init__(self, *streams: io.TextIOBase) -> None:
        self.streams = streams

    def write(self, s: str) -> int:
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self) -> None:
        for st in self.streams:
            st.flush()


@contextlib.contextmanager
def tee_to(out: str | None) -> Iterator[None]:
    """Print as usual; with ``out`` (a path) also write everything printed, under a provenance header, to it."""
    if out is None:
        yield
        return
    load_before = os.getloadavg()
    buf = io.StringIO()
    with contextlib.redirect_stdout(_Tee(sys.stdout, buf)):
        yield
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header(load_before) + buf.getvalue())
    print(f"table written to {path}")


def add_out_argument(parser) -> None:  # noqa: ANN001 - an argparse.ArgumentParser
    """The ``--out`` option every benchmark shares."""
    parser.add_argument("--out", default=None, metavar="PATH",
                        help="also write the printed table, with date, machine and load, to PATH "
                             "(the committed tables live in benchmarks/results/)")
