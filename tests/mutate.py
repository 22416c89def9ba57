"""Mutation check: put deliberate bugs into a temporary copy of the tree, one at a time, and see the tests fail.

Each mutation is (file, old text, new text, why it matters, test files that must catch it). The copy is
``git archive HEAD`` plus the work tree's uncommitted files (modified and untracked, not ignored; deleted ones
removed), so a check of work in progress sees that work. The work tree itself is never touched.

    python tests/mutate.py            # every mutation against its listed test files (make mutate)
    python tests/mutate.py --only 3,8 # some of them
    python tests/mutate.py --all      # each against the whole suite (slow: minutes per mutation)
    python tests/mutate.py --list     # the list, nothing run

Prints caught / survived per mutation; exit 1 if any survives, 2 if the list is stale (an old text is not found
exactly once) or the unmutated copy already fails the listed tests. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    file: str
    old: str
    new: str
    why: str
    tests: tuple[str, ...]


SONGUNET_TESTS = ("tests/test_edm_reference.py", "tests/test_songunet.py")
MUTATIONS = (
    # 1-10: the ones that passed the whole suite before issue 19
    Mutation("specreg_lib/models/songunet.py",
             'h = img = (h + self.enc[key("aux_residual")](img)) / math.sqrt(2)',
             'h = img = (h + self.enc[key("aux_residual")](img)) / 2',
             "NCSN++ residual encoder: the skip sum scaled by 1/2 instead of 1/sqrt(2)", SONGUNET_TESTS),
    Mutation("specreg_lib/models/songunet.py",
             "emb = emb + self.map_label(c * math.sqrt(self.map_label.in_features))",
             "emb = emb + self.map_label(c)",
             "SongUNet._embed: the class label no longer scaled by sqrt(label_dim)", SONGUNET_TESTS),
    Mutation("specreg_lib/models/edm_layers.py",
             "arg = torch.outer(x, (2 * math.pi * self.freqs).to(x.dtype))  # (B, C/2)\n"
             "        return torch.cat([arg.sin(), arg.cos()], dim=1)",
             "arg = torch.outer(x, (2 * math.pi * self.freqs).to(x.dtype))  # (B, C/2)\n"
             "        return torch.cat([arg.cos(), arg.sin()], dim=1)",
             "FourierEmbedding: sin and cos swapped (every NCSN++/VE file would be read wrong)", SONGUNET_TESTS),
    Mutation("specreg_lib/data/augment.py", "_scale(1 / a, a)", "_scale(a, 1 / a)",
             "augment: anisotropic stretch along the other axis than its label says", ("tests/test_edm_augment.py",)),
    Mutation("specreg_lib/data/augment.py", "y = torch.where(flip_y, y.flip(2), y)",
             "y = torch.where(flip_y, y.flip(3), y)",
             "augment: the y-flip mirrors left-right while its label says top-bottom", ("tests/test_edm_augment.py",)),
    Mutation("specreg_lib/metrics/audio.py",
             "pesq(PESQ_RATE, _resample_16k(ref, sample_rate), _resample_16k(deg, sample_rate), \"wb\")",
             "pesq(PESQ_RATE, ref, deg, \"wb\")",
             "PESQ fed 22.05 kHz audio as if it were 16 kHz", ("tests/test_audio_metrics.py",)),
    Mutation("specreg_lib/metrics/audio.py", "np.mean(p_values < alpha)", "np.mean(p_values < alpha / 10)",
             "NDB: a bin counted as different at alpha / 10", ("tests/test_audio_metrics.py",)),
    Mutation("specreg_lib/experiments/core/protocol.py", '"sample", "evaluate"})', '"sample", "evaluate", "data"})',
             "RUNTIME_FIELDS gains data: another dataset reuses the same run folder", ("tests/test_experiments.py",)),
    Mutation("specreg_lib/kit/runner.py", "if metrics is None or metrics_path.stat().st_mtime < started - 1:",
             "if metrics is None:", "runner: an old metrics.json reported as this run's ok result",
             ("tests/test_runner.py",)),
    Mutation("specreg_lib/metrics/checkerboard.py", "tol: float = 0.05) -> dict[str, float]:",
             "tol: float = 0.10) -> dict[str, float]:",
             "structure_metrics: default tolerance 0.10 (changes the headline valid fractions)",
             ("tests/test_checkerboard.py",)),
    Mutation("specreg_lib/training/loop.py", "with torch.jit.optimized_execution(False):",
             "with torch.jit.optimized_execution(True):",
             "train: TorchScript optimised again, so a resumed DiffWave run is one ulp off (LMNT's JIT silu)",
             ("tests/test_hardening_runs.py",)),
    Mutation("specreg_lib/training/loop.py", "    trainer.check_trained(resumed_from, skipped_before)",
             "    pass", "train: a run that skipped most of its steps reported done",
             ("tests/test_hardening_runs.py",)),
)


def copy_tree(dst: Path) -> None:
    """HEAD plus the work tree's uncommitted files into ``dst`` (git is only read)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dst)], input=archive, check=True)

    def listed(*flags: str) -> list[str]:
        out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", *flags], check=True,
                             capture_output=True).stdout
        return [p for p in out.decode().split("\0") if p]

    for rel in listed("-d"):  # deleted in the work tree
        (dst / rel).unlink(missing_ok=True)
    for rel in listed("-m", "-o", "--exclude-standard"):  # modified or new
        src = REPO / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            (dst / rel).write_bytes(src.read_bytes())


