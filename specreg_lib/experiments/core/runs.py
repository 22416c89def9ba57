"""Run folders: one self-describing folder per trained model, a lock, snapshots per step count, cached results.

Layout of ``<root>/<experiment>/<label>_<hash>/`` (the hash covers every field that can change the trained
model, except ``train.steps``; see ``protocol.RUNTIME_FIELDS``):

    config.json                      the run's config (train.steps = the last target trained to)
    checkpoint.pt                    the training loop's resumable state (latest step)
    snapshots/step-0005000.pt        the sampling model (EMA) at each step count a caller asked for
    results/step-0005000-<key>/      samples, spectra (result.pt), metrics.json and config.json, keyed by
                                     the step count and the hash of the sample + evaluate sub-configs
                                     (archived.json instead of result.pt: installed from the archive, below)
    .lock                            held (fcntl) by the process training or evaluating this run

Every file is checked where it is read: a folder is reused only when its config.json is the requested run (its
recorded hash is the folder's name and its config hashes to the requested one: a renamed folder or an edited
config is refused); a step count must be an int in range; an unreadable metrics.json, result or lock names the file
and what to delete (:class:`RunFolderError`).

How ``steps`` enters: asking for N steps returns the snapshot at N, or resumes training from the latest
checkpoint when it is below N (then snapshots N), and REFUSES when the checkpoint is already past N without a
snapshot at N: a model is never returned under a step count it was not trained for. (With a learning-rate
schedule that depends on the total, e.g. cosine, ``steps`` is part of the hash instead: one folder per N.)
A second process on the same folder waits (``wait=True``) or stops with :class:`RunLocked` naming the holder.

The archive (``data/results/`` in the repository, the same layout): :func:`archive_result` copies a finished run's
config.json, its results' config.json and metrics.json (not result.pt: samples and spectra are megabytes) there, to be
committed. Run folders do not outlive the machine they were trained on; the archive does, so a study resumed on a
fresh clone counts an archived run as done and re-reads its metrics (:func:`install_archived`, called wherever a
run's state is read) instead of training it again. An installed result is checked like any other (its configs must
hash to the requested run); its :attr:`RunResult.arrays` are empty, which a figure that needs samples must allow for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ...errors import InputError
from ...io import atomic_path, write_json
from ...training import TrainResult, train
from ...training.checkpoint import load_checkpoint
from ...training.distributed import barrier, from_rank0, is_main, on_rank0
from .config import apply_overrides, load_config, save_config
from .protocol import Experiment

RESULT_FILE = "result.pt"
METRICS_FILE = "metrics.json"
ARCHIVED_FILE = "archived.json"  # in a results folder installed from the archive, in place of result.pt
ARCHIVE = "data/results"  # the committed archive of finished runs' metrics (relative to the repository root)


class RunLocked(InputError, RuntimeError):
    """Another process holds the run folder's lock."""


class StepsConflict(InputError, RuntimeError):
    """The run folder was trained past the requested step count and has no snapshot there."""


class RunFolderError(InputError, ValueError):
    """A file of a run folder is unreadable or belongs to another run; the message names it and what to delete."""


@dataclasses.dataclass
class RunResult:
    """One finished run: its config and folder, the step count, scalar metrics, arrays and loss history."""

    experiment: str
    config: Any
    run_dir: Path
    step: int
    metrics: dict[str, Any]
    arrays: dict[str, torch.Tensor]
    history: dict[str, list[float]]
    archived: bool = False  # installed from the archive: metrics only, ``arrays`` and ``history`` are empty

    @property
    def samples(self) -> torch.Tensor:
        if self.archived:
            raise RunFolderError(f"the result in {self.run_dir} was installed from the archive ({ARCHIVE}: metrics "
                                 f"only); its samples stayed on the machine that ran it: delete {self.run_dir} and "
                                 f"run it again to make them")
        return self.arrays["samples"]


def run_dir(experiment: Experiment, cfg: Any, root: str | os.PathLike) -> Path:
    """``<root>/<experiment>/<label>_<run hash>``."""
    return Path(root) / experiment.name / f"{experiment.label(cfg)}_{experiment.run_hash(cfg)}"


def results_dir(experiment: Experiment, cfg: Any, root: str | os.PathLike) -> Path:
    """Where the results of ``cfg`` at its ``train.steps`` live, keyed by everything that affects them."""
    steps = experiment.train_config(cfg).steps
    return run_dir(experiment, cfg, root) / "results" / f"step-{steps:07d}-{experiment.results_hash(cfg)}"


