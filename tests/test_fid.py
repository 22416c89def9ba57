"""FID through clean-fid's loader with offline feature extractors: a folder against itself is 0, a shifted copy
is far, the result equals frechet_distance(gaussian_stats(...)) of features computed directly; the modes feed
the network what they promise; reference npz files are read as data; a missing Inception file says how to get it."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from specreg_lib.assets import AssetMissingError
from specreg_lib.data.seed_images import image_path
from specreg_lib.metrics import fid as F
from specreg_lib.metrics import frechet_distance, gaussian_stats

torch.set_num_threads(1)


class RandomConvFeatures(nn.Module):
    """A fixed random conv net: (B, 3, H, W) in [0, 255] -> (B, 6) (mean-pooled ReLU features)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x):
        return self.net(x / 127.5 - 1)


def _images(n: int, seed: int, shift: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = rng.uniform(80, 140, size=(1, 1, 3)) + rng.normal(0, 30, size=(16, 16, 3))
        out.append(np.clip(base + shift, 0, 255).astype(np.uint8))
    return out


def _write(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(images):
        Image.fromarray(a).save(folder / f"{i:04d}.png")
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("fid")
    return (_write(root / "a", _images(40, 1)), _write(root / "shifted", _images(40, 1, shift=60)),
            _write(root / "b", _images(40, 2)))


def _direct_stats(folder, extractor):
    x = torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1)
                     for p in sorted(folder.glob("*.png"))]).float()
    with torch.no_grad():
        return gaussian_stats(extractor(x).numpy())


def test_fid_zero_against_itself_large_against_shifted_equal_to_direct(folders):
    a, shifted, b = folders
    ext = RandomConvFeatures()
    kw = dict(extractor=ext, progress=False)
    ref_a = _direct_stats(a, ext)
    assert F.fid(a, ref_a, **kw) == pytest.approx(0.0, abs=1e-8)
    far, near = F.fid(shifted, ref_a, **kw), F.fid(b, ref_a, **kw)
    assert far > 20 * near > 0  # a brightness shift is far; another draw of the same distribution is near
    assert far == pytest.approx(frechet_distance(*_direct_stats(shifted, ext), *ref_a), rel=1e-9, abs=1e-9)
    feats = F.image_features(a, **kw)
    assert feats.shape == (40, 6) and feats.dtype == np.float64
    with zipfile.ZipFile(a.parent / "a.zip", "w") as zf:  # a dataset zip (e.g. EDM's) reads the same
        for p in sorted(a.glob("*.png")):
            zf.write(p, f"00000/{p.name}")
    assert np.array_equal(F.image_features(a.parent / "a.zip", **kw), feats)


def test_modes_feed_the_network_as_documented(folders):
    seen = []

    def record(x):
        seen.append((tuple(x.shape[-2:]), float(x.min()), float(x.max())))
        return x.flatten(1)[:, :4]

    F.image_features(folders[0], mode="legacy_tensorflow", extractor=record, batch_size=40, progress=False)
    F.image_features(folders[0], mode="clean", extractor=record, batch_size=40, progress=False)
    (size_tf, lo, hi), (size_clean, _, _) = seen
    assert size_tf == (16, 16) and size_clean == (299, 299) and 0 <= lo and 150 < hi <= 255
    with pytest.raises(ValueError, match="legacy_tensorflow"):
        F.image_features(folders[0], mode="legacy_pytorch", extractor=record)


