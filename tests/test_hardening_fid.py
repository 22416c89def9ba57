"""Issue 20, FID inputs: the Inception program and every asset are checked against their SHA-256 on every use and
never taken from a shared world-writable place (clean-fid's /tmp); a reference npz is refused from its .npy headers
and zip directory before anything is inflated (size bombs, wrong D, pickles, NaN, truncation); ``specreg fid``
checks every option before it scans a folder or loads Inception."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from specreg_lib import assets
from specreg_lib.errors import InputError
from specreg_lib.kit import cli
from specreg_lib.metrics import fid as F

torch.set_num_threads(1)
URL = assets.REGISTRY[F.INCEPTION].url
ENV = assets.REGISTRY[F.INCEPTION].env_var

# Files Python opened, recorded only while a test listens (an audit hook cannot be removed once added).
_OPENED: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], str | bytes | os.PathLike):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


class Planted(nn.Module):
    """A planted 'Inception': the attribute and call clean-fid uses, and the same features for every image, so
    any folder scores FID 0 against a reference made of them."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Identity()

    def forward(self, x, return_features: bool = False):
        return torch.zeros(x.shape[0], 2048) + 0.5


def _program(path) -> bytes:
    torch.jit.save(torch.jit.script(Planted()), str(path))
    return path.read_bytes()


