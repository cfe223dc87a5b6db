"""Fine-tuning from a YOLOv5 v7.0 checkpoint: ours vs YOLOv5's own train.py from the same file, both vs scratch.

    python benchmarks/transfer.py                                  # pretrain 30 epochs, fine-tune 30, seeds 0 1
    python benchmarks/transfer.py --pre-epochs 60 --epochs 40 --seeds 0 1 2 --pretrained path/to/yolov5_best.pt

1. "Pretrain": YOLOv5 v7.0 itself (its reference venv, ../shared/yolov5-ref) trains yolov5n from scratch on one
   real-image set: digits 0-4 on crops of scikit-learn's china.jpg (benchmarks/data/make_digits_det.py).
2. Fine-tune on a second set that shares neither classes nor backgrounds: digits 5-9 on flower.jpg, --n-train
   images (default 300). Four arms per seed, same schedule (--epochs, --img, --batch, scratch-low):
   ours from YOLOv5's best.pt (`train.py --weights`, read through the restricted unpickler), YOLOv5 from the same
   file (`python -m yolov5.train --weights`), and both from scratch (`--cfg yolov5n.yaml --weights ''`).
   --swap adds the pipeline swap "ours-ftswap": ours from the same file, trained on the batches YOLOv5's own
   dataloader gives that seed (benchmarks/dump_yolov5_batches.py, replay_train.py): near yolov5-ft, the gap is in
   the data pipeline; near ours-ft, it is in the training loop.
3. Every arm's best.pt is validated by its own val.py with --save-json and scored by pycocotools against one ground
   truth (ours), as in benchmarks/learning_parity.py. Prints per-seed and mean ± std best mAP50 / mAP50-95 per arm,
   the fine-tune ratio ours / YOLOv5, and writes <out>/transfer.json.

The runs go one after another (one process, OMP_NUM_THREADS = --threads), so two invocations with different --seeds
and the same --out can share a machine's cores; finished runs are reused.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.data.make_digits_det import DEFAULT_OUT, build  # noqa: E402
from benchmarks.learning_parity import (coco_scores, dump_yolov5_batches, finished, launch,  # noqa: E402
                                        read_results, side_copy, train_command, val_command)

ARMS = ("ours-ft", "yolov5-ft", "ours-scratch", "yolov5-scratch")
SWAP_ARM = "ours-ftswap"  # --swap: ours fine-tuned on YOLOv5's batches
PRE_CLASSES, FT_CLASSES = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)


def datasets(a: argparse.Namespace) -> Dict[str, Path]:
    """data.yaml of the pretraining and the fine-tuning set (built on first use)."""
    pre = DEFAULT_OUT.with_name(f"digits-pre-{a.pre_n_train}")
    ft = DEFAULT_OUT.with_name(f"digits-ft-{a.n_train}-{a.n_val}")
    build(pre, a.pre_n_train, a.n_val, a.img, classes=PRE_CLASSES, photo=0)
    build(ft, a.n_train, a.n_val, a.img, classes=FT_CLASSES, photo=1)
    return {"pre": pre / "data.yaml", "ft": ft / "data.yaml"}


def run(cmd: List[str], log: Path, side: str, a: argparse.Namespace) -> None:
    if launch(cmd, log, a.threads, side, ROOT).wait():
        raise SystemExit(f"failed: {' '.join(cmd)[-300:]}\nsee {log}")


def pretrain(data: Path, out: Path, a: argparse.Namespace) -> Path:
    """YOLOv5's best.pt on the pretraining set (--pretrained, or trained once here)."""
    if a.pretrained:
        return a.pretrained.resolve()
    run_dir = out / "yolov5-pretrain"
    if not finished(run_dir, a.pre_epochs):
        print(f"pretraining yolov5n with YOLOv5 v7.0: {a.pre_epochs} epochs on {data.parent.parent}", flush=True)
        pre = argparse.Namespace(**{**vars(a), "epochs": a.pre_epochs, "cfg": "yolov5n", "ref_args": "",
                                    "reference": "yolov5"})
        run(train_command("yolov5", data, run_dir, a.pre_seed, pre), out / "yolov5-pretrain.log", "yolov5", a)
    return run_dir / "weights" / "best.pt"


def arm_command(arm: str, data: Path, run_dir: Path, seed: int, weights: Path, a: argparse.Namespace) -> List[str]:
    side, start = arm.split("-")
    ns = argparse.Namespace(**{**vars(a), "cfg": "yolov5n", "ours_args": "", "ref_args": "", "ours_root": ROOT,
                               "reference": "yolov5", "ours_batches": "yolov5" if arm == SWAP_ARM else "ours"})
    cmd = train_command(side, data, run_dir, seed, ns)
    if start.startswith("ft"):  # the same command with the checkpoint instead of a YAML and no weights
        cmd[-1] = cmd[-1].replace("--weights ''", f"--weights {weights}")
        cmd[-1] = cmd[-1].replace("--cfg configs/yolov5n.yaml ", "").replace("--cfg yolov5n.yaml ", "")
    return cmd


