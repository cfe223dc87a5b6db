"""Issue 18 speed-ups keep YOLOv5's training trajectory; compile falls back cleanly; loader workers see the epoch."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn

from yolobone.engine.core import acceleration as accel
from yolobone.engine.train import train
from tests.helpers import tiny_cfg
from yolobone.data.datasets import create_dataloader
from yolobone.data.ram_cache import resolve_cache
from yolobone.data.synthetic import make_detection_dataset

# Loss tolerance (absolute, losses here are ~0.1): channels_last convolutions and the fused optimizer add the same
# float32 terms in another order. One batch's gradients then differ by up to ~3e-4 of the largest gradient (BatchNorm
# backward reductions), but under YOLOv5's warmup (weight LR ramping up from 0, bias LR from 0.1) the per-epoch mean
# losses of the first 6 optimizer steps agreed to 3e-8 when measured. 5e-6 leaves a 100x margin for other CPUs'
# kernels, and a 10 % change of warmup_bias_lr (the largest update in these steps) moves them by 8e-6 to 3e-5.
# (Without warmup, at lr 0.01, the rounding differences grow chaotically, to ~1e-3 after 3 steps, as they would
# between two CPUs: so the test follows YOLOv5's recipe rather than a schedule no run uses.)
LOSS_ATOL = 5e-6


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("speed")
    data = make_detection_dataset(root / "data", n_train=16, n_val=4, imgsz=64, max_objects=3, min_size=0.2,
                                  max_size=0.6, verbose=False)
    return {"root": root, "data": str(data), "cfg": tiny_cfg(root / "tiny.yaml")}


def _run(work, name: str, speedups: bool, **hyp):
    """3 epochs x 2 batches of 8, YOLOv5's default hyp: warmup accumulates 1 batch, so 6 optimizer steps."""
    seen = {}

    def record(trainer):
        seen.update(acc=trainer.acc, fused=[g.get("fused") for g in trainer.optimizer.param_groups],
                    persistent=trainer.train_loader.persistent_workers)

    r = train(dict(cfg=work["cfg"], data=work["data"], epochs=3, batch_size=8, imgsz=64, device="cpu", workers=1,
                   noval=True, noplots=True, compile="off", speedups=speedups, hyp=hyp or None,
                   project=str(work["root"] / "runs"), name=name), callbacks={"on_train_start": record})
    return torch.tensor(r.loss_history), seen


def test_speedups_keep_the_loss_trajectory(work):
    plain, seen_plain = _run(work, "plain", speedups=False)
    fast, seen_fast = _run(work, "fast", speedups=True)
    assert not seen_plain["acc"].channels_last and not seen_plain["persistent"]
    assert seen_fast["acc"].channels_last and seen_fast["persistent"] and all(seen_fast["fused"])
    torch.testing.assert_close(fast, plain, atol=LOSS_ATOL, rtol=0)
    # the tolerance catches a 10 % change of the warmup bias LR
    nudged, _ = _run(work, "nudged", speedups=True, warmup_bias_lr=0.11)
    assert (nudged - plain).abs().max() > 4 * LOSS_ATOL


def test_persistent_workers_follow_set_epoch(work):
    images = str(Path(work["data"]).parent / "images" / "train")
    loader, ds = create_dataloader(images, 64, 4, 32, augment=True, workers=1, shuffle=True, persistent_workers=True)
    batches = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        batches.append(next(iter(loader))[0])
    ds.set_epoch(1)  # what the worker must have produced for epoch 1, computed in this process
    order = list(loader.sampler)[:4]
    expected = torch.stack([ds[i][0] for i in order])
    assert torch.equal(batches[1], expected)
    assert not torch.equal(batches[0], batches[1])


class _Broken:
    def __call__(self, *args, **kwargs):
        raise RuntimeError("no C++ compiler found\nsecond line")


def test_compile_failure_falls_back_with_one_line(caplog):
    torch.manual_seed(0)
    m = nn.Conv2d(3, 4, 3)
    wrapped = accel.EagerFallback(m, _Broken())
    x = torch.rand(1, 3, 8, 8)
    with caplog.at_level("WARNING", logger="yolobone"):
        out = wrapped(x)
    assert torch.equal(out, m(x)) and not wrapped.compiled
    lines = [r.getMessage() for r in caplog.records if "torch.compile" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0] and "no C++ compiler found" in lines[0]


def test_plan_and_options():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert accel.parse_compile(None) == "auto" and accel.parse_compile(True) == "on"
    with pytest.raises(ValueError, match="--compile 'fast'"):
        accel.parse_compile("fast")
    a = accel.plan_acceleration(cpu)
    assert a.channels_last and a.fused_optimizer and not a.compile and not a.amp and not a.cudnn_benchmark
    g = accel.plan_acceleration(cuda, deterministic=False)
    assert g.amp and g.cudnn_benchmark and g.channels_last
    assert not accel.plan_acceleration(cuda, deterministic=True).cudnn_benchmark
    assert not accel.plan_acceleration(cpu, speedups=False).channels_last
    assert accel.loader_cache(None, a) == "auto" and accel.loader_cache("disk", a) == "disk"
    assert accel.loader_cache(None, accel.plan_acceleration(cpu, speedups=False)) is None
    assert resolve_cache("auto", 100, 64, available_bytes=10**9) == "ram"
    assert resolve_cache("auto", 10**6, 640, available_bytes=10**9) is None
    assert resolve_cache("disk", 10**6, 640, available_bytes=10**9) == "disk"
