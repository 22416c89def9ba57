"""``make gpu-check``: what one GPU says about the kit in under 8 minutes, as one JSON file and a printed table.

Stages, in this order, each recorded under its own key of the JSON:

1. ``tests``: ``pytest -m gpu`` on the test files holding GPU marks, counted from its JUnit XML.
2. ``step_time``: one optimisation step (EDM's loss summed over C*H*W + lambda_spec * w * L_S, backward, Adam) of
   the full-size AFHQv2-64 DDPM++ (EDM's config, random weights: ``bench_edm_finetune.afhq_ddpmpp``) at Table 3's
   batch 16, in fp32 and bf16 autocast. Every round runs the baseline and each regularizer (amp, amp_phase, haar,
   bior1.3; weighted, lambda_spec 1) once, in an order rotated by one per round, so drifts in clock or load hit
   all alike; ratio = median over rounds of (regularized / baseline of the same round), spread = its quartiles.
3. ``finetune``: the kit's training loop (``training.train``) at Table 3's settings (``EDMFinetuneConfig().train``:
   batch 16 per GPU, lr 5e-5, EMA half-life) on stand-in crops through EDM's augment pipe (``EDMSampler``):
   median images/s and peak GPU memory (``torch.cuda.max_memory_allocated``) per loss and precision.
4. ``generate``: ``sample_images`` (EDM Heun, the paper's 40 steps at 64x64, NFE 79) on a batch: images/s.
5. ``budget``: Table 1's and Table 2's GPU-hours per cell from published throughput (``PUBLISHED``, each with its
   source) and, for the AFHQv2/FFHQ-64 DDPM++ (VP) cells, from stages 3-4.

``--dry-run`` runs every stage on the CPU with a 16x16 tiny net, 2 rounds, 2 steps and batch 2 generation; the
JSON then says ``"mode": "dry-run"`` and its numbers time nothing of interest (the test suite runs it).
``--budget`` prints only the budget table (README.md holds its published columns).
Usage: python benchmarks/gpu_check.py [--dry-run] [--out logs/gpu_check.json] [--rounds 24] [--tests [PATH ...]]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import torch
from bench_edm_finetune import afhq_ddpmpp, batch, regularizers

from specreg_lib.data.augment import AugmentPipe
from specreg_lib.data.edm_datasets import EDMImageDataset, write_standin
from specreg_lib.diffusion import EDMLoss
from specreg_lib.diffusion.edm_train import EDMTrainLoss
from specreg_lib.diffusion.generate import SamplerSettings, sample_images
from specreg_lib.experiments.audio.experiment import PAPER_LAMBDAS, PAPER_SEEDS, AudioConfig
from specreg_lib.experiments.edm.config import EDMFinetuneConfig
from specreg_lib.experiments.edm.experiment import EDMSampler
from specreg_lib.experiments.edm.table1 import table1_plan
from specreg_lib.io import write_json
from specreg_lib.models import count_parameters
from specreg_lib.training import train

REPO = Path(__file__).resolve().parents[1]
PRECISIONS = ("fp32", "bf16")
# Published throughput, as numbers, each with its source (nothing here was measured by this kit).
PUBLISHED = {
    "edm_train": {64: (200e6, 8 * 96.0), 32: (200e6, 8 * 48.0),  # images, GPU-hours
                  "source": "NVlabs/edm README, training table: afhqv2/ffhq-64x64 ~4 days, cifar10-32x32 ~2 days on "
                            "8xV100 for train.py's default --duration=200 Mimg"},
    "edm_generate": {64: (64, 28.0), 32: (64, 6.0),  # images, seconds
                     "source": "NVlabs/edm README, example.py: an 8x8 grid in ~28 s (AFHQv2/FFHQ, 40 steps) and ~6 s "
                               "(CIFAR-10, 18 steps) on one V100/A100, loading included (an upper bound)"},
    "edm_fid_hours": {"value": 3 / 60, "source": "NVlabs/edm README: fid.py calc 'typically takes 1-3 minutes'"},
    "diffwave_train": {"steps_per_hour": 8000 / 1.5,
                       "source": "lmnt-com/diffwave README: ~8k steps in ~1.5 h on a 2080 Ti (batch 16)"},
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(precision: str, device: torch.device) -> Any:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def losses() -> dict[str, EDMTrainLoss]:
    """The baseline and each regularizer (weighted, lambda_spec 1) as EDM's loop reduces the loss (pixels=sum)."""
    out = {"baseline": EDMTrainLoss(EDMLoss(), "sum")}
    for name, reg in regularizers().items():
        if name.endswith("/weighted"):  # the weighting does not change the cost
            out[name.split("/")[0]] = EDMTrainLoss(EDMLoss(regularizer=reg), "sum")
    return out


