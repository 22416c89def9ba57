"""EDM's dataset layout: zip and folder read alike, labels one-hot, clear errors for bad datasets; preparation
(LANCZOS resize, CIFAR-10's binary records) and the offline stand-in in the same layout."""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import re
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from specreg_lib.data.edm_datasets import (
    DATASETS,
    DatasetError,
    EDMImageDataset,
    cifar10_records,
    default_dataset_path,
    edm_name,
    prepare_cifar10,
    prepare_dataset,
    prepare_image_folder,
    write_edm_dataset,
    write_standin,
)


def _imgs(n, size=8, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(size, size, c), dtype=np.uint8) for _ in range(n)]


def test_zip_and_folder_read_alike_with_one_hot_labels(tmp_path):
    imgs, labels = _imgs(5), [3, 0, 1, 3, 2]
    assert write_edm_dataset(imgs, tmp_path / "d.zip", labels) == 5
    write_edm_dataset(imgs, tmp_path / "d", labels)
    z, f = EDMImageDataset(tmp_path / "d.zip", resolution=8), EDMImageDataset(tmp_path / "d")
    assert len(z) == len(f) == 5 and z.label_dim == 4 and (z.channels, z.resolution) == (3, 8)
    for i in range(5):
        (xz, lz), (xf, lf) = z[i], f[i]
        assert torch.equal(xz, xf) and torch.equal(lz, lf)
        assert torch.equal(xz, torch.from_numpy(imgs[i].transpose(2, 0, 1).astype(np.float32) / 127.5 - 1))
        assert lz.tolist() == np.eye(4)[labels[i]].tolist()
    assert float(z[0][0].min()) >= -1 and float(z[0][0].max()) <= 1
    with zipfile.ZipFile(tmp_path / "d.zip") as zf:
        assert edm_name(1234) == "00001/img00001234.png" and "00000/img00000004.png" in zf.namelist()
    z[0]  # opens the archive; the dataset still pickles for DataLoader workers
    assert torch.equal(pickle.loads(pickle.dumps(z))[2][0], z[2][0])
    assert EDMImageDataset(tmp_path / "d.zip", use_labels=False)[0][1].shape == (0,)
    assert len(EDMImageDataset(tmp_path / "d", max_size=2)) == 2


def test_unlabelled_grayscale_and_bare_label_list(tmp_path):
    write_edm_dataset(_imgs(3, c=1), tmp_path / "g")
    g = EDMImageDataset(tmp_path / "g")
    assert g.labels is None and g[1][0].shape == (1, 8, 8) and g[1][1].shape == (0,)
    (tmp_path / "g" / "dataset.json").write_text(json.dumps([[edm_name(i), i] for i in range(3)]))
    assert EDMImageDataset(tmp_path / "g").label_dim == 3


@pytest.mark.parametrize("case, match", [
    ("missing", "no such dataset"),
    ("mixed", "differ in size"),
    ("only_text", "no images"),
    ("corrupt", "not a readable image"),
    ("truncated", "cannot decode image"),
    ("unlabelled_image", "no label for 1 images"),
    ("bad_json", "not valid JSON"),
    ("traversal", "points outside"),
    ("wrong_resolution", "resolution=16"),
])
def test_bad_datasets_give_clear_errors(tmp_path, case, match):
    d = tmp_path / "d"
    if case != "missing":
        write_edm_dataset(_imgs(2), d, [0, 1])
    if case == "mixed":
        Image.fromarray(_imgs(1, size=16)[0]).save(d / "00000" / "big.png")
    elif case == "only_text":
        d = tmp_path / "t"
        d.mkdir()
        (d / "README.txt").write_text("not an image")
    elif case == "corrupt":
        (d / "00000" / "img00000001.png").write_bytes(b"\x89PNG garbage")
    elif case == "truncated":
        buf = io.BytesIO()
        Image.fromarray(_imgs(1, seed=5)[0]).save(buf, format="PNG")
        (d / "00000" / "img00000001.png").write_bytes(buf.getvalue()[:60])  # the header survives, not the pixels
    elif case == "unlabelled_image":
        Image.fromarray(_imgs(1)[0]).save(d / "00000" / "extra.png")
    elif case == "bad_json":
        (d / "dataset.json").write_text("{labels: oops")
    elif case == "traversal":
        d = tmp_path / "evil.zip"
        with zipfile.ZipFile(d, "w") as zf:
            zf.writestr("../escape.png", (tmp_path / "d" / "00000" / "img00000000.png").read_bytes())
    ds_kwargs = {"resolution": 16} if case == "wrong_resolution" else {}
    with pytest.raises(DatasetError, match=match):
        ds = EDMImageDataset(d, **ds_kwargs)
        ds[1]
    assert not (tmp_path / "escape.png").exists()


