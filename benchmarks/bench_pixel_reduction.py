"""EDM's loss summed or averaged over pixels (``loss.pixels``) at the lambda that makes them equal, under Adam.

"mean" with lambda_spec / (C H W) is the "sum" objective divided by C H W: its gradient is the summed one over
C H W (tests/test_edm_finetune.py checks it to rounding). Adam divides a constant factor out of its step only up
to its eps (1e-8), so the two reductions train the same net only where the gradients are large against eps. This
prints, per start net and variant, how far apart N fine-tuning steps under "sum" and "mean" end:
|w_sum - w_mean| / |w_sum - w_start| over all weights (0 = the same run). Start nets: the image study's committed
pretrained nets (data/pretrained/ab_images/cpu; the study's fine-tune settings) and the EDM experiment's tiny
random smoke net. Deterministic for given arguments: no timing.
Usage: python benchmarks/bench_pixel_reduction.py [--steps 10] [--out benchmarks/results/bench_pixel_reduction.txt]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile

import torch
from _report import add_out_argument, tee_to

from specreg_lib.experiments.ab_images.experiment import AB_IMAGES
from specreg_lib.experiments.ab_images.plan import Point, ab_images_plan, finetune_config, pretrained_path
from specreg_lib.experiments.core.config import apply_overrides
from specreg_lib.experiments.core.study import committed_copy
from specreg_lib.experiments.edm.experiment import edm_experiment
from specreg_lib.training import train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10, help="fine-tuning steps per run")
    p.add_argument("--lam", type=float, default=50.0, help="amp's lambda_spec under 'sum' (weighted)")
    add_out_argument(p)
    args = p.parse_args()
    with tee_to(args.out):
        run(args)


def _moved(exp, cfg, steps: int) -> tuple[dict, dict]:
    tcfg = dataclasses.replace(exp.train_config(cfg), steps=steps, checkpoint_every=0, progress=False)
    torch.manual_seed(exp.seed(cfg))
    start = {k: v.clone() for k, v in exp.build_model(cfg).state_dict().items()}
    torch.manual_seed(exp.seed(cfg))
    return start, train(exp.build_model(cfg), exp.build_loss(cfg), exp.build_data(cfg), tcfg).model.state_dict()


def _gap(exp, cfg, lam: float, steps: int) -> float:
    net = exp.build_model(cfg)
    chw = net.img_channels * net.img_resolution ** 2
    over = {} if lam == 0 else {"regularizer": "amp", "regularizer.weighting": "weighted"}
    start, a = _moved(exp, apply_overrides(cfg, {**over, "loss.pixels": "sum", **(
        {"regularizer.lambda_spec": lam} if lam else {})}), steps)
    _, b = _moved(exp, apply_overrides(cfg, {**over, "loss.pixels": "mean", **(
        {"regularizer.lambda_spec": lam / chw} if lam else {})}), steps)
    keys = [k for k in a if a[k].is_floating_point()]
    num = sum(float(((a[k] - b[k]).double() ** 2).sum()) for k in keys)
    den = sum(float(((a[k] - start[k]).double() ** 2).sum()) for k in keys)
    return (num / den) ** 0.5


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    plan, root = ab_images_plan("cpu"), tempfile.mkdtemp()
    rows = []
    for dataset in plan.datasets:
        cfg = finetune_config(plan, root, Point(dataset, "baseline", None, None, None, 1))
        committed = committed_copy(pretrained_path(plan, root, dataset), "ab_images", "cpu")
        cfg = apply_overrides(cfg, {"model.checkpoint": str(committed)})
        rows += [(f"{dataset} pretrained net (image study)", v, _gap(AB_IMAGES, cfg, lam, args.steps))
                 for v, lam in (("baseline", 0.0), ("amp weighted", args.lam))]
    smoke = edm_experiment("afhqv2-64")
    cfg = smoke.config("smoke", {"train.checkpoint_every": 0})
    rows += [("tiny random net (EDM smoke)", v, _gap(smoke, cfg, lam, args.steps))
             for v, lam in (("baseline", 0.0), ("amp weighted", args.lam))]
    print(f"{args.steps} Adam steps each; amp: lambda {args.lam:g} under 'sum', lambda / (C H W) under 'mean'\n")
    print("| start net | variant | \\|w_sum - w_mean\\| / \\|w_sum - w_start\\| |")
    print("|---|---|---|")
    for net, variant, gap in rows:
        print(f"| {net} | {variant} | {gap:.2g} |")


if __name__ == "__main__":
    main()