def timed_step(net: Any, loss: EDMTrainLoss, opt: torch.optim.Optimizer, y: torch.Tensor, cond: torch.Tensor,
               precision: str, seed: int) -> float:
    """Seconds of one optimisation step, synchronised on both ends (the loop's step without its bookkeeping)."""
    sync(y.device)
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    with autocast(precision, y.device):
        per_sample = loss(net, y, cond, generator=torch.Generator(y.device).manual_seed(seed))  # (B,)
    per_sample.float().mean().backward()
    opt.step()
    sync(y.device)
    return time.perf_counter() - t0


def step_times(net: Any, y: torch.Tensor, cond: torch.Tensor, precision: str, rounds: int) -> dict[str, Any]:
    """Rounds of all losses side by side, rotated; per regularizer the per-round ratio's median and quartiles."""
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-12)  # Adam's cost, the weights kept (almost) as they are
    fns = losses()
    names = list(fns)
    for name in names:  # warm-up: cuDNN autotuning, FFT plans, allocator
        timed_step(net, fns[name], opt, y, cond, precision, 0)
    times: dict[str, list[float]] = {n: [] for n in names}
    orders = []
    for i in range(rounds):
        order = names[i % len(names):] + names[:i % len(names)]
        orders.append(order)
        for name in order:
            times[name].append(timed_step(net, fns[name], opt, y, cond, precision, i))
    base = times["baseline"]
    out: dict[str, Any] = {"orders": orders, "baseline": {"median_s": statistics.median(base), "times_s": base}}
    for name in names[1:]:
        ratios = [r / b for r, b in zip(times[name], base, strict=True)]
        q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
        out[name] = {"median_s": statistics.median(times[name]), "times_s": times[name],
                     "ratio": statistics.median(ratios), "ratio_q1": q1, "ratio_q3": q3,
                     "ratio_min": min(ratios), "ratio_max": max(ratios)}
    return out


def peak_memory_gib(device: torch.device) -> float:
    """Peak memory since the last reset: allocated GPU memory on CUDA; the process's peak RSS on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def finetune(net: Any, data: EDMSampler, precision: str, steps: int, batch_size: int, device: torch.device
             ) -> dict[str, Any]:
    """The training loop at Table 3's settings for ``steps`` steps per loss: images/s (median) and peak memory."""
    cfg = dataclasses.replace(EDMFinetuneConfig().train, steps=steps, batch_size=batch_size, device=str(device),
                              precision=precision, progress=False, checkpoint_every=0, log_every=max(steps, 1))
    out = {}
    for name, loss in losses().items():
        net.zero_grad(set_to_none=True)  # what earlier stages left is not this run's memory
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        result = train(net, loss, data, cfg, desc=name)
        hist = result.history["images_per_second"][1:] or result.history["images_per_second"]  # first step: warm-up
        out[name] = {"images_per_second": statistics.median(hist), "steps": steps, "batch": cfg.batch_size,
                     "peak_memory_gib": peak_memory_gib(device)}
        del result
    return out


def generate(net: Any, precision: str, n: int, num_steps: int, device: torch.device) -> dict[str, Any]:
    """Images/s of the EDM sampler on one batch of n seeds (best of 2 after a 2-step warm-up)."""
    net.eval()
    settings = SamplerSettings(num_steps=num_steps)
    bf16 = precision == "bf16"
    sample_images(net, range(n), SamplerSettings(num_steps=2), device=device, bf16=bf16, per_image=False)
    best = math.inf
    for _ in range(2):
        sync(device)
        t0 = time.perf_counter()
        sample_images(net, range(n), settings, device=device, bf16=bf16, per_image=False)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return {"images_per_second": n / best, "batch": n, "num_steps": num_steps,
            "nfe": settings.nfe(net.img_resolution), "seconds": best}


