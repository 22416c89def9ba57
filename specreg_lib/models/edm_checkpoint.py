"""Official EDM checkpoints (``edm-*.pkl``, ``baseline-*.pkl``) in and out, without the EDM repository and
without running anything from the file (edm.md 1e-1f; docs/edm_models.md).

``load_edm_checkpoint(path_or_url)`` -> an :class:`EDMDenoiser` D(x; sigma) with the file's weights (an EDM
pickle, or a state_dict export's .json/.pt); ``read_edm_pickle(path)`` -> the file's entries as data;
``save_edm_checkpoint(net, path)`` writes ours back in the kit's own EDM-layout pickle (this kit reads it; EDM's
loader does not: for EDM's own tools see ``edm_export.py``)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import torch

from .. import assets
from ..errors import InputError
from ..io import atomic_path
from ..torchfile import CheckpointMissingError, read_torch_file
from .edm_layers import Conv2d, FourierEmbedding, GroupNorm, Linear, PositionalEmbedding, UNetBlock
from .edm_pickle import (
    EDMPickler,
    PersistentRecord,
    TorchModuleRecord,
    flat_state_dict,
    plain,
)
from .edm_precond import PRECOND_CLASSES, PRECOND_NAMES, EDMDenoiser, build_denoiser, denoiser_init_kwargs
from .edm_unpickler import restricted_load
from .songunet import SongUNet

# Positional constructor order of EDM's classes, to name an _init_args tuple (EDM itself passes kwargs only).
_ARG_ORDER = {
    "EDMPrecond": ("img_resolution", "img_channels", "label_dim", "use_fp16", "sigma_min", "sigma_max",
                   "sigma_data", "model_type"),
    "VPPrecond": ("img_resolution", "img_channels", "label_dim", "use_fp16", "beta_d", "beta_min", "M",
                  "epsilon_t", "model_type"),
    "VEPrecond": ("img_resolution", "img_channels", "label_dim", "use_fp16", "sigma_min", "sigma_max", "model_type"),
    "SongUNet": ("img_resolution", "in_channels", "out_channels", "label_dim", "augment_dim", "model_channels",
                 "channel_mult", "channel_mult_emb", "num_blocks", "attn_resolutions", "dropout", "label_dropout",
                 "embedding_type", "channel_mult_noise", "encoder_type", "decoder_type", "resample_filter"),
}
_LAYERS = (Linear, Conv2d, GroupNorm, PositionalEmbedding, FourierEmbedding, UNetBlock)  # same names as EDM's
# Bounds on the architecture a file may ask for, checked before anything is built (num_blocks=10**6 once hung the
# loader for minutes): each far above EDM's networks (edm.md 1g: 64x64, 3 channels, model_channels 128, ImageNet's
# ADM 192; channel_mult [1, 2, 2, 2]; 4 blocks; channel_mult_emb 4; augment_dim 9; 1000 ImageNet classes).
ARCH_BOUNDS = {"img_resolution": (1, 1024), "img_channels": (1, 16), "in_channels": (1, 16),
               "out_channels": (1, 16), "label_dim": (0, 100_000), "augment_dim": (0, 64),
               "model_channels": (1, 1024), "channel_mult_emb": (1, 16), "channel_mult_noise": (1, 16),
               "num_blocks": (1, 16)}
LIST_BOUNDS = {"channel_mult": (1, 8), "attn_resolutions": (0, 16), "resample_filter": (1, 16)}  # (min, max) length


class EDMCheckpointError(InputError, ValueError):
    """The file is not a readable EDM checkpoint, or its network is not one this kit rebuilds."""


@dataclasses.dataclass
class EDMPickle:
    """An EDM pickle's entries as data. ``network`` is the ``ema`` record; ``loss_fn`` / ``augment_pipe`` are
    records (``.summary()`` gives class name and settings) or None; ``other`` holds any further entries."""

    path: Path
    network: PersistentRecord
    loss_fn: PersistentRecord | None
    augment_pipe: PersistentRecord | None
    dataset_kwargs: dict[str, Any] | None
    other: dict[str, Any]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The network's weights under EDM's flat names ('model.enc.64x64_conv.weight', ...)."""
        return flat_state_dict(self.network)

    def init_kwargs(self, record: PersistentRecord | None = None) -> dict[str, Any]:
        """A record's constructor kwargs, positional ``_init_args`` named by EDM's signature order."""
        record = record or self.network
        kw = record.init_kwargs
        args = plain(list(record.init_args))
        order = _ARG_ORDER.get(record.class_name, ())
        if len(args) > len(order):
            raise EDMCheckpointError(f"{self.path}: {record.class_name} was built with {len(args)} positional "
                                     "arguments, more than its signature names; not a file this kit understands")
        kw.update(zip(order, args))
        return kw

    def meta(self) -> dict[str, Any]:
        """Everything but the weights, as plain data (JSON-able apart from inf): for fine-tuning and records."""
        def summary(r: PersistentRecord | None) -> dict[str, Any] | None:
            return None if r is None else r.summary()
        return dict(path=str(self.path), network_class=self.network.class_name, init_kwargs=self.init_kwargs(),
                    loss_fn=summary(self.loss_fn), augment_pipe=summary(self.augment_pipe),
                    dataset_kwargs=plain(self.dataset_kwargs), other_keys=sorted(self.other))


