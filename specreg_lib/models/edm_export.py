"""Our EDM networks written for other tools (docs/edm_models.md, "What loads where").

* ``fmt="edm"``: EDM's native ``network-snapshot`` pickle ``{'ema', 'loss_fn', 'augment_pipe', 'dataset_kwargs'}``,
  built with the classes of the user's own EDM checkout (``edm_repo``: its ``training.networks``,
  ``training.loss`` and ``training.augment`` are imported from that folder, EDM's network is constructed from our
  init kwargs, which are EDM's, and our weights are loaded into it strictly). It is the file EDM's training loop
  writes, so EDM's ``generate.py`` / ``fid.py`` / ``train.py --resume`` load it, and so does this kit's restricted
  reader. The kit ships none of EDM's code: the EDM source inside the file comes from the user's checkout.
* ``fmt="state_dict"`` (always possible): ``<stem>.pt``, a plain ``{name: tensor}`` dict written by ``torch.save``
  (``torch.load(..., weights_only=True)`` reads it), and ``<stem>.json`` with ``network_kwargs`` in EDM's
  ``construct_class_by_name`` form (``class_name`` "training.networks.EDMPrecond" and EDM's kwarg names), the
  loss / augment records and ``dataset_kwargs``. ``load_edm_checkpoint`` rebuilds it with our SongUNet; EDM's own
  classes rebuild it with ``dnnlib.util.construct_class_by_name(**network_kwargs)`` + ``load_state_dict``.

Every file is written atomically (``io.atomic_path``: a temp file renamed into place, the usual 0666 - umask mode).
"""

from __future__ import annotations

import importlib
import math
import os
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..io import atomic_path, write_json
from .edm_checkpoint import EDM_NETWORKS, STATE_DICT_FORMAT
from .edm_pickle import PersistentRecord, plain
from .edm_precond import PRECOND_NAMES, EDMDenoiser, denoiser_init_kwargs

FORMATS = ("edm", "state_dict")
SUFFIX = {"edm": ".pkl", "state_dict": ".pt"}
EDM_REPO_ENV = "SPECREG_EDM_REPO"  # the doors' default for --edm-repo
EDM_URL = "https://github.com/NVlabs/edm"
_EDM_PACKAGES = ("dnnlib", "torch_utils", "training")
# Init kwargs whose EDM default is not a JSON number: left out of the JSON when they hold it (EDMPrecond sigma_max).
_NONFINITE_DEFAULTS = {("EDMPrecond", "sigma_max"): math.inf}


class EDMExportError(InputError, ValueError):
    """An export cannot be written as asked (format, EDM checkout, or a network EDM's classes do not take)."""


def network_kwargs(net: EDMDenoiser) -> dict[str, Any]:
    """EDM's ``construct_class_by_name`` kwargs of ``net``: class_name "training.networks.<Precond>" + init kwargs."""
    name = PRECOND_NAMES[net.kind]
    kwargs: dict[str, Any] = {"class_name": EDM_NETWORKS + name}
    for key, value in denoiser_init_kwargs(net).items():
        if isinstance(value, float) and not math.isfinite(value):
            if _NONFINITE_DEFAULTS.get((name, key)) != value:
                raise EDMExportError(f"{name}.{key}={value} has no JSON spelling and is not EDM's default; "
                                     "export with --format edm instead")
            continue  # absent = EDM's default, which is this value
        kwargs[key] = list(value) if isinstance(value, tuple) else value
    return kwargs


def _summary(record: PersistentRecord | dict[str, Any] | None) -> dict[str, Any] | None:
    """A loss / augment record as plain data: class_name, init_args, init_kwargs, attributes (or None)."""
    if record is None or isinstance(record, dict):
        return None if record is None else plain(dict(record))
    if isinstance(record, PersistentRecord):
        return record.summary()
    raise TypeError(f"a loss_fn / augment_pipe record is a PersistentRecord or its .summary() dict, got "
                    f"{type(record).__name__}")


