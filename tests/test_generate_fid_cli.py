"""The doors: ``specreg generate`` under 2 gloo ranks writes the same folder as one process, bit for bit;
``specreg fid`` end to end offline (a TorchScript stand-in for Inception); bad input exits 2 with one line."""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image
from test_fid import RandomConvFeatures, _images

from specreg_lib.data.seed_images import image_path, list_seed_images
from specreg_lib.diffusion.generate import generate_to_folder
from specreg_lib.kit import cli

SEEDS = list(range(7))


def _rank_worker(rank: int, tmp: str, port: int) -> None:
    """One of 2 torchrun-like ranks running the CLI itself (env:// rendezvous, gloo on CPU)."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from specreg_lib.kit.generate import main

    rc = main(["--network", f"{tmp}/tiny.pkl", "--outdir", f"{tmp}/ranks", "--seeds", "0-6", "--steps", "2",
               "--batch", "2", "--no-progress", "--device", "cpu"])
    with open(f"{tmp}/rank{rank}.json", "w") as fh:
        json.dump({"rc": rc}, fh)


@pytest.mark.slow
def test_two_ranks_write_the_single_process_folder(tmp_path, capsys):
    from specreg_lib.diffusion.generate import SamplerSettings
    from specreg_lib.models import load_edm_checkpoint

    pkl = tiny_songunet_checkpoint(tmp_path / "tiny.pkl")
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_rank_worker, args=(str(tmp_path), port), nprocs=2, join=True)
    generate_to_folder(load_edm_checkpoint(pkl), tmp_path / "one", SEEDS, SamplerSettings(num_steps=2),
                       batch_size=3, progress=False)
    one, ranks = list_seed_images(tmp_path / "one"), list_seed_images(tmp_path / "ranks")
    assert sorted(ranks) == SEEDS
    assert all(np.array_equal(np.asarray(Image.open(one[s])), np.asarray(Image.open(ranks[s]))) for s in SEEDS)
    assert all(json.loads((tmp_path / f"rank{r}.json").read_text()) == {"rc": 0} for r in (0, 1))
    record = json.loads((tmp_path / "ranks" / "generation.json").read_text())
    assert record["world_size"] == 2 and record["settings"]["num_steps"] == 2 and record["settings"]["nfe"] == 3


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("argv, match", [
    (["generate", "--network", "x.pkl", "--outdir", "o", "--seeds", "5-1"], "seeds '5-1'"),
    (["generate", "--network", "x.pkl", "--outdir", "o", "--steps", "0"], "num_steps"),
    (["generate", "--network", "x.pkl", "--outdir", "o", "--batch", "0"], "--batch"),
    (["fid", "no/such/folder", "--ref", "r.npz"], "no such folder"),
    (["fid", "--make-ref", "no/such/dataset", "--ref", "r.npz"], "no such folder"),
    (["fid", "--ref", "r.npz"], "give a folder"),
])
def test_bad_input_exits_2_with_one_line(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    assert match in _err(capsys)


def test_fid_cli_offline_missing_inception_and_reference(tmp_path, capsys, monkeypatch):
    from specreg_lib.metrics import fid as F

    monkeypatch.setattr(F, "cleanfid_inception_path", lambda: tmp_path / "none" / F.INCEPTION)
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(_images(1, 0)[0]).save(folder / "a.png")
    F.save_reference_stats(tmp_path / "r.npz", np.zeros(3), np.eye(3), "legacy_tensorflow", 10)
    assert cli.main(["fid", str(folder), "--ref", str(tmp_path / "r.npz"), "--offline"]) == 2
    err = _err(capsys)
    assert F.INCEPTION in err and "nvlabs-fi-cdn.nvidia.com" in err and "local_path" in err
    assert cli.main(["fid", str(folder), "--ref", str(tmp_path / "absent.npz"), "--offline"]) == 2
    assert "fid-refs" in _err(capsys)
    assert cli.main(["fid", str(folder), "--ref", str(tmp_path / "r.npz"), "--mode", "clean"]) == 2
    assert "holds legacy_tensorflow statistics" in _err(capsys)


def test_fid_cli_end_to_end(tmp_path, capsys, monkeypatch):
    """make-ref, then the seed-set protocol, with a small random conv net in Inception's place (a 2048-d sqrtm
    costs seconds; test_fid covers loading a local Inception copy)."""
    from specreg_lib.metrics import fid as F

    monkeypatch.setattr(F, "inception_extractor", lambda *a, **k: RandomConvFeatures())
    for s, a in enumerate(_images(12, 1)):
        image_path(tmp_path / "gen", s).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(image_path(tmp_path / "gen", s))
    common = ["--offline", "--no-progress", "--device", "cpu"]  # compared with CPU features below
    assert cli.main(["fid", "--make-ref", str(tmp_path / "gen"), "--ref", str(tmp_path / "ref.npz"), *common]) == 0
    assert cli.main(["fid", str(tmp_path / "gen"), "--ref", str(tmp_path / "ref.npz"), *common,
                     "--out", str(tmp_path / "self.json")]) == 0
    assert json.loads((tmp_path / "self.json").read_text())["values"][0] == pytest.approx(0.0, abs=1e-8)
    assert cli.main(["fid", str(tmp_path / "gen"), "--ref", str(tmp_path / "ref.npz"), *common, "--num", "4",
                     "--out", str(tmp_path / "sets.json")]) == 0
    res = json.loads((tmp_path / "sets.json").read_text())
    ref = F.load_reference_stats(tmp_path / "ref.npz", "legacy_tensorflow")
    files = sorted((tmp_path / "gen" / "000000").glob("*.png"))
    want = [F.fid(files[4 * k:4 * k + 4], ref, extractor=RandomConvFeatures(), progress=False) for k in range(3)]
    assert res["seed_ranges"] == [[0, 3], [4, 7], [8, 11]] and res["values"] == pytest.approx(want, rel=1e-12)
    assert res["min"] == min(want) and res["std"] == pytest.approx(np.std(want, ddof=1))
    assert "+-" in capsys.readouterr().out


def tiny_songunet_checkpoint(path):
    """A random 3x16x16 DDPM++-style SongUNet under EDM preconditioning, saved in EDM's pickle format."""
    from specreg_lib.models import EDMDenoiser, SongUNet, save_edm_checkpoint

    torch.manual_seed(0)
    net = EDMDenoiser(SongUNet(img_resolution=16, in_channels=3, out_channels=3, model_channels=16,
                               channel_mult=[1, 2], channel_mult_emb=2, num_blocks=1, attn_resolutions=[8],
                               dropout=0.0))
    with torch.no_grad():  # EDM initialises the output convs near zero: give every weight a say
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return save_edm_checkpoint(net, path)


