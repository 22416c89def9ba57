"""EDM checkpoints without the EDM repository: round trips through official-format pickles built here (by our
writer, and independently by emulating EDM's torch_utils.persistence with the standard pickler), the
restricted unpickler's refusals (os.system runs nothing), numpy.core vs numpy._core scalars, corrupt and
truncated files, sigma shapes, and path / registry / URL resolution."""

import io
import os
import pickle
import sys
import types
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from specreg_lib import assets
from specreg_lib.models import SongUNet, load_edm_checkpoint
from specreg_lib.models.edm_checkpoint import (
    EDMCheckpointError,
    denoiser_from_pickle,
    read_edm_pickle,
    save_edm_checkpoint,
)
from specreg_lib.models.edm_precond import PRECOND_NAMES, EDMDenoiser, denoiser_init_kwargs
from specreg_lib.models.edm_unpickler import UnsafePickleError, restricted_load
from specreg_lib.models.songunet import DDPMPP, NCSNPP

ARCHS = {"ddpmpp": DDPMPP, "ncsnpp": NCSNPP}
DEFAULTED = ("channel_mult_emb", "label_dropout", "sigma_min", "sigma_max", "sigma_data")  # absent from EDM's files

pytestmark = pytest.mark.usefixtures("one_thread")



def tiny_denoiser(arch: str = "ddpmpp", kind: str = "edm", label_dim: int = 0, seed: int = 0) -> EDMDenoiser:
    torch.manual_seed(seed)
    unet = SongUNet(**dict(ARCHS[arch], img_resolution=8, in_channels=3, out_channels=3, label_dim=label_dim,
                           augment_dim=9, model_channels=8, channel_mult=[1, 2], num_blocks=1,
                           attn_resolutions=[4], dropout=0.25))
    with torch.no_grad():  # as if trained: no near-zero output convs, non-trivial norms
        for p in unet.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return EDMDenoiser(unet, kind).eval()


def inputs(net: EDMDenoiser, B: int = 2):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, 3, 8, 8, generator=g)
    labels = nn.functional.one_hot(torch.arange(B) % net.label_dim, net.label_dim).float() if net.label_dim else None
    return x, labels


# ------------------------------------------------ an independent writer: EDM's persistence, emulated
@pytest.fixture
def edm_modules(monkeypatch):
    """Fake ``torch_utils.persistence`` and ``dnnlib.util`` importable for the standard pickler (test only)."""
    persistence, util = types.ModuleType("torch_utils.persistence"), types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # pragma: no cover - the loader must never call it
        raise AssertionError("the EDM reconstructor was executed")

    class EasyDict(dict):
        pass

    _reconstruct_persistent_obj.__module__ = persistence.__name__
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    EasyDict.__module__, EasyDict.__qualname__ = util.__name__, "EasyDict"
    persistence._reconstruct_persistent_obj, util.EasyDict = _reconstruct_persistent_obj, EasyDict
    for name, mod in [("torch_utils", types.ModuleType("torch_utils")), ("torch_utils.persistence", persistence),
                      ("dnnlib", types.ModuleType("dnnlib")), ("dnnlib.util", util)]:
        monkeypatch.setitem(sys.modules, name, mod)
    return persistence, util


