"""Hostile and odd data files (issue 20, findings 4, 6, 7, 8): images, dataset zips and folders, WAVs.

Every file is built here, in tmp_path: bomb PNGs row by row through zlib, zip members with patched headers,
CMYK JPEGs and 16-bit PNGs with PIL, float WAVs with soundfile. A bomb must be refused before it is inflated:
decoding is forbidden (PIL's ``ImageFile.load`` raises in these tests) or the peak of Python allocations
(``tracemalloc``: bytes, numpy arrays) stays far below the bomb's size.
"""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
import soundfile as sf
from PIL import Image, ImageFile

from specreg_lib.data.edm_datasets import (
    LABELS_BASE_BYTES,
    MAX_CLASSES,
    DatasetError,
    EDMImageDataset,
    edm_name,
    prepare_image_folder,
    write_edm_dataset,
)
from specreg_lib.data.folders import (
    MAX_IMAGE_PIXELS,
    MAX_MEMBER_BYTES,
    FolderError,
    image_size,
    list_media,
    load_audio,
    load_image,
)
from specreg_lib.data.seed_images import image_path, read_seed_images
from specreg_lib.data.speech import AudioError, read_wav
from specreg_lib.errors import InputError
from specreg_lib.kit import cli

SR = 22050
MiB = 2**20


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(w: int, h: int, valid: bool = True) -> bytes:
    """A black 8-bit grayscale PNG of w x h, compressed row by row (12000^2: 140 KB on disk, 144 MB of pixels);
    ``valid=False`` gives the header and a stub IDAT only."""
    c = zlib.compressobj(9)
    row = b"\x00" * (w + 1)  # filter byte + pixels
    idat = b"".join([c.compress(row) for _ in range(h)] + [c.flush()]) if valid else zlib.compress(row)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def png_bytes(a: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a, mode).save(buf, format="PNG") if mode else Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def imgs(n: int, size: int = 8, c: int = 3) -> list[np.ndarray]:
    g = np.random.default_rng(0)
    return [g.integers(0, 256, (size, size, c), dtype=np.uint8) for _ in range(n)]


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any image's pixels are decoded (PIL decodes in ImageFile.load)."""
    def refuse(self, *a, **k):
        raise AssertionError(f"decoded {self.size} pixels")
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def peak_bytes(fn, *args, **kwargs) -> tuple[BaseException | None, int]:
    """(the exception fn raised or None, peak bytes of Python/numpy allocations during the call)."""
    tracemalloc.start()
    try:
        fn(*args, **kwargs)
        err = None
    except Exception as e:  # the caller asserts the type
        err = e
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return err, peak


def patch_sizes(path, name: str, declared: int) -> None:
    """Rewrite a member's uncompressed size in the local header and the central directory (a lying zip)."""
    with zipfile.ZipFile(path) as zf:
        offset = zf.getinfo(name).header_offset
    raw = bytearray(path.read_bytes())
    assert raw[offset:offset + 4] == b"PK\x03\x04"
    raw[offset + 22:offset + 26] = struct.pack("<I", declared)  # local header: uncompressed size
    central = raw.index(b"PK\x01\x02")
    while raw[central + 46:central + 46 + len(name)] != name.encode():  # its central directory entry
        central = raw.index(b"PK\x01\x02", central + 4)
    raw[central + 24:central + 28] = struct.pack("<I", declared)
    path.write_bytes(bytes(raw))


def spectrum(a, b, tmp_path, capsys) -> tuple[int, str]:
    rc = cli.main(["spectrum", str(a), str(b), "--out", str(tmp_path / "fig")])
    lines = capsys.readouterr().err.replace("\r", "\n").splitlines()
    return rc, "\n".join(ln for ln in lines if ln.strip() and not ("|" in ln and "%" in ln))  # no progress bars


# ------------------------------------------------------------------ finding 4: size bombs