def gpu_test_files() -> list[str]:
    """The test modules holding GPU-marked tests (collecting only these keeps the stage short and independent of
    what the other modules import)."""
    return sorted(str(f.relative_to(REPO)) for f in (REPO / "tests").glob("test_*.py")
                  if "pytest.mark.gpu" in f.read_text())


def gpu_tests(paths: list[str], timeout: float) -> dict[str, Any]:
    """``pytest -m gpu`` on ``paths``: counts, the failures' names and the skips' reasons (from its JUnit XML)."""
    args = ["-m", "gpu", "-q", "-p", "no:cacheprovider", *paths]
    status: dict[str, list[str]] = {"passed": [], "failed": [], "skipped": []}
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "gpu.xml"
        t0 = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, "-m", "pytest", *args, f"--junitxml={xml}"], cwd=REPO,
                                  capture_output=True, text=True, timeout=timeout)
            code, stdout = done.returncode, done.stdout
        except subprocess.TimeoutExpired as e:  # the measurements still run
            partial = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout or ""
            code, stdout = None, f"timed out after {timeout:.0f} s\n{partial}"
        seconds = time.perf_counter() - t0
        for case in ET.parse(xml).getroot().iter("testcase") if xml.exists() else []:
            name = f"{case.get('classname')}::{case.get('name')}"
            if case.find("failure") is not None or case.find("error") is not None:
                status["failed"].append(name)
            elif case.find("skipped") is not None:
                status["skipped"].append(f"{name}: {case.find('skipped').get('message', '')}")
            else:
                status["passed"].append(name)
    return {"command": "pytest " + " ".join(args), "returncode": code, "seconds": seconds,
            **{k: len(v) for k, v in status.items()}, "failed_names": status["failed"],
            "skipped_reasons": status["skipped"], "tail": "" if code in (0, 5) else str(stdout)[-1500:]}


# ------------------------------------------------------------------------------------------------------ budget

