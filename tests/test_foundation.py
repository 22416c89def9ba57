"""Atomic I/O, typed configs, the metrics contract and the asset resolver (on small local files)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import pytest

from specreg_lib import assets
from specreg_lib.io import atomic_open, write_json
from specreg_lib.kit.outputs import read_metrics, save_labelled, write_metrics


def test_atomic_open_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_write_json_strict_and_roundtrip(tmp_path):
    torch = pytest.importorskip("torch")
    p = write_json(tmp_path / "m.json", {"a": torch.tensor(1.5), "b": float("nan"), "c": [1, 2]})
    assert json.loads(p.read_text()) == {"a": 1.5, "b": None, "c": [1, 2]}


GLOSSARY = {"x": {"meaning": "the x of the thing", "better": "lower"}}


def test_metrics_contract(tmp_path):
    p = write_metrics(tmp_path, "nb", "smoke", {"x": 1}, GLOSSARY, stand_in="skimage photos", extra={"y": 2})
    m = json.loads(p.read_text())
    assert m["headline"] == {"x": 1.0} and m["stand_in"] == "skimage photos" and m["extra"] == {"y": 2}
    assert m["notebook"] == "nb" and m["profile"] == "smoke" and m["glossary"] == GLOSSARY and m["figures"] == []
    assert m["written_at"] and read_metrics(tmp_path) == m and read_metrics(tmp_path / "none") is None
    with pytest.raises(ValueError, match="finite"):
        write_metrics(tmp_path, "nb", "smoke", {"x": math.inf}, GLOSSARY)
    with pytest.raises(ValueError, match="unknown profile"):
        write_metrics(tmp_path, "nb", "gpu", {"x": 1.0}, GLOSSARY)
    with pytest.raises(TypeError, match="sets \\['figures'\\] itself"):
        write_metrics(tmp_path, "nb", "smoke", {"x": 1.0}, GLOSSARY, figures=["a"])


def test_glossary_is_required_for_every_headline_metric(tmp_path):
    with pytest.raises(TypeError, match="glossary"):
        write_metrics(tmp_path, "nb", "smoke", {"x": 1.0})  # the argument is required
    with pytest.raises(ValueError, match=r"no entry for headline metric\(s\) \['y', 'z'\]"):
        write_metrics(tmp_path, "nb", "smoke", {"x": 1.0, "y": 2.0, "z": 3.0}, GLOSSARY)
    for entry in ({"meaning": "m", "better": "up"}, {"meaning": " ", "better": "lower"}, {"better": "lower"}, "m"):
        with pytest.raises(ValueError, match=r"glossary\['x'\]"):
            write_metrics(tmp_path, "nb", "smoke", {"x": 1.0}, {"x": entry})
    assert not (tmp_path / "metrics.json").exists()
    extra = {**GLOSSARY, "unused": {"meaning": "a variant not run", "better": "higher"}}
    m = json.loads(write_metrics(tmp_path, "nb", "smoke", {"x": 1.0}, extra).read_text())
    assert m["glossary"] == GLOSSARY  # only the headline's entries are stored


def test_figures_are_recorded_in_saving_order(tmp_path):
    from matplotlib.figure import Figure

    for name in ("b_second", "a_third", "c_first", "b_second"):  # re-saving a figure moves it last
        paths = save_labelled(Figure(figsize=(1, 1)), tmp_path, name, "cpu")
        assert [p.name for p in paths] == [f"{name}.png", f"{name}.pdf"]
    m = json.loads(write_metrics(tmp_path, "nb", "cpu", {"x": 1.0}, GLOSSARY).read_text())
    assert m["figures"] == ["a_third", "c_first", "b_second"]
    m = json.loads(write_metrics(tmp_path, "nb", "cpu", {"x": 1.0}, GLOSSARY).read_text())
    assert m["figures"] == ["a_third", "c_first", "b_second"]  # writing the metrics again keeps the list
    save_labelled(Figure(figsize=(1, 1)), tmp_path, "c_first", "cpu")  # a rerun records its own figures
    m = json.loads(write_metrics(tmp_path, "nb", "cpu", {"x": 1.0}, GLOSSARY).read_text())
    assert m["figures"] == ["c_first"]


def _fake_asset(monkeypatch, tmp_path, payload: bytes, sha: str | None):
    src = tmp_path / "remote" / "model.pt"
    src.parent.mkdir()
    src.write_bytes(payload)
    asset = assets.Asset("model.pt", src.as_uri(), sha, "checkpoint", "a test")
    monkeypatch.setitem(assets.REGISTRY, "model.pt", asset)
    return asset


def test_fetch_downloads_verifies_and_caches(monkeypatch, tmp_path):
    payload = b"weights" * 1000
    _fake_asset(monkeypatch, tmp_path, payload, hashlib.sha256(payload).hexdigest())
    p = assets.fetch("model.pt", progress=False)  # file:// URL: no network
    assert p.read_bytes() == payload and p.parent == assets.cache_dir()
    assert assets.status()["model.pt"]["present"]
    assert assets.fetch("model.pt", allow_download=False) == p  # second call: from the cache


def test_fetch_checksum_mismatch_leaves_nothing(monkeypatch, tmp_path):
    _fake_asset(monkeypatch, tmp_path, b"tampered", "0" * 64)
    with pytest.raises(assets.ChecksumError, match="does not match"):
        assets.fetch("model.pt", progress=False)
    assert not any(assets.cache_dir().iterdir())


def test_unpinned_download_records_checksum(monkeypatch, tmp_path):
    _fake_asset(monkeypatch, tmp_path, b"abc", None)
    with pytest.warns(UserWarning, match="no pinned SHA-256"):
        p = assets.fetch("model.pt", progress=False)
    assert p.with_name("model.pt.sha256").read_text().split()[0] == hashlib.sha256(b"abc").hexdigest()


def test_missing_asset_message_names_file_url_and_option(monkeypatch, tmp_path):
    asset = _fake_asset(monkeypatch, tmp_path, b"x", None)
    monkeypatch.setitem(assets.REGISTRY, "model.pt", dataclasses.replace(asset, url=(tmp_path / "no").as_uri()))
    with pytest.raises(assets.AssetMissingError) as err:
        assets.fetch("model.pt", progress=False)
    msg = str(err.value)
    assert "model.pt" in msg and (tmp_path / "no").as_uri() in msg and "local_path=" in msg
    assert "SPECREG_MODEL_PT" in msg
    with pytest.raises(assets.AssetMissingError, match="does not exist"):
        assets.fetch("model.pt", local_path=tmp_path / "nowhere.pt")
    with pytest.raises(assets.AssetMissingError, match="downloads are disabled"):
        assets.fetch("model.pt", allow_download=False)


def test_local_path_and_env_var(monkeypatch, tmp_path):
    payload = b"local"
    _fake_asset(monkeypatch, tmp_path, payload, hashlib.sha256(payload).hexdigest())
    mine = tmp_path / "mine.pt"
    mine.write_bytes(payload)
    assert assets.fetch("model.pt", local_path=mine) == mine
    monkeypatch.setenv("SPECREG_MODEL_PT", str(mine))
    assert assets.fetch("model.pt", allow_download=False) == mine
    mine.write_bytes(b"other")
    with pytest.raises(assets.ChecksumError):
        assets.fetch("model.pt")


def test_registry_lists_the_papers_checkpoints():
    names = set(assets.REGISTRY)
    for d in ("afhqv2-64x64-uncond", "ffhq-64x64-uncond", "cifar10-32x32-cond", "cifar10-32x32-uncond"):
        assert {f"edm-{d}-vp.pkl", f"edm-{d}-ve.pkl"} <= names
    dw = assets.get_asset("diffwave-ljspeech-22kHz-1000578.pt")
    assert dw.sha256 == "d415d2117bb0bba3999afabdd67ed11d9e43400af26193a451d112e2560821a8"
    with pytest.raises(KeyError, match="known assets"):
        assets.get_asset("nope.pkl")
