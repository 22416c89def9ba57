"""``specreg generate``: sample images from an EDM checkpoint into a folder, one PNG per seed (resumable).

Examples:

    specreg generate --network edm-afhqv2-64x64-uncond-vp.pkl --outdir out/afhq-vp --seeds 0-149999 \\
        --device cuda --batch 256
    specreg generate --network edm-cifar10-32x32-cond-vp.pkl --outdir out/cifar --seeds 0-63 --class 3 \\
        --grid out/cifar-class3.png
    torchrun --nproc_per_node 8 -m specreg_lib.kit.generate --network ffhq.pkl --outdir out/ffhq --seeds 0-49999 \\
        --device cuda --bf16 --channels-last

Images go to OUTDIR/{seed - seed % 1000:06d}/{seed:06d}.png, each from its own seed (the same image whatever
--batch or the number of torchrun ranks); images already there are skipped, so a killed run resumes.
The sampler is EDM's deterministic Heun sampler with the paper's steps (18 at 32x32, 40 at 64x64) unless
--steps says otherwise; OUTDIR/generation.json records the settings. Every option is checked before the checkpoint
loads (a NaN or infinite sampler setting would give NaN images), a checkpoint with non-finite weights is refused,
and a batch the sampler returns NaN/inf for is never written (uint8 would turn it black): each ends the command
with one line naming the option, checkpoint or seeds, exit code 2.
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
from pathlib import Path
from typing import Any

import torch

from ..assets import AssetMissingError
from ..data.seed_images import read_seed_images, save_grid
from ..diffusion.edm import sampler_sigmas
from ..diffusion.generate import (
    PAPER_STEPS,
    SOLVERS,
    SamplerSettings,
    SamplerSettingsError,
    generate_to_folder,
    net_geometry,
)
from ..errors import InputError
from ..io import write_json
from ..text import OptionError, parse_seeds
from ..training import distributed as D
from .command import device_line, standalone
from .paths import make_output_folder

# SamplerSettings field -> its option, where the option is not the field's name with - for _ (--sigma-min, --S-churn)
OPTIONS = {"num_steps": "--steps"}


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``generate`` options."""
    p.add_argument("--network", required=True, metavar="PKL",
                   help="EDM checkpoint: a path, a registry name (e.g. edm-afhqv2-64x64-uncond-vp.pkl, downloaded "
                        "into the cache) or a URL; read without executing it (load_edm_checkpoint)")
    p.add_argument("--sha256", default=None, help="pin the checkpoint's SHA-256 (64 hex digits); EDM publishes none, "
                                                  "so the first download records one and later uses check it")
    p.add_argument("--offline", action="store_true", help="never download (a missing checkpoint is an error)")
    p.add_argument("--outdir", required=True, help="folder for the PNGs (created; existing images are kept)")
    p.add_argument("--seeds", default="0-63", help="seeds, e.g. 0-49999 or 0,5,10-12: one image each "
                                                   "(default: %(default)s)")
    p.add_argument("--class", dest="class_idx", type=int, default=None, metavar="IDX",
                   help="class index for a conditional net (default: a random class per seed)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps N (default: the paper's, 18 at 32x32 "
                                                           "and 40 at 64x64; Heun uses 2N-1 evaluations)")
    p.add_argument("--solver", default="heun", choices=SOLVERS, help="ODE solver (default: %(default)s)")
    p.add_argument("--sigma-min", type=float, default=0.002,
                   help="lowest noise level, raised to the net's own minimum (default: %(default)s)")
    p.add_argument("--sigma-max", type=float, default=80.0,
                   help="highest noise level, lowered to the net's own maximum (default: %(default)s)")
    p.add_argument("--rho", type=float, default=7.0, help="time-step exponent (default: %(default)s)")
    p.add_argument("--S-churn", type=float, default=0.0, help="stochasticity (default: 0, deterministic)")
    p.add_argument("--S-min", type=float, default=0.0, help="churn only for sigma >= S_min (default: %(default)s)")
    p.add_argument("--S-max", type=float, default=math.inf, help="churn only for sigma <= S_max (default: inf)")
    p.add_argument("--S-noise", type=float, default=1.0, help="churn noise scale (default: %(default)s)")
    p.add_argument("--batch", type=int, default=64, help="images per batch and process (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present, else the CPU), cpu, cuda or cuda:N "
                                                    "(default: %(default)s; the choice is printed); under torchrun, "
                                                    "auto and cuda mean cuda:LOCAL_RANK")
    p.add_argument("--bf16", action="store_true", help="run the network under bfloat16 autocast (GPU)")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format (GPU)")
    p.add_argument("--no-per-image", dest="per_image", action="store_false", default=None,
                   help="on CPU, run each batch through the network at once (faster; an image's last bits then "
                        "depend on the batch size); by default CPU runs one image per call, bit-identical")
    p.add_argument("--grid", default=None, metavar="PNG", help="also write a grid of these seeds' images here")
    p.add_argument("--grid-cols", type=int, default=8, help="images per grid row (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def settings_from_args(args: argparse.Namespace) -> SamplerSettings:
    """The sampler settings the options describe; an :class:`OptionError` naming the option that breaks its rule
    (``SamplerSettings.rules``: finite, sigma_min < sigma_max, rho > 0, 1 <= steps <= MAX_STEPS, S_* >= 0, ...)."""
    try:
        return SamplerSettings(num_steps=args.steps, sigma_min=args.sigma_min, sigma_max=args.sigma_max,
                               rho=args.rho, S_churn=args.S_churn, S_min=args.S_min, S_max=args.S_max,
                               S_noise=args.S_noise, solver=args.solver)
    except SamplerSettingsError as err:
        option = OPTIONS.get(err.field, "--" + err.field.replace("_", "-"))
        raise OptionError(f"{option} {err.value}: {err.field} {err.rule}") from None


def check_options(args: argparse.Namespace) -> tuple[list[int], SamplerSettings]:
    """Every option that needs no checkpoint, checked before any work: the seeds, sampler settings, batch, grid,
    device and output folder (created). Returns the seeds and the sampler settings."""
    seeds = parse_seeds(args.seeds)
    settings = settings_from_args(args)
    if args.batch < 1 or args.grid_cols < 1:
        raise OptionError(f"--batch and --grid-cols must be >= 1, got {args.batch} and {args.grid_cols}")
    dev = D.resolve_device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"--device {args.device}: CUDA is not available here; use --device cpu")
    make_output_folder(args.outdir, "--outdir")
    if args.grid:
        make_output_folder(Path(args.grid).parent, "--grid")
    return seeds, settings


