"""The restricted reader of EDM's pickles: it builds :class:`~.edm_pickle.PersistentRecord` s and tensors from an
``edm-*.pkl`` and executes nothing from the file (docs/reliability.md, "Untrusted files").

Built on Python's pure-Python unpickler so that every opcode that calls or mutates something (REDUCE, NEWOBJ,
BUILD, APPEND(S), SETITEM(S), ADDITEMS) is checked: calls reach only an allow-list of inert constructors, BUILD
never reaches a function, class or module, numpy dtypes and scalars are plain numeric ones, tensor views may not
overlap, and the allow-list is built afresh for each load, so nothing one file does outlives its load. After
loading, :func:`check_structure` bounds nesting and size before anything walks the data. The records themselves
and the writer live in ``edm_pickle.py``.
"""

from __future__ import annotations

import importlib
import io
import math
import pickle
import warnings
from collections import OrderedDict
from typing import IO, Any

import numpy as np
import torch
from torch import nn

from ..torchfile import UnsafePickleError, read_torch_file
from .edm_pickle import PERSISTENCE, TORCH_CONTAINERS, EasyDictRecord, PersistentRecord, TorchModuleRecord

# What an EDM file may hold, as the checks below enforce it (no BUILD, REDUCE or NEWOBJ reaches anything else):
MAX_DEPTH = 100  # containers and records nested in each other; an official DDPM++ file nests about 20 deep
MAX_NODES = 2_000_000  # containers, records and leaves counted with repeats (what a walk over it visits); ~50k
PLAIN_DTYPE_KINDS = "biufc"  # numpy dtypes a file may name: bool, ints, floats, complex (no object, void, str)


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    """Stands in for EDM's reconstructor: returns the meta as a record, executing nothing."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise pickle.UnpicklingError(f"a torch_utils.persistence entry has unexpected meta "
                                     f"(type={meta.get('type') if isinstance(meta, dict) else type(meta)!r}); "
                                     "only persistent classes are supported")
    state, version = meta.get("state") or {}, meta.get("version", 0)
    if not isinstance(state, dict) or not isinstance(version, int):
        raise pickle.UnpicklingError(f"persistent object {meta['class_name']!r} has a non-dict state or a "
                                     "non-int version")
    return PersistentRecord(meta["class_name"], dict(state), str(meta.get("module_src") or ""), version)


def _no_hooks(hooks: Any) -> None:
    if hooks:
        raise pickle.UnpicklingError("a tensor in the pickle carries backward hooks (code); refusing it")


def _no_overlap(size: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    """No two elements of the view share storage (true of every saved weight): with dims sorted by stride, each
    stride steps past all the elements of the smaller ones. A stride-0 view of 4 bytes could claim 4 GB."""
    if 0 in size:
        return True
    span = 1
    for n, s in sorted(((n, s) for n, s in zip(size, stride, strict=True) if n > 1), key=lambda d: d[1]):
        if s < span:
            return False
        span += s * (n - 1)
    return True


def _plain_dtype(d: Any) -> bool:
    return (isinstance(d, np.dtype) and d.kind in PLAIN_DTYPE_KINDS and d.fields is None and d.subdtype is None
            and not d.hasobject and d.metadata is None)


def _numpy_multiarray() -> Any:
    try:
        return importlib.import_module("numpy._core.multiarray")  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        return importlib.import_module("numpy.core.multiarray")


class _BoundedFile:
    """The file as the unpickler reads it: a length field that points past the end is a truncated file, refused
    before anything of that length is allocated (BINBYTES8 or a frame may declare up to 2^64 bytes)."""

    def __init__(self, fh: IO[bytes], source: str) -> None:
        self.fh, self.source = fh, source
        here = fh.tell()
        self.end = fh.seek(0, io.SEEK_END)
        fh.seek(here)

    def read(self, n: int = -1) -> bytes:
        left = self.end - self.fh.tell()
        if n > left:
            raise pickle.UnpicklingError(f"a record declares {n} bytes where {left} remain: the file is truncated")
        return self.fh.read(n)

    def readline(self) -> bytes:
        return self.fh.readline()


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickler for EDM files: only the globals of its allow-list resolve, and pickle's operations are limited
    to inert data, so nothing a file does can run code, crash the process or outlive its load.

    * a global outside the allow-list is refused (:meth:`find_class`);
    * REDUCE / INST / OBJ call only the allow-list's readers, each of which checks its arguments (plain numeric
      numpy dtypes and scalars of the right byte length, dense tensor views, containers built from containers);
    * NEWOBJ makes only EDM's containers; BUILD sets the state of module records and EasyDicts, and of numpy
      dtypes and arrays only in the exact form numpy writes: never of a function, class or module (a BUILD on
      ``torch._utils._rebuild_tensor_v2`` once rewrote its defaults for every later load);
    * APPEND / SETITEM / ADDITEMS act on lists, dicts and sets only;
    * the readers are made afresh for every load (:meth:`_allowed`), and a length field past the end of the file
      is refused before it is allocated.

    The pure-Python unpickler is used because only its opcodes can be overridden one by one."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: IO[bytes], source: str = "<pickle>") -> None:
        super().__init__(_BoundedFile(file, source))
        self.source = source
        self.table = self._allowed()
        self.names = {id(v): f"{m}.{n}" for (m, n), v in self.table.items()}
        self.records = tuple(v for (m, _), v in self.table.items() if m == "torch.nn.modules.container")
        # id -> (the global, what calling it runs); a class is called through the containers' argument check
        self.calls = {id(v): (v, self._container(v) if isinstance(v, type) else v) for v in self.table.values()
                      if v is not np.ndarray and v not in self.records}
        self.newable = {id(v): v for v in (*self.records, EasyDictRecord)}

    # ------------------------------------------------------------------------------------ the allow-list
    def _allowed(self) -> dict[tuple[str, str], Any]:
        """(module, name) -> what the unpickler hands out for it: fresh readers bound to this load."""
        source, ma = self.source, _numpy_multiarray()

        def load_from_bytes(b: Any) -> Any:  # a storage saved by torch.save inside the pickle
            if not isinstance(b, bytes):
                raise self.refuse(f"torch.storage._load_from_bytes of a {type(b).__name__}")
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
                return read_torch_file(b, f"{source} (a tensor storage inside it)", refused=REFUSED,
                                       corrupt=CORRUPT)

        def rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
            _no_hooks(backward_hooks)
            if not isinstance(storage, torch.storage.TypedStorage):
                raise self.refuse(f"a tensor on a {type(storage).__name__} (only storages are read)")
            if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
                    and all(type(v) is int for v in (*size, *stride))):
                raise pickle.UnpicklingError(f"a tensor with size {size!r} and stride {stride!r}")
            if not _no_overlap(size, stride):
                raise self.refuse(f"a tensor view whose elements overlap (size {size}, stride {stride}): it "
                                  "would claim more elements than its storage holds")
            if metadata is not None and not (isinstance(metadata, dict) and set(metadata) <= {"neg", "conj"}
                                             and all(type(v) is bool for v in metadata.values())):
                raise self.refuse(f"tensor metadata {sorted(metadata) if isinstance(metadata, dict) else metadata!r}")
            return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
                                                   OrderedDict(), metadata)

        def rebuild_parameter(data, requires_grad, backward_hooks):
            _no_hooks(backward_hooks)
            if not isinstance(data, torch.Tensor):
                raise self.refuse(f"a parameter holding a {type(data).__name__}")
            return nn.Parameter(data, requires_grad)

        def rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
            if state:
                raise pickle.UnpicklingError("a parameter in the pickle carries extra Python state; refusing it")
            return rebuild_parameter(data, requires_grad, backward_hooks)

        def dtype(obj: Any, align: Any = False, copy: Any = False) -> np.dtype:
            d = np.dtype(obj, align=bool(align), copy=bool(copy)) if isinstance(obj, str) else None
            if not _plain_dtype(d):
                raise self.refuse(f"the numpy dtype {obj!r} (only plain bool, int, float and complex dtypes are "
                                  "read, no object, structured or void dtypes)")
            return d

        def scalar(d: Any, data: Any = None) -> np.generic:
            if not (_plain_dtype(d) and isinstance(data, bytes) and len(data) == d.itemsize):
                raise self.refuse(f"a numpy scalar of dtype {d!r} from {type(data).__name__} data (only plain "
                                  "numeric dtypes, from exactly their byte length)")
            return ma.scalar(d, data)

        def ndarray_reconstruct(subtype: Any, shape: Any, d: Any) -> np.ndarray:
            if subtype is not np.ndarray or shape != (0,) or d != b"b":  # numpy's own pickles, always
                raise self.refuse(f"numpy._reconstruct({getattr(subtype, '__name__', subtype)}, {shape!r}, {d!r})")
            return ma._reconstruct(np.ndarray, (0,), b"b")

        table: dict[tuple[str, str], Any] = {
            PERSISTENCE: _reconstruct_persistent_obj,
            ("dnnlib.util", "EasyDict"): EasyDictRecord,
            ("collections", "OrderedDict"): self._container(OrderedDict),
            ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor_v2,
            ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): rebuild_parameter_with_state,
            ("torch.storage", "_load_from_bytes"): load_from_bytes,
            ("numpy", "dtype"): dtype,
            ("numpy", "ndarray"): np.ndarray,  # only as _reconstruct's subtype argument
            ("builtins", "set"): self._container(set), ("builtins", "frozenset"): self._container(frozenset),
        }
        for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):  # 2022-era files and today's
            table[(mod, "scalar")] = scalar
            table[(mod, "_reconstruct")] = ndarray_reconstruct
        for name in TORCH_CONTAINERS:
            table[("torch.nn.modules.container", name)] = type(name, (TorchModuleRecord,),
                                                              {"class_name": f"torch.nn.{name}"})
        return table

    def _container(self, kind: type) -> Any:
        def make(*args: Any) -> Any:  # from nothing or from one container: never iterate a tensor or a string
            if len(args) > 1 or (args and not isinstance(args[0], list | tuple | dict | set | frozenset)):
                raise self.refuse(f"a {kind.__name__} built from {[type(a).__name__ for a in args]}")
            return kind(*args)
        return make

    def refuse(self, what: str) -> UnsafePickleError:
        return UnsafePickleError(f"{self.source}: the pickle holds {what}, which the EDM loader refuses; nothing "
                                 f"from the file was run. {REFUSED}")

    def _name(self, obj: Any) -> str:
        name = self.names.get(id(obj))
        return f"the global '{name}'" if name else f"a {type(obj).__module__}.{type(obj).__qualname__}"

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

    # ------------------------------------------------------------------------ the operations, restricted
    def _call(self, func: Any, args: Any) -> Any:
        entry = self.calls.get(id(func))
        if entry is None or entry[0] is not func:
            raise self.refuse(f"a call of {self._name(func)} (only the allow-list's readers are called)")
        if type(args) is not tuple:
            raise pickle.UnpicklingError(f"call arguments are a {type(args).__name__}, not a tuple")
        return entry[1](*args)

    def load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    dispatch[pickle.REDUCE[0]] = load_reduce

    def _instantiate(self, klass: Any, args: list) -> None:  # INST and OBJ (protocols 0 and 1)
        self.append(self._call(klass, tuple(args)))

    def _new(self, cls: Any, args: Any, kwargs: Any = None) -> None:
        if self.newable.get(id(cls)) is not cls:
            raise self.refuse(f"a new object of {self._name(cls)} (only EDM's containers are made)")
        if not (type(args) is tuple and not args and (kwargs is None or (type(kwargs) is dict and not kwargs))):
            raise self.refuse(f"arguments to {cls.__name__}.__new__")
        self.append(cls.__new__(cls))

    def load_newobj(self) -> None:
        args = self.stack.pop()
        self._new(self.stack.pop(), args)

    def load_newobj_ex(self) -> None:
        kwargs, args = self.stack.pop(), self.stack.pop()
        self._new(self.stack.pop(), args, kwargs)

    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) in self.records or type(inst) is EasyDictRecord:
            if not isinstance(state, dict):
                raise self.refuse(f"a {type(state).__name__} as the state of a {type(inst).__name__}")
            inst.__setstate__(state)
        elif isinstance(inst, np.dtype):  # BUILD never changes a dtype: only numpy's own state is accepted
            self._replace(inst, self._build_dtype(inst, state))
        elif type(inst) is np.ndarray:
            self._build_ndarray(inst, state)
        elif type(inst) is OrderedDict and not state:
            pass  # an OrderedDict's (empty) instance dict
        else:
            raise self.refuse(f"a BUILD (set state) on {self._name(inst)} (only EDM's module records, EasyDicts, "
                              "numpy dtypes and arrays get a state, never a function, class or module)")

    dispatch[pickle.BUILD[0]] = load_build

    def _build_dtype(self, d: np.dtype, state: Any) -> np.dtype:
        order = state[1] if isinstance(state, tuple) and len(state) > 1 else None
        new = d.newbyteorder(order) if order in ("<", ">") else d
        if state != new.__reduce__()[2]:  # e.g. fields with an object hidden behind flags=0
            raise self.refuse(f"a state for the numpy dtype {d} other than numpy's own ({state!r:.200})")
        return new

    def _replace(self, old: Any, new: Any) -> None:
        """A dtype whose byte order the file sets is a new dtype: swap it in on the stack and in the memo."""
        if new is not old:
            self.stack[-1] = new
            for k, v in self.memo.items():
                if v is old:
                    self.memo[k] = new

    def _build_ndarray(self, arr: np.ndarray, state: Any) -> None:
        ok = isinstance(state, tuple) and len(state) == 5 and state[0] == 1 and _plain_dtype(state[2])
        if ok:
            _, shape, d, fortran, raw = state
            ok = (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)
                  and type(fortran) is bool and isinstance(raw, bytes) and len(raw) == math.prod(shape) * d.itemsize)
        if not ok:
            raise self.refuse("a numpy array state other than (1, shape, plain dtype, fortran, its bytes)")
        arr.__setstate__(state)

    def _target(self, kind: type | tuple[type, ...]) -> Any:
        obj = self.stack[-1]
        if not isinstance(obj, kind):
            raise self.refuse(f"an item added to {self._name(obj)} (items go into lists, dicts and sets only)")
        return obj

    def load_append(self) -> None:
        value = self.stack.pop()
        self._target(list).append(value)

    def load_appends(self) -> None:
        items = self.pop_mark()
        self._target(list).extend(items)

    def load_setitem(self) -> None:
        value, key = self.stack.pop(), self.stack.pop()
        self._target(dict)[key] = value

    def load_setitems(self) -> None:
        items = self.pop_mark()
        d = self._target(dict)
        for i in range(0, len(items) - 1, 2):
            d[items[i]] = items[i + 1]

    def load_additems(self) -> None:
        items = self.pop_mark()
        self._target(set).update(items)

    dispatch[pickle.APPEND[0]] = load_append
    dispatch[pickle.APPENDS[0]] = load_appends
    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.ADDITEMS[0]] = load_additems


REFUSED = "Use the official file (download it again) or one written by save_edm_checkpoint"
CORRUPT = "the EDM file is truncated or corrupt: delete it and download it again, or pass the path of a good copy"
# What a module record's state holds under these keys: anything else is not an EDM file (and would be iterated)
_RECORD_STATE = {"_init_args": (list, tuple), "_init_kwargs": dict, "_modules": dict, "_parameters": dict,
                 "_buffers": dict, "_non_persistent_buffers_set": (set, frozenset, list, tuple)}


def _children(obj: Any) -> Any:
    if isinstance(obj, dict):
        return [x for kv in obj.items() for x in kv]
    if isinstance(obj, list | tuple | set | frozenset):
        return obj
    if isinstance(obj, PersistentRecord | TorchModuleRecord):
        return (obj.state,)
    return None


def _check_record(rec: PersistentRecord | TorchModuleRecord, where: str, source: str) -> None:
    state = rec.state
    for key, kinds in _RECORD_STATE.items():
        if key in state and not isinstance(state[key], kinds):
            raise UnsafePickleError(f"{source}: {where}.state[{key!r}] is a {type(state[key]).__name__}, which no "
                                    f"EDM file holds; refusing it (nothing from the file was run). {REFUSED}")
    for key, kinds in (("_parameters", torch.Tensor), ("_buffers", torch.Tensor),
                       ("_modules", (PersistentRecord, TorchModuleRecord))):
        bad = [k for k, v in (state.get(key) or {}).items() if v is not None and not isinstance(v, kinds)]
        if bad:
            raise UnsafePickleError(f"{source}: {where}.state[{key!r}][{bad[0]!r}] is a "
                                    f"{type(state[key][bad[0]]).__name__}; refusing the file. {REFUSED}")


def check_structure(root: Any, source: str) -> None:
    """Refuse what would make a later walk over the data (``plain``, ``flat_state_dict``, ``meta()``) recurse
    without end or blow up: a container that holds itself, nesting deeper than MAX_DEPTH, more than MAX_NODES
    nodes counted with repeats (a "billion laughs" of shared lists), and record states of the wrong kinds."""
    done: dict[int, tuple[int, int]] = {}  # id -> (nodes with repeats, height) of a finished node
    active: set[int] = set()

    def visit(obj: Any, where: str, depth: int) -> tuple[int, int]:
        children = _children(obj)
        if children is None:
            return 1, 0
        key = id(obj)
        if key in active:
            raise UnsafePickleError(f"{source}: {where} contains itself, which no EDM file does; refusing it "
                                    f"(nothing from the file was run). {REFUSED}")
        size, height = done.get(key) or (None, None)
        if size is None:
            if depth >= MAX_DEPTH:
                raise UnsafePickleError(f"{source}: {where} nests containers more than {MAX_DEPTH} deep (EDM's "
                                        f"files: about 20); refusing it (nothing from the file was run). {REFUSED}")
            if isinstance(obj, PersistentRecord | TorchModuleRecord):
                _check_record(obj, where, source)
            active.add(key)
            size, height = 1, 0
            for i, child in enumerate(children):
                label = f"{where}.state" if isinstance(obj, PersistentRecord | TorchModuleRecord) else f"{where}[{i}]"
                if isinstance(obj, dict) and i % 2:
                    label = f"{where}[{_short(children[i - 1])}]"
                s, h = visit(child, label, depth + 1)
                size, height = size + s, max(height, h + 1)
                if size > MAX_NODES:
                    raise UnsafePickleError(f"{source}: {where} expands to more than {MAX_NODES} items (shared "
                                            "containers repeated); refusing it as a bomb (nothing from the file "
                                            f"was run). {REFUSED}")
            active.discard(key)
            done[key] = size, height
        if depth + height > MAX_DEPTH:
            raise UnsafePickleError(f"{source}: {where} nests containers more than {MAX_DEPTH} deep (EDM's files: "
                                    f"about 20); refusing it (nothing from the file was run). {REFUSED}")
        return size, height

    visit(root, "the pickle", 0)


def _short(key: Any) -> str:
    return repr(key)[:40] if isinstance(key, str | int | float | bool | type(None)) else type(key).__name__


def restricted_load(file: IO[bytes], source: str = "<pickle>") -> Any:
    """Unpickle ``file`` with :class:`RestrictedUnpickler` (EDM checkpoint contents only) and check its structure."""
    data = RestrictedUnpickler(file, source).load()
    check_structure(data, source)
    return data
