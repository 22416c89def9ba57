"""EDM's pickle format as data: a restricted unpickler that executes nothing from the file, and a pickler that
writes our networks in the same format (edm.md 1f; docs/edm_models.md).

An official ``edm-*.pkl`` is a plain pickle of a dict whose EDM objects were written by
``torch_utils.persistence``: each is ``_reconstruct_persistent_obj(meta)`` with meta = {type: 'class',
version, module_src: the defining module's source, class_name, state: the object's __dict__}. EDM's own loader
``exec``s module_src; here the call becomes a :class:`PersistentRecord` (source kept as text, never run).
Tensors inside are ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` of storages stored through
``torch.storage._load_from_bytes`` (a nested ``torch.save``), which is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copyreg
import dataclasses
import importlib
import io
import pickle
import warnings
from collections import OrderedDict
from typing import IO, Any

import numpy as np
import torch
from torch import nn

from ..errors import InputError

PERSISTENCE = ("torch_utils.persistence", "_reconstruct_persistent_obj")
PERSISTENCE_VERSION = 6  # the meta version EDM's persistence writes (and checks on load)
TORCH_CONTAINERS = ("ModuleDict", "ModuleList", "Sequential")


class UnsafePickleError(InputError, pickle.UnpicklingError):
    """The pickle names a global outside the allow-list; nothing it asked for was run."""


@dataclasses.dataclass
class PersistentRecord:
    """One ``torch_utils.persistence`` object as data: its class name, init arguments and ``__dict__`` state.

    ``module_src`` is the source text EDM's loader would execute; it is kept only for inspection.
    """

    class_name: str
    state: dict[str, Any]
    module_src: str = ""
    version: int = PERSISTENCE_VERSION

    @property
    def init_args(self) -> tuple:
        return tuple(self.state.get("_init_args", ()))

    @property
    def init_kwargs(self) -> dict[str, Any]:
        return plain(dict(self.state.get("_init_kwargs", {})))

    @property
    def modules(self) -> dict[str, Any]:
        return dict(self.state.get("_modules", {}))

    def attributes(self) -> dict[str, Any]:
        """The object's public attributes (its settings), numpy scalars made Python numbers."""
        return plain({k: v for k, v in self.state.items() if not k.startswith("_") and k != "training"})

    def summary(self) -> dict[str, Any]:
        """class_name, init_args, init_kwargs and attributes: what a non-network entry (loss, augment) holds."""
        return dict(class_name=self.class_name, init_args=plain(list(self.init_args)),
                    init_kwargs=self.init_kwargs, attributes=self.attributes())

    @classmethod
    def from_kwargs(cls, class_name: str, init_kwargs: dict[str, Any], **attributes: Any) -> PersistentRecord:
        """A record for a non-module EDM object (e.g. ``EDMLoss`` with P_mean, P_std, sigma_data)."""
        state = dict(attributes)
        state.update(_init_args=(), _init_kwargs=dict(init_kwargs))
        return cls(class_name, state)


class TorchModuleRecord:
    """A torch container (e.g. ``nn.ModuleDict``) read as data: ``class_name`` and its ``__dict__`` ``state``."""

    class_name = "torch.nn.Module"

    def __init__(self) -> None:  # pragma: no cover - pickle builds these with __new__ + __setstate__
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.state = dict(state)

    @property
    def modules(self) -> dict[str, Any]:
        return dict(self.state.get("_modules", {}))


def plain(obj: Any) -> Any:
    """numpy scalars -> Python numbers, recursively through dicts, lists and tuples."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(plain(v) for v in obj)
    return obj


# ----------------------------------------------------------------------------------------------- reading
def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    """Stands in for EDM's reconstructor: returns the meta as a record, executing nothing."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise pickle.UnpicklingError(f"a torch_utils.persistence entry has unexpected meta "
                                     f"(type={meta.get('type') if isinstance(meta, dict) else type(meta)!r}); "
                                     "only persistent classes are supported")
    state = meta.get("state") or {}
    if not isinstance(state, dict):
        raise pickle.UnpicklingError(f"persistent object {meta['class_name']!r} has a non-dict state")
    return PersistentRecord(meta["class_name"], dict(state), str(meta.get("module_src") or ""),
                            int(meta.get("version", 0)))


