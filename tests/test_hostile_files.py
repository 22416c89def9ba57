"""Hostile torch and EDM files (issue 20, findings 1, 4, 7 and 8): pickles assembled opcode by opcode that forged a
numpy dtype into a SIGSEGV or rewrote an allow-listed function's defaults for every later load, size bombs (a
DEFLATE member, overlapping members, stride-0 views, shared-list "billion laughs"), architecture bombs, cycles and
deep nesting, truncated files and planted payloads. Each must give a typed InputError that names the file and says
what to do, with nothing run, nothing inflated and nothing left behind for the next load.

The two cases that crash or poison the interpreter when the loader is wrong run in a subprocess."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch

from specreg_lib.errors import InputError
from specreg_lib.models.diffwave import (
    DiffWaveCheckpointError,
    build_diffwave,
    load_diffwave,
    read_lmnt_checkpoint,
    save_lmnt_checkpoint,
    tiny_params,
)
from specreg_lib.models.edm_checkpoint import EDMCheckpointError, load_edm_checkpoint, read_edm_pickle
from specreg_lib.models.edm_unpickler import MAX_DEPTH, MAX_NODES, UnsafePickleError, restricted_load
from specreg_lib.models.tiny_edm import write_tiny_checkpoint
from specreg_lib.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TORCH_ADVICE = ("Re-running", "weights_only=" + "False", "weights_only` set to `False")  # split: see test_hardening


# ------------------------------------------------------------------ a pickle assembler, one opcode at a time
class Global(NamedTuple):
    module: str
    name: str


class Call(NamedTuple):  # REDUCE
    func: Any
    args: tuple


class Build(NamedTuple):  # BUILD: obj.__setstate__(state), or setattr for a (None, slots) state
    obj: Any
    state: Any


class Raw(NamedTuple):  # opcodes spliced in as they are (memo tricks)
    ops: bytes


def ops(obj: Any) -> bytes:
    """The opcodes that push ``obj`` (plain values, tuples, lists, dicts, and the nodes above)."""
    if isinstance(obj, Raw):
        return obj.ops
    if isinstance(obj, Global):
        return pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode()
    if isinstance(obj, Call):
        return ops(obj.func) + ops(tuple(obj.args)) + pickle.REDUCE
    if isinstance(obj, Build):
        return ops(obj.obj) + ops(obj.state) + pickle.BUILD
    if obj is None:
        return pickle.NONE
    if isinstance(obj, bool):
        return pickle.NEWTRUE if obj else pickle.NEWFALSE
    if isinstance(obj, int):
        if -2**31 <= obj < 2**31:
            return pickle.BININT + struct.pack("<i", obj)
        raw = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
        return pickle.LONG4 + struct.pack("<I", len(raw)) + raw
    if isinstance(obj, float):
        return pickle.BINFLOAT + struct.pack(">d", obj)
    if isinstance(obj, str):
        raw = obj.encode()
        return pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw
    if isinstance(obj, bytes):
        return pickle.BINBYTES + struct.pack("<I", len(obj)) + obj
    if isinstance(obj, tuple):
        return pickle.MARK + b"".join(map(ops, obj)) + pickle.TUPLE
    if isinstance(obj, list):
        return pickle.EMPTY_LIST + (pickle.MARK + b"".join(map(ops, obj)) + pickle.APPENDS if obj else b"")
    if isinstance(obj, dict):
        body = b"".join(ops(k) + ops(v) for k, v in obj.items())
        return pickle.EMPTY_DICT + (pickle.MARK + body + pickle.SETITEMS if obj else b"")
    raise TypeError(type(obj))


def dumps(obj: Any) -> bytes:
    return pickle.PROTO + b"\x03" + ops(obj) + pickle.STOP


def edm_file(state: dict, class_name: str = "EDMPrecond") -> bytes:
    """An EDM pickle {'ema': _reconstruct_persistent_obj(meta)} with the given record state."""
    meta = {"type": "class", "version": 6, "module_src": "", "class_name": class_name, "state": state}
    return dumps({"ema": Call(Global("torch_utils.persistence", "_reconstruct_persistent_obj"), (meta,))})


DTYPE = Global("numpy", "dtype")
SCALAR = Global("numpy._core.multiarray", "scalar")
REBUILD = Global("torch._utils", "_rebuild_tensor_v2")
FROM_BYTES = Global("torch.storage", "_load_from_bytes")


def storage_bytes(t: torch.Tensor) -> bytes:
    """The bytes torch pickles a tensor's storage as (``_load_from_bytes``' argument)."""
    _, args = t.__reduce_ex__(2)
    return args[0].__reduce__()[1][0]


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)


def assert_clear(err: BaseException, path: Path | str, *words: str) -> None:
    """A typed input error naming the file, saying what to do, without torch's advice to drop weights_only."""
    msg = str(err)
    assert isinstance(err, InputError), (type(err), msg)
    assert str(path) in msg, msg
    assert any(w in msg for w in ("download", "delete", "replace", "Use ", "use ", "pass ")), msg
    assert not any(a in msg for a in TORCH_ADVICE), msg
    for w in words:
        assert w in msg, (w, msg)


