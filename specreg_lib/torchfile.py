"""The one way the kit opens a torch file it did not just write: run-folder checkpoints, DiffWave checkpoints, VGGish
weights, and the storages nested in EDM pickles (docs/reliability.md, "Untrusted files").

:func:`read_torch_file` checks the zip before torch inflates anything (:func:`check_torch_zip`: only stored,
non-overlapping members whose declared sizes fit the file), then reads it with ``torch.load(weights_only=True)``,
so a file from elsewhere can never run code on load. Every failure becomes an
:class:`~specreg_lib.errors.InputError` that names the file: :class:`UnsafePickleError` for an object the loader
refuses (the global is named and nothing was run), :class:`CheckpointError` for a file that is truncated or not a
torch file, :class:`CheckpointMissingError` for none at all. Torch's own advice to retry with the unsafe loader
is never passed on (:func:`refusal_reason`).
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import re
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .errors import InputError


class CheckpointError(InputError, ValueError):
    """A torch file that cannot be read: truncated, not a torch file, or declaring more bytes than it holds."""


class CheckpointMissingError(InputError, FileNotFoundError):
    """A checkpoint path that does not exist."""


class UnsafePickleError(InputError, pickle.UnpicklingError, ValueError):
    """The file holds an object the loader refuses (a global outside the allow-list, a BUILD on a function, an
    object dtype, a nesting bomb); nothing it asked for was run. A ValueError too: like any bad file."""


# What a truncated or mangled torch file raises from inside torch.load (zip reader, legacy reader, weights-only
# unpickler); a pickle.UnpicklingError is the weights-only unpickler refusing an object, and is told apart.
_CORRUPT = (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError, AttributeError,
            AssertionError, OverflowError, MemoryError, struct.error, UnicodeDecodeError, zipfile.BadZipFile)
# Sentences of torch's weights-only message that advise turning the protection off (or allow-listing globals)
_TORCH_ADVICE = re.compile(r"weights.only|Re-running|trust|safe_globals|Check the documentation|file an issue|"
                           r"two options", re.IGNORECASE)


# torch's words for an object it refuses (a global, a class, a call), as opposed to bytes it cannot parse
_OBJECT = re.compile(r"GLOBAL|global|class|function|Can only|reduce", re.IGNORECASE)


def refusal_reason(err: BaseException) -> str:
    """Why torch's weights-only unpickler refused a file, without its advice to re-run the load with code
    execution allowed ("Re-running torch.load with weights_only set to False will likely succeed"): the one place
    that advice is taken out, so no message the kit passes on repeats it."""
    sentences = re.split(r"(?<=[.!?])\s+|\n+", str(err))
    keep = [s.strip() for s in sentences if s.strip() and not _TORCH_ADVICE.search(s) and s.strip() not in "()"]
    reason = " ".join(keep).replace("WeightsUnpickler error: ", "").strip()
    found = re.search(r"GLOBAL ([\w.]+)", reason)
    if found:
        return f"the global '{found.group(1)}' ({reason})"
    return reason or "an object outside the allow-list"


def check_torch_zip(file: str | os.PathLike | bytes, source: str | os.PathLike,
                    corrupt: str = "replace it with a good copy") -> None:
    """Bounded inflation: refuse a torch zip whose members could expand beyond the file, before torch reads it.

    ``torch.save`` stores every member uncompressed at its declared size, so a compressed member (a DEFLATE
    bomb: 2 MB that inflate to 2 GB), a member declaring more bytes than it occupies, or members declaring more
    bytes together than the file holds (overlapping entries) is not a file torch.save wrote. The legacy (non-zip)
    format needs no check: torch allocates each storage without touching it and fills it from the file.
    ``corrupt`` says what to do (e.g. "download it again")."""
    fh = io.BytesIO(file) if isinstance(file, bytes) else open(file, "rb")  # noqa: SIM115 - closed below
    with fh:
        if fh.read(4) != b"PK\x03\x04":  # torch.load's own test for a zip (anything else is the legacy format)
            return
        size = fh.seek(0, os.SEEK_END)
        try:
            with zipfile.ZipFile(fh) as zf:
                members = zf.infolist()
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, struct.error) as err:
            raise CheckpointError(f"cannot read {source}: it is truncated or not a torch file (its zip table of "
                                  f"contents: {err}); {corrupt}") from None
        total = 0
        for m in members:
            if m.compress_type != zipfile.ZIP_STORED or m.file_size != m.compress_size:
                raise CheckpointError(
                    f"{source}: member {m.filename!r} is stored compressed ({m.compress_size} bytes that expand to "
                    f"{m.file_size}); torch.save never compresses, so it did not write this file, which was not "
                    f"inflated (a size bomb?); {corrupt}")
            if m.header_offset + m.compress_size > size:
                raise CheckpointError(f"cannot read {source}: member {m.filename!r} ends past the end of the file, "
                                      f"which is truncated; {corrupt}")
            total += m.file_size
        if total > size:
            raise CheckpointError(f"{source}: its members declare {total} bytes in a {size}-byte file (they overlap), "
                                  f"which torch.save never writes; refusing to read it (a size bomb?); {corrupt}")


class _Capped:
    """A file whose reads stop at its end (pickletools would otherwise ask for whatever length a field declares)."""

    def __init__(self, fh: io.BufferedIOBase | io.BytesIO, end: int) -> None:
        self.fh, self.end = fh, end

    def read(self, n: int = -1) -> bytes:
        left = self.end - self.fh.tell()
        return self.fh.read(left if n < 0 else min(n, left))

    def readline(self) -> bytes:
        return self.fh.readline()


def planted_global(file: str | os.PathLike | bytes) -> str | None:
    """The first global outside torch and collections that the file's pickles name, found by reading their opcodes
    (``pickletools``, which runs nothing): what a plain pickle torch's reader stops at early is carrying."""
    src = io.BytesIO(file) if isinstance(file, bytes) else open(file, "rb")  # noqa: SIM115 - closed below
    with src:
        data = src.read(4)
        src.seek(0)
        if data == b"PK\x03\x04":  # members already checked: stored, within the file
            with zipfile.ZipFile(src) as zf:
                data = next((zf.read(n) for n in zf.namelist() if n.endswith("data.pkl")), b"")
        else:
            data = src.read(64 << 20)  # the opcodes come first; the legacy format's raw storages follow them
    fh = io.BytesIO(data)
    strings: list[str] = []
    for _ in range(5):  # the legacy format is several pickles in a row
        try:
            for op, arg, _pos in pickletools.genops(_Capped(fh, len(data))):
                if isinstance(arg, str):
                    strings = [*strings[-1:], arg]
                name = (arg.replace(" ", ".") if op.name in ("GLOBAL", "INST") else
                        ".".join(strings) if op.name == "STACK_GLOBAL" and len(strings) == 2 else None)
                if name and not name.startswith(("torch.", "collections.")):
                    return name
        except (ValueError, EOFError, struct.error, UnicodeDecodeError):
            return None
        if fh.tell() >= len(data):
            return None
    return None


