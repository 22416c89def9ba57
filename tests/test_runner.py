"""The papermill runner: listing, overrides, failure reporting (notebook, cell, executed copy), report."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from specreg_lib import reproduce
from specreg_lib.runner import parse_overrides, parse_value, select


def _notebook(path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('profile: str = "smoke"  # profile\nout_dir: str = "x"  # outputs\n'
                                  'fail: bool = False  # raise on purpose', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                                  "from specreg_lib.reporting import save_labelled, write_metrics"),
        nbformat.v4.new_code_cell(body),
        nbformat.v4.new_code_cell("fig = plt.figure(); save_labelled(fig, out_dir, 'f', profile)\n"
                                  "write_metrics(out_dir, 'x', profile, {'answer': 42.0})"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def nb_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("notebooks")
    _notebook(d / "01_good.ipynb", "x = 1")
    _notebook(d / "02_fragile.ipynb", "if fail:\n    raise RuntimeError('asked to fail')")
    return d


def test_parse_overrides():
    assert parse_overrides(["a=1", "b=0.5", "c=True", "d=hello", "e=[1, 2]", "f=None"]) == \
        {"a": 1, "b": 0.5, "c": True, "d": "hello", "e": [1, 2], "f": None}
    assert parse_value("1e-4") == 1e-4
    for bad in ["novalue", "=3", "a b=1"]:
        with pytest.raises(ValueError, match="key=value"):
            parse_overrides([bad])


def test_select_by_stem_or_short_name(nb_dir):
    nbs = sorted(nb_dir.glob("*.ipynb"))
    assert [p.stem for p in select(nbs, ["fragile"])] == ["02_fragile"]
    assert [p.stem for p in select(nbs, ["01_good", "02_fragile.ipynb"])] == ["01_good", "02_fragile"]
    with pytest.raises(ValueError, match="matches no notebook"):
        select(nbs, ["missing"])


def test_list(nb_dir, capsys):
    assert reproduce.main(["--list", "--notebook-dir", str(nb_dir)]) == 0
    out = capsys.readouterr().out
    assert "01_good" in out and "02_fragile" in out and "fail=False" in out


def test_unknown_parameter_is_refused(nb_dir, capsys):
    assert reproduce.main(["--notebook-dir", str(nb_dir), "-p", "stepz=3"]) == 2
    assert "declared by none" in capsys.readouterr().err


@pytest.mark.notebook
def test_failing_notebook_is_reported_and_others_still_run(nb_dir, tmp_path, capsys):
    code = reproduce.main(["--notebook-dir", str(nb_dir), "--figures-dir", str(tmp_path / "fig"),
                           "--run-dir", str(tmp_path / "run"), "-p", "fail=True"])
    err = capsys.readouterr().err
    assert code == 1
    assert "02_fragile.ipynb failed in cell 3" in err  # cell 0 is the injected parameters cell
    assert "RuntimeError: asked to fail" in err and str(tmp_path / "run" / "02_fragile.ipynb") in err
    assert (tmp_path / "run" / "02_fragile.ipynb").is_file()
    good = tmp_path / "fig" / "smoke" / "01_good"
    assert json.loads((good / "metrics.json").read_text())["headline"] == {"answer": 42.0}
    assert (good / "f.png").is_file() and (good / "f.pdf").is_file()
    summary = json.loads((tmp_path / "fig" / "smoke" / "summary.json").read_text())
    assert [n["status"] for n in summary["notebooks"]] == ["ok", "failed"]
    html = (tmp_path / "fig" / "smoke" / "report.html").read_text()
    assert "data:image/png;base64," in html and "asked to fail" in html and "profile <code>smoke</code>" in html


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "specreg_lib.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "reproduce" in out.stdout and "spectrum" in out.stdout
