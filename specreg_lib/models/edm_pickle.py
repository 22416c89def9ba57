"""EDM's pickle format as data: the records a file holds, and a pickler that writes our networks in the same format
(edm.md 1f; docs/edm_models.md). The restricted reader that executes nothing from the file is ``edm_unpickler.py``.

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
import pickle
from collections import OrderedDict
from typing import IO, Any

import numpy as np
import torch
from torch import nn

PERSISTENCE = ("torch_utils.persistence", "_reconstruct_persistent_obj")
PERSISTENCE_VERSION = 6  # the meta version EDM's persistence writes (and checks on load)
TORCH_CONTAINERS = ("ModuleDict", "ModuleList", "Sequential")


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


class EasyDictRecord(dict):
    """``dnnlib.util.EasyDict`` read as a plain dict (pickle may BUILD it with an empty __dict__)."""

    def __setstate__(self, state: Any) -> None:
        if state:
            self.update(state)


def plain(obj: Any) -> Any:
    """numpy scalars -> Python numbers, recursively through dicts, lists and tuples."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(plain(v) for v in obj)
    return obj


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
        if type(obj) is EasyDictRecord:  # read from an EDM file: written back under its own name
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
