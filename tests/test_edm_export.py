"""Exports for other tools (models/edm_export.py, `specreg export`, `--export`): the state_dict + JSON export read back
by torch's weights-only loader and our loader; one-line errors for a missing or wrong EDM checkout; and, where an
EDM checkout is given (SPECREG_EDM_REPO, e.g. a clone of github.com/NVlabs/edm), EDM's own pickle.load, classes and
edm_sampler on our exports, run in a separate process that imports EDM only, giving the same images as our sampler.
"""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from specreg_lib.diffusion.generate import SamplerSettings, sample_images
from specreg_lib.kit.cli import main as cli
from specreg_lib.models import SongUNet, load_edm_checkpoint, read_edm_pickle, save_edm_checkpoint
from specreg_lib.models.edm_export import EDMExportError, export_network
from specreg_lib.models.edm_precond import PRECOND_NAMES, EDMDenoiser
from specreg_lib.models.songunet import DDPMPP, NCSNPP
from specreg_lib.models.tiny_edm import write_tiny_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")
EDM_REPO = os.environ.get("SPECREG_EDM_REPO")
needs_edm = pytest.mark.skipif(not EDM_REPO, reason="needs an EDM checkout: set SPECREG_EDM_REPO to a clone of "
                                                    "github.com/NVlabs/edm")


def tiny_net(arch: str = "ddpmpp", kind: str = "edm", label_dim: int = 0, seed: int = 0) -> EDMDenoiser:
    torch.manual_seed(seed)
    unet = SongUNet(**dict({"ddpmpp": DDPMPP, "ncsnpp": NCSNPP}[arch], img_resolution=8, in_channels=3,
                           out_channels=3, label_dim=label_dim, augment_dim=9, model_channels=8, channel_mult=[1, 2],
                           num_blocks=1, attn_resolutions=[4], dropout=0.1))
    with torch.no_grad():  # as if trained: no near-zero output convs
        for p in unet.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return EDMDenoiser(unet, kind).eval()


def probe(net: EDMDenoiser) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    g = torch.Generator().manual_seed(1)
    x, sigma = torch.randn(3, 3, 8, 8, generator=g), torch.tensor([0.01, 0.7, 20.0])
    labels = nn.functional.one_hot(torch.arange(3) % net.label_dim, net.label_dim).float() if net.label_dim else None
    return x, sigma, labels


RECORDS = dict(loss_fn={"class_name": "EDMLoss", "init_args": [], "init_kwargs": {"P_mean": -1.2, "P_std": 1.2,
                                                                                  "sigma_data": 0.5},
                        "attributes": {"P_mean": -1.2, "P_std": 1.2, "sigma_data": 0.5}},
               augment_pipe={"class_name": "AugmentPipe", "init_args": [], "init_kwargs": {"p": 0.12, "xflip": 1e8},
                             "attributes": {"p": 0.3}},  # an attribute changed after construction, as EDM's can be
               dataset_kwargs={"resolution": 8, "use_labels": False})


# ------------------------------------------------------------------------------ state_dict + JSON (always)
@pytest.mark.parametrize("arch, kind, label_dim", [("ddpmpp", "edm", 0), ("ncsnpp", "vp", 10), ("ddpmpp", "ve", 10)])
def test_state_dict_export_is_tensors_only_and_rebuilds_the_network(tmp_path, arch, kind, label_dim):
    net = tiny_net(arch, kind, label_dim)
    files = export_network(net, tmp_path / "net.pkl", "state_dict", **RECORDS)
    assert files == [tmp_path / "net.pt", tmp_path / "net.json"]
    # torch's own restricted loader reads the weights: a plain dict of tensors, equal to the network's
    state = torch.load(files[0], weights_only=True)
    assert type(state) is dict and set(state) == set(net.state_dict())
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())

    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")
    spec = json.loads(files[1].read_text(), parse_constant=no_constants)  # strict JSON: no Infinity / NaN
    kw = spec["network_kwargs"]
    assert kw["class_name"] == f"training.networks.{PRECOND_NAMES[kind]}" and kw["model_type"] == "SongUNet"
    assert kw["img_resolution"] == 8 and kw["img_channels"] == 3 and kw["label_dim"] == label_dim
    assert "sigma_max" not in kw if kind == "edm" else True  # EDMPrecond's default inf is left out, not null
    assert spec["state_dict"] == "net.pt" and spec["augment_pipe"]["attributes"]["p"] == 0.3
    x, sigma, labels = probe(net)
    for path in files:  # either file of the pair names the export
        back = load_edm_checkpoint(path)
        assert type(back) is EDMDenoiser and back.kind == kind and not back.training
        assert (back.sigma_min, back.sigma_max) == (net.sigma_min, net.sigma_max)
        assert back.edm_meta["dataset_kwargs"] == RECORDS["dataset_kwargs"]
        with torch.no_grad():
            assert torch.equal(back(x, sigma, labels), net(x, sigma, labels))


