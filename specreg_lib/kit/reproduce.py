"""The main job: ``python -m specreg_lib.kit.reproduce`` (or ``specreg reproduce``) runs every notebook.

Runs the notebooks in order with papermill under one profile, shows a progress bar, prints a summary
table (notebook, status, wall time, headline metrics), writes ``figures/<profile>/report.html`` (every
notebook's latest results, with the committed cpu/paper ones beside them) and ``summary.json``, and exits
non-zero if any notebook failed (after running all the others).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import shlex
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..experiments.core.config import PROFILES
from ..io import write_json
from .command import standalone
from .html_report import gather, write_report
from .outputs import headline_text
from .parameters import Parameter, ParameterError, convert_overrides, describe, notebook_parameters, parse_overrides
from .paths import NOTEBOOK_DIR, PROFILE_DIR, resolve_out_dir, resolve_repo_path
from .runner import NotebookResult, discover, ensure_kernel, notebook_out_dir, run_notebook, select


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``reproduce`` options (shared by ``python -m specreg_lib.kit.reproduce`` and ``specreg reproduce``)."""
    p.add_argument("--profile", default="smoke", choices=PROFILES,
                   help="smoke: CPU minutes, stand-in data (default); cpu: hours on CPU; paper: GPU box")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only this notebook (stem like 02_checkerboard_toy or checkerboard_toy); repeatable")
    p.add_argument("--list", action="store_true", help="list the notebooks and their parameters, then exit")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="parameter for every selected notebook that declares KEY, converted to its declared type "
                        "(lists: 1,2,3; none for optional ones); see --list")
    p.add_argument("--root", type=Path, default=None,
                   help="resolve the notebooks' relative output folders and the report against ROOT instead of "
                        "the repository root (outputs then go to ROOT/figures/<profile>/...)")
    p.add_argument("--executed-dir", type=Path, default=None,
                   help="where executed notebooks go (default: executed/<profile>-<timestamp>/, git-ignored)")
    p.add_argument("--notebook-dir", type=Path, default=NOTEBOOK_DIR, help=argparse.SUPPRESS)
    p.add_argument("--log-output", action="store_true", help="stream the notebooks' output to the terminal")


def _list(notebooks: list[Path], declared: dict[Path, dict[str, Parameter]]) -> int:
    for nb in notebooks:
        print(nb.stem)
        for param in declared[nb].values():
            print(f"    {describe(param)}")
    return 0


def _summary(results: list[NotebookResult]) -> str:
    rows = [("notebook", "status", "wall", "headline metrics")]
    rows += [(r.name, r.status, f"{r.wall_s:6.1f} s", headline_text(r.metrics)) for r in results]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + " | " + r[3] for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def plan(notebooks: list[Path], declared: dict[Path, dict[str, Parameter]], texts: dict[str, str],
         profile: str, root: Path | None) -> dict[Path, dict[str, Any]]:
    """Each notebook's typed overrides; every problem is found here, before anything runs (ParameterError)."""
    if "profile" in texts:
        raise ParameterError(f"-p profile={texts['profile']} would run the notebooks under one profile and file "
                             f"the results under another; use --profile {texts['profile']}")
    unknown = [k for k in texts if not any(k in d for d in declared.values())]
    if unknown:
        raise ParameterError(f"parameter(s) {unknown} are declared by none of the selected notebooks "
                             f"({', '.join(nb.stem for nb in notebooks)}); see --list")
    takers = [nb.stem for nb in notebooks if "out_dir" in declared[nb]]
    if "out_dir" in texts and len(takers) > 1:
        raise ParameterError(f"-p out_dir would send {len(takers)} notebooks ({', '.join(takers)}) to one folder; "
                             "select one with --only")
    out: dict[Path, dict[str, Any]] = {}
    for nb in notebooks:
        try:
            out[nb] = convert_overrides(texts, declared[nb])
            notebook_out_dir(nb, profile, out[nb].get("out_dir"), root)  # a bad template fails now
        except ValueError as err:
            raise ParameterError(f"{nb.stem}: {err}") from None
    return out


def execute(args: argparse.Namespace) -> int:
    """Execute the selected notebooks; return the process exit code (0 only if all succeeded)."""
    try:
        every = discover(args.notebook_dir)
        notebooks = select(every, args.only)
        texts = parse_overrides(args.param)
        declared = {nb: notebook_parameters(nb) for nb in notebooks}
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not notebooks:
        print(f"error: no notebooks found in {args.notebook_dir}", file=sys.stderr)
        return 2
    if args.list:
        return _list(notebooks, declared)
    try:
        overrides = plan(notebooks, declared, texts, args.profile, args.root)
    except ParameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    executed_dir = args.executed_dir or resolve_repo_path(f"executed/{args.profile}-{stamp}")
    kernel = ensure_kernel()
    results: list[NotebookResult] = []
    bar = tqdm(notebooks, desc=f"notebooks ({args.profile})", unit="nb")
    for nb in bar:
        bar.set_postfix_str(nb.stem)
        res = run_notebook(nb, args.profile, executed_dir, overrides[nb], kernel, args.log_output, root=args.root)
        results.append(res)
        if res.error:
            tqdm.write(f"FAILED: {res.error}", file=sys.stderr)
    bar.close()

    from .environment import describe as describe_environment

    env = describe_environment()
    profile_dir = resolve_out_dir(PROFILE_DIR, args.profile, args.root)
    # the options as typed, whether started as `specreg reproduce ...` or `python -m specreg_lib.kit.reproduce ...`
    typed = sys.argv[1:]
    if Path(sys.argv[0]).name in ("specreg", "cli.py") and typed[:1] == ["reproduce"]:
        typed = typed[1:]
    command = shlex.join(["specreg", "reproduce", *typed])
    report = write_report(profile_dir / "report.html", gather(every, args.profile, results, args.root),
                          args.profile, env, command)
    write_json(profile_dir / "summary.json", {
        "profile": args.profile, "executed_dir": str(executed_dir),
        "overrides": {nb.stem: o for nb, o in overrides.items()},
        "device": env["device"], "versions": env["versions"],
        "notebooks": [{"name": r.name, "status": r.status, "wall_s": r.wall_s, "cell_exec_s": r.cell_exec_s,
                       "executed": str(r.executed), "out_dir": str(r.out_dir), "error": r.error,
                       "headline": (r.metrics or {}).get("headline")} for r in results]})
    print("\n" + _summary(results))
    print(f"\nreport: {report}\nexecuted notebooks: {executed_dir}")
    failed = [r for r in results if r.status != "ok"]
    if failed:
        print(f"\n{len(failed)} of {len(results)} notebook(s) failed:", file=sys.stderr)
        for r in failed:
            print(f"- {r.error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m specreg_lib.kit.reproduce``."""
    return standalone("reproduce", sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
