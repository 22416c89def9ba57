"""Hardening (issue 9): mixed precision, the NaN guard with a spectral term, untrusted files, downloads, output
files, the spectrum CLI's numbers, and the notebook kernel's noise. Bad-input messages: test_bad_inputs.py."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pickle
import stat
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from specreg_lib import assets
from specreg_lib.diffusion import DDPMLoss, DDPMSchedule, EDMLoss, Precond, Regularizer, beta_schedule
from specreg_lib.diffusion.ddpm import ddim_timesteps
from specreg_lib.io import atomic_path, clean_stale_temps, write_json
from specreg_lib.kit import spectrum
from specreg_lib.metrics import radial_power_spectrum
from specreg_lib.models.unet import UNet, UNetConfig
from specreg_lib.spectral import SpectralLoss
from specreg_lib.training import TrainConfig, load_checkpoint, train

LOSSES = [("amp", {}), ("amp", {"norm": "backward"}), ("amp_phase", {}), ("amp_phase", {"norm": "backward"}),
          ("amp_phase", {"coupling": "global"}), ("wavelet", {"wave": "haar"}), ("wavelet", {"wave": "bior1.3",
                                                                                           "levels": 2})]
# Under autocast the losses compute in float32 from the half-precision input, so the only difference to fp32
# is the input's rounding (2^-11 / 2^-8 per element), which averages out over 12k elements: measured at most
# 8e-6 (fp16) and 2.5e-5 (bf16) relative on these inputs. Before the fix fp16 returned inf for norm="backward".
RTOL = {torch.float16: 1e-4, torch.bfloat16: 5e-4}


def _half_ok(dtype: torch.dtype) -> bool:
    with torch.autocast("cpu", dtype=dtype):
        return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == dtype


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("kind,options", LOSSES, ids=[f"{k}-{'-'.join(map(str, o.values()))}" for k, o in LOSSES])
def test_losses_under_cpu_autocast_are_float32_and_match_fp32(kind, options, dtype):
    """64x64 images: a backward-normed spectrum sums far past fp16's 65504; the result must not notice."""
    if not _half_ok(dtype):
        pytest.skip(f"torch {torch.__version__} has no {dtype} autocast on CPU")
    g = torch.Generator().manual_seed(0)
    x0, x0_hat = torch.randn(2, 3, 64, 64, generator=g), torch.randn(2, 3, 64, 64, generator=g)
    loss = SpectralLoss(kind, **options)
    ref = loss(x0_hat, x0)
    net_out = x0_hat.to(dtype).requires_grad_()  # what a half-precision net hands the loss
    with torch.autocast("cpu", dtype=dtype):
        value = loss(net_out, x0)
    value.sum().backward()
    assert value.dtype == torch.float32 and torch.isfinite(value).all()
    torch.testing.assert_close(value, ref, rtol=RTOL[dtype], atol=0)
    assert net_out.grad.dtype == dtype and torch.isfinite(net_out.grad.float()).all()


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("kind,options", LOSSES[:5], ids=[f"{k}-{i}" for i, (k, _) in enumerate(LOSSES[:5])])
def test_losses_under_cuda_autocast_are_float32_and_match_fp32(kind, options, dtype):
    """The same on CUDA, where autocast really runs matmuls in fp16/bf16."""
    g = torch.Generator(device="cuda").manual_seed(0)
    x0, x0_hat = (torch.randn(2, 3, 64, 64, generator=g, device="cuda") for _ in range(2))
    loss = SpectralLoss(kind, **options)
    with torch.autocast("cuda", dtype=dtype):
        value = loss(x0_hat.to(dtype), x0)
    assert value.dtype == torch.float32 and torch.isfinite(value).all()
    torch.testing.assert_close(value, loss(x0_hat.to(dtype).float(), x0), rtol=1e-5, atol=0)


def _toy_unet() -> UNet:
    torch.manual_seed(0)
    return UNet(UNetConfig(resolution=16, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                           mid_attention=False, norm_groups=4))


