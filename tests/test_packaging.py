"""The install contract: one source of truth for pins, CI runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            pins[re.split(r"[=<>!~ ]", line, maxsplit=1)[0].lower()] = line
    return pins


def test_requirements_pin_the_torch_trio_and_known_constraints():
    pins = _pins()
    assert pins["torch"] == "torch==2.9.1" and pins["torchvision"] == "torchvision==0.24.1"
    assert pins["torchaudio"] == "torchaudio==2.9.1"
    assert pins["setuptools"] == "setuptools<81"  # pytorch-wavelets imports pkg_resources
    assert pins["scipy"].startswith("scipy==1.17")  # clean-fid needs scipy<1.18
    for name in ("pywavelets", "pytorch-wavelets", "clean-fid", "papermill", "jupyterlab", "ipykernel",
                 "matplotlib", "seaborn", "soundfile", "tqdm", "pytest", "ruff"):
        assert "==" in pins[name], f"{name} must be pinned exactly"


def test_environment_yml_reads_requirements():
    text = (ROOT / "environment.yml").read_text()
    assert "python=3.11" in text and "-r requirements.txt" in text and "-e ." in text


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^make test$", ci, re.M)
    quick = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "make figures" in quick and "make test" in quick


def test_entry_points_name_the_kit():
    import importlib
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, func = scripts["specreg"].split(":")
    assert module == "specreg_lib.kit.cli" and callable(getattr(importlib.import_module(module), func))
    figures = re.search(r"^figures:.*\n\t(.*)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    module = re.search(r"-m (\S+)", figures).group(1)
    assert module == "specreg_lib.kit.reproduce" and callable(importlib.import_module(module).main)


def test_kit_modules_live_only_under_kit():
    # one place per concept: the old top-level paths must not linger as copies
    for old in ("runner", "reproduce", "report", "reporting", "environment", "cli", "spectrum_cli"):
        assert not (ROOT / "specreg_lib" / f"{old}.py").exists(), f"specreg_lib/{old}.py moved to specreg_lib/kit/"
    # downloads moved the other way: below the kit, so models and data can fetch files without importing it
    assert not (ROOT / "specreg_lib" / "kit" / "assets.py").exists(), "kit/assets.py moved to specreg_lib/assets.py"