@pytest.fixture(scope="module")
def tiny_edm(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("edm") / "tiny.pkl", resolution=8, channels=8)


# ---------------------------------------------------------------------------------- finding 1: crash, poison
FORGED_DTYPES = {
    # the 531-byte file: a void dtype given fields with an object hidden behind flags=0, then a scalar
    # of it from 8 bytes that numpy reads as a pointer
    "object-field": Build(Call(DTYPE, ("V8", False, True)),
                          (3, "|", None, ("a",), {"a": (Call(DTYPE, ("O8", False, True)), 0)}, 8, 1, 0)),
    # the same forgery on a plain float dtype: BUILD may not give any dtype a state numpy would not write
    "float-fields": Build(Call(DTYPE, ("f8", False, True)),
                          (3, "<", None, ("a",), {"a": (Call(DTYPE, ("f8", False, True)), 0)}, 8, 1, 0)),
    "object": Call(DTYPE, ("O", False, True)),
    "structured": Call(DTYPE, ("f8,i8", False, True)),
}


def test_forged_numpy_dtypes_are_refused_not_a_segfault(tmp_path):
    paths = {}
    for name, dtype in FORGED_DTYPES.items():
        paths[name] = tmp_path / f"{name}.pkl"
        paths[name].write_bytes(edm_file({"_init_kwargs": {"x": Call(SCALAR, (dtype, b"\x41" * 8))}}))
    # the metadata read of --dry-run and fine-tuning, then the full load, in a fresh interpreter
    proc = run_python("""
        import json, sys
        from specreg_lib.models.edm_checkpoint import load_edm_checkpoint, read_edm_pickle
        out = {}
        for path in sys.argv[1:]:
            for name, load in (("meta", lambda p: read_edm_pickle(p).meta()), ("load", load_edm_checkpoint)):
                try:
                    load(path)
                    out[path + name] = ["loaded", ""]
                except Exception as err:
                    out[path + name] = [type(err).__name__, str(err)]
        print(json.dumps(out))
    """, *map(str, paths.values()))
    assert proc.returncode == 0, f"exit code {proc.returncode} (-11 is SIGSEGV): {proc.stderr[-2000:]}"
    out = json.loads(proc.stdout)
    for name, path in paths.items():
        for step in ("meta", "load"):
            kind, msg = out[str(path) + step]
            assert kind == "UnsafePickleError", (name, step, kind, msg)
            assert str(path) in msg and "nothing from the file was run" in msg and "dtype" in msg, msg


POISON = {
    # the 97 bytes: the next good checkpoint loaded with every tensor negated
    "rebuild-defaults": Build(REBUILD, (None, {"__defaults__": ({"neg": True},)})),
    "from-bytes-defaults": Build(FROM_BYTES, (None, {"__kwdefaults__": {"x": 1}})),
    "class-attribute": Build(Global("dnnlib.util", "EasyDict"), (None, {"__setstate__": None})),
    "container-class": Build(Global("torch.nn.modules.container", "ModuleDict"), (None, {"modules": None})),
}


