"""What every staged A/B study shares (the audio study ``ab_audio``, the image study ``ab_images``): running a
list of run configs with several workers, the pre-registered choice of one setting per kind from the screening
seed, and counting what a stage has done and left for its ``--status``.

A study is a plan of stages (pretrain -> screen -> evaluate); every run of a stage goes through :func:`.runs.run`
(run folders, locks, resume, cached results), so a study killed at any point resumes where it stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ...io import read_json, write_json
from .protocol import Experiment
from .runs import (
    ARCHIVE,
    RunLocked,
    RunResult,
    archive_result,
    checkpoint_step,
    results_dir,
    run,
    run_dir,
    run_state,
)

NO_MEASUREMENT = "no measurement of this configuration yet"


COMMITTED = "data/pretrained"  # committed pretrained nets: <COMMITTED>/<study>/<profile>/<file name> + .sha256


class CommittedCopyError(InputError, ValueError):
    """A committed pretrained net whose bytes do not match its recorded SHA-256."""


def committed_copy(path: Path, study: str, profile: str) -> Path:
    """Where the repository keeps a committed copy of the pretrained net ``path`` (same file name)."""
    from ...io import resolve_repo_path

    return resolve_repo_path(f"{COMMITTED}/{study}/{profile}/{path.name}")


def install_committed(path: Path, study: str, profile: str) -> bool:
    """Put the committed copy of a pretrained net at ``path`` when ``path`` is missing: the file name carries the
    pretraining run's hash and steps, so a copy of that name is that pretraining; its bytes are checked against the
    committed ``.sha256`` first. Returns whether ``path`` exists now. A study calls this before pretraining, so a
    fresh clone skips the hours of pretraining the committed file stands for."""
    import shutil

    from ...assets import sha256_file
    from ...io import atomic_path

    if path.is_file():
        return True
    src = committed_copy(path, study, profile)
    if not src.is_file():
        return False
    want = src.with_name(src.name + ".sha256").read_text().split()[0] if src.with_name(
        src.name + ".sha256").is_file() else None
    got = sha256_file(src)
    if want != got:
        raise CommittedCopyError(f"{src}: SHA-256 {got} does not match its {src.name}.sha256 ({want}); restore the "
                                 f"file with git (git checkout -- {COMMITTED}) or delete both to pretrain again")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        shutil.copyfile(src, tmp)
    return True


def commit_copy(path: Path, study: str, profile: str) -> Path:
    """Copy a pretrained net into the repository's committed folder with its ``.sha256`` (for ``git add``)."""
    import shutil

    from ...assets import sha256_file
    from ...io import atomic_path

    dest = committed_copy(path, study, profile)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        shutil.copyfile(path, tmp)
    with atomic_path(dest.with_name(dest.name + ".sha256")) as tmp:
        tmp.write_text(f"{sha256_file(path)}  {path.name}\n")
    return dest


def timing_path(experiment: Experiment, cfg: Any, root: Path, study: Path) -> Path:
    """``<study>/timings/<run folder>-<results folder>.json``: one run's measured evaluation seconds."""
    res = results_dir(experiment, cfg, root)
    return study / "timings" / f"{res.parent.parent.name}-{res.name}.json"


def diverged_path(experiment: Experiment, cfg: Any, root: Path, study: Path) -> Path:
    """``<study>/diverged/<run folder>.json``: the record of a run that skipped most of its steps as non-finite."""
    return study / "diverged" / f"{run_dir(experiment, cfg, root).name}.json"


def diverged(experiment: Experiment, cfg: Any, root: Path, study: Path) -> dict[str, Any] | None:
    """The divergence record of ``cfg``'s run (what the training loop said), or None if it did not diverge."""
    return read_record(diverged_path(experiment, cfg, root, study))


