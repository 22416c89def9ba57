"""Test tiers: fast math/property tests (default), notebooks under papermill (``notebook``),
``gpu`` tests (skipped without CUDA) and ``paper`` tests (skipped unless SPECREG_RUN_PAPER=1)."""

from __future__ import annotations

import os

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_cuda = pytest.mark.skip(reason="needs a CUDA GPU; none is present on this machine")
    no_paper = pytest.mark.skip(reason="needs the paper profile's real checkpoints/data; set SPECREG_RUN_PAPER=1")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_cuda)
        if "paper" in item.keywords and os.environ.get("SPECREG_RUN_PAPER") != "1":
            item.add_marker(no_paper)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the user's asset cache, and never touch the network."""
    monkeypatch.setenv("SPECREG_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("SPECREG_ROOT", raising=False)  # outputs resolve against the checkout unless a test says


@pytest.fixture(scope="module")
def one_thread():
    """Tiny nets run fastest on one intra-op thread (and do not spin against other processes on a busy CPU);
    a module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
