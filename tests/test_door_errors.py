"""One error path at every door (issue 20, findings 5, 7, 8): an expected bad input (an option, a seed list, a
checkpoint with NaN weights, a sampler that returns NaN, a full disk, a corrupt record, a held lock) ends
``specreg generate / sweep / finetune / table1 / export`` with exactly one line on stderr naming the option or file,
exit code 2, checked before any work; a genuine bug keeps its traceback. Hostile inputs are built here, in tmp_path."""

from __future__ import annotations

import errno
import json
import math
import os
import time
import tracemalloc
from types import SimpleNamespace

import pytest
import torch

from specreg_lib.diffusion import edm
from specreg_lib.diffusion.generate import (
    NonFiniteImagesError,
    SamplerSettings,
    SamplerSettingsError,
    generate_to_folder,
)
from specreg_lib.errors import InputError
from specreg_lib.io import CorruptFileError, atomic_path, read_json
from specreg_lib.kit import cli
from specreg_lib.text import MAX_SEED, MAX_VALUES, OptionError, parse_int_list, parse_seeds

TORCH_DISK_FULL = "[enforce fail at inline_container.cc:664] . unexpected pos 128 vs 0"


def _one_line(capsys, door: str | None = None) -> str:
    """stderr of the last door: exactly one line (what every door promises for a bad input), printed by the one
    error path (``specreg <door>: error: ...``) when ``door`` is given."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert door is None or err.startswith(f"specreg {door}: error: "), err
    return err


def _raises(err: BaseException):
    def call(*args, **kwargs):
        raise err
    return call


def _tiny_checkpoint(path, nan: bool = False):
    """A 1x8x8 SongUNet under EDM preconditioning in EDM's pickle format; ``nan``: every weight NaN."""
    from specreg_lib.models import EDMDenoiser, SongUNet, save_edm_checkpoint

    torch.manual_seed(0)
    net = EDMDenoiser(SongUNet(img_resolution=8, in_channels=1, out_channels=1, model_channels=8, channel_mult=[1],
                               channel_mult_emb=1, num_blocks=1, attn_resolutions=[], dropout=0.0))
    if nan:
        with torch.no_grad():
            for p in net.parameters():
                p.fill_(math.nan)
    return save_edm_checkpoint(net, path)


def _pngs(folder) -> list:
    return sorted(p.name for p in folder.rglob("*.png")) if folder.exists() else []


# ---------------------------------------------------------------- seed lists: one grammar, bounded before expanding


def test_a_huge_seed_range_is_refused_before_it_is_expanded(capsys, tmp_path):
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(OptionError, match=r"--seeds '0-3000000000': 3000000001 values .* 1000000"):
        parse_seeds("0-3000000000")
    with pytest.raises(OptionError, match="values is more than"):
        parse_int_list("5,0-2999999999")  # the notebooks' list[int] grammar: the same cap
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # expanding would take ~100 GB of Python ints; refused from the text alone, in well under a second
    assert peak < 1_000_000 and time.perf_counter() - t0 < 1.0
    # the cap is exact: MAX_VALUES values pass, one more does not
    assert parse_int_list("1-10", max_values=10) == list(range(1, 11))
    with pytest.raises(OptionError):
        parse_int_list("1-10,11", max_values=10)
    assert len(parse_seeds(f"0-{MAX_VALUES - 1}")) == MAX_VALUES
    # and at the doors: one line, exit 2, fast (generate's was a MemoryError)
    t0 = time.perf_counter()
    assert cli.main(["generate", "--network", str(tmp_path / "none.pkl"), "--outdir", str(tmp_path / "o"),
                     "--seeds", "0-3000000000"]) == 2
    assert "--seeds '0-3000000000'" in _one_line(capsys) and time.perf_counter() - t0 < 5


@pytest.mark.parametrize("text", ["99999999999999999999999", str(MAX_SEED + 1)])
def test_seeds_beyond_what_generators_take_are_refused(text, capsys, tmp_path):
    assert parse_seeds(str(MAX_SEED)) == [MAX_SEED]
    torch.Generator().manual_seed(MAX_SEED + 1)  # the bound is one every seeded generator takes, shard seed + 1 too
    with pytest.raises(OptionError, match=rf"--seeds '{text}': seed {text} is above {MAX_SEED}"):
        parse_seeds(text)
    assert cli.main(["sweep", "checkerboard", "--seeds", text, "--dry-run", "--root", str(tmp_path)]) == 2
    assert f"--seeds '{text}'" in _one_line(capsys)