def test_generate_cli_with_an_edm_checkpoint(tmp_path, capsys):
    from specreg_lib.data.seed_images import to_uint8
    from specreg_lib.diffusion.generate import SamplerSettings, sample_images
    from specreg_lib.models import load_edm_checkpoint

    pkl = tiny_songunet_checkpoint(tmp_path / "tiny.pkl")
    argv = ["generate", "--network", str(pkl), "--outdir", str(tmp_path / "out"), "--seeds", "0-3", "--steps", "2",
            "--batch", "3", "--grid", str(tmp_path / "grid.png"), "--grid-cols", "2", "--no-progress",
            "--device", "cpu"]  # compared bit for bit with CPU sampling below
    assert cli.main(argv) == 0
    assert "wrote 4 images" in capsys.readouterr().out
    want = to_uint8(sample_images(load_edm_checkpoint(pkl), [0, 1, 2, 3], SamplerSettings(num_steps=2)))
    got = list_seed_images(tmp_path / "out")
    assert all(np.array_equal(np.asarray(Image.open(got[s])), want[s].permute(1, 2, 0).numpy()) for s in range(4))
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape == (32, 32, 3) and np.array_equal(grid[16:, :16], want[2].permute(1, 2, 0).numpy())
    assert cli.main(argv) == 0 and "wrote 0 images (4 were already there)" in capsys.readouterr().out
    record = json.loads((tmp_path / "out" / "generation.json").read_text())
    assert record["network"] == str(pkl) and record["image"] == {"channels": 3, "resolution": 16, "label_dim": 0}
    assert cli.main(["generate", "--network", str(tmp_path / "absent.pkl"), "--outdir", "o", "--offline"]) == 2
    assert "absent.pkl" in _err(capsys)
    assert cli.main([*argv[:7], "--steps", "2", "--class", "1"]) == 2
    assert "class_idx=1" in _err(capsys)


def test_generate_and_fid_choose_the_device_and_say_so(tmp_path, capsys, monkeypatch):
    """--device defaults to auto in both doors: CUDA when torch sees a GPU, else the CPU; the choice is printed."""
    from specreg_lib.metrics import fid as F

    monkeypatch.setattr(F, "inception_extractor", lambda *a, **k: RandomConvFeatures())
    want = "cuda" if torch.cuda.is_available() else "cpu"  # what "auto" means on this machine

    def device_line() -> str:
        return next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("device: "))

    pkl = tiny_songunet_checkpoint(tmp_path / "tiny.pkl")
    assert cli.main(["generate", "--network", str(pkl), "--outdir", str(tmp_path / "out"), "--seeds", "0-1",
                     "--steps", "2", "--no-progress"]) == 0
    assert device_line().startswith(f"device: {want} (--device auto")
    assert json.loads((tmp_path / "out" / "generation.json").read_text())["device"] == want
    ref = str(tmp_path / "ref.npz")
    assert cli.main(["fid", "--make-ref", str(tmp_path / "out"), "--ref", ref, "--no-progress"]) == 0
    assert device_line().startswith(f"device: {want} (--device auto")
    assert cli.main(["fid", str(tmp_path / "out"), "--ref", ref, "--no-progress", "--device", "cpu"]) == 0
    line = device_line()
    assert line.startswith("device: cpu (--device cpu)")
    assert line.endswith("unused (auto or cuda uses it)") == torch.cuda.is_available()