def run_all(experiment: Experiment, root: Path, configs: list[Any], study: Path, say: Callable[[str], None],
            timing: Callable[[Any, RunResult], Mapping[str, Any]] = lambda cfg, res: {},
            allow_divergence: bool = False) -> list[RunResult | None]:
    """Run (resume, or re-read) each config; one held by another worker is put off and awaited at the end.

    The seconds an evaluation took (wall time less training time) are written to :func:`timing_path` with the
    fields ``timing(cfg, result)`` adds (e.g. the schedule), for the status estimate. ``allow_divergence``: a run
    the training loop stops as non-finite (``NonFiniteSteps``: a term too strong for the net) is recorded in
    :func:`diverged_path` and not retried, and its result is None (a screen treats it as failing every guard);
    otherwise the error ends the study."""
    from ...training.loop import NonFiniteSteps

    results: dict[int, RunResult | None] = {}
    later = []

    def one(k: int, wait: bool) -> None:
        cfg = configs[k]
        if allow_divergence and diverged(experiment, cfg, root, study):
            results[k] = None
            return
        before = run_state(experiment, cfg, root)[0]
        t0 = time.perf_counter()
        if before != "done":
            say(f"[{k + 1}/{len(configs)}] {experiment.label(cfg)}: {before}")
        try:
            results[k] = res = run(experiment, cfg, root, wait=wait)
        except NonFiniteSteps as err:
            if not allow_divergence:
                raise
            write_json(diverged_path(experiment, cfg, root, study), {"run": run_dir(experiment, cfg, root).name,
                                                                     "error": str(err)})
            say(f"[{k + 1}/{len(configs)}] {experiment.label(cfg)}: diverged ({err})")
            results[k] = None
            return
        if before in ("missing", "partial", "trained"):
            trained = res.metrics.get("train_seconds", 0.0) if before != "trained" else 0.0
            write_json(timing_path(experiment, cfg, root, study),
                       {**timing(cfg, res), "eval_seconds": max(0.0, time.perf_counter() - t0 - trained)})

    for k in range(len(configs)):
        try:
            one(k, wait=False)
        except RunLocked:
            later.append(k)
    for k in later:
        one(k, wait=True)
    return [results[k] for k in range(len(configs))]


def run_stages(stages: Mapping[str, Callable[[], Any]], stage: str) -> list[Any]:
    """Run ``stage`` (a key of ``stages``, in order) or every stage ("all"); the last stage's results."""
    out: list[Any] = []
    for name, fn in stages.items():
        if stage in (name, "all"):
            out = fn()
    return out


def add_study_arguments(p: Any, doc: str, stages: tuple[str, ...], archive: bool = True,
                        profiles: Mapping[str, str] | None = None) -> None:
    """The options every study door has: --profile, --stage, --root, --status, --dry-run, --json, and --archive
    where the study's tables need only its runs' metrics (``archive``); ``profiles``: a study's plans beyond smoke and
    cpu, name -> what it is."""
    extra = dict(profiles or {})
    p.add_argument("--profile", default="smoke", choices=("smoke", "cpu", *extra),
                   help=f"smoke: a tiny net, a few steps per stage, seconds; cpu: the study ({doc})"
                        + "".join(f"; {name}: {what}" for name, what in extra.items()))
    p.add_argument("--stage", default="all", choices=(*stages, "all"), help="run one stage, or all in order")
    p.add_argument("--root", default="checkpoints",
                   help="run folders and the study's files (relative: from the repository root)")
    p.add_argument("--status", action="store_true", help="print what is done / left per stage, then exit")
    p.add_argument("--dry-run", action="store_true", help="list the runs of each stage known now, then exit")
    p.add_argument("--json", action="store_true", help="print the status as JSON instead of a table")
    if archive:
        p.add_argument("--archive", action="store_true",
                       help=f"copy the finished runs' metrics into {ARCHIVE}/ and the study's records into "
                            f"{COMMITTED}/ (commit both: a fresh clone resumes there), then exit")


def sig4(x: float) -> float:
    """``x`` to 4 significant digits: the resolution at which two target values count as a tie."""
    return float(f"{x:.4g}")


def choose_setting(screen: Mapping[float, Mapping[str, float]], baseline: Mapping[str, float], floor: float,
                   guard: str, target: str) -> dict[str, Any]:
    """A study's pre-registered rule for one kind: ``screen`` setting (a lambda) -> its screening-seed metrics.

    Candidates: settings whose ``guard`` metric is at most the baseline's plus ``floor`` (the guard's noise floor;
    lower is better). Chosen: the candidate with the lowest ``target`` (values equal to 4 significant digits tie,
    won by the smaller setting). No candidate: the smallest setting, marked ``guard_failed``.
    Returns {"lambda", "guard_failed", "limit" (the guard's bound), "candidates"}."""
    if not screen:
        raise ValueError("no screened setting to choose from")
    if not math.isfinite(floor) or floor < 0:
        raise ValueError(f"the {guard} noise floor must be a finite number >= 0, got {floor}")
    limit = baseline[guard] + floor
    candidates = sorted(lam for lam, m in screen.items() if m[guard] <= limit)
    if not candidates:
        return {"lambda": min(screen), "guard_failed": True, "limit": limit, "candidates": []}
    best = min(candidates, key=lambda lam: (sig4(screen[lam][target]), lam))
    return {"lambda": best, "guard_failed": False, "limit": limit, "candidates": candidates}