def run_generation(net: Any, outdir: str | Path, seeds: list[int], settings: SamplerSettings, batch_size: int = 64,
                   class_idx: int | None = None, device: str = "cpu", bf16: bool = False,
                   channels_last: bool = False, progress: bool = True, record: dict | None = None,
                   per_image: bool | None = None) -> int:
    """Generate ``seeds`` into ``outdir`` on every rank of the process group (each its share), rank 0 writing
    ``generation.json``; returns how many images all ranks wrote. Works without a process group too."""
    dev = D.resolve_device(device)
    C, R, label_dim = net_geometry(net)
    if D.is_main():
        write_json(Path(outdir) / "generation.json", {
            **(record or {}), "seeds": f"{seeds[0]}..{seeds[-1]} ({len(seeds)} seeds)", "class_idx": class_idx,
            "settings": {**vars(settings), "num_steps": settings.steps_for(R), "nfe": settings.nfe(R)},
            "image": {"channels": C, "resolution": R, "label_dim": label_dim}, "bf16": bf16,
            "channels_last": channels_last, "per_image": dev.type == "cpu" if per_image is None else per_image,
            "world_size": D.world_size(), "device": str(dev),
            "torch": torch.__version__, "written_at": datetime.datetime.now().astimezone().isoformat()})
    written = generate_to_folder(net, outdir, seeds, settings, batch_size, class_idx, dev, bf16, channels_last,
                                 rank=D.rank(), world_size=D.world_size(), progress=progress, per_image=per_image,
                                 source=(record or {}).get("network"))
    total = int(D.reduce_sum(torch.tensor(len(written))).item())
    D.barrier()
    return total


