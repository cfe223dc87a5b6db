"""Training-step speed: forward + loss + backward + optimizer step of a detector on random data (CPU by default).

    python benchmarks/train_step.py                                   # yolov5s, 320 px, batch 8, CPU
    python benchmarks/train_step.py --cfg configs/yolov5n.yaml --steps 20
    python benchmarks/train_step.py --ab --threads 1    # plain loop vs speed-ups (yolobone/engine/core/acceleration), interleaved
Prints the median, mean and min wall seconds per step, images per second, and the median process CPU time per step
(which, unlike wall time, does not grow when other processes share the cores).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Optional, Sequence, Tuple

import torch
from tqdm import tqdm

from yolobone.engine.core import acceleration as accel
from yolobone.engine.core.optim import build_optimizer
from yolobone.models import DetectionModel
from yolobone.models.loss import ComputeLoss
from yolobone.utils.ema import ModelEMA
from yolobone.utils.hyp import Hyp
from yolobone.utils.torch_utils import select_device


def random_targets(batch: int, per_image: int, nc: int, gen: torch.Generator) -> torch.Tensor:
    """(batch * per_image, 6) [img, cls, cx, cy, w, h] normalised boxes."""
    n = batch * per_image
    img = torch.arange(batch).repeat_interleave(per_image).float()
    cls = torch.randint(0, nc, (n,), generator=gen).float()
    wh = torch.rand(n, 2, generator=gen) * 0.4 + 0.05
    xy = torch.rand(n, 2, generator=gen) * (1 - wh) + wh / 2
    return torch.cat((img[:, None], cls[:, None], xy, wh), 1)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cfg", default="configs/yolov5s.yaml")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--nc", type=int, default=80)
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--ab", action="store_true", help="plain loop vs speed-ups (channels_last, fused optimizer, "
                   "multi-tensor EMA), interleaved; prints the CPU-time ratio")
    opt = p.parse_args(argv)
    if opt.threads:
        torch.set_num_threads(opt.threads)
    device = select_device(opt.device)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    if opt.ab:
        return ab_compare(opt, device, gen)
    model = DetectionModel(opt.cfg, nc=opt.nc).to(device).train()
    hyp = Hyp()
    loss_fn = ComputeLoss(model.detect, hyp, imgsz=opt.imgsz)
    optimizer = build_optimizer(model, "SGD", hyp.lr0, hyp.momentum, hyp.weight_decay)
    images = torch.randint(0, 256, (opt.batch_size, 3, opt.imgsz, opt.imgsz), dtype=torch.uint8, generator=gen)
    targets = random_targets(opt.batch_size, 8, opt.nc, gen)

    def step() -> Tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        x = images.to(device).float() / 255
        loss, _ = loss_fn(model(x), targets.to(device))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0, time.process_time() - c0

    for _ in tqdm(range(opt.warmup), desc="warmup", leave=False):
        step()
    measured = [step() for _ in tqdm(range(opt.steps), desc="timed steps", leave=False)]
    times = [w for w, _ in measured]
    med = statistics.median(times)
    cpu = statistics.median(c for _, c in measured)
    print(f"{Path(opt.cfg).stem} train step, imgsz {opt.imgsz}, batch {opt.batch_size}, {device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"median {med:.3f} s/step, mean {statistics.mean(times):.3f}, min {min(times):.3f}, "
          f"max {max(times):.3f} over {opt.steps} steps ({opt.batch_size / med:.1f} images/s at the median)")
    print(f"median process CPU time {cpu:.3f} s/step (all threads; wall >> CPU / threads means the cores are shared)")
    return 0


def ab_compare(opt: argparse.Namespace, device: torch.device, gen: torch.Generator) -> int:
    """The full optimizer step (with gradient clipping and EMA, as the trainer) with and without the speed-ups."""
    import copy

    base = DetectionModel(opt.cfg, nc=opt.nc).to(device).train()
    images = torch.randint(0, 256, (opt.batch_size, 3, opt.imgsz, opt.imgsz), dtype=torch.uint8, generator=gen)
    targets = random_targets(opt.batch_size, 8, opt.nc, gen).to(device)
    hyp = Hyp()
    arms = {}
    for name, fast in (("plain", False), ("speed-ups", True)):
        acc = accel.plan_acceleration(device, speedups=fast, compile_mode="off")
        m = accel.to_memory_format(copy.deepcopy(base), acc)
        optimizer = accel.fuse_optimizer(build_optimizer(m, "SGD", hyp.lr0, hyp.momentum, hyp.weight_decay), acc)
        arms[name] = (acc, m, optimizer, ModelEMA(m), ComputeLoss(m.detect, hyp, imgsz=opt.imgsz))

    def step(name: str) -> float:
        acc, m, optimizer, ema, loss_fn = arms[name]
        c0 = time.process_time()
        loss, _ = loss_fn(m(accel.prepare_images(images.to(device), acc)), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 10.0)
        optimizer.step()
        optimizer.zero_grad()
        ema.update(m)
        return time.process_time() - c0

    cpu = {name: [] for name in arms}
    for rnd in tqdm(range(opt.warmup + opt.steps), desc="A/B rounds", leave=False):
        for name in (list(arms) if rnd % 2 == 0 else list(arms)[::-1]):
            t = step(name)
            if rnd >= opt.warmup:
                cpu[name].append(t)
    med = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"{Path(opt.cfg).stem} train step A/B, imgsz {opt.imgsz}, batch {opt.batch_size}, {device}, "
          f"{torch.get_num_threads()} threads: median process CPU s/step plain {med['plain']:.3f}, "
          f"speed-ups {med['speed-ups']:.3f}, ratio {med['plain'] / med['speed-ups']:.2f}x over {opt.steps} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