def _cpu_state(net: EDMDenoiser) -> dict[str, torch.Tensor]:
    # clone: each tensor owns its storage, so no view drags a larger base tensor into the file
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in net.state_dict().items()}


def write_state_dict_export(net: EDMDenoiser, path: str | os.PathLike,
                            loss_fn: PersistentRecord | dict[str, Any] | None = None,
                            augment_pipe: PersistentRecord | dict[str, Any] | None = None,
                            dataset_kwargs: dict[str, Any] | None = None) -> list[Path]:
    """``<stem>.pt`` (tensors only) + ``<stem>.json`` (EDM's network_kwargs, records, how to load); both atomic."""
    pt, spec = Path(path).with_suffix(".pt"), Path(path).with_suffix(".json")
    kwargs = network_kwargs(net)
    data = {
        "format": STATE_DICT_FORMAT, "version": 1, "state_dict": pt.name, "network_kwargs": kwargs,
        "loss_fn": _summary(loss_fn), "augment_pipe": _summary(augment_pipe),
        "dataset_kwargs": None if dataset_kwargs is None else plain(dict(dataset_kwargs)),
        "how_to_load": {
            "specreg": f"specreg_lib.models.load_edm_checkpoint({spec.name!r})",
            "edm": "from the root of an EDM checkout: spec = json.load(open(JSON)); net = dnnlib.util."
                   "construct_class_by_name(**spec['network_kwargs']); net.load_state_dict(torch.load(PT, "
                   "weights_only=True)); net.eval()",
            "edm_pickle": f"specreg export {spec.name} OUT.pkl --edm-repo PATH_TO_EDM",
        },
    }
    with atomic_path(pt) as tmp:
        torch.save(_cpu_state(net), tmp)
    return [pt, write_json(spec, data)]


def edm_checkout(repo: str | os.PathLike) -> types.SimpleNamespace:
    """EDM's ``training.networks`` / ``.loss`` / ``.augment`` and ``dnnlib`` imported from the user's checkout."""
    root = Path(repo).expanduser().resolve()
    need = [root / "training" / "networks.py", root / "torch_utils" / "persistence.py", root / "dnnlib" / "util.py"]
    if not all(p.is_file() for p in need):
        raise EDMExportError(f"--edm-repo {repo}: not an EDM checkout (it lacks training/networks.py, "
                             f"torch_utils/persistence.py or dnnlib/util.py); pass the folder of a clone of {EDM_URL}")
    for name in _EDM_PACKAGES:  # a process holds one EDM: the pickles name its modules by their top-level names
        mod = sys.modules.get(name)
        where = getattr(mod, "__file__", None) or ""
        if mod is not None and not Path(where).resolve().is_relative_to(root):
            raise EDMExportError(f"--edm-repo {repo}: this process already imported another '{name}' "
                                 f"({where or 'no file'}); pass that checkout, or export in a fresh process")
    sys.path.insert(0, str(root))
    try:
        mods = {n: importlib.import_module(f"training.{n}") for n in ("networks", "loss", "augment")}
        dnnlib = importlib.import_module("dnnlib")
    except Exception as err:  # EDM's modules need its requirements (e.g. a numpy or torch it supports)
        raise EDMExportError(f"--edm-repo {repo}: importing EDM's modules failed ({type(err).__name__}: {err}); "
                             "run with the Python environment your EDM checkout uses") from err
    finally:
        sys.path.remove(str(root))
    return types.SimpleNamespace(root=root, dnnlib=dnnlib, **mods)