def _load(args: argparse.Namespace, settings: SamplerSettings) -> Any:
    """The checkpoint's denoiser, checked against the options that depend on it: --steps, --class and the sigma
    range once clamped to the network's; a network with a non-finite weight is refused (it can only give NaN)."""
    from ..models import load_edm_checkpoint
    from ..models.edm_checkpoint import EDMCheckpointError

    try:
        net = load_edm_checkpoint(args.network, sha256=args.sha256, allow_download=not args.offline)
    except FileNotFoundError as err:  # AssetMissingError included: name the option that takes a file on disk
        raise AssetMissingError(f"--network {args.network}: {str(err).rstrip('. ')}. Pass an existing EDM pickle, "
                                "a registry name or a URL; a copy on disk: --network PATH.") from err
    tensors = dict(net.named_parameters()) | dict(net.named_buffers())
    bad = {k: int((~t.isfinite()).sum()) for k, t in tensors.items() if t.is_floating_point() and
           not bool(t.isfinite().all())}
    if bad:
        first = next(iter(bad))
        raise EDMCheckpointError(f"--network {args.network}: {sum(bad.values())} weights are NaN or inf ({len(bad)} "
                                 f"tensors, e.g. {first}); the images would be NaN. Re-download the checkpoint, or "
                                 "pass one from a fine-tune that did not diverge")
    _, resolution, label_dim = net_geometry(net)
    if args.steps is None and resolution not in PAPER_STEPS:  # fail before sampling, naming the option
        paper = ", ".join(f"{n} at {r}x{r}" for r, n in sorted(PAPER_STEPS.items()))
        raise OptionError(f"--steps: the paper gives no step count for {resolution}x{resolution} images (only "
                          f"{paper}); pass --steps N, e.g. --steps {PAPER_STEPS[min(PAPER_STEPS)]}")
    if args.class_idx is not None and not 0 <= args.class_idx < label_dim:
        raise OptionError(f"--class {args.class_idx}: the network has label_dim={label_dim}; "
                          f"class_idx={args.class_idx} needs a conditional net and 0 <= class_idx < label_dim")
    try:  # the requested sigma range, clamped to the network's, must still hold a schedule
        sampler_sigmas(net, settings.steps_for(resolution), settings.sigma_min, settings.sigma_max, settings.rho)
    except ValueError as err:
        net_range = f"[{getattr(net, 'sigma_min', 0.0)}, {getattr(net, 'sigma_max', math.inf)}]"
        raise OptionError(f"--sigma-min {settings.sigma_min} / --sigma-max {settings.sigma_max} / --rho "
                          f"{settings.rho}: within the network's sigma range {net_range} they give no schedule "
                          f"({err}); pass a range that overlaps the network's") from None
    return net


def execute(args: argparse.Namespace) -> int:
    """Entry point shared by ``specreg generate`` and ``python -m specreg_lib.kit.generate``; the exit code."""
    seeds, settings = check_options(args)  # an OptionError ends the command (kit/command.py: one line, exit 2)
    D.init_distributed(args.device)  # under torchrun; a no-op otherwise
    if D.is_main():
        print(device_line(f"--device {args.device}", D.resolve_device(args.device)))
    # Rank 0 loads (and downloads into the cache) first and tells the others whether it worked, so ranks
    # neither download the same file at once nor wait for a rank that failed.
    net, error, mine = None, None, None
    for turn in ("main", "others"):
        if D.is_main() == (turn == "main"):
            try:
                net = _load(args, settings)
            except InputError as err:  # a missing / bad checkpoint or an option it contradicts
                error, mine = " ".join(str(err).split()), err
        if turn == "main":
            error = D.from_rank0(error)
        if error:
            D.close_distributed()
            raise mine or InputError(error)  # the other ranks: rank 0's message
    n = run_generation(net, args.outdir, seeds, settings, args.batch, args.class_idx, args.device, args.bf16,
                       args.channels_last, not args.no_progress, record={"network": str(args.network)},
                       per_image=args.per_image)
    if D.is_main():
        print(f"wrote {n} images ({len(seeds) - n} were already there) to {args.outdir}")
        if args.grid:
            print(f"grid: {save_grid(read_seed_images(args.outdir, seeds), args.grid, args.grid_cols)}")
    D.close_distributed()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m specreg_lib.kit.generate`` (also under torchrun)."""
    return standalone("generate", sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
