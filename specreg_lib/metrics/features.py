"""Feature extractors beside Inception (``fid.inception_extractor``): same call, ``extractor(x) -> (B, D)`` on
images (B, 3, H, W) in 0..255, so any of them feeds ``fid.fid_seed_sets`` and ``fid.reference_stats``."""

from __future__ import annotations

import torch


class PooledPixels(torch.nn.Module):
    """Stand-in FID features (offline): images (B, 3, H, W) in 0..255 -> average-pooled to k x k, (B, 3 k^2)."""

    def __init__(self, k: int = 4) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(x.float() / 255, self.k).flatten(1)