def official_style_pickle(net: EDMDenoiser, path, edm_modules, protocol: int = 4, numpy_core: bool = False):
    """What EDM's training loop writes, made with the standard pickler: every network class pickles as
    _reconstruct_persistent_obj(meta) with state = its full __dict__ (torch's hook dicts included)."""
    persistence, util = edm_modules
    net = net.requires_grad_(False)  # EDM saves the EMA copy with requires_grad off

    def given(kwargs):  # persistence records the kwargs passed; train.py leaves these at their defaults
        return {k: v for k, v in kwargs.items() if k not in DEFAULTED}

    class Pickler(pickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, nn.Module) and not isinstance(obj, nn.ModuleDict):
                name = PRECOND_NAMES[obj.kind] if obj is net else type(obj).__name__
                state = dict(vars(obj), _init_args=(), _init_kwargs=given(
                    denoiser_init_kwargs(obj) if obj is net else getattr(obj, "init_kwargs", {})))
                meta = dict(type="class", version=6, module_src="raise SystemExit('executed')\n",
                            class_name=name, state=state)
                return persistence._reconstruct_persistent_obj, (meta,)
            return NotImplemented

    class Record:  # a non-module EDM object (loss, augment pipe), pickled the way persistence does
        def __init__(self, class_name, **kwargs):
            self.meta = dict(type="class", version=6, module_src="import os\n", class_name=class_name,
                             state=dict(kwargs, _init_args=(), _init_kwargs=util.EasyDict(kwargs)))

        def __reduce__(self):
            return persistence._reconstruct_persistent_obj, (self.meta,)

    data = dict(ema=net, loss_fn=Record("EDMLoss", P_mean=-1.2, P_std=1.2, sigma_data=0.5),
                augment_pipe=Record("AugmentPipe", p=np.float64(0.15), xflip=1e8, yflip=1, scale=1,
                                    rotate_frac=1, aniso=1, translate_frac=1),
                dataset_kwargs=util.EasyDict(class_name="training.dataset.ImageFolderDataset", resolution=np.int64(8),
                                             max_size=15220, xflip=False, use_labels=bool(net.label_dim)))
    buf = io.BytesIO()
    Pickler(buf, protocol=protocol).dump(data)
    raw = buf.getvalue()
    if numpy_core:  # a 2022-era file: numpy 1.x named its scalar reconstructor numpy.core.multiarray.scalar
        assert protocol < 4 and b"cnumpy._core.multiarray\nscalar\n" in raw
        raw = raw.replace(b"cnumpy._core.multiarray\nscalar\n", b"cnumpy.core.multiarray\nscalar\n")
    path.write_bytes(raw)
    return path


# ------------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("arch, kind, label_dim", [("ddpmpp", "edm", 0), ("ddpmpp", "vp", 10), ("ddpmpp", "ve", 0),
                                                   ("ncsnpp", "edm", 10), ("ncsnpp", "vp", 0), ("ncsnpp", "ve", 10)])
def test_round_trip_through_our_writer(tmp_path, arch, kind, label_dim):
    net = tiny_denoiser(arch, kind, label_dim)
    path = save_edm_checkpoint(net, tmp_path / "net.pkl")
    loaded = load_edm_checkpoint(path)
    assert type(loaded) is EDMDenoiser and loaded.kind == kind and not loaded.training
    assert loaded.edm_meta["network_class"] == PRECOND_NAMES[kind]
    assert (loaded.sigma_min, loaded.sigma_max) == (net.sigma_min, net.sigma_max)
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    # Every tensor is a real CPU float32 one, and the weights are trainable (for fine-tuning).
    assert all(t.device.type == "cpu" and t.dtype == torch.float32 for t in loaded.state_dict().values())
    assert all(p.requires_grad for p in loaded.parameters())
    x, labels = inputs(net)
    aug = torch.randn(2, 9)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, 0.8, labels, augment_labels=aug), net(x, 0.8, labels, augment_labels=aug),
                                   rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("arch, kind, label_dim", [("ddpmpp", "edm", 0), ("ncsnpp", "vp", 10), ("ncsnpp", "ve", 0)])