def budget(measured: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """GPU-hours per cell of Table 1 (3 seeds: 3 fine-tunes of Table 3's 0.5 Mimg, 3 x 50k images, 3 FIDs) and of
    Table 2 (5 seeds x 150k steps), from ``PUBLISHED``; and from ``measured`` ({"finetune_ips", "generate_ips"} of
    the AFHQv2-64 DDPM++) for the 64x64 VP cells, the only network gpu-check times. None where there is no number."""
    plan, p = table1_plan("paper"), PUBLISHED
    images = EDMFinetuneConfig().finetune.duration_kimg * 1e3  # per fine-tune
    seeds, n_img = len(plan.seeds), plan.images_per_set
    fine_tuned = 1 + len(plan.variants) * len(plan.weightings)  # baseline + regularizer x weighting, per block
    rows = []
    groups = [(32, plan.families)] + [(64, (family,)) for family in plan.families]  # only 64x64 VP is timed
    for res, families in groups:
        presets = [x for x in plan.presets if x.endswith(f"-{res}")]
        train_images, train_hours = p["edm_train"][res]
        n, sec = p["edm_generate"][res]
        gen, fid = seeds * n_img * sec / n / 3600, seeds * p["edm_fid_hours"]["value"]
        timed = measured is not None and res == 64 and families == ("vp",)
        m_ft = seeds * images / measured["finetune_ips"] / 3600 if timed else None
        m_gen = seeds * n_img / measured["generate_ips"] / 3600 if timed else None
        for kind, ft, m, count in (("fine-tuned", seeds * images * train_hours / train_images, m_ft, fine_tuned),
                                   ("pretrained", 0.0, 0.0 if timed else None, 1)):
            rows.append({"table": 1, "cell": f"{'/'.join(presets)} {'/'.join(families)}, {kind}",
                         "count": count * len(presets) * len(families), "gpu": "V100; sampling V100/A100",
                         "finetune_h": ft, "generate_h": gen, "fid_h": fid, "total_h": ft + gen + fid,
                         "measured_h": None if m is None else m + m_gen + fid})
    steps = AudioConfig().train.steps
    ft = len(PAPER_SEEDS) * steps / p["diffwave_train"]["steps_per_hour"]
    rows.append({"table": 2, "cell": f"DiffWave, {len(PAPER_SEEDS)} seeds x {steps:,} steps", "gpu": "2080 Ti (LMNT)",
                 "count": 1 + 4 * len(PAPER_LAMBDAS),  # baseline + (amp, amp_phase, haar, bior1.3) x lambda
                 "finetune_h": ft, "generate_h": None, "fid_h": None, "total_h": ft, "measured_h": None})
    return rows


def budget_markdown(rows: list[dict[str, Any]]) -> str:
    """The budget as a markdown table, one row per kind of cell and one total per paper table."""
    def f(v: float | None) -> str:
        return "—" if v is None else f"{v:,.2f}"

    lines = ["| Table | cell | cells | GPU of the source | fine-tune h | generate h | FID h | GPU-h per cell "
             "(published) | GPU-h, all these cells | GPU-h per cell (measured by gpu-check) |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['table']} | {r['cell']} | {r['count']} | {r['gpu']} | {f(r['finetune_h'])} | "
                     f"{f(r['generate_h'])} | {f(r['fid_h'])} | {f(r['total_h'])} | {f(r['total_h'] * r['count'])} "
                     f"| {f(r['measured_h'])} |")
    for t in sorted({r["table"] for r in rows}):
        total = sum(r["total_h"] * r["count"] for r in rows if r["table"] == t)
        lines.append(f"| {t} | **whole Table {t}** | {sum(r['count'] for r in rows if r['table'] == t)} | | | | | | "
                     f"**{f(total)}** | |")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------------- main

def check(args: argparse.Namespace, device: torch.device, out: Path) -> dict[str, Any]:
    """Every stage in order; the JSON is rewritten before each stage, so a run cut short keeps what it measured."""
    tiny = args.dry_run
    t_start = time.perf_counter()
    report: dict[str, Any] = {"mode": "dry-run" if tiny else "gpu", "device": device_info(device)}

    def log(what: str) -> None:
        report["seconds"] = time.perf_counter() - t_start
        write_json(out, report)
        print(f"[{report['seconds']:6.1f} s] {what}", flush=True)

    log("pytest -m gpu")
    paths = gpu_test_files() if args.tests is None else args.tests
    report["tests"] = gpu_tests(paths, timeout=240) if paths else None
    net = afhq_ddpmpp(tiny).to(device)
    report["network"] = {"name": "AFHQv2-64 DDPM++ (EDM: --arch=ddpmpp --cres=1,2,2,2 --dropout=0.25 "
                                 "--augment=0.15), EDMPrecond, random weights (seed 0)" + (" [tiny]" if tiny else ""),
                         "parameters": count_parameters(net), "resolution": net.img_resolution, "batch": args.batch}
    y, cond = (t.to(device) for t in batch(net, args.batch))
    with tempfile.TemporaryDirectory() as tmp:
        zip_path = Path(tmp) / "standin.zip"
        write_standin(zip_path, n=64, resolution=net.img_resolution)
        data = EDMSampler(EDMImageDataset(zip_path), AugmentPipe(p=0.15), label_dim=0)
        for precision in PRECISIONS:
            log(f"step time, {precision}")
            report.setdefault("step_time", {})[precision] = step_times(net, y, cond, precision, args.rounds)
            log(f"fine-tune, {precision}")
            report.setdefault("finetune", {})[precision] = finetune(net, data, precision, args.finetune_steps,
                                                                     args.batch, device)
    for precision in PRECISIONS:
        log(f"generate, {precision}")
        report.setdefault("generate", {})[precision] = generate(net, precision, args.gen_batch, args.gen_steps,
                                                                device)
    slowest = min(v["images_per_second"] for v in report["finetune"]["fp32"].values())
    report["budget"] = budget(None if tiny else {"finetune_ips": slowest,
                                                 "generate_ips": report["generate"]["fp32"]["images_per_second"]})
    report["settings"] = {k: getattr(args, k) for k in ("batch", "rounds", "finetune_steps", "gen_batch",
                                                        "gen_steps")} | {"published": PUBLISHED}
    report["seconds"] = time.perf_counter() - t_start
    return report


def device_info(device: torch.device) -> dict[str, Any]:
    info = {"type": device.type, "torch": torch.__version__, "cuda": torch.version.cuda,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "peak_memory": "torch.cuda.max_memory_allocated" if device.type == "cuda" else
            "the process's peak RSS (CPU dry run: not GPU memory)"}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, memory_gib=props.total_memory / 2**30, capability=f"{props.major}.{props.minor}")
    return info


