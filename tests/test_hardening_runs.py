"""Training runs (issue 20): bit-exact DiffWave resume, no "done" when nothing trained, run-folder integrity.

Oracles: an uninterrupted run (every parameter and Adam moment, bit for bit), the folder names ``run_dir`` computes,
the files the run wrote, and the error types every ``specreg`` door turns into one line (``InputError``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import diffwave.model
import pytest
import torch

from specreg_lib.errors import InputError
from specreg_lib.experiments import CHECKERBOARD, DIFFWAVE, run, run_dir, run_state
from specreg_lib.experiments.core.runs import RunFolderError, results_dir, snapshot_path
from specreg_lib.training import TrainConfig, load_checkpoint, save_checkpoint, train
from specreg_lib.training.loop import NonFiniteSteps, ResumeError

ROOT = Path(__file__).resolve().parents[1]
TINY = {"data.size": 16, "model.fold": 4, "model.base_channels": 8, "diffusion.T": 10, "train.steps": 4,
        "sample.n_samples": 4, "evaluate.n_reference": 8}


def tiny(**more):
    return CHECKERBOARD.config("smoke", {**TINY, **more})


# ---------------------------------------------------------------- finding 3: DiffWave resume is bit-exact

# One optimiser step of the smoke DiffWave, to step ``sys.argv[2]`` from the checkpoint ``sys.argv[1]``: a resumed
# run as ``specreg finetune`` starts it, in a process of its own.
_AUDIO_RUN = """
import sys, torch
from specreg_lib.experiments import DIFFWAVE
from specreg_lib.training import train
cfg = DIFFWAVE.config("smoke", {"train.steps": int(sys.argv[2])})
train(DIFFWAVE.build_model(cfg), DIFFWAVE.build_loss(cfg), DIFFWAVE.build_data(cfg), cfg.train, sys.argv[1])
"""


def _fresh_jit(monkeypatch) -> None:
    """LMNT's scripted ``silu`` as a new process has it: compiled anew, its JIT executor never called."""
    def silu(x):
        return x * torch.sigmoid(x)

    monkeypatch.setattr(diffwave.model, "silu", torch.jit.script(silu))


def _audio_run(path: Path, steps: int, monkeypatch) -> None:
    _fresh_jit(monkeypatch)  # every call stands for a new ``specreg finetune`` process
    cfg = DIFFWAVE.config("smoke", {"train.steps": steps})
    train(DIFFWAVE.build_model(cfg), DIFFWAVE.build_loss(cfg), DIFFWAVE.build_data(cfg), cfg.train, path)


def test_diffwave_resume_is_bit_exact_across_processes(tmp_path, monkeypatch):
    """Stopped at steps 3 and 7 (the second leg in a real subprocess), resumed to 10: every parameter, both Adam
    moments and the loss history equal the uninterrupted run's bit for bit. Before, the JIT's profiling executor
    switched LMNT's scripted silu to another backward after its first calls in a process, so the first steps of a
    resumed process differed by an ulp (diffusion_embedding.projection1 first)."""
    _audio_run(tmp_path / "straight.pt", 10, monkeypatch)
    _audio_run(tmp_path / "resumed.pt", 3, monkeypatch)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", _AUDIO_RUN, str(tmp_path / "resumed.pt"), "7"], check=True, env=env,
                   cwd=ROOT, timeout=120)
    _audio_run(tmp_path / "resumed.pt", 10, monkeypatch)
    a, b = (load_checkpoint(tmp_path / f) for f in ("straight.pt", "resumed.pt"))
    assert a["step"] == b["step"] == 10 and a["history"]["loss"] == b["history"]["loss"]
    differ = [k for k, v in a["model"].items() if not torch.equal(v, b["model"][k])]
    assert not differ, differ
    for i, state in a["optimizer"]["state"].items():
        other = b["optimizer"]["state"][i]
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(state[key], other[key]), (i, key)


# ---------------------------------------------------------------- finding 5: runs that trained nothing


class _NaNOnCalls:
    """A regression loss that is NaN on the given (1-based) calls."""

    def __init__(self, nan_calls: set[int]) -> None:
        self.nan_calls, self.calls = nan_calls, 0

    def __call__(self, net, x0, cond=None):
        self.calls += 1
        loss = (net(x0) - x0).square().mean(1)
        return loss * float("nan") if self.calls in self.nan_calls else loss


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(4, 4)


