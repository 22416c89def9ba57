"""Write tests/oracles/edm_reference.pt: NVIDIA's own SongUNet + preconditioning outputs, as numbers.

    python tests/oracles/make_edm_reference.py EDM_REPO OUT [--edm-commit SHA]

EDM_REPO is the user's checkout of https://github.com/NVlabs/edm (the file in this repo was made from commit
008a4e5316c8e3bfe61a62f874bddba254295afb). This script imports EDM's ``training.networks`` from that path in
its own process; no EDM code lives in this repo, only the numbers it produced. For each case it builds EDM's
wrapper (EDMPrecond / VPPrecond / VEPrecond) around a tiny SongUNet (DDPM++ or NCSN++) with a fixed seed,
replaces EDM's near-zero output-conv init and zero biases by random values (so every path of the net shows in
the output), and saves the weights, the inputs and EDM's outputs:

    {"edm_commit", "networks_py_sha256", "torch_version", "cases": {name: {
        "class_name", "init_kwargs",                 # EDM's wrapper class and its kwargs (EDM's names)
        "state_dict",                                # {key: tensor}, keys 'model.*' as in EDM's files
        "x", "sigma", "class_labels", "augment_labels",   # D's inputs (labels None where not used)
        "D",                                         # EDM's D(x; sigma, class_labels, augment_labels)
        "F_in", "c_noise", "F",                      # what EDM's wrapper fed its SongUNet, and F's output
    }}}

Everything is a tensor, str, number, list, dict or None, so ``torch.load(..., weights_only=True)`` reads it.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

import torch

# Tiny SongUNets (EDM's kwarg names): DDPM++ / NCSN++ as train.py --arch sets them, cut to ~50k parameters each.
# NCSN++ gets three levels so its residual encoder path runs twice (from the image, then from the features).
SMALL = dict(model_channels=8, channel_mult_emb=2, num_blocks=1, attn_resolutions=[8], dropout=0.0)
DDPMPP = dict(embedding_type="positional", encoder_type="standard", decoder_type="standard",
              channel_mult_noise=1, resample_filter=[1, 1], channel_mult=[1, 2])
NCSNPP = dict(embedding_type="fourier", encoder_type="residual", decoder_type="standard",
              channel_mult_noise=2, resample_filter=[1, 3, 3, 1], channel_mult=[1, 1, 2])
IMG = dict(img_resolution=16, img_channels=3, model_type="SongUNet", use_fp16=False)

# name -> (wrapper class, kwargs, sigmas of the batch). Sigmas span each formulation's range.
CASES = {
    "ddpmpp_edm_uncond": ("EDMPrecond", dict(IMG, **SMALL, **DDPMPP, sigma_data=0.5), [0.002, 0.3, 2.0, 80.0]),
    "ncsnpp_edm_cond": ("EDMPrecond", dict(IMG, **SMALL, **NCSNPP, label_dim=10, sigma_data=0.5),
                        [0.002, 0.3, 2.0, 80.0]),
    "ncsnpp_ve_augment": ("VEPrecond", dict(IMG, **SMALL, **NCSNPP, augment_dim=9, sigma_min=0.02, sigma_max=100.0),
                          [0.02, 0.5, 5.0, 100.0]),
    "ddpmpp_vp_cond_augment": ("VPPrecond", dict(IMG, **SMALL, **DDPMPP, label_dim=10, augment_dim=9, beta_d=19.9,
                                                 beta_min=0.1, M=1000, epsilon_t=1e-5),
                               [0.002, 0.3, 2.0, 80.0]),
    # EDM's other encoder / decoder options, which no official file uses: input skips and per-level heads.
    "skip_edm_uncond": ("EDMPrecond", dict(IMG, **SMALL, **dict(DDPMPP, encoder_type="skip", decoder_type="skip"),
                                           img_resolution=8), [0.01, 0.5, 1.0, 10.0]),
}
NEAR_ZERO = ("conv1.weight", "proj.weight", "aux_conv.weight")  # EDM inits these at 1e-5 x xavier


def randomize(net: torch.nn.Module, gen: torch.Generator) -> None:
    """Give EDM's near-zero and zero/one-initialised parameters random values, so none hides a path."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(NEAR_ZERO):
                fan_in, fan_out = p.shape[1] * p[0, 0].numel(), p.shape[0] * p[0, 0].numel()
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * (6 / (fan_in + fan_out)) ** 0.5)
            elif name.endswith("bias") or ".norm" in name or "aux_norm" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))


def make_case(networks, class_name: str, kwargs: dict, sigmas: list[float], seed: int) -> dict:
    torch.manual_seed(seed)  # EDM draws its init from the global generator
    net = getattr(networks, class_name)(**kwargs).eval()
    gen = torch.Generator().manual_seed(seed + 1000)
    randomize(net, gen)
    B, C, R = len(sigmas), kwargs["img_channels"], kwargs["img_resolution"]
    x = torch.randn(B, C, R, R, generator=gen)
    sigma = torch.tensor(sigmas, dtype=torch.float32)
    label_dim = kwargs.get("label_dim", 0)
    class_labels = torch.eye(label_dim)[torch.randint(label_dim, (B,), generator=gen)] if label_dim else None
    augment_dim = kwargs.get("augment_dim", 0)
    augment_labels = torch.randn(B, augment_dim, generator=gen) if augment_dim else None
    seen = {}

    def hook(module, args, kw, out):  # what EDM's wrapper hands its SongUNet, and what comes back
        seen.update(F_in=args[0].detach().clone(), c_noise=args[1].detach().clone(), F=out.detach().clone())

    handle = net.model.register_forward_hook(hook, with_kwargs=True)
    with torch.no_grad():
        extra = {} if augment_labels is None else dict(augment_labels=augment_labels)
        D = net(x, sigma, class_labels, **extra)
    handle.remove()
    return dict(class_name=class_name, init_kwargs=kwargs,
                state_dict={k: v.detach().clone().contiguous() for k, v in net.state_dict().items()},
                x=x, sigma=sigma, class_labels=class_labels, augment_labels=augment_labels, D=D, **seen)


def edm_commit(repo: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout; pass --edm-commit)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("edm_repo", type=Path, help="a checkout of NVlabs/edm")
    parser.add_argument("out", type=Path, help="the tensor file to write (tests/oracles/edm_reference.pt)")
    parser.add_argument("--edm-commit", help="the checkout's commit, when it is not a git repository")
    args = parser.parse_args()
    networks_py = args.edm_repo / "training" / "networks.py"
    if not networks_py.is_file():
        sys.exit(f"{args.edm_repo} is not an EDM checkout: {networks_py} is missing")
    sys.path.insert(0, str(args.edm_repo.resolve()))
    from training import networks  # EDM's own classes, from the user's checkout

    torch.set_num_threads(1)
    cases = {name: make_case(networks, cls, kw, sig, seed)
             for seed, (name, (cls, kw, sig)) in enumerate(CASES.items())}
    out = dict(edm_commit=args.edm_commit or edm_commit(args.edm_repo),
               networks_py_sha256=hashlib.sha256(networks_py.read_bytes()).hexdigest(),
               torch_version=str(torch.__version__), cases=cases)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, args.out)
    n = {k: sum(v.numel() for v in c["state_dict"].values()) for k, c in cases.items()}
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB), parameters per case: {n}")


if __name__ == "__main__":
    main()