def test_official_style_pickle_loads_without_running_anything(tmp_path, edm_modules, arch, kind, label_dim):
    net = tiny_denoiser(arch, kind, label_dim)
    path = official_style_pickle(net, tmp_path / f"edm-{arch}-{kind}.pkl", edm_modules)
    loaded = load_edm_checkpoint(path)
    x, labels = inputs(net)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, 2.5, labels), net(x, 2.5, labels), rtol=1e-6, atol=1e-6)
    meta = loaded.edm_meta
    assert meta["loss_fn"]["init_kwargs"] == dict(P_mean=-1.2, P_std=1.2, sigma_data=0.5)
    aug = meta["augment_pipe"]["attributes"]
    assert aug["p"] == 0.15 and type(aug["p"]) is float and aug["xflip"] == 1e8  # numpy scalar -> Python
    assert meta["dataset_kwargs"]["resolution"] == 8 and meta["dataset_kwargs"]["max_size"] == 15220
    assert meta["init_kwargs"]["model_type"] == "SongUNet"


@pytest.mark.parametrize("numpy_core", [False, True], ids=["numpy._core", "numpy.core"])
def test_numpy_scalars_of_both_eras_load(tmp_path, edm_modules, numpy_core):
    net = tiny_denoiser("ddpmpp", "edm")
    path = official_style_pickle(net, tmp_path / "net.pkl", edm_modules, protocol=3, numpy_core=numpy_core)
    assert (b"numpy.core.multiarray" in path.read_bytes()) == numpy_core
    ckpt = read_edm_pickle(path)
    assert ckpt.augment_pipe.attributes()["p"] == 0.15
    assert ckpt.dataset_kwargs["resolution"] == np.int64(8)
    x, _ = inputs(net)
    with torch.no_grad():
        torch.testing.assert_close(denoiser_from_pickle(ckpt)(x, 0.3), net(x, 0.3))


def test_records_pass_through_a_fine_tune_save(tmp_path, edm_modules):
    net = tiny_denoiser("ncsnpp", "edm")
    first = read_edm_pickle(official_style_pickle(net, tmp_path / "official.pkl", edm_modules))
    tuned = denoiser_from_pickle(first)
    with torch.no_grad():
        tuned.model.map_layer0.bias.add_(0.5)
    path = save_edm_checkpoint(tuned, tmp_path / "tuned.pkl", loss_fn=first.loss_fn,
                               augment_pipe=first.augment_pipe, dataset_kwargs=first.dataset_kwargs)
    again = read_edm_pickle(path)
    assert again.loss_fn.summary() == first.loss_fn.summary()
    assert again.augment_pipe.attributes() == first.augment_pipe.attributes()
    assert again.dataset_kwargs == first.dataset_kwargs and b"dnnlib.util" in path.read_bytes()  # EasyDict kept
    given, written = first.meta()["init_kwargs"], again.meta()["init_kwargs"]
    assert {k: written[k] for k in given} == given and set(written) - set(given) == set(DEFAULTED)  # + defaults
    assert torch.equal(again.state_dict()["model.map_layer0.bias"], tuned.model.map_layer0.bias)


# ---------------------------------------------------------------------------------------- the denoiser
def test_sigma_shapes_agree_and_tiny_sigma_returns_x(tmp_path):
    net = load_edm_checkpoint(save_edm_checkpoint(tiny_denoiser("ncsnpp", "edm", 10), tmp_path / "n.pkl"))
    x, labels = inputs(net, B=3)
    with torch.no_grad():
        ref = net(x, 0.6, labels)
        for sigma in (torch.tensor(0.6), torch.full((3,), 0.6), torch.full((3, 1, 1, 1), 0.6), np.float32(0.6)):
            torch.testing.assert_close(net(x, sigma, labels), ref)
        # c_skip -> 1 and c_out ~ sigma -> 0: D(x; 1e-6) = x up to ~1e-6 |F|.
        torch.testing.assert_close(net(x, 1e-6, labels), x, rtol=0, atol=1e-5)
        assert net(x.double(), 0.6, labels).dtype == torch.float64  # computed in fp32, returned in x's dtype
    with pytest.raises(ValueError, match="sigma"):
        net(x, torch.full((2,), 0.6), labels)