def format_duration(seconds: float) -> str:
    """``seconds`` as a short reading: 42 s, 12 min, 3.5 h, 2.1 days."""
    for unit, size in (("days", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def count_stage(experiment: Experiment, root: Path, configs: list[Any], pending_runs: int, pending_steps: int,
                pending_evals: Mapping[str, int], eval_kind: Callable[[Any], str]) -> dict[str, Any]:
    """One stage: runs (trainings) trained / left, evaluations done / left per ``eval_kind(cfg)`` (e.g. the
    sampling schedule), steps left, and the measured seconds per step of its finished runs. Reads only."""
    runs: dict[str, tuple[int, int]] = {}  # run hash -> (steps, steps left)
    evals_left = dict(pending_evals)
    done, rates = 0, []
    for cfg in configs:
        state, _ = run_state(experiment, cfg, root)
        steps = experiment.train_config(cfg).steps
        if state in ("done", "trained"):
            left = 0
        else:
            # a run another worker is training ("running") has a checkpoint too
            at = checkpoint_step(run_dir(experiment, cfg, root) / "checkpoint.pt") if state in ("partial",
                                                                                             "running") else None
            left = steps - (at or 0)
        key = experiment.run_hash(cfg)
        runs[key] = (steps, min(left, runs.get(key, (steps, left))[1]))
        if state == "done":
            done += 1
            metrics = read_json(results_dir(experiment, cfg, root) / "metrics.json")
            if metrics.get("seconds_per_step"):
                rates.append(metrics["seconds_per_step"])
        else:
            evals_left[eval_kind(cfg)] = evals_left.get(eval_kind(cfg), 0) + 1
    return {"runs": len(runs) + pending_runs, "runs_left": sum(1 for _, left in runs.values() if left) + pending_runs,
            "evaluations": len(configs) + sum(pending_evals.values()), "evaluations_done": done,
            "steps_left": sum(left for _, left in runs.values()) + pending_steps, "evals_left": evals_left,
            "rates": rates}


def estimate(stages: Mapping[str, dict[str, Any]], per_eval: Mapping[str, float | None],
             rate_of: Callable[[str, dict[str, Any]], float | None]) -> float | None:
    """Fill each stage's ``seconds_per_step`` (``rate_of(name, stage)``), ``eta_seconds`` (None when a needed
    measurement is missing) and ``unmeasured``; return the total ETA (None if any stage has none)."""
    rates = {name: rate_of(name, st) for name, st in stages.items()}
    for name, st in stages.items():
        st.pop("rates", None)
        rate = rates[name]
        missing = ["training"] if st["steps_left"] and rate is None else []
        missing += [f"{s} evaluation" for s, n in st["evals_left"].items() if n and per_eval.get(s) is None]
        st["seconds_per_step"] = rate
        st["eta_seconds"] = None if missing else (st["steps_left"] * (rate or 0.0) + sum(
            n * (per_eval.get(s) or 0.0) for s, n in st["evals_left"].items()))
        st["unmeasured"] = missing
    etas = [s["eta_seconds"] for s in stages.values()]
    return None if None in etas else float(sum(etas))


def format_stages(title: str, stages: Mapping[str, dict[str, Any]], order: tuple[str, ...]) -> list[str]:
    """The status table's lines: one per stage (runs, evaluations, steps left, s/step, ETA), then what is pending."""
    head = ["stage", "runs trained/total", "evaluations done/total", "steps left", "s/step", "ETA"]
    rows = []
    for name in order:
        st = stages[name]
        eta = format_duration(st["eta_seconds"]) if st["eta_seconds"] is not None else \
            f"{NO_MEASUREMENT} ({', '.join(st['unmeasured'])})"
        rate = "-" if st["seconds_per_step"] is None else f"{st['seconds_per_step']:.3g}"
        rows.append([name, f"{st['runs'] - st['runs_left']} / {st['runs']}",
                     f"{st['evaluations_done']} / {st['evaluations']}", str(st["steps_left"]), rate, eta])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines += [f"pending in {n}: {stages[n]['pending']}" for n in order if stages[n].get("pending")]
    return lines


def total_line(stages: Mapping[str, dict[str, Any]], whose: str = "this plan's") -> str:
    """A status's last line: the time left over all stages (filled by :func:`estimate`), or the part that is known
    and the stages still without a measurement."""
    known = sum(st["eta_seconds"] for st in stages.values() if st["eta_seconds"] is not None)
    unknown = [name for name, st in stages.items() if st["eta_seconds"] is None]
    basis = f"(from {whose} own measured step and evaluation times)"
    if not unknown:
        return f"all stages: {format_duration(known)} left {basis}"
    if not known:
        return f"all stages: ETA unknown, {NO_MEASUREMENT} ({', '.join(unknown)})"
    return f"all stages: at least {format_duration(known)} left {basis}, plus {', '.join(unknown)} ({NO_MEASUREMENT})"


def read_record(path: Path) -> dict[str, Any] | None:
    """A study file (choice.json, floors.json, ...) or None when absent; a corrupt one names itself."""
    return read_json(path, f"delete {path} to make it again") if path.is_file() else None


def read_study_record(path: Path, study: str, profile: str) -> dict[str, Any] | None:
    """The study file at ``path`` or, when it is absent, the repository's committed copy of it
    (``data/pretrained/<study>/<profile>/<name>``, :func:`archive_study`): a fresh clone evaluates at the choice
    that was committed before the evaluation seeds ran, not at one remade from whatever screening runs it holds.
    The caller checks the record's key (plan, pretrained net) as for a local one."""
    local = read_record(path)
    return local if local is not None else read_record(committed_copy(path, study, profile))


def archive_study(experiment: Experiment, root: Path, configs: list[Any], records: list[Path], study: str,
                  profile: str, say: Callable[[str], None] = print) -> dict[str, int]:
    """Copy what a study has finished into the repository, to be committed: the metrics of each finished run of
    ``configs`` (``runs.archive_result``: ``data/results``) and each of ``records`` that exists (calibration,
    choice, floors: ``data/pretrained/<study>/<profile>/``). Run folders stay on the machine that trained them;
    what is archived lets a fresh clone resume the study and regenerate its tables. Unfinished runs are skipped."""
    import shutil

    from ...io import atomic_path

    counts = {"runs": 0, "results": 0, "records": 0, "unfinished": 0}
    runs = set()  # a run evaluated twice (e.g. two schedules) has two results
    for cfg in configs:
        if run_state(experiment, cfg, root)[0] != "done":
            counts["unfinished"] += 1
            continue
        runs.add(archive_result(experiment, cfg, root).parent.parent)
        counts["results"] += 1
    counts["runs"] = len(runs)
    for path in records:
        if path.is_file():
            dst = committed_copy(path, study, profile)
            if dst.resolve() != path.resolve():
                with atomic_path(dst) as tmp:
                    shutil.copyfile(path, tmp)
            counts["records"] += 1
    say(f"archived the metrics of {counts['runs']} finished runs ({counts['results']} results) in "
        f"{ARCHIVE}/{experiment.name}/ and {counts['records']} records in {COMMITTED}/{study}/{profile}/ "
        f"({counts['unfinished']} results not finished); commit both")
    return counts


def commands_left(command: str, status: Mapping[str, Any], runs_root: str = "checkpoints", log: str = "ab"
                  ) -> list[str]:
    """The commands that finish a study from its ``--status`` dict (``command``: e.g. "specreg ab-audio"): the
    pretraining alone while it has runs left, then one worker per core; [] when nothing is left."""
    base = f"{command} --profile {status['profile']}" + ("" if runs_root == "checkpoints" else f" --root {runs_root}")
    left = [s for s, st in status["stages"].items() if st["runs_left"] or st["evaluations_done"] < st["evaluations"]]
    if not left:
        return []
    workers = [f"nohup {base} > logs/{log}_1.log 2>&1 &", f"nohup {base} > logs/{log}_2.log 2>&1 &"]
    if left[0] == "pretrain":
        return [f"{base} --status", f"nohup {base} --stage pretrain > logs/{log}_pre.log 2>&1 &",
                "# after the pretraining, one worker per core:", *workers]
    return [f"{base} --status", *workers]
