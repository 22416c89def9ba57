"""The ``specreg`` console script: ``specreg reproduce``, ``specreg sweep EXPERIMENT`` and ``specreg spectrum A B``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a subcommand; each subcommand module provides ``add_arguments`` and ``run``."""
    from . import fid, finetune, generate, reproduce, spectrum, sweep, table1

    parser = argparse.ArgumentParser(prog="specreg", description="Spectral regularization for diffusion models")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module, help_ in [("reproduce", reproduce, "run every notebook with papermill (the main job)"),
                                ("sweep", sweep, "train a grid of an experiment's settings x seeds, resumably"),
                                ("spectrum", spectrum, "compare radially averaged power spectra of two folders"),
                                ("generate", generate, "sample images from an EDM checkpoint, one PNG per seed"),
                                ("fid", fid, "FID of generated images against reference statistics (clean-fid)"),
                                ("finetune", finetune, "fine-tune a pretrained model with a spectral loss "
                                                       "(--task audio: DiffWave, Table 2; --task edm: EDM, Tables 1 "
                                                       "and 3), then evaluate"),
                                ("table1", table1, "the paper's Table 1: fine-tune -> generate -> FID per cell, "
                                                   "resumable; --status shows what is left")]:
        sp = sub.add_parser(name, help=help_, description=module.__doc__.splitlines()[0],
                            epilog="\n".join(module.__doc__.splitlines()[2:]) or None,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sp)
        sp.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    return args._run(args)


if __name__ == "__main__":
    sys.exit(main())