def snapshot_path(experiment: Experiment, cfg: Any, root: str | os.PathLike) -> Path:
    return run_dir(experiment, cfg, root) / "snapshots" / f"step-{experiment.train_config(cfg).steps:07d}.pt"


@contextlib.contextmanager
def run_lock(folder: Path, wait: bool = False, poll_s: float = 5.0) -> Iterator[None]:
    """Hold ``folder/.lock`` exclusively (fcntl; released by the OS if the process dies)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = _lock_file(folder)
    fh = open(path, "a+")  # noqa: SIM115 - held for the whole block
    try:
        told = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                if not wait:
                    raise RunLocked(f"run folder {folder} is in use by {holder}; wait for it to finish "
                                    "(or pass wait=True / --wait), or use another root") from None
                if not told:
                    print(f"waiting for {holder} to release {folder} ...", flush=True)
                    told = True
                time.sleep(poll_s)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        fh.flush()
        yield
    finally:
        with contextlib.suppress(OSError):
            fh.seek(0)
            fh.truncate()
        fh.close()  # closing releases the flock


def _lock_file(folder: Path) -> Path:
    """``folder/.lock``; refused when something other than a plain file (a folder, a socket) has that name."""
    path = folder / ".lock"
    if path.exists() and not path.is_file():
        raise RunFolderError(f"{path} is not a lock file (it is a {'folder' if path.is_dir() else 'special file'}); "
                             f"delete it (no process can hold it) and run again")
    return path


def is_locked(folder: Path) -> str | None:
    """Who holds ``folder/.lock`` right now, or None."""
    path = _lock_file(folder)
    if not path.exists():
        return None
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            return fh.read().strip() or "another process"
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


def checkpoint_step(path: Path) -> int | None:
    """The step stored in a training checkpoint (read lazily), or None when there is none."""
    if not path.exists():
        return None
    return _step(load_checkpoint(path, mmap=True), path, f"delete {path} (or its run folder {path.parent}) to "
                 "train this run again")


def _step(data: Any, path: Path, fix: str) -> int:
    """The ``step`` of a run file (checkpoint, snapshot, result): an int >= 0, else the file is refused."""
    step = data.get("step") if isinstance(data, dict) else None
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        what = f"step {step!r}" if isinstance(data, dict) and "step" in data else "no step"
        raise RunFolderError(f"{path} holds {what}, not a step count (an int >= 0): it was not written by a run; "
                             f"{fix}")
    return step


def load_result(experiment: Experiment, cfg: Any, folder: Path) -> RunResult:
    """Read a finished run's results folder (tensors only: weights_only loading), refusing files that are
    unreadable or not those of ``cfg`` at its steps."""
    fix = f"delete the results folder {folder} to evaluate the trained snapshot again"
    try:
        metrics = json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError: truncated, not JSON
        raise RunFolderError(f"{folder / METRICS_FILE} is not valid JSON ({err}; truncated or edited); {fix}") from None
    if not isinstance(metrics, dict):
        raise RunFolderError(f"{folder / METRICS_FILE} holds a {type(metrics).__name__}, not the metrics of a run; "
                             f"{fix}")
    steps = experiment.train_config(cfg).steps
    if not (folder / RESULT_FILE).exists() and (folder / ARCHIVED_FILE).exists():
        if metrics.get("steps") != steps:
            raise RunFolderError(f"{folder / METRICS_FILE} holds the metrics at step {metrics.get('steps')}, not at "
                                 f"the {steps} steps its folder is named for; {fix}")
        return RunResult(experiment.name, cfg, folder.parent.parent, steps, metrics, {}, {}, archived=True)
    data = load_checkpoint(folder / RESULT_FILE)
    if _step(data, folder / RESULT_FILE, fix) != steps:
        raise RunFolderError(f"{folder / RESULT_FILE} holds the results at step {data['step']}, not at the "
                             f"{steps} steps its folder is named for; {fix}")
    if not isinstance(data.get("arrays"), dict) or not isinstance(data.get("history"), dict):
        raise RunFolderError(f"{folder / RESULT_FILE} lacks the arrays or history of a result; {fix}")
    return RunResult(experiment.name, cfg, folder.parent.parent, steps, metrics, data["arrays"], data["history"])


def check_config_file(experiment: Experiment, cfg: Any, path: Path, hashes: dict[str, Any], fix: str) -> None:
    """Refuse a folder whose ``config.json`` (``path``) is not the run ``cfg`` asks for: a folder renamed to
    another config's hash, or an edited config, would otherwise be returned as ``cfg``'s result.

    ``hashes``: name -> function of a config (``run_hash``, ``results_hash``) whose value names the folder. Each
    must be the value config.json recorded when it was written (the name was not changed since) and the value of
    the config it holds, recomputed (its content is the requested run's). The per-process batch and the
    accumulation rounds are taken from ``cfg`` for the recomputation: what they fix, the global batch and the
    shard count, depends on the world size at hand, and a resumed checkpoint checks both itself."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        saved = load_config(experiment.config_class, path)
    except FileNotFoundError:
        raise RunFolderError(f"{path} is missing, so this folder cannot be checked to be the requested run; "
                             f"{fix}") from None
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, AttributeError) as err:
        raise RunFolderError(f"{path} is not a readable {experiment.config_class.__name__} config ({err}); "
                             f"{fix}") from None
    saved = apply_overrides(saved, {"train.batch_size": cfg.train.batch_size, "train.accumulate": cfg.train.accumulate})
    for name, fn in hashes.items():
        want, recorded, recomputed = fn(cfg), record.get(name), fn(saved)
        if recorded not in (None, want) or recomputed != want:
            found = recorded if recorded not in (None, want) else recomputed
            raise RunFolderError(f"{path} describes another run than its folder's name says ({name} {found}, "
                                 f"the folder and the requested config are {want}): the folder was renamed or its "
                                 f"config.json edited; {fix}")


