"""Training throughput, ours vs YOLOv5 v7.0: images/s over full epochs (data + step), interleaved in one run.

    python benchmarks/train_speed.py                     # yolov5n + yolov5s at 256 and 320 px, 128 images, 4 epochs
    python benchmarks/train_speed.py --cfgs yolov5n --imgsz 256 --rounds 2
    python benchmarks/train_speed.py --no-yolov5 --compile on   # ours only, with torch.compile

Each trial is a fresh process training from scratch on the same subset of the built-in shapes set (same model YAML,
imgsz, batch, epochs, workers, thread count, hyp.scratch-low, SGD). The first epoch is reported on its own
(warm-up: worker start, allocator, torch.compile when on). Two figures per trial, medians over the later epochs:
- full cycle (the figure compared): from one epoch's start to the next epoch's start, so the epoch's data, steps and
  checkpoint writes all count, whether inline (YOLOv5) or overlapping the next epoch (ours, a background thread);
  validation is subtracted (ours validates only the final epoch, YOLOv5 every epoch because its --noval breaks in
  7.0.14, timed by its on_val_start/on_val_end callbacks). The last epoch has no next start, hence >= 3 epochs.
- train phase: from the start of an epoch's data loading to the end of its last optimizer step.
Memory: peak RSS of the training process, and the growth of its RSS from the end of the second epoch to the end of
the last. YOLOv5 runs from ../shared/yolov5-ref (its own venv); pass --no-yolov5 where it is not set up.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
REF_SETUP = ROOT.parent / "shared" / "yolov5-ref" / "setup.sh"
MARK = "TRAIN_SPEED "


# ------------------------------------------------------------------------------------------- inside a trial process
def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class EpochClock:
    """From the trainers' callbacks: train-phase seconds of each epoch, full-cycle seconds of each epoch (from one
    epoch's start to the next's, checkpoint writes included, validation subtracted) and the RSS at each epoch end."""

    def __init__(self) -> None:
        self.start: Optional[float] = None
        self.seconds: List[float] = []
        self.rss: List[float] = []
        self.cycle_starts: List[float] = []
        self.val_seconds: List[float] = []  # validation time inside each cycle
        self._val_start = 0.0

    def epoch_start(self, *args: Any, **kwargs: Any) -> None:
        self.start = time.perf_counter()

    def cycle_start(self, *args: Any, **kwargs: Any) -> None:
        self.cycle_starts.append(time.perf_counter())
        self.val_seconds.append(0.0)

    def val_start(self, *args: Any, **kwargs: Any) -> None:
        self._val_start = time.perf_counter()

    def val_end(self, *args: Any, **kwargs: Any) -> None:
        self.val_seconds[-1] += time.perf_counter() - self._val_start

    def cycles(self) -> List[float]:
        s = self.cycle_starts
        return [b - a - v for a, b, v in zip(s, s[1:], self.val_seconds)]

    def epoch_end(self, *args: Any, **kwargs: Any) -> None:
        self.seconds.append(time.perf_counter() - self.start)
        self.rss.append(_rss_mb())

    def report(self, impl: str, n_images: int) -> None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(MARK + json.dumps({"impl": impl, "seconds": self.seconds, "cycles": self.cycles(), "rss_mb": self.rss,
                                 "peak_rss_mb": peak, "images": n_images}), flush=True)


def run_ours(a: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    from yolobone.engine.train import train

    clock = EpochClock()
    # ours validates only the final epoch (noval), so its cycles hold no validation to subtract
    r = train(dict(cfg=str(ROOT / "configs" / f"{a.cfg}.yaml"), data=a.data, epochs=a.epochs, imgsz=a.imgsz,
                   batch_size=a.batch_size, workers=a.workers, device=a.device, noval=True, noplots=True,
                   project=a.project, name="ours", compile=a.compile, speedups=not a.plain),
              callbacks={"on_train_start": [clock.epoch_start, clock.cycle_start],
                         "on_train_epoch_end": clock.epoch_end,
                         "on_fit_epoch_end": [clock.epoch_start, clock.cycle_start]})
    clock.report("ours", a.images)
    del r


def run_yolov5(a: argparse.Namespace) -> None:
    from yolov5 import train as y5
    from yolov5.utils.callbacks import Callbacks

    clock = EpochClock()
    cb = Callbacks()
    cb.register_action("on_train_epoch_start", callback=clock.epoch_start)
    cb.register_action("on_train_epoch_start", callback=clock.cycle_start)
    cb.register_action("on_train_epoch_end", callback=clock.epoch_end)
    cb.register_action("on_val_start", callback=clock.val_start)
    cb.register_action("on_val_end", callback=clock.val_end)
    sys.argv = sys.argv[:1]  # its parser reads sys.argv (and would take our --worker for its --workers)
    opt = y5.parse_opt(True)
    for k, v in dict(weights="", cfg=str(ROOT / "configs" / f"{a.cfg}.yaml"), data=a.data, epochs=a.epochs,
                     imgsz=a.imgsz, batch_size=a.batch_size, workers=a.workers, device=a.device,
                     noval=False,  # yolov5 7.0.14's --noval fails after a non-final epoch (map50s unbound)
                     noplots=True, project=a.project, name="yolov5", exist_ok=True).items():
        setattr(opt, k, v)
    y5.main(opt, callbacks=cb)
    clock.report("yolov5", a.images)


# ------------------------------------------------------------------------------------------- the orchestrating run
def make_subset(n_train: int, n_val: int, out: Path) -> Path:
    """A data YAML over the first images of the built-in shapes set (symlinks; absolute path for YOLOv5)."""
    sys.path.insert(0, str(ROOT))
    from yolobone.data.config import check_dataset

    full = check_dataset("shapes")
    src = Path(full["path"])
    for split, n in (("train", n_train), ("val", n_val)):
        files = sorted((src / "images" / split).iterdir())[:n]
        for kind in ("images", "labels"):
            (out / kind / split).mkdir(parents=True, exist_ok=True)
        for f in files:
            lb = src / "labels" / split / (f.stem + ".txt")
            for s, d in ((f, out / "images" / split / f.name), (lb, out / "labels" / split / lb.name)):
                if s.exists() and not d.exists():
                    d.symlink_to(s)
    names = list(full["names"].values()) if isinstance(full["names"], dict) else list(full["names"])
    yaml_path = out / "data.yaml"
    yaml_path.write_text(f"path: {out}\ntrain: images/train\nval: images/val\nnc: {len(names)}\n"
                         f"names: {json.dumps(names)}\n")
    return yaml_path


def trial(impl: str, cfg: str, imgsz: int, a: argparse.Namespace, data: Path, project: Path) -> Dict[str, Any]:
    args = ["benchmarks/train_speed.py", "--worker", impl, "--cfgs", cfg, "--imgsz", str(imgsz), "--data", str(data),
            "--epochs", str(a.epochs), "--batch-size", str(a.batch_size), "--workers", str(a.workers),
            "--images", str(a.images), "--project", str(project), "--compile", a.compile, "--device", a.device] + \
        (["--plain"] * a.plain)
    if impl == "yolov5":
        cmd = ["bash", "-c", f". {REF_SETUP} >/dev/null && cd {ROOT} && python " + " ".join(args)]
        env = dict(os.environ)
    else:
        cmd = [sys.executable] + args
        env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith(MARK)]
    if p.returncode or not lines:
        tail = (p.stderr or p.stdout).strip().splitlines()[-5:]
        raise SystemExit(f"train_speed: {impl} {cfg} {imgsz} failed (exit {p.returncode}):\n" + "\n".join(tail))
    out = json.loads(lines[-1][len(MARK):])
    out["wall_s"] = time.perf_counter() - t0
    return out


def summarize(r: Dict[str, Any]) -> Dict[str, float]:
    n, secs, rss, cycles = r["images"], r["seconds"], r["rss_mb"], r["cycles"]
    later, later_cycles = secs[1:] or secs, cycles[1:] or cycles
    return {"warm": n / secs[0], "ips": statistics.median(n / s for s in later),
            "cycle_ips": statistics.median(n / s for s in later_cycles), "peak": r["peak_rss_mb"],
            "growth": (rss[-1] - rss[1]) if len(rss) > 2 else 0.0, "wall": r["wall_s"]}


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cfgs", nargs="+", default=["yolov5n", "yolov5s"], help="model YAML stems in configs/")
    p.add_argument("--imgsz", nargs="+", type=int, default=[256, 320])
    p.add_argument("--images", type=int, default=128, help="training images per epoch (a subset of shapes)")
    p.add_argument("--epochs", type=int, default=4, help="epochs per trial (the first is the warm-up)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu or a CUDA index (0): both sides train there (AMP on CUDA)")
    p.add_argument("--out", default="", help="also write the medians (images/s, ratios) to this JSON file")
    p.add_argument("--rounds", type=int, default=1, help="interleaved rounds (ours/YOLOv5 order alternates)")
    p.add_argument("--compile", default="auto", choices=("auto", "on", "off"), help="our --compile")
    p.add_argument("--plain", action="store_true", help="ours with --no-speedups (an A/A check)")
    p.add_argument("--no-yolov5", action="store_true", help="ours only")
    p.add_argument("--worker", choices=("ours", "yolov5"), help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--project", default=str(Path("/tmp") / f"train_speed_{os.getpid()}"), help="scratch folder")
    a = p.parse_args(argv)
    if a.worker:
        a.cfg, a.imgsz = a.cfgs[0], a.imgsz[0]
        (run_ours if a.worker == "ours" else run_yolov5)(a)
        return 0
    if a.epochs < 3:
        raise SystemExit("train_speed: --epochs must be >= 3 (the first epoch is the warm-up, the last has no "
                         "next epoch to end its cycle)")
    impls = ["ours"] + ([] if a.no_yolov5 else ["yolov5"])
    if "yolov5" in impls and not REF_SETUP.is_file():
        raise SystemExit(f"train_speed: {REF_SETUP} not found; pass --no-yolov5 or set up the reference")
    project = Path(a.project)
    data = make_subset(a.images, 16, project / "data")
    print(f"train_speed: {a.images} images x {a.epochs} epochs, batch {a.batch_size}, {a.workers} workers, "
          f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {load()}",
          flush=True)
    results: Dict[tuple, List[Dict[str, float]]] = {}
    for rnd in range(a.rounds):
        for cfg in a.cfgs:
            for imgsz in a.imgsz:
                order = impls if (rnd % 2 == 0) else impls[::-1]
                for impl in order:
                    s = summarize(trial(impl, cfg, imgsz, a, data, project / f"r{rnd}_{cfg}_{imgsz}"))
                    results.setdefault((cfg, imgsz, impl), []).append(s)
                    print(f"  round {rnd + 1} {cfg} {imgsz} {impl:6s}: {s['cycle_ips']:.2f} images/s full cycle, "
                          f"{s['ips']:.2f} train phase (warm-up epoch {s['warm']:.2f}), peak RSS {s['peak']:.0f} MB, "
                          f"RSS growth {s['growth']:+.0f} MB, {s['wall']:.0f} s, {load()}", flush=True)
    summary: Dict[str, Dict[str, float]] = {}
    print(f"\n{'model':10s}{'imgsz':>6s}{'impl':>8s}{'cycle img/s':>12s}{'ratio':>7s}{'train img/s':>12s}"
          f"{'ratio':>7s}{'warm-up':>9s}{'peak MB':>9s}{'growth MB':>11s}")
    for cfg in a.cfgs:
        for imgsz in a.imgsz:
            med = {(impl, k): statistics.median(x[k] for x in results[(cfg, imgsz, impl)])
                   for impl in impls for k in ("cycle_ips", "ips")}
            summary[f"{cfg}@{imgsz}"] = {f"{impl}_{k}": round(med[(impl, k)], 2) for impl, k in med}
            if "yolov5" in impls:
                ratio = med[("ours", "cycle_ips")] / med[("yolov5", "cycle_ips")]
                summary[f"{cfg}@{imgsz}"]["ratio_cycle"] = round(ratio, 3)
            for impl in impls:
                rs = results[(cfg, imgsz, impl)]
                ratios = [f"{med[('ours', k)] / med[('yolov5', k)]:.2f}x" if impl == "ours" and "yolov5" in impls
                          else "" for k in ("cycle_ips", "ips")]
                print(f"{cfg:10s}{imgsz:6d}{impl:>8s}{med[(impl, 'cycle_ips')]:12.2f}{ratios[0]:>7s}"
                      f"{med[(impl, 'ips')]:12.2f}{ratios[1]:>7s}"
                      f"{statistics.median(x['warm'] for x in rs):9.2f}{max(x['peak'] for x in rs):9.0f}"
                      f"{max(x['growth'] for x in rs):+11.0f}")
    if a.out:
        Path(a.out).write_text(json.dumps(summary, indent=1))
    print(f"({load()} at the end; ratio = our images/s / YOLOv5's, medians over rounds of the post-warm-up epochs; "
          "full cycle = one epoch's start to the next's, checkpoint writes included, validation subtracted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