# ---------------------------------------------------------------------------------------------- refusals
class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_os_system_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(dict(ema=_Evil(marker), loss_fn=None)))
    with pytest.raises(UnsafePickleError, match=r"'(posix|nt)\.system'") as info:
        load_edm_checkpoint(path)
    assert str(path) in str(info.value) and "allow-list" in str(info.value)
    assert not marker.exists()
    # Hidden deep inside otherwise valid data, and through builtins: refused as well.
    for payload in ([OrderedDict(a=[{"b": _Evil(marker)}])], {"x": (eval, ("1",))}):
        with pytest.raises((UnsafePickleError, pickle.PicklingError, TypeError)):
            restricted_load(io.BytesIO(pickle.dumps(payload)))
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        restricted_load(io.BytesIO(b"cbuiltins\neval\n(S'1'\ntR."))
    assert not marker.exists()


def test_unsupported_networks_are_named(tmp_path, edm_modules):
    net = tiny_denoiser("ddpmpp", "edm")
    ckpt = read_edm_pickle(official_style_pickle(net, tmp_path / "n.pkl", edm_modules))
    ckpt.network.class_name = "iDDPMPrecond"
    with pytest.raises(EDMCheckpointError, match="iDDPMPrecond.*EDMPrecond, VPPrecond, VEPrecond"):
        denoiser_from_pickle(ckpt)
    ckpt.network.class_name = "EDMPrecond"
    ckpt.network.state["_init_kwargs"] = dict(ckpt.network.state["_init_kwargs"], model_type="DhariwalUNet")
    with pytest.raises(EDMCheckpointError, match="DhariwalUNet"):
        denoiser_from_pickle(ckpt)


def test_architecture_mismatch_is_explained(tmp_path):
    ckpt = read_edm_pickle(save_edm_checkpoint(tiny_denoiser("ddpmpp", "vp"), tmp_path / "n.pkl"))
    for rec in (ckpt.network, ckpt.network.modules["model"]):
        rec.state["_init_kwargs"] = dict(rec.state["_init_kwargs"], model_channels=16)
    want = r"0 missing, 0 unexpected, \d+ shape mismatches.*file \(16,\) vs net \(32,\)"
    with pytest.raises(EDMCheckpointError, match=want):
        denoiser_from_pickle(ckpt)