def _check_run_folder(experiment: Experiment, cfg: Any, folder: Path) -> None:
    check_config_file(experiment, cfg, folder / "config.json", {"run_hash": experiment.run_hash},
                      f"delete the run folder {folder} to train this run again (or restore its name)")


def _check_results_folder(experiment: Experiment, cfg: Any, res_dir: Path) -> None:
    _check_run_folder(experiment, cfg, res_dir.parent.parent)
    check_config_file(experiment, cfg, res_dir / "config.json",
                      {"run_hash": experiment.run_hash, "results_hash": experiment.results_hash},
                      f"delete the results folder {res_dir} to evaluate the trained snapshot again")


# ---------------------------------------------------------------- the cache: plain functions of the folder's files


def _has_results(res_dir: Path) -> bool:
    return (res_dir / METRICS_FILE).exists()  # metrics.json is written last: it marks the results complete


def _cache_state(experiment: Experiment, cfg: Any, root: str | os.PathLike) -> tuple[str, int | None]:
    """What the run folder's files hold for ``cfg`` at its ``train.steps``, and the checkpoint's step:
    "done" (results), "trained" (a snapshot, no results), "missing" / "partial" (no checkpoint / one below the
    steps: train or resume), "conflict" (a checkpoint past the steps with no snapshot there)."""
    if _has_results(results_dir(experiment, cfg, root)):
        return "done", None
    if snapshot_path(experiment, cfg, root).exists():
        return "trained", None
    step = checkpoint_step(run_dir(experiment, cfg, root) / "checkpoint.pt")
    if step is None:
        return "missing", None
    return ("conflict" if step > experiment.train_config(cfg).steps else "partial"), step


def _reuse_state(experiment: Experiment, cfg: Any, root: str | os.PathLike) -> tuple[str, int | None]:
    """:func:`_cache_state`, after checking that whatever the folder holds is ``cfg``'s run."""
    state, step = _cache_state(experiment, cfg, root)
    if state == "done":
        _check_results_folder(experiment, cfg, results_dir(experiment, cfg, root))
    elif state != "missing":
        _check_run_folder(experiment, cfg, run_dir(experiment, cfg, root))
    return state, step


# ---------------------------------------------------------------- the archive: finished runs' metrics, committed


def archive_root() -> Path:
    """The repository's ``data/results`` (under ``$SPECREG_ROOT`` when set, as every output)."""
    from ...io import resolve_repo_path

    return resolve_repo_path(ARCHIVE)