REGS = [None, Regularizer("amp"), Regularizer("amp_phase"), Regularizer("wavelet", options={"levels": 2}),
        Regularizer("wavelet", options={"wave": "bior1.3", "levels": 2})]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_toy_training_under_autocast_skips_no_step(precision):
    """Each regularizer (the toy's options), 2 steps of a small U-Net on 16x16 data under CPU autocast: the NaN
    guard never skips a step and every loss is finite (before the fix fp16 lost 11 of 12 steps to inf).

    GradScaler's own calibration is separate (``overflow_steps``): at its initial scale 2^16 the scaled gradients
    of this net already reach 29k of fp16's 65k without any spectral term, so a first-step overflow that halves
    the scale is PyTorch's documented dynamic loss scaling, not a failure of the losses."""
    if not _half_ok(torch.bfloat16 if precision == "bf16" else torch.float16):
        pytest.skip(f"torch {torch.__version__} has no {precision} autocast on CPU")
    sched = DDPMSchedule(beta_schedule("linear", 100))
    for reg in REGS:
        cfg = TrainConfig(steps=2, batch_size=2, precision=precision, progress=False, ema_decay=0.0,
                          max_nonfinite=0)  # max_nonfinite=0: the first skipped step raises
        res = train(_toy_unet(), DDPMLoss(sched, regularizer=reg), lambda n, g: torch.randn(n, 1, 16, 16, generator=g),
                    cfg)
        assert res.nonfinite_steps == 0 and all(np.isfinite(res.history["loss"])), reg
        if precision == "bf16":  # no scaler: every step updates the weights
            assert res.overflow_steps == 0, reg


class _NaNData:
    """Data whose step-1 batch holds a NaN (a corrupt image)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, n: int, g: torch.Generator) -> torch.Tensor:
        self.calls += 1
        x = torch.randn(n, 1, 8, 8, generator=g)
        return x.index_fill(0, torch.tensor([0]), float("nan")) if self.calls == 2 else x


def test_nan_guard_skips_a_step_with_a_spectral_term_and_names_the_data(tmp_path):
    """A NaN in the data reaches x0_hat and the spectral term: the step is skipped (not a crash), the run goes
    on, and past max_nonfinite the error names the step and blames the data, not x0_hat."""
    loss = EDMLoss(regularizer=Regularizer("amp_phase"))
    cfg = TrainConfig(steps=4, batch_size=2, progress=False, ema_decay=0.0, max_nonfinite=1)
    res = train(Precond(_ConvNet()), loss, _NaNData(), cfg)
    assert res.nonfinite_steps == 1 and res.step == 4
    assert all(torch.isfinite(p).all() for p in res.model.parameters())
    always = lambda n, g: torch.full((n, 1, 8, 8), float("nan"))  # noqa: E731
    with pytest.raises(FloatingPointError, match=r"step 1 .*came from the DATA"):
        train(Precond(_ConvNet()), loss, always, cfg, tmp_path / "c.pt")
    with pytest.raises(FloatingPointError, match="came from the MODEL"):  # finite data, a net that emits inf
        train(Precond(_InfNet()), loss, lambda n, g: torch.randn(n, 1, 8, 8, generator=g), cfg)


class _ConvNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x, c_noise):
        return self.conv(x)


class _InfNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, c_noise):
        return x * self.w * float("inf")


# ----------------------------------------------------------------------------------------- untrusted files

class _Planted:
    def __reduce__(self):
        return (os.system, ("touch " + os.environ["SPECREG_PLANTED_MARK"],))


@pytest.mark.parametrize("name", ["checkpoint.pt", "snapshots/step-0000010.pt", "results/x/result.pt", "samples.pt"])
def test_planted_pickle_is_refused_in_every_loaded_file_type(tmp_path, monkeypatch, name):
    """Every torch file the kit reads goes through load_checkpoint (weights_only=True): nothing runs."""
    mark = tmp_path / "ran"
    monkeypatch.setenv("SPECREG_PLANTED_MARK", str(mark))
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"step": 10, "model": _Planted()}, path)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        load_checkpoint(path)
    assert not mark.exists()


def test_no_weights_only_false_anywhere():
    """The repository never unpickles a user's file with code execution allowed."""
    root = __import__("specreg_lib").io.REPO_ROOT
    needle = "weights_only=" + "False"  # split so this file does not match itself
    hits = subprocess.run(["git", "grep", "-n", needle, "--", "*.py", "*.ipynb"], cwd=root, capture_output=True,
                          text=True).stdout
    untracked = [p for d in ("specreg_lib", "tests", "benchmarks", "notebooks") for p in (root / d).rglob("*")
                 if p.suffix in (".py", ".ipynb") and p.name != "test_hardening.py" and needle in p.read_text()]
    assert not hits.strip() and not untracked, hits + str(untracked)


# ------------------------------------------------------------------------------------------------ downloads

def _serve(tmp_path, payload: bytes):
    src = tmp_path / "remote" / "model.pkl"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(payload)
    return src


