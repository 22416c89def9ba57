"""SongUNet under EDM's VP / VE / EDM preconditioning, laid out like EDM's wrapper classes (edm.md 1a):
the maths is ``specreg_lib.diffusion.Precond``'s; this adds EDM's attribute names, its fp32 / fp16 handling,
class-label defaults and the ``.model`` backbone name, so official state keys ``model.*`` load one to one.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from ..diffusion.edm import Precond
from .songunet import SongUNet

# EDM's wrapper class names <-> our preconditioning kinds.
PRECOND_CLASSES = {"EDMPrecond": "edm", "VPPrecond": "vp", "VEPrecond": "ve"}
PRECOND_NAMES = {kind: name for name, kind in PRECOND_CLASSES.items()}
# The preconditioning settings each wrapper takes (the rest of its init kwargs go to the backbone).
PRECOND_SETTINGS = {
    "edm": ("sigma_min", "sigma_max", "sigma_data"),
    "vp": ("beta_d", "beta_min", "M", "epsilon_t"),
    "ve": ("sigma_min", "sigma_max"),
}


class EDMDenoiser(Precond):
    """D(x; sigma) = c_skip x + c_out F(c_in x; c_noise) with a SongUNet F stored as ``.model`` (EDM's name).

    Called as ``net(x, sigma, class_labels=None, augment_labels=None, force_fp32=False)``: sigma a float, a
    0-d tensor, (B,) or (B, 1, 1, 1); class_labels one-hot (B, label_dim), or None (zeros: no class, as EDM).
    Like EDM, x and sigma are cast to float32 and the network runs in float16 only when ``use_fp16`` is set
    and x is on CUDA (here through autocast); D is returned in x's dtype.
    ``.net`` is an alias of ``.model`` (``Precond``'s name), so ``state_dict()`` keys read ``model.*``.
    ``vp_form`` (VP only): "edm" (default) computes c_noise and the sigma range in float32 as EDM's VPPrecond
    does, bit for bit, which the official VP nets were trained with; "accurate" uses the exact functions
    (``diffusion.edm.vp_sigma_inv``). It is not an EDM init kwarg, so EDM pickles do not store it.
    """

    def __init__(self, model: SongUNet, kind: str = "edm", use_fp16: bool = False, sigma_data: float = 0.5,
                 sigma_min: float | None = None, sigma_max: float | None = None, beta_d: float = 19.9,
                 beta_min: float = 0.1, M: int = 1000, epsilon_t: float = 1e-5, vp_form: str = "edm") -> None:
        if not isinstance(model, SongUNet):
            raise TypeError(f"EDMDenoiser wraps a SongUNet, got {type(model).__name__}")
        super().__init__(model, kind, sigma_data=sigma_data, sigma_min=sigma_min, sigma_max=sigma_max,
                         beta_d=beta_d, beta_min=beta_min, M=M, epsilon_t=epsilon_t, vp_form=vp_form)
        self.model = self._modules.pop("net")  # EDM's attribute name: state keys 'model.*'
        kw = model.init_kwargs
        self.img_resolution, self.img_channels = kw["img_resolution"], kw["in_channels"]
        self.label_dim, self.use_fp16, self.epsilon_t = kw["label_dim"], bool(use_fp16), epsilon_t

    @property
    def net(self) -> SongUNet:
        """``Precond``'s name for the backbone: the same module as ``.model``."""
        return self.model

    def precond_kwargs(self) -> dict[str, Any]:
        """The wrapper's own init kwargs, in EDM's names (what an official pickle stores besides the UNet's)."""
        out: dict[str, Any] = dict(img_resolution=self.img_resolution, img_channels=self.img_channels,
                                   label_dim=self.label_dim, use_fp16=self.use_fp16)
        values = dict(sigma_min=self.sigma_min, sigma_max=self.sigma_max, sigma_data=self.sigma_data,
                      beta_d=self.beta_d, beta_min=self.beta_min, M=self.M, epsilon_t=self.epsilon_t)
        out.update({k: values[k] for k in PRECOND_SETTINGS[self.kind]})
        return out

    def round_sigma(self, sigma: Any) -> torch.Tensor:
        """EDM's hook for nets with a discrete sigma table; the identity for VP / VE / EDM."""
        return torch.as_tensor(sigma)

    def _class_labels(self, class_labels: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
        if not self.label_dim:
            return None  # EDM ignores labels on an unconditional net
        if class_labels is None:
            return torch.zeros(x.shape[0], self.label_dim, device=x.device)
        c = torch.as_tensor(class_labels, device=x.device).to(torch.float32)
        if c.ndim == 1 and c.numel() == self.label_dim and x.shape[0] == 1:
            c = c[None]
        if c.shape != (x.shape[0], self.label_dim):
            raise ValueError(f"class_labels must be one-hot of shape ({x.shape[0]}, {self.label_dim}) for x of "
                             f"shape {tuple(x.shape)}, got {tuple(c.shape)}; e.g. "
                             f"torch.nn.functional.one_hot(labels, {self.label_dim}).float()")
        return c

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, class_labels: torch.Tensor | None = None,
                augment_labels: torch.Tensor | None = None, force_fp32: bool = False) -> torch.Tensor:
        """D(x; sigma): x (B, C, R, R) -> (B, C, R, R), in x's dtype."""
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            raise ValueError(f"x must be an image batch (B, C, H, W), got {getattr(x, 'shape', type(x))}")
        x32 = x.to(torch.float32)
        if isinstance(sigma, torch.Tensor):
            sigma = sigma.to(torch.float32)
        kwargs: dict[str, Any] = dict(class_labels=self._class_labels(class_labels, x32))
        if augment_labels is not None:
            kwargs["augment_labels"] = augment_labels.to(device=x.device, dtype=torch.float32)
        fp16 = self.use_fp16 and not force_fp32 and x.device.type == "cuda"
        ctx = torch.autocast("cuda", dtype=torch.float16) if fp16 else contextlib.nullcontext()
        with ctx:
            D = super().forward(x32, sigma, **kwargs)
        return D.to(x.dtype)


def split_precond_kwargs(kind: str, init_kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An EDM wrapper's init kwargs -> (our EDMDenoiser settings, the SongUNet's kwargs)."""
    kw = dict(init_kwargs)
    for key in ("img_resolution", "img_channels"):
        if key not in kw:
            raise ValueError(f"the checkpoint's {PRECOND_NAMES[kind]} init kwargs lack {key!r} (have "
                             f"{sorted(kw)}); the file is not an EDM network pickle")
    model_type = kw.pop("model_type", "DhariwalUNet" if kind == "edm" else "SongUNet")  # EDM's defaults
    if model_type != "SongUNet":
        raise ValueError(f"the checkpoint's network is {model_type!r} under {PRECOND_NAMES[kind]}; this kit "
                         "re-implements SongUNet (DDPM++ / NCSN++: the edm-*/baseline-* AFHQv2, FFHQ and "
                         "CIFAR-10 files), not DhariwalUNet (ImageNet ADM) or iDDPM")
    settings = dict(use_fp16=bool(kw.pop("use_fp16", False)))
    for key in PRECOND_SETTINGS[kind]:
        if key in kw:
            settings[key] = kw.pop(key)
    for key in ("sigma_min", "sigma_max", "sigma_data", "beta_d", "beta_min", "epsilon_t"):
        if key in settings:
            settings[key] = float(settings[key])
    if "M" in settings:
        settings["M"] = int(settings["M"])
    model = dict(img_resolution=kw.pop("img_resolution"), in_channels=kw["img_channels"],
                 out_channels=kw.pop("img_channels"), label_dim=kw.pop("label_dim", 0), **kw)
    return settings, model


def build_denoiser(class_name: str, init_kwargs: dict[str, Any], meta: bool = False) -> EDMDenoiser:
    """A fresh EDMDenoiser from an EDM wrapper's class name (EDMPrecond / VPPrecond / VEPrecond) and kwargs.

    ``meta=True`` builds the SongUNet's tensors on the meta device (no memory, no random init): for a loader
    that then assigns the file's tensors (``load_state_dict(..., assign=True)``)."""
    if class_name not in PRECOND_CLASSES:
        raise ValueError(f"unsupported network class {class_name!r}: this kit rebuilds "
                         f"{', '.join(PRECOND_CLASSES)} around SongUNet (iDDPMPrecond / DhariwalUNet are not "
                         "re-implemented)")
    kind = PRECOND_CLASSES[class_name]
    settings, model_kwargs = split_precond_kwargs(kind, init_kwargs)
    try:
        with torch.device("meta") if meta else contextlib.nullcontext():
            model = SongUNet(**model_kwargs)
    except TypeError as err:
        raise ValueError(f"the checkpoint's SongUNet kwargs {sorted(model_kwargs)} do not fit SongUNet "
                         f"({err}); is this an EDM SongUNet checkpoint?") from err
    return EDMDenoiser(model, kind, **settings)


def denoiser_init_kwargs(net: EDMDenoiser) -> dict[str, Any]:
    """The init kwargs EDM's wrapper would have recorded for ``net``: its settings, model_type, UNet kwargs."""
    unet = {k: v for k, v in net.model.init_kwargs.items()
            if k not in ("img_resolution", "in_channels", "out_channels", "label_dim")}
    out = net.precond_kwargs()
    out["model_type"] = "SongUNet"
    out.update(unet)
    return out