def test_table1_speaks_the_one_seed_grammar(capsys, tmp_path):
    """``table1 --seeds 1-3`` (was "invalid literal for int()"): three training seeds, so 3 x (pretrained,
    baseline, amp_unweighted) cells in the smoke plan."""
    assert cli.main(["table1", "--seeds", "1-3", "--status", "--json", "--root", str(tmp_path)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["cells"] == 3 * 3


@pytest.mark.parametrize("argv, words", [
    (["--seeds", "0-3000000000"], ["--seeds", "1000000"]),
    (["--images", "1000000000000"], ["--images", "500000"]),  # was a MemoryError (its seed list)
    (["--images", "1"], ["--images", "[2,"]),
    (["--families", "xx"], ["--families", "vp, ve"]),  # was a ValueError traceback
    (["--weightings", "zz"], ["--weightings", "unweighted"]),  # was a ValueError traceback
    (["--variants", "amp,amp"], ["--variants", "none twice"]),
])
def test_table1_options_are_checked_before_any_work(argv, words, capsys, tmp_path):
    t0 = time.perf_counter()
    assert cli.main(["table1", *argv, "--status", "--root", str(tmp_path)]) == 2
    err = _one_line(capsys)
    assert all(w in err for w in words), err
    assert time.perf_counter() - t0 < 5 and not (tmp_path / "table1").exists()


def test_a_corrupt_table1_record_names_the_file(capsys, tmp_path):
    from specreg_lib.experiments.edm.table1 import cell_dir, cells, table1_plan

    plan = table1_plan("smoke")
    fid = cell_dir(plan, cells(plan)[0], tmp_path) / "fid.json"
    fid.parent.mkdir(parents=True)
    fid.write_text('{"fid": 3.1, "key": {"prof')  # truncated
    assert cli.main(["table1", "--status", "--root", str(tmp_path)]) == 2  # was a raw JSONDecodeError
    err = _one_line(capsys)
    assert str(fid) in err and "not readable JSON" in err and "delete" in err
    fid.write_text("[1, 2]")  # parses, but is no record
    with pytest.raises(CorruptFileError, match="holds a JSON list"):
        read_json(fid)


# ---------------------------------------------------------------- generate: every option at the door


@pytest.mark.parametrize("option, value, rule", [
    ("--rho", "inf", "finite"), ("--rho", "0", "> 0"), ("--rho", "nan", "finite"),
    ("--sigma-max", "1e-30", "above sigma_min"), ("--sigma-max", "inf", "finite"),
    ("--sigma-min", "nan", "finite"), ("--sigma-min", "-1", ">= 0"),
    ("--S-churn", "nan", "finite"), ("--S-churn", "-1", ">= 0"), ("--S-noise", "nan", "finite"),
    ("--S-noise", "0", "> 0"), ("--S-min", "inf", "finite"), ("--S-max", "nan", ">= S_min"),
    ("--steps", "0", "[1, 10000]"), ("--steps", "1000000000", "[1, 10000]"),
])
def test_generate_options_are_named_before_the_checkpoint_loads(option, value, rule, capsys, tmp_path):
    """The checkpoint does not exist: a message about the option (not the file) shows the option came first."""
    assert cli.main(["generate", "--network", str(tmp_path / "absent.pkl"), "--outdir", str(tmp_path / "o"),
                     option, value]) == 2
    err = _one_line(capsys)
    assert err.startswith(f"specreg generate: error: {option} {value}") and rule in err, err
    assert "absent.pkl" not in err


def test_sampler_settings_name_the_field_and_the_samplers_check_their_arguments():
    for field, value in [("rho", math.inf), ("S_noise", math.nan), ("sigma_max", 1e-30), ("S_churn", math.nan),
                         ("num_steps", True), ("num_steps", 2.0)]:
        with pytest.raises(SamplerSettingsError, match=f"^{field}=") as info:
            SamplerSettings(**{field: value})
        assert info.value.field == field and isinstance(info.value, InputError | ValueError)
    assert SamplerSettings(S_max=math.inf, S_churn=40, S_min=0.05, S_noise=1.007).S_max == math.inf
    x, sigmas = torch.randn(2, 1, 4, 4, dtype=torch.float64), edm.sigma_steps(4)
    for bad in ({"S_churn": math.nan}, {"S_noise": math.nan}, {"S_max": math.nan}, {"S_min": 2.0, "S_max": 1.0}):
        with pytest.raises(ValueError, match="S_churn"):
            edm.heun_sample(lambda x, s: x, x, sigmas, **bad)
    with pytest.raises(ValueError, match="finite"):
        edm.euler_sample(lambda x, s: x, x, [1.0, math.nan, 0.0])
    with pytest.raises(ValueError, match="rho"):
        edm.sigma_steps(18, rho=math.inf)  # was a flat schedule of 1s
    with pytest.raises(ValueError, match="strictly decreasing"):
        edm.sigma_steps(18, rho=1e300)  # float64 has no digits left: 18 copies of one level


def test_generate_refuses_a_checkpoint_of_nan_weights(capsys, tmp_path):
    """An all-NaN checkpoint wrote black PNGs, exit 0; now one line naming it, exit 2, no PNG."""
    pkl = _tiny_checkpoint(tmp_path / "nan.pkl", nan=True)
    out = tmp_path / "out"
    assert cli.main(["generate", "--network", str(pkl), "--outdir", str(out), "--seeds", "0-3", "--steps", "2",
                     "--no-progress", "--device", "cpu"]) == 2
    err = _one_line(capsys)
    assert str(pkl) in err and "NaN" in err and "--network" in err
    assert _pngs(out) == []


class _NaNAfter(torch.nn.Module):
    """D(x; sigma) = x / (1 + sigma^2) on 1x8x8 images, NaN from call ``after`` on (a net that diverges)."""

    img_channels, img_resolution, label_dim = 1, 8, 0

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after, self.calls = after, 0

    def forward(self, x, sigma, labels=None):
        self.calls += 1
        y = x / (1 + sigma.view(-1, 1, 1, 1) ** 2)
        return y * math.nan if self.calls > self.after else y


def test_a_non_finite_batch_is_never_written(tmp_path):
    """Euler with 2 steps, one image per call: 4 calls a batch of 2. NaN from call 5: batch 1 (seeds 0, 1) is
    written, batch 2 (seeds 2, 3) is refused by seed and source, and none of its PNGs exists."""
    out = tmp_path / "out"
    with pytest.raises(NonFiniteImagesError, match=r"my\.pkl: .*seed\(s\) 2, 3; .*\(2 earlier ones were\)"):
        generate_to_folder(_NaNAfter(after=4), out, [0, 1, 2, 3], SamplerSettings(num_steps=2, solver="euler"),
                           batch_size=2, progress=False, per_image=True, source="my.pkl")
    assert _pngs(out) == ["000000.png", "000001.png"]
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temp file left either


# ---------------------------------------------------------------- a full disk says so


def _statvfs(free_blocks: int):
    real = os.statvfs

    def fake(path):
        st = real(path)
        return SimpleNamespace(f_bavail=free_blocks, f_frsize=4096, f_bsize=st.f_bsize)
    return fake


def test_a_torch_write_on_a_full_disk_is_reported_as_disk_full(tmp_path, monkeypatch):
    target = tmp_path / "checkpoint.pt"

    def write(tmp):  # what torch.save does on a full disk: part of the file, then its own words
        tmp.write_bytes(b"PK\x03\x04" + bytes(124))
        raise RuntimeError(TORCH_DISK_FULL)

    monkeypatch.setattr(os, "statvfs", _statvfs(free_blocks=3))
    with pytest.raises(OSError) as info:
        with atomic_path(target) as tmp:
            write(tmp)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert isinstance(info.value.__cause__, RuntimeError)  # torch's words are kept as the cause
    assert list(tmp_path.iterdir()) == []  # neither the target nor the temp file
    # with room on the disk the same error is torch's own, untouched (a bug is not called a full disk)
    monkeypatch.setattr(os, "statvfs", _statvfs(free_blocks=10**6))
    with pytest.raises(RuntimeError, match="enforce fail"):
        with atomic_path(target) as tmp:
            write(tmp)
    # an ENOSPC raised while writing the temp file is named after the target, not the temp
    with pytest.raises(OSError) as info:
        with atomic_path(target) as tmp:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert info.value.filename == str(target)


def test_the_door_says_disk_full_naming_the_file(tmp_path, monkeypatch, capsys):
    """``specreg generate`` when PIL's PNG write fails on a full disk (PIL says "broken data stream")."""
    from PIL import Image

    pkl = _tiny_checkpoint(tmp_path / "tiny.pkl")

    def save(self, fp, *args, **kwargs):
        open(fp, "wb").write(b"\x89PNG")
        raise OSError("broken data stream when writing image file")

    monkeypatch.setattr(Image.Image, "save", save)
    monkeypatch.setattr(os, "statvfs", _statvfs(free_blocks=0))
    out = tmp_path / "out"
    assert cli.main(["generate", "--network", str(pkl), "--outdir", str(out), "--seeds", "0", "--steps", "1",
                     "--no-progress", "--device", "cpu"]) == 2
    err = _one_line(capsys)
    assert f"disk full while writing {out / '000000' / '000000.png'}" in err
    assert _pngs(out) == [] and not [p for p in out.rglob(".*.tmp*")]


# ---------------------------------------------------------------- the training doors: one path, nothing too broad


def test_sweep_routes_every_input_error_and_keeps_bugs(tmp_path, monkeypatch, capsys):
    from specreg_lib.data.edm_datasets import DatasetError
    from specreg_lib.experiments import RunLocked
    from specreg_lib.kit import sweep as door

    argv = ["sweep", "checkerboard", "--regularizer", "baseline", "--seeds", "1", "--root", str(tmp_path)]
    for err, words in ((RunLocked("run folder X is in use by pid 1; wait, or pass --skip-locked"), "pid 1"),
                       (DatasetError("data/x.zip: member ../../evil.png leaves the archive"), "../../evil.png"),
                       (CorruptFileError("X/metrics.json: not readable JSON; delete it"), "X/metrics.json"),
                       (OSError(errno.ENOSPC, "No space left on device", "X/checkpoint.pt"),
                        "disk full while writing X/checkpoint.pt")):
        monkeypatch.setattr(door, "run_sweep", _raises(err))
        assert cli.main(argv) == 2  # RunLocked was exit code 1
        assert words in _one_line(capsys, "sweep")
    monkeypatch.setattr(door, "run_sweep", _raises(ZeroDivisionError("a bug")))  # its traceback, not a line
    with pytest.raises(ZeroDivisionError):
        cli.main(argv)
    monkeypatch.setattr(door, "run_sweep", _raises(OSError(errno.EACCES, "Permission denied", "X")))
    with pytest.raises(PermissionError):  # an OSError other than a full disk is not swallowed either
        cli.main(argv)


@pytest.mark.parametrize("argv, words", [
    (["sweep", "edm_afhqv2", "--profile", "cpu", "--fields"], ["--profile cpu", "smoke, paper"]),  # was a traceback
    (["finetune", "--preset", "ffhq-64", "--dry-run"], ["--preset", "--task"]),
    (["sweep", "checkerboard", "--resume", "--seeds", "4"], ["--resume", "leave out --resume"]),  # was 3 lines
])
def test_training_door_usage_errors_are_one_line(argv, words, capsys, tmp_path):
    assert cli.main([*argv, "--root", str(tmp_path)]) == 2
    err = _one_line(capsys, argv[0])  # the doors' own "error: ..." lines now come from the one path
    assert all(w in err for w in words), err


def test_export_checks_out_before_reading_src(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert cli.main(["export", str(tmp_path / "absent.pkl"), str(blocker / "net.pt"), "--format", "state_dict"]) == 2
    err = _one_line(capsys)
    assert f"OUT {blocker / 'net.pt'}" in err and "absent.pkl" not in err  # was: SRC read first
    assert cli.main(["export", str(tmp_path / "absent.pkl"), str(tmp_path / "net.pt"), "--format", "state_dict",
                     "--offline"]) == 2
    assert "SRC" in _one_line(capsys)

