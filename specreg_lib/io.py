"""Files: where relative paths resolve (the repository root or $SPECREG_ROOT), and atomic output (nothing
half-written is ever left on disk: write to a temp file, then rename).

A write that fails on a full disk is reported as what it is: ``OSError(ENOSPC, ..., <the target file>)``, which
every door prints as "disk full while writing <file>". Writers do not all say so themselves (torch.save raises
"[enforce fail at inline_container.cc:...] unexpected pos 128 vs 0"), so when one fails, :func:`atomic_path`
looks at the free space of the target's folder before it removes the partial temp file."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import math
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[1]
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # the errno values that mean "no space left"
# Below this many free bytes (for an unprivileged writer) a failed write is put down to a full disk: the failing
# write itself fills the disk up to the last block or so before it fails.
FULL_BELOW = 1 << 20


def output_root() -> Path:
    """Where relative outputs go: ``$SPECREG_ROOT`` when set (e.g. to keep a test's or a scratch run's figures
    and run folders out of the checkout), else the repository root."""
    env = os.environ.get("SPECREG_ROOT")
    return Path(env).expanduser().resolve() if env else REPO_ROOT


def resolve_repo_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """An absolute path as given; a relative one joined to ``root`` (default: :func:`output_root`), never the cwd."""
    p = Path(path).expanduser()
    return (p if p.is_absolute() else Path(root or output_root()) / p).resolve()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_HOST = socket.gethostname().replace(".", "_")


def _tmp_prefix(name: str, pid: int) -> str:
    # The writer's host and pid are in the temp name, so a later writer can tell a dead writer's leftover
    # (same host, pid gone) from a live one's file (another process, or another host on a shared disk).
    return f".{name}.{_HOST}-{pid}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def clean_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete temp files that writers of ``path`` killed mid-write (kill -9, power loss) left beside it."""
    path = Path(path)
    removed = []
    head = f".{path.name}.{_HOST}-"
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.{_HOST}-*.tmp*"):
        pid = tmp.name[len(head):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def free_bytes(folder: str | os.PathLike) -> int | None:
    """Bytes an unprivileged writer may still write in ``folder``'s file system (None when it cannot be asked)."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs (Windows) or the folder is gone
        return None
    return st.f_bavail * st.f_frsize


def disk_full_error(err: BaseException, path: Path) -> OSError | None:
    """The ``OSError(ENOSPC, ..., path)`` a failed write of ``path`` amounts to, or None when the disk is not full.

    An ENOSPC/EDQUOT error is named after ``path`` (not the temp file); another writer's error (torch's
    RuntimeError, PIL's OSError) counts as a full disk when the target's folder has under FULL_BELOW bytes free."""
    if isinstance(err, OSError) and err.errno in DISK_FULL:
        code = err.errno
    elif isinstance(err, OSError | RuntimeError) and (free := free_bytes(path.parent)) is not None \
            and free < FULL_BELOW:
        code = errno.ENOSPC
    else:
        return None
    return OSError(code, os.strerror(code), str(path))


def _fsync(path: Path) -> None:
    """Flush a file (or folder entry) to disk, so a crash after the rename never leaves an empty file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems (e.g. certain network mounts) refuse fsync on folders
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync and rename it over ``path``, on error delete it.

    The file gets the permissions of an ordinary ``open`` (0666 minus the umask: group-readable with the usual
    022/002), and leftovers of writers killed earlier are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path.name, os.getpid()), suffix=".tmp" + path.suffix,
                                   dir=path.parent)
    except OSError as err:  # no inode left: name the file, not the temp
        full = disk_full_error(err, path)
        if full is None:
            raise
        raise full from err
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        if fsync:
            _fsync(tmp_path)
        os.replace(tmp_path, path)
        if fsync:
            _fsync(path.parent)  # make the rename itself durable
    except BaseException as err:
        full = disk_full_error(err, path) if isinstance(err, Exception) else None  # before the temp file goes
        tmp_path.unlink(missing_ok=True)
        if full is not None:
            raise full from err
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """``open`` for writing that only replaces ``path`` once the block finishes without error."""
    if not any(m in mode for m in "wx"):
        raise ValueError(f"atomic_open writes files; mode must contain 'w', got {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def _jsonable(obj: Any) -> Any:
    """Convert numpy/torch scalars and non-finite floats into strict-JSON values."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 0) == 0:
        obj = obj.item()
    if hasattr(obj, "tolist"):
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


class CorruptFileError(InputError, ValueError):
    """A file the kit wrote itself (a JSON record, say) that no longer reads: truncated, edited or overwritten."""


def read_json(path: str | os.PathLike, fix: str | None = None, expect: type = dict) -> Any:
    """``json.load`` of a file the kit wrote, holding an ``expect`` (a JSON object by default); one that does not
    parse, or holds something else, is a :class:`CorruptFileError` naming the file and ``fix`` (what to do;
    default: delete it, the kit writes it again)."""
    path = Path(path)
    fix = fix or f"delete {path}: it is written again when needed"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptFileError(f"{path}: not readable JSON ({err}; truncated or edited?); {fix}") from None
    if not isinstance(data, expect):
        raise CorruptFileError(f"{path}: holds a JSON {type(data).__name__}, not the {expect.__name__} the kit "
                               f"writes there (edited?); {fix}")
    return data


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented, strict JSON atomically (NaN/Inf become null)."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump(_jsonable(data), fh, indent=2, sort_keys=False, allow_nan=False)
        fh.write("\n")
    return Path(path)


def save_figure(fig: Any, stem: str | os.PathLike, formats: tuple[str, ...] = ("png", "pdf"),
                dpi: int = 150) -> list[Path]:
    """Save a matplotlib figure as ``stem.png`` and ``stem.pdf`` atomically; return the paths."""
    stem = Path(stem)
    out = []
    for ext in formats:
        target = stem.with_suffix("." + ext)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches="tight")
        out.append(target)
    return out