def _load_from_bytes(b: bytes) -> Any:
    """A storage saved by ``torch.save`` (legacy or zip) inside the pickle; loaded with weights_only=True."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
        return torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)


def _no_hooks(hooks: Any) -> None:
    if hooks:
        raise pickle.UnpicklingError("a tensor in the pickle carries backward hooks (code); refusing it")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    _no_hooks(backward_hooks)
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
                                           OrderedDict(), metadata)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    _no_hooks(backward_hooks)
    return nn.Parameter(data, requires_grad)


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    if state:
        raise pickle.UnpicklingError("a parameter in the pickle carries extra Python state; refusing it")
    return _rebuild_parameter(data, requires_grad, backward_hooks)


class _EasyDict(dict):
    """``dnnlib.util.EasyDict`` read as a plain dict (pickle may BUILD it with an empty __dict__)."""

    def __setstate__(self, state: Any) -> None:
        if state:
            self.update(state)


def _numpy_multiarray() -> Any:
    try:
        return importlib.import_module("numpy._core.multiarray")  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        return importlib.import_module("numpy.core.multiarray")


def _ndarray_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"numpy array of subtype {subtype!r} refused; only numpy.ndarray is allowed")
    return _numpy_multiarray()._reconstruct(np.ndarray, shape, dtype)


def _allowed() -> dict[tuple[str, str], Any]:
    """(module, name) -> the object the restricted unpickler hands out for it."""
    ma = _numpy_multiarray()
    table: dict[tuple[str, str], Any] = {
        PERSISTENCE: _reconstruct_persistent_obj,
        ("dnnlib.util", "EasyDict"): _EasyDict,
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
        ("torch.storage", "_load_from_bytes"): _load_from_bytes,
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,  # only as _reconstruct's subtype argument
        ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):  # 2022-era files and today's
        table[(mod, "scalar")] = ma.scalar
        table[(mod, "_reconstruct")] = _ndarray_reconstruct
    for name in TORCH_CONTAINERS:
        table[("torch.nn.modules.container", name)] = type(name, (TorchModuleRecord,),
                                                          {"class_name": f"torch.nn.{name}"})
    return table


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for EDM files: only the globals of :func:`_allowed` resolve; anything else is refused."""

    def __init__(self, file: IO[bytes], source: str = "<pickle>") -> None:
        super().__init__(file)
        self.source, self.table = source, _allowed()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.table[(module, name)]
        except KeyError:
            allowed = ", ".join(sorted(f"{m}.{n}" for m, n in self.table))
            raise UnsafePickleError(
                f"{self.source}: the pickle asks for the global '{module}.{name}', which is not on the allow-list "
                f"of EDM checkpoint contents ({allowed}); refusing to load it (nothing from the file was run). "
                "If this is a genuine EDM file, report the name.") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"{self.source}: persistent id {pid!r} found: this is not a plain EDM pickle "
                                     "(torch.save files are loaded with torch.load(weights_only=True) instead)")


def restricted_load(file: IO[bytes], source: str = "<pickle>") -> Any:
    """Unpickle ``file`` with :class:`RestrictedUnpickler` (EDM checkpoint contents only)."""
    return RestrictedUnpickler(file, source).load()


def flat_state_dict(record: PersistentRecord | TorchModuleRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    """Walk _parameters / persistent _buffers / _modules of a module record: {'model.enc.64x64_conv.weight': ...}."""
    state, out = record.state, {}
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for name, p in (state.get("_parameters") or {}).items():
        if p is not None:
            out[prefix + name] = p
    for name, b in (state.get("_buffers") or {}).items():
        if b is not None and name not in skip:
            out[prefix + name] = b
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord | TorchModuleRecord):
            raise pickle.UnpicklingError(f"submodule {prefix + name!r} is a {type(child).__name__}, not a module")
        out.update(flat_state_dict(child, f"{prefix}{name}."))
    return out