def read_torch_file(file: str | os.PathLike | bytes, source: str | os.PathLike, *, refused: str, corrupt: str,
                    safe_globals: Sequence[Any] = (), map_location: str | torch.device = "cpu",
                    mmap: bool = False) -> Any:
    """``torch.load(file, weights_only=True)`` of an untrusted file (a path, or the bytes of one nested in another
    file), after :func:`check_torch_zip`. ``refused`` / ``corrupt`` say what to do when the file holds a refused
    object / cannot be read; ``safe_globals`` allow-lists classes without code of their own for this one load."""
    if not isinstance(file, bytes) and not Path(file).is_file():
        raise CheckpointMissingError(f"checkpoint {source} does not exist; check the path")
    check_torch_zip(file, source, corrupt)
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(io.BytesIO(file) if isinstance(file, bytes) else file, map_location=map_location,
                              weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        reason = refusal_reason(err)
        if not _OBJECT.search(reason):  # an opcode torch's reader does not take: a plain pickle, or garbage
            planted = planted_global(file)
            reason = f"the global '{planted}'" if planted else reason
        if not _OBJECT.search(reason):
            raise CheckpointError(f"cannot read {source}: it is truncated or not a torch file ({reason[:300]}); "
                                  f"{corrupt}") from None
        raise UnsafePickleError(f"refusing to load {source}: it holds {reason}, which the loader refuses (it "
                                "reads tensors and plain containers only, with torch.load(weights_only=True)); "
                                f"nothing in it was run. {refused}") from None
    except _CORRUPT as err:
        first = str(err).splitlines()[0] if str(err) else ""
        raise CheckpointError(f"cannot read {source}: it is truncated or not a torch file "
                              f"({type(err).__name__}: {first[:300]}); {corrupt}") from None