def _copy(src: Path, dst: Path) -> None:
    import shutil

    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def archive_result(experiment: Experiment, cfg: Any, root: str | os.PathLike) -> Path:
    """Copy ``cfg``'s finished results under ``root`` into the archive (the run's config.json; the results'
    config.json and metrics.json, metrics last) and return the archived results folder. Refuses a run that has no
    results, or whose folder is not ``cfg``'s run."""
    src = results_dir(experiment, cfg, root)
    if not _has_results(src):
        raise RunFolderError(f"{src} holds no results: only a finished run can be archived (run it first)")
    _check_results_folder(experiment, cfg, src)
    dst = results_dir(experiment, cfg, archive_root())
    if dst.resolve() == src.resolve():
        return dst
    _copy(src.parent.parent / "config.json", dst.parent.parent / "config.json")
    _copy(src / "config.json", dst / "config.json")
    write_json(dst / ARCHIVED_FILE, {"experiment": experiment.name, "label": experiment.label(cfg),
                                     "left_out": RESULT_FILE, "why": "arrays (samples, spectra) stay on the machine "
                                     "that ran it; the metrics are the result"})
    _copy(src / METRICS_FILE, dst / METRICS_FILE)  # last: its presence marks the archived results complete
    return dst


def install_archived(experiment: Experiment, cfg: Any, root: str | os.PathLike) -> bool:
    """Put the archived results of ``cfg`` under ``root`` when its own are missing; returns whether ``root`` holds
    results now. The copy is checked where it is read, as every results folder is."""
    dst = results_dir(experiment, cfg, root)
    if _has_results(dst):
        return True
    src = results_dir(experiment, cfg, archive_root())
    if not _has_results(src) or src.resolve() == dst.resolve():
        return False
    if not (dst.parent.parent / "config.json").exists():  # a partial local run keeps its own
        _copy(src.parent.parent / "config.json", dst.parent.parent / "config.json")
    for name in ("config.json", ARCHIVED_FILE, METRICS_FILE):  # metrics.json last
        _copy(src / name, dst / name)
    return True


def run_state(experiment: Experiment, cfg: Any, root: str | os.PathLike) -> tuple[str, str]:
    """(state, detail): "done", "running", "trained" (snapshot, no results yet), "partial", "conflict", "missing".
    An archived result of a run missing here is installed first (:func:`install_archived`): it is "done"."""
    install_archived(experiment, cfg, root)
    done = _has_results(results_dir(experiment, cfg, root))
    holder = None if done else is_locked(run_dir(experiment, cfg, root))  # before reading a checkpoint in use
    if holder:
        return "running", holder
    state, step = _cache_state(experiment, cfg, root)
    steps = experiment.train_config(cfg).steps
    return state, {"done": f"{steps} steps", "trained": f"{steps} steps, not evaluated", "missing": "",
                   "conflict": f"trained to {step} > {steps} steps without a snapshot at {steps}",
                   "partial": f"step {step}/{steps}"}[state]


def _train(experiment: Experiment, cfg: Any, folder: Path, desc: str | None) -> TrainResult:
    """Train from scratch or resume ``folder/checkpoint.pt`` up to ``train.steps`` (every rank takes part)."""
    torch.manual_seed(experiment.seed(cfg))  # the initial weights: identical for every variant of a seed
    model = experiment.build_model(cfg)
    return train(model, experiment.build_loss(cfg), experiment.build_data(cfg), experiment.train_config(cfg),
                 ckpt_path=folder / "checkpoint.pt", desc=desc or experiment.label(cfg),
                 meta=experiment.model_meta(cfg))


def _save_snapshot(experiment: Experiment, cfg: Any, res: TrainResult, snap: Path) -> None:
    """The sampling model at the trained step, with the loss history and timings the results report."""
    seconds = {"seconds_per_step": res.seconds_per_step, "train_seconds": res.train_seconds,
               "nonfinite_steps": res.nonfinite_steps, "overflow_steps": res.overflow_steps}  # skipped: shown
    with atomic_path(snap) as tmp:
        torch.save({"model": res.sampling_model.state_dict(), "step": res.step, "history": res.history,
                    "train": seconds, "meta": experiment.model_meta(cfg)}, tmp)