def test_state_dict_export_errors_name_the_file(tmp_path):
    export_network(tiny_net(), tmp_path / "a.pt", "state_dict")
    (tmp_path / "a.pt").rename(tmp_path / "moved.pt")
    with pytest.raises(FileNotFoundError, match=r"a\.pt do not exist; keep the \.pt beside its \.json"):
        load_edm_checkpoint(tmp_path / "a.json")
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="is not a state_dict export"):
        load_edm_checkpoint(tmp_path / "other.json")
    spec = json.loads((tmp_path / "a.json").read_text())
    spec["network_kwargs"]["model_channels"] = 16  # weights of 8 channels no longer fit
    (tmp_path / "b.json").write_text(json.dumps(dict(spec, state_dict="moved.pt")))
    with pytest.raises(ValueError, match="weights do not fit the rebuilt EDMPrecond"):
        load_edm_checkpoint(tmp_path / "b.json")


def test_native_format_needs_an_edm_checkout(tmp_path, monkeypatch, capsys):
    net = tiny_net()
    with pytest.raises(EDMExportError, match="pass --edm-repo PATH"):
        export_network(net, tmp_path / "x.pkl", "edm")
    with pytest.raises(EDMExportError, match="not an EDM checkout"):
        export_network(net, tmp_path / "x.pkl", "edm", edm_repo=tmp_path)
    with pytest.raises(EDMExportError, match="unknown export format 'onnx'"):
        export_network(net, tmp_path / "x.pkl", "onnx")
    src = write_tiny_checkpoint(tmp_path / "tiny.pkl", resolution=8, channels=8)
    monkeypatch.delenv("SPECREG_EDM_REPO", raising=False)  # the door's default is read when its parser is built
    for extra, why in (([], "pass --edm-repo PATH"), (["--edm-repo", str(tmp_path)], "not an EDM checkout")):
        assert cli(["export", str(src), str(tmp_path / "out.pkl"), *extra]) == 2
        err = capsys.readouterr().err
        assert why in err and err.count("\n") == 1 and err.startswith("specreg export: error: ")
    assert cli(["export", str(tmp_path / "missing.pkl"), str(tmp_path / "out.pt"), "--format", "state_dict"]) == 2
    assert "missing.pkl" in capsys.readouterr().err
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".out*"))  # nothing half-written


def test_door_writes_group_readable_files_atomically(tmp_path, capsys):
    src = write_tiny_checkpoint(tmp_path / "tiny.pkl", resolution=8, channels=8)
    old = os.umask(0o022)
    try:
        assert cli(["export", str(src), str(tmp_path / "out" / "net.pt"), "--format", "state_dict"]) == 0
    finally:
        os.umask(old)
    out = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in out] == ["net.json", "net.pt"]  # no temp file left beside them
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in out)  # mkstemp's 0600 is not what lands
    assert capsys.readouterr().out.count("wrote ") == 2
    back, orig = load_edm_checkpoint(tmp_path / "out" / "net.json"), load_edm_checkpoint(src)
    assert all(torch.equal(v, orig.state_dict()[k]) for k, v in back.state_dict().items())
    assert back.edm_meta["augment_pipe"] == orig.edm_meta["augment_pipe"]  # the source's records carried over


def test_sweep_refuses_edm_repo_without_export_before_training(tmp_path, capsys):
    from specreg_lib.kit.finetune import main

    base = ["--task", "edm", "--profile", "smoke", "--root", str(tmp_path / "ck"), "--dry-run"]
    assert main([*base, "--edm-repo", str(tmp_path)]) == 2
    assert "--edm-repo is where --export builds EDM's own pickle" in capsys.readouterr().err
    assert main([*base, "--export", "--edm-repo", str(tmp_path)]) == 2
    assert "not an EDM checkout" in capsys.readouterr().err
    assert not (tmp_path / "ck").exists()


