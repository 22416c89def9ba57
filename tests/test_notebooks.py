"""Every notebook in notebooks/: committed clean (hygiene), and executed under papermill in the smoke
profile into a temporary folder, with its metrics.json and figures checked. Notebooks are discovered,
so a new notebook is tested without editing this file."""

from __future__ import annotations

import json
import math

import nbformat
import pytest
from papermill.translators import PythonTranslator

from specreg_lib.runner import discover, run_notebook

NOTEBOOKS = discover()


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
    # Every assignment must be readable by papermill (--help-notebook, and the runner's -p check):
    # its parser gives up on a comment that holds '=' or a quote character.
    assigned = [ln for ln in params[0].source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    parsed = {p.name for p in PythonTranslator.inspect(params[0])}
    unparsed = [ln for ln in assigned if ln.split(":")[0].split("=")[0].strip() not in parsed]
    assert not unparsed, f"{path.name}: papermill cannot parse these parameter lines: {unparsed}"


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
    res = run_notebook(path, "smoke", tmp_path / "run", tmp_path / "figures")
    assert res.status == "ok", res.error
    m = json.loads((res.out_dir / "metrics.json").read_text())
    assert {"notebook", "profile", "headline", "stand_in"} <= set(m)
    assert m["profile"] == "smoke" and m["notebook"] == path.stem
    assert m["headline"] and all(math.isfinite(v) for v in m["headline"].values())
    assert all(math.isfinite(v) for v in _finite_numbers(m))
    pngs = sorted(res.out_dir.glob("*.png"))
    assert pngs, f"{path.name} wrote no figure"
    for png in pngs:
        assert png.stat().st_size > 1000 and png.with_suffix(".pdf").is_file()
