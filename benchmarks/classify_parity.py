"""Side by side: our classifier training vs YOLOv5 v7.0's classify/train.py, same model, data and flags, interleaved.

    python benchmarks/classify_parity.py                      # digits-cls, 10 epochs, 32 px, batch 64, 2 repeats
    python benchmarks/classify_parity.py --crop-scale 0.08                # both sides with YOLOv5's ImageNet crop

The data is the offline real-image set of benchmarks/data/make_digits_cls.py (built on first use). YOLOv5 runs in its
reference venv (../shared/yolov5-ref/setup.sh) from an init.pt built there from its yolov5s.yaml with cutoff=10
(the same 4,185,290-parameter model as configs/cls/yolov5s-cls.yaml with 10 classes) and --pretrained False.
--crop-scale S sets the smallest random-resized-crop area on both sides: ours through its --crop-scale flag,
YOLOv5 (which has no such flag; its classify_albumentations keeps 0.08) by running its unchanged classify/train.py
with that one default replaced; --jitter J does the same for the colour-jitter strength. Without them each side
keeps its own default. Runs go A B B A (ours first in even seeds, YOLOv5 first in odd ones), each pair with seed
--first-seed + repeat index, every process with OMP_NUM_THREADS = --threads. Prints per run: final and best val
top-1, train loss first -> last epoch, training seconds per epoch (from each trainer's own closing time line),
process CPU seconds, then medians, ratios ours / YOLOv5 and the mean top-1. Writes the table as JSON to <out>/parity-seeds<first>-<last>.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.data.make_digits_cls import DEFAULT_OUT, build  # noqa: E402

REF_SETUP = ROOT.parent / "shared" / "yolov5-ref" / "setup.sh"
REF_DIR = "import os, yolov5; print(os.path.dirname(yolov5.__file__))"
RUN_REF_WITH_AUG = """
import functools, runpy, sys
import yolov5.utils.augmentations as A, yolov5.utils.dataloaders as D
D.classify_albumentations = functools.partial(A.classify_albumentations, **{kwargs})
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
MAKE_INIT = """
import os, sys, torch, yolov5
from yolov5.models.yolo import ClassificationModel, DetectionModel
cfg = os.path.join(os.path.dirname(yolov5.__file__), 'models', 'yolov5s.yaml')
m = ClassificationModel(model=DetectionModel(cfg, nc={nc}), nc={nc}, cutoff=10)
torch.save({{'model': m}}, sys.argv[1])
print(sum(p.numel() for p in m.parameters()))
"""


def ref_shell(setup: Path, command: str) -> List[str]:
    """bash command line that runs `command` inside the activated YOLOv5 reference venv."""
    return ["bash", "-c", f". {shlex.quote(str(setup))} >/dev/null && {command}"]