def test_nothing_a_file_does_outlives_its_load(tmp_path, tiny_edm):
    paths = []
    for name, payload in POISON.items():
        paths.append(tmp_path / f"{name}.pkl")
        paths[-1].write_bytes(dumps(payload))
    proc = run_python("""
        import json, sys
        from specreg_lib.models.edm_checkpoint import load_edm_checkpoint
        good, hostile = sys.argv[1], sys.argv[2:]
        ref = load_edm_checkpoint(good).state_dict()  # a fresh process: the file's own weights
        out = {"errors": [], "changed": []}
        for path in hostile:
            try:
                load_edm_checkpoint(path)
                out["errors"].append([path, "loaded", ""])
            except Exception as err:
                out["errors"].append([path, type(err).__name__, str(err)])
            again = load_edm_checkpoint(good).state_dict()
            out["changed"].append(sum(not again[k].equal(v) for k, v in ref.items()))
        print(json.dumps(out))
    """, str(tiny_edm), *map(str, paths))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["changed"] == [0] * len(POISON), out  # every later load gives the file's own tensors
    for path, kind, msg in out["errors"]:
        assert kind == "UnsafePickleError" and path in msg and "nothing from the file was run" in msg, msg
    assert "BUILD" in out["errors"][0][2] and "torch._utils._rebuild_tensor_v2" in out["errors"][0][2]


# --------------------------------------------------------------------- every other unsafe operation, refused
def _nest(depth: int) -> Raw:
    return Raw(pickle.MARK * depth + pickle.EMPTY_LIST + pickle.LIST * depth)


def _laughs(levels: int) -> Raw:
    """l0 = [], l(i+1) = [li, li]: 2^levels lists from a few hundred bytes, through the memo."""
    raw = pickle.EMPTY_LIST + pickle.BINPUT + b"\x00" + pickle.POP
    for i in range(1, levels + 1):
        pair = (pickle.BINGET + bytes([i - 1])) * 2
        raw += pickle.MARK + pair + pickle.LIST + pickle.BINPUT + bytes([i]) + pickle.POP
    return Raw(raw + pickle.BINGET + bytes([levels]))


SELF_CONTAINING = Raw(pickle.EMPTY_DICT + pickle.BINPUT + b"\x00" + ops("self") + pickle.BINGET + b"\x00"
                      + pickle.SETITEM)
STORAGE = Call(FROM_BYTES, (storage_bytes(torch.arange(4.0)),))
UNSAFE = {
    "ndarray-call": (Call(Global("numpy", "ndarray"), ((10**6,),)), "numpy.ndarray"),
    "ndarray-huge": (Call(Global("numpy._core.multiarray", "_reconstruct"),
                          (Global("numpy", "ndarray"), (10**12,), b"b")), "_reconstruct"),
    "ndarray-state": (Build(Call(Global("numpy._core.multiarray", "_reconstruct"),
                                 (Global("numpy", "ndarray"), (0,), b"b")),
                            (1, (1000,), Call(DTYPE, ("f8", False, True)), False, b"\x00" * 8)), "array state"),
    "newobj-dtype": (Raw(ops(DTYPE) + ops(("O8",)) + pickle.NEWOBJ), "new object"),
    "set-of-a-string": (Call(Global("builtins", "set"), ("a" * 100,)), "set built from"),
    "append-to-a-function": (Raw(ops(REBUILD) + ops(1) + pickle.APPEND), "item added to"),
    "scalar-short": (Call(SCALAR, (Call(DTYPE, ("f8", False, True)), b"\x00" * 4)), "numpy scalar"),
    "stride-0-view": (Call(REBUILD, (STORAGE, 0, (10**9,), (0,), False, Call(Global("collections", "OrderedDict"),
                                                                                ()))), "overlap"),
    "self-containing": (SELF_CONTAINING, "contains itself"),
    "deep": (_nest(MAX_DEPTH * 50), f"more than {MAX_DEPTH} deep"),
    # 2^22 lists from 200 bytes: twice the cap, yet small enough that a loader without the cap survives expanding it
    "billion-laughs": (_laughs(MAX_NODES.bit_length()), "expands to more than"),
}