def _evaluate_snapshot(experiment: Experiment, cfg: Any, snap: Path, res_dir: Path) -> RunResult:
    """Sample the snapshot once, evaluate the samples and write the results folder."""
    # Always from the snapshot file, also right after training, as a later re-evaluation does: an in-memory copy
    # can differ from reloaded tensors in the last bit of some conv outputs (measured 6e-8 on the toy).
    sampling_model = experiment.build_model(cfg)
    data = load_checkpoint(snap)
    fix = f"delete {snap} to train (or resume) this run to its steps again"
    steps = experiment.train_config(cfg).steps
    if _step(data, snap, fix) != steps or not all(isinstance(data.get(k), dict) for k in ("model", "history", "train")):
        raise RunFolderError(f"{snap} is not the snapshot of this run at step {steps} (it holds step "
                             f"{data['step']}, keys {sorted(data)}); {fix}")
    sampling_model.load_state_dict(data["model"])
    history, seconds = data["history"], data["train"]
    samples = experiment.sample(cfg, sampling_model)
    metrics, arrays = experiment.evaluate(cfg, samples)
    tcfg = experiment.train_config(cfg)
    loss = [v for v in history.get("loss", [])[-100:] if v == v]
    metrics = {"experiment": experiment.name, "label": experiment.label(cfg), "seed": experiment.seed(cfg),
               "steps": tcfg.steps, "device": str(tcfg.device),
               "parameters": sum(p.numel() for p in sampling_model.parameters()), **seconds,
               "final_loss": sum(loss) / max(1, len(loss)), **metrics}
    with atomic_path(res_dir / RESULT_FILE) as tmp:
        torch.save({"step": tcfg.steps, "arrays": {"samples": samples, **arrays},
                    "history": {k: list(v) for k, v in history.items() if k in ("loss", "grad_norm")}}, tmp)
    save_config(cfg, res_dir / "config.json", experiment=experiment.name, run_hash=experiment.run_hash(cfg),
                results_hash=experiment.results_hash(cfg))
    write_json(res_dir / METRICS_FILE, metrics)  # written last: its presence marks the results complete
    return load_result(experiment, cfg, res_dir)


# ---------------------------------------------------------------- one run, and the ranks under torchrun


@contextlib.contextmanager
def _lock_on_rank0(folder: Path, wait: bool) -> Iterator[None]:
    """Rank 0 holds the run's lock; if it cannot, EVERY rank raises its error, e.g. RunLocked (none is left waiting
    in a collective)."""
    with contextlib.ExitStack() as stack:
        refused = None
        if is_main():
            try:
                stack.enter_context(run_lock(folder, wait=wait))
            except InputError as err:  # RunLocked, or a .lock that is not a file
                refused = err
        refused = from_rank0(refused)
        if refused is not None:
            raise refused
        yield


def run(experiment: Experiment, cfg: Any, root: str | os.PathLike, wait: bool = False,
        desc: str | None = None) -> RunResult:
    """Train (or resume, or reuse) one run, sample it once and evaluate; every step is cached on disk.

    Under torchrun rank 0 holds the lock and reads the folder's state, and every rank follows its decision: all
    ranks train, rank 0 alone writes and evaluates, the others then read its results.
    """
    folder, res_dir, snap = (run_dir(experiment, cfg, root), results_dir(experiment, cfg, root),
                             snapshot_path(experiment, cfg, root))
    # a finished (or archived) run is only re-read, without taking the lock
    if on_rank0(lambda: install_archived(experiment, cfg, root)):
        on_rank0(lambda: _check_results_folder(experiment, cfg, res_dir))
        return load_result(experiment, cfg, res_dir)
    with _lock_on_rank0(folder, wait):
        # rank 0 reads the folder; a file it refuses stops every rank (none waits in a collective)
        state, step = on_rank0(lambda: _reuse_state(experiment, cfg, root))
        if state == "done":  # another process finished it while we waited
            return load_result(experiment, cfg, res_dir)
        steps = experiment.train_config(cfg).steps
        if state == "conflict":
            raise StepsConflict(f"{folder} was trained to {step} steps and has no snapshot at {steps}; "
                                f"ask for >= {step} steps, or use another root for a {steps}-step run")
        if state in ("missing", "partial"):
            if is_main():
                save_config(cfg, folder / "config.json", experiment=experiment.name,
                            run_hash=experiment.run_hash(cfg))
            res = _train(experiment, cfg, folder, desc)
            if is_main():
                _save_snapshot(experiment, cfg, res, snap)
        result = _evaluate_snapshot(experiment, cfg, snap, res_dir) if is_main() else None
    barrier()  # rank 0's results are on disk before another rank reads them
    return result if result is not None else load_result(experiment, cfg, res_dir)