def _images(folder, n: int = 3):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.fixture
def world(tmp_path, monkeypatch):
    """An empty private cache, no env var, and clean-fid's /tmp location moved into tmp_path (planted there)."""
    monkeypatch.setenv("SPECREG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv(ENV + "_SHA256", raising=False)
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    monkeypatch.setattr(F, "cleanfid_inception_path", lambda: shared / F.INCEPTION)
    _program(shared / F.INCEPTION)
    return tmp_path


def _listen(monkeypatch) -> tuple[list[str], list]:
    """Start recording Python's opens and every torch.jit.load (TorchScript reads its file in C++)."""
    global _OPENED
    _OPENED = []
    loads: list = []
    real = torch.jit.load
    monkeypatch.setattr(torch.jit, "load", lambda f, *a, **k: loads.append(f) or real(f, *a, **k))
    return _OPENED, loads


@pytest.fixture(autouse=True)
def _stop_listening():
    yield
    global _OPENED
    _OPENED = None


# ------------------------------------------------------------------------------------------ Inception, assets

def test_planted_cleanfid_copy_is_never_opened_and_fid_fails_clearly(world, monkeypatch, capsys):
    """The issue's case: a TorchScript program planted at clean-fid's /tmp path made `specreg fid noise/ --ref
    ones.npz --offline` print FID 0.0000 and exit 0. Now it is never opened: exit 2, one line, no FID."""
    planted = F.cleanfid_inception_path()
    ref = F.save_reference_stats(world / "ones.npz", np.full(2048, 0.5), np.eye(2048) * 1e-6, "legacy_tensorflow", 9)
    opened, loads = _listen(monkeypatch)
    code = cli.main(["fid", str(_images(world / "noise")), "--ref", str(ref), "--offline", "--no-progress",
                     "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 2 and "FID" not in out
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and F.INCEPTION in err and URL in err and "--inception PATH" in err
    assert f"local_path={planted}" in err and "not used" in err  # the /tmp copy is named, not read
    assert str(planted) not in opened and all(str(planted) not in str(f) for f in loads) and not loads


def test_planted_cache_copy_is_refused_against_its_record(world, monkeypatch):
    """The cache held a good download (hash recorded); the file is then swapped: refused, never loaded."""
    cache = assets.cache_dir()
    cache.mkdir(parents=True)
    good = b"the program downloaded first"
    (cache / F.INCEPTION).write_bytes(good)
    (cache / (F.INCEPTION + ".sha256")).write_text(f"{hashlib.sha256(good).hexdigest()}  {F.INCEPTION}\n")
    _program(cache / F.INCEPTION)  # planted over it
    _, loads = _listen(monkeypatch)
    with pytest.raises(assets.ChecksumError) as err:
        F.inception_extractor(allow_download=False)
    msg = str(err.value)
    assert str(cache / F.INCEPTION) in msg and hashlib.sha256(good).hexdigest() in msg and URL in msg
    assert "local_path=" in msg and ENV in msg and not loads
    assert isinstance(err.value, InputError)


def test_a_pinned_asset_refuses_a_wrong_cached_or_local_copy(world, monkeypatch):
    """With a pin (here the env var, as for a registry hash) a hand-placed cache file and an explicit local path
    are both checked; the right bytes load and give features."""
    right = _program(world / "right.pt")
    pin = hashlib.sha256(right).hexdigest()
    monkeypatch.setenv(ENV + "_SHA256", pin)
    cache = assets.cache_dir()
    cache.mkdir(parents=True)
    (cache / F.INCEPTION).write_bytes(b"planted, no record")
    wrong = world / "wrong.pt"
    wrong.write_bytes(right[:-1] + b"x")
    for kwargs, named in (({}, cache / F.INCEPTION), ({"local_path": wrong}, wrong)):
        _, loads = _listen(monkeypatch)
        with pytest.raises(assets.ChecksumError) as err:
            F.inception_extractor(allow_download=False, **kwargs)
        msg = str(err.value)
        assert str(named) in msg and pin in msg and URL in msg and "local_path=" in msg and not loads
    ext = F.inception_extractor(local_path=world / "right.pt", allow_download=False)
    assert ext(torch.zeros(2, 3, 32, 32)).shape == (2, 2048)


def test_every_asset_goes_through_the_same_check(world, monkeypatch):
    """Not only Inception: an EDM pickle, VGGish and the DiffWave checkpoint in the cache are refused when they
    do not match their record or pin (the DiffWave pin is the registry's)."""
    cache = assets.cache_dir()
    cache.mkdir(parents=True)
    for name in ("edm-afhqv2-64x64-uncond-vp.pkl", "vggish-10086976.pth", "diffwave-ljspeech-22kHz-1000578.pt"):
        (cache / name).write_bytes(b"tampered")
        if assets.REGISTRY[name].sha256 is None:
            (cache / (name + ".sha256")).write_text(f"{'a' * 64}  {name}\n")
        with pytest.raises(assets.ChecksumError, match=name):
            assets.read_verified(name, allow_download=False)
        with pytest.raises(assets.ChecksumError, match="download again from " + assets.REGISTRY[name].url):
            assets.fetch(name, allow_download=False)


def test_a_cache_others_can_write_does_not_vouch_for_unpinned_files(world, monkeypatch):
    """SPECREG_CACHE=/tmp-like: a file and its record planted together there prove nothing; a pin still works."""
    shared = world / "shared-cache"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setenv("SPECREG_CACHE", str(shared))
    data = _program(shared / F.INCEPTION)
    (shared / (F.INCEPTION + ".sha256")).write_text(f"{hashlib.sha256(data).hexdigest()}  {F.INCEPTION}\n")
    with pytest.raises(assets.ChecksumError, match="writable by other users.*SPECREG_CACHE") as err:
        F.inception_extractor(allow_download=False)
    assert URL in str(err.value)
    monkeypatch.setenv(ENV + "_SHA256", hashlib.sha256(data).hexdigest())
    assert F.inception_extractor(allow_download=False)(torch.zeros(1, 3, 8, 8)).shape == (1, 2048)


def test_bytes_loaded_are_the_bytes_checked(world, monkeypatch):
    """A file swapped between the check and the read (a race on a shared disk) is refused, not loaded."""
    cache = assets.cache_dir()
    cache.mkdir(parents=True)
    good = _program(cache / F.INCEPTION)
    monkeypatch.setenv(ENV + "_SHA256", hashlib.sha256(good).hexdigest())
    real = assets._fetch

    def racing(*a, **k):
        found = real(*a, **k)
        found[0].write_bytes(b"swapped after the check")
        return found

    monkeypatch.setattr(assets, "_fetch", racing)
    with pytest.raises(assets.ChecksumError, match="changed while it was being read"):
        F.inception_extractor(allow_download=False)


def test_verification_is_cached_per_file_version(world, monkeypatch):
    """An unchanged file (same path, inode, size, mtime) is hashed once per process; a changed one again; a file
    written moments ago always again (its mtime could tick back to the same value)."""
    f = world / "weights.bin"
    f.write_bytes(b"v1")
    calls = []
    real = assets.sha256_file
    monkeypatch.setattr(assets, "sha256_file", lambda p, *a: calls.append(p) or real(p, *a))
    pin = hashlib.sha256(b"v1").hexdigest()
    assets.verify(f, pin)
    assets.verify(f, pin)
    assert len(calls) == 2  # fresh: never cached
    old = time.time() - 3600
    os.utime(f, (old, old))
    for _ in range(3):
        assets.verify(f, pin)
    assert len(calls) == 3  # hashed once more, then cached
    f.write_bytes(b"v2")
    os.utime(f, (old + 1, old + 1))
    with pytest.raises(assets.ChecksumError):
        assets.verify(f, pin)
    assert len(calls) == 4


# ------------------------------------------------------------------------------------------ reference npz

def _npy(shape, descr: str = "<f8", data: bytes | None = None) -> bytes:
    """A .npy member: a header declaring ``shape`` and ``descr`` and, unless given, the bytes it promises."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    if data is None:
        data = bytes(int(np.prod(shape)) * np.dtype(descr).itemsize)
    return buf.getvalue() + data


def _npz(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, blob in members.items():
            zf.writestr(name + ".npy", blob)
    return path


def test_size_bomb_reference_is_refused_before_numpy_allocates(tmp_path):
    """The issue's 4.5 MB npz asked numpy for 4.29 GiB: a header declaring sigma (24000, 24000). Refused from the
    headers, with the traced memory peak far below the declared size and quickly."""
    bombs = {
        "huge-d.npz": {"mu": _npy((24000,)), "sigma": _npy((24000, 24000), data=bytes(1024))},
        # D allowed, but sigma's header promises 32 MiB its zip entry does not hold
        "short.npz": {"mu": _npy((2048,)), "sigma": _npy((2048, 2048), data=bytes(1024))},
        "wrong-sigma.npz": {"mu": _npy((3,)), "sigma": _npy((24000, 24000), data=bytes(8))},
    }
    for name, members in bombs.items():
        path = _npz(tmp_path / name, members)
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            with pytest.raises(F.FIDFileError) as err:
                F.load_reference_stats(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 << 20 and time.perf_counter() - t0 < 5, (name, peak)
        assert str(path) in str(err.value) and "--make-ref" in str(err.value) and "fid-refs" in str(err.value)


def test_reference_dimension_must_be_the_extractors(tmp_path, monkeypatch):
    """Inception features are 2048-d: a D = 3 reference is refused by name before Inception is loaded."""
    ref = F.save_reference_stats(tmp_path / "r3.npz", np.zeros(3), np.eye(3), "legacy_tensorflow", 9)
    monkeypatch.setattr(F, "inception_extractor", lambda *a, **k: pytest.fail("Inception loaded first"))
    with pytest.raises(F.FIDFileError, match=r"r3\.npz.*expected \(D,\) with D = 2048"):
        F.fid(_images(tmp_path / "imgs"), ref)
    from specreg_lib.data.seed_images import image_path

    for s in range(2):
        image_path(tmp_path / "gen", s).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image_path(tmp_path / "gen", s))
    with pytest.raises(F.FIDFileError, match="D = 2048"):
        F.fid_seed_sets(tmp_path / "gen", ref, num=2, sets=1)
    assert F.load_reference_stats(ref)[0].shape == (3,)  # a custom extractor's D is free (up to MAX_FEATURE_DIM)
    big = _npz(tmp_path / "big.npz", {"mu": _npy((F.MAX_FEATURE_DIM + 1,)), "sigma": _npy((1, 1))})
    with pytest.raises(F.FIDFileError, match=f"1 <= D <= {F.MAX_FEATURE_DIM}"):
        F.load_reference_stats(big)


_RAN: list[str] = []


def _ran(tag: str) -> None:
    _RAN.append(tag)


class _Payload:
    def __reduce__(self):
        return _ran, ("pickle ran",)


def test_hostile_and_broken_references_are_typed_one_line_errors(tmp_path, capsys):
    """Not a zip, truncated, a pickle inside (never run: allow_pickle stays False), NaN/Inf, a wrong dtype: each
    an InputError naming the file and what to do, so `specreg fid` prints one line and exits 2."""
    good = F.save_reference_stats(tmp_path / "good.npz", np.zeros(4), np.eye(4), "legacy_tensorflow", 9)
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    buf = io.BytesIO()
    np.save(buf, np.array([_Payload()], dtype=object), allow_pickle=True)
    _npz(tmp_path / "pickle.npz", {"mu": buf.getvalue(), "sigma": _npy((1, 1))})
    mu_nan = np.zeros(4)
    mu_nan[2] = np.nan
    np.savez(tmp_path / "nan.npz", mu=mu_nan, sigma=np.eye(4))
    sigma_inf = np.eye(4)
    sigma_inf[1, 1] = np.inf
    np.savez(tmp_path / "inf.npz", mu=np.zeros(4), sigma=sigma_inf)
    np.savez(tmp_path / "complex.npz", mu=np.zeros(4, complex), sigma=np.eye(4))
    expect = {"junk": "not an npz", "cut": "not an npz", "pickle": "pickle", "nan": "mu holds 1 NaN",
              "inf": "sigma holds 1 NaN or Inf", "complex": "complex128"}
    folder = _images(tmp_path / "imgs")
    for stem, words in expect.items():
        path = tmp_path / f"{stem}.npz"
        with pytest.raises(F.FIDFileError) as err:
            F.load_reference_stats(path)
        assert isinstance(err.value, InputError) and str(path) in str(err.value) and words in str(err.value)
        assert "--make-ref" in str(err.value)
        assert cli.main(["fid", str(folder), "--ref", str(path), "--offline", "--no-progress"]) == 2
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(lines) == 1 and str(path) in lines[0]
    assert not _RAN
    assert np.array_equal(F.load_reference_stats(good)[1], np.eye(4))  # a good file still loads


# ------------------------------------------------------------------------------------------ the door's options

@pytest.mark.parametrize("option, value, words", [
    ("--num", "0", ["--num must be >= 2", "--num 50000"]),
    ("--sets", "0", ["--sets must be >= 1"]),
    ("--first-seed", "-1", ["--first-seed must be >= 0"]),
    ("--workers", "-2", ["--workers must be >= 0"]),
])
def test_fid_options_are_checked_before_any_scan_or_load(option, value, words, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(F, "inception_extractor", lambda *a, **k: pytest.fail("Inception loaded"))
    monkeypatch.setattr(F, "image_files", lambda *a, **k: pytest.fail("folder scanned"))
    monkeypatch.setattr(F, "load_reference_stats", lambda *a, **k: pytest.fail("reference read"))
    assert cli.main(["fid", str(tmp_path / "gen"), "--ref", "r.npz", option, value]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and all(w in err for w in words), err


def test_a_huge_num_is_answered_at_once_before_inception(tmp_path, monkeypatch, capsys):
    """--num 10^12 used to walk range(0, 10^12) looking for missing seeds (after loading Inception)."""
    from specreg_lib.data.seed_images import image_path

    for s in range(3):
        image_path(tmp_path / "gen", s).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image_path(tmp_path / "gen", s))
    ref = F.save_reference_stats(tmp_path / "r.npz", np.zeros(2048), np.eye(2048), "legacy_tensorflow", 9)
    monkeypatch.setattr(F, "inception_extractor", lambda *a, **k: pytest.fail("Inception loaded"))
    t0 = time.perf_counter()
    assert cli.main(["fid", str(tmp_path / "gen"), "--ref", str(ref), "--num", str(10**12), "--sets", "1"]) == 2
    err = capsys.readouterr().err
    assert time.perf_counter() - t0 < 10 and "lacks 999999999997 of 1000000000000 images (first missing seed 3)" in err
    assert "specreg generate --seeds 0-999999999999" in err


class _Layered(nn.Module):
    """A TorchScript stand-in whose two paths differ: ``layers`` (clean mode) and ``forward`` (legacy mode)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.Sequential(nn.Conv2d(3, 4, 3, stride=8), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                    nn.Linear(4, 2048))

    def forward(self, x, return_features: bool = False):
        return self.layers(x / 255 - 0.25)


@pytest.mark.parametrize("mode", F.FID_MODES)
def test_features_from_verified_bytes_equal_cleanfids_wrapper(mode, world):
    """``InceptionFeatures`` (built from the checked bytes) gives clean-fid's ``InceptionV3W`` numbers bit for bit."""
    from cleanfid.inception_torchscript import InceptionV3W

    folder = world / "weights"
    folder.mkdir()
    torch.jit.save(torch.jit.script(_Layered()), str(folder / F.INCEPTION))
    x = torch.rand(2, 3, 299, 299) * 255
    ours = F.inception_extractor(mode, local_path=folder / F.INCEPTION, allow_download=False)
    theirs = InceptionV3W(str(folder), download=False, resize_inside=mode == "legacy_tensorflow")
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))