def test_prepare_image_folder_resizes_with_lanczos(tmp_path):
    src = tmp_path / "src"
    (src / "cat").mkdir(parents=True)
    (src / "dog").mkdir()
    big = _imgs(2, size=40, seed=1)
    Image.fromarray(big[0]).save(src / "cat" / "a.png")
    Image.fromarray(big[1]).convert("L").save(src / "dog" / "b.png")  # a grayscale source becomes RGB
    (src / "notes.txt").write_text("ignored")
    assert prepare_image_folder(src, tmp_path / "out.zip", resolution=16, progress=False) == 2
    ds = EDMImageDataset(tmp_path / "out.zip", resolution=16)
    want = np.asarray(Image.fromarray(big[0]).resize((16, 16), Image.Resampling.LANCZOS))
    assert np.array_equal(ds.image_uint8(0), want.transpose(2, 0, 1)) and ds.labels is None
    assert ds.image_uint8(1).shape == (3, 16, 16)
    with zipfile.ZipFile(tmp_path / "src.zip", "w") as zf:  # the same sources zipped (like afhq_v2.zip)
        for p in sorted(src.rglob("*.png")):
            zf.write(p, p.relative_to(src).as_posix())
    assert prepare_image_folder(tmp_path / "src.zip", tmp_path / "from_zip.zip", 16, progress=False) == 2
    assert np.array_equal(EDMImageDataset(tmp_path / "from_zip.zip").image_uint8(1), ds.image_uint8(1))
    with pytest.raises(DatasetError, match="no such folder"):
        prepare_image_folder(tmp_path / "absent", tmp_path / "x.zip")


def _cifar_tar(path, per_batch=2, truncate=False):
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            recs = []
            for k in range(per_batch):
                label = (len(name) + k) % 10
                planes = np.stack([np.full((32, 32), v, np.uint8) for v in (10 + k, 20, 30)])
                recs.append(np.concatenate([[label], planes.ravel()]).astype(np.uint8))
            data = np.concatenate(recs).tobytes()[: -5 if truncate else None]
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_prepare_cifar10_from_binary_records(tmp_path):
    tar = _cifar_tar(tmp_path / "cifar-10-binary.tar.gz")
    recs = list(cifar10_records(tar))
    assert len(recs) == 10 and len(list(cifar10_records(tar, "test"))) == 2
    img, label = recs[1]
    assert img.shape == (32, 32, 3) and img[0, 0].tolist() == [11, 20, 30]
    assert label == (len("data_batch_1.bin") + 1) % 10
    assert prepare_cifar10(tar, tmp_path / "cifar.zip") == 10
    ds = EDMImageDataset(tmp_path / "cifar.zip", resolution=32)
    assert ds.label_dim == max(c for _, c in recs) + 1 and int(ds[1][1].argmax()) == label
    assert np.array_equal(ds.image_uint8(1), img.transpose(2, 0, 1))
    with pytest.raises(DatasetError, match="truncated"):
        list(cifar10_records(_cifar_tar(tmp_path / "bad.tar.gz", truncate=True)))
    (tmp_path / "junk.tar.gz").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="not a readable"):
        list(cifar10_records(tmp_path / "junk.tar.gz"))


def test_prepare_dataset_fetches_the_registered_source(tmp_path, monkeypatch):
    from specreg_lib import assets

    tar = _cifar_tar(tmp_path / "cifar-10-binary.tar.gz")
    monkeypatch.setenv("SPECREG_CACHE", str(tmp_path))  # the cache holds the tarball: no download
    monkeypatch.setitem(assets.REGISTRY, "cifar-10-binary.tar.gz", dataclasses.replace(
        assets.REGISTRY["cifar-10-binary.tar.gz"], sha256=assets.sha256_file(tar)))
    assert prepare_dataset("cifar10-32x32", tmp_path / "c.zip") == 10
    with pytest.raises(ValueError, match="download_ffhq.py"):
        prepare_dataset("ffhq-64x64", tmp_path / "f.zip")
    with pytest.raises(ValueError, match="unknown dataset"):
        prepare_dataset("imagenet", tmp_path / "i.zip")


def test_standin_in_edm_layout(tmp_path):
    assert write_standin(tmp_path / "s.zip", n=6, resolution=16, seed=3) == 6
    ds = EDMImageDataset(tmp_path / "s.zip", resolution=16)
    x, _ = ds[0]
    assert x.shape == (3, 16, 16) and torch.equal(x[0], x[2]) and float(x.std()) > 0.01
    write_standin(tmp_path / "t.zip", n=6, resolution=16, seed=3)
    assert (tmp_path / "s.zip").read_bytes() == (tmp_path / "t.zip").read_bytes()


def test_one_default_dataset_location():
    """data/<name>.zip everywhere: the code's default, and every prepared dataset the README, docs, notebooks and
    docstrings name sits in data/ (or is the user's own copy, ~/...)."""
    from specreg_lib.io import resolve_repo_path

    repo = resolve_repo_path(".")
    assert default_dataset_path("afhqv2-64x64") == "data/afhqv2-64x64.zip"
    named = re.compile(r"([\w.~-]+)/(" + "|".join(map(re.escape, DATASETS)) + r")\.zip")
    files = [repo / "README.md", *repo.glob("docs/*.md"), *repo.glob("notebooks/*.ipynb"),
             *repo.glob("specreg_lib/**/*.py")]
    found = [(f.relative_to(repo), m.group(0)) for f in files for m in named.finditer(f.read_text())]
    assert any(path == "data/afhqv2-64x64.zip" for _, path in found)  # the scan sees the README's line
    assert [(f, path) for f, path in found if path.split("/")[0] not in ("data", "~")] == []
