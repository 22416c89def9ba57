"""The ``specreg`` console script: one subcommand per module of the kit (reproduce, sweep, spectrum, generate, fid,
finetune, table1); each module provides ``add_arguments(parser)`` and ``run(args)``, and also runs on its own as
``python -m specreg_lib.kit.<module>`` (e.g. under torchrun) through :func:`standalone`. Training runs have one
door, ``sweep``; ``finetune`` is the same door named by ``--task``/``--preset``."""

from __future__ import annotations

import argparse
import sys
from types import ModuleType
from typing import Any


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a subcommand; each subcommand module provides ``add_arguments`` and ``run``."""
    from . import fid, finetune, generate, reproduce, spectrum, sweep, table1

    parser = argparse.ArgumentParser(prog="specreg", description="Spectral regularization for diffusion models")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module, help_ in [("reproduce", reproduce, "run every notebook with papermill (the main job)"),
                                ("sweep", sweep, "train a grid of an experiment's settings x seeds, resumably, "
                                                 "then evaluate (every experiment: see --list)"),
                                ("spectrum", spectrum, "compare radially averaged power spectra of two folders"),
                                ("generate", generate, "sample images from an EDM checkpoint, one PNG per seed"),
                                ("fid", fid, "FID of generated images against reference statistics (clean-fid)"),
                                ("finetune", finetune, "fine-tune a pretrained model with a spectral loss, then "
                                                       "evaluate: the sweep door, the experiment named by --task "
                                                       "[--preset]"),
                                ("table1", table1, "the paper's Table 1: fine-tune -> generate -> FID per cell, "
                                                   "resumable; --status shows what is left")]:
        sp = sub.add_parser(name, help=help_, **_texts(module))
        module.add_arguments(sp)
        sp.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    return args._run(args)


def _texts(module: ModuleType) -> dict[str, Any]:
    """A subcommand's --help texts: its module docstring's first line, then the rest as the epilog."""
    doc = (module.__doc__ or "").splitlines()
    return dict(description=doc[0] if doc else None, epilog="\n".join(doc[2:]) or None,
                formatter_class=argparse.RawDescriptionHelpFormatter)


def standalone(name: str, module: ModuleType, argv: list[str] | None = None) -> int:
    """Run one subcommand module on its own (``python -m specreg_lib.kit.<module>``) with the same --help."""
    parser = argparse.ArgumentParser(prog=f"specreg {name}", **_texts(module))
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