@pytest.mark.parametrize("w", [12000, 20000])  # under Pillow's hard limit (a warning only), and over it
def test_bomb_png_refused_from_its_header(tmp_path, capsys, no_decoding, w):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bomb.png").write_bytes(bomb_png(w, w, valid=w == 12000))
    assert (tmp_path / "a" / "bomb.png").stat().st_size < 400_000
    with pytest.raises(FolderError, match=f"bomb.png.*{w}x{w}|bomb.png.*more than {MAX_IMAGE_PIXELS}"):
        image_size(tmp_path / "a" / "bomb.png")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "ok.png").write_bytes(png_bytes(imgs(1, 16, 1)[0][..., 0]))
    rc, err = spectrum(tmp_path / "a", tmp_path / "b", tmp_path, capsys)
    assert rc == 2 and len(err.splitlines()) == 1 and "bomb.png" in err and "downscale" in err


def test_bomb_png_in_a_dataset_and_a_source_zip(tmp_path, no_decoding):
    d = tmp_path / "d"
    (d / "00000").mkdir(parents=True)
    (d / "00000" / "img00000000.png").write_bytes(bomb_png(12000, 12000))
    with pytest.raises(DatasetError, match="img00000000.png.*12000x12000.*downscale"):
        EDMImageDataset(d)
    with zipfile.ZipFile(tmp_path / "src.zip", "w") as zf:
        zf.writestr("cat/a.png", bomb_png(12000, 12000))
    with pytest.raises(DatasetError, match="a.png.*12000x12000"):
        prepare_image_folder(tmp_path / "src.zip", tmp_path / "out.zip", 16, progress=False)


def _labelled(tmp_path, labels, n=4) -> object:
    d = tmp_path / "lab"
    write_edm_dataset(imgs(n), d, [0] * n)
    (d / "dataset.json").write_text(json.dumps({"labels": [[edm_name(i), lab] for i, lab in enumerate(labels)]}))
    return d


def test_class_label_beyond_the_bound_is_refused_before_any_one_hot(tmp_path):
    d = _labelled(tmp_path, [10**9, 0, 1, 2])  # was np.eye(10^9 + 1): 3.47 EiB asked of numpy
    with pytest.raises(DatasetError, match=f"dataset.json.*1000000000.*\\[0, {MAX_CLASSES}\\).*renumber"):
        EDMImageDataset(d)
    with pytest.raises(DatasetError, match="dataset.json.*-1"):
        EDMImageDataset(_labelled(tmp_path, [-1, 0, 1, 2]))


def test_one_hot_labels_are_built_per_item(tmp_path):
    """The largest allowed class keeps (N,) indices in memory, not an (N, num_classes) matrix (EDM's get_label)."""
    ds = EDMImageDataset(_labelled(tmp_path, [MAX_CLASSES - 1, 0, 3, 3]))
    assert ds.label_dim == MAX_CLASSES and ds.labels.shape == (4,)
    eye = np.eye(MAX_CLASSES, dtype=np.float32)  # the oracle
    for i, c in enumerate([MAX_CLASSES - 1, 0, 3, 3]):
        assert np.array_equal(ds[i][1].numpy(), eye[c])


def test_oversized_dataset_json_refused_before_parsing(tmp_path):
    """1.5 MB of labels for 4 images (was parsed whole; with a large class index it became 3.9 GB)."""
    d = _labelled(tmp_path, [0, 1, 2, 3])
    pairs = [[f"00000/x{i:08d}.png", 7] for i in range(50_000)]  # 1.5 MB of extra entries
    (d / "dataset.json").write_text(json.dumps({"labels": [[edm_name(i), 0] for i in range(4)] + pairs}))
    assert (d / "dataset.json").stat().st_size > LABELS_BASE_BYTES
    err, peak = peak_bytes(EDMImageDataset, d)
    assert isinstance(err, DatasetError) and "dataset.json" in str(err) and "per image" in str(err)
    assert peak < 4 * MiB  # read at most the bound (~1 MiB), never parsed


def test_dataset_json_deflate_bomb_is_never_inflated(tmp_path):
    """A deflated dataset.json of 64 MiB (~65 KB in the zip): at most the bound (~1 MiB) is inflated."""
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i, a in enumerate(imgs(4)):
            zf.writestr(edm_name(i), png_bytes(a))
        with zf.open("dataset.json", "w") as fh:
            fh.write(b'{"labels": [' + b" " * (MiB - 12))
            for _ in range(63):
                fh.write(b" " * MiB)
    assert z.stat().st_size < MiB
    err, peak = peak_bytes(EDMImageDataset, z)
    assert isinstance(err, DatasetError) and "bomb.zip/dataset.json: larger than" in str(err)
    assert peak < 4 * MiB