@pytest.mark.parametrize("name", sorted(UNSAFE))
def test_unsafe_operations_are_refused_with_a_clear_error(tmp_path, name):
    payload, words = UNSAFE[name]
    path = tmp_path / f"{name}.pkl"
    path.write_bytes(edm_file({"_init_kwargs": {"x": payload}}))
    with pytest.raises(UnsafePickleError) as info:
        read_edm_pickle(path).meta()  # what --dry-run reads
    assert_clear(info.value, path, words, "nothing from the file was run")


def test_record_state_of_the_wrong_kind_is_refused(tmp_path):
    path = tmp_path / "args.pkl"
    path.write_bytes(edm_file({"_init_args": "x" * 1000, "_init_kwargs": {}}))
    with pytest.raises(UnsafePickleError) as info:
        read_edm_pickle(path)
    assert_clear(info.value, path, "_init_args", "is a str")


def test_plain_numpy_values_and_tensor_views_still_load():
    """What numpy and torch themselves pickle stays readable: scalars of both byte orders, arrays, a transposed
    view (the checks above refuse forgeries, not these)."""
    data = {"arr": np.arange(6, dtype=">i4").reshape(2, 3), "f32": np.float32(2.5), "flag": np.bool_(True),
            "c64": np.complex64(1 + 2j), "big": np.array([1.5, -2.0], dtype=">f8"),
            "view": torch.arange(6.0).reshape(2, 3).t(), "ints": torch.arange(5)}
    for protocol in (3, 4):  # EDM's files: 4 (protocol 2 spells bytes as a _codecs call, refused)
        raw = pickle.dumps(data, protocol=protocol)
        got, want = restricted_load(io.BytesIO(raw)), pickle.loads(raw)  # the standard unpickler is the oracle
        for k, v in want.items():
            if isinstance(v, torch.Tensor):
                assert torch.equal(got[k], v) and got[k].stride() == v.stride(), k
            else:  # numpy itself reads a big-endian array back in native order
                assert type(got[k]) is type(v) and got[k].dtype == v.dtype and np.array_equal(got[k], v), k
                assert np.array_equal(got[k], data[k]), k


# ------------------------------------------------------------------------------------------ finding 4: bombs
BOMB_BYTES = 128 << 20  # what the bomb declares; the test process must not grow by anything near it


def deflate_bomb() -> bytes:
    """A torch.save zip of a 12345-float tensor, re-declared as BOMB_BYTES of zeros in a DEFLATE member (~130 KB)."""
    buf = io.BytesIO()
    torch.save(torch.zeros(12345), buf)
    n = BOMB_BYTES // 4
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                old = b"M" + struct.pack("<H", 12345)  # numel in the storage id and the size tuple
                assert data.count(old) == 2
                dst.writestr(info.filename, data.replace(old, b"J" + struct.pack("<i", n)))
            elif info.filename.endswith("data/0"):
                member = zipfile.ZipInfo(info.filename)
                member.compress_type = zipfile.ZIP_DEFLATED
                with dst.open(member, "w", force_zip64=True) as fh:  # 1 MiB at a time: never BOMB_BYTES here
                    chunk = bytes(1 << 20)
                    for _ in range(BOMB_BYTES >> 20):
                        fh.write(chunk)
            else:
                dst.writestr(info.filename, data)
    return out.getvalue()


