"""The building blocks of SongUNet (Song et al. 2021 DDPM++ / NCSN++ as configured in EDM), written from the
architecture facts in edm.md section 1g; parameter and buffer names and shapes follow EDM's state layout, so
official weights load one to one (docs/edm_models.md lists the keys).

Layers cast their weights to the input's dtype, so the same module runs fp32, fp16 inputs, or under autocast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

INIT_MODES = ("xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal")


def _draw(shape: Sequence[int], fan_in: int, fan_out: int, init_mode: str) -> torch.Tensor:
    """A tensor of ``shape`` from the ``init_mode`` law with the given fans (gain 1).

    Written out because torch's initialisers take the fans from the tensor's own shape, while a bias is drawn
    with its weight's fans. Laws: xavier variance 2/(fan_in+fan_out), kaiming variance 1/fan_in.
    """
    if init_mode not in INIT_MODES:
        raise ValueError(f"init_mode must be one of {INIT_MODES}, got {init_mode!r}")
    std = math.sqrt(2 / (fan_in + fan_out)) if init_mode.startswith("xavier") else math.sqrt(1 / fan_in)
    if init_mode.endswith("uniform"):  # U(-a, a) has std a / sqrt(3)
        return (torch.rand(*shape) * 2 - 1) * (math.sqrt(3) * std)
    return torch.randn(*shape) * std


class Linear(nn.Module):
    """y = x W^T + b; ``weight`` (out, in), ``bias`` (out,) as in nn.Linear, weights cast to x's dtype."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 init_mode: str = "kaiming_normal", init_weight: float = 1.0, init_bias: float = 0.0) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        fans = dict(fan_in=in_features, fan_out=out_features, init_mode=init_mode)
        self.weight = nn.Parameter(_draw((out_features, in_features), **fans) * init_weight)
        self.bias = nn.Parameter(_draw((out_features,), **fans) * init_bias) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype), b)


def resample_kernel(resample_filter: Sequence[float]) -> torch.Tensor:
    """The separable 2-D resampling filter f f^T / (sum f)^2 as a (1, 1, k, k) tensor."""
    taps = [float(t) for t in resample_filter]
    if not taps or sum(taps) == 0:
        raise ValueError(f"resample_filter must be a non-empty list of numbers with a non-zero sum, "
                         f"got {resample_filter!r}")
    f = torch.tensor(taps, dtype=torch.float32)
    return (torch.outer(f, f) / f.sum().square())[None, None]


