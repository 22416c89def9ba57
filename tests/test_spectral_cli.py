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


def _write_generated(outdir, seeds, size=16):
    """A folder as ``specreg generate`` leaves it: generation.json, one PNG per seed, and a grid PNG inside."""
    from specreg_lib.data.seed_images import image_path, write_png

    g = np.random.default_rng(0)
    for s in seeds:
        write_png(g.integers(0, 256, (3, size, size)).astype(np.uint8), image_path(outdir, s))
    (outdir / "generation.json").write_text("{}")
    Image.fromarray(np.zeros((size * 2, size * 2, 3), np.uint8)).save(outdir / "grid.png")  # not a sample
    return outdir


def test_reads_generates_layout_in_seed_order(tmp_path):
    from specreg_lib.data.seed_images import image_path

    seeds = [1000000, 5, 999, 1000, 0, 999999]  # folders 000000, 001000, 999000, 1000000: seed order != text order
    out = _write_generated(tmp_path / "gen", seeds)
    kind, files = list_media(out)
    assert kind == "image" and files == [image_path(out, s) for s in sorted(seeds)]
    # without generation.json it is a plain folder tree: every image, recursively, digit runs in numeric order
    (out / "generation.json").unlink()
    (out / "000000" / ".000005.png.host-1.x.tmp.png").write_bytes(b"half-written")  # a writer's temp file: hidden
    assert list_media(out)[1] == [image_path(out, s) for s in sorted(seeds)] + [out / "grid.png"]


def test_reads_a_dataset_zip_in_place(tmp_path, capsys):
    from specreg_lib.data.edm_datasets import write_edm_dataset

    g = np.random.default_rng(3)
    images = [g.integers(0, 256, (16, 16, 3)).astype(np.uint8) for _ in range(5)]
    zipped, folder = tmp_path / "ds.zip", tmp_path / "ds"
    write_edm_dataset(images, zipped)
    write_edm_dataset(images, folder)  # the same images as files: the oracle
    before = sorted(p.name for p in tmp_path.iterdir())
    kind, members = list_media(zipped)
    assert kind == "image" and [str(m) for m in members] == [f"{zipped}/{i // 1000:05d}/img{i:08d}.png"
                                                            for i in range(5)]
    from_zip, from_folder = spectrum.folder_spectra(zipped, folder), spectrum.folder_spectra(folder, zipped)
    assert from_zip["counts"] == (5, 5) and np.array_equal(from_zip["a"], from_folder["a"])
    assert np.array_equal(from_zip["a"], from_zip["b"])  # same pixels, read from the archive or from files
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing extracted
    gen = _write_generated(tmp_path / "gen", range(4))
    assert spectrum.main([str(gen), str(zipped), "--out", str(tmp_path / "cmp")]) == 0
    assert "image files: A=4, B=5" in capsys.readouterr().out
    (tmp_path / "notzip.zip").write_bytes(b"plain bytes")
    assert spectrum.main([str(tmp_path / "notzip.zip"), str(zipped), "--out", str(tmp_path / "o")]) == 2
    assert "neither a folder nor a zip archive" in capsys.readouterr().err


def _overlaps(ax, axis_name):
    """Pairs of visible tick labels on one axis whose drawn boxes intersect, and the visible labels."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    axis = ax.xaxis if axis_name == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if axis_name == "x" else ax.get_ylim())
    labels = [t for tick in axis.get_major_ticks() + axis.get_minor_ticks() for t in (tick.label1,)
              if t.get_visible() and t.get_text() and lo <= tick.get_loc() <= hi]
    boxes = [t.get_window_extent(renderer) for t in labels]
    bad = [(labels[i].get_text(), labels[j].get_text()) for i in range(len(boxes)) for j in range(i)
           if boxes[i].overlaps(boxes[j])]
    return bad, [t.get_text() for t in labels]


def test_figure_ticks_do_not_overlap_and_the_cutoff_is_labelled():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    f = np.fft.rfftfreq(64)[:33]  # 0 .. 1/2 cycles/pixel of a 64-pixel image
    power = 1.0 / np.maximum(f, 1 / 64) ** 2
    cases = {"image": ({"freqs": f, "a": power, "b": 2 * power, "sample_rate": None}, "cutoff 0.25 cycles/pixel"),
             "audio": ({"freqs": np.linspace(0, 0.5, 513), "a": np.linspace(2, 1, 513),
                        "b": np.linspace(1, 2, 513), "sample_rate": 22050}, "cutoff 5512.5 Hz")}
    for kind, (spec, cutoff_label) in cases.items():
        fig = spectrum.plot_spectra(spec, "A", "B", cutoff=0.25)
        FigureCanvasAgg(fig).draw()
        for ax in fig.axes:
            for axis_name in ("x", "y"):
                bad, shown = _overlaps(ax, axis_name)
                assert not bad, f"{kind} {ax.get_title()} {axis_name}: overlapping tick labels {bad}"
                assert len(shown) >= 2, f"{kind} {ax.get_title()} {axis_name}: only {shown} labelled"
            legend = [t.get_text() for t in ax.get_legend().get_texts()]
            assert any(t.startswith(cutoff_label) for t in legend), (kind, legend)
    fig = spectrum.plot_spectra(cases["image"][0], "A", "B", cutoff=0.25)
    FigureCanvasAgg(fig).draw()
    assert {"1/4", "1/2"} <= set(_overlaps(fig.axes[0], "x")[1])  # fractions of the sampling rate, as --cutoff
