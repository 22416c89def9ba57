"""The main job: ``python -m specreg_lib.reproduce`` (or ``specreg reproduce``) runs every notebook.

Runs the notebooks in order with papermill under one profile, shows a progress bar, prints a summary
table (notebook, status, wall time, headline metrics), writes ``figures/<profile>/report.html`` and
``summary.json``, and exits non-zero if any notebook failed (after running all the others).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import shlex
import sys
from pathlib import Path

from tqdm.auto import tqdm

from .config import PROFILES
from .io import write_json
from .report import headline_text, write_report
from .runner import (
    NOTEBOOK_DIR,
    REPO_ROOT,
    NotebookResult,
    declared_parameters,
    discover,
    ensure_kernel,
    parse_overrides,
    run_notebook,
    select,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``reproduce`` options (shared by ``python -m specreg_lib.reproduce`` and ``specreg reproduce``)."""
    p.add_argument("--profile", default="smoke", choices=PROFILES,
                   help="smoke: CPU minutes, stand-in data (default); cpu: hours on CPU; paper: GPU box")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only this notebook (stem like 02_checkerboard_toy or checkerboard_toy); repeatable")
    p.add_argument("--list", action="store_true", help="list the notebooks and their parameters, then exit")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="papermill parameter override passed to every selected notebook that declares KEY")
    p.add_argument("--figures-dir", type=Path, default=REPO_ROOT / "figures",
                   help="figures go to FIGURES_DIR/<profile>/<notebook>/ (default: figures/)")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="where executed notebooks go (default: runs/<profile>-<timestamp>/, git-ignored)")
    p.add_argument("--notebook-dir", type=Path, default=NOTEBOOK_DIR, help=argparse.SUPPRESS)
    p.add_argument("--log-output", action="store_true", help="stream the notebooks' output to the terminal")


def _list(notebooks: list[Path]) -> int:
    for nb in notebooks:
        params = declared_parameters(nb)
        desc = ", ".join(f"{k}={v.get('default')}" for k, v in params.items())
        print(f"{nb.stem}\n    parameters: {desc}")
    return 0


def _summary(results: list[NotebookResult]) -> str:
    rows = [("notebook", "status", "wall", "headline metrics")]
    rows += [(r.name, r.status, f"{r.wall_s:6.1f} s", headline_text(r.metrics)) for r in results]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + " | " + r[3] for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Execute the selected notebooks; return the process exit code (0 only if all succeeded)."""
    try:
        notebooks = select(discover(args.notebook_dir), args.only)
        overrides = parse_overrides(args.param)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not notebooks:
        print(f"error: no notebooks found in {args.notebook_dir}", file=sys.stderr)
        return 2
    if args.list:
        return _list(notebooks)
    declared = {nb: declared_parameters(nb) for nb in notebooks}
    unknown = [k for k in overrides if not any(k in d for d in declared.values())]
    if unknown:
        print(f"error: parameter(s) {unknown} are declared by none of the selected notebooks "
              f"({', '.join(nb.stem for nb in notebooks)}); see --list", file=sys.stderr)
        return 2
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = args.run_dir or REPO_ROOT / "runs" / f"{args.profile}-{stamp}"
    kernel = ensure_kernel()
    results: list[NotebookResult] = []
    bar = tqdm(notebooks, desc=f"notebooks ({args.profile})", unit="nb")
    for nb in bar:
        bar.set_postfix_str(nb.stem)
        mine = {k: v for k, v in overrides.items() if k in declared[nb]}
        res = run_notebook(nb, args.profile, run_dir, args.figures_dir, mine, kernel, args.log_output)
        results.append(res)
        if res.error:
            tqdm.write(f"FAILED: {res.error}", file=sys.stderr)
    bar.close()

    from .environment import describe

    env = describe()
    profile_dir = args.figures_dir / args.profile
    command = "specreg reproduce " + shlex.join(sys.argv[1:]) if len(sys.argv) > 1 else "specreg reproduce"
    report = write_report(profile_dir / "report.html", results, args.profile, env, command)
    write_json(profile_dir / "summary.json", {
        "profile": args.profile, "run_dir": str(run_dir), "overrides": overrides,
        "device": env["device"], "versions": env["versions"],
        "notebooks": [{"name": r.name, "status": r.status, "wall_s": r.wall_s, "cell_exec_s": r.cell_exec_s,
                       "executed": str(r.executed), "out_dir": str(r.out_dir), "error": r.error,
                       "headline": (r.metrics or {}).get("headline")} for r in results]})
    print("\n" + _summary(results))
    print(f"\nreport: {report}\nexecuted notebooks: {run_dir}")
    failed = [r for r in results if r.status != "ok"]
    if failed:
        print(f"\n{len(failed)} of {len(results)} notebook(s) failed:", file=sys.stderr)
        for r in failed:
            print(f"- {r.error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m specreg_lib.reproduce``."""
    parser = argparse.ArgumentParser(prog="specreg reproduce", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