def test_lying_zip_member_is_read_in_bounded_steps(tmp_path):
    """A WAV member that inflates to 64 MiB but declares 1000 bytes: zipfile's whole-file read inflated it all
    (up to 2 GiB per call) before truncating; read in chunks it stops at the declared size (CRC then fails)."""
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf, zf.open("a.wav", "w") as fh:
        for _ in range(64):
            fh.write(b"\0" * MiB)
    patch_sizes(z, "a.wav", 1000)
    kind, (member,) = list_media(z)
    err, peak = peak_bytes(member.read_bytes)
    assert isinstance(err, FolderError) and "a.wav" in str(err) and "again" in str(err)
    assert peak < 8 * MiB


def test_zip_member_refused_by_declared_size_and_method(tmp_path):
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.png", png_bytes(imgs(1, 16)[0]))
    patch_sizes(z, "a.png", MAX_MEMBER_BYTES + 1)
    with pytest.raises(FolderError, match=f"a.png: declares {MAX_MEMBER_BYTES + 1} bytes"):
        image_size(list_media(z)[1][0])
    b = tmp_path / "b.zip"  # bzip2 / LZMA members are inflated a whole block per call by zipfile: refused
    with zipfile.ZipFile(b, "w", compression=zipfile.ZIP_BZIP2) as zf:
        for i in range(2):
            zf.writestr(edm_name(i), png_bytes(imgs(1)[0]))
    with pytest.raises(DatasetError, match="img00000000.png: compressed with zip method 12.*ZIP_DEFLATED"):
        EDMImageDataset(b)
    with pytest.raises(FolderError, match="method 12"):
        image_size(list_media(b)[1][0])


# ------------------------------------------------------------------ finding 6: silent results


