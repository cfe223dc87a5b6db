"""Save the training batches YOLOv5 v7.0's own data pipeline gives a run, epoch by epoch (run in its reference venv).

    . ../shared/yolov5-ref/setup.sh
    python benchmarks/dump_yolov5_batches.py --data data.yaml --img 160 --batch 32 --epochs 60 --seed 0 --out batches

YOLOv5's train.py builds its loader with `create_dataloader(..., augment=True, shuffle=True, seed=opt.seed)` and
draws batches from it epoch after epoch; its workers' augmentation streams come from the loader's own generator
(6148914691236517205 + seed), so the batches do not depend on the model or the optimizer. This does the same with
the same hyp file and worker count, and writes out/e{epoch:03d}.pt per epoch: a list of (images uint8 (B, 3, H, W)
RGB, targets (n, 6) [image, class, cx, cy, w, h]) - the batch format of both pipelines. benchmarks/replay_train.py
trains ours on them (the pipeline-swap experiment of benchmarks/learning_parity.py --ours-batches yolov5).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
import yaml


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--hyp", default="", help="hyp YAML (default: YOLOv5's hyp.scratch-low)")
    p.add_argument("--img", type=int, default=160)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    from yolov5.utils.dataloaders import create_dataloader
    from yolov5.utils.general import check_dataset, init_seeds
    hyp_file = a.hyp or str(Path(__import__("yolov5").__file__).parent / "data" / "hyps" / "hyp.scratch-low.yaml")
    hyp = yaml.safe_load(open(hyp_file))
    init_seeds(a.seed + 1, deterministic=True)  # as train.py (RANK -1)
    data = check_dataset(a.data)
    loader, _ = create_dataloader(data["train"], a.img, a.batch, 32, False, hyp=hyp, augment=True, cache=None,
                                  rect=False, rank=-1, workers=a.workers, image_weights=False, quad=False,
                                  prefix="train: ", shuffle=True, seed=a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    for epoch in range(a.epochs):
        path = a.out / f"e{epoch:03d}.pt"
        batches = [(imgs.clone(), targets.clone()) for imgs, targets, _, _ in loader]
        if path.is_file():  # a re-run after an interruption: the stream must still be consumed in order
            continue
        torch.save(batches, f"{path}.tmp")
        os.replace(f"{path}.tmp", path)
        print(f"epoch {epoch}: {len(batches)} batches -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
