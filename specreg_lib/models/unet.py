"""One small U-Net for every denoiser in the kit (checkerboard toy, smoke profiles, 1-D audio stand-ins).

Design (DDPM/ADM-style, Ho et al. 2020; Dhariwal & Nichol 2021), kept deliberately plain:

* sinusoidal embedding of t (an int step index or a float such as EDM's c_noise) -> MLP -> ``temb``;
* levels of ``num_res_blocks`` residual blocks, stride-2 down / nearest up, skip connections,
  optional self-attention at chosen resolutions and in the middle;
* ``fold``: space-to-depth before the first conv (``pixel_unshuffle``), depth-to-space after the last,
  so a 64x64 image becomes a 64-channel 8x8 grid and every conv sees whole 8x8 pixel blocks;
* ``global_pool``: each residual block also adds a projection of the spatial mean of its input, a global
  context that lets a small net agree on one phase for a whole periodic pattern;
* conditioning hook: ``cond_channels`` (spatial maps concatenated to the input, e.g. upsampled mels)
  or ``cond_dim`` (a vector added to ``temb``, e.g. class one-hot or EDM augment labels).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of :class:`UNet`; ``attn_resolutions`` are grid sizes *after* folding (e.g. 8 for a
    64x64 input with fold=8 at the top level, 4 one level down)."""

    resolution: int = 64  # input spatial size (H = W, or L for dims=1); fixes where attention sits
    in_channels: int = 1
    out_channels: int = 1
    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = ()
    mid_attention: bool = True
    dropout: float = 0.0
    fold: int = 1  # space-to-depth factor; 1 = off
    global_pool: bool = False  # add a global-average-pool feature in every residual block
    cond_channels: int = 0  # spatial conditioning maps concatenated to the input
    cond_dim: int = 0  # vector conditioning added to the time embedding
    dims: int = 2  # 2 = images (B, C, H, W); 1 = signals (B, C, L)
    norm_groups: int = 8
    num_heads: int = 4
    t_scale: float = 1.0  # t is multiplied by this before the embedding (e.g. 250 for EDM's c_noise = ln(sigma)/4)

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; normalise so configs compare equal.
        object.__setattr__(self, "channel_mult", tuple(self.channel_mult))
        object.__setattr__(self, "attn_resolutions", tuple(self.attn_resolutions))
        if self.dims not in (1, 2):
            raise ValueError(f"dims must be 1 or 2, got {self.dims}")
        if min(self.in_channels, self.out_channels, self.base_channels, self.fold) < 1:
            raise ValueError("in/out/base channels and fold must be >= 1")
        if not self.channel_mult or min(self.channel_mult) < 1 or self.num_res_blocks < 1:
            raise ValueError("channel_mult must be non-empty positive ints and num_res_blocks >= 1")
        if any(self.base_channels * m % self.norm_groups for m in self.channel_mult):
            raise ValueError(f"every level's width must be divisible by norm_groups={self.norm_groups}")
        if self.resolution % (self.fold * 2 ** (len(self.channel_mult) - 1)):
            raise ValueError(f"resolution {self.resolution} must be divisible by fold * 2^(levels-1)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.cond_channels < 0 or self.cond_dim < 0 or (self.cond_channels and self.cond_dim):
            raise ValueError("use at most one of cond_channels / cond_dim (both >= 0)")

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        """Rebuild from ``dataclasses.asdict`` output (e.g. a checkpoint's saved config)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al. 2017) of int or float t: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def _conv(dims: int, c_in: int, c_out: int, k: int = 3, stride: int = 1) -> nn.Module:
    cls = nn.Conv2d if dims == 2 else nn.Conv1d
    return cls(c_in, c_out, k, stride=stride, padding=k // 2)


def fold_nd(x: torch.Tensor, f: int) -> torch.Tensor:
    """Space-to-depth: (B, C, H, W) -> (B, C f^2, H/f, W/f), or (B, C, L) -> (B, C f, L/f)."""
    if f == 1:
        return x
    if x.dim() == 4:
        return F.pixel_unshuffle(x, f)
    b, c, n = x.shape
    return x.reshape(b, c, n // f, f).permute(0, 1, 3, 2).reshape(b, c * f, n // f)


def unfold_nd(x: torch.Tensor, f: int) -> torch.Tensor:
    """Inverse of :func:`fold_nd`."""
    if f == 1:
        return x
    if x.dim() == 4:
        return F.pixel_shuffle(x, f)
    b, cf, m = x.shape
    return x.reshape(b, cf // f, f, m).permute(0, 1, 3, 2).reshape(b, cf // f, m * f)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, plus time (and optional global-pool) features after the first conv."""

    def __init__(self, c_in: int, c_out: int, temb_dim: int, cfg: UNetConfig) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(cfg.norm_groups, c_in)
        self.conv1 = _conv(cfg.dims, c_in, c_out)
        self.temb = nn.Linear(temb_dim, c_out)
        self.pool = nn.Linear(c_in, c_out) if cfg.global_pool else None
        self.norm2 = nn.GroupNorm(cfg.norm_groups, c_out)
        self.drop = nn.Dropout(cfg.dropout)
        self.conv2 = _conv(cfg.dims, c_out, c_out)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = _conv(cfg.dims, c_in, c_out, k=1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(x))
        spatial = (1,) * (x.dim() - 2)
        extra = self.temb(temb)  # (B, c_out)
        if self.pool is not None:
            extra = extra + self.pool(h.mean(dim=tuple(range(2, x.dim()))))  # global context, (B, c_out)
        h = self.conv1(h) + extra.view(*extra.shape, *spatial)
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over all positions, residual, output projection zero-initialised."""

    def __init__(self, c: int, cfg: UNetConfig) -> None:
        super().__init__()
        self.heads = cfg.num_heads if c % cfg.num_heads == 0 else 1
        self.norm = nn.GroupNorm(cfg.norm_groups, c)
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = nn.Linear(c, c)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        h = self.norm(x).reshape(b, c, -1).transpose(1, 2)  # (B, N, C)
        q, k, v = self.qkv(h).reshape(b, -1, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        h = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, C/heads)
        h = self.proj(h.transpose(1, 2).reshape(b, -1, c))  # (B, N, C)
        return x + h.transpose(1, 2).reshape(x.shape)


class UNet(nn.Module):
    """``forward(x, t, cond=None)``: (B, in_channels, *S), (B,) -> (B, out_channels, *S)."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        f_ch = cfg.fold ** cfg.dims  # channels per input channel after folding
        ch = cfg.base_channels
        temb_dim = 4 * ch
        self.temb = nn.Sequential(nn.Linear(ch, temb_dim), nn.SiLU(), nn.Linear(temb_dim, temb_dim))
        self.cond_embed = nn.Linear(cfg.cond_dim, temb_dim) if cfg.cond_dim else None
        self.conv_in = _conv(cfg.dims, (cfg.in_channels + cfg.cond_channels) * f_ch, ch)

        self.down = nn.ModuleList()
        skips = [ch]
        c = ch
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                self.down.append(self._block(c, ch * mult, temb_dim, level))
                c = ch * mult
                skips.append(c)
            if level < len(cfg.channel_mult) - 1:
                self.down.append(_conv(cfg.dims, c, c, stride=2))
                skips.append(c)
        self.mid = nn.ModuleList([ResBlock(c, c, temb_dim, cfg),
                                  Attention(c, cfg) if cfg.mid_attention else nn.Identity(),
                                  ResBlock(c, c, temb_dim, cfg)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(self._block(c + skips.pop(), ch * mult, temb_dim, level))
                c = ch * mult
            if level > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv(cfg.dims, c, c)))
        self.norm_out = nn.GroupNorm(cfg.norm_groups, c)
        self.conv_out = _conv(cfg.dims, c, cfg.out_channels * f_ch)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def _block(self, c_in: int, c_out: int, temb_dim: int, level: int) -> nn.Module:
        """A residual block, followed by attention when this level's resolution is listed."""
        grid = self.cfg.resolution // self.cfg.fold // 2**level
        attn = Attention(c_out, self.cfg) if grid in self.cfg.attn_resolutions else None
        return _AttnBlock(ResBlock(c_in, c_out, temb_dim, self.cfg), attn)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float, cond: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.cfg
        spatial = x.shape[2:]
        if any(s != cfg.resolution for s in spatial) or x.dim() != cfg.dims + 2:
            want = (cfg.in_channels, *(cfg.resolution,) * cfg.dims)
            raise ValueError(f"expected (B, *{want}), got {tuple(x.shape)}")
        t = torch.as_tensor(t, device=x.device)
        t = t.expand(x.shape[0]) if t.dim() == 0 else t
        temb = self.temb(timestep_embedding(t * cfg.t_scale, cfg.base_channels))  # (B, 4 ch)
        if cfg.cond_channels:
            if cond is None or cond.shape[2:] != spatial:
                raise ValueError(f"cond must be (B, {cfg.cond_channels}, {tuple(spatial)}), got "
                                 f"{None if cond is None else tuple(cond.shape)}")
            x = torch.cat([x, cond.to(x.dtype)], dim=1)
        elif cfg.cond_dim:
            if cond is None:
                raise ValueError(f"cond must be (B, {cfg.cond_dim})")
            temb = temb + self.cond_embed(cond.to(temb.dtype))
        h = self.conv_in(fold_nd(x, cfg.fold))
        hs = [h]
        for mod in self.down:
            h = mod(h, temb) if isinstance(mod, _AttnBlock) else mod(h)
            hs.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, temb)), temb)
        for mod in self.up:
            h = mod(torch.cat([h, hs.pop()], dim=1), temb) if isinstance(mod, _AttnBlock) else mod(h)
        h = self.conv_out(F.silu(self.norm_out(h)))
        return unfold_nd(h, cfg.fold)


class _AttnBlock(nn.Module):
    """A residual block optionally followed by self-attention."""

    def __init__(self, res: ResBlock, attn: Attention | None) -> None:
        super().__init__()
        self.res = res
        self.attn = attn

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.res(x, temb)
        return h if self.attn is None else self.attn(h)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