def table(report: dict[str, Any]) -> str:
    """The printed summary: tests, per-regularizer step-time ratios, fine-tune/generation speed, memory."""
    t = report["tests"]
    lines = [f"gpu-check ({report['mode']}) on {report['device'].get('name', report['device']['type'])}, "
             f"{report['network']['parameters']:,} parameters, batch {report['network']['batch']}, "
             f"{report['seconds']:.0f} s",
             "tests: not run" if t is None else f"tests (pytest -m gpu): {t['passed']} passed, {t['failed']} failed, "
                                                f"{t['skipped']} skipped (exit {t['returncode']})", "",
             "| loss | precision | step s (median) | ratio to baseline [q1, q3] | fine-tune img/s | peak GiB |",
             "|---|---|---:|---:|---:|---:|"]
    for p in PRECISIONS:
        st, ft = report["step_time"][p], report["finetune"][p]
        for name in ft:
            s = st[name]
            ratio = "1" if name == "baseline" else f"{s['ratio']:.4f} [{s['ratio_q1']:.4f}, {s['ratio_q3']:.4f}]"
            lines.append(f"| {name} | {p} | {s['median_s']:.4f} | {ratio} | {ft[name]['images_per_second']:.1f} | "
                         f"{ft[name]['peak_memory_gib']:.2f} |")
    lines += ["", "| generation | images/s | batch | NFE |", "|---|---:|---:|---:|"]
    lines += [f"| {p} | {g['images_per_second']:.2f} | {g['batch']} | {g['nfe']} |"
              for p, g in report["generate"].items()]
    return "\n".join(lines + ["", budget_markdown(report["budget"])])


def fail(message: str) -> None:
    """A bad input: one line on stderr, exit 2."""
    print(f"gpu-check: error: {message}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="the same stages on the CPU, tiny net, 2 steps")
    ap.add_argument("--budget", action="store_true", help="print the published compute budget table and stop")
    ap.add_argument("--out", default="logs/gpu_check.json", help="the JSON report (default: %(default)s)")
    ap.add_argument("--batch", type=int, default=None, help="images per step (default: Table 3's 16 per GPU; dry 4)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds per precision (default 24; dry 2)")
    ap.add_argument("--finetune-steps", type=int, default=None, help="loop steps per loss (default 20; dry 2)")
    ap.add_argument("--gen-batch", type=int, default=None, help="images per generation batch (default 64; dry 2)")
    ap.add_argument("--gen-steps", type=int, default=None, help="Heun steps N (default 40, NFE 79; dry 2)")
    ap.add_argument("--tests", nargs="*", default=None,
                    help="paths for pytest -m gpu (default: the test files with GPU marks; none given: skip)")
    args = ap.parse_args()
    if args.budget:
        print(budget_markdown(budget()))
        return
    dry = args.dry_run
    table3 = EDMFinetuneConfig().train.batch_size  # Table 3: 16 per GPU
    for name, full, small in (("batch", table3, 4), ("rounds", 24, 2), ("finetune_steps", 20, 2), ("gen_batch", 64, 2),
                              ("gen_steps", 40, 2)):
        value = getattr(args, name)
        value = (small if dry else full) if value is None else value
        if value < (2 if name != "gen_steps" else 1):
            fail(f"--{name.replace('_', '-')} must be >= {2 if name != 'gen_steps' else 1}, got {value}")
        setattr(args, name, value)
    if not dry and not torch.cuda.is_available():
        fail("no CUDA device here; run it on a GPU machine, or pass --dry-run for the CPU check")
    device = torch.device("cpu" if dry else "cuda")
    if dry:
        torch.set_num_threads(1)
    out = REPO / args.out if not Path(args.out).is_absolute() else Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = check(args, device, out)
    write_json(out, report)
    print(table(report))
    print(f"\nwrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")


if __name__ == "__main__":
    main()
