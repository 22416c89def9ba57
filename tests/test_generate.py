"""Generation: per-seed latents (identical images whatever the batch size or rank split, bit for bit on CPU),
the paper's sampler settings, the sigma range clamped to the net's, labels, resumable folders."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gaussian_oracles import GaussianDenoiser
from PIL import Image

from specreg_lib.data.seed_images import image_path, list_seed_images
from specreg_lib.diffusion import Precond
from specreg_lib.diffusion.generate import (
    SamplerSettings,
    generate_to_folder,
    net_geometry,
    sample_images,
    seed_latents,
)
from specreg_lib.models import UNet, UNetConfig
from specreg_lib.text import parse_seeds

torch.set_num_threads(1)


def tiny_net(label_dim: int = 0) -> Precond:
    """A random 3x16x16 EDM denoiser (toy U-Net), conditional when label_dim > 0."""
    torch.manual_seed(0)
    cfg = UNetConfig(resolution=16, in_channels=3, out_channels=3, base_channels=8, channel_mult=(1, 2),
                     num_res_blocks=1, attn_resolutions=(8,), norm_groups=4, num_heads=1, t_scale=250.0,
                     cond_dim=label_dim)
    net = Precond(UNet(cfg), "edm").eval()
    with torch.no_grad():  # the U-Net zero-initialises its output layers: give every weight a say
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    net.img_channels, net.img_resolution, net.label_dim = 3, 16, label_dim
    return net


FAST = SamplerSettings(num_steps=3)


def test_latents_depend_on_the_seed_only():
    a, _ = seed_latents([4, 9, 2], (3, 5, 5))
    b, _ = seed_latents([9], (3, 5, 5))
    assert torch.equal(a[1], b[0]) and not torch.equal(a[0], a[1])
    assert torch.equal(a[0], torch.randn(3, 5, 5, generator=torch.Generator().manual_seed(4)))


def test_labels_per_seed_and_fixed_class():
    _, lab = seed_latents(list(range(200)), (1, 2, 2), label_dim=10)
    assert lab.shape == (200, 10) and torch.equal(lab.sum(1), torch.ones(200))
    counts = lab.sum(0)
    assert counts.min() >= 8 and counts.max() <= 35  # uniform classes: 20 expected per class
    _, one = seed_latents([17], (1, 2, 2), label_dim=10)
    assert torch.equal(one[0], lab[17])
    _, fixed = seed_latents([1, 2, 3], (1, 2, 2), label_dim=10, class_idx=7)
    assert torch.equal(fixed.argmax(1), torch.tensor([7, 7, 7]))
    with pytest.raises(ValueError, match="class_idx"):
        seed_latents([1], (1, 2, 2), label_dim=0, class_idx=0)


def test_images_identical_across_batch_sizes():
    net = tiny_net()
    seeds = [3, 7, 11, 20, 21]
    whole = sample_images(net, seeds, FAST)
    ones = torch.cat([sample_images(net, [s], FAST) for s in seeds])
    split = torch.cat([sample_images(net, seeds[:2], FAST), sample_images(net, seeds[2:], FAST)])
    assert torch.equal(whole, ones) and torch.equal(whole, split)
    assert whole.shape == (5, 3, 16, 16) and whole.dtype == torch.float32


def test_conditional_labels_reach_the_net():
    net = tiny_net(label_dim=4)
    a = sample_images(net, [1, 2], FAST, class_idx=0)
    b = sample_images(net, [1, 2], FAST, class_idx=3)
    c = sample_images(net, [2], FAST, class_idx=3)
    assert not torch.allclose(a, b, atol=1e-4) and torch.equal(b[1], c[0])


class Recorder(GaussianDenoiser):
    """The exact Gaussian denoiser that also records the noise levels it is called at."""

    img_channels, img_resolution, label_dim = 1, 64, 0

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.sigmas: list[float] = []

    def __call__(self, x, sigma, cond=None):
        self.sigmas.append(float(sigma.flatten()[0]))
        return super().__call__(x, sigma, cond)


def test_paper_settings_nfe_and_clamped_range():
    rec = Recorder(0.3, 0.2)
    settings = SamplerSettings()
    x = sample_images(rec, list(range(64)), settings, per_image=False)
    assert settings.steps_for(64) == 40 and settings.steps_for(32) == 18
    assert len(rec.sigmas) == settings.nfe(64) == 79
    assert rec.sigmas[0] == pytest.approx(80.0) and min(rec.sigmas) == pytest.approx(0.002)
    # the exact denoiser of N(0.3, 0.2^2): the sampler reproduces the data distribution
    assert float(x.mean()) == pytest.approx(0.3, abs=0.01) and float(x.std()) == pytest.approx(0.2, abs=0.01)
    ve = Recorder(0.0, 0.5, sigma_min=0.02, sigma_max=100.0)
    sample_images(ve, [0], SamplerSettings(num_steps=18, solver="euler"))  # one image: one call a step
    assert len(ve.sigmas) == 18 and ve.sigmas[0] == pytest.approx(80.0) and ve.sigmas[-1] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="num_steps"):
        SamplerSettings().steps_for(48)


def test_geometry_errors_name_the_fix():
    with pytest.raises(ValueError, match=r"resolution.*geometry=\(channels, resolution, label_dim\)"):
        net_geometry(Precond(lambda x, s: x, "edm"))


def _read(folder):
    return {s: np.asarray(Image.open(p)) for s, p in list_seed_images(folder).items()}


def test_folder_same_for_any_batch_size_and_resumes(tmp_path):
    net = tiny_net()
    seeds = parse_seeds("998-1003")  # crosses a 1000-image subfolder
    assert generate_to_folder(net, tmp_path / "a", seeds, FAST, batch_size=4, progress=False) == seeds
    generate_to_folder(net, tmp_path / "b", seeds, FAST, batch_size=1, progress=False)
    a, b = _read(tmp_path / "a"), _read(tmp_path / "b")
    assert sorted(a) == seeds and all(np.array_equal(a[s], b[s]) for s in seeds)
    assert image_path(tmp_path / "a", 1001) == tmp_path / "a" / "001000" / "001001.png"
    assert a[998].shape == (16, 16, 3) and a[998].dtype == np.uint8
    image_path(tmp_path / "a", 1000).unlink()
    assert generate_to_folder(net, tmp_path / "a", seeds, FAST, batch_size=4, progress=False) == [1000]
    assert np.array_equal(_read(tmp_path / "a")[1000], b[1000])
    # rank shares: the union of two ranks' work is the same folder
    for r in (0, 1):
        generate_to_folder(net, tmp_path / "c", seeds, FAST, batch_size=2, rank=r, world_size=2, progress=False)
    c = _read(tmp_path / "c")
    assert all(np.array_equal(c[s], b[s]) for s in seeds)
    assert not list((tmp_path / "a").rglob(".*"))  # no temp files left


def test_bad_arguments(tmp_path):
    net = tiny_net()
    with pytest.raises(ValueError, match="batch_size"):
        generate_to_folder(net, tmp_path, [0], FAST, batch_size=0)
    with pytest.raises(ValueError, match="rank"):
        generate_to_folder(net, tmp_path, [0], FAST, rank=2, world_size=2)
    with pytest.raises(ValueError, match="solver"):
        SamplerSettings(solver="dpm")
    with pytest.raises(ValueError, match="sigma_min"):
        SamplerSettings(sigma_min=1.0, sigma_max=0.5)
    assert math.isinf(SamplerSettings().S_max)


def test_bf16_autocast_and_channels_last_paths():
    net = tiny_net()
    ref = sample_images(net, [1, 2], FAST, per_image=False)
    cl = sample_images(net, [1, 2], FAST, per_image=False, channels_last=True)
    bf = sample_images(net, [1, 2], FAST, per_image=False, bf16=True)
    assert torch.allclose(cl, ref, atol=1e-4)  # same maths in another memory layout
    err = float((bf - ref).abs().max())
    assert 1e-4 < err < 0.5 and bf.dtype == torch.float32  # bf16 rounding shows, but it is the same image


@pytest.mark.gpu
def test_cuda_fp32_bf16_and_channels_last_agree_with_cpu():
    net = tiny_net()
    cpu = sample_images(net, [1, 2], FAST)
    gpu = sample_images(net.cuda(), [1, 2], FAST, device="cuda")
    both = sample_images(net, [1, 2], FAST, device="cuda", bf16=True, channels_last=True)
    assert gpu.device.type == "cuda" and torch.allclose(gpu.cpu(), cpu, atol=1e-3)
    assert float((both.cpu() - cpu).abs().max()) < 0.5
