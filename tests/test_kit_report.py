"""The HTML report reads every notebook's latest results from disk, in notebook order, with the committed
cpu/paper results beside the report's profile, metric meanings, and figures in the order they were saved."""

from __future__ import annotations

from pathlib import Path

import nbformat
from matplotlib.figure import Figure

from specreg_lib.kit.html_report import figure_names, gather, write_report
from specreg_lib.kit.outputs import save_labelled, write_metrics
from specreg_lib.kit.runner import NotebookResult

GLOSSARY = {"error": {"meaning": "mean error of the thing", "better": "lower"},
            "score": {"meaning": "how good the thing is", "better": "higher"}}
ENV = {"device": {"device": "cpu", "name": "test", "cpu_count": 2}, "versions": {"torch": "x"}}


def _notebook(folder: Path, stem: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f'profile: str = "smoke"  # p\nout_dir: str = "figures/{{profile}}/{stem}"',
                                          metadata={"tags": ["parameters"]})]
    nbformat.write(nb, folder / f"{stem}.ipynb")
    return folder / f"{stem}.ipynb"


def _results(root: Path, stem: str, profile: str, error: float, figures: tuple[str, ...] = ()) -> Path:
    out = root / "figures" / profile / stem
    for name in figures:
        save_labelled(Figure(figsize=(1, 1)), out, name, profile)
    write_metrics(out, stem, profile, {"error": error, "score": 1.0}, GLOSSARY)
    return out


def _site(tmp_path: Path) -> tuple[list[Path], Path]:
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    notebooks = [_notebook(nbs, s) for s in ("00_env", "01_toy", "02_planned")]
    _results(tmp_path, "00_env", "smoke", 0.5)
    _results(tmp_path, "01_toy", "smoke", 0.25, figures=("zeta_samples", "alpha_spectra"))  # an earlier invocation
    _results(tmp_path, "01_toy", "cpu", 0.125, figures=("zeta_samples",))
    _results(tmp_path, "01_toy", "paper", 0.0625)
    return notebooks, tmp_path


def test_gather_reads_earlier_invocations_and_committed_profiles(tmp_path):
    notebooks, root = _site(tmp_path)
    now = NotebookResult("00_env", "ok", 1.5, tmp_path / "run" / "00_env.ipynb", root / "figures/smoke/00_env",
                         metrics={"headline": {"error": 0.5, "score": 1.0}, "glossary": GLOSSARY})
    entries = gather(notebooks, "smoke", [now], root=root)
    assert [e.stem for e in entries] == ["00_env", "01_toy", "02_planned"]
    env, toy, planned = entries
    assert env.run is now and list(env.metrics) == ["smoke"]
    assert toy.run is None and list(toy.metrics) == ["smoke", "cpu", "paper"]  # the report's profile first
    assert [toy.metrics[p]["headline"]["error"] for p in toy.metrics] == [0.25, 0.125, 0.0625]
    assert toy.out_dirs["cpu"] == root / "figures" / "cpu" / "01_toy"
    assert planned.metrics == {}
    cpu_entries = gather(notebooks, "cpu", [], root=root)
    assert list(cpu_entries[1].metrics) == ["cpu", "paper"]  # smoke results are not committed, not shown


def test_figures_keep_the_order_they_were_saved(tmp_path):
    _, root = _site(tmp_path)
    out = root / "figures" / "smoke" / "01_toy"
    from specreg_lib.kit.outputs import read_metrics

    m = read_metrics(out)
    assert m["figures"] == ["zeta_samples", "alpha_spectra"]
    assert figure_names(m, out) == (["zeta_samples", "alpha_spectra"], True)
    assert figure_names({}, out) == (["alpha_spectra", "zeta_samples"], False)  # old metrics.json: alphabetical


def test_report_page(tmp_path):
    notebooks, root = _site(tmp_path)
    failed = NotebookResult("02_planned", "failed", 2.0, tmp_path / "run" / "02_planned.ipynb",
                            root / "figures/smoke/02_planned", error="notebook 02_planned.ipynb failed in cell 3")
    page = write_report(root / "figures" / "smoke" / "report.html", gather(notebooks, "smoke", [failed], root=root),
                        "smoke", ENV, "specreg reproduce --only planned")
    html = page.read_text()
    assert html.index("id='00_env'") < html.index("id='01_toy'") < html.index("id='02_planned'")
    toy = html[html.index("id='01_toy'"):html.index("id='02_planned'")]
    assert "<th>smoke</th><th>cpu</th><th>paper</th>" in toy
    assert "mean error of the thing" in toy and "lower &darr;" in toy and "higher &uarr;" in toy
    assert "<td class='num'>0.25</td><td class='num'>0.125</td><td class='num'>0.0625</td>" in toy
    assert toy.index("alt='zeta_samples'") < toy.index("alt='alpha_spectra'")  # saving order, not alphabetical
    assert "href='../cpu/01_toy/zeta_samples.png'" in toy  # the cpu figures are linked beside
    assert "earlier run" in html and "failed in cell 3" in html and "2.0 s" in html