def _data(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.randn(n, 4, generator=g)


CFG = {"batch_size": 4, "lr": 1e-2, "ema_decay": 0.9, "progress": False}


def test_half_skipped_trains_more_than_half_fails_and_writes_no_final_checkpoint(tmp_path):
    # exactly half skipped: trained, and the skips are counted
    res = train(_net(), _NaNOnCalls({1, 3}), _data, TrainConfig(steps=4, **CFG), tmp_path / "half.pt")
    assert res.step == 4 and res.nonfinite_steps == 2
    # 3 of 4 skipped, each within max_nonfinite=10: refused, and the checkpoint is not written at step 4
    with pytest.raises(NonFiniteSteps, match=r"3 of the 4 steps of this call.*came from the MODEL.*run folder"):
        train(_net(), _NaNOnCalls({1, 2, 4}), _data, TrainConfig(steps=4, **CFG), tmp_path / "most.pt")
    assert not (tmp_path / "most.pt").exists()
    # every step skipped with periodic saves: the last save (step 2) stays, never step 4; a rerun refuses again
    cfg = TrainConfig(steps=4, checkpoint_every=2, **CFG)
    for _ in range(2):
        with pytest.raises(NonFiniteSteps, match="of this call"):
            train(_net(), _NaNOnCalls(set(range(1, 9))), _data, cfg, tmp_path / "all.pt")
        assert load_checkpoint(tmp_path / "all.pt")["step"] == 2


def test_nan_data_in_the_audio_task_goes_through_the_guard_and_fails():
    """The summed spectral losses (loss.bins="sum") no longer raise on NaN: the guard skips every step, and the
    run fails naming the data instead of ending "done"."""
    cfg = DIFFWAVE.config("smoke", {"train.steps": 2})
    crops = DIFFWAVE.build_data(cfg)

    def nan_data(n: int, g: torch.Generator):
        x0, mel = crops(n, g)
        return torch.full_like(x0, float("nan")), mel

    with pytest.raises(NonFiniteSteps, match=r"2 of the 2 steps.*came from the DATA"):
        train(DIFFWAVE.build_model(cfg), DIFFWAVE.build_loss(cfg), nan_data, cfg.train)


def test_nan_checkpoint_resumed_is_not_reported_as_the_longer_run(tmp_path):
    path = tmp_path / "c.pt"
    train(_net(), _NaNOnCalls(set()), _data, TrainConfig(steps=3, **CFG), path)
    ck = load_checkpoint(path)
    ck["model"] = {k: torch.full_like(v, float("nan")) for k, v in ck["model"].items()}
    save_checkpoint(path, ck)
    with pytest.raises(NonFiniteSteps, match="3 of the 3 steps of this call"):
        train(_net(), _NaNOnCalls(set()), _data, TrainConfig(steps=6, **CFG), path)
    assert load_checkpoint(path)["step"] == 3  # still the 3-step state, never labelled 6


def test_a_finished_checkpoint_whose_steps_were_all_skipped_is_refused(tmp_path):
    path = tmp_path / "c.pt"
    train(_net(), _NaNOnCalls(set()), _data, TrainConfig(steps=4, **CFG), path)
    ck = load_checkpoint(path)
    save_checkpoint(path, {**ck, "nonfinite_steps": 4})  # e.g. written by an older loop that called it done
    with pytest.raises(NonFiniteSteps, match="4 of the run's 4 steps"):
        train(_net(), _NaNOnCalls(set()), _data, TrainConfig(steps=4, **CFG), path)


def test_a_run_that_trained_nothing_is_never_done(tmp_path, monkeypatch):
    cfg = tiny()
    loss = CHECKERBOARD.build_loss(cfg)
    monkeypatch.setattr(CHECKERBOARD, "build_loss", lambda c: lambda *a, **k: loss(*a, **k) * float("nan"))
    folder = run_dir(CHECKERBOARD, cfg, tmp_path)
    with pytest.raises(NonFiniteSteps, match=f"4 of the 4 steps.*{folder}") as err:
        run(CHECKERBOARD, cfg, tmp_path)
    assert isinstance(err.value, InputError)  # one line and exit 2 at every door
    assert not snapshot_path(CHECKERBOARD, cfg, tmp_path).exists()
    assert not results_dir(CHECKERBOARD, cfg, tmp_path).exists()
    assert run_state(CHECKERBOARD, cfg, tmp_path)[0] == "missing"
    monkeypatch.undo()
    done = run(CHECKERBOARD, cfg, tmp_path)  # with a finite loss the same folder trains properly
    assert done.metrics["nonfinite_steps"] == 0 and done.metrics["overflow_steps"] == 0


# ---------------------------------------------------------------- findings 6, 7: checkpoint contents, run folders


@pytest.mark.parametrize("change, message", [
    ({"step": -5}, "step must be an int >= 0, got -5"),
    ({"step": "abc"}, "step must be an int >= 0, got 'abc'"),
    ({"step": True}, "step must be an int >= 0, got True"),
    ({"step": 9}, "step 9 is past the 4 steps"),
    ({"nonfinite_steps": 3}, "more than its step 2"),
    ({"history": {"loss": [0.5]}}, "step 2 but a history of 1 losses"),
    ({"rng": {"shards": {}}}, "malformed optimiser, scaler or RNG state"),
])
def test_checkpoint_contents_are_checked_on_resume(tmp_path, change, message):
    path = tmp_path / "c.pt"
    train(_net(), _NaNOnCalls(set()), _data, TrainConfig(steps=2, **CFG), path)
    cfg = {**load_checkpoint(path)["config"], "steps": 4}
    save_checkpoint(path, {**load_checkpoint(path), "config": cfg, **change})
    with pytest.raises(ResumeError, match=message) as err:
        train(_net(), _NaNOnCalls(set()), _data, TrainConfig(steps=4, **CFG), path)
    assert isinstance(err.value, InputError) and str(path) in str(err.value) and "delete" in str(err.value)


def test_a_renamed_or_edited_run_folder_is_refused(tmp_path):
    a, b = tiny(), tiny(seed=2)
    done_a = run(CHECKERBOARD, a, tmp_path)
    folder_a, folder_b = run_dir(CHECKERBOARD, a, tmp_path), run_dir(CHECKERBOARD, b, tmp_path)
    assert folder_a != folder_b
    folder_a.rename(folder_b)  # seed 1's run under seed 2's name: finished, trained, or partial
    with pytest.raises(RunFolderError, match=f"{folder_b}.*renamed"):
        run(CHECKERBOARD, b, tmp_path)
    shutil.rmtree(results_dir(CHECKERBOARD, b, tmp_path).parent)
    with pytest.raises(RunFolderError, match="renamed"):
        run(CHECKERBOARD, b, tmp_path)
    shutil.rmtree(folder_b / "snapshots")
    with pytest.raises(RunFolderError, match="renamed"):
        run(CHECKERBOARD, b, tmp_path)
    # an edited config.json in a correctly named folder (seed 2 written into seed 1's folder) is refused too
    folder_b.rename(folder_a)
    shutil.rmtree(folder_a)
    run(CHECKERBOARD, a, tmp_path)
    record = json.loads((folder_a / "config.json").read_text())
    record["config"]["train"]["seed"] = 2
    del record["run_hash"]  # as a config.json from before the hash was recorded
    (folder_a / "config.json").write_text(json.dumps(record))
    with pytest.raises(RunFolderError, match="config.json edited"):
        run(CHECKERBOARD, a, tmp_path)
    # the genuine folder is reused as before
    (folder_a / "config.json").write_text(json.dumps({**record, "config": {**record["config"], "train": {
        **record["config"]["train"], "seed": 1}}}))
    assert torch.equal(run(CHECKERBOARD, a, tmp_path).samples, done_a.samples)


def test_unreadable_run_files_name_the_file_and_what_to_delete(tmp_path):
    cfg = tiny()
    first = run(CHECKERBOARD, cfg, tmp_path)
    folder, res = run_dir(CHECKERBOARD, cfg, tmp_path), results_dir(CHECKERBOARD, cfg, tmp_path)
    metrics = res / "metrics.json"
    metrics.write_text(metrics.read_text()[:20])  # truncated
    with pytest.raises(RunFolderError, match=f"{metrics} is not valid JSON.*delete the results folder"):
        run(CHECKERBOARD, cfg, tmp_path)
    shutil.rmtree(res)  # as told: the snapshot is evaluated again, to the same metrics
    assert run(CHECKERBOARD, cfg, tmp_path).metrics == first.metrics
    result = load_checkpoint(res / "result.pt")
    save_checkpoint(res / "result.pt", {**result, "step": "abc"})
    with pytest.raises(RunFolderError, match="result.pt holds step 'abc'"):
        run(CHECKERBOARD, cfg, tmp_path)
    shutil.rmtree(folder / "results")
    shutil.rmtree(folder / "snapshots")
    ck = load_checkpoint(folder / "checkpoint.pt")
    save_checkpoint(folder / "checkpoint.pt", {**ck, "step": "abc"})
    for call in (run, run_state):  # the door and the status table
        with pytest.raises(RunFolderError, match=r"checkpoint.pt holds step 'abc'.*delete"):
            call(CHECKERBOARD, cfg, tmp_path)
    shutil.rmtree(folder)
    (folder / ".lock").mkdir(parents=True)
    for call in (run, run_state):
        with pytest.raises(RunFolderError, match=r"\.lock is not a lock file \(it is a folder\); delete it"):
            call(CHECKERBOARD, cfg, tmp_path)
