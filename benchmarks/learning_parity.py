"""Learning parity with YOLOv5 v7.0: both trainers, same data, model, schedule and seeds; both scored by COCOeval.

    python benchmarks/learning_parity.py                        # digits-det, yolov5n, 160 px, 30 epochs, seeds 0 1
    python benchmarks/learning_parity.py --data shapes --epochs 30        # the built-in shapes set
    python benchmarks/learning_parity.py --sides ours --ours-args "--hyp my_hyp.yaml" --tag trial

For every seed, our train.py and YOLOv5's `python -m yolov5.train` (its reference venv, ../shared/yolov5-ref) run at
the same time (one process each, OMP_NUM_THREADS = --threads, niceness 10), each on its own copy of the label folders
(the images are shared through a link) so their label caches never meet. Afterwards each side's best.pt is validated
by its own val (conf 0.001, IoU 0.6, rect batches) with the predictions saved as COCO JSON, and both JSON files are
scored by pycocotools against the same ground truth (yolobone/engine/detect/coco_eval.py): that is the "COCOeval" column. The
trainers' own per-epoch mAP (results.csv) is printed too. Prints per-epoch training loss (box + obj + cls) of every run,
per-seed best mAP50 / mAP50-95, means, the ours / YOLOv5 ratio, and writes everything to <out>/parity.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.data.make_digits_det import DEFAULT_OUT as DIGITS_DET, build as build_digits_det  # noqa: E402

REF_SETUP = ROOT.parent / "shared" / "yolov5-ref" / "setup.sh"
SIDES = ("ours", "yolov5")


def resolve_data(data: str) -> Path:
    """data.yaml for 'digits-det' (built on first use), 'shapes' (built-in) or a path."""
    if data == "digits-det":
        build_digits_det(DIGITS_DET)
        return DIGITS_DET / "data.yaml"
    if data == "shapes":
        from yolobone.data.synthetic import ensure_builtin_dataset
        return ensure_builtin_dataset("shapes")
    return Path(data).resolve()


def side_copy(data_yaml: Path, dest: Path) -> Path:
    """A data.yaml whose train/val images link to the originals and whose labels are private copies."""
    from yolobone.utils.yaml_io import load_yaml
    cfg = load_yaml(data_yaml)
    base = Path(cfg.get("path") or data_yaml.parent)
    base = base if base.is_absolute() else (data_yaml.parent / base).resolve()
    out = {"path": str(dest), "nc": cfg["nc"], "names": [str(n) for n in cfg["names"]]}
    for split in ("train", "val"):
        images = base / cfg[split]
        labels = Path(str(images).replace(f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"))
        link, lbl = dest / "images" / split, dest / "labels" / split
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(images, target_is_directory=True)
        if not lbl.exists():
            shutil.copytree(labels, lbl, ignore=shutil.ignore_patterns("*.cache"))
        out[split] = f"images/{split}"
    path = dest / "data.yaml"
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in out.items()))
    return path


def ref_command(args: str) -> List[str]:
    return ["bash", "-c", f". {shlex.quote(str(REF_SETUP))} >/dev/null 2>&1 && {args}"]


def train_command(side: str, data: Path, run_dir: Path, seed: int, a: argparse.Namespace) -> List[str]:
    common = (f"--data {data} --weights '' --img {a.img} --batch-size {a.batch} --epochs {a.epochs} --seed {seed} "
              f"--device cpu --workers {a.workers} --project {run_dir.parent} --name {run_dir.name} --exist-ok "
              f"--noplots")
    if side == "ours":
        return ["bash", "-c", f"cd {shlex.quote(str(a.ours_root))} && {shlex.quote(sys.executable)} train.py "
                              f"--cfg configs/{a.cfg}.yaml {common} {a.ours_args}"]
    return ref_command(f"python -m yolov5.train --cfg {a.cfg}.yaml {common} {a.ref_args}")


def val_command(side: str, data: Path, run_dir: Path, a: argparse.Namespace) -> List[str]:
    common = (f"--weights {run_dir / 'weights' / 'best.pt'} --data {data} --img {a.img} --batch-size {a.batch} "
              f"--device cpu --workers {a.workers} --project {run_dir} --name val --exist-ok --save-json")
    if side == "ours":
        return ["bash", "-c", f"cd {shlex.quote(str(a.ours_root))} && {shlex.quote(sys.executable)} val.py {common} "
                              f"--coco-eval"]
    return ref_command(f"python -m yolov5.val {common}")


def launch(cmd: List[str], log: Path, threads: int, side: str, ours_root: Path = ROOT) -> subprocess.Popen:
    """Start cmd niced; YOLOv5 runs outside our tree (`python -m` puts the working directory on sys.path, and its
    attempt_load would import our models/ package)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env["PYTHONPATH"] = str(ours_root) if side == "ours" else ""
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(["nice", "-n", "10", *cmd], cwd=ROOT if side == "ours" else log.parent, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def read_results(csv_path: Path) -> Dict[str, List[float]]:
    """results.csv columns (keys stripped of YOLOv5's padding) -> values per epoch."""
    with csv_path.open() as f:
        rows = [{k.strip(): float(v) for k, v in r.items() if k and v and v.strip()} for r in csv.DictReader(f)]
    return {k: [r[k] for r in rows] for k in rows[0]} if rows else {}


def coco_scores(side: str, run_dir: Path) -> Optional[List[float]]:
    """[mAP50-95, mAP50] of the side's best.pt predictions, scored by pycocotools against one ground truth."""
    from yolobone.engine.detect.coco_eval import evaluate_json_files
    val_dir = run_dir / "val"
    gt = next(iter(sorted(val_dir.glob("*_ground_truth.json"))), None) if side == "ours" else None
    if side == "yolov5":
        ours_val = run_dir.parent / run_dir.name.replace("yolov5", "ours") / "val"
        gt = next(iter(sorted(ours_val.glob("*_ground_truth.json"))), None)
    pred = next(iter(sorted(val_dir.glob("*_predictions.json"))), None)
    if gt is None or pred is None:
        return None
    stats = evaluate_json_files(gt, pred)
    return [float(stats[0]), float(stats[1])]


def summarize(run_dir: Path, side: str) -> dict:
    res = read_results(run_dir / "results.csv")
    loss = [sum(v) for v in zip(res["train/box_loss"], res["train/obj_loss"], res["train/cls_loss"])]
    return {"loss": loss, "map50": res["metrics/mAP_0.5"], "map": res["metrics/mAP_0.5:0.95"],
            "best_map50": max(res["metrics/mAP_0.5"]), "best_map": max(res["metrics/mAP_0.5:0.95"]),
            "coco": coco_scores(side, run_dir)}


def run_pair(seed: int, data: Dict[str, Path], out: Path, a: argparse.Namespace) -> Dict[str, dict]:
    """Train the sides at the same time, then validate ours before YOLOv5 (its score needs our ground truth)."""
    dirs = {s: out / f"{s}-seed{seed}" for s in a.sides}
    procs = {s: launch(train_command(s, data[s], dirs[s], seed, a), out / f"{s}-seed{seed}.log", a.threads, s,
                       a.ours_root) for s in a.sides}
    t0 = time.time()
    for s, p in procs.items():
        if p.wait():
            raise SystemExit(f"{s} seed {seed} training failed (exit {p.returncode}); see {out}/{s}-seed{seed}.log")
    print(f"seed {seed}: trained {', '.join(a.sides)} in {time.time() - t0:.0f} s", flush=True)
    for s in a.sides:
        log = out / f"{s}-seed{seed}-val.log"
        if launch(val_command(s, data[s], dirs[s], a), log, a.threads, s, a.ours_root).wait():
            print(f"  {s} seed {seed}: validation failed, see {out}/{s}-seed{seed}-val.log")
    return {s: summarize(dirs[s], s) for s in a.sides}


def report(runs: Dict[str, Dict[int, dict]], a: argparse.Namespace) -> None:
    seeds = sorted(next(iter(runs.values())))
    print("\ntraining loss (box + obj + cls) per epoch")
    cols = [(s, k) for s in runs for k in seeds]
    print("epoch " + " ".join(f"{s[:6]}-s{k:<3}" for s, k in cols))
    for e in range(a.epochs):
        print(f"{e:5d} " + " ".join(f"{runs[s][k]['loss'][e]:10.4f}" if e < len(runs[s][k]["loss"]) else " " * 10
                                    for s, k in cols))
    print("\nbest mAP per run            own results.csv          COCOeval on best.pt (same JSON scoring)")
    means = {}
    for s in runs:
        own50 = [runs[s][k]["best_map50"] for k in seeds]
        coco = [runs[s][k]["coco"] for k in seeds]
        for k in seeds:
            r, c = runs[s][k], runs[s][k]["coco"]
            print(f"  {s:7s} seed {k}: mAP50 {r['best_map50']:.4f} mAP50-95 {r['best_map']:.4f}     "
                  + (f"mAP50 {c[1]:.4f} mAP50-95 {c[0]:.4f}" if c else "n/a"))
        means[s] = {"own_map50": statistics.mean(own50),
                    "coco_map50": statistics.mean(c[1] for c in coco) if all(coco) else None,
                    "coco_map": statistics.mean(c[0] for c in coco) if all(coco) else None,
                    "final_loss": statistics.mean(runs[s][k]["loss"][-1] for k in seeds)}
        m = means[s]
        print(f"  {s:7s} mean  : mAP50 {m['own_map50']:.4f}                      "
              + (f"mAP50 {m['coco_map50']:.4f} mAP50-95 {m['coco_map']:.4f}" if m["coco_map50"] else "")
              + f"   final loss {m['final_loss']:.4f}")
    if set(SIDES) <= set(means) and means["yolov5"]["coco_map50"]:
        o, y = means["ours"], means["yolov5"]
        print(f"ratio ours / YOLOv5: COCOeval mAP50 {o['coco_map50'] / y['coco_map50']:.3f}, mAP50-95 "
              f"{o['coco_map'] / y['coco_map']:.3f}; own mAP50 {o['own_map50'] / y['own_map50']:.3f}; "
              f"final loss {o['final_loss'] / y['final_loss']:.3f}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits-det", help="'digits-det', 'shapes' or a data.yaml path")
    p.add_argument("--cfg", default="yolov5n", help="model YAML name (configs/<cfg>.yaml and YOLOv5's <cfg>.yaml)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--img", type=int, default=160)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every process")
    p.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    p.add_argument("--ours-args", default="", help="extra flags for our train.py")
    p.add_argument("--ref-args", default="", help="extra flags for YOLOv5's train")
    p.add_argument("--ours-root", type=Path, default=ROOT, help="checkout whose train.py/val.py are 'ours' "
                   "(e.g. a worktree of main, to A/B a change)")
    p.add_argument("--tag", default="", help="suffix of the output folder")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "learning_parity")
    a = p.parse_args(argv)
    data_yaml = resolve_data(a.data)
    name = data_yaml.parent.name if a.data.endswith(".yaml") else a.data
    out = (a.out / f"{name}-e{a.epochs}{a.tag}").resolve()
    data = {s: side_copy(data_yaml, out / f"data-{s}") for s in a.sides}
    runs: Dict[str, Dict[int, dict]] = {s: {} for s in a.sides}
    for seed in a.seeds:
        for s, r in run_pair(seed, data, out, a).items():
            runs[s][seed] = r
        (out / "parity.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()},
                                                      "runs": runs}, indent=1))
    report(runs, a)
    print(f"\n{out / 'parity.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