# ----------------------------------------------------------------------------------------------- writing
class _GlobalName:
    """A marker pickled as the global ``module.name`` (without importing it): EDM's reconstructor's name."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any) -> Any:  # pickle wants reduce callables to be callable
        raise RuntimeError(f"{self.module}.{self.name} is a name written into pickles, not a function")


_RECONSTRUCT = _GlobalName(*PERSISTENCE)
_EASYDICT = _GlobalName("dnnlib.util", "EasyDict")
# The module_src of our records: no EDM source (its licence). EDM's loader executes module_src, so instead of a
# KeyError on the class name it meets this raise, which says how to convert the file for EDM's code.
MODULE_SRC_NOTE = ("# Written by specreg_lib.models.save_edm_checkpoint: specreg's re-implementation of EDM's "
                   "{name}.\n# No EDM source is stored (its licence); read the file with "
                   "specreg_lib.models.load_edm_checkpoint.\n"
                   "raise ImportError('this pickle was written by specreg without EDM source code, so EDM cannot "
                   "load it; convert it with your EDM checkout: specreg export FILE OUT.pkl --edm-repo PATH')\n")


def _saveable_tensor(t: torch.Tensor) -> torch.Tensor:
    """A CPU copy that owns exactly its own storage (so a view never drags its whole base into the file)."""
    t = t.detach().cpu()
    whole = t.storage_offset() == 0 and t.untyped_storage().nbytes() == t.numel() * t.element_size()
    return t if whole and t.is_contiguous() else t.contiguous().clone()


def module_meta(module: nn.Module, class_name: str, init_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The persistence meta of one of our modules: EDM's state layout (module dicts, init kwargs, settings)."""
    state: dict[str, Any] = {k: v for k, v in vars(module).items()
                             if not k.startswith("_") and isinstance(v, bool | int | float | str)}
    state.update(
        _parameters=OrderedDict((k, None if p is None else nn.Parameter(_saveable_tensor(p), requires_grad=False))
                                for k, p in module._parameters.items()),
        _buffers=OrderedDict((k, None if b is None else _saveable_tensor(b)) for k, b in module._buffers.items()),
        _non_persistent_buffers_set=set(module._non_persistent_buffers_set),
        _modules=OrderedDict(module._modules),
        training=False,
    )
    if init_kwargs is not None:
        state.update(_init_args=(), _init_kwargs=dict(init_kwargs))
    return dict(type="class", version=PERSISTENCE_VERSION, module_src=MODULE_SRC_NOTE.format(name=class_name),
                class_name=class_name, state=state)


class EDMPickler(pickle._Pickler):
    """Writes EDM's format: ``persistent(obj)`` -> (class_name, init_kwargs) marks objects to store as
    ``torch_utils.persistence`` records; torch containers pickle as torch does.

    The pure-Python pickler is used because only it lets a global be written by name (EDM's reconstructor
    lives in a package we neither ship nor import); C pickle would try to import it.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file: IO[bytes], persistent: Any, protocol: int = 4) -> None:
        super().__init__(file, protocol=protocol)
        self.persistent = persistent

    def _save_global_name(self, obj: _GlobalName) -> None:
        if self.proto >= 4:
            self.save(obj.module)
            self.save(obj.name)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[_GlobalName] = _save_global_name

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is _EasyDict:  # read from an EDM file: written back under its own name
            return _EASYDICT, (), None, None, iter(obj.items())
        if isinstance(obj, PersistentRecord):
            meta = dict(type="class", version=obj.version, class_name=obj.class_name, state=obj.state,
                        module_src=obj.module_src or MODULE_SRC_NOTE.format(name=obj.class_name))
            return _RECONSTRUCT, (meta,)
        if isinstance(obj, nn.Module):
            spec = self.persistent(obj)
            if spec is not None:
                return _RECONSTRUCT, (module_meta(obj, *spec),)
            if type(obj).__name__ in TORCH_CONTAINERS and type(obj).__module__ == "torch.nn.modules.container":
                return copyreg.__newobj__, (type(obj),), module_meta(obj, type(obj).__name__)["state"]
            raise pickle.PicklingError(f"cannot write module {type(obj).__name__} in EDM's format: only SongUNet "
                                       f"networks under EDMDenoiser (and torch containers) are supported")
        return NotImplemented
