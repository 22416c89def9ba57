"""The ``specreg`` command: the kit's own subcommands (reproduce, sweep, finetune, spectrum, generate, fid, export)
plus the doors the experiments declare (``specreg_lib.experiments.COMMANDS``, e.g. ``table1``). Each is a module
with ``add_arguments(parser)`` and ``execute(args)`` (``command.py``). Training runs have one door, ``sweep``;
``finetune`` is the same door named by ``--task``/``--preset``. Under torchrun: ``-m specreg_lib.kit.cli <command>``
or ``-m specreg_lib.kit.<module>`` for the kit's own."""

from __future__ import annotations

import argparse
import sys

from ..experiments import COMMANDS
from . import export, fid, finetune, generate, reproduce, spectrum, sweep
from .command import help_texts, run

KIT_COMMANDS = {
    "reproduce": (reproduce, "run every notebook with papermill (the main job)"),
    "sweep": (sweep, "train a grid of an experiment's settings x seeds, resumably, then evaluate (every "
                     "experiment: see --list)"),
    "finetune": (finetune, "fine-tune a pretrained model with a spectral loss, then evaluate: the sweep door, the "
                           "experiment named by --task [--preset]"),
    "spectrum": (spectrum, "compare radially averaged power spectra of two folders"),
    "generate": (generate, "sample images from an EDM checkpoint, one PNG per seed"),
    "fid": (fid, "FID of generated images against reference statistics (clean-fid)"),
    "export": (export, "write an EDM network as EDM's own pickle (--edm-repo) or as a state_dict + JSON"),
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a subcommand: the kit's own, then the experiments' declared ones."""
    parser = argparse.ArgumentParser(prog="specreg", description="Spectral regularization for diffusion models")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_) in {**KIT_COMMANDS, **COMMANDS}.items():
        sp = sub.add_parser(name, help=help_, **help_texts(module))
        module.add_arguments(sp)
        sp.set_defaults(_door=(name, module))
    args = parser.parse_args(argv)
    return run(*args._door, args)


if __name__ == "__main__":
    sys.exit(main())