def test_sixteen_bit_dataset_png_keeps_its_range(tmp_path):
    """A 0..65535 gradient reads as round(v / 257), not 99.6% 255 (convert("L") clipped at 255)."""
    d = tmp_path / "d"
    (d / "00000").mkdir(parents=True)
    grad = (np.arange(64 * 64, dtype=np.int64).reshape(64, 64) * 65535 // (64 * 64 - 1)).astype(np.uint16)
    Image.fromarray(grad).save(d / "00000" / "img00000000.png")
    assert Image.open(d / "00000" / "img00000000.png").mode == "I;16"
    ds = EDMImageDataset(d)
    got = ds.image_uint8(0)
    want = np.round(grad.astype(np.float64) * 255 / 65535).astype(np.uint8)  # independent: float rounding
    assert ds.channels == 1 and np.array_equal(got[0], want)
    assert (got == 255).mean() < 0.01 and got.min() == 0 and got.max() == 255
    x = ds[0][0].numpy()[0]
    assert np.allclose(x, want / 127.5 - 1, rtol=0, atol=1e-6)  # EDM's uint8 / 127.5 - 1


def test_sixteen_bit_source_image_is_prepared_without_clipping(tmp_path):
    (tmp_path / "src").mkdir()
    grad = np.tile(np.linspace(0, 65535, 16).astype(np.uint16), (16, 1))
    Image.fromarray(grad).save(tmp_path / "src" / "a.png")
    prepare_image_folder(tmp_path / "src", tmp_path / "out.zip", 16, progress=False)
    got = EDMImageDataset(tmp_path / "out.zip").image_uint8(0)
    assert np.array_equal(got[0], np.round(grad / 257.0).astype(np.uint8))


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_dataset_image_is_refused_like_the_spectrum(tmp_path, capsys, mode):
    """One rule: any pixel with alpha < 1 refuses the image, in a dataset as in ``specreg spectrum``."""
    rgba = np.dstack([imgs(1)[0], np.full((8, 8), 255, np.uint8)])
    rgba[0, 0, 3] = 0
    im = Image.fromarray(rgba, "RGBA")
    im = im.convert("LA") if mode == "LA" else im.quantize(colors=16) if mode == "P" else im
    if mode == "P":
        im.info["transparency"] = im.getpixel((0, 0))
    d = tmp_path / "d"
    write_edm_dataset(imgs(2), d)
    im.save(d / "00000" / "img00000001.png", transparency=im.info.get("transparency")) if mode == "P" else \
        im.save(d / "00000" / "img00000001.png")
    if mode == "LA":  # a one-channel dataset: make image 0 gray too
        Image.fromarray(imgs(1)[0][..., 0]).save(d / "00000" / "img00000000.png")
    ds = EDMImageDataset(d)
    ds[0]
    with pytest.raises(DatasetError, match="img00000001.png: .*% of the pixels are transparent.*flatten"):
        ds[1]
    (tmp_path / "a").mkdir()
    (d / "00000" / "img00000001.png").rename(tmp_path / "a" / "t.png")
    rc, err = spectrum(tmp_path / "a", d, tmp_path, capsys)
    assert rc == 2 and "t.png" in err and "transparent" in err


def test_opaque_alpha_is_dropped(tmp_path):
    rgb = imgs(1)[0]
    d = tmp_path / "d"
    write_edm_dataset([rgb, rgb], d)
    Image.fromarray(np.dstack([rgb, np.full((8, 8), 255, np.uint8)]), "RGBA").save(d / "00000" / "img00000001.png")
    ds = EDMImageDataset(d)
    assert np.array_equal(ds.image_uint8(1), ds.image_uint8(0))


def _float_wav(path, x):
    sf.write(str(path), np.asarray(x, dtype=np.float32), SR, subtype="FLOAT")
    return path


def test_read_wav_refuses_out_of_range_and_non_finite_floats(tmp_path):
    tone = 0.5 * np.sin(np.linspace(0, 200, 8000))
    big = tone.copy()
    big[100] = 3.9e30  # peaked at 3.9e30 "in [-1, 1]"
    with pytest.raises(AudioError, match="big.wav: samples reach 3.9e\\+30, outside full scale.*normalise"):
        read_wav(_float_wav(tmp_path / "big.wav", big), SR)
    over = tone.copy()
    over[5] = 1.01
    with pytest.raises(AudioError, match="over.wav.*1.01"):
        read_wav(_float_wav(tmp_path / "over.wav", over), SR)
    nan = tone.copy()
    nan[[3, 9]] = [np.nan, np.inf]
    with pytest.raises(AudioError, match="nan.wav: 2 non-finite samples"):
        read_wav(_float_wav(tmp_path / "nan.wav", nan), SR)
    full = tone.copy()
    full[7], full[8] = 1.0, -1.0  # full scale exactly is fine, and read unchanged
    assert np.array_equal(read_wav(_float_wav(tmp_path / "full.wav", full), SR), full.astype(np.float32))


def test_spectrum_names_non_finite_wavs_not_silent(tmp_path, capsys):
    for name, bad in (("nan", np.nan), ("inf", np.inf)):
        (tmp_path / name).mkdir()
        x = 0.1 * np.random.default_rng(0).standard_normal(4096)
        x[10] = bad
        _float_wav(tmp_path / name / "a.wav", x)
    (tmp_path / "ok").mkdir()
    _float_wav(tmp_path / "ok" / "a.wav", 0.1 * np.random.default_rng(1).standard_normal(4096))
    for name in ("nan", "inf"):
        with pytest.raises(AudioError, match="non-finite"):
            load_audio(tmp_path / name / "a.wav")
        rc, err = spectrum(tmp_path / name, tmp_path / "ok", tmp_path, capsys)
        assert rc == 2 and len(err.splitlines()) == 1 and "non-finite" in err and "silent" not in err


# ------------------------------------------------------------------ findings 7 and 8: names and kinds


def test_cmyk_jpeg_is_converted_not_called_transparent(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    cmyk = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 4), dtype=np.uint8), "CMYK")
    cmyk.save(tmp_path / "a" / "c.jpg", quality=95)
    rgb = np.asarray(Image.open(tmp_path / "a" / "c.jpg").convert("RGB"), dtype=np.float64) / 255
    want = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) * 2 - 1
    assert np.allclose(load_image(tmp_path / "a" / "c.jpg", (16, 16)).numpy()[0, 0], want)
    rc, err = spectrum(tmp_path / "a", tmp_path / "a", tmp_path, capsys)
    assert rc == 0, err


