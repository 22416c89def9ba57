"""``kit.paths``: one rule turns a notebook's ``out_dir`` template into a folder, whatever the working directory."""

from __future__ import annotations

import pytest

from specreg_lib.kit.paths import REPO_ROOT, escape_template, resolve_out_dir, resolve_repo_path


def test_repo_root_is_the_checkout():
    assert (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "notebooks").is_dir()


def test_template_fills_the_profile_under_the_repo_root():
    assert resolve_out_dir("figures/{profile}/00_environment", "cpu") == REPO_ROOT / "figures/cpu/00_environment"
    assert resolve_out_dir("figures/{profile}/x", "smoke") == REPO_ROOT / "figures" / "smoke" / "x"
    assert resolve_out_dir("plain/folder", "paper") == REPO_ROOT / "plain" / "folder"


def test_absolute_paths_stay_and_root_replaces_the_repo(tmp_path):
    assert resolve_out_dir(str(tmp_path / "{profile}" / "nb"), "paper") == tmp_path / "paper" / "nb"
    assert resolve_out_dir("figures/{profile}/nb", "smoke", root=tmp_path) == tmp_path / "figures" / "smoke" / "nb"
    assert resolve_repo_path("checkpoints") == REPO_ROOT / "checkpoints"
    assert resolve_repo_path(tmp_path / "runs") == tmp_path / "runs"
    assert resolve_repo_path("runs", root=tmp_path) == tmp_path / "runs"


@pytest.mark.parametrize("cwd", ["notebooks", "elsewhere"])
def test_working_directory_does_not_matter(cwd, tmp_path, monkeypatch):
    # JupyterLab started as `jupyter lab notebooks/` runs kernels in notebooks/: outputs must still go to
    # <repo>/figures/<profile>/..., never notebooks/figures/...
    monkeypatch.chdir(REPO_ROOT / "notebooks" if cwd == "notebooks" else tmp_path)
    out = resolve_out_dir("figures/{profile}/01_spectral_losses_tour", "smoke")
    assert out == REPO_ROOT / "figures" / "smoke" / "01_spectral_losses_tour"
    assert resolve_repo_path("checkpoints") == REPO_ROOT / "checkpoints"


def test_bad_profile_and_bad_templates():
    with pytest.raises(ValueError, match="unknown profile 'gpu'"):
        resolve_out_dir("figures/{profile}/x", "gpu")
    for bad in ["figures/{notebook}/x", "figures/{}/x", "figures/{profile/x", "figures/{profile.upper}/x"]:
        with pytest.raises(ValueError, match="not a valid template"):
            resolve_out_dir(bad, "smoke")


def test_another_profiles_folder_is_refused():
    # the old notebooks' literal default with -p profile=cpu wrote cpu results into figures/smoke
    with pytest.raises(ValueError, match="'smoke' profile's folder but profile is 'cpu'"):
        resolve_out_dir("figures/smoke/00_environment", "cpu")
    assert resolve_out_dir("figures/smoke/00_environment", "smoke") == REPO_ROOT / "figures/smoke/00_environment"
    assert resolve_out_dir("/data/paper/figs", "smoke").parts[-2:] == ("paper", "figs")  # only figures/<p> counts


def test_escaped_literal_path_round_trips(tmp_path):
    odd = tmp_path / "a{b}c"
    assert resolve_out_dir(escape_template(odd), "smoke") == odd


def test_specreg_root_moves_every_relative_output(tmp_path, monkeypatch):
    from specreg_lib.kit.paths import REPO_ROOT, output_root, resolve_out_dir, resolve_repo_path

    assert output_root() == REPO_ROOT
    monkeypatch.setenv("SPECREG_ROOT", str(tmp_path))
    assert output_root() == tmp_path.resolve()
    assert resolve_out_dir("figures/{profile}/02_x", "cpu") == tmp_path.resolve() / "figures" / "cpu" / "02_x"
    assert resolve_repo_path("checkpoints") == tmp_path.resolve() / "checkpoints"
    assert str(resolve_repo_path("/abs/path")) == "/abs/path"
