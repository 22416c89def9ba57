"""Stand-in natural images: random grayscale crops of scikit-image's bundled photos and textures.

Used where the paper's image data (AFHQ/FFHQ) cannot be had offline, e.g. the power-spectra notebook:
natural photos have the ~1/f^2 radial power law the paper's regularizers target. Pixels in [-1, 1].

Held-out sources (issue 21): crops of one photo overlap and share its content, so an evaluation set cut from the
training photos measures memorisation, not generalisation. ``split="train"`` draws only from the sources not in
:data:`EVAL_IMAGES`, ``split="eval"`` only from those; the default ``split=None`` keeps every source (the original
behaviour, bit for bit). docs/image_standins.md has the counts and spectra.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

from ..errors import InputError

# Bundled with scikit-image (no download): photos and textures, grayscale or converted to it.
SKIMAGE_IMAGES = ("camera", "astronaut", "chelsea", "coffee", "rocket", "brick", "grass", "gravel", "moon",
                  "coins")
# Held out for evaluation: one photo and one texture, so the held-out set has both kinds the training set has;
# neither is an extreme of the pool's spectra (moon, grass and brick are; docs/image_standins.md).
EVAL_IMAGES = ("coffee", "gravel")
SPLITS = (None, "train", "eval")


class PatchError(InputError, ValueError):
    """A bad patch option (unknown image, split, or a crop larger than the picture); the message says what to use."""


@cache
def load_gray(name: str) -> torch.Tensor:
    """One bundled scikit-image picture as a (H, W) float32 tensor in [-1, 1] (RGB -> luminance)."""
    import skimage.data
    from skimage.color import rgb2gray

    if name not in SKIMAGE_IMAGES:
        raise PatchError(f"unknown image {name!r}; choose from {SKIMAGE_IMAGES}")
    img = getattr(skimage.data, name)()
    img = rgb2gray(img) if img.ndim == 3 else img.astype(np.float64) / 255.0  # [0, 1]
    return torch.from_numpy(2.0 * img - 1.0).float()


@dataclass(frozen=True)
class ImagePatches:
    """Random ``size`` x ``size`` crops (random image, position, horizontal flip) downscaled by ``scale``.

    ``scale`` > 1 average-pools each crop (a crop of size*scale pixels), so a patch spans more of the scene.
    Call as a training-loop sampler: ``patches(batch_size, generator) -> (B, 1, size, size)``.
    ``split``: None (every image in ``images``), "train" (those not in :data:`EVAL_IMAGES`) or "eval" (those in it).
    """

    size: int = 32
    scale: int = 2
    images: tuple[str, ...] = SKIMAGE_IMAGES
    split: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "images", tuple(self.images))
        if self.size < 2 or self.scale < 1 or not self.images:
            raise PatchError("need size >= 2, scale >= 1 and at least one image")
        for name in self.images:
            if name not in SKIMAGE_IMAGES:
                raise PatchError(f"unknown image {name!r}; choose from {SKIMAGE_IMAGES}")
        if self.split not in SPLITS:
            raise PatchError(f"split must be one of {SPLITS}, got {self.split!r}")
        if not self.sources:
            raise PatchError(f"images={self.images} has no {self.split!r} source; the held-out (eval) sources are "
                             f"{EVAL_IMAGES}, every other image is a training source")

    @property
    def sources(self) -> tuple[str, ...]:
        """The images crops are drawn from: ``images`` restricted to the split, in their given order."""
        if self.split is None:
            return self.images
        return tuple(n for n in self.images if (n in EVAL_IMAGES) == (self.split == "eval"))

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, 1, size, size) float32 crops in [-1, 1], reproducible from ``generator``."""
        crop = self.size * self.scale
        sources = self.sources
        which = torch.randint(len(sources), (batch_size,), generator=generator).tolist()
        u = torch.rand(batch_size, 3, generator=generator)
        out = []
        for b, k in enumerate(which):
            img = load_gray(sources[k])
            H, W = img.shape
            if H < crop or W < crop:
                raise PatchError(f"image {sources[k]!r} ({H}x{W}) is smaller than a {crop}-pixel crop")
            y, x = int(u[b, 0] * (H - crop + 1)), int(u[b, 1] * (W - crop + 1))
            patch = img[y:y + crop, x:x + crop]
            out.append(patch.flip(-1) if u[b, 2] < 0.5 else patch)
        x = torch.stack(out)[:, None]  # (B, 1, crop, crop)
        return torch.nn.functional.avg_pool2d(x, self.scale) if self.scale > 1 else x

    __call__ = sample


def photo(name: str, size: int) -> torch.Tensor:
    """One bundled photo as a (1, 1, size, size) float32 image in [-1, 1]: centre square crop, then area
    downsampling (exact block averages when size divides the crop)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ValueError(f"size must be an int >= 2, got {size!r}")
    img = load_gray(name)
    n = min(img.shape)
    if size > n:
        raise ValueError(f"image {name!r} is {tuple(img.shape)}: size must be <= {n} (downsampling only)")
    y, x = (img.shape[0] - n) // 2, (img.shape[1] - n) // 2
    square = img[y:y + n, x:x + n][None, None]  # (1, 1, n, n)
    return torch.nn.functional.interpolate(square, size=(size, size), mode="area")