def train_arms(seed: int, data: Dict[str, Path], weights: Path, out: Path, a: argparse.Namespace) -> Dict[str, dict]:
    results = {}
    for arm in arms(a):  # ours before YOLOv5: YOLOv5's predictions are scored on our ground truth
        side = arm.split("-")[0]
        run_dir = out / f"{arm}-seed{seed}"
        if arm == SWAP_ARM and not finished(run_dir, a.epochs):
            dump_yolov5_batches(seed, data["ours"], out, a)
        if not finished(run_dir, a.epochs):
            print(f"seed {seed}: {arm}", flush=True)
            run(arm_command(arm, data[side], run_dir, seed, weights, a), out / f"{arm}-seed{seed}.log", side, a)
        if not any((run_dir / "val").glob("*predictions.json")):
            run(val_command(side, data[side], run_dir, argparse.Namespace(**{**vars(a), "ours_root": ROOT,
                                                                             "reference": "yolov5"})),
                out / f"{arm}-seed{seed}-val.log", side, a)
        res = read_results(run_dir / "results.csv")
        own = res.get("metrics/mAP_0.5") or []
        results[arm] = {"coco": coco_scores(side, run_dir), "own_best_map50": max(own) if own else None}
    return results


def arms(a: argparse.Namespace) -> tuple:
    return ARMS + ((SWAP_ARM,) if a.swap else ())


def mean_std(values: Sequence[float]) -> str:
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.4f}"


def report(runs: Dict[int, Dict[str, dict]], a: argparse.Namespace) -> Dict[str, dict]:
    seeds = sorted(runs)
    print(f"\nbest.pt scored by pycocotools on one ground truth (seeds {seeds})")
    print(f"{'arm':16s} {'mAP50 per seed':28s} {'mAP50 mean ± std':20s} {'mAP50-95 mean ± std':20s}")
    summary = {}
    for arm in arms(a):
        m50 = [runs[k][arm]["coco"][1] for k in seeds]
        m = [runs[k][arm]["coco"][0] for k in seeds]
        summary[arm] = {"map50": m50, "map": m, "map50_mean": statistics.mean(m50), "map_mean": statistics.mean(m)}
        print(f"{arm:16s} {' '.join(f'{v:.4f}' for v in m50):28s} {mean_std(m50):20s} {mean_std(m):20s}")
    o, y = summary["ours-ft"], summary["yolov5-ft"]
    print(f"fine-tune ours / YOLOv5: mAP50 {o['map50_mean'] / max(y['map50_mean'], 1e-12):.3f}, mAP50-95 "
          f"{o['map_mean'] / max(y['map_mean'], 1e-12):.3f}; fine-tune / scratch: ours "
          f"{o['map50_mean'] / max(summary['ours-scratch']['map50_mean'], 1e-12):.2f}x, YOLOv5 "
          f"{y['map50_mean'] / max(summary['yolov5-scratch']['map50_mean'], 1e-12):.2f}x (mAP50)")
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pretrained", type=Path, default=None, help="a YOLOv5 checkpoint to fine-tune from (else made)")
    p.add_argument("--pre-epochs", type=int, default=30)
    p.add_argument("--pre-n-train", type=int, default=1200, help="pretraining set's train images")
    p.add_argument("--pre-seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=300, help="fine-tuning set's train images")
    p.add_argument("--n-val", type=int, default=150, help="val images of both sets")
    p.add_argument("--epochs", type=int, default=30, help="fine-tuning (and scratch) epochs")
    p.add_argument("--img", type=int, default=160)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every process")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "transfer")
    p.add_argument("--swap", action="store_true", help="add the pipeline-swap arm (ours on YOLOv5's batches)")
    a = p.parse_args(argv)
    out = a.out.resolve()
    sets = datasets(a)
    weights = pretrain(side_copy(sets["pre"], out / "data-pre"), out, a)
    data = {s: side_copy(sets["ft"], out / f"data-ft-{s}") for s in ("ours", "yolov5")}
    runs = {seed: train_arms(seed, data, weights, out, a) for seed in a.seeds}
    summary = report(runs, a)
    (out / "transfer.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()},
                                                   "pretrained": str(weights), "runs": runs, "summary": summary},
                                                  indent=1))
    print(f"\n{out / 'transfer.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
