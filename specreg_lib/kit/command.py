"""What a ``specreg`` subcommand is: a module (or object) with ``add_arguments(parser)`` and ``execute(args) -> exit
code``, its ``--help`` texts taken from its docstring. The kit's own subcommands also run on their own as
``python -m specreg_lib.kit.<module>`` (e.g. under torchrun) through :func:`standalone`. Every door runs through
:func:`run`: a file the library cannot find (a checkpoint, dataset, Inception or reference file) ends the command
with one line on stderr and exit code 2, never a traceback; so does every other :class:`~specreg_lib.errors.InputError`
(a bad file, option or config value) and a full disk."""

from __future__ import annotations

import argparse
import sys
from types import ModuleType
from typing import Any

from ..errors import InputError
from ..io import DISK_FULL  # the one OSError a door reports as a line (with the file), not as a bug


def help_texts(module: ModuleType) -> dict[str, Any]:
    """A subcommand's --help texts: its module docstring's first paragraph, then the rest as the epilog."""
    doc = (module.__doc__ or "").strip("\n").splitlines()
    cut = next((i for i, line in enumerate(doc) if not line.strip()), len(doc))
    return dict(description="\n".join(doc[:cut]) or None, epilog="\n".join(doc[cut + 1:]) or None,
                formatter_class=argparse.RawDescriptionHelpFormatter)


def device_line(setting: str, device: Any) -> str:
    """``device: cuda:0 (--device auto)``: the line every door prints, with a note when a GPU sits unused."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return f"device: {device} ({setting}; {torch.cuda.get_device_name(device)})"
    unused = "; a CUDA GPU is present and unused (auto or cuda uses it)" if torch.cuda.is_available() else ""
    return f"device: {device} ({setting}){unused}"


def run(name: str, module: Any, args: argparse.Namespace) -> int:
    """``module.execute(args)``; an :class:`InputError` or a full disk -> one line on stderr and exit code 2."""
    try:
        return module.execute(args)
    except InputError as err:
        message = str(err)
    except OSError as err:
        if err.errno not in DISK_FULL:
            raise
        message = (f"disk full while writing {err.filename or 'an output file'} ({err.strerror}); free some space "
                   "or write elsewhere (--out, or SPECREG_ROOT for relative outputs); nothing half-written was kept")
    print(f"specreg {name}: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def standalone(name: str, module: ModuleType, argv: list[str] | None = None) -> int:
    """Run one subcommand module on its own (``python -m specreg_lib.kit.<module>``) with the same --help."""
    parser = argparse.ArgumentParser(prog=f"specreg {name}", **help_texts(module))
    module.add_arguments(parser)
    return run(name, module, parser.parse_args(argv))
