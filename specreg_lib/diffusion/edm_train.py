"""EDM's training objective as its training loop reduces it, for fine-tuning an EDM checkpoint.

EDM's loss returns the per-pixel weighted squared error lambda(sigma) (D(y + n; sigma) - y)^2 and its loop SUMS
it over C*H*W (then divides by the batch); this kit's losses (``EDMLoss`` and friends) take the per-sample
MEAN. The two differ by C*H*W (12,288 at 3x64x64) in the diffusion term only, so they decide what a given
lambda_spec means next to it (Eq. 17). :class:`EDMTrainLoss` makes the reduction over pixels an explicit option,
``pixels`` (the spectral losses' own reduction over frequency bins is another word, ``bins``):

- ``pixels="sum"`` (default): L = sum_{C,H,W} lambda (D - y)^2 + lambda_spec * w * L_S(D, y), EDM's loop with
  the spectral term added once per sample. The default because the paper fine-tunes with "the same
  optimization protocol as in the original EDM work" on EDM's code, where the diffusion term is this sum.
- ``pixels="mean"``: L = mean_{C,H,W} lambda (D - y)^2 + lambda_spec * w * L_S(D, y) (this kit's losses).

:func:`term_table` measures both terms and their gradient norms on one batch for each regularizer, so the
choice can be seen (``benchmarks/bench_edm_finetune.py`` prints it for the AFHQ DDPM++ configuration).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .balance import term_balance
from .edm import EDMLoss, VELoss, VPLoss
from .hook import Regularizer

PIXEL_REDUCTIONS = ("sum", "mean")
LOSS_CLASSES = {"EDMLoss": EDMLoss, "VPLoss": VPLoss, "VELoss": VELoss}
LOSS_SETTINGS = {"EDMLoss": ("P_mean", "P_std", "sigma_data"), "VPLoss": ("beta_d", "beta_min", "epsilon_t"),
                 "VELoss": ("sigma_min", "sigma_max")}


def edm_loss_from_record(record: Mapping[str, Any] | None, regularizer: Regularizer | None = None,
                         default: str = "EDMLoss") -> EDMLoss | VPLoss | VELoss:
    """The loss an EDM checkpoint's ``loss_fn`` entry names (``net.edm_meta["loss_fn"]``), with its settings,
    plus ``regularizer``; the ``default`` class with EDM's defaults when the file has none."""
    name = default if record is None else record.get("class_name")
    if name not in LOSS_CLASSES:
        raise ValueError(f"the checkpoint's loss_fn is {name!r}; this kit implements {sorted(LOSS_CLASSES)}")
    settings = {} if record is None else {**dict(record.get("init_kwargs") or {}),
                                          **dict(record.get("attributes") or {})}
    kwargs = {k: float(settings[k]) for k in LOSS_SETTINGS[name] if k in settings}
    return LOSS_CLASSES[name](**kwargs, regularizer=regularizer)


class _Denoise:
    """D(x; sigma) of an EDM network with this batch's class and augment labels bound (one call's adapter)."""

    def __init__(self, net: Any, class_labels: torch.Tensor | None, augment_labels: torch.Tensor | None) -> None:
        self.net, self.class_labels, self.augment_labels = net, class_labels, augment_labels

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.net(x, sigma, class_labels=self.class_labels, augment_labels=self.augment_labels)


class EDMTrainLoss:
    """``loss(net, y, cond, generator) -> (B,)``: EDM's loss on augmented images y under the net's own
    preconditioning, reduced over pixels as ``pixels`` says, + lambda_spec * w * L_S(D, y) (see the module docstring).

    ``cond`` (B, label_dim + augment_dim) holds the one-hot class labels, then the augment labels
    (``specreg_lib.data.augment``), or is None; ``net(x, sigma, class_labels=, augment_labels=)`` is an
    ``EDMDenoiser`` (or DDP around one). Picklable; the training loop's contract.
    """

    def __init__(self, loss: EDMLoss | VPLoss | VELoss, pixels: str = "sum", label_dim: int = 0) -> None:
        if pixels not in PIXEL_REDUCTIONS:
            raise ValueError(f"pixels must be one of {PIXEL_REDUCTIONS} (sum or mean over C*H*W), got {pixels!r}")
        self.loss, self.pixels, self.label_dim = loss, pixels, int(label_dim)

    def split(self, cond: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """cond (B, label_dim + augment_dim) -> (class labels or None, augment labels or None)."""
        if cond is None:
            return None, None
        class_labels = cond[:, :self.label_dim] if self.label_dim else None
        augment = cond[:, self.label_dim:]
        return class_labels, augment if augment.shape[1] else None

    def __call__(self, net: Any, y: torch.Tensor, cond: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, return_parts: bool = False
                 ) -> torch.Tensor | dict[str, torch.Tensor]:
        parts = self.loss(_Denoise(net, *self.split(cond)), y, generator=generator, return_parts=True)
        diffusion = parts["diffusion"]  # (B,) per-sample mean of lambda (D - y)^2
        if self.pixels == "sum":
            diffusion = diffusion * y[0].numel()  # EDM's loop: the sum over C*H*W
        loss = diffusion
        if self.loss.regularized:  # the hook's lambda_spec * w * L_S, added once per sample (Eq. 17)
            loss = diffusion + parts["term"]
        if not return_parts:
            return loss
        return {**parts, "loss": loss, "diffusion": diffusion}

    def __repr__(self) -> str:
        return f"EDMTrainLoss({self.loss!r}, pixels={self.pixels!r}, label_dim={self.label_dim})"


def term_table(net: Any, y: torch.Tensor, regularizers: Mapping[str, Regularizer], cond: torch.Tensor | None = None,
               loss_record: Mapping[str, Any] | None = None, label_dim: int = 0, seed: int = 0
               ) -> list[dict[str, Any]]:
    """One row per (regularizer, pixel reduction): the batch means of the diffusion term and of w * L_S
    (lambda_spec = 1), the norms of their gradients over the net's parameters and their ratio.

    Every row uses the same noise (``seed``), so rows differ only in the regularizer and the pixel reduction;
    the sum rows are the mean rows' diffusion numbers times C*H*W (the reduction is linear).
    """
    rows = []
    chw = y[0].numel()
    for name, reg in regularizers.items():
        reg = Regularizer(reg.kind, 1.0, reg.weighting, reg.options)  # measure the term at lambda_spec = 1
        loss = edm_loss_from_record(loss_record, reg)
        inner = EDMTrainLoss(loss, "mean", label_dim)
        b = term_balance(loss, _Denoise(net, *inner.split(cond)), y, generator=torch.Generator(
            y.device).manual_seed(seed), params=net.parameters())
        for pixels, scale in (("sum", chw), ("mean", 1)):
            diff, g_diff = b["diffusion"] * scale, b["grad_diffusion"] * scale
            rows.append({"regularizer": name, "weighting": loss.weighting.kind, "pixels": pixels,
                         "diffusion": diff, "spectral": b["spectral"], "term_ratio": b["spectral"] / diff,
                         "grad_diffusion": g_diff, "grad_spectral": b["grad_spectral"],
                         "grad_ratio": b["grad_spectral"] / g_diff})
    return rows
