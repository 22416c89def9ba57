"""Run the kit's notebooks with papermill: discovery, parameters, the Jupyter kernel, failures.

Each notebook ``notebooks/NN_name.ipynb`` gets ``profile`` and ``out_dir = figures/<profile>/NN_name``
(plus the user's overrides that it declares) and writes ``metrics.json`` and PNG+PDF figures there.
The executed copy goes to the run folder (git-ignored), so a failing cell can be inspected.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .reporting import METRICS_FILE

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
KERNEL_NAME = "specreg"


def discover(notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """Notebooks to run, in order: ``NN_name.ipynb`` sorted by name (checkpoint folders ignored)."""
    return sorted(p for p in notebook_dir.glob("[0-9][0-9]_*.ipynb") if p.is_file())


def select(notebooks: list[Path], only: list[str] | None) -> list[Path]:
    """Keep the notebooks named by ``only`` (stem, stem without the number prefix, or file name)."""
    if not only:
        return notebooks
    chosen = []
    for name in only:
        key = Path(name).stem
        hits = [p for p in notebooks if key in (p.stem, p.stem.split("_", 1)[1])]
        if not hits:
            raise ValueError(f"--only {name!r} matches no notebook; available: "
                             f"{', '.join(p.stem for p in notebooks)}")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def parse_value(text: str) -> Any:
    """A ``-p key=value`` value: a Python literal (int, float, bool, None, list) if it parses, else a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` with a clear error for a malformed pair."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"parameter {pair!r} is not of the form key=value (key a Python identifier)")
        out[key] = parse_value(value)
    return out


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """The names the notebook's ``parameters`` cell declares (papermill's inspection)."""
    import papermill

    return papermill.inspect_notebook(str(notebook))


def ensure_kernel() -> str:
    """Register this interpreter as the ``specreg`` Jupyter kernel (inside its prefix) if it is not yet."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    spec_dir = specs.get(KERNEL_NAME)
    if spec_dir is not None:
        argv = json.loads((Path(spec_dir) / "kernel.json").read_text())["argv"]
        if Path(argv[0]).resolve() == Path(sys.executable).resolve():
            return KERNEL_NAME
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL_NAME,
                    "--display-name", "Python (specreg)"], check=True, capture_output=True)
    return KERNEL_NAME


@dataclasses.dataclass
class NotebookResult:
    """The outcome of one notebook: status, wall time, where its outputs are, and the failure if any."""

    name: str
    status: str  # "ok" | "failed"
    wall_s: float
    executed: Path
    out_dir: Path
    metrics: dict[str, Any] | None = None
    error: str | None = None
    cell_exec_s: float | None = None  # sum of the cells' own execution times (papermill metadata)


def _cells_time(executed: Path) -> float | None:
    try:
        nb = json.loads(executed.read_text())
    except (OSError, ValueError):
        return None
    durations = [c.get("metadata", {}).get("papermill", {}).get("duration") for c in nb.get("cells", [])]
    return float(sum(d for d in durations if d is not None)) if durations else None


def describe_failure(err: Exception, executed: Path, notebook: Path) -> str:
    """Name the notebook, the failing cell (index and first source line), the error and the executed copy."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(err, PapermillExecutionError):
        first = next((ln for ln in err.source.splitlines() if ln.strip()), "")
        return (f"notebook {notebook.name} failed in cell {err.cell_index} "
                f"(execution count {err.exec_count}, starting `{first.strip()[:80]}`): "
                f"{err.ename}: {err.evalue}\n  executed copy: {executed}")
    return f"notebook {notebook.name} failed before its cells ran: {type(err).__name__}: {err}\n" \
           f"  executed copy: {executed}"


def run_notebook(notebook: Path, profile: str, run_dir: Path, figures_dir: Path,
                 overrides: dict[str, Any] | None = None, kernel_name: str | None = None,
                 log_output: bool = False) -> NotebookResult:
    """Execute one notebook under papermill; never raises for a notebook error (returns status 'failed')."""
    import papermill

    out_dir = (figures_dir / profile / notebook.stem).resolve()
    executed = (run_dir / notebook.name).resolve()
    executed.parent.mkdir(parents=True, exist_ok=True)
    params = {"profile": profile, "out_dir": str(out_dir), **(overrides or {})}
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(str(notebook), str(executed), parameters=params,
                                   kernel_name=kernel_name or ensure_kernel(), progress_bar=False,
                                   log_output=log_output, cwd=str(REPO_ROOT))
    except Exception as err:  # noqa: BLE001 - any failure is reported and the run goes on
        return NotebookResult(notebook.stem, "failed", time.perf_counter() - t0, executed, out_dir,
                              error=describe_failure(err, executed, notebook), cell_exec_s=_cells_time(executed))
    wall = time.perf_counter() - t0
    metrics_path = out_dir / METRICS_FILE
    if not metrics_path.is_file():
        return NotebookResult(notebook.stem, "failed", wall, executed, out_dir,
                              error=f"notebook {notebook.name} ran but wrote no {metrics_path}\n"
                                    f"  executed copy: {executed}", cell_exec_s=_cells_time(executed))
    metrics = json.loads(metrics_path.read_text())
    return NotebookResult(notebook.stem, "ok", wall, executed, out_dir, metrics=metrics,
                          cell_exec_s=_cells_time(executed))
