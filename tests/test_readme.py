"""The README's smoke-sized commands run exactly as written (outputs redirected with $SPECREG_ROOT)."""

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """Every command line of the README's fenced blocks marked ``<!-- README-test -->``."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"<!-- README-test -->\s*```bash\n(.*?)```", text, flags=re.S)
    return [ln.strip() for b in blocks for ln in b.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def test_readme_marks_its_smoke_commands():
    cmds = readme_commands()
    assert any(c.startswith(".venv/bin/specreg reproduce --only checkerboard_toy -p seeds=3") for c in cmds)
    assert any(c.startswith(".venv/bin/specreg sweep") and "--dry-run" in c for c in cmds)


def _run_all(root: Path, commands: list[str]) -> dict[str, str]:
    """Run each ``.venv/bin/specreg ...`` line with this interpreter, outputs under ``root``; their stdout."""
    env = {**os.environ, "SPECREG_ROOT": str(root), "OMP_NUM_THREADS": "1"}
    outputs = {}
    for cmd in commands:
        argv = shlex.split(cmd)
        assert argv[0] == ".venv/bin/specreg", cmd  # the test runs this interpreter's console script
        done = subprocess.run([sys.executable, "-m", "specreg_lib.kit.cli", *argv[1:]], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{cmd}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        outputs[cmd] = done.stdout
    return outputs


@pytest.mark.notebook
def test_readme_commands_work_as_written_after_a_smoke_reproduce(tmp_path):
    """The README's commands as written, in a tree where (as after ``make figures``) notebooks 02 and 03 have
    trained their smoke runs: the commands must neither collide with those runs nor disturb them."""
    _run_all(tmp_path, [".venv/bin/specreg reproduce --only checkerboard_toy --only power_spectra"])
    checkerboard, spectra_runs = tmp_path / "checkpoints" / "checkerboard", tmp_path / "checkpoints" / "power_spectra"
    trained = {p.name for p in spectra_runs.iterdir()}
    assert any(n.startswith("baseline_seed1_") for n in trained)  # the run the README's baseline seed 1 shares
    before = {p.name for p in checkerboard.iterdir()}
    start = time.time()
    outputs = _run_all(tmp_path, readme_commands())
    # -p seeds=3 arrived as the list [3] and lambda_spec as 0.5, in the repository-relative folders
    toy = tmp_path / "figures" / "smoke" / "02_checkerboard_toy"
    saved = json.loads((toy / "config.json").read_text())
    assert saved["seeds"] == [3] and saved["config"]["regularizer"]["lambda_spec"] == 0.5
    metrics = json.loads((toy / "metrics.json").read_text())
    assert set(metrics["runs"]) == {"baseline_seed3", "amp_phase_seed3"}
    spectra = json.loads((tmp_path / "figures" / "smoke" / "03_power_spectra" / "metrics.json").read_text())
    assert set(spectra["runs"]) == {f"{v}_seed{s}" for v in ("baseline", "haar") for s in (1, 2)}
    assert all(r["steps"] == 10 for r in spectra["runs"].values())
    assert len(list((tmp_path / "checkpoints" / "steps10" / "power_spectra").iterdir())) == 4  # its own root
    assert {p.name for p in spectra_runs.iterdir()} == trained  # the reproduce's 20-step runs left alone
    assert (tmp_path / "figures" / "smoke" / "report.html").stat().st_mtime >= start
    # the sweep trained 2 baselines + 2 lambdas x 2 seeds; the dry run after it finds them all done
    dry = next(out for cmd, out in outputs.items() if "--profile smoke" in cmd and "--dry-run" in cmd)
    assert "6 runs: 6 done" in dry
    after = {p.name for p in checkerboard.iterdir()}
    sweep = {f"{v}_seed{s}" for v in ("baseline", "amp_phase_lam0.3_alpha_bar", "amp_phase_lam1_alpha_bar")
             for s in (1, 2)}
    wanted = sweep | {"baseline_seed3", "amp_phase_lam0.5_alpha_bar_seed3"}  # + notebook 02's -p seeds=3 runs
    label = {n: n.rsplit("_", 1)[0] for n in after}
    assert before <= after and {label[n] for n in after - before} == wanted - {label[n] for n in before}
    assert len(after - before) == len(wanted - {label[n] for n in before})  # one folder per new run, no strays
    cpu = next(out for cmd, out in outputs.items() if "--profile cpu" in cmd and "--dry-run" in cmd)
    assert "6 runs:" in cpu and "baseline" in cpu and "amp_phase" in cpu
    # nothing of this test landed in the checkout's figures
    assert not [p for p in (REPO / "figures").rglob("*") if p.is_file() and p.stat().st_mtime >= start]


def test_readme_library_example_runs():
    """The "library in five lines" block, with a small EDM denoiser and data standing in for the user's."""
    import torch

    from specreg_lib.diffusion import Precond

    code = re.search(r"## The library in five lines\s*```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    torch.manual_seed(0)
    scope = {"denoiser": Precond(lambda x, c_noise: 0.1 * x, "edm"), "x0": torch.randn(4, 1, 8, 8)}
    exec(code.group(1), scope)  # noqa: S102 - our own README
    assert scope["per_sample"].shape == (4,) and bool(torch.isfinite(scope["per_sample"]).all())
    assert scope["edm_loss"].regularized and scope["ddpm_loss"].lambda_spec == 0.1
