"""What the model sees, ours vs YOLOv5 v7.0: statistics of augmented training items and a fixed model's loss on them.

    python benchmarks/augment_parity.py --weights runs/train/exp/weights/last.pt      # digits-det, 960 items, 160 px
    python benchmarks/augment_parity.py --data shapes --items 640 --weights best.pt

Both pipelines run with hyp.scratch-low at --img on the same train images (YOLOv5's LoadImagesAndLabels in its
reference venv, ../shared/yolov5-ref; ours DetectionDataset, epoch advanced every len(dataset) items). Per side it
prints boxes per image, box-area median and fraction below 100 px², pixel mean, and, when --weights is given (one of
our checkpoints), that model's mean training loss (box, obj, cls; train-mode BatchNorm with frozen statistics) over
the items in batches of --batch, with the standard error over batches. Equal data difficulty shows as equal losses.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.learning_parity import REF_SETUP, resolve_data, side_copy  # noqa: E402

REF_DUMP = """
import os, random, sys, numpy as np, torch, yaml, yolov5
from yolov5.utils.dataloaders import LoadImagesAndLabels
hyp = yaml.safe_load(open(os.path.join(os.path.dirname(yolov5.__file__), 'data/hyps/hyp.scratch-low.yaml')))
random.seed({seed}); np.random.seed({seed}); torch.manual_seed({seed})
ds = LoadImagesAndLabels({images!r}, {img}, 32, augment=True, hyp=hyp, stride=32)
items = [ds[i % len(ds)][:2] for i in range({n})]
torch.save({{'ims': torch.stack([a for a, _ in items]), 'labels': [b for _, b in items]}}, {out!r})
"""


def dump_ours(images: Path, img: int, n: int, seed: int) -> Dict[str, object]:
    from yolobone.data.datasets import DetectionDataset
    ds = DetectionDataset(str(images), img, 32, augment=True, seed=seed)
    ims, labels = [], []
    for i in range(n):
        ds.set_epoch(i // len(ds))
        im, lb = ds[i % len(ds)][:2]
        ims.append(im)
        labels.append(lb)
    return {"ims": torch.stack(ims), "labels": labels}


def dump_ref(images: Path, img: int, n: int, seed: int, workdir: Path) -> Dict[str, object]:
    out = workdir / "ref_items.pt"
    code = REF_DUMP.format(seed=seed, images=str(images), img=img, n=n, out=str(out))
    cmd = f". {shlex.quote(str(REF_SETUP))} >/dev/null 2>&1 && python -c {shlex.quote(code)}"
    subprocess.run(["bash", "-c", cmd], cwd=workdir, check=True, env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
                                                                    "OMP_NUM_THREADS": "1"})
    return torch.load(out, weights_only=False)


def item_stats(d: Dict[str, object], img: int) -> Dict[str, float]:
    labels: List[torch.Tensor] = d["labels"]
    rows = torch.cat(labels).numpy() if labels else np.zeros((0, 6))
    area = rows[:, 4] * rows[:, 5] * img * img
    return {"boxes/img": float(np.mean([len(lb) for lb in labels])), "area median px2": float(np.median(area)),
            "area<100px2": float((area < 100).mean()), "pixel mean": float(d["ims"].float().mean())}


def fixed_model_loss(weights: str, d: Dict[str, object], img: int, batch: int) -> np.ndarray:
    """(batches, 3) box/obj/cls loss of the checkpoint on the items, BatchNorm in train mode with frozen statistics."""
    from yolobone.models.loading import model_from_checkpoint
    from yolobone.models.loss import ComputeLoss
    from yolobone.utils.checkpoint import load_checkpoint
    from yolobone.utils.hyp import load_hyp
    ckpt = load_checkpoint(weights)
    model = model_from_checkpoint(ckpt, weights).float().train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.0
    loss_fn = ComputeLoss(model.detect, load_hyp(ckpt.get("hyp")), imgsz=img)
    out = []
    with torch.no_grad():
        for b in range(0, len(d["ims"]), batch):
            ims = d["ims"][b:b + batch].float() / 255
            targets = [lb.clone() for lb in d["labels"][b:b + batch]]
            for k, lb in enumerate(targets):
                lb[:, 0] = k
            out.append(loss_fn(model(ims), torch.cat(targets))[1].numpy())
    return np.array(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits-det", help="'digits-det', 'shapes' or a data.yaml path")
    p.add_argument("--img", type=int, default=160)
    p.add_argument("--items", type=int, default=960)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--weights", default="", help="one of our checkpoints for the fixed-model loss")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    data_yaml = resolve_data(a.data)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dumps = {}
        for side in ("ours", "yolov5"):  # private label copies: the two label caches share a file name
            images = side_copy(data_yaml, work / side).parent / "images" / "train"
            dumps[side] = (dump_ours(images, a.img, a.items, a.seed) if side == "ours"
                           else dump_ref(images, a.img, a.items, a.seed, work))
    for side, d in dumps.items():
        s = item_stats(d, a.img)
        line = f"{side:7s} " + "  ".join(f"{k} {v:.3f}" for k, v in s.items())
        if a.weights:
            loss = fixed_model_loss(a.weights, d, a.img, a.batch)
            total = loss.sum(1)
            line += (f"  loss box {loss[:, 0].mean():.4f} obj {loss[:, 1].mean():.4f} cls {loss[:, 2].mean():.4f} "
                     f"total {total.mean():.4f} ± {total.std(ddof=1) / np.sqrt(len(total)):.4f} "
                     f"({len(total)} batches)")
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
