"""EDM's non-leaky geometric augmentation (Karras et al. 2022, App. F.2; built on StyleGAN2-ADA's pipeline),
re-implemented from its published settings: each op is applied to a sample with probability ``op_prob * p``
and the network is told what was done through 9 augment labels, so it can learn the clean distribution
(labels all zero) while training on augmented images.

The ops ``train.py --augment=P`` turns on (edm.md 1h) and their labels, in EDM's order (the order the
official checkpoints' ``map_augment`` Linear(9 -> 128) was trained on):

=============  ==================================================  ======================================
op (prob.)     what is drawn                                        labels
=============  ==================================================  ======================================
xflip (1e8)    w in {0, 1}: mirror left-right                       w
yflip (1)      w in {0, 1}: mirror top-bottom                       w
scale (1)      w ~ N(0, 1): zoom by s = 2^(w scale_std)             w  (log2 units of scale_std)
rotate_frac    theta ~ U(-pi, pi) rotate_frac_max: rotate           cos(theta) - 1, sin(theta)
aniso (1)      w ~ N(0, 1); r ~ U(-pi, pi) w.p. aniso_rotate_prob   w cos(r), w sin(r)
               (else 0): stretch by 2^(w aniso_std) along the axis
               at angle r, squeeze across it
translate_frac t ~ N(0, 1)^2: shift by t translate_frac_std of the  t_x, t_y
               image size
=============  ==================================================  ======================================

A label is zero when its op is not applied (so at p = 0 every label is zero and the image is unchanged, bit
for bit). ``xflip = 1e8`` makes the flip ALWAYS drawn when p > 0: half of the images are mirrored and say so.

The geometric ops compose into one inverse map G (output pixel -> input pixel, centred pixel coordinates, y
down): G = S(1/s) R(theta) [R(-r) S(1/a, a) R(r)] T(-t) with R(phi) = [[cos, -sin], [sin, cos]], executed
with ``torch.nn.functional.affine_grid`` + ``grid_sample``. What differs from EDM's execution (a choice,
documented in docs/edm_finetune.md): EDM reflect-pads the image, upsamples it 2x with a sym6 wavelet low-pass,
samples bilinearly and downsamples 2x with the same filter (less aliasing, slightly softer); we sample
bilinearly (``resample="bilinear"``, default) or bicubically at the original resolution, or
(``"supersample"``) at 2x resolution (bicubic up, bilinear sampling, 2x2 box down: EDM's scheme with simpler
filters), always with ``padding_mode="reflection"``, which reflects about the image border rather than about
the edge pixels' centres. Only the samples whose G is not the identity are resampled, so untouched samples stay exact.
EDM's colour ops and integer translation/rotation are off at ``--augment`` and are not implemented.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F

AUGMENT_DIM = 9  # xflip, yflip, scale, rotate (2), aniso (2), translate (2)
LABEL_NAMES = ("xflip", "yflip", "scale", "rotate_cos_minus_1", "rotate_sin", "aniso_cos", "aniso_sin",
               "translate_x", "translate_y")
RESAMPLE = ("bilinear", "bicubic", "supersample")


@dataclass(frozen=True)
class AugmentPipe:
    """EDM's geometric augmentation with its ``--augment`` defaults; ``p`` is the overall probability.

    ``pipe(x, generator) -> (y, labels)``: x (B, C, H, W) float, labels (B, 9) float32 (see the module
    docstring for their meaning). All random numbers come from ``generator`` (a CPU generator), drawn in a
    fixed order, so a seeded call is reproducible on any device.
    """

    p: float = 0.0
    xflip: float = 1e8
    yflip: float = 1.0
    scale: float = 1.0
    rotate_frac: float = 1.0
    aniso: float = 1.0
    translate_frac: float = 1.0
    scale_std: float = 0.2
    rotate_frac_max: float = 1.0
    aniso_std: float = 0.2
    aniso_rotate_prob: float = 0.5
    translate_frac_std: float = 0.125
    resample: str = "bilinear"

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "resample":
                if v not in RESAMPLE:
                    raise ValueError(f"AugmentPipe.resample must be one of {RESAMPLE}, got {v!r}")
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ValueError(f"AugmentPipe.{f.name} must be a finite number >= 0, got {v!r}")
            object.__setattr__(self, f.name, float(v))
        if self.p > 1 or self.aniso_rotate_prob > 1:
            raise ValueError(f"AugmentPipe.p and aniso_rotate_prob are probabilities in [0, 1], got p={self.p}, "
                             f"aniso_rotate_prob={self.aniso_rotate_prob}")

    @classmethod
    def from_record(cls, record: dict[str, Any] | None, p: float | None = None, **overrides: Any) -> AugmentPipe:
        """The pipe an EDM checkpoint's ``augment_pipe`` entry describes (``net.edm_meta["augment_pipe"]``:
        class_name, init_kwargs, attributes), or the ``--augment`` defaults when ``record`` is None;
        ``p`` replaces the record's probability when given.

        Settings this class does not implement (colour ops, integer translation) must be off in the record.
        """
        settings: dict[str, Any] = {}
        if record is not None:
            if record.get("class_name") not in (None, "AugmentPipe"):
                raise ValueError(f"the checkpoint's augment_pipe is a {record['class_name']!r}, not EDM's "
                                 "AugmentPipe; pass the augmentation settings explicitly")
            settings = {**dict(record.get("init_kwargs") or {}), **dict(record.get("attributes") or {})}
            unsupported = {k: v for k, v in settings.items() if k in _UNSUPPORTED and float(v) > 0}
            if unsupported:
                raise ValueError(f"the checkpoint's augment_pipe turns on {unsupported}, which this kit does not "
                                 "implement (only EDM's --augment ops: flips, scale, rotation, anisotropy, "
                                 "fractional translation)")
        known = {f.name for f in fields(cls)}
        kwargs = {k: float(v) for k, v in settings.items() if k in known and k != "resample"}
        if p is not None:
            kwargs["p"] = p
        kwargs.update(overrides)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(augmented images (B, C, H, W), augment labels (B, 9)) for images x (B, C, H, W)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"AugmentPipe takes a float image batch (B, C, H, W), got "
                             f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
        B, _, H, W = x.shape
        u = _Draws(B, generator, self.p)

        # Pixel blitting: exact mirrors. w in {0, 1}, kept with probability op * p.
        w_x = u.keep(u.bits(), self.xflip)
        w_y = u.keep(u.bits(), self.yflip)
        # Geometric parameters (zero = identity when not applied).
        w_s = u.keep(u.normal(), self.scale)
        theta = u.keep((u.uniform() * 2 - 1) * math.pi * self.rotate_frac_max, self.rotate_frac)
        w_a = u.keep(u.normal(), self.aniso)
        r = torch.where(u.uniform() < self.aniso_rotate_prob, (u.uniform() * 2 - 1) * math.pi, 0.0)
        t = u.keep(u.normal(2), self.translate_frac)  # (B, 2), one decision per sample for both axes

        r = torch.where(w_a != 0, r, 0.0)  # R(-r) R(r) is the identity only up to rounding: skip it when unused
        labels = torch.stack([w_x, w_y, w_s, theta.cos() - 1, theta.sin(), w_a * r.cos(), w_a * r.sin(),
                              t[:, 0], t[:, 1]], dim=1) + 0.0  # (B, 9); + 0.0 turns -0.0 into 0.0

        flip_x, flip_y = (w_x == 1).to(x.device)[:, None, None, None], (w_y == 1).to(x.device)[:, None, None, None]
        y = torch.where(flip_x, x.flip(3), x)
        y = torch.where(flip_y, y.flip(2), y)

        # G: output -> input pixel map, in centred pixel coordinates (float64 until the grid).
        s = torch.exp2(-w_s * self.scale_std)
        a = torch.exp2(w_a * self.aniso_std)
        G = _scale(s, s) @ _rotate(theta) @ _rotate(-r) @ _scale(1 / a, a) @ _rotate(r)
        G = G @ _translate(-t[:, 0] * W * self.translate_frac_std, -t[:, 1] * H * self.translate_frac_std)
        moved = (G - torch.eye(3, dtype=G.dtype)).abs().amax(dim=(1, 2)) > 0  # (B,)
        if bool(moved.any()):
            # centred pixels -> affine_grid's [-1, 1] (align_corners=False): x_n = 2 x_c / W
            to_norm = _scale(torch.full((B,), 2.0 / W, dtype=G.dtype), torch.full((B,), 2.0 / H, dtype=G.dtype))
            theta_n = (to_norm @ G @ torch.linalg.inv(to_norm))[:, :2, :]  # (B, 2, 3)
            idx = moved.nonzero().flatten()
            sub = y[idx.to(y.device)]
            warped = _warp(sub, theta_n[idx].to(device=y.device, dtype=y.dtype), self.resample)
            y = y.index_copy(0, idx.to(y.device), warped)
        return y, labels.to(device=x.device, dtype=torch.float32)


def _warp(x: torch.Tensor, theta: torch.Tensor, resample: str) -> torch.Tensor:
    """x (B, C, H, W) sampled at affine_grid(theta) with reflection; "supersample" works at 2x resolution
    (bicubic up, bilinear sampling, 2x2 box down), closer to EDM's 2x wavelet supersampling."""
    if resample == "supersample":
        x = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # normalised coords: resolution-free
    mode = "bicubic" if resample == "bicubic" else "bilinear"
    out = F.grid_sample(x, grid, mode=mode, padding_mode="reflection", align_corners=False)
    return F.avg_pool2d(out, 2) if resample == "supersample" else out


