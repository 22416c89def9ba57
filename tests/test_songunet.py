"""SongUNet (DDPM++ / NCSN++): exact parameter counts and state layout of EDM's AFHQv2-64 configs, forward
shapes of small configs, closed forms of its embeddings and resampling, attention against a written-out
softmax, label dropout, and the EDM wrapper's .model / .net naming."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from specreg_lib.diffusion import Precond
from specreg_lib.models import SongUNet
from specreg_lib.models.edm_layers import Conv2d, PositionalEmbedding, UNetBlock
from specreg_lib.models.edm_precond import EDMDenoiser
from specreg_lib.models.songunet import DDPMPP, NCSNPP

AFHQ = dict(img_resolution=64, in_channels=3, out_channels=3, channel_mult=[1, 2, 2, 2], dropout=0.25,
            augment_dim=9)  # train.py --cres=1,2,2,2 --dropout=0.25 --augment=0.15

pytestmark = pytest.mark.usefixtures("one_thread")



def small(arch: dict, **kw) -> SongUNet:
    cfg = dict(arch, img_resolution=16, in_channels=3, out_channels=3, model_channels=16, channel_mult=[1, 2],
               num_blocks=1, attn_resolutions=[8], dropout=0.0)
    cfg.update(kw)
    torch.manual_seed(0)
    net = SongUNet(**cfg).eval()
    with torch.no_grad():  # undo the near-zero output-conv init, as training would, so every path shows
        for name, p in net.named_parameters():
            if name.endswith(("conv1.weight", "proj.weight", "aux_conv.weight")):
                torch.nn.init.xavier_uniform_(p)
    return net


@pytest.mark.parametrize("arch, expected", [(DDPMPP, 61_805_571), (NCSNPP, 62_761_091)], ids=["ddpmpp", "ncsnpp"])
def test_afhq_parameter_count_and_state_layout(arch, expected):
    # Built on the meta device: the same constructor, without drawing 62M random numbers.
    with torch.device("meta"):
        net = SongUNet(**dict(arch, **AFHQ))
    assert sum(p.numel() for p in net.parameters()) == expected  # edm.md 1e/1g
    sd = net.state_dict()
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    # Keys and shapes of edm.md 1g: embedding 512, mapping from the 128 (DDPM++) or 256 (NCSN++) noise channels.
    noise = 128 * arch["channel_mult_noise"]
    assert shapes["map_augment.weight"] == (noise, 9) and "map_augment.bias" not in shapes
    assert shapes["map_layer0.weight"] == (512, noise) and shapes["map_layer1.weight"] == (512, 512)
    assert shapes["enc.64x64_conv.weight"] == (128, 3, 3, 3)
    assert shapes["enc.16x16_block0.qkv.weight"] == (768, 256, 1, 1)  # attention at 16x16 only
    assert "enc.32x32_block0.qkv.weight" not in shapes
    assert shapes["dec.8x8_in0.qkv.weight"] == (768, 256, 1, 1) and "dec.8x8_in1.qkv.weight" not in shapes
    assert shapes["dec.64x64_block4.conv0.weight"] == (128, 256, 3, 3)
    assert shapes["dec.64x64_aux_conv.weight"] == (3, 128, 3, 3) and "dec.64x64_aux_norm.weight" in shapes
    taps = len(arch["resample_filter"])
    assert shapes["enc.32x32_down.conv0.resample_filter"] == (1, 1, taps, taps)
    assert shapes["dec.16x16_up.skip.weight"] == (256, 256, 1, 1)  # resample_proj: 1x1 conv on resampling skips
    if arch is NCSNPP:
        assert shapes["map_noise.freqs"] == (128,)
        assert shapes["enc.32x32_aux_residual.weight"] == (128, 3, 3, 3)  # from the image itself
        assert shapes["enc.16x16_aux_residual.weight"] == (256, 128, 3, 3)
        assert shapes["enc.8x8_aux_residual.weight"] == (256, 256, 3, 3)
    else:
        assert "map_noise.freqs" not in shapes and not any("aux_residual" in k for k in shapes)
    assert sum(f"dec.{r}x{r}_up.conv0.weight" in shapes for r in (8, 16, 32, 64)) == 3


@pytest.mark.parametrize("arch", [DDPMPP, NCSNPP], ids=["ddpmpp", "ncsnpp"])
@pytest.mark.parametrize("label_dim", [0, 10])
def test_forward_shapes_small(arch, label_dim):
    net = small(arch, label_dim=label_dim, augment_dim=9, out_channels=2)
    x, noise = torch.randn(3, 3, 16, 16), torch.randn(3)
    labels = F.one_hot(torch.tensor([0, 3, 9]), 10).float() if label_dim else None
    with torch.no_grad():
        y = net(x, noise, labels)
        y_aug = net(x, noise, labels, augment_labels=torch.randn(3, 9))
    assert y.shape == y_aug.shape == (3, 2, 16, 16)
    assert not torch.allclose(y, y_aug)  # map_augment feeds the embedding
    # Batch independence in eval mode: sample 1 alone equals sample 1 in the batch.
    with torch.no_grad():
        y1 = net(x[1:2], noise[1:2], None if labels is None else labels[1:2])
    torch.testing.assert_close(y1, y[1:2], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("enc, dec", [("skip", "skip"), ("residual", "skip"), ("skip", "standard")])
def test_skip_encoder_decoder_types(enc, dec):
    net = small(DDPMPP, encoder_type=enc, decoder_type=dec, channel_mult=[1, 2, 2])
    names = list(net.state_dict())
    assert any("aux_skip" in n for n in names) == (enc == "skip")
    assert any("aux_conv" in n and "8x8" in n for n in names) == (dec == "skip")  # heads at every level
    with torch.no_grad():
        assert net(torch.randn(2, 3, 16, 16), torch.randn(2), None).shape == (2, 3, 16, 16)


def test_conditional_net_needs_labels_and_bad_options_are_named():
    net = small(DDPMPP, label_dim=4)
    with pytest.raises(ValueError, match="class_labels"):
        net(torch.randn(1, 3, 16, 16), torch.randn(1), None)
    with pytest.raises(ValueError, match="encoder_type"):
        SongUNet(16, 3, 3, encoder_type="fancy")
    with pytest.raises(ValueError, match="img_resolution"):
        SongUNet(20, 3, 3, channel_mult=[1, 2, 2, 2])


def test_label_dropout_drops_whole_labels_in_training_only():
    net = small(DDPMPP, label_dim=4, label_dropout=1.0)
    x, noise, c = torch.randn(2, 3, 16, 16), torch.randn(2), torch.eye(4)[:2]
    with torch.no_grad():
        eval_out, eval_zero = net(x, noise, c), net(x, noise, torch.zeros_like(c))
        net.train()
        train_out = net(x, noise, c)
    torch.testing.assert_close(train_out, eval_zero)  # p = 1: every label zeroed
    assert not torch.allclose(eval_out, eval_zero)


def test_dropout_active_in_training_only():
    net = small(DDPMPP, dropout=0.5)
    x, noise = torch.randn(1, 3, 16, 16), torch.randn(1)
    with torch.no_grad():
        a, b = net(x, noise, None), net(x, noise, None)
        net.train()
        c = net(x, noise, None)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_positional_embedding_closed_form():
    # DDPM++: endpoint=True, so frequencies run exactly from 1 to 1/max_positions; order [sin, cos].
    x = torch.tensor([0.0, 0.7, -3.0])
    got = PositionalEmbedding(8, endpoint=True)(x).numpy()
    w = (1 / 10000) ** (np.arange(4) / 3)
    want = np.concatenate([np.sin(np.outer(x, w)), np.cos(np.outer(x, w))], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_resampling_closed_forms():
    x = torch.randn(2, 3, 8, 8)
    down = Conv2d(3, 3, kernel=0, down=True, resample_filter=[1, 1])
    up = Conv2d(3, 3, kernel=0, up=True, resample_filter=[1, 1])
    torch.testing.assert_close(down(x), F.avg_pool2d(x, 2))  # box filter = 2x2 mean
    torch.testing.assert_close(up(x), F.interpolate(x, scale_factor=2, mode="nearest"))
    torch.testing.assert_close(down(up(x)), x)
    # [1, 3, 3, 1] keeps a constant image constant away from the zero-padded border, in both directions.
    ones = torch.ones(1, 1, 8, 8)
    d = Conv2d(1, 1, kernel=0, down=True, resample_filter=[1, 3, 3, 1])(ones)
    u = Conv2d(1, 1, kernel=0, up=True, resample_filter=[1, 3, 3, 1])(ones)
    assert d.shape == (1, 1, 4, 4) and u.shape == (1, 1, 16, 16)
    torch.testing.assert_close(d[..., 1:-1, 1:-1], torch.ones(1, 1, 2, 2))
    torch.testing.assert_close(u[..., 2:-2, 2:-2], torch.ones(1, 1, 12, 12))


def test_attention_matches_written_out_softmax():
    torch.manual_seed(1)
    block = UNetBlock(8, 8, emb_channels=4, attention=True, num_heads=2, eps=1e-6, adaptive_scale=False,
                      init=dict(init_mode="xavier_uniform"), init_zero=dict(init_mode="xavier_uniform")).eval()
    x, emb = torch.randn(2, 8, 4, 4), torch.randn(2, 4)
    with torch.no_grad():
        got = block(x, emb)
        # The block without attention, then attention with qkv channels laid out (head, channel, q|k|v).
        h = block.conv1(F.silu(block.norm1(block.conv0(F.silu(block.norm0(x))) + block.affine(emb)[:, :, None, None])))
        h = h + x
        qkv = block.qkv(block.norm2(h)).reshape(2, 2, 4, 3, 16)  # (B, heads, C/heads, 3, HW)
        q, k, v = qkv[:, :, :, 0], qkv[:, :, :, 1], qkv[:, :, :, 2]
        w = torch.softmax(torch.einsum("bhcq,bhck->bhqk", q, k) / math.sqrt(4), dim=-1)
        a = torch.einsum("bhqk,bhck->bhcq", w, v).reshape(2, 8, 4, 4)
        want = block.proj(a) + h
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_output_conv_init_is_near_zero_and_groups_follow_channels():
    torch.manual_seed(0)
    net = SongUNet(**dict(NCSNPP, img_resolution=16, in_channels=3, out_channels=3, model_channels=16,
                          channel_mult=[1, 2], num_blocks=1))
    assert net.dec["16x16_aux_conv"].weight.abs().max() < 1e-4  # init_weight 1e-5 (xavier law times 1e-5)
    assert net.enc["16x16_block0"].norm0.num_groups == 4  # min(32, 16 // 4)


def test_bf16_autocast_close_to_fp32():
    net = small(NCSNPP)
    x, noise = torch.randn(2, 3, 16, 16), torch.randn(2)
    with torch.no_grad():
        ref = net(x, noise, None)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(x, noise, None).float()
    assert (low - ref).abs().max() < 0.05 * ref.abs().max() + 1e-3


def test_wrapper_uses_edm_names_and_precond_maths():
    unet = small(DDPMPP, label_dim=3)
    den = EDMDenoiser(unet, "edm").eval()
    assert den.net is den.model is unet
    assert all(k.startswith("model.") for k in den.state_dict())
    assert set(den.state_dict()) == {"model." + k for k in unet.state_dict()}
    x, labels = torch.randn(2, 3, 16, 16), torch.eye(3)[:2]
    ref = Precond(unet, "edm").eval()
    with torch.no_grad():
        torch.testing.assert_close(den(x, 0.7, labels), ref(x, 0.7, labels))
        # No labels on a conditional net: EDM feeds zeros.
        torch.testing.assert_close(den(x, 0.7), ref(x, 0.7, torch.zeros(2, 3)))
    with pytest.raises(ValueError, match="class_labels must be one-hot"):
        den(x, 0.7, torch.eye(4)[:2])


@pytest.mark.parametrize("mode, torch_init", [("xavier_uniform", torch.nn.init.xavier_uniform_),
                                              ("kaiming_normal", torch.nn.init.kaiming_normal_)])
def test_init_laws_match_torch(mode, torch_init):
    # EDM's laws with gain 1: xavier variance 2 / (fan_in + fan_out), kaiming 1 / fan_in (torch: "linear" gain).
    torch.manual_seed(0)
    ours = Conv2d(64, 96, kernel=3, init_mode=mode).weight.detach()
    ref = torch.empty_like(ours)
    kw = {"nonlinearity": "linear"} if mode.startswith("kaiming") else {}
    torch_init(ref, **kw)
    assert abs(ours.std().item() / ref.std().item() - 1) < 0.03  # 55k samples: std known to ~0.5%
    if mode == "xavier_uniform":  # U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), fans = channels * 3 * 3
        assert ours.abs().max() <= math.sqrt(6 / (64 * 9 + 96 * 9))
