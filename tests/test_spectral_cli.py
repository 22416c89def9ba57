"""``specreg spectrum``: folders of images or WAVs -> figure + distances; clear errors for bad folders."""

import argparse

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from specreg_lib.data import FolderError, list_media, load_audio, load_image
from specreg_lib.kit import spectrum


def _images(folder, sizes, seed, smooth=False):
    folder.mkdir()
    g = np.random.default_rng(seed)
    for i, (h, w) in enumerate(sizes):
        x = g.integers(0, 256, (h, w, 3)).astype(np.uint8)
        if smooth:
            x = np.repeat(np.repeat(x[::4, ::4], 4, 0), 4, 1)[:h, :w]
        Image.fromarray(x).save(folder / f"im{i}.{'png' if i % 2 else 'jpg'}")
    return folder


def test_images_end_to_end(tmp_path, capsys):
    a = _images(tmp_path / "a", [(32, 32), (40, 36)], seed=0)
    b = _images(tmp_path / "b", [(32, 32), (32, 48)], seed=1, smooth=True)
    out = tmp_path / "fig" / "cmp"
    assert spectrum.main([str(a), str(b), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "centre-cropped to 32x32" in text and "spectral_log_distance" in text
    assert (out.with_suffix(".png")).stat().st_size > 0 and (out.with_suffix(".pdf")).stat().st_size > 0
    hf = float(text.split("high_frequency_energy_ratio")[1].split(") = ")[1].split()[0])
    assert hf > 2  # white-noise images have far more high frequencies than block-upsampled ones


def test_wavs_end_to_end_and_subparser(tmp_path, capsys):
    for name, seed in (("a", 0), ("b", 1)):
        (tmp_path / name).mkdir()
        g = np.random.default_rng(seed)
        for i in range(2):
            sf.write(tmp_path / name / f"c{i}.wav", 0.1 * g.standard_normal((8000 + 1000 * i, 2)), 8000)
    parser = argparse.ArgumentParser()
    spectrum.add_arguments(parser.add_subparsers().add_parser("spectrum"))
    args = parser.parse_args(["spectrum", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "s")])
    assert spectrum.execute(args) == 0
    text = capsys.readouterr().out
    assert "cropped" not in text and "f >= 0.25 = 2000 Hz" in text  # Welch: clips of any length, no crop
    # Same white noise: Welch averaging (~15 segments per clip) leaves little scatter between the spectra.
    assert float(text.split("spectral_log_distance(A, B) = ")[1].split()[0]) < 0.1
    assert (tmp_path / "s.png").exists()


def test_bad_folders(tmp_path, capsys):
    good = _images(tmp_path / "good", [(16, 16)], seed=0)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    mixed = _images(tmp_path / "mixed", [(16, 16)], seed=0)
    sf.write(mixed / "a.wav", np.zeros(100), 8000)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.png").write_bytes(b"not a png")
    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "a.wav", np.zeros(100), 8000)
    cases = {"missing": "no such folder", "empty": "no PNG/JPG images or WAV files",
             "mixed": "mixes images", "broken": "cannot read image", "audio": "holds image files but"}
    for name, message in cases.items():
        first, second = (good, audio) if name == "audio" else (tmp_path / name, good)
        assert spectrum.main([str(first), str(second), "--out", str(tmp_path / "o")]) == 2
        assert message in capsys.readouterr().err
    sf.write(audio / "b.wav", np.zeros(100), 16000)
    assert spectrum.main([str(audio), str(audio), "--out", str(tmp_path / "o")]) == 2
    assert "different sample rates" in capsys.readouterr().err


def test_folder_loaders(tmp_path):
    folder = _images(tmp_path / "im", [(20, 24), (16, 16)], seed=0)
    kind, files = list_media(folder)
    assert kind == "image" and [p.name for p in files] == ["im0.jpg", "im1.png"]
    x = load_image(files[0], (16, 16))  # centre crop of a 20x24 image
    assert x.shape == (1, 1, 16, 16) and str(x.dtype) == "torch.float64" and -1 <= x.min() <= x.max() <= 1
    (tmp_path / "au").mkdir()
    sf.write(tmp_path / "au" / "a.wav", np.full((50, 2), 0.5), 8000)
    assert list_media(tmp_path / "au")[0] == "audio"
    assert load_audio(tmp_path / "au" / "a.wav", 30).shape == (1, 1, 30)
    with pytest.raises(FolderError, match="no such folder"):
        list_media(tmp_path / "missing")
