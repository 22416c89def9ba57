"""The papermill runner: listing, typed overrides, output folders, failure reporting (notebook, cell, executed
copy), summary and report."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from specreg_lib.kit import reproduce
from specreg_lib.kit.runner import notebook_out_dir, select

GLOSSARY = "{'answer': {'meaning': 'the answer', 'better': 'neither'}}"


def _notebook(path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('profile: str = "smoke"  # profile\n'
                                  f'out_dir: str = "figures/{{profile}}/{path.stem}"\n'
                                  "fail: bool = False  # raise on purpose\n"
                                  "seeds: list[int] | None = None  # echoed into metrics.json",
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                                  "from specreg_lib.kit.outputs import save_labelled, write_metrics\n"
                                  "from specreg_lib.kit.paths import resolve_out_dir\n"
                                  "out = resolve_out_dir(out_dir, profile)"),
        nbformat.v4.new_code_cell(body),
        nbformat.v4.new_code_cell("fig = plt.figure(); save_labelled(fig, out, 'f', profile)\n"
                                  f"write_metrics(out, 'x', profile, {{'answer': 42.0}}, {GLOSSARY}, seeds=seeds)"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def nb_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("notebooks")
    _notebook(d / "01_good.ipynb", "x = 1")
    _notebook(d / "02_fragile.ipynb", "if fail:\n    raise RuntimeError('asked to fail')")
    return d


def test_select_by_stem_or_short_name(nb_dir):
    nbs = sorted(nb_dir.glob("*.ipynb"))
    assert [p.stem for p in select(nbs, ["fragile"])] == ["02_fragile"]
    assert [p.stem for p in select(nbs, ["01_good", "02_fragile.ipynb"])] == ["01_good", "02_fragile"]
    with pytest.raises(ValueError, match="matches no notebook"):
        select(nbs, ["missing"])


def test_notebook_out_dir_uses_the_declared_template(nb_dir, tmp_path):
    from specreg_lib.kit.paths import REPO_ROOT

    assert notebook_out_dir(nb_dir / "01_good.ipynb", "cpu") == REPO_ROOT / "figures" / "cpu" / "01_good"
    assert notebook_out_dir(nb_dir / "01_good.ipynb", "paper", root=tmp_path) == tmp_path / "figures/paper/01_good"
    assert notebook_out_dir(nb_dir / "01_good.ipynb", "smoke", "mine/{profile}") == REPO_ROOT / "mine" / "smoke"


def test_list(nb_dir, capsys):
    assert reproduce.main(["--list", "--notebook-dir", str(nb_dir)]) == 0
    out = capsys.readouterr().out
    assert "01_good" in out and "02_fragile" in out and "fail: bool = False  # raise on purpose" in out
    assert "seeds: list[int] | None = None" in out


@pytest.mark.parametrize("args, message", [
    (["-p", "stepz=3"], "declared by none"),
    (["-p", "profile=cpu"], "use --profile cpu"),
    (["-p", "fail=maybe"], "-p fail='maybe': cannot convert to the declared type `bool`"),
    (["-p", "seeds=1,two"], "-p seeds='1,two': cannot convert to the declared type `list[int] | None`"),
    (["-p", "out_dir=x/{profile}"], "select one with --only"),
    (["--only", "good", "-p", "out_dir=figures/{notebook}"], "not a valid template"),
    (["--only", "good", "-p", "out_dir=figures/paper/x"], "'paper' profile's folder but profile is 'smoke'"),
])
def test_bad_overrides_are_refused_before_anything_runs(nb_dir, tmp_path, capsys, args, message):
    code = reproduce.main(["--notebook-dir", str(nb_dir), "--root", str(tmp_path), "--executed-dir",
                           str(tmp_path / "run"), *args])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "figures").exists()


@pytest.mark.notebook
def test_failing_notebook_is_reported_and_others_still_run(nb_dir, tmp_path, capsys):
    code = reproduce.main(["--notebook-dir", str(nb_dir), "--root", str(tmp_path),
                           "--executed-dir", str(tmp_path / "run"), "-p", "fail=True", "-p", "seeds=3"])
    err = capsys.readouterr().err
    assert code == 1
    assert "02_fragile.ipynb failed in cell 3" in err  # cell 0 is the injected parameters cell
    assert "RuntimeError: asked to fail" in err and str(tmp_path / "run" / "02_fragile.ipynb") in err
    assert (tmp_path / "run" / "02_fragile.ipynb").is_file()
    good = tmp_path / "figures" / "smoke" / "01_good"
    metrics = json.loads((good / "metrics.json").read_text())
    assert metrics["headline"] == {"answer": 42.0} and metrics["seeds"] == [3]  # -p seeds=3 arrived as [3]
    assert metrics["figures"] == ["f"]
    assert (good / "f.png").is_file() and (good / "f.pdf").is_file()
    summary = json.loads((tmp_path / "figures" / "smoke" / "summary.json").read_text())
    assert [n["status"] for n in summary["notebooks"]] == ["ok", "failed"]
    assert summary["overrides"]["01_good"] == {"fail": True, "seeds": [3]}
    html = (tmp_path / "figures" / "smoke" / "report.html").read_text()
    assert "data:image/png;base64," in html and "asked to fail" in html and "profile <code>smoke</code>" in html
    assert "the answer" in html  # the glossary's meaning beside the value


@pytest.mark.notebook
def test_out_dir_override_is_honoured(nb_dir, tmp_path, capsys):
    code = reproduce.main(["--notebook-dir", str(nb_dir), "--root", str(tmp_path),
                           "--executed-dir", str(tmp_path / "run"), "--only", "good",
                           "-p", "out_dir=elsewhere/{profile}/good", "-p", "seeds=1,2"])
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "elsewhere" / "smoke" / "good"
    assert json.loads((out / "metrics.json").read_text())["seeds"] == [1, 2]
    assert not (tmp_path / "figures" / "smoke" / "01_good").exists()
    summary = json.loads((tmp_path / "figures" / "smoke" / "summary.json").read_text())
    assert summary["notebooks"][0]["status"] == "ok" and summary["notebooks"][0]["out_dir"] == str(out)


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "specreg_lib.kit.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "reproduce" in out.stdout and "spectrum" in out.stdout



@pytest.mark.notebook
def test_a_metrics_file_older_than_the_run_is_not_its_result(tmp_path):
    """runner.run_notebook: a notebook counts as ok only if its metrics.json was written during this run (mtime
    >= start - 1 s); an earlier run's file left in the folder is reported as failed, never as this run's numbers."""
    import os
    import time

    from specreg_lib.kit.outputs import write_metrics
    from specreg_lib.kit.runner import run_notebook

    silent = tmp_path / "03_silent.ipynb"
    _notebook(silent, "x = 1")
    nb = nbformat.read(silent, as_version=4)
    nb.cells = nb.cells[:-1]  # without its last cell: it runs fine but never writes metrics.json
    nbformat.write(nb, silent)
    old = write_metrics(tmp_path / "figures/smoke/03_silent", "x", "smoke", {"answer": 7.0},
                        {"answer": {"meaning": "the answer", "better": "neither"}})
    stamp = time.time() - 3600  # an earlier run's result, an hour old
    os.utime(old, (stamp, stamp))
    result = run_notebook(silent, "smoke", tmp_path / "run", root=tmp_path)
    assert result.status == "failed" and result.metrics is None
    assert f"ran but wrote no new {old}" in result.error