# ----------------------------------------------------------------------- EDM's own code (SPECREG_EDM_REPO)
# Runs in a fresh interpreter that imports EDM only (never specreg): networks are loaded as EDM's generate.py does
# (pickle.load of the file, module source executed by EDM's persistence) or, for a state_dict export, built with
# EDM's classes by dnnlib.util.construct_class_by_name; images come from EDM's edm_sampler with its per-seed
# StackedRandomGenerator, D(x; sigma) from the loaded net.
EDM_SIDE = r'''
import json, pickle, sys
import torch
repo, jobs_path, out_path = sys.argv[1:4]
sys.path.insert(0, repo)
import dnnlib
from generate import StackedRandomGenerator, edm_sampler
torch.set_num_threads(1)
out = {}
for name, job in json.load(open(jobs_path)).items():
    try:
        if job["network"].endswith(".json"):
            spec = json.load(open(job["network"]))
            net = dnnlib.util.construct_class_by_name(**spec["network_kwargs"])
            net.load_state_dict(torch.load(job["network"][:-5] + ".pt", weights_only=True))
            net.eval()
        else:
            with dnnlib.util.open_url(job["network"], verbose=False) as f:
                data = pickle.load(f)
            net = data["ema"].to("cpu")
    except Exception as err:
        out[name] = {"error": f"{type(err).__name__}: {err}"}
        continue
    res = {"module": type(net).__module__, "class": type(net).__name__}
    if "seeds" in job:
        rnd = StackedRandomGenerator("cpu", job["seeds"])
        latents = rnd.randn([len(job["seeds"]), net.img_channels, net.img_resolution, net.img_resolution])
        labels = None
        if net.label_dim:
            labels = torch.eye(net.label_dim)[rnd.randint(net.label_dim, size=[len(job["seeds"])])]
        with torch.no_grad():
            res["images"] = edm_sampler(net, latents, labels, randn_like=rnd.randn_like,
                                        num_steps=job["steps"]).to(torch.float32)
    if "probe" in job:
        x, sigma, labels = torch.load(job["probe"])
        with torch.no_grad():
            res["D"] = net(x, sigma, labels)
    if not job["network"].endswith(".json"):
        res["loss_fn"] = vars(data["loss_fn"]).copy() if data["loss_fn"] is not None else None
        res["augment_p"] = getattr(data["augment_pipe"], "p", None)
        res["dataset_kwargs"] = data["dataset_kwargs"]
    out[name] = res
torch.save(out, out_path)
'''


