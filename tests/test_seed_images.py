"""The PNG-per-seed layout (data/seed_images.py): seed ranges, EDM's uint8 quantisation, the folder layout and its
round trip through PNG files, and image grids against torchvision's make_grid and a layout written out."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from specreg_lib.data.seed_images import (
    image_grid,
    image_path,
    list_seed_images,
    read_seed_images,
    save_grid,
    to_uint8,
    write_png,
)


def test_parse_seeds():
    from specreg_lib.text import parse_seeds  # the one seed grammar, also generate's

    assert parse_seeds("0-3,7,10-11") == [0, 1, 2, 3, 7, 10, 11]
    assert parse_seeds(5) == [5] and parse_seeds([2, 1]) == [2, 1]
    for bad in ("", "1-", "3-1", "a", "-2", "1,1"):
        with pytest.raises(ValueError, match="seeds"):
            parse_seeds(bad)


def test_to_uint8_is_edms_quantisation():
    x = torch.tensor([-1.5, -1.0, -0.5, 0.0, 0.99, 1.0, 2.0]).view(1, 1, 1, -1)
    want = np.clip(np.floor(x.numpy() * 127.5 + 128), 0, 255).astype(np.uint8)
    assert to_uint8(x).numpy().tolist() == want.tolist() and to_uint8(x).flatten().tolist()[3] == 128


def test_layout_and_png_round_trip(tmp_path):
    assert image_path(tmp_path, 7) == tmp_path / "000000" / "000007.png"
    assert image_path(tmp_path, 123456) == tmp_path / "123000" / "123456.png"
    g = torch.Generator().manual_seed(0)
    images = {s: torch.randint(0, 256, (c, 4, 5), generator=g, dtype=torch.uint8) for s, c in ((999, 3), (1000, 3))}
    for s, img in images.items():
        write_png(img, image_path(tmp_path, s))
    (tmp_path / "000000" / "notaseed.png").write_bytes(b"")  # not NNNNNN.png: ignored
    assert list_seed_images(tmp_path) == {999: image_path(tmp_path, 999), 1000: image_path(tmp_path, 1000)}
    assert np.array_equal(np.asarray(Image.open(image_path(tmp_path, 999))), images[999].permute(1, 2, 0).numpy())
    back = read_seed_images(tmp_path, [1000, 999])
    assert back.dtype == torch.uint8 and torch.equal(back, torch.stack([images[1000], images[999]]))
    gray = torch.randint(0, 256, (1, 3, 3), generator=g, dtype=torch.uint8)
    write_png(gray, image_path(tmp_path / "g", 5))
    assert torch.equal(read_seed_images(tmp_path / "g", [5])[0], gray)
    with pytest.raises(FileNotFoundError, match="seed 4"):
        read_seed_images(tmp_path, [4])
    with pytest.raises(ValueError, match="uint8"):
        write_png(gray.float(), tmp_path / "x.png")


def test_grid_layout():
    imgs = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 3, 2, 2).contiguous()
    g = image_grid(imgs, nrow=3)
    assert g.shape == (4, 6, 3) and g[0, 0, 0] == 0 and g[0, 4, 0] == 2 and g[2, 0, 0] == 3 and g[3, 5, 0] == 5


@pytest.mark.parametrize(("B", "C", "nrow", "padding"), [(6, 3, 3, 0), (7, 3, 3, 2), (5, 1, 4, 1), (3, 3, 8, 2)])
def test_grid_is_torchvisions_make_grid(B, C, nrow, padding):
    from torchvision.utils import make_grid

    imgs = torch.randint(0, 255, (B, C, 3, 4), generator=torch.Generator().manual_seed(B), dtype=torch.uint8)
    want = make_grid(imgs, nrow=nrow, padding=padding, pad_value=255)[:C].permute(1, 2, 0).numpy()  # 1 -> 3 channels
    got = image_grid(imgs, nrow=nrow, padding=padding)
    assert got.dtype == np.uint8 and np.array_equal(got, want)


def test_grid_without_border_float_nan_gaps():
    # The toy figure's layout: tiles of (B, 1, H, W) floats, `pad` NaN between them, none around, empty cells NaN.
    x = torch.arange(5 * 2 * 3, dtype=torch.float64).view(5, 1, 2, 3)
    g = image_grid(x, nrow=2, padding=1, pad_value=np.nan, border=False)
    want = np.full((3 * 3 - 1, 2 * 4 - 1, 1), np.nan)
    for k in range(5):
        r, c = divmod(k, 2)
        want[3 * r:3 * r + 2, 4 * c:4 * c + 3, 0] = x[k, 0].numpy()
    assert g.dtype == np.float64 and np.array_equal(g, want, equal_nan=True)


def test_grid_bad_inputs():
    with pytest.raises(ValueError, match="B, C, H, W"):
        image_grid(torch.zeros(2, 3, 3, dtype=torch.uint8), nrow=2)
    with pytest.raises(ValueError, match="nrow"):
        image_grid(torch.zeros(2, 1, 3, 3, dtype=torch.uint8), nrow=0)


def test_save_grid_writes_the_grid(tmp_path):
    imgs = torch.randint(0, 255, (5, 3, 2, 2), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    path = save_grid(imgs, tmp_path / "grid.png", nrow=2, padding=1)
    assert np.array_equal(np.asarray(Image.open(path)), image_grid(imgs, nrow=2, padding=1))
