"""SongUNet: the DDPM++ ("vp") and NCSN++ ("ve") U-Nets of Song et al. 2021 in EDM's configuration
(edm.md section 1g), re-implemented from the architecture facts; constructor kwargs, module names and
parameter shapes are EDM's, so an official checkpoint's weights load one to one (docs/edm_models.md).

F(x; c_noise, class_labels, augment_labels): noise embedding (+ label / augment mappings) -> 2-layer MLP
-> encoder (levels at img_resolution >> level, ``num_blocks`` UNetBlocks each, a down block between levels)
-> decoder (two blocks at the lowest level, then ``num_blocks + 1`` blocks per level fed the encoder's
skips, an up block between levels) -> GroupNorm + SiLU + 3x3 conv to ``out_channels``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .edm_layers import Conv2d, FourierEmbedding, GroupNorm, Linear, PositionalEmbedding, UNetBlock

EMBEDDING_TYPES = ("positional", "fourier")
ENCODER_TYPES = ("standard", "skip", "residual")
DECODER_TYPES = ("standard", "skip")

# The two configurations EDM trains (train.py --arch), on top of the constructor defaults.
DDPMPP = dict(embedding_type="positional", encoder_type="standard", decoder_type="standard",
              channel_mult_noise=1, resample_filter=[1, 1], model_channels=128, channel_mult=[2, 2, 2])
NCSNPP = dict(embedding_type="fourier", encoder_type="residual", decoder_type="standard",
              channel_mult_noise=2, resample_filter=[1, 3, 3, 1], model_channels=128, channel_mult=[2, 2, 2])


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"SongUNet: {name} must be one of {choices}, got {value!r}")


class SongUNet(nn.Module):
    """DDPM++ / NCSN++ U-Net with EDM's constructor; ``forward(x, noise_labels, class_labels, augment_labels)``.

    ``encoder_type``: "standard"; "skip" (a downsampled copy of the input is added at every level) or
    "residual" (NCSN++: a fused down-conv of the running input is averaged into the features).
    ``decoder_type``: "standard" (one output head at full resolution) or "skip" (heads at every level,
    upsampled and summed). ``label_dropout`` zeroes a sample's class label with that probability in training.
    """

    def __init__(self, img_resolution: int, in_channels: int, out_channels: int, label_dim: int = 0,
                 augment_dim: int = 0, model_channels: int = 128, channel_mult: Sequence[int] = (1, 2, 2, 2),
                 channel_mult_emb: int = 4, num_blocks: int = 4, attn_resolutions: Sequence[int] = (16,),
                 dropout: float = 0.10, label_dropout: float = 0.0, embedding_type: str = "positional",
                 channel_mult_noise: int = 1, encoder_type: str = "standard", decoder_type: str = "standard",
                 resample_filter: Sequence[float] = (1, 1)) -> None:
        _check_choice("embedding_type", embedding_type, EMBEDDING_TYPES)
        _check_choice("encoder_type", encoder_type, ENCODER_TYPES)
        _check_choice("decoder_type", decoder_type, DECODER_TYPES)
        levels = len(channel_mult)
        if levels < 1 or img_resolution % (1 << (levels - 1)):
            raise ValueError(f"SongUNet: img_resolution={img_resolution} must be divisible by 2^(levels-1) = "
                             f"{1 << max(levels - 1, 0)} for channel_mult={list(channel_mult)}")
        if not 0 <= dropout < 1 or not 0 <= label_dropout <= 1:
            raise ValueError(f"SongUNet: dropout must be in [0, 1) and label_dropout in [0, 1], "
                             f"got {dropout}, {label_dropout}")
        super().__init__()
        # The constructor's arguments, as EDM's persistence records them (saved with the weights).
        self.init_kwargs = dict(img_resolution=img_resolution, in_channels=in_channels, out_channels=out_channels,
                                label_dim=label_dim, augment_dim=augment_dim, model_channels=model_channels,
                                channel_mult=list(channel_mult), channel_mult_emb=channel_mult_emb,
                                num_blocks=num_blocks, attn_resolutions=list(attn_resolutions), dropout=dropout,
                                label_dropout=label_dropout, embedding_type=embedding_type,
                                channel_mult_noise=channel_mult_noise, encoder_type=encoder_type,
                                decoder_type=decoder_type, resample_filter=list(resample_filter))
        self.img_resolution, self.label_dropout = img_resolution, label_dropout
        emb_channels = model_channels * channel_mult_emb
        noise_channels = model_channels * channel_mult_noise
        init = dict(init_mode="xavier_uniform")
        init_zero = dict(init_mode="xavier_uniform", init_weight=1e-5)  # near-zero output convs
        init_attn = dict(init_mode="xavier_uniform", init_weight=math.sqrt(0.2))
        block_kwargs = dict(emb_channels=emb_channels, num_heads=1, dropout=dropout, skip_scale=math.sqrt(0.5),
                            eps=1e-6, resample_filter=resample_filter, resample_proj=True, adaptive_scale=False,
                            init=init, init_zero=init_zero, init_attn=init_attn)

        # Mapping: noise label (+ class label, + augment labels) -> embedding (B, emb_channels).
        self.map_noise = (PositionalEmbedding(noise_channels, endpoint=True) if embedding_type == "positional"
                          else FourierEmbedding(noise_channels))
        self.map_label = Linear(label_dim, noise_channels, **init) if label_dim else None
        self.map_augment = Linear(augment_dim, noise_channels, bias=False, **init) if augment_dim else None
        self.map_layer0 = Linear(noise_channels, emb_channels, **init)
        self.map_layer1 = Linear(emb_channels, emb_channels, **init)

        # Encoder and decoder, level by level (resolution img_resolution >> level). Module keys are EDM's,
        # '{res}x{res}_<part>', because official weights are found by them; 'aux' parts act on the image path.
        self.levels, self.num_blocks = len(channel_mult), num_blocks
        self.encoder_type, self.decoder_type = encoder_type, decoder_type
        width = [model_channels * m for m in channel_mult]  # block output channels per level
        self.enc, self.dec = nn.ModuleDict(), nn.ModuleDict()
        skip_channels = []  # channels of every encoder output the decoder concatenates, in order
        c_img = in_channels  # channels on the encoder's image path (grows only for the residual encoder)
        c = model_channels
        for level in range(levels):
            key = _keys(img_resolution >> level)
            attn = (img_resolution >> level) in attn_resolutions
            if level == 0:
                self.enc[key("conv")] = Conv2d(in_channels, c, kernel=3, **init)
            else:
                self.enc[key("down")] = UNetBlock(c, c, down=True, **block_kwargs)
                if encoder_type == "skip":  # image downsampled by the filter alone, projected and added
                    self.enc[key("aux_down")] = Conv2d(c_img, c_img, kernel=0, down=True,
                                                       resample_filter=resample_filter)
                    self.enc[key("aux_skip")] = Conv2d(c_img, c, kernel=1, **init)
                elif encoder_type == "residual":  # a strided conv of the running input, averaged in
                    self.enc[key("aux_residual")] = Conv2d(c_img, c, kernel=3, down=True, fused_resample=True,
                                                           resample_filter=resample_filter, **init)
                    c_img = c
            skip_channels.append(c)
            for i in range(num_blocks):
                self.enc[key(f"block{i}")] = UNetBlock(c, width[level], attention=attn, **block_kwargs)
                c = width[level]
                skip_channels.append(c)

        for level in reversed(range(levels)):
            key = _keys(img_resolution >> level)
            attn = (img_resolution >> level) in attn_resolutions
            if level == levels - 1:  # bottleneck: attention block, then a plain one
                self.dec[key("in0")] = UNetBlock(c, c, attention=True, **block_kwargs)
                self.dec[key("in1")] = UNetBlock(c, c, **block_kwargs)
            else:
                self.dec[key("up")] = UNetBlock(c, c, up=True, **block_kwargs)
            for i in range(num_blocks + 1):  # each block takes one encoder output, concatenated
                self.dec[key(f"block{i}")] = UNetBlock(c + skip_channels.pop(), width[level],
                                                       attention=attn and i == num_blocks, **block_kwargs)
                c = width[level]
            if decoder_type == "skip" or level == 0:  # an output head at this level
                if decoder_type == "skip" and level < levels - 1:
                    self.dec[key("aux_up")] = Conv2d(out_channels, out_channels, kernel=0, up=True,
                                                     resample_filter=resample_filter)
                self.dec[key("aux_norm")] = GroupNorm(c, eps=1e-6)
                self.dec[key("aux_conv")] = Conv2d(c, out_channels, kernel=3, **init_zero)

    def _embed(self, x: torch.Tensor, noise_labels: torch.Tensor, class_labels: torch.Tensor | None,
               augment_labels: torch.Tensor | None) -> torch.Tensor:
        """Noise labels (B,), class labels (B, label_dim), augment labels (B, augment_dim) -> (B, emb)."""
        emb = self.map_noise(noise_labels.to(x.dtype) if x.dtype.is_floating_point else noise_labels)
        if self.map_label is not None:
            if class_labels is None:
                raise ValueError(f"SongUNet was built with label_dim={self.map_label.in_features}: pass "
                                 "class_labels as a one-hot (B, label_dim) tensor (zeros = unconditional)")
            c = class_labels.to(emb.dtype)
            if self.training and self.label_dropout:  # drop whole labels: classifier-free-guidance training
                keep = torch.rand(x.shape[0], 1, device=x.device) >= self.label_dropout
                c = c * keep.to(c.dtype)
            emb = emb + self.map_label(c * math.sqrt(self.map_label.in_features))
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels.to(emb.dtype))
        emb = F.silu(self.map_layer0(emb))
        return F.silu(self.map_layer1(emb))

    def forward(self, x: torch.Tensor, noise_labels: torch.Tensor, class_labels: torch.Tensor | None,
                augment_labels: torch.Tensor | None = None) -> torch.Tensor:
        """F(x; noise_labels): x (B, in_channels, R, R), noise_labels (B,) -> (B, out_channels, R, R)."""
        emb = self._embed(x, noise_labels, class_labels, augment_labels)
        img, h, skips = x, x, []
        for level in range(self.levels):
            key = _keys(self.img_resolution >> level)
            if level == 0:
                h = self.enc[key("conv")](h)
            else:
                h = self.enc[key("down")](h, emb)
                if self.encoder_type == "skip":
                    img = self.enc[key("aux_down")](img)
                    h = h + self.enc[key("aux_skip")](img)
                elif self.encoder_type == "residual":
                    h = img = (h + self.enc[key("aux_residual")](img)) / math.sqrt(2)
            skips.append(h)
            for i in range(self.num_blocks):
                h = self.enc[key(f"block{i}")](h, emb)
                skips.append(h)

        out = None  # the output, summed over the heads of a "skip" decoder, upsampled level by level
        for level in reversed(range(self.levels)):
            key = _keys(self.img_resolution >> level)
            if level == self.levels - 1:
                h = self.dec[key("in1")](self.dec[key("in0")](h, emb), emb)
            else:
                h = self.dec[key("up")](h, emb)
            for i in range(self.num_blocks + 1):
                h = self.dec[key(f"block{i}")](torch.cat([h, skips.pop()], dim=1), emb)
            if key("aux_conv") in self.dec:
                head = self.dec[key("aux_conv")](F.silu(self.dec[key("aux_norm")](h)))
                out = head if out is None else self.dec[key("aux_up")](out) + head
        return out


def _keys(res: int):
    """Module-key maker for one resolution: part -> '{res}x{res}_{part}' (EDM's state-dict names)."""
    return lambda part: f"{res}x{res}_{part}"