def test_size_bombs_are_refused_before_they_inflate(tmp_path):
    bomb = deflate_bomb()
    assert len(bomb) < BOMB_BYTES / 100
    with zipfile.ZipFile(io.BytesIO(bomb)) as zf:  # the bomb is what it claims: BOMB_BYTES of zeros inside
        assert sum(i.file_size for i in zf.infolist()) > BOMB_BYTES
    (tmp_path / "checkpoint.pt").write_bytes(bomb)
    (tmp_path / "diffwave.pt").write_bytes(bomb)
    (tmp_path / "edm.pkl").write_bytes(edm_file({"_init_kwargs": {}, "_buffers": {"b": Call(
        REBUILD, (Call(FROM_BYTES, (bomb,)), 0, (1,), (1,), False, Call(Global("collections", "OrderedDict"), ())))}}))
    proc = run_python("""
        import json, resource, sys
        from specreg_lib.models.diffwave import read_lmnt_checkpoint
        from specreg_lib.models.edm_checkpoint import read_edm_pickle
        from specreg_lib.training.checkpoint import load_checkpoint
        out = []
        for load, path in ((load_checkpoint, sys.argv[1]), (read_lmnt_checkpoint, sys.argv[2]),
                           (read_edm_pickle, sys.argv[3])):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            try:
                load(path)
                kind, msg = "loaded", ""
            except Exception as err:
                kind, msg = type(err).__name__, str(err)
            grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
            out.append([path, kind, msg, grew])
        print(json.dumps(out))
    """, *(str(tmp_path / n) for n in ("checkpoint.pt", "diffwave.pt", "edm.pkl")))
    assert proc.returncode == 0, proc.stderr[-2000:]
    for path, kind, msg, grew in json.loads(proc.stdout):
        assert grew < BOMB_BYTES / 4, f"{path}: peak memory grew {grew / 2**20:.0f} MiB ({kind}: {msg})"
        assert kind == "CheckpointError" and path in msg and "compressed" in msg and "not inflated" in msg, msg