def timed_run(cmd: List[str], log: Path, env: Dict[str, str], cwd: Path) -> Dict[str, float]:
    """Run cmd with output to `log`; wall seconds and the children's CPU seconds it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd).returncode
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if rc != 0:
        raise SystemExit(f"{cmd[0]} ... failed (exit {rc}); see {log}")
    return {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}


def read_results(run_dir: Path, log: Path, epochs: int) -> Dict[str, float]:
    """Final/best top-1 and first/last train loss from results.csv; seconds per epoch from the log."""
    with open(run_dir / "results.csv") as f:
        rows = [{k.strip(): float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    top1 = [r["metrics/accuracy_top1"] for r in rows]
    # YOLOv5: "Training complete (0.013 hours)"; ours: "10 epochs completed in 0.013 hours."
    hours = re.findall(r"(?:Training complete \(|epochs completed in )([\d.]+) hours", log.read_text(errors="replace"))
    return {"top1": top1[-1], "best_top1": max(top1), "loss_first": rows[0]["train/loss"],
            "loss_last": rows[-1]["train/loss"], "epoch_s": float(hours[-1]) * 3600 / epochs if hours else float("nan")}


def median(runs: List[Dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_OUT, help="ImageFolder root (built if missing)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "classify-parity", help="run folders and JSON tables")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--imgsz", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of both sides")
    p.add_argument("--repeats", type=int, default=2, help="A B pairs (seed = --first-seed + repeat index)")
    p.add_argument("--first-seed", type=int, default=0, help="seed of the first pair (to add seeds to a finished run)")
    p.add_argument("--crop-scale", type=float, default=None,
                   help="smallest crop area on both sides (default: each side's own: ours scales with imgsz, YOLOv5 0.08)")
    p.add_argument("--jitter", type=float, default=None,
                   help="colour-jitter strength on both sides (0 disables it; default: each side's own, 0.4)")
    p.add_argument("--ours-args", default="", help="extra flags for our train.py, e.g. '--crop-scale 0.08'")
    p.add_argument("--ref-setup", type=Path, default=REF_SETUP, help="YOLOv5 reference venv setup script")
    a = p.parse_args(argv)
    counts = build(a.data.expanduser())
    nc = len([d for d in (a.data.expanduser() / "train").iterdir() if d.is_dir()])
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "PYTHONUNBUFFERED": "1"}
    init = out / "yolov5-init.pt"
    code = MAKE_INIT.format(nc=nc)
    subprocess.run(ref_shell(a.ref_setup, f"python -c {shlex.quote(code)} {shlex.quote(str(init))}"), check=True,
                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    common = (f"--data {shlex.quote(str(a.data.expanduser()))} --epochs {a.epochs} --imgsz {a.imgsz} "
              f"--batch-size {a.batch_size} --workers {a.workers} --device cpu --project {shlex.quote(str(out))} "
              f"--exist-ok")
    print(f"data {a.data}: {counts['train']} train / {counts['val']} val images, {nc} classes; "
          f"{a.epochs} epochs, {a.imgsz} px, batch {a.batch_size}, workers {a.workers}, threads {a.threads}")
    runs: Dict[str, List[Dict[str, float]]] = {"ours": [], "yolov5": []}
    ref_aug = {**({"scale": (a.crop_scale, 1.0)} if a.crop_scale is not None else {}),
               **({"jitter": a.jitter} if a.jitter is not None else {})}
    for r in range(a.first_seed, a.first_seed + a.repeats):
        order = ("ours", "yolov5") if r % 2 == 0 else ("yolov5", "ours")
        for side in order:
            name = f"{side}-r{r}"
            if side == "ours":
                cmd = [sys.executable, "train.py", "--task", "classify", "--cfg", "configs/cls/yolov5s-cls.yaml",
                       *shlex.split(common), "--name", name, "--seed", str(r), "--noplots", *shlex.split(a.ours_args)]
                if a.crop_scale is not None:
                    cmd += ["--crop-scale", str(a.crop_scale)]
                if a.jitter is not None:
                    cmd += ["--jitter", str(a.jitter)]
            else:
                runner = f"-c {shlex.quote(RUN_REF_WITH_AUG.format(kwargs=ref_aug))} " if ref_aug else ""
                cmd = ref_shell(a.ref_setup, f"python {runner}\"$(python -c '{REF_DIR}' 2>/dev/null)/classify/train.py\" "
                                             f"--model {shlex.quote(str(init))} --pretrained False {common} "
                                             f"--name {name} --seed {r}")
            log = out / f"{name}.log"
            res = {**timed_run(cmd, log, env, ROOT), **read_results(out / name, log, a.epochs), "seed": r}
            runs[side].append(res)
            print(f"{name:>10}: top-1 {res['top1']:.3f} (best {res['best_top1']:.3f}), train loss "
                  f"{res['loss_first']:.2f} -> {res['loss_last']:.2f}, {res['epoch_s']:.1f} s/epoch, "
                  f"wall {res['wall_s']:.0f} s, CPU {res['cpu_s']:.0f} s", flush=True)
    summary = {k: {m: median(v, m) for m in ("top1", "best_top1", "loss_last", "epoch_s", "wall_s", "cpu_s")}
               for k, v in runs.items()}
    o, y = summary["ours"], summary["yolov5"]
    print(f"median ours:   top-1 {o['top1']:.3f}, last train loss {o['loss_last']:.2f}, {o['epoch_s']:.1f} s/epoch, "
          f"CPU {o['cpu_s']:.0f} s\nmedian YOLOv5: top-1 {y['top1']:.3f}, last train loss {y['loss_last']:.2f}, "
          f"{y['epoch_s']:.1f} s/epoch, CPU {y['cpu_s']:.0f} s\nratio ours/YOLOv5: top-1 {o['top1'] / y['top1']:.3f}, "
          f"epoch time {o['epoch_s'] / y['epoch_s']:.3f}, CPU {o['cpu_s'] / y['cpu_s']:.3f}")
    means = {k: sum(r["top1"] for r in v) / len(v) for k, v in runs.items()}
    print(f"mean top-1 over seeds {a.first_seed}..{a.first_seed + a.repeats - 1}: ours {means['ours']:.4f}, "
          f"YOLOv5 {means['yolov5']:.4f}")
    table = out / f"parity-seeds{a.first_seed}-{a.first_seed + a.repeats - 1}.json"
    table.write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "runs": runs,
                                 "median": summary, "mean_top1": means}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
