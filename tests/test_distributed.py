"""The training loop under DistributedDataParallel: 2 CPU processes (gloo) against 1 process with accumulate=2.

Both layouts split each step's global batch into the same 2 micro-batches (shard m = round * world + rank),
each drawing data, loss noise and dropout masks from its own seeded streams. So they must agree, and they do
BIT FOR BIT: DDP multiplies each rank's gradient by 1/2 and all-reduces the sum, i.e. g0/2 + g1/2; the
accumulating process backpropagates loss/2 per micro-batch (every gradient exactly halved: a power of two)
and sums the same two terms. Halving is exact and a sum of two floats is commutative, so the all-reduce order
cannot matter. (With 3+ ranks or a non-power-of-two accumulate, equality would hold to rounding only.)
The logged loss is the float64 sum of the two micro-batch means over 2, in either layout.
"""

import datetime
import os
import shutil

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from specreg_lib.training import TrainConfig, load_checkpoint, shard_seed, train
from specreg_lib.training import distributed as D
from specreg_lib.training.streams import GLOBAL

torch.set_num_threads(1)
pytestmark = pytest.mark.slow  # two spawned processes: about 10 s

CFG = dict(batch_size=8, lr=1e-2, warmup_steps=2, ema_decay=0.9, seed=7, progress=False, log_every=2)


class NoisyRegression:
    """||net(x + 0.1 n) - x||^2 (B,), n from the micro-batch's generator; records its first global-RNG draw."""

    def __init__(self):
        self.first_global = None

    def __call__(self, net, x0, cond=None, generator=None):
        u = float(torch.rand(()))  # a global-RNG draw, like dropout's, in every micro-batch
        self.first_global = u if self.first_global is None else self.first_global
        n = torch.randn(x0.shape, generator=generator)
        # net.weight_of_loss: under DDP an attribute of the wrapped module, read through the wrapper
        return net.weight_of_loss * (net(x0 + 0.1 * n) - x0).square().mean(1)


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.2), nn.Tanh(), nn.Linear(16, 4))
    net.weight_of_loss = 1.0
    return net


def _data(batch_size, generator):
    return torch.randn(batch_size, 4, generator=generator)


def _summary(res) -> dict:
    return {"model": [p.detach().clone() for p in res.model.parameters()],
            "ema": [p.detach().clone() for p in res.ema.parameters()], "loss": res.history["loss"],
            "grad_norm": res.history["grad_norm"], "step": res.step, "resumed_from": res.resumed_from,
            "is_ddp": type(res.model).__name__}


