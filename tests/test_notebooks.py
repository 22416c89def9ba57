"""Every notebook in notebooks/: committed clean (hygiene), and executed under papermill in the smoke
profile into a temporary folder (outputs and run folders never land in the repository), with its
metrics.json and figures checked. Notebooks are discovered, so a new notebook is tested without editing
this file."""

from __future__ import annotations

import json
import math
import shutil

import nbformat
import pytest

from specreg_lib.io import REPO_ROOT as REPO
from specreg_lib.kit.outputs import BETTER
from specreg_lib.kit.parameters import declared_types, notebook_parameters
from specreg_lib.kit.runner import discover, run_notebook

NOTEBOOKS = discover()
# Notebooks whose smoke profile needs a system program besides the Python stack (installed by `make setup`).
SYSTEM_TOOLS = {"08_audio_finetune": "espeak-ng", "09_audio_table2": "espeak-ng", "11_ab_audio": "espeak-ng"}


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].stem == "00_environment"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean_and_thin(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("language") == "python", "papermill needs kernelspec.language"
    code = [c for c in nb.cells if c.cell_type == "code"]
    for c in code:
        assert not c.get("outputs") and c.get("execution_count") is None, f"{path.name} has outputs: clear them"
        assert "\ndef " not in "\n" + c.source, f"{path.name}: a function belongs in specreg_lib, with a test"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    for name in ("profile", "out_dir"):
        assert f"{name}: str" in params[0].source, f"{path.name}: the parameters cell must declare `{name}: str`"
    # Every assignment must be readable by the kit (specreg reproduce --list, -p conversion), with a type -p
    # can convert to, and out_dir must be a template the kit resolves (never a literal profile folder).
    declared = notebook_parameters(path)
    assigned = [ln for ln in params[0].source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    unparsed = [ln for ln in assigned if ln.split(":")[0].split("=")[0].strip() not in declared]
    assert not unparsed, f"{path.name}: these parameter lines are not flat literals: {unparsed}"
    for param in declared.values():
        declared_types(param)  # raises for an annotation -p cannot convert to
    assert declared["out_dir"].default == f"figures/{{profile}}/{path.stem}", \
        f"{path.name}: declare out_dir: str = \"figures/{{profile}}/{path.stem}\""
    source = "\n".join(c.source for c in code)
    assert "resolve_out_dir(out_dir, profile)" in source, f"{path.name}: resolve out_dir with kit.paths.resolve_out_dir"


KIT_KERNELSPEC = {"name": "specreg", "display_name": "Python (specreg)", "language": "python"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_carries_the_kits_kernelspec_and_no_outputs(path):
    """The README says to pick "Python (specreg)"; the runner registers that kernel (runner.KERNEL_NAME)."""
    from specreg_lib.kit.runner import KERNEL_NAME

    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"] == KIT_KERNELSPEC and KERNEL_NAME == KIT_KERNELSPEC["name"], \
        f"{path.name}: set metadata.kernelspec to {KIT_KERNELSPEC} (JupyterLab may have rewritten it)"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name}: clear outputs"


def _finite_numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _finite_numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _finite_numbers(v)
    elif isinstance(obj, float):
        yield obj


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_profile(path, tmp_path):
    tool = SYSTEM_TOOLS.get(path.stem)
    if tool and shutil.which(tool) is None:
        pytest.skip(f"{path.stem} needs the system tool {tool} (make setup installs it where it can: apt-get as root)")
    overrides = {"runs_root": str(tmp_path / "runs")} if "runs_root" in notebook_parameters(path) else {}
    res = run_notebook(path, "smoke", tmp_path / "run", overrides, root=tmp_path)
    assert res.status == "ok", res.error
    assert res.out_dir == tmp_path / "figures" / "smoke" / path.stem
    m = json.loads((res.out_dir / "metrics.json").read_text())
    assert {"notebook", "profile", "headline", "stand_in", "glossary", "figures"} <= set(m)
    assert m["profile"] == "smoke" and m["notebook"] == path.stem
    assert m["headline"] and all(math.isfinite(v) for v in m["headline"].values())
    assert set(m["glossary"]) == set(m["headline"]) and all(g["better"] in BETTER for g in m["glossary"].values())
    assert all(math.isfinite(v) for v in _finite_numbers(m))
    assert m["figures"], f"{path.name} wrote no figure"
    assert sorted(m["figures"]) == sorted(p.stem for p in res.out_dir.glob("*.png"))
    for name in m["figures"]:
        png = res.out_dir / f"{name}.png"
        assert png.stat().st_size > 1000 and png.with_suffix(".pdf").is_file()
    if path.stem == "01_spectral_losses_tour":  # its U-Nets are seeded, so a fresh smoke run is the same each time
        check_tour_claims(m)


def check_tour_claims(m: dict) -> None:
    """Every claim of notebook 01's text, and the numbers README.md quotes from it, against its metrics.json."""
    h = m["headline"]
    # Section 1: every slope at least as steep as -2; camera keeps under 10% of its non-DC energy above 1/8.
    assert max(m["slopes"].values()) <= -2 and h["energy_share_above_0125"] < 0.1
    # Section 2: Parseval; L2 ~ amplitude^2; amplitude L1 ~ amplitude; white/grating between bound/2 and bound.
    rows = m["parseval"]
    ratio = {k: {q: r[q] / rows["grating"][q] for q in r} for k, r in rows.items()}
    assert all(math.isclose(r["Fourier L2"], r["pixel L2"], rel_tol=1e-9) for r in rows.values())
    assert [round(r["pixel L2"], 9) for r in ratio.values()] == [1, 1, 0.25, 0.01]
    for k, s in (("grating x 0.5", 0.5), ("grating x 0.1", 0.1)):
        assert math.isclose(ratio[k]["amplitude L1"], s, rel_tol=0.15)
    bound = math.sqrt(128**2 / 2)
    assert 0.5 * bound < h["amp_l1_white_over_grating"] < bound
    # Section 3: the hybrid follows its phase source; Eq. 15 is 0 for equal amplitudes.
    assert m["swap"]["phase source"] > 0.5 > m["swap"]["amplitude source"] and m["eq15"]["hybrid vs camera"] < 1e-9
    # Section 4: detail bands < 10% of the photo's energy, > 90% of the blur's error.
    assert h["detail_energy_share"] < 0.1 < 0.9 < h["blur_error_detail_share"]
    # Section 5: wrapping lowers the value; the naive gradient explodes near a constant and collapses at it.
    assert m["eq15_values"]["wrap_phase=1"] < m["eq15_values"]["wrap_phase=0"]
    naive, safe, amp = (m["grad_norms"][k] for k in ("naive", "safe", "amplitude"))
    assert naive[-2] > 1e6 * naive[0] and naive[-2] > 1e4 * safe[-2] and max(safe) < 20 * max(amp) > naive[-1]
    # Section 6: the high band keeps less than the low band at every sigma; it halves from 0.05 to 1; etc.
    b = m["x0_hat_power_bands"]
    assert all(v["high"] < v["low"] for v in b.values()) and b["1"]["high"] < 0.5 * b["0.05"]["high"]
    assert abs(b["0.05"]["low"] - 1) < 0.25 and b["1"]["low"] < min(1, b["0.05"]["low"])
    # Section 7: both terms and their gradients measured after every step.
    assert len(m["eq17_steps"]) == 3 and all(s["grad_spectral"] > 0 < s["grad_diffusion"] for s in m["eq17_steps"])
    # README.md quotes these (rounded as printed there).
    readme = {"mean_power_law_slope": (-2.64, 0.005), "energy_share_above_0125": (0.063, 0.0005),
              "amp_l1_white_over_grating": (71.8, 0.05), "detail_energy_share": (0.076, 0.0005),
              "blur_error_detail_share": (0.96, 0.005), "grad_norm_naive_at_1e8": (1.2e6, 0.05e6),
              "grad_norm_safe_at_1e8": (0.043, 0.0005)}
    for key, (quoted, tol) in readme.items():
        assert abs(h[key] - quoted) <= tol, f"README.md quotes {key} = {quoted}, the notebook gives {h[key]}"


def test_committed_cpu_tour_supports_its_text():
    """The committed cpu run of notebook 01 (2000 training steps) makes the same claims true."""
    m = json.loads((REPO / "figures" / "cpu" / "01_spectral_losses_tour" / "metrics.json").read_text())
    assert m["profile"] == "cpu" and m["train_steps"] == 2000
    check_tour_claims(m)
