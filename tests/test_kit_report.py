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


def test_banner_names_only_the_columns_the_page_has(tmp_path):
    notebooks, root = _site(tmp_path)
    page = write_report(root / "r1.html", gather(notebooks, "smoke", [], root=root), "smoke", ENV, "x").read_text()
    assert "The cpu and paper columns beside it" in page and "<th>cpu</th><th>paper</th>" in page
    bare = tmp_path / "bare"
    (bare / "notebooks").mkdir(parents=True)
    nbs = [_notebook(bare / "notebooks", "00_env")]
    _results(bare, "00_env", "smoke", 0.5)
    page = write_report(bare / "r.html", gather(nbs, "smoke", [], root=bare), "smoke", ENV, "x").read_text()
    assert "No cpu or paper results are on disk" in page
    assert "<th>cpu</th>" not in page and "<th>paper</th>" not in page and "columns beside" not in page


def test_report_plays_the_wavs_a_notebook_saved(tmp_path):
    import base64
    import io
    import re

    import numpy as np
    import soundfile as sf

    from specreg_lib.kit.outputs import read_metrics, save_audio

    notebooks, root = _site(tmp_path)
    out = root / "figures" / "smoke" / "01_toy"
    t = np.arange(800) / 8000
    clips = {"ground truth": 0.5 * np.sin(2 * np.pi * 440 * t), "amp_phase (lambda=1e-4)": 0.25 * np.sin(2 * np.pi
                                                                                                        * 220 * t)}
    for label, clip in clips.items():
        save_audio(out, label, clip, 8000)
    write_metrics(out, "01_toy", "smoke", {"error": 0.25, "score": 1.0}, GLOSSARY)
    recorded = read_metrics(out)["audio"]
    assert [c["label"] for c in recorded] == list(clips)  # saving order
    page = write_report(root / "r.html", gather(notebooks, "smoke", [], root=root), "smoke", ENV, "x").read_text()
    toy = page[page.index("id='01_toy'"):page.index("id='02_planned'")]
    players = re.findall(r"<figcaption>(.*?)</figcaption><audio controls preload='none' "
                         r"src='data:audio/wav;base64,([A-Za-z0-9+/=]+)'>", toy)
    assert [label for label, _ in players] == ["ground truth", "amp_phase (lambda=1e-4)"]
    for (label, data), c in zip(players, recorded, strict=True):
        raw = base64.b64decode(data)
        assert raw == (out / c["file"]).read_bytes()
        x, sr = sf.read(io.BytesIO(raw))
        assert sr == 8000 and np.abs(x - clips[label]).max() <= 1 / 32767  # the clip, in 16-bit PCM
    assert "<audio" not in page[:page.index("id='01_toy'")]  # no player where no clip was saved


def test_environment_table_is_true():
    from specreg_lib.experiments import EXPERIMENTS
    from specreg_lib.kit.environment import runnable_profiles

    class Fake:
        profiles = {"smoke": {}, "paper": {}}

        def __init__(self, files):
            self.files = files

        def required_files(self, profile):
            return self.files if profile == "paper" else {}

    here = str(Path(__file__))  # a path that exists, from the repository root or absolute
    assets = {"present.pt": {"present": True}, "absent.pt": {"present": False}}
    fakes = {"ready": Fake({"weights": ("absent.pt", "present.pt"), "data": (here,)}),
             "lacking": Fake({"weights": ("absent.pt",), "data": ("no/such/dataset.zip", "absent.pt")})}
    gpu = runnable_profiles(assets, gpu=True, experiments=fakes)
    assert gpu["ready"] == {"smoke": "yes", "cpu": "-", "paper": "yes", "missing": {}}
    assert gpu["lacking"]["paper"] == "no"
    assert gpu["lacking"]["missing"] == {"paper": ["weights (absent.pt)", "data (no/such/dataset.zip or absent.pt)"]}
    cpu = runnable_profiles(assets, gpu=False, experiments=fakes)
    assert cpu["ready"]["paper"] == "no" and cpu["ready"]["missing"]["paper"] == ["a CUDA GPU"]
    # the registry itself: every experiment is a row, a profile it lacks is "-", never "planned" or "yes"
    everything = {"present": True}
    table = runnable_profiles({n: everything for n in _asset_names()}, gpu=False)
    assert set(table) == set(EXPERIMENTS)
    for name, row in table.items():
        for p in ("smoke", "cpu", "paper"):
            assert row[p] == ("-" if p not in EXPERIMENTS[name].profiles else "no" if p == "paper" else "yes"), name
    assert {table[n]["cpu"] for n in EXPERIMENTS if n.startswith("edm_")} == {"-"}  # EDM has no cpu profile
    assert table["diffwave"]["cpu"] == "yes"


def _asset_names():
    from specreg_lib.assets import REGISTRY

    return list(REGISTRY)
