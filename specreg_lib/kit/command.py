"""What a ``specreg`` subcommand is: a module (or object) with ``add_arguments(parser)`` and ``execute(args) -> exit
code``, its ``--help`` texts taken from its docstring. The kit's own subcommands also run on their own as
``python -m specreg_lib.kit.<module>`` (e.g. under torchrun) through :func:`standalone`."""

from __future__ import annotations

import argparse
from types import ModuleType
from typing import Any


def help_texts(module: ModuleType) -> dict[str, Any]:
    """A subcommand's --help texts: its module docstring's first line, then the rest as the epilog."""
    doc = (module.__doc__ or "").splitlines()
    return dict(description=doc[0] if doc else None, epilog="\n".join(doc[2:]) or None,
                formatter_class=argparse.RawDescriptionHelpFormatter)


def standalone(name: str, module: ModuleType, argv: list[str] | None = None) -> int:
    """Run one subcommand module on its own (``python -m specreg_lib.kit.<module>``) with the same --help."""
    parser = argparse.ArgumentParser(prog=f"specreg {name}", **help_texts(module))
    module.add_arguments(parser)
    return module.execute(parser.parse_args(argv))