def test_reference_npz_is_data(tmp_path):
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=4), np.cov(rng.normal(size=(4, 50)))
    p = F.save_reference_stats(tmp_path / "ours.npz", mu, sigma, "clean", 50)
    m2, s2 = F.load_reference_stats(p, "clean")
    assert np.array_equal(m2, mu) and np.array_equal(s2, sigma)
    with pytest.raises(ValueError, match="holds clean statistics"):
        F.load_reference_stats(p, "legacy_tensorflow")
    np.savez(tmp_path / "edm.npz", mu=mu.astype(np.float32), sigma=sigma)  # EDM's layout: mu, sigma only
    assert F.load_reference_stats(tmp_path / "edm.npz", "legacy_tensorflow")[0].dtype == np.float64
    with pytest.raises(ValueError, match="legacy_tensorflow statistics"):
        F.load_reference_stats(tmp_path / "edm.npz", "clean")
    np.savez(tmp_path / "nosigma.npz", mu=mu)
    with pytest.raises(ValueError, match="'mu' and 'sigma'"):
        F.load_reference_stats(tmp_path / "nosigma.npz")
    np.savez(tmp_path / "pickled.npz", mu=np.array([{"a": 1}], dtype=object), sigma=sigma)
    with pytest.raises(ValueError, match="not a readable"):
        F.load_reference_stats(tmp_path / "pickled.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        F.load_reference_stats(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError, match="fid-refs"):
        F.load_reference_stats(tmp_path / "absent.npz")


def test_missing_inception_offline_says_how(monkeypatch, tmp_path):
    monkeypatch.setattr(F, "cleanfid_inception_path", lambda: tmp_path / "none" / F.INCEPTION)
    with pytest.raises(AssetMissingError) as err:
        F.inception_extractor(allow_download=False)
    msg = str(err.value)
    assert F.INCEPTION in msg and "https://nvlabs-fi-cdn.nvidia.com/" in msg and "local_path" in msg
    with pytest.raises(AssetMissingError, match="does not exist"):
        F.inception_extractor(local_path=tmp_path / "nowhere.pt")


class FakeInception(nn.Module):
    """Stands in for NVIDIA's TorchScript file: the attribute and call clean-fid's wrapper uses."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2048))

    def forward(self, x, return_features: bool = False):
        return self.layers(x / 255)


def test_a_local_inception_copy_under_another_name_is_placed_and_used(folders, tmp_path, monkeypatch):
    monkeypatch.setattr(F, "cleanfid_inception_path", lambda: tmp_path / "none" / F.INCEPTION)
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(FakeInception()), str(tmp_path / "my_copy.pt"))
    ext = F.inception_extractor("legacy_tensorflow", local_path=tmp_path / "my_copy.pt")
    feats = F.image_features(folders[0], extractor=ext, progress=False)
    assert feats.shape == (40, 2048)
    (tmp_path / "broken.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a loadable TorchScript"):
        F.inception_extractor(local_path=tmp_path / "broken.pt")


def test_seed_sets_protocol(tmp_path):
    imgs = _images(12, 3)
    for s, a in enumerate(imgs):
        image_path(tmp_path / "gen", s).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(image_path(tmp_path / "gen", s))
    ext = RandomConvFeatures()
    ref = _direct_stats(_write(tmp_path / "ref", _images(30, 4)), ext)
    summary = F.fid_seed_sets(tmp_path / "gen", ref, num=4, sets=3, extractor=ext, progress=False)
    files = sorted((tmp_path / "gen" / "000000").glob("*.png"))
    want = [F.fid(files[4 * k:4 * k + 4], ref, extractor=ext, progress=False) for k in range(3)]
    assert summary.values == pytest.approx(want, rel=1e-12) and summary.seed_ranges == ((0, 3), (4, 7), (8, 11))
    assert summary.min == min(want) and summary.std == pytest.approx(np.std(want, ddof=1))
    with pytest.raises(ValueError, match="lacks 4 of 4 images.*specreg generate --seeds 12-15"):
        F.fid_seed_sets(tmp_path / "gen", ref, num=4, sets=4, extractor=ext, progress=False)


def test_summary():
    s = F.summarize([2.0, 1.0, 3.0])
    assert (s.mean, s.std, s.min) == (2.0, 1.0, 1.0) and "2.0000 +- 1.0000" in s.text()
    assert F.summarize([2.0, 1.0, 3.0], ddof=0).std == pytest.approx(np.sqrt(2 / 3))
    with pytest.raises(ValueError, match="finite"):
        F.summarize([1.0, float("nan")])


def test_bad_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        F.image_files(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="no image files"):
        F.image_files(tmp_path / "empty")