def _edm_object(module: types.ModuleType, record: dict[str, Any] | None, key: str) -> Any:
    """EDM's loss / augment object of a record: its class in ``module`` built from init args / kwargs, with the
    record's scalar attributes set (they are what the source file's object held)."""
    if record is None:
        return None
    cls = getattr(module, str(record.get("class_name")), None)
    if not isinstance(cls, type):
        raise EDMExportError(f"{key}: EDM's {module.__name__} has no class {record.get('class_name')!r}")
    try:
        obj = cls(*record.get("init_args") or (), **record.get("init_kwargs") or {})
    except TypeError as err:
        raise EDMExportError(f"{key}: EDM's {cls.__name__} refuses the record's init kwargs ({err})") from err
    for k, v in (record.get("attributes") or {}).items():
        if k in vars(obj) and isinstance(v, bool | int | float | str):
            setattr(obj, k, v)
    return obj


def write_edm_pickle(net: EDMDenoiser, path: str | os.PathLike, edm_repo: str | os.PathLike,
                     loss_fn: PersistentRecord | dict[str, Any] | None = None,
                     augment_pipe: PersistentRecord | dict[str, Any] | None = None,
                     dataset_kwargs: dict[str, Any] | None = None) -> Path:
    """EDM's native network-snapshot pickle of ``net``, built with the classes of the EDM checkout ``edm_repo``."""
    edm = edm_checkout(edm_repo)
    kwargs = denoiser_init_kwargs(net)
    name = PRECOND_NAMES[net.kind]
    try:
        with torch.random.fork_rng(devices=[]):  # EDM's constructor draws an init we overwrite; keep the caller's RNG
            ema = getattr(edm.networks, name)(**kwargs)
        ema.load_state_dict(_cpu_state(net), strict=True)
    except (TypeError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0][:300]
        raise EDMExportError(f"EDM's {name} ({edm.root}) does not take this network's init kwargs or weights "
                             f"({type(err).__name__}: {first}); is the checkout EDM's, unmodified?") from err
    ema.eval().requires_grad_(False)
    data = dict(ema=ema, loss_fn=_edm_object(edm.loss, _summary(loss_fn), "loss_fn"),
                augment_pipe=_edm_object(edm.augment, _summary(augment_pipe), "augment_pipe"),
                dataset_kwargs=None if dataset_kwargs is None else plain(dict(dataset_kwargs)))
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        pickle.dump(data, fh)  # as EDM's training loop: its persistent classes store their module source
    return path


def check_export(fmt: str, edm_repo: str | os.PathLike | None) -> None:
    """Refuse an unknown format, or the native format without an EDM checkout, in one line."""
    if fmt not in FORMATS:
        raise EDMExportError(f"unknown export format {fmt!r}; choose edm (EDM's own pickle, needs --edm-repo) or "
                             "state_dict (.pt + .json, needs nothing)")
    if fmt == "edm" and not edm_repo:
        raise EDMExportError(f"the native EDM format is built with EDM's own classes: pass --edm-repo PATH (your "
                             f"clone of {EDM_URL}) or set {EDM_REPO_ENV}, or use --format state_dict")
    if fmt == "edm":
        edm_checkout(edm_repo)


def export_network(net: EDMDenoiser, path: str | os.PathLike, fmt: str = "edm",
                   edm_repo: str | os.PathLike | None = None, **records: Any) -> list[Path]:
    """Write ``net`` in ``fmt`` ("edm": ``path`` as EDM's pickle; "state_dict": ``path``'s stem .pt + .json).

    ``records``: loss_fn, augment_pipe (PersistentRecords or their summaries) and dataset_kwargs, e.g. from
    ``net.edm_meta`` or ``read_edm_pickle``. Returns the files written."""
    check_export(fmt, edm_repo)
    net = getattr(net, "module", net)  # DistributedDataParallel
    if not isinstance(net, EDMDenoiser):
        raise TypeError(f"export_network writes an EDMDenoiser (e.g. from load_edm_checkpoint), got "
                        f"{type(net).__name__}")
    if fmt == "state_dict":
        return write_state_dict_export(net, path, **records)
    return [write_edm_pickle(net, path, edm_repo, **records)]
