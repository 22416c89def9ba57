"""Run the kit's notebooks with papermill: discovery, output folders, the Jupyter kernel, failures.

Each notebook ``notebooks/NN_name.ipynb`` gets ``profile`` (plus the user's overrides that it declares) and
writes ``metrics.json`` and PNG+PDF figures to its ``out_dir``: the template its parameters cell declares
(``figures/{profile}/NN_name``) or the user's ``-p out_dir=...``, resolved by ``paths.resolve_out_dir``.
The executed copy goes to the run folder (git-ignored), so a failing cell can be inspected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .outputs import METRICS_FILE, read_metrics
from .parameters import notebook_parameters
from .paths import NOTEBOOK_DIR, REPO_ROOT, escape_template, resolve_out_dir

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


def notebook_out_dir(notebook: Path, profile: str, out_dir: str | None = None,
                     root: str | os.PathLike | None = None) -> Path:
    """Where ``notebook`` writes under ``profile``: ``out_dir`` if given, else the template it declares."""
    if out_dir is None:
        declared = notebook_parameters(notebook).get("out_dir")
        if declared is None or not isinstance(declared.default, str):
            raise ValueError(f"{notebook.name}: its parameters cell declares no `out_dir: str = "
                             f"\"figures/{{profile}}/{notebook.stem}\"`")
        out_dir = declared.default
    return resolve_out_dir(out_dir, profile, root)


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


def kernel_manager_class() -> type:
    """The kernel manager papermill starts kernels with: local IPC sockets on POSIX, else jupyter's default.

    Why: over TCP every kernel logs "running over TCP without encryption ... eavesdropping" on our stderr, in
    the middle of the progress bars. A kernel on this machine needs no network socket at all, so IPC (Unix
    domain sockets, private to the user's runtime folder) is both quieter and the safer transport."""
    from jupyter_client.manager import AsyncKernelManager

    if os.name != "posix":
        return AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        """AsyncKernelManager whose kernels talk over IPC sockets instead of localhost TCP.

        Each kernel gets its sockets in a private folder of its own: jupyter's default IPC path is
        ``kernel-ipc-N`` in the working directory, where two kernels started at once (two notebooks run side
        by side from one checkout) can pick the same N and fail with "Invalid Signature"."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.transport = "ipc"
            self._ipc_dir = tempfile.mkdtemp(prefix="specreg-kernel-")  # 0700, removed at clean-up
            self.ip = os.path.join(self._ipc_dir, "ipc")

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if not restart:
                shutil.rmtree(self._ipc_dir, ignore_errors=True)

        cleanup_resources = _async_cleanup_resources

    return IPCKernelManager


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


@contextlib.contextmanager
def _quiet_papermill_reader(names: set[str]) -> Iterator[None]:
    """Hide papermill's reader warnings ("Unable to parse line", "Passed unknown parameter") for the lines and
    names it misses (``x: T | None``, a comment holding ``=``): the kit reads the cell itself (``parameters``)."""
    def keep(record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if msg.startswith("Passed unknown parameter: "):
            return msg.split(": ", 1)[1] not in names
        return not msg.startswith("Unable to parse line ")

    loggers = [logging.getLogger("papermill"), logging.getLogger("papermill.translators")]
    for logger in loggers:
        logger.addFilter(keep)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(keep)


def run_notebook(notebook: Path, profile: str, executed_dir: Path, overrides: dict[str, Any] | None = None,
                 kernel_name: str | None = None, log_output: bool = False,
                 root: str | os.PathLike | None = None) -> NotebookResult:
    """Execute one notebook under papermill; never raises for a notebook error (returns status 'failed').

    ``overrides`` are typed values (``parameters.convert`` turns ``-p`` text into them); an ``out_dir`` among
    them replaces the notebook's template. ``root`` replaces the repository root for relative output folders.
    """
    import papermill

    overrides = dict(overrides or {})
    if "profile" in overrides:
        raise ValueError("pass the profile as the `profile` argument, not as an override")
    out_dir = notebook_out_dir(notebook, profile, overrides.pop("out_dir", None), root)
    executed = (executed_dir / notebook.name).resolve()
    executed.parent.mkdir(parents=True, exist_ok=True)
    params = {"profile": profile, **overrides, "out_dir": escape_template(out_dir)}
    started = time.time()
    t0 = time.perf_counter()
    try:
        with _quiet_papermill_reader(set(notebook_parameters(notebook))):
            papermill.execute_notebook(str(notebook), str(executed), parameters=params,
                                       kernel_name=kernel_name or ensure_kernel(), progress_bar=False,
                                       log_output=log_output, cwd=str(REPO_ROOT),
                                       kernel_manager_class=kernel_manager_class())
    except Exception as err:  # noqa: BLE001 - any failure is reported and the run goes on
        return NotebookResult(notebook.stem, "failed", time.perf_counter() - t0, executed, out_dir,
                              error=describe_failure(err, executed, notebook), cell_exec_s=_cells_time(executed))
    wall = time.perf_counter() - t0
    metrics_path = out_dir / METRICS_FILE
    metrics = read_metrics(out_dir)
    if metrics is None or metrics_path.stat().st_mtime < started - 1:
        return NotebookResult(notebook.stem, "failed", wall, executed, out_dir,
                              error=f"notebook {notebook.name} ran but wrote no new {metrics_path}\n"
                                    f"  executed copy: {executed}", cell_exec_s=_cells_time(executed))
    return NotebookResult(notebook.stem, "ok", wall, executed, out_dir, metrics=metrics,
                          cell_exec_s=_cells_time(executed))