def test_overlapping_zip_members_are_refused(tmp_path):
    """Stored members that all point at the same bytes: each reads as 4 KiB, together more than the file."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data/0", bytes(4096))
        for i in range(1, 4):
            zf.writestr(f"archive/data/{i}", b"x")
    raw = bytearray(buf.getvalue())
    first = None
    at = raw.find(b"PK\x01\x02")  # central directory entries: crc @16, sizes @20/@24, header offset @42
    while at >= 0:
        name_len = struct.unpack_from("<H", raw, at + 28)[0]
        if first is None:
            first = raw[at + 16: at + 28], raw[at + 42: at + 46]
        else:
            raw[at + 16: at + 28], raw[at + 42: at + 46] = first
        at = raw.find(b"PK\x01\x02", at + 46 + name_len)
    path = tmp_path / "overlap.pt"
    path.write_bytes(bytes(raw))
    with zipfile.ZipFile(path) as zf:  # what the entries declare: 4 x 4 KiB in a file of about 4.5 KiB
        assert sum(i.file_size for i in zf.infolist()) == 4 * 4096 > path.stat().st_size
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert_clear(info.value, path, "overlap")


def test_edm_architecture_bomb_is_refused_before_building(tmp_path, monkeypatch):
    path = tmp_path / "blocks.pkl"  # num_blocks=10**6 once hung the loader for minutes building modules
    path.write_bytes(edm_file({"_init_args": (), "_init_kwargs": {
        "img_resolution": 8, "img_channels": 3, "label_dim": 0, "model_type": "SongUNet", "num_blocks": 10**6}}))

    def never(*args, **kwargs):
        raise AssertionError("a network was built from an out-of-bounds architecture")

    monkeypatch.setattr("specreg_lib.models.edm_checkpoint.build_denoiser", never)
    with pytest.raises(EDMCheckpointError) as info:
        load_edm_checkpoint(path)
    assert_clear(info.value, path, "num_blocks=1000000", "[1, 16]")


def test_diffwave_architecture_bombs_are_refused_before_building(tmp_path, monkeypatch):
    torch.manual_seed(0)
    good = save_lmnt_checkpoint(build_diffwave(tiny_params()), tmp_path / "tiny.pt")
    ck = torch.load(good, weights_only=True)  # our own file, written just above
    built = []
    import specreg_lib.models.diffwave as dw

    class Spy(dw.DiffWaveEps):
        def __init__(self, params):
            built.append(torch.get_default_device().type)
            if params["residual_layers"] > 128 or (built[-1] != "meta" and params["residual_channels"] > 64):
                raise AssertionError(f"built a DiffWave of {params['residual_layers']} layers on {built[-1]}")
            super().__init__(params)

    monkeypatch.setattr(dw, "DiffWaveEps", Spy)
    for params, words in (({"residual_layers": 10**6}, ["residual_layers", "[1, 128]"]),
                          ({"residual_layers": 100, "residual_channels": 1000}, ["weights do not fit"]),
                          ({"noise_schedule": [0.5] * 10**5}, ["noise_schedule"])):
        path = tmp_path / "bomb.pt"
        torch.save(dict(ck, params={**ck["params"], **params}), path)
        with pytest.raises(DiffWaveCheckpointError) as info:
            load_diffwave(path)
        assert_clear(info.value, path, *words)
    assert set(built) <= {"meta"}  # at most the shape check, on the meta device: no memory, no RNG draws
    with pytest.raises(ValueError, match=r"residual_layers must be an int in \[1, 128\]"):
        build_diffwave({"residual_layers": 10**6})
    model, info = load_diffwave(good)  # the real file still loads, with the file's weights
    assert built[-1] == "cpu" and all(torch.equal(model.state_dict()[k], v) for k, v in ck["model"].items())


# ----------------------------------------------------------------- finding 7 and 8: truncated and planted files
def _truncations(raw: bytes) -> list[int]:
    return sorted({0, 1, 2, 10, len(raw) // 4, len(raw) // 2, len(raw) - 100, len(raw) - 1})


def test_truncated_files_raise_typed_errors_naming_the_file(tmp_path, tiny_edm):
    torch.manual_seed(0)
    files = {
        "edm": (tiny_edm.read_bytes(), lambda p: read_edm_pickle(p).meta(), EDMCheckpointError),
        "run": (save_checkpoint(tmp_path / "ck.pt", {"step": 3, "model": {"w": torch.ones(300)}}).read_bytes(),
                load_checkpoint, CheckpointError),
        "diffwave": (save_lmnt_checkpoint(build_diffwave(tiny_params()), tmp_path / "dw.pt").read_bytes(),
                     read_lmnt_checkpoint, CheckpointError),
    }
    for kind, (raw, load, error) in files.items():
        for cut in _truncations(raw):
            path = tmp_path / f"{kind}-{cut}.cut"
            path.write_bytes(raw[:cut])
            with pytest.raises(error) as info:
                load(path)
            assert_clear(info.value, path, "truncated")


class _Planted:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_planted_payloads_name_the_global_and_say_it_was_not_run(tmp_path):
    marker = tmp_path / "ran"
    buf = io.BytesIO()
    torch.save({"model": {}, "x": _Planted(marker)}, buf)
    (tmp_path / "run.pt").write_bytes(buf.getvalue())
    (tmp_path / "dw.pt").write_bytes(buf.getvalue())
    (tmp_path / "edm.pkl").write_bytes(edm_file({"_buffers": {"b": Call(FROM_BYTES, (buf.getvalue(),))}}))
    # a plain pickle: torch's reader stops at its first frame, before the global; the opcodes still name it
    (tmp_path / "plain.pt").write_bytes(pickle.dumps({"step": 1, "x": _Planted(marker)}, protocol=4))
    for name, load in (("run.pt", load_checkpoint), ("dw.pt", load_diffwave), ("edm.pkl", load_edm_checkpoint),
                       ("plain.pt", load_checkpoint)):
        with pytest.raises(UnsafePickleError) as info:
            load(tmp_path / name)
        assert_clear(info.value, tmp_path / name, f"'{os.system.__module__}.system'", "nothing in it was run")
        assert "truncated" not in str(info.value) and "corrupt" not in str(info.value)
    assert not marker.exists()
