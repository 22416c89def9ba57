"""EDM fine-tuning under DDP: 2 CPU processes (gloo) with Table 3's per-GPU batch equal 1 process with the same
global batch in 2 accumulation rounds, bit for bit (the same 2 shards of data, augmentation, noise and dropout;
see tests/test_distributed.py for why a 2-way split is exact)."""

import datetime
import os

import pytest
import torch
import torch.multiprocessing as mp

from specreg_lib.experiments.edm.experiment import edm_experiment
from specreg_lib.training import distributed as D
from specreg_lib.training import train

pytestmark = pytest.mark.slow  # two spawned processes: about 10 s

EXP = edm_experiment("afhqv2-64")
OVERRIDES = {"train.steps": 2, "train.checkpoint_every": 0, "regularizer": "amp_phase"}


def _train(per_gpu_batch: int, accumulate: int):
    cfg = EXP.config("smoke", {**OVERRIDES, "train.batch_size": per_gpu_batch, "train.accumulate": accumulate})
    torch.manual_seed(EXP.seed(cfg))
    res = train(EXP.build_model(cfg), EXP.build_loss(cfg), EXP.build_data(cfg), EXP.train_config(cfg))
    return EXP.train_config(cfg).batch_size, res


def _worker(rank: int, tmp: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", SPECREG_ROOT=tmp)
    torch.set_num_threads(1)
    assert D.init_distributed("cpu", init_method=f"file://{tmp}/pg_init", timeout=datetime.timedelta(seconds=60))
    global_batch, res = _train(per_gpu_batch=4, accumulate=1)
    torch.save({"global_batch": global_batch, "model": res.model.state_dict(), "ema": res.ema.state_dict(),
                "loss": res.history["loss"]}, f"{tmp}/rank{rank}.pt")
    D.close_distributed()


def test_two_ranks_equal_one_process_with_the_same_global_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECREG_ROOT", str(tmp_path))
    mp.spawn(_worker, args=(str(tmp_path),), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    global_batch, one = _train(per_gpu_batch=8, accumulate=2)  # 1 GPU: 8 images in 2 rounds of 4
    assert r0["global_batch"] == global_batch == 8  # 4 per GPU x 2 ranks
    for r in (r0, r1):
        assert all(torch.equal(v, one.model.state_dict()[k]) for k, v in r["model"].items())
        assert all(torch.equal(v, one.ema.state_dict()[k]) for k, v in r["ema"].items())
        assert r["loss"] == one.history["loss"]