def _short(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an int of {value.bit_length()} bits"
    text = repr(value) if not isinstance(value, list | tuple) or len(value) <= 8 else f"{len(value)} values"
    return text if len(text) <= 80 else text[:77] + "..."


def check_architecture(kwargs: dict[str, Any], source: str | os.PathLike) -> None:
    """Refuse architecture values outside :data:`ARCH_BOUNDS` / :data:`LIST_BOUNDS` before a network is built."""
    def fail(key: str, value: Any, want: str) -> EDMCheckpointError:
        return EDMCheckpointError(f"{source}: {key}={_short(value)} is not {want}, the bound this kit puts on EDM "
                                  "architectures (far above EDM's own networks); the file is corrupt or not an EDM "
                                  "checkpoint: pass an official file or one written by save_edm_checkpoint")

    def whole(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    for key, (lo, hi) in ARCH_BOUNDS.items():
        if key in kwargs and not (whole(kwargs[key]) and lo <= kwargs[key] <= hi):
            raise fail(key, kwargs[key], f"an int in [{lo}, {hi}]")
    for key, (lo, hi) in LIST_BOUNDS.items():
        value = kwargs.get(key, [1])
        if not isinstance(value, list | tuple) or not lo <= len(value) <= hi:
            raise fail(key, value, f"a list of {lo} to {hi} values")
        if key == "resample_filter":
            if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value):
                raise fail(key, value, "a list of finite numbers")
        elif not all(whole(v) and 1 <= v <= ARCH_BOUNDS["img_resolution"][1] for v in value):
            raise fail(key, value, f"a list of ints in [1, {ARCH_BOUNDS['img_resolution'][1]}]")
    if any(v > 16 for v in kwargs.get("channel_mult", ())):
        raise fail("channel_mult", kwargs["channel_mult"], "a list of ints in [1, 16]")


def _is_torch_zip(path: Path) -> bool:
    """torch.load's own test: a zip's local header first. (``zipfile.is_zipfile`` looks for a directory near the
    end, and finds one in an EDM pickle whose last tensor storage happens to be a torch zip.)"""
    with open(path, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def _read_error(path: Path, why: str) -> EDMCheckpointError:
    return EDMCheckpointError(f"{path}: not a readable EDM checkpoint ({why}); the file may be truncated or "
                              "corrupt: delete it and download it again, or pass the path of a good copy")


def read_edm_pickle(path: str | os.PathLike) -> EDMPickle:
    """Read an official EDM pickle (or one from :func:`save_edm_checkpoint`) as data, executing nothing."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointMissingError(f"EDM checkpoint {path} does not exist; pass the path of an edm-*.pkl file, a "
                                f"registry name ({', '.join(n for n in assets.REGISTRY if n.endswith('.pkl'))}) "
                                "or its URL")
    if _is_torch_zip(path):
        raise _read_error(path, "it is a zip archive (a torch.save file?), while EDM checkpoints are plain pickles; "
                                "a state_dict export loads with load_edm_checkpoint when its .json is beside it")
    try:
        with open(path, "rb") as fh:
            data = restricted_load(fh, str(path))
    except InputError:  # a refused object (UnsafePickleError) or a bad nested storage: they name the file
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            OverflowError, RuntimeError, UnicodeDecodeError, MemoryError, struct.error) as err:
        raise _read_error(path, f"{type(err).__name__}: {str(err)[:300]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("ema"), PersistentRecord):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise EDMCheckpointError(f"{path}: an EDM checkpoint is a dict with an 'ema' network (and loss_fn, "
                                 f"augment_pipe, dataset_kwargs); this file holds {keys}")
    records = {k: data.get(k) for k in ("loss_fn", "augment_pipe")}
    for key, rec in records.items():
        if rec is not None and not isinstance(rec, PersistentRecord):
            raise EDMCheckpointError(f"{path}: entry {key!r} is a {type(rec).__name__}, expected an EDM object")
    other = {k: v for k, v in data.items() if k not in ("ema", "loss_fn", "augment_pipe", "dataset_kwargs")}
    dataset_kwargs = data.get("dataset_kwargs")
    if dataset_kwargs is not None and not isinstance(dataset_kwargs, dict):
        raise EDMCheckpointError(f"{path}: entry 'dataset_kwargs' is a {type(dataset_kwargs).__name__}, expected a "
                                 "dict (EasyDict)")
    return EDMPickle(path, data["ema"], records["loss_fn"], records["augment_pipe"],
                     None if dataset_kwargs is None else dict(dataset_kwargs), other)


def _module_kwargs(ckpt: EDMPickle) -> dict[str, Any] | None:
    """The SongUNet record's own init kwargs (what it was built with), if the file has one."""
    model = ckpt.network.modules.get("model")
    if model is None:
        return None
    if not isinstance(model, PersistentRecord) or model.class_name != "SongUNet":
        name = model.class_name if isinstance(model, PersistentRecord | TorchModuleRecord) else type(model).__name__
        raise EDMCheckpointError(f"{ckpt.path}: the network is {name!r}; this kit re-implements SongUNet "
                                 "(DDPM++ / NCSN++) only, not DhariwalUNet (ImageNet ADM)")
    return ckpt.init_kwargs(model)


def _as_lists(v: Any) -> Any:
    return [_as_lists(x) for x in v] if isinstance(v, list | tuple) else v


def denoiser_from_pickle(ckpt: EDMPickle) -> EDMDenoiser:
    """Rebuild our network from the file's class names and init kwargs, and load its weights (strict)."""
    name = ckpt.network.class_name
    if name not in PRECOND_CLASSES:
        raise EDMCheckpointError(f"{ckpt.path}: network class {name!r} is not supported; this kit rebuilds "
                                 f"{', '.join(PRECOND_CLASSES)} around SongUNet (not iDDPMPrecond / DhariwalUNet)")
    kwargs = ckpt.init_kwargs()
    for given in (kwargs, _module_kwargs(ckpt) or {}):  # the wrapper's builds the net; the UNet's is compared
        check_architecture(given, ckpt.path)
    try:
        net = build_denoiser(name, kwargs, meta=True)  # tensors come from the file (assign below)
    except (ValueError, TypeError) as err:
        raise EDMCheckpointError(f"{ckpt.path}: {err}") from err
    # The UNet's own record holds the kwargs it was given (defaults omitted): they must agree with the wrapper's.
    own, built = _module_kwargs(ckpt) or {}, net.model.init_kwargs
    diff = {k: (v, built.get(k)) for k, v in own.items() if _as_lists(v) != _as_lists(built.get(k))}
    if diff:
        raise EDMCheckpointError(f"{ckpt.path}: the SongUNet's stored kwargs disagree with its wrapper's "
                                 f"(stored vs rebuilt: {diff})")
    return assign_weights(net, ckpt.state_dict(), ckpt.path)


def assign_weights(net: EDMDenoiser, state: dict[str, torch.Tensor], source: str | os.PathLike) -> EDMDenoiser:
    """Load ``state`` into a freshly built ``net`` strictly (a mismatch lists missing / unexpected / mis-shaped keys);
    the file's tensors become the net's (no second copy), floats in float32, the dtype EDM's nets compute in."""
    want = net.state_dict()
    missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs net {tuple(want[k].shape)}"
              for k in sorted(set(want) & set(state)) if state[k].shape != want[k].shape]
    if missing or extra or shapes:
        raise EDMCheckpointError(f"{source}: weights do not fit the rebuilt {PRECOND_NAMES[net.kind]} + SongUNet "
                                 f"({len(missing)} missing, {len(extra)} unexpected, {len(shapes)} shape "
                                 f"mismatches; first: {(missing + extra + shapes)[:5]})")
    state = {k: v.detach().float() if v.is_floating_point() else v.detach() for k, v in state.items()}
    net.load_state_dict(state, strict=True, assign=True)
    return net.eval()


# ------------------------------------------------------------------ state_dict exports (edm_export.py writes them)
STATE_DICT_FORMAT = "specreg.edm-state-dict"  # the JSON's "format"; version 1
EDM_NETWORKS = "training.networks."  # network_kwargs["class_name"] is EDM's dotted name, for construct_class_by_name


def state_dict_export_json(path: str | os.PathLike) -> Path | None:
    """The JSON of a state_dict export given its ``.json`` or its ``.pt`` (JSON beside it); None for other files."""
    path = Path(path)
    if path.suffix == ".json":
        return path
    if _is_torch_zip(path) and path.with_suffix(".json").is_file():
        return path.with_suffix(".json")
    return None


def load_state_dict_export(path: str | os.PathLike) -> EDMDenoiser:
    """A state_dict export (``<stem>.json`` + ``<stem>.pt``) as our EDMDenoiser, with ``edm_meta`` like a pickle's.

    The JSON's ``network_kwargs`` are EDM's (``class_name`` "training.networks.EDMPrecond" etc.); the ``.pt`` holds
    tensors only and is read with ``torch.load(weights_only=True)``."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EDMCheckpointError(f"{path}: not a readable state_dict export JSON ({err}); pass the .json written "
                                 "with its .pt by `specreg export --format state_dict` or --export") from err
    if not isinstance(spec, dict) or spec.get("format") != STATE_DICT_FORMAT:
        raise EDMCheckpointError(f"{path}: a JSON without format={STATE_DICT_FORMAT!r} is not a state_dict export; "
                                 "pass an EDM pickle, or the .json written by --export / `specreg export`")
    kwargs = dict(spec.get("network_kwargs") or {})
    dotted = str(kwargs.pop("class_name", ""))
    if not dotted.startswith(EDM_NETWORKS):
        raise EDMCheckpointError(f"{path}: network_kwargs.class_name is {dotted!r}, expected "
                                 f"{EDM_NETWORKS}<{'|'.join(PRECOND_CLASSES)}>")
    name = dotted[len(EDM_NETWORKS):]
    weights = path.parent / str(spec.get("state_dict", ""))
    if not weights.is_file():
        raise CheckpointMissingError(f"{path}: its weights {weights} do not exist; keep the .pt beside its .json")
    check_architecture(kwargs, path)
    try:
        net = build_denoiser(name, kwargs, meta=True)
    except (ValueError, TypeError) as err:
        raise EDMCheckpointError(f"{path}: {err}") from err
    state = read_torch_file(weights, weights, refused="Export it again with `specreg export --format state_dict`",
                            corrupt="export it again with `specreg export --format state_dict`")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EDMCheckpointError(f"{weights}: expected a dict of tensors (a state_dict), got {type(state).__name__}")
    net = assign_weights(net, state, weights)
    net.edm_meta = dict(path=str(path), network_class=name, init_kwargs=kwargs, loss_fn=spec.get("loss_fn"),
                        augment_pipe=spec.get("augment_pipe"), dataset_kwargs=spec.get("dataset_kwargs"),
                        other_keys=[])
    return net


def resolve_checkpoint(path_or_url: str | os.PathLike, sha256: str | None = None, allow_download: bool = True,
                       local_path: str | os.PathLike | None = None) -> Path:
    """A local file for a path, a registry name (``assets.REGISTRY``) or a URL (registry URLs are cached as
    their asset; others through ``assets.fetch_url``); a local path that does not exist is an error."""
    src = os.fspath(path_or_url)
    name = Path(src.split("?")[0]).name
    if "://" in src:
        asset = assets.REGISTRY.get(name)
        if asset is not None and asset.url == src:
            return assets.fetch(name, local_path=local_path, allow_download=allow_download, sha256=sha256)
        return assets.fetch_url(src, sha256=sha256, allow_download=allow_download)
    if Path(src).expanduser().is_file():
        return Path(src).expanduser()
    if src in assets.REGISTRY:
        return assets.fetch(src, local_path=local_path, allow_download=allow_download, sha256=sha256)
    hint = (f" ({name} is a registry name: pass {name!r} to download it, or check the path)"
            if name in assets.REGISTRY else "")
    raise FileNotFoundError(f"EDM checkpoint {src!r} is neither an existing file, a registry name nor a URL{hint}; "
                            f"registry checkpoints: {', '.join(n for n in assets.REGISTRY if n.endswith('.pkl'))}")


def load_edm_checkpoint(path_or_url: str | os.PathLike, device: str | torch.device = "cpu",
                        sha256: str | None = None, allow_download: bool = True,
                        local_path: str | os.PathLike | None = None) -> EDMDenoiser:
    """The preconditioned denoiser of an EDM pickle: ``net(x, sigma, class_labels=None)`` -> D(x; sigma).

    ``path_or_url``: a local file, a registry name such as "edm-afhqv2-64x64-uncond-vp.pkl" (downloaded and
    SHA-256-checked by ``specreg_lib.assets``; ``local_path`` points at your own copy), or a URL; a state_dict
    export's ``.json`` or ``.pt`` (:func:`load_state_dict_export`) loads too. The file's
    other entries (loss_fn, augment_pipe, dataset_kwargs) are attached as ``net.edm_meta`` (plain data).
    Returned in eval mode on ``device``.
    """
    path = resolve_checkpoint(path_or_url, sha256, allow_download, local_path)
    exported = state_dict_export_json(path)
    if exported is not None:
        return load_state_dict_export(exported).to(device)
    ckpt = read_edm_pickle(path)
    net = denoiser_from_pickle(ckpt)
    net.edm_meta = ckpt.meta()
    return net.to(device)


def _persistent_spec(net: EDMDenoiser) -> Any:
    def spec(module: torch.nn.Module) -> tuple[str, dict[str, Any] | None] | None:
        if module is net:
            return PRECOND_NAMES[net.kind], denoiser_init_kwargs(net)
        if isinstance(module, SongUNet):
            return "SongUNet", module.init_kwargs
        if isinstance(module, _LAYERS):
            return type(module).__name__, None
        return None
    return spec


def save_edm_checkpoint(net: EDMDenoiser, path: str | os.PathLike, loss_fn: PersistentRecord | None = None,
                        augment_pipe: PersistentRecord | None = None,
                        dataset_kwargs: dict[str, Any] | None = None, **other: Any) -> Path:
    """Write ``net`` as an EDM pickle {'ema', 'loss_fn', 'augment_pipe', 'dataset_kwargs', **other}, atomically.

    Records read from an official file (``read_edm_pickle(...).loss_fn``) can be passed through unchanged;
    ``PersistentRecord.from_kwargs`` makes new ones. The network is stored as EDM's classes and state layout
    (weights on CPU, eval mode); module_src holds a note instead of EDM's source, so the file loads with
    :func:`load_edm_checkpoint` (EDM's own loader, which executes module_src, cannot rebuild it).
    """
    net = getattr(net, "module", net)  # DistributedDataParallel
    if not isinstance(net, EDMDenoiser):
        raise TypeError(f"save_edm_checkpoint writes an EDMDenoiser (e.g. from load_edm_checkpoint), got "
                        f"{type(net).__name__}")
    for key, rec in (("loss_fn", loss_fn), ("augment_pipe", augment_pipe)):
        if rec is not None and not isinstance(rec, PersistentRecord):
            raise TypeError(f"{key} must be a PersistentRecord (read_edm_pickle(...).{key} or "
                            f"PersistentRecord.from_kwargs(...)), got {type(rec).__name__}")
    data = dict(ema=net, loss_fn=loss_fn, augment_pipe=augment_pipe,
                dataset_kwargs=None if dataset_kwargs is None else dict(dataset_kwargs), **other)
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        EDMPickler(fh, _persistent_spec(net)).dump(data)
    return path