def run_edm(tmp_path: Path, jobs: dict) -> dict:
    """Run ``jobs`` through EDM's own code in a fresh interpreter (cwd: the EDM checkout, like its generate.py)."""
    (tmp_path / "edm_side.py").write_text(EDM_SIDE)
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    done = subprocess.run([sys.executable, str(tmp_path / "edm_side.py"), EDM_REPO, str(tmp_path / "jobs.json"),
                           str(tmp_path / "edm_out.pt")], cwd=EDM_REPO, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(tmp_path / "edm_out.pt", weights_only=True)  # tensors, numbers, strings: data only


@needs_edm
def test_edm_loads_our_exports_and_samples_the_same_images(tmp_path):
    nets = {"ddpmpp_edm": tiny_net("ddpmpp", "edm", 0), "ncsnpp_edm_cond": tiny_net("ncsnpp", "edm", 10, seed=1),
            "ncsnpp_vp": tiny_net("ncsnpp", "vp", 0, seed=2), "ddpmpp_ve_cond": tiny_net("ddpmpp", "ve", 10, seed=3)}
    jobs, seeds, steps = {}, [0, 1, 7, 2**31 + 5], 4
    for name, net in nets.items():
        torch.save(probe(net), tmp_path / f"{name}.probe.pt")
        pkl = export_network(net, tmp_path / f"{name}.pkl", "edm", EDM_REPO, **RECORDS)[0]
        sd = export_network(net, tmp_path / f"{name}.pt", "state_dict", **RECORDS)[1]
        for fmt, path in (("pkl", pkl), ("json", sd)):
            jobs[f"{name}.{fmt}"] = {"network": str(path), "probe": str(tmp_path / f"{name}.probe.pt")}
            if PRECOND_NAMES[net.kind] == "EDMPrecond":
                jobs[f"{name}.{fmt}"].update(seeds=seeds, steps=steps)
    jobs["ours_unconverted"] = {"network": str(save_edm_checkpoint(nets["ddpmpp_edm"], tmp_path / "ours.pkl"))}
    # the pickles first: EDM's persistence then builds their classes from the source stored in the file (once
    # training.networks is imported, it maps that same source to the imported module instead)
    jobs = dict(sorted(jobs.items(), key=lambda item: item[0].endswith(".json")))
    edm = run_edm(tmp_path, jobs)
    # save_edm_checkpoint's pickles hold no EDM source: EDM's loader stops with the command that converts them
    assert "ImportError" in edm["ours_unconverted"]["error"] and "specreg export" in edm["ours_unconverted"]["error"]
    for name, net in nets.items():
        x, sigma, labels = probe(net)
        with torch.no_grad():
            ours_D = net(x, sigma, labels)
        for fmt in ("pkl", "json"):
            got = edm[f"{name}.{fmt}"]
            assert "error" not in got, got
            assert got["class"] == PRECOND_NAMES[net.kind]
            # the pickle's classes come from its own stored module source, as for NVIDIA's files
            assert got["module"].startswith("_imported_module_" if fmt == "pkl" else "training.networks")
            # float32 round-off of the output's scale (VE at sigma 20: c_out = 20), see the images below
            torch.testing.assert_close(got["D"], ours_D, rtol=1e-5, atol=2e-6 * ours_D.abs().max().item(),
                                       msg=f"{name}.{fmt}")
            if "images" in got:  # EDM's sampler and ours, same seeds, same batch: the same images up to
                # float32 round-off (measured 3e-5 of values ~1: our attention's output strides send GroupNorm down
                # another CPU kernel, 5e-7 per call), so 8-bit PNGs differ by at most one level, on rare pixels
                ours = sample_images(net, seeds, SamplerSettings(num_steps=steps), per_image=False)
                torch.testing.assert_close(got["images"], ours, rtol=0, atol=1e-4)
                png = lambda im: (im * 127.5 + 128).clip(0, 255).to(torch.int16)  # noqa: E731 - generate.py's
                step = (png(got["images"]) - png(ours)).abs()
                assert step.max() <= 1 and step.float().mean() < 0.01
        pkl = edm[f"{name}.pkl"]
        assert pkl["loss_fn"]["P_mean"] == -1.2 and pkl["augment_p"] == 0.3  # records rebuilt with EDM's classes
        assert pkl["dataset_kwargs"] == RECORDS["dataset_kwargs"]
        # our restricted reader reads the native file too (EDM's source kept as text, never run)
        ckpt = read_edm_pickle(tmp_path / f"{name}.pkl")
        assert ckpt.network.module_src == (Path(EDM_REPO) / "training" / "networks.py").read_text()
        assert ckpt.loss_fn.class_name == "EDMLoss" and ckpt.augment_pipe.attributes()["p"] == 0.3
        back = load_edm_checkpoint(tmp_path / f"{name}.pkl")
        assert all(torch.equal(v, net.state_dict()[k]) for k, v in back.state_dict().items())


@needs_edm
def test_sweep_export_with_edm_repo_writes_a_file_edm_loads(tmp_path, capsys):
    from specreg_lib.kit.finetune import main

    argv = ["--task", "edm", "--profile", "smoke", "--regularizer", "amp", "--root", str(tmp_path / "ck"),
            "--set", "train.steps=1", "--set", "sample.n_samples=2", "--set", "sample.num_steps=1",
            "--export", "--edm-repo", EDM_REPO]
    assert main(argv) == 0
    run_dir = next((tmp_path / "ck" / "edm_afhqv2").rglob("network-snapshot-0000001.pkl")).parent
    names = sorted(p.name for p in run_dir.glob("network-snapshot-*"))
    assert names == [f"network-snapshot-0000001.{s}" for s in ("json", "pkl", "pt")]
    ours = load_edm_checkpoint(run_dir / "network-snapshot-0000001.json")
    torch.save(probe_at(ours), tmp_path / "probe.pt")
    edm = run_edm(tmp_path, {"snap": {"network": str(run_dir / "network-snapshot-0000001.pkl"),
                                      "probe": str(tmp_path / "probe.pt")}})["snap"]
    assert "error" not in edm, edm
    with torch.no_grad():
        torch.testing.assert_close(edm["D"], ours(*probe_at(ours)), rtol=1e-5, atol=1e-6)
    assert edm["augment_p"] == ours.edm_meta["augment_pipe"]["attributes"]["p"]  # the source's augment settings


def probe_at(net: EDMDenoiser) -> tuple[torch.Tensor, torch.Tensor, None]:
    g = torch.Generator().manual_seed(2)
    R = net.img_resolution
    return torch.randn(2, net.img_channels, R, R, generator=g), torch.tensor([0.05, 5.0]), None
