"""Ultralytics parity of the anchor-free configs: parameter counts, and eval-mode outputs on shared weights.

    python benchmarks/ultralytics_forward.py                       # yolov5nu, yolov8n, yolo11n, yolo11m
    python benchmarks/ultralytics_forward.py --cfgs yolo11s yolov8x --imgsz 64 96 --ref-setup ../shared/yolov5-ref/setup.sh

Per config, Ultralytics' `DetectionModel(<name>.yaml, nc=--nc)` is built in the reference venv (setup.sh of
../shared/yolov5-ref), its BatchNorm statistics and affine weights randomised (so the head's decode sees varied
values), and its state dict, a random input batch and its eval output saved. Our model from configs/<name>.yaml
loads that state dict strictly (the key names are the same) and decodes the same batch: the table shows both
parameter counts and the largest absolute difference of the decoded (B, N, 4 + nc) predictions next to the largest
value (xywh in pixels and class scores).
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.learning_parity import REF_SETUP  # noqa: E402
from yolobone.models import build_model  # noqa: E402

REF_CODE = """
import torch
from ultralytics.nn.tasks import DetectionModel
torch.manual_seed(0)
out = {{}}
for name in {names!r}:
    m = DetectionModel(name + ".yaml", nc={nc}, verbose=False).eval()
    for bn in (x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.2, 0.2); bn.running_var.uniform_(0.5, 1.5)
        bn.weight.data.uniform_(0.5, 1.5); bn.bias.data.uniform_(-0.2, 0.2)
    x = torch.rand(2, 3, {h}, {w})
    with torch.no_grad():
        y = m(x)
    y = y[0] if isinstance(y, (tuple, list)) else y
    out[name] = {{"state": m.state_dict(), "x": x, "y": y.transpose(1, 2).contiguous(),
                 "params": sum(p.numel() for p in m.parameters())}}
torch.save(out, {path!r})
"""


def reference_outputs(names: List[str], nc: int, imgsz: List[int], setup: Path, workdir: Path) -> dict:
    path = workdir / "reference.pt"
    code = REF_CODE.format(names=names, nc=nc, h=imgsz[0], w=imgsz[-1], path=str(path))
    cmd = f". {shlex.quote(str(setup))} >/dev/null 2>&1 && YOLO_OFFLINE=1 python -c {shlex.quote(code)}"
    subprocess.run(["bash", "-c", cmd], cwd=workdir, check=True,
                   env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "OMP_NUM_THREADS": "1"})
    return torch.load(path, weights_only=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfgs", nargs="+", default=["yolov5nu", "yolov8n", "yolo11n", "yolo11m"])
    parser.add_argument("--nc", type=int, default=3)
    parser.add_argument("--imgsz", type=int, nargs="+", default=[64, 96], help="h [w]")
    parser.add_argument("--ref-setup", type=Path, default=REF_SETUP)
    opt = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ref = reference_outputs(opt.cfgs, opt.nc, opt.imgsz, opt.ref_setup.resolve(), Path(tmp))
    print(f"torch {torch.__version__}, nc {opt.nc}, input 2x3x{opt.imgsz[0]}x{opt.imgsz[-1]}")
    print("| config | params (ours) | params (Ultralytics) | max abs diff | max abs value |")
    print("|---|---:|---:|---:|---:|")
    for name in opt.cfgs:
        r = ref[name]
        model = build_model(ROOT / "configs" / f"{name}.yaml", nc=opt.nc).eval()
        model.load_state_dict(r["state"])  # strict: the same module names as Ultralytics
        with torch.no_grad():
            y = model(r["x"])[0]
        diff = float((y - r["y"]).abs().max())
        print(f"| {name} | {sum(p.numel() for p in model.parameters()):,} | {r['params']:,} | {diff:.2e} | "
              f"{float(r['y'].abs().max()):.1f} |", flush=True)


if __name__ == "__main__":
    main()
