"""Adding a spectral loss takes one file plus its test: this module is that file.

``tv_l1`` below is an example kind that ships nowhere: an anisotropic total-variation L1 distance between the
finite differences of x0_hat and x0. Registered with ``register_kind``, it is swept by name through the CLI,
trained, evaluated and saved in the run folder's config.json, with no other change to the library.
"""

import json

import pytest
import torch

from specreg_lib.experiments import CHECKERBOARD, load_config
from specreg_lib.kit import cli
from specreg_lib.spectral import KINDS, register_kind


def tv_l1(x0_hat: torch.Tensor, x0: torch.Tensor, *, check_finite: bool = True, bins: str = "mean") -> torch.Tensor:
    """|finite differences of (x0_hat - x0)| along H and W, mean or sum over them: (B, C, H, W) -> (B,)."""
    e = x0_hat - x0
    dh, dw = (e[..., 1:, :] - e[..., :-1, :]).abs().flatten(1), (e[..., :, 1:] - e[..., :, :-1]).abs().flatten(1)
    both = torch.cat([dh, dw], 1)
    return both.sum(1) if bins == "sum" else both.mean(1)


@pytest.fixture
def tv_kind():
    register_kind("tv_l1", tv_l1)
    yield "tv_l1"
    KINDS.pop("tv_l1")


def _sweep(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["sweep", "checkerboard", "--profile", "smoke", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_new_kind_is_swept_trained_and_saved_by_name(tv_kind, tmp_path, capsys):
    argv = ("--regularizer", f"baseline,{tv_kind}", "--lambda_spec", "0.5", "--steps", "3", "--seeds", "1",
            "--root", str(tmp_path))
    code, out, err = _sweep(capsys, *argv)
    assert code == 0, err
    folders = sorted(p for p in (tmp_path / "checkerboard").iterdir() if p.is_dir())
    assert [p.name.split("_seed")[0] for p in folders] == ["baseline", f"{tv_kind}_lam0.5_alpha_bar"]
    saved = json.loads((folders[1] / "config.json").read_text())["config"]["regularizer"]
    assert (saved["kind"], saved["lambda_spec"], saved["options"]) == (tv_kind, 0.5, {})
    cfg = load_config(CHECKERBOARD.config_class, folders[1] / "config.json")  # loads back while registered
    assert cfg.regularizer.kind == tv_kind

    # the term is really in the loss: on the same batch and noise, the loss is the baseline's plus
    # lambda_spec * w(t) * L_S with L_S the new kind
    base_cfg = load_config(CHECKERBOARD.config_class, folders[0] / "config.json")
    torch.manual_seed(0)
    model = CHECKERBOARD.build_model(cfg)
    x0 = CHECKERBOARD.build_data(cfg)(4, torch.Generator().manual_seed(1))
    x0 = x0[0] if isinstance(x0, tuple) else x0
    base = CHECKERBOARD.build_loss(base_cfg)(model, x0, None, torch.Generator().manual_seed(2))
    parts = CHECKERBOARD.build_loss(cfg)(model, x0, None, torch.Generator().manual_seed(2), return_parts=True)
    torch.testing.assert_close(parts["diffusion"], base)
    torch.testing.assert_close(parts["term"], 0.5 * parts["weight"] * parts["spectral"])
    torch.testing.assert_close(parts["loss"], base + parts["term"])
    assert bool((parts["spectral"] > 0).all())

    # a second call re-reads both runs: nothing is trained again
    mtimes = [(p / "checkpoint.pt").stat().st_mtime_ns for p in folders if (p / "checkpoint.pt").exists()]
    code, out2, _ = _sweep(capsys, *argv)
    assert code == 0 and "2 done" in out2
    assert mtimes == [(p / "checkpoint.pt").stat().st_mtime_ns for p in folders if (p / "checkpoint.pt").exists()]


def test_an_unregistered_name_is_refused_at_the_door(tmp_path, capsys):
    code, out, err = _sweep(capsys, "--regularizer", "tv_l1", "--dry-run", "--root", str(tmp_path))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "'tv_l1'" in err and "or a spectral kind" in err, err
