"""Ultralytics' own .pt files read by ours (restricted unpickler, nothing they name is imported): same outputs.

    python benchmarks/ultralytics_checkpoint.py                          # yolov5nu, yolov8n, yolo11n, saved by Ultralytics
    python benchmarks/ultralytics_checkpoint.py --weights runs/train/exp/weights/best.pt yolo11n.pt

Without --weights, Ultralytics (its reference venv, ../shared/yolov5-ref) builds each --cfgs model with nc 80,
randomises its BatchNorm statistics and affine weights, and writes it with its own `YOLO.save` (fp16, as its release
files and trainer write them). For every file, Ultralytics loads it (its `load_checkpoint`) and decodes a
fixed random batch in eval mode; ours loads the same file through `load_checkpoint` and decodes the same batch. The
table shows the parameter counts, the names and strides read, and the largest difference of the decoded
(B, 4 + nc, N) predictions next to the largest value.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path
from typing import List

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.learning_parity import REF_SETUP  # noqa: E402
from yolobone.models.loading import model_from_checkpoint  # noqa: E402
from yolobone.utils.checkpoint import load_checkpoint  # noqa: E402

REF_WRITE = """
import torch
from ultralytics import YOLO
torch.manual_seed(0)
for name in {names!r}:
    y = YOLO(name + ".yaml")
    for bn in (x for x in y.model.modules() if isinstance(x, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.2, 0.2); bn.running_var.uniform_(0.5, 1.5)
        bn.weight.data.uniform_(0.5, 1.5); bn.bias.data.uniform_(-0.2, 0.2)
    y.save({out!r} + "/" + name + ".pt")
"""
REF_RUN = """
import torch
from ultralytics.nn.tasks import load_checkpoint
x = torch.rand(2, 3, {h}, {w}, generator=torch.Generator().manual_seed(1))
out = {{}}
for f in {files!r}:
    m, _ = load_checkpoint(f, device="cpu", inplace=True, fuse=False)
    m = m.float().eval()
    with torch.no_grad():
        out[f] = m(x)[0]
torch.save({{"x": x, "y": out}}, {dest!r})
"""


def reference(code: str, setup: Path, cwd: Path) -> None:
    cmd = f". {shlex.quote(str(setup))} >/dev/null 2>&1 && python -c {shlex.quote(code)}"
    out = subprocess.run(["bash", "-c", cmd], cwd=cwd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"Ultralytics reference failed (exit {out.returncode}):\n{out.stderr[-3000:]}")


def main(argv: List[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cfgs", nargs="+", default=["yolov5nu", "yolov8n", "yolo11n"])
    p.add_argument("--weights", nargs="*", type=Path, default=[], help="Ultralytics .pt files (else --cfgs saved)")
    p.add_argument("--imgsz", type=int, nargs=2, default=[96, 128], help="h w")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "ultralytics_checkpoint")
    p.add_argument("--ref-setup", type=Path, default=REF_SETUP)
    a = p.parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    files = [w.resolve() for w in a.weights]
    if not files:
        reference(REF_WRITE.format(names=a.cfgs, out=str(a.work.resolve())), a.ref_setup, a.work)
        files = [(a.work / f"{n}.pt").resolve() for n in a.cfgs]
    dest = a.work / "reference_outputs.pt"
    reference(REF_RUN.format(files=[str(f) for f in files], h=a.imgsz[0], w=a.imgsz[1], dest=str(dest.resolve())),
              a.ref_setup, a.work)
    ref = torch.load(dest, weights_only=True)
    print(f"{'file':40s} {'params':>11s} {'nc':>4s} {'strides':>14s} {'max |diff|':>11s} {'max |value|':>12s}")
    worst = 0.0
    for f in files:
        ckpt = load_checkpoint(f)
        model = model_from_checkpoint(ckpt, str(f)).float().eval()
        with torch.no_grad():
            ours = model(ref["x"])[0]
        theirs = ref["y"][str(f)]
        if ours.shape != theirs.shape:  # ours (B, N, 4 + nc), Ultralytics (B, 4 + nc, N)
            theirs = theirs.transpose(1, 2)
        diff, scale = float((ours - theirs).abs().max()), float(theirs.abs().max())
        worst = max(worst, diff / scale)
        print(f"{f.name:40s} {sum(t.numel() for t in model.parameters()):11,d} {ckpt['nc']:4d} "
              f"{str(ckpt['stride']):>14s} {diff:11.2e} {scale:12.1f}")
    print(f"largest difference relative to the largest value: {worst:.2e}")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
