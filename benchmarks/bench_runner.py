"""Runner overhead per notebook: wall time of the runner minus the notebook cells' own execution time.

The overhead is what the kit adds beyond the notebook's work: kernel start-up, papermill's parameter
injection and save, metrics read-back. Measured side by side on a trivial notebook and on the environment
notebook, plus plain ``papermill.execute_notebook`` on the same trivial notebook for comparison.

    python benchmarks/bench_runner.py [--repeats 3] [--out benchmarks/results/bench_runner.txt]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nbformat
import papermill
from _report import add_out_argument, spread, tee_to

from specreg_lib.kit.paths import NOTEBOOK_DIR
from specreg_lib.kit.runner import ensure_kernel, run_notebook


def _trivial(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('profile: str = "smoke"  # p\nout_dir: str = "figures/{profile}/99_trivial"',
                                          metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("from specreg_lib.kit.outputs import write_metrics\n"
                                          "from specreg_lib.kit.paths import resolve_out_dir\n"
                                          "write_metrics(resolve_out_dir(out_dir, profile), 'trivial', profile, "
                                          "{'one': 1.0}, {'one': {'meaning': 'one', 'better': 'neither'}})")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    add_out_argument(ap)
    args = ap.parse_args()
    with tee_to(args.out):
        run(args)


def run(args: argparse.Namespace) -> None:
    """Run each notebook ``args.repeats`` times through the runner (and plain papermill); print the table."""
    kernel = ensure_kernel()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trivial = _trivial(tmp / "99_trivial.ipynb")
        for label, nb in [("trivial notebook (2 cells)", trivial),
                          ("00_environment", NOTEBOOK_DIR / "00_environment.ipynb")]:
            walls, cells = [], []
            for i in range(args.repeats):
                res = run_notebook(nb, "smoke", tmp / f"run{i}", kernel_name=kernel, root=tmp / "fig")
                assert res.status == "ok", res.error
                walls.append(res.wall_s)
                cells.append(res.cell_exec_s or 0.0)
            rows.append((label, walls, cells))
        plain = []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            papermill.execute_notebook(str(trivial), str(tmp / f"plain{i}.ipynb"), kernel_name=kernel,
                                       parameters={"out_dir": str(tmp / "plain")}, progress_bar=False)
            plain.append(time.perf_counter() - t0)
    print(f"runner overhead per notebook (median [min, max] of {args.repeats}; goal <= 5 s)\n")
    print("| notebook | runner wall (s) | cells' own execution (s) | overhead (s) |")
    print("|---|---|---|---|")
    for label, walls, cells in rows:
        overhead = [w - c for w, c in zip(walls, cells, strict=True)]
        print(f"| {label} | {spread(walls)} | {spread(cells)} | {spread(overhead)} |")
    print(f"| plain papermill.execute_notebook, trivial notebook | {spread(plain)} | | |")


if __name__ == "__main__":
    main()