def run_tests(tree: Path, tests: list[str], timeout: float) -> tuple[int, str]:
    """pytest on ``tests`` inside ``tree`` (its own specreg_lib first on the path): (exit code, output)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, "timed out"
    return done.returncode, done.stdout + done.stderr


def first_failure(output: str) -> str:
    hit = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.M)
    return hit.group(1) if hit else "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--all", action="store_true", help="run the whole suite for each mutation (slow)")
    ap.add_argument("--only", default="", help="comma-separated mutation numbers (1-based), e.g. 3,8")
    ap.add_argument("--list", action="store_true", help="print the mutations and exit")
    ap.add_argument("--no-baseline", action="store_true", help="skip checking that the unmutated copy passes")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per pytest run (default 900)")
    args = ap.parse_args(argv)

    chosen = list(enumerate(MUTATIONS, 1))
    if args.only:
        wanted = {int(n) for n in args.only.split(",") if n.strip()}
        bad = wanted - {n for n, _ in chosen}
        if bad:
            ap.error(f"--only {sorted(bad)}: there are mutations 1-{len(MUTATIONS)}")
        chosen = [(n, m) for n, m in chosen if n in wanted]
    if args.list:
        for n, m in chosen:
            print(f"{n:2d}. {m.file}: {m.why}\n    tests: {', '.join(m.tests)}")
        return 0

    with tempfile.TemporaryDirectory(prefix="specreg-mutate-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        stale = [f"{n}. {m.file}: old text found {(tree / m.file).read_text().count(m.old)} times"
                 for n, m in chosen if (tree / m.file).read_text().count(m.old) != 1]
        if stale:
            print("the mutation list is stale (each old text must occur exactly once):\n  " + "\n  ".join(stale))
            return 2

        def tests_of(m: Mutation) -> list[str]:
            return ["tests"] if args.all else [t for t in m.tests if (tree / t).exists()]

        if not args.no_baseline:
            union = sorted({t for _, m in chosen for t in tests_of(m)})
            t0 = time.perf_counter()
            code, out = run_tests(tree, union, args.timeout)
            if code != 0:
                print(f"the unmutated copy fails its tests ({first_failure(out)}): fix that first\n{out[-3000:]}")
                return 2
            print(f"baseline: {len(union)} test file(s) pass unmutated ({time.perf_counter() - t0:.0f} s)")

        survivors = []
        for n, m in chosen:
            path = tree / m.file
            original = path.read_text()
            path.write_text(original.replace(m.old, m.new))
            missing = [t for t in m.tests if not (tree / t).exists()]
            t0 = time.perf_counter()
            try:
                code, out = run_tests(tree, tests_of(m), args.timeout)
            finally:
                path.write_text(original)
            took = time.perf_counter() - t0
            if code == 1:
                verdict = f"caught    by {first_failure(out)}"
            elif code == 0:
                verdict = "SURVIVED"
                survivors.append(n)
            else:
                verdict = f"ERROR     pytest exit {code}: {out.strip().splitlines()[-1] if out.strip() else ''}"
                survivors.append(n)
            note = f"  (missing test files: {', '.join(missing)})" if missing and not args.all else ""
            print(f"{n:2d}. {verdict}  [{took:.0f} s]  {m.file}: {m.why}{note}", flush=True)

    print(f"{len(chosen) - len(survivors)} of {len(chosen)} mutations caught"
          + (f"; survived or errored: {', '.join(map(str, survivors))}" if survivors else ""))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