class Conv2d(nn.Module):
    """A 'same' conv with an optional 2x up- or down-sampling by a fixed FIR filter (EDM's Conv2d).

    ``kernel=0`` means no learnt weight: a pure resampling layer. Up-sampling is a stride-2 transposed
    depthwise conv with 4 f f^T (gain 4 keeps the mean), down-sampling a stride-2 depthwise conv with f f^T.
    Unfused: resample, then convolve. ``fused_resample`` convolves first when going down (and resamples
    first when going up) in one padded pass, which changes the border handling: NCSN++'s residual
    encoder path uses it, so it is kept as an option.
    Parameters: ``weight`` (out, in, k, k), ``bias`` (out,); buffer ``resample_filter`` (1, 1, f, f) on
    up/down layers only.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, bias: bool = True, up: bool = False,
                 down: bool = False, resample_filter: Sequence[float] = (1, 1), fused_resample: bool = False,
                 init_mode: str = "kaiming_normal", init_weight: float = 1.0, init_bias: float = 0.0) -> None:
        if up and down:
            raise ValueError("Conv2d: up and down cannot both be set")
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.up, self.down, self.fused_resample = up, down, fused_resample
        self.weight = self.bias = None
        if kernel:
            fans = dict(fan_in=in_channels * kernel**2, fan_out=out_channels * kernel**2, init_mode=init_mode)
            self.weight = nn.Parameter(_draw((out_channels, in_channels, kernel, kernel), **fans) * init_weight)
            if bias:
                self.bias = nn.Parameter(_draw((out_channels,), **fans) * init_bias)
        self.register_buffer("resample_filter", resample_kernel(resample_filter) if up or down else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = None if self.weight is None else self.weight.to(x.dtype)
        b = None if self.bias is None else self.bias.to(x.dtype)
        f = None if self.resample_filter is None else self.resample_filter.to(x.dtype)
        w_pad = 0 if w is None else w.shape[-1] // 2
        f_pad = 0 if f is None else (f.shape[-1] - 1) // 2
        C = x.shape[1]
        if self.fused_resample and self.up and w is not None:
            x = F.conv_transpose2d(x, f.mul(4).tile(C, 1, 1, 1), groups=C, stride=2, padding=max(f_pad - w_pad, 0))
            x = F.conv2d(x, w, padding=max(w_pad - f_pad, 0))
        elif self.fused_resample and self.down and w is not None:
            x = F.conv2d(x, w, padding=w_pad + f_pad)
            x = F.conv2d(x, f.tile(self.out_channels, 1, 1, 1), groups=self.out_channels, stride=2)
        else:
            if self.up:
                x = F.conv_transpose2d(x, f.mul(4).tile(C, 1, 1, 1), groups=C, stride=2, padding=f_pad)
            if self.down:
                x = F.conv2d(x, f.tile(C, 1, 1, 1), groups=C, stride=2, padding=f_pad)
            if w is not None:
                x = F.conv2d(x, w, padding=w_pad)
        if b is not None:
            x = x + b.reshape(1, -1, 1, 1)
        return x


class GroupNorm(nn.Module):
    """GroupNorm with min(num_groups, C // min_channels_per_group) groups; ``weight``, ``bias`` (C,)."""

    def __init__(self, num_channels: int, num_groups: int = 32, min_channels_per_group: int = 4,
                 eps: float = 1e-5) -> None:
        super().__init__()
        self.num_groups = min(num_groups, num_channels // min_channels_per_group)
        if self.num_groups < 1 or num_channels % self.num_groups:
            raise ValueError(f"GroupNorm: {num_channels} channels cannot be split into {self.num_groups} groups "
                             f"of >= {min_channels_per_group}; use a channel count that is a multiple of the groups")
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.num_groups, self.weight.to(x.dtype), self.bias.to(x.dtype), self.eps)


class PositionalEmbedding(nn.Module):
    """Transformer sinusoids of the noise label (DDPM++): (B,) -> (B, C) = [sin(x w), cos(x w)].

    w_j = (1/max_positions)^(j / (C/2 - endpoint)), j < C/2. EDM computes [cos, sin] and its SongUNet then
    swaps the halves; trained weights depend on the net order, [sin, cos], which is produced here directly.
    """

    def __init__(self, num_channels: int, max_positions: int = 10000, endpoint: bool = False) -> None:
        super().__init__()
        if num_channels < 2 or num_channels % 2:
            raise ValueError(f"PositionalEmbedding: num_channels must be even and >= 2, got {num_channels}")
        self.num_channels, self.max_positions, self.endpoint = num_channels, max_positions, endpoint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.num_channels // 2
        j = torch.arange(half, dtype=torch.float32, device=x.device) / max(half - int(self.endpoint), 1)
        freqs = (1 / self.max_positions) ** j
        arg = torch.outer(x, freqs.to(x.dtype))  # (B, C/2)
        return torch.cat([arg.sin(), arg.cos()], dim=1)


class FourierEmbedding(nn.Module):
    """Random Fourier features of the noise label (NCSN++): (B,) -> (B, C) = [sin(2 pi x f), cos(2 pi x f)].

    Buffer ``freqs`` (C/2,) ~ N(0, scale^2), saved with the weights (order [sin, cos]: see PositionalEmbedding).
    """

    def __init__(self, num_channels: int, scale: float = 16.0) -> None:
        super().__init__()
        if num_channels < 2 or num_channels % 2:
            raise ValueError(f"FourierEmbedding: num_channels must be even and >= 2, got {num_channels}")
        self.register_buffer("freqs", torch.randn(num_channels // 2) * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arg = torch.outer(x, (2 * math.pi * self.freqs).to(x.dtype))  # (B, C/2)
        return torch.cat([arg.sin(), arg.cos()], dim=1)


class UNetBlock(nn.Module):
    """Residual block with the noise embedding, optional 2x up/down and self-attention (DDPM++/NCSN++).

    x -> conv0(silu(norm0 x)) -> + affine(emb) (or scale/shift when ``adaptive_scale``) -> silu(norm1 .)
      -> dropout -> conv1 -> + skip(x), times ``skip_scale``; then, with attention,
      x -> x + proj(attention(qkv(norm2 x))), times ``skip_scale``.
    ``skip`` is a conv when channels change or the block resamples (1x1 if ``resample_proj`` or the channels
    change, else a pure resample). Attention uses ``num_heads`` heads (or out_channels // channels_per_head);
    the qkv conv's output channels are laid out (head, channel, q|k|v), as in EDM.
    """

    def __init__(self, in_channels: int, out_channels: int, emb_channels: int, up: bool = False, down: bool = False,
                 attention: bool = False, num_heads: int | None = None, channels_per_head: int = 64,
                 dropout: float = 0.0, skip_scale: float = 1.0, eps: float = 1e-5,
                 resample_filter: Sequence[float] = (1, 1), resample_proj: bool = False, adaptive_scale: bool = True,
                 init: dict | None = None, init_zero: dict | None = None, init_attn: dict | None = None) -> None:
        super().__init__()
        init = dict(init or {})
        init_zero = dict(init_weight=0) if init_zero is None else dict(init_zero)
        self.in_channels, self.out_channels, self.emb_channels = in_channels, out_channels, emb_channels
        self.num_heads = 0 if not attention else (num_heads if num_heads is not None
                                                   else out_channels // channels_per_head)
        self.dropout, self.skip_scale, self.adaptive_scale = dropout, skip_scale, adaptive_scale
        rs = dict(resample_filter=resample_filter)

        self.norm0 = GroupNorm(in_channels, eps=eps)
        self.conv0 = Conv2d(in_channels, out_channels, kernel=3, up=up, down=down, **rs, **init)
        self.affine = Linear(emb_channels, out_channels * (2 if adaptive_scale else 1), **init)
        self.norm1 = GroupNorm(out_channels, eps=eps)
        self.conv1 = Conv2d(out_channels, out_channels, kernel=3, **init_zero)
        self.skip = None
        if out_channels != in_channels or up or down:
            kernel = 1 if resample_proj or out_channels != in_channels else 0
            self.skip = Conv2d(in_channels, out_channels, kernel=kernel, up=up, down=down, **rs, **init)
        if self.num_heads:
            self.norm2 = GroupNorm(out_channels, eps=eps)
            self.qkv = Conv2d(out_channels, out_channels * 3, kernel=1, **(init if init_attn is None else init_attn))
            self.proj = Conv2d(out_channels, out_channels, kernel=1, **init_zero)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """(B, in, H, W), emb (B, emb_channels) -> (B, out, H', W')."""
        orig = x
        x = self.conv0(F.silu(self.norm0(x)))
        params = self.affine(emb)[:, :, None, None].to(x.dtype)  # (B, out or 2 out, 1, 1)
        if self.adaptive_scale:
            scale, shift = params.chunk(2, dim=1)
            x = F.silu(shift + self.norm1(x) * (scale + 1))
        else:
            x = F.silu(self.norm1(x + params))
        x = self.conv1(F.dropout(x, p=self.dropout, training=self.training))
        x = (x + (orig if self.skip is None else self.skip(orig))) * self.skip_scale
        if self.num_heads:
            B, C, H, W = x.shape
            # (B, 3C, H, W) -> (B heads, C/heads, 3, HW) -> q, k, v each (B heads, HW, C/heads)
            q, k, v = self.qkv(self.norm2(x)).reshape(B * self.num_heads, C // self.num_heads, 3, H * W).unbind(2)
            a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
            x = (self.proj(a.transpose(1, 2).reshape(B, C, H, W)) + x) * self.skip_scale
        return x
