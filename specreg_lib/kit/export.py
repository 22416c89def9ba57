"""``specreg export``: write an EDM network as EDM's own pickle (for EDM's tools) or as a state_dict + JSON.

SRC is anything load_edm_checkpoint reads: an official edm-*.pkl (path, registry name or URL), a pickle this kit
wrote (save_edm_checkpoint, the tiny smoke checkpoints), or a state_dict export (its .json or .pt, e.g. what
`specreg sweep EXPERIMENT --export` leaves in a run folder). SRC is read as data (nothing in it is run); its
loss_fn / augment_pipe records and dataset_kwargs are carried over.

What loads where:
  --format edm (default)  OUT: EDM's network-snapshot pickle {ema, loss_fn, augment_pipe, dataset_kwargs}, built
                          with the classes of YOUR EDM checkout (--edm-repo PATH, default $SPECREG_EDM_REPO; this
                          kit ships none of EDM's code). Loads in EDM's generate.py, fid.py and train.py --resume
                          (pickle.load with the checkout importable) and in this kit (load_edm_checkpoint).
  --format state_dict     OUT's stem + .pt (a dict of tensors: torch.load(PT, weights_only=True)) and + .json
                          (network_kwargs in EDM's names, the records, how to load). Needs no EDM checkout. Loads in
                          this kit (load_edm_checkpoint(JSON or PT)), in EDM's own classes
                          (dnnlib.util.construct_class_by_name(**network_kwargs), then load_state_dict), and in any
                          tool that reads a PyTorch state_dict.
  The kit's own save_edm_checkpoint pickles hold no EDM source: only this kit loads them (EDM's loader stops with
  a message naming this command).
A missing or bad SRC, an unusable --edm-repo or OUT folder, or a full disk ends the command with one line on stderr
and exit code 2; --format, --edm-repo and OUT's folder are checked before SRC is read.

Examples:

    specreg export checkpoints/EXPERIMENT/RUN/network-snapshot-0000500.json finetuned.pkl --edm-repo ~/edm
    cd ~/edm && python generate.py --network ~/specreg/finetuned.pkl --outdir out --seeds 0-63
    specreg export edm-afhqv2-64x64-uncond-vp.pkl afhq-vp.pt --format state_dict
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..assets import AssetMissingError
from ..models import load_edm_checkpoint
from ..models.edm_export import EDM_REPO_ENV, FORMATS, check_export, export_network
from .command import standalone
from .paths import make_output_folder


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``export`` options."""
    p.add_argument("src", metavar="SRC", help="an EDM pickle (path, registry name or URL) or a state_dict export "
                                              "(.json / .pt)")
    p.add_argument("out", metavar="OUT", help="the file to write (edm: OUT itself, e.g. net.pkl; state_dict: OUT's "
                                              "stem + .pt and + .json)")
    p.add_argument("--format", default="edm", choices=FORMATS,
                   help="edm = EDM's own pickle (needs --edm-repo); state_dict = .pt + .json (needs nothing) "
                        "(default: %(default)s)")
    p.add_argument("--edm-repo", default=os.environ.get(EDM_REPO_ENV) or None, metavar="PATH",
                   help=f"your EDM checkout (a clone of github.com/NVlabs/edm), whose classes build the edm format "
                        f"(default: ${EDM_REPO_ENV}, now {os.environ.get(EDM_REPO_ENV) or 'unset'})")
    p.add_argument("--offline", action="store_true", help="never download SRC (a missing file is an error)")
    return p


def execute(args: argparse.Namespace) -> int:
    """Entry point of ``specreg export`` and ``python -m specreg_lib.kit.export``; the exit code (a bad input:
    an InputError, which ``kit/command.py`` prints as one line, exit 2)."""
    check_export(args.format, args.edm_repo)  # before reading SRC: a 60M-parameter file takes a while
    make_output_folder(Path(args.out).expanduser().parent, f"OUT {args.out}:")
    try:
        net = load_edm_checkpoint(args.src, allow_download=not args.offline)
    except FileNotFoundError as err:  # AssetMissingError included: name the argument
        raise AssetMissingError(f"SRC {args.src}: {str(err).rstrip('. ')}. Pass an existing EDM pickle, a "
                                "registry name, a URL or a state_dict export (.json / .pt).") from err
    meta = getattr(net, "edm_meta", {})
    files = export_network(net, args.out, args.format, args.edm_repo, loss_fn=meta.get("loss_fn"),
                           augment_pipe=meta.get("augment_pipe"), dataset_kwargs=meta.get("dataset_kwargs"))
    for path in files:
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m specreg_lib.kit.export``."""
    return standalone("export", sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