def test_corrupt_truncated_and_wrong_files_name_the_path(tmp_path):
    good = save_edm_checkpoint(tiny_denoiser(), tmp_path / "good.pkl").read_bytes()
    cases = {
        "truncated.pkl": (good[: len(good) // 2], "truncated or corrupt"),
        "garbage.pkl": (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "truncated or corrupt"),
        "empty.pkl": (b"", "truncated or corrupt"),
        "list.pkl": (pickle.dumps([1, 2]), "holds list"),
        "noema.pkl": (pickle.dumps({"loss_fn": None}), r"holds \['loss_fn'\]"),
    }
    for name, (raw, why) in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(EDMCheckpointError, match=why) as info:
            load_edm_checkpoint(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
    torch.save({"w": torch.zeros(2)}, tmp_path / "torchsave.pkl")
    assert zipfile.is_zipfile(tmp_path / "torchsave.pkl")
    with pytest.raises(EDMCheckpointError, match="zip archive"):
        load_edm_checkpoint(tmp_path / "torchsave.pkl")


def test_writer_refuses_other_networks(tmp_path):
    with pytest.raises(TypeError, match="EDMDenoiser"):
        save_edm_checkpoint(nn.Linear(2, 2), tmp_path / "x.pkl")
    with pytest.raises(TypeError, match="loss_fn must be a PersistentRecord"):
        save_edm_checkpoint(tiny_denoiser(), tmp_path / "x.pkl", loss_fn={"P_mean": -1.2})
    assert not (tmp_path / "x.pkl").exists()


# ------------------------------------------------------------------------------------ paths, names, URLs
def test_paths_registry_names_and_urls(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECREG_CACHE", str(tmp_path / "cache"))
    name = "edm-afhqv2-64x64-uncond-vp.pkl"
    monkeypatch.delenv(assets.get_asset(name).env_var, raising=False)
    net = tiny_denoiser()
    src = save_edm_checkpoint(net, tmp_path / "mine.pkl")
    x, _ = inputs(net)
    want = net(x, 1.0).detach()
    # A file:// URL outside the registry goes through assets.fetch_url (cached, hash recorded).
    with pytest.warns(UserWarning, match="no pinned SHA-256"):
        got = load_edm_checkpoint(src.as_uri())
    torch.testing.assert_close(got(x, 1.0).detach(), want)
    assert (tmp_path / "cache" / "mine.pkl").is_file() and (tmp_path / "cache" / "mine.pkl.sha256").is_file()
    # A registry name with the user's own copy.
    torch.testing.assert_close(load_edm_checkpoint(name, local_path=src)(x, 1.0).detach(), want)
    # A registry name that is not available offline: the message names the file, its URL and local_path.
    with pytest.raises(assets.AssetMissingError, match=r"(?s)afhqv2-64x64-uncond-vp\.pkl.*nvlabs-fi-cdn.*local_path"):
        load_edm_checkpoint(name, allow_download=False)
    with pytest.raises(FileNotFoundError, match="no-such.pkl"):
        load_edm_checkpoint(tmp_path / "no-such.pkl")


# ----------------------------------------------------------------------------------- GPU and paper tiers
@pytest.mark.gpu
def test_use_fp16_on_cuda_runs_half_and_matches_fp32(tmp_path):
    net = tiny_denoiser("ncsnpp", "edm", 10).cuda()
    x, labels = (t.cuda() for t in inputs(net))
    with torch.no_grad():
        ref = net(x, 0.9, labels)
        net.use_fp16 = True
        half = net(x, 0.9, labels)
        forced = net(x, 0.9, labels, force_fp32=True)
    assert half.dtype == torch.float32 and torch.equal(forced, ref)
    assert 0 < (half - ref).abs().max() < 2e-2 * ref.abs().max()  # really ran in fp16, and close


def _photo_64() -> torch.Tensor:
    """A natural photo (scikit-image's bundled chelsea the cat), 64x64 in [-1, 1], as (1, 3, 64, 64)."""
    from skimage import data, transform

    img = transform.resize(data.chelsea(), (64, 64), anti_aliasing=True)  # float in [0, 1]
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() * 2 - 1


@pytest.mark.paper
@pytest.mark.parametrize("name, params", [("edm-afhqv2-64x64-uncond-vp.pkl", 61_805_571),
                                          ("edm-afhqv2-64x64-uncond-ve.pkl", 62_761_091)])
def test_official_afhq_checkpoint_loads_and_denoises(name, params):
    """The real files (SPECREG_EDM_AFHQV2_..._PKL=/path, or downloaded): layout, settings, and a denoiser that
    removes most of the noise from a photo, which a mis-wired layer (embedding order, qkv layout) would not."""
    net = load_edm_checkpoint(name)
    assert type(net).__name__ == "EDMDenoiser" and net.edm_meta["network_class"] == "EDMPrecond"
    assert sum(p.numel() for p in net.parameters()) == params
    kw = net.edm_meta["init_kwargs"]
    assert kw["channel_mult"] == [1, 2, 2, 2] and kw["augment_dim"] == 9 and kw["dropout"] == 0.25
    assert net.edm_meta["augment_pipe"]["init_kwargs"]["p"] == 0.15  # train.py --augment=0.15 (edm.md 1g)
    x0 = _photo_64()
    g = torch.Generator().manual_seed(0)
    for sigma in (0.2, 0.5, 1.0):
        y = x0 + sigma * torch.randn(x0.shape, generator=g)
        with torch.no_grad():
            mse_out = (net(y, sigma) - x0).square().mean().item()
        assert mse_out < 0.5 * sigma**2, (sigma, mse_out)