# EDM AugmentPipe settings outside the --augment ops (must be 0 in a record this class reads).
_UNSUPPORTED = ("rotate_int", "translate_int", "brightness", "contrast", "lumaflip", "hue", "saturation")


class _Draws:
    """Random numbers for one batch from one CPU generator, in float64, in call order."""

    def __init__(self, B: int, generator: torch.Generator | None, p: float) -> None:
        self.B, self.g, self._p = B, generator, p

    def uniform(self, *shape: int) -> torch.Tensor:
        return torch.rand(self.B, *shape, generator=self.g, dtype=torch.float64)

    def normal(self, *shape: int) -> torch.Tensor:
        return torch.randn(self.B, *shape, generator=self.g, dtype=torch.float64)

    def bits(self) -> torch.Tensor:
        return torch.randint(0, 2, (self.B,), generator=self.g).to(torch.float64)

    def keep(self, w: torch.Tensor, op_prob: float) -> torch.Tensor:
        """w where a fresh U(0, 1) < op_prob * p (per sample), else 0; w (B,) or (B, k)."""
        applied = self.uniform() < op_prob * self._p
        return torch.where(applied.reshape(-1, *([1] * (w.ndim - 1))), w, torch.zeros_like(w))


def _matrices(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor, tx: torch.Tensor,
              ty: torch.Tensor) -> torch.Tensor:
    """Homogeneous 2-D maps [[a, b, tx], [c, d, ty], [0, 0, 1]] (B, 3, 3) from (B,) entries."""
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([a, b, tx, c, d, ty, zero, zero, one], dim=1).reshape(-1, 3, 3)


def _scale(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    z = torch.zeros_like(sx)
    return _matrices(sx, z, z, sy, z, z)


def _rotate(phi: torch.Tensor) -> torch.Tensor:
    z = torch.zeros_like(phi)
    return _matrices(phi.cos(), -phi.sin(), phi.sin(), phi.cos(), z, z)


def _translate(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    one, z = torch.ones_like(tx), torch.zeros_like(tx)
    return _matrices(one, z, z, one, tx, ty)