def _worker(rank: int, tmp: str) -> None:
    """One of 2 ranks: straight 6 steps; 3 steps then resumed to 6; a bad batch size. Writes rank{r}.pt."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    # a short timeout: if one rank fails, the other gives up in a minute instead of gloo's default 30
    assert D.init_distributed("cpu", init_method=f"file://{tmp}/pg_init", timeout=datetime.timedelta(seconds=60))
    import specreg_lib.training.loop as loop

    writes = []
    real_save = loop.save_checkpoint
    loop.save_checkpoint = lambda path, payload: (writes.append(os.path.basename(path)), real_save(path, payload))
    out = {"rank": D.rank(), "world": D.world_size(), "backend": D.backend()}
    loss = NoisyRegression()
    out["straight"] = _summary(train(_net(), loss, _data, TrainConfig(steps=6, checkpoint_every=2, **CFG),
                                     f"{tmp}/a.pt"))
    out["first_global"] = loss.first_global
    train(_net(), NoisyRegression(), _data, TrainConfig(steps=3, **CFG), f"{tmp}/b.pt")
    if D.is_main():
        shutil.copy(f"{tmp}/b.pt", f"{tmp}/c.pt")  # a 3-step 2-rank checkpoint for the 1-process resume
    D.barrier()
    out["resumed"] = _summary(train(_net(), NoisyRegression(), _data, TrainConfig(steps=6, **CFG), f"{tmp}/b.pt"))
    out["writes"] = writes
    out["acc2"] = _summary(train(_net(), NoisyRegression(), _data, TrainConfig(steps=4, accumulate=2, **CFG)))
    try:  # batch 6 = 3 per rank: cannot split into 2 ranks x 2 rounds
        train(_net(), NoisyRegression(), _data, TrainConfig(steps=1, **{**CFG, "batch_size": 6}, accumulate=2))
    except ValueError as err:
        out["bad_batch"] = str(err)
    out["mean"] = float(D.reduce_mean(torch.tensor(float(rank))))
    torch.save(out, f"{tmp}/rank{rank}.pt")
    D.close_distributed()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(str(tmp),), nprocs=2, join=True)
    return tmp, [torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in range(2)]


def _assert_same(a: dict, b: dict) -> None:
    assert all(torch.equal(p, q) for p, q in zip(a["model"], b["model"], strict=True))
    assert all(torch.equal(p, q) for p, q in zip(a["ema"], b["ema"], strict=True))
    assert a["loss"] == b["loss"] and a["grad_norm"] == b["grad_norm"]


def test_two_ranks_equal_one_process_accumulating_two(two_ranks):
    tmp, (r0, r1) = two_ranks
    assert (r0["rank"], r1["rank"], r0["world"], r0["backend"]) == (0, 1, 2, "gloo")
    one = _summary(train(_net(), NoisyRegression(), _data, TrainConfig(steps=6, accumulate=2, **CFG)))
    _assert_same(r0["straight"], one)  # bit for bit: see the module docstring
    _assert_same(r1["straight"], one)  # every rank ends with the same (unwrapped) model and reduced history
    assert r0["straight"]["is_ddp"] == "Sequential" and r0["mean"] == 0.5
    ck = load_checkpoint(tmp / "a.pt")
    assert ck["layout"] == {"world_size": 2, "accumulate": 1, "shards": 2} and sorted(ck["rng"]["shards"]) == [0, 1]


def test_two_ranks_accumulating_equal_one_process_to_rounding(two_ranks):
    """2 ranks x accumulate 2 vs 1 process x accumulate 4: the same 4 shards, summed in another order
    ((g0 + g2) + (g1 + g3) against ((g0 + g1) + g2) + g3, each times 1/4), so equal to float rounding only."""
    _, (r0, _) = two_ranks
    one = _summary(train(_net(), NoisyRegression(), _data, TrainConfig(steps=4, accumulate=4, **CFG)))
    for p, q in zip(r0["acc2"]["model"] + r0["acc2"]["ema"], one["model"] + one["ema"], strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert r0["acc2"]["loss"] == pytest.approx(one["loss"], rel=1e-6)


def test_only_rank0_writes_and_dropout_streams_differ_per_rank(two_ranks):
    _, (r0, r1) = two_ranks
    assert r0["writes"] == ["a.pt"] * 3 + ["b.pt"] * 2 and r1["writes"] == []  # steps 2, 4, 6 | 3, 6
    # rank r's global RNG (dropout) is shard r's stream: seed for rank 0 (as one process), a mix for rank 1
    expect = []
    for m in range(2):
        torch.manual_seed(shard_seed(7, m, GLOBAL))
        expect.append(float(torch.rand(())))
    assert [r0["first_global"], r1["first_global"]] == expect and expect[0] != expect[1]


def test_resume_of_a_two_rank_run(two_ranks, tmp_path):
    tmp, (r0, r1) = two_ranks
    for r in (r0, r1):  # 3 steps + 3 resumed steps on 2 ranks == 6 straight steps on 2 ranks
        assert r["resumed"]["resumed_from"] == 3
        _assert_same(r["resumed"], r0["straight"])
    # the same shard count in another layout resumes too: 1 process x accumulate 2 from the 2-rank checkpoint
    shutil.copy(tmp / "c.pt", tmp_path / "c.pt")
    with pytest.raises(ValueError, match="2 micro-batches per step .*world_size 2 x accumulate 1.* this run has 1"):
        train(_net(), NoisyRegression(), _data, TrainConfig(steps=6, **CFG), tmp_path / "c.pt")
    res = train(_net(), NoisyRegression(), _data, TrainConfig(steps=6, accumulate=2, **CFG), tmp_path / "c.pt")
    assert res.resumed_from == 3
    _assert_same(_summary(res), r0["straight"])


def test_global_batch_must_split_over_ranks_and_rounds(two_ranks):
    _, (r0, r1) = two_ranks
    for r in (r0, r1):
        assert "batch_size=6" in r["bad_batch"] and "2 * 2 = 4" in r["bad_batch"]


def test_helpers_without_a_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not D.init_distributed("cpu") and D.world_size() == 1 and D.rank() == 0 and D.is_main()
    assert D.reduce_mean(torch.tensor(3.0)) == 3.0 and D.all_gather_objects({"a": 1}) == [{"a": 1}]
    D.barrier()
    assert D.resolve_device("cpu") == torch.device("cpu")
    assert D.resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert D.resolve_device("cuda") == torch.device("cuda", 1)  # under torchrun: this rank's GPU
    with pytest.raises(ValueError, match="must use cuda:1"):
        D.resolve_device("cuda:0")