def test_unpinned_hash_is_recorded_then_verified_on_reuse(tmp_path, monkeypatch):
    src = _serve(tmp_path, b"edm weights")
    monkeypatch.setitem(assets.REGISTRY, "model.pkl", assets.Asset("model.pkl", src.as_uri(), None, "checkpoint", "t"))
    with pytest.warns(UserWarning, match="no pinned SHA-256"):
        p = assets.fetch("model.pkl", progress=False)
    assert assets.read_record(p) == hashlib.sha256(b"edm weights").hexdigest()
    assert assets.fetch("model.pkl", allow_download=False) == p  # reuse: verified against the record
    p.write_bytes(b"edm weightz")  # the cache rots
    with pytest.raises(assets.ChecksumError, match=r"model\.pkl.*cached copy") as err:
        assets.fetch("model.pkl", allow_download=False)
    assert ".tmp" not in str(err.value)


def test_user_pin_by_option_and_env(tmp_path, monkeypatch):
    src = _serve(tmp_path, b"abc")
    monkeypatch.setitem(assets.REGISTRY, "model.pkl", assets.Asset("model.pkl", src.as_uri(), None, "checkpoint", "t"))
    good = hashlib.sha256(b"abc").hexdigest()
    monkeypatch.setenv("SPECREG_MODEL_PKL_SHA256", "f" * 64)
    with pytest.raises(assets.ChecksumError) as err:
        assets.fetch("model.pkl", progress=False)
    msg = str(err.value)
    assert "model.pkl" in msg and src.as_uri() in msg and ".tmp" not in msg  # names the file, not the temp
    assert not any(assets.cache_dir().iterdir())  # nothing kept
    assert assets.fetch("model.pkl", progress=False, sha256=good).read_bytes() == b"abc"  # the option wins


class _ShortResponse:
    """An HTTP response that announces more bytes than it sends (a connection cut short)."""

    def __init__(self, body: bytes, announced: int) -> None:
        self.body, self.headers = [body], {"Content-Length": str(announced)}

    def read(self, n: int) -> bytes:
        return self.body.pop() if self.body else b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_truncated_download_is_detected_and_nothing_kept(monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: _ShortResponse(b"half", 8))
    monkeypatch.setitem(assets.REGISTRY, "model.pkl",
                        assets.Asset("model.pkl", "https://example.invalid/model.pkl", None, "checkpoint", "t"))
    with pytest.raises(assets.AssetMissingError, match="received 4 of the 8 bytes"):
        assets.fetch("model.pkl", progress=False)
    assert not any(assets.cache_dir().iterdir())


def test_fetch_url_caches_by_basename_records_and_verifies(tmp_path):
    src = _serve(tmp_path, b"pickle bytes")
    with pytest.warns(UserWarning, match="recorded"):
        p = assets.fetch_url(src.as_uri(), progress=False)
    assert p == assets.cache_dir() / "model.pkl" and p.read_bytes() == b"pickle bytes"
    assert assets.fetch_url(src.as_uri(), allow_download=False) == p
    p.write_bytes(b"pickle bytez")
    with pytest.raises(assets.ChecksumError, match="model.pkl"):
        assets.fetch_url(src.as_uri())
    with pytest.raises(assets.ChecksumError):
        assets.fetch_url(src.as_uri(), sha256="0" * 64)


# --------------------------------------------------------------------------------------------- output files

