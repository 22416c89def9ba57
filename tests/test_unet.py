"""The U-Net: shapes for every option, fold round trip, float t, conditioning hooks, bad inputs."""

import dataclasses
import pickle

import pytest
import torch

from specreg_lib.models import UNet, UNetConfig, count_parameters
from specreg_lib.models.unet import fold_nd, unfold_nd

torch.set_num_threads(1)


@pytest.mark.parametrize("cfg", [
    UNetConfig(resolution=16, base_channels=16, channel_mult=(1, 2)),
    UNetConfig(resolution=32, base_channels=16, channel_mult=(1, 2), fold=4, global_pool=True, attn_resolutions=(4,)),
    UNetConfig(resolution=16, in_channels=3, out_channels=3, base_channels=16, channel_mult=(1,), dropout=0.1),
    UNetConfig(resolution=64, dims=1, base_channels=16, channel_mult=(1, 2), fold=4, cond_channels=2),
    UNetConfig(resolution=16, base_channels=16, channel_mult=(1, 2), cond_dim=10, mid_attention=False),
])
def test_shapes_and_conditioning(cfg):
    torch.manual_seed(0)
    net = UNet(cfg)
    x = torch.randn(3, cfg.in_channels, *(cfg.resolution,) * cfg.dims)
    cond = (torch.randn(3, cfg.cond_channels, *x.shape[2:]) if cfg.cond_channels
            else torch.randn(3, cfg.cond_dim) if cfg.cond_dim else None)
    y = net(x, torch.tensor([0, 5, 99]), cond)
    assert y.shape == (3, cfg.out_channels, *x.shape[2:])
    y.sum().backward()
    assert count_parameters(net) > 0


def test_output_zero_at_init_and_depends_on_t_after_perturbation():
    torch.manual_seed(0)
    net = UNet(UNetConfig(resolution=16, base_channels=16, channel_mult=(1, 2)))
    x = torch.randn(2, 1, 16, 16)
    assert net(x, torch.tensor([1, 2])).abs().max() == 0  # zero-initialised output conv
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    a, b = net(x, torch.tensor([1, 1])), net(x, torch.tensor([50, 50]))
    assert not torch.allclose(a, b)
    c = net(x, torch.tensor([1.0, 1.0]))  # float t gives the same embedding as the int step
    assert torch.allclose(a, c)
    assert torch.allclose(net(x, 1.0), a)  # scalar t broadcasts


@pytest.mark.parametrize("shape,f", [((2, 3, 16, 16), 4), ((2, 3, 32), 8)])
def test_fold_round_trip(shape, f):
    x = torch.randn(shape)
    y = fold_nd(x, f)
    assert y.shape[1] == shape[1] * f ** (len(shape) - 2)
    assert torch.equal(unfold_nd(y, f), x)


def test_bad_configs_and_inputs():
    with pytest.raises(ValueError):
        UNetConfig(resolution=20, fold=8)
    with pytest.raises(ValueError):
        UNetConfig(cond_channels=1, cond_dim=1)
    with pytest.raises(ValueError):
        UNetConfig(base_channels=12)  # not divisible by norm_groups
    net = UNet(UNetConfig(resolution=16, base_channels=16, channel_mult=(1,), cond_channels=1))
    with pytest.raises(ValueError):
        net(torch.randn(1, 1, 32, 32), torch.tensor([0]), torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError):
        net(torch.randn(1, 1, 16, 16), torch.tensor([0]))  # missing cond


def test_config_json_round_trip_and_pickle():
    cfg = UNetConfig(resolution=32, channel_mult=(1, 2), attn_resolutions=(8,))
    d = dataclasses.asdict(cfg)
    d = {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}  # what JSON gives back
    assert UNetConfig.from_dict(d) == cfg
    net = UNet(UNetConfig(resolution=16, base_channels=16, channel_mult=(1,)))
    assert isinstance(pickle.loads(pickle.dumps(net)), UNet)