@pytest.mark.parametrize("name", ["../../evil.png", "/abs/evil.png", "..\\..\\evil.png", "C:/evil.png"])
def test_zip_member_outside_the_archive_is_refused(tmp_path, capsys, name):
    good = png_bytes(imgs(1, 16)[0])
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ok.png", good)
        zf.writestr(zipfile.ZipInfo(name), good)  # ZipInfo keeps the name as given (writestr would clean it)
    with pytest.raises(FolderError, match="points outside"):
        list_media(z)
    with pytest.raises(DatasetError, match="points outside"):
        EDMImageDataset(z)
    rc, err = spectrum(z, z, tmp_path, capsys)
    assert rc == 2 and "evil.png" in err and "rebuild" in err
    assert not (tmp_path.parent / "evil.png").exists()


def test_link_out_of_a_folder_is_refused(tmp_path, capsys):
    (tmp_path / "outside").mkdir()
    secret = tmp_path / "outside" / "secret.png"
    secret.write_bytes(png_bytes(imgs(1, 16)[0]))
    d = tmp_path / "d"
    write_edm_dataset(imgs(2, 16), d)
    (d / "00000" / "img00000002.png").symlink_to(secret)
    with pytest.raises(DatasetError, match="img00000002.png: a link to .*secret.png, outside"):
        EDMImageDataset(d)
    rc, err = spectrum(d, d, tmp_path, capsys)
    assert rc == 2 and "secret.png" in err and "outside" in err
    (d / "00000" / "img00000002.png").unlink()
    (d / "00000" / "img00000002.png").symlink_to(d / "00000" / "img00000000.png")  # a link inside: fine
    assert len(EDMImageDataset(d, use_labels=False)) == 3


@pytest.mark.parametrize("case, match", [("text", "cannot read image: not a readable image"),
                                              ("truncated", "cannot decode image")])
def test_broken_members_of_a_dataset_zip_are_named(tmp_path, capsys, case, match):
    z = tmp_path / "d.zip"
    write_edm_dataset(imgs(3, 16), z)
    whole = png_bytes(imgs(1, 16)[0])
    bad = b"this is not an image\n" * 10 if case == "text" else whole[:60]
    with zipfile.ZipFile(z, "a") as zf:
        zf.writestr("00000/img00000003.png", bad)
    with pytest.raises(DatasetError, match=f"d.zip/00000/img00000003.png: {match}"):
        ds = EDMImageDataset(z, use_labels=False)
        ds[3]
    rc, err = spectrum(z, z, tmp_path, capsys)
    assert rc == 2 and "img00000003.png" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("labels, match", [
    ([True, 0, 1, 0], "class integers"),
    ([[0.5, np.nan], [0, 1], [0, 1], [0, 1]], "NaN"),
    ([[0.5], [0, 1], [0, 1], [0, 1]], "equal-length"),
    ([2.5, 0, 1, 0], "class integers"),
])
def test_bad_label_values_are_refused(tmp_path, labels, match):
    d = _labelled(tmp_path, [0, 0, 0, 0])
    pairs = [[edm_name(i), lab] for i, lab in enumerate(labels)]
    (d / "dataset.json").write_text(json.dumps({"labels": pairs}))  # NaN: Python's json writes and reads it
    with pytest.raises(DatasetError, match=match):
        EDMImageDataset(d)


def test_deeply_nested_dataset_json_is_a_dataset_error(tmp_path):
    d = _labelled(tmp_path, [0, 0, 0, 0])
    (d / "dataset.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DatasetError, match="dataset.json: not valid JSON"):
        EDMImageDataset(d)


def test_seed_images_read_by_the_same_rule(tmp_path, no_decoding):
    path = image_path(tmp_path, 3)
    path.parent.mkdir(parents=True)
    path.write_bytes(bomb_png(12000, 12000))
    with pytest.raises(FolderError, match="000003.png.*12000x12000"):
        read_seed_images(tmp_path, [3])


def test_every_refusal_here_is_an_input_error():
    assert issubclass(FolderError, InputError) and issubclass(DatasetError, InputError)
    assert issubclass(AudioError, InputError)