def test_outputs_follow_the_umask_and_killed_writers_leave_no_temp(tmp_path):
    old = os.umask(0o027)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o640  # group-readable, as `open` would make it
    # a writer killed with -9 mid-write leaves its temp file; the next write of that file removes it
    code = ("import os, sys; from specreg_lib.io import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_text('half'); os.kill(os.getpid(), 9)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "r.json")], check=False)
    leftovers = list(tmp_path.glob(".r.json.*"))
    assert len(leftovers) == 1
    with atomic_path(tmp_path / "r.json") as tmp:
        assert tmp.name.startswith(".r.json.")  # our own temp is never taken for a stale one
        tmp.write_text("{}")
    assert not list(tmp_path.glob(".r.json.*")) and (tmp_path / "r.json").read_text() == "{}"
    assert clean_stale_temps(tmp_path / "r.json") == []


# ------------------------------------------------------------------------------------- diffusion edge cases

def test_precond_at_sigma_zero_is_the_identity_and_one_step_ddim_starts_from_noise():
    x = torch.randn(2, 3, 8, 8)
    for kind in ("edm", "ve", "vp"):
        net = Precond(lambda a, c: torch.nn.functional.silu(a * c.view(-1, 1, 1, 1)), kind=kind)
        assert torch.equal(net(x, 0.0), x), kind
    assert ddim_timesteps(1000, 1) == [999] and ddim_timesteps(1000, 2) == [999, 0]


# ---------------------------------------------------------------------------------------- spectrum numbers

def _blurred_pair(n: int = 256, crop: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops of an f^-2 field and of its Gaussian blur (sigma 1.5 px): (k, 1, crop, crop) each."""
    from scipy.ndimage import gaussian_filter

    g = np.random.default_rng(0)
    f = np.sqrt(np.fft.fftfreq(n)[:, None] ** 2 + np.fft.rfftfreq(n)[None, :] ** 2)
    f[0, 0] = 1.0
    img = np.fft.irfft2(np.fft.rfft2(g.standard_normal((n, n))) / f, s=(n, n))
    blur = gaussian_filter(img, 1.5, mode="wrap")
    cut = [(i, j) for i in range(0, n - crop + 1, crop) for j in range(0, n - crop + 1, crop)]
    return tuple(torch.from_numpy(np.stack([a[i:i + crop, j:j + crop] for i, j in cut])[:, None]) for a in (img, blur))


def test_hann_window_recovers_the_blur_at_quarter_nyquist():
    """Sharp vs blurred (sigma 1.5) 64x64 crops at f = 0.25: theory 2.41 decades (Gaussian transfer
    exp(-4 pi^2 sigma^2 f^2)); the Hann window gets within 0.1 of it, no window falls short by > 0.5."""
    sharp, blurred = _blurred_pair()
    theory = 4 * np.pi**2 * 1.5**2 * 0.25**2 / np.log(10)
    gap = {}
    for window in (None, "hann"):
        f, ps = radial_power_spectrum(sharp, window=window)
        _, pb = radial_power_spectrum(blurred, window=window)
        k = int(torch.argmin((f - 0.25).abs()))
        gap[window] = float(torch.log10(ps.mean(0)[k] / pb.mean(0)[k]))
    assert abs(gap["hann"] - theory) < 0.1
    assert theory - gap[None] > 0.5


def test_sixteen_bit_png_keeps_its_depth(tmp_path, capsys):
    """A 16-bit PNG against itself is distance 0 (it used to be clipped at 255: distance 1.43)."""
    g = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.fromarray(g.integers(0, 65536, (32, 32), dtype=np.uint16)).save(tmp_path / name / "x.png")
    assert spectrum.main([str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(tmp_path / "o")]) == 0
    assert "spectral_log_distance(A, B) = 0.0000" in capsys.readouterr().out
    from specreg_lib.data import load_image

    x = load_image(tmp_path / "a" / "x.png", (32, 32))
    ref = np.asarray(Image.open(tmp_path / "a" / "x.png"), dtype=np.float64) / 65535 * 2 - 1
    np.testing.assert_allclose(x[0, 0].numpy(), ref, atol=1e-12)


def test_audio_spectra_use_welch_and_hz(tmp_path, capsys):
    """Clips of different lengths are not cropped; the band is printed in Hz; white noise vs itself is ~flat."""
    g = np.random.default_rng(1)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i, n in enumerate((16000, 24000)):
            sf.write(tmp_path / name / f"{i}.wav", 0.1 * g.standard_normal(n), 16000)
    assert spectrum.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "f >= 0.25 = 4000 Hz" in out and "cropped" not in out
    assert float(out.split("spectral_log_distance(A, B) = ")[1].split()[0]) < 0.1  # ~50 Welch segments a folder


def test_notebook_kernel_runs_quietly(tmp_path, capfd):
    """Kernels talk over IPC: no "running over TCP without encryption" warning; ipywidgets is there for tqdm."""
    import nbformat
    import papermill

    from specreg_lib.kit.runner import ensure_kernel, kernel_manager_class

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from tqdm.auto import tqdm\nfor _ in tqdm(range(3)):\n    pass")]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    src = tmp_path / "n.ipynb"
    nbformat.write(nb, src)
    papermill.execute_notebook(str(src), str(tmp_path / "out.ipynb"), kernel_name=ensure_kernel(),
                               progress_bar=False, kernel_manager_class=kernel_manager_class())
    err = capfd.readouterr().err
    executed = (tmp_path / "out.ipynb").read_text()
    assert "eavesdropping" not in err and "IProgress not found" not in executed


def test_each_kernel_has_private_ipc_sockets(tmp_path, monkeypatch):
    """Two kernels started at once never share socket files (jupyter's default is ./kernel-ipc-N for all)."""
    from specreg_lib.kit.runner import kernel_manager_class

    monkeypatch.chdir(tmp_path)
    a, b = kernel_manager_class()(), kernel_manager_class()()
    assert a.transport == b.transport == "ipc"
    assert os.path.dirname(a.ip) != os.path.dirname(b.ip)
    assert os.path.isabs(a.ip) and os.stat(os.path.dirname(a.ip)).st_mode & 0o077 == 0  # private to the user
    for km in (a, b):
        asyncio.run(km.cleanup_resources())  # what papermill awaits at kernel shutdown
        assert not os.path.exists(os.path.dirname(km.ip))
    assert not list(tmp_path.iterdir())  # nothing left in the working directory
