"""``make gpu-check``: its CPU dry run writes every field (finite, ratios from side-by-side rounds), its budget is
the published arithmetic, README holds that table, and bad input or a missing GPU is one line, exit 2."""

import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
LOSSES = ("baseline", "amp", "amp_phase", "haar", "bior1.3")


@pytest.fixture
def gpu_check(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import gpu_check

    return gpu_check


def numbers(obj, path="") -> list[tuple[str, float]]:
    """Every int/float in a JSON tree with its path (bools and None are not numbers)."""
    if isinstance(obj, dict):
        return [n for k, v in obj.items() for n in numbers(v, f"{path}.{k}")]
    if isinstance(obj, list):
        return [n for i, v in enumerate(obj) for n in numbers(v, f"{path}[{i}]")]
    return [(path, obj)] if isinstance(obj, int | float) and not isinstance(obj, bool) else []


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make (the target under test)")
def test_make_gpu_check_dry_run_writes_every_field(tmp_path):
    out = tmp_path / "gpu_check.json"
    args = f"--dry-run --out {out}"
    # under `make test` this runs as a sub-make: drop make's own variables so it prints only the commands
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    make = subprocess.run(["make", "--no-print-directory", "-n", "gpu-check", f"PY={sys.executable}",
                           f"ARGS={args}"], cwd=REPO, capture_output=True, text=True, check=True, env=env)
    cmd = [line for line in make.stdout.splitlines() if "benchmarks/gpu_check.py" in line][-1]  # the target's line
    assert cmd.startswith(f"{sys.executable} benchmarks/gpu_check.py --dry-run"), cmd
    done = subprocess.run(shlex.split(cmd), cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["mode"] == "dry-run" and r["device"]["type"] == "cpu"
    assert {"tests", "network", "step_time", "finetune", "generate", "budget", "settings", "seconds"} <= set(r)
    bad = [(p, v) for p, v in numbers(r) if not math.isfinite(v)]
    assert not bad, bad
    # every GPU-marked test ran under pytest -m gpu and, on this CPU, was skipped for want of CUDA, not failed
    t = r["tests"]
    assert t["failed"] == 0 and t["passed"] == 0 and t["returncode"] == 0 and t["skipped"] >= 4
    assert all("CUDA" in reason for reason in t["skipped_reasons"])
    for name in ("test_cuda_fp32_bf16_and_channels_last_agree_with_cpu", "test_use_fp16_on_cuda_runs_half_and_",
                 "test_no_host_sync_in_a_ddpm_and_edm_step", "test_losses_under_cuda_autocast_are_float32"):
        assert any(name in reason for reason in t["skipped_reasons"]), name
    rounds = r["settings"]["rounds"]
    for precision in ("fp32", "bf16"):
        st = r["step_time"][precision]
        # side by side: every round ran all five losses once, each round's order rotated by one
        assert [sorted(o) for o in st["orders"]] == [sorted(LOSSES)] * rounds
        assert [o[0] for o in st["orders"]] == [LOSSES[i % len(LOSSES)] for i in range(rounds)]
        base = st["baseline"]["times_s"]
        assert len(base) == rounds and all(b > 0 for b in base)
        for name in LOSSES[1:]:
            s = st[name]
            ratios = [x / b for x, b in zip(s["times_s"], base, strict=True)]  # the same round's baseline
            assert s["ratio"] == pytest.approx(statistics.median(ratios), rel=1e-12)
            assert s["ratio_min"] <= s["ratio_q1"] <= s["ratio"] <= s["ratio_q3"] <= s["ratio_max"]
        ft = r["finetune"][precision]
        assert set(ft) == set(LOSSES)
        assert all(v["images_per_second"] > 0 and v["peak_memory_gib"] > 0 and v["batch"] == 4 for v in ft.values())
        g = r["generate"][precision]
        assert g["nfe"] == 2 * 2 - 1 and g["images_per_second"] == pytest.approx(g["batch"] / g["seconds"])
    # a tiny CPU net's speed never reaches the budget's measured column
    assert all(row["measured_h"] is None for row in r["budget"])
    assert all(f"| {name} | bf16 |" in done.stdout for name in LOSSES)


def test_budget_is_the_published_arithmetic(gpu_check):
    rows = {row["cell"]: row for row in gpu_check.budget()}
    vp64 = rows["afhqv2-64/ffhq-64 vp, fine-tuned"]
    # EDM: 200 Mimg in ~4 days on 8 V100 -> 260,417 images per GPU-hour; 3 seeds x 0.5 Mimg
    assert vp64["finetune_h"] == pytest.approx(3 * 0.5e6 / (200e6 / (8 * 96)))
    assert vp64["generate_h"] == pytest.approx(3 * 50_000 / (64 / 28) / 3600)  # example.py: 64 images in ~28 s
    assert vp64["fid_h"] == pytest.approx(3 * 3 / 60) and vp64["count"] == 2 * 9  # AFHQ + FFHQ, 9 fine-tuned cells
    assert rows["cifar10-32 vp/ve, fine-tuned"]["finetune_h"] == pytest.approx(3 * 0.5e6 / (200e6 / (8 * 48)))
    assert rows["cifar10-32 vp/ve, pretrained"]["finetune_h"] == 0
    table1 = [row for row in rows.values() if row["table"] == 1]
    assert sum(row["count"] for row in table1) * 3 == 180  # the paper plan's FIDs: 60 cells x 3 seed sets
    audio = rows["DiffWave, 5 seeds x 150,000 steps"]
    assert audio["finetune_h"] == pytest.approx(5 * 150_000 / (8000 / 1.5)) and audio["count"] == 13
    assert all(row["measured_h"] is None for row in rows.values())


def test_budget_measured_column_only_for_the_timed_network(gpu_check):
    rows = {row["cell"]: row for row in gpu_check.budget({"finetune_ips": 100.0, "generate_ips": 10.0})}
    hours = 3 * 0.5e6 / 100 / 3600, 3 * 50_000 / 10 / 3600, 3 * 3 / 60  # fine-tune, generate, FID (published)
    assert rows["afhqv2-64/ffhq-64 vp, fine-tuned"]["measured_h"] == pytest.approx(sum(hours))
    assert rows["afhqv2-64/ffhq-64 vp, pretrained"]["measured_h"] == pytest.approx(hours[1] + hours[2])
    timed = {"afhqv2-64/ffhq-64 vp, fine-tuned", "afhqv2-64/ffhq-64 vp, pretrained"}  # the AFHQv2-64 DDPM++
    assert all((row["measured_h"] is None) == (cell not in timed) for cell, row in rows.items())


def test_readme_holds_the_published_budget_table(gpu_check):
    readme = (REPO / "README.md").read_text()
    missing = [ln for ln in gpu_check.budget_markdown(gpu_check.budget()).splitlines() if ln not in readme]
    assert not missing, "README's budget table is stale; paste `python benchmarks/gpu_check.py --budget`:\n" + \
        "\n".join(missing)


@pytest.mark.parametrize("args,needle", [(["--dry-run", "--rounds", "1", "--tests"], "--rounds must be >= 2"),
                                         (["--tests"], "no CUDA device here")])
def test_bad_input_is_one_line_exit_2(args, needle):
    if needle.startswith("no CUDA") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the check would run")
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and needle in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
