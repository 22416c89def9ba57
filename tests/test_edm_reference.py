"""Our SongUNet + EDM preconditioning against NVIDIA's own code, through numbers it produced.

``tests/oracles/edm_reference.pt`` was written by ``tests/oracles/make_edm_reference.py`` running EDM's
``training/networks.py`` (NVlabs/edm at EDM_COMMIT): small DDPM++ / NCSN++ SongUNets under EDMPrecond, VPPrecond
and VEPrecond (unconditional, class-conditional, with augment labels; NCSN++'s residual encoder and Fourier
embedding; the skip encoder / decoder), random weights everywhere, and EDM's outputs. Here OUR networks are built
from the stored init kwargs (``build_denoiser``), given the stored weights, and must give EDM's outputs.
"""

from pathlib import Path

import pytest
import torch

from specreg_lib.models.edm_precond import build_denoiser

REFERENCE = Path(__file__).parent / "oracles" / "edm_reference.pt"
EDM_COMMIT = "008a4e5316c8e3bfe61a62f874bddba254295afb"
REF = torch.load(REFERENCE, weights_only=True)  # tensors, dicts, lists, strings, numbers: nothing executed
CASES = sorted(REF["cases"])

# Float32 round-off, per sample relative to the sample's largest output: the same maths summed in another order
# (our attention is torch's SDPA, EDM's an einsum + softmax; our attention output has other strides, which
# sends the next GroupNorm down another CPU kernel) differs by a few ulp (6e-8 relative each) per layer.
# Measured over ~25 layers: at most 1.2e-6 for F and D. Relative, because VP / VE's D = x +- sigma F scales
# F's round-off by sigma (1.8e-4 absolute at sigma = 100, where |D| ~ 200). The wrong layers tried (residual
# encoder / 2, unscaled class labels, Fourier [cos, sin]) give 0.2 to 0.7.
REL_TOL = 1e-5

pytestmark = pytest.mark.usefixtures("one_thread")


def _rel_err(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) x 2 -> (B,): max |out - ref| over each sample, over that sample's max |ref|."""
    return (out - ref).abs().amax((1, 2, 3)) / ref.abs().amax((1, 2, 3))


def _ours(case: dict):
    net = build_denoiser(case["class_name"], case["init_kwargs"]).eval()
    net.load_state_dict(case["state_dict"], strict=True)  # EDM's keys and shapes, one to one
    return net


def test_reference_file_is_what_it_claims():
    assert REF["edm_commit"] == EDM_COMMIT
    assert REFERENCE.stat().st_size < 1.5e6
    kinds = {(c["class_name"], c["init_kwargs"]["embedding_type"], c["init_kwargs"]["encoder_type"],
              c["init_kwargs"]["decoder_type"]) for c in REF["cases"].values()}
    assert ("EDMPrecond", "fourier", "residual", "standard") in kinds  # NCSN++
    assert ("EDMPrecond", "positional", "standard", "standard") in kinds  # DDPM++
    assert {k[0] for k in kinds} == {"EDMPrecond", "VPPrecond", "VEPrecond"}
    assert any(c["class_labels"] is None and c["augment_labels"] is None for c in REF["cases"].values())
    assert any(c["class_labels"] is not None for c in REF["cases"].values())
    assert any(c["augment_labels"] is not None for c in REF["cases"].values())
    for case in REF["cases"].values():  # the outputs carry signal: the near-zero output convs were re-drawn
        assert case["F"].std() > 0.1 and not torch.allclose(case["D"], case["x"], atol=1e-2)


@pytest.mark.parametrize("name", CASES)
def test_denoiser_matches_edm(name):
    case = REF["cases"][name]
    net = _ours(case)
    seen = {}
    net.model.register_forward_hook(lambda m, args, out: seen.update(F_in=args[0], c_noise=args[1]))
    with torch.no_grad():
        D = net(case["x"], case["sigma"], case["class_labels"], augment_labels=case["augment_labels"])
    # The wrapper hands the backbone EDM's inputs (c_in x and c_noise, VP's in EDM's float32 arithmetic): bit-equal
    # here; 1e-6 leaves room for another CPU's log / sqrt kernels ...
    torch.testing.assert_close(seen["F_in"], case["F_in"], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(seen["c_noise"].flatten(), case["c_noise"], atol=1e-6, rtol=1e-6)
    # ... and D(x; sigma) = c_skip x + c_out F equals EDM's.
    assert D.shape == case["D"].shape and D.dtype == torch.float32
    assert _rel_err(D, case["D"]).max() < REL_TOL


@pytest.mark.parametrize("name", CASES)
def test_songunet_matches_edm(name):
    # The backbone alone on EDM's own inputs: F(c_in x; c_noise, class_labels, augment_labels).
    case = REF["cases"][name]
    net = _ours(case)
    with torch.no_grad():
        F = net.model(case["F_in"], case["c_noise"], case["class_labels"], case["augment_labels"])
    assert F.shape == case["F"].shape and F.dtype == torch.float32
    assert _rel_err(F, case["F"]).max() < REL_TOL
