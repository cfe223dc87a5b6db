"""What the model sees, ours vs a reference pipeline: statistics of augmented training items and a fixed model's loss.

    python benchmarks/augment_parity.py --weights runs/train/exp/weights/last.pt      # digits-det, 960 items, 160 px
    python benchmarks/augment_parity.py --data shapes --items 640 --weights best.pt
    python benchmarks/augment_parity.py --reference ultralytics --weights yolo11n_best.pt [--no-mosaic]

Both pipelines run at --img on the same train images, in the reference venv (../shared/yolov5-ref) for the
reference: YOLOv5 v7.0's LoadImagesAndLabels with hyp.scratch-low (`--reference yolov5`), or Ultralytics'
build_yolo_dataset with its default hyperparameters (`--reference ultralytics`; ours then reads
configs/hyp/hyp.ultralytics.yaml). Ours is DetectionDataset, its epoch advanced every len(dataset) items.
`--no-mosaic` draws the items of the close-mosaic epochs instead. Per side it prints boxes per image, box-area median
and fraction below 100 px², pixel mean, and, when --weights is given (one of our checkpoints), that model's mean
training loss (its head's loss terms; train-mode BatchNorm with frozen statistics) over the items in batches of
--batch, with the standard error over batches. Equal data difficulty shows as equal losses.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

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

REF_DUMP_ULTRALYTICS = """
import random, numpy as np, torch
from ultralytics.cfg import get_cfg
from ultralytics.data import build_yolo_dataset
from ultralytics.data.utils import check_det_dataset
random.seed({seed}); np.random.seed({seed}); torch.manual_seed({seed})
cfg = get_cfg(overrides=dict(data={data!r}, imgsz={img}, mode='train'))
ds = build_yolo_dataset(cfg, {images!r}, 32, check_det_dataset({data!r}), mode='train', stride=32)
if {no_mosaic}:
    ds.close_mosaic(cfg)
ims, labels = [], []
for i in range({n}):
    d = ds[i % len(ds)]
    ims.append(d['img'])
    labels.append(torch.cat((torch.zeros(len(d['cls']), 1), d['cls'].float(), d['bboxes'].float()), 1))
torch.save({{'ims': torch.stack(ims), 'labels': labels}}, {out!r})
"""
HYP = {"yolov5": "configs/hyp/hyp.scratch-low.yaml", "ultralytics": "configs/hyp/hyp.ultralytics.yaml"}


def dump_ours(images: Path, img: int, n: int, seed: int, hyp: str = HYP["yolov5"],
              no_mosaic: bool = False) -> Dict[str, object]:
    from yolobone.data.datasets import DetectionDataset
    ds = DetectionDataset(str(images), img, 32, augment=True, hyp=ROOT / hyp, seed=seed)
    if no_mosaic:
        ds.mosaic_until = 0
    ims, labels = [], []
    for i in range(n):
        ds.set_epoch(i // len(ds))
        im, lb = ds[i % len(ds)][:2]
        ims.append(im)
        labels.append(lb)
    return {"ims": torch.stack(ims), "labels": labels}


def dump_ref(reference: str, data: Path, images: Path, img: int, n: int, seed: int, workdir: Path,
             no_mosaic: bool = False) -> Dict[str, object]:
    out = workdir / "ref_items.pt"
    if reference == "ultralytics":
        code = REF_DUMP_ULTRALYTICS.format(seed=seed, data=str(data), images=str(images), img=img, n=n, out=str(out),
                                           no_mosaic=no_mosaic)
    elif no_mosaic:
        raise SystemExit("--no-mosaic: only with --reference ultralytics (YOLOv5 v7.0 has no close-mosaic)")
    else:
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


def fixed_model_loss(weights: str, d: Dict[str, object], img: int, batch: int,
                     hyp_file: str) -> Tuple[np.ndarray, Sequence[str]]:
    """(batches, terms) loss of the checkpoint on the items (its head's loss: box/obj/cls or box/cls/dfl, gains of
    hyp_file) and the term names; BatchNorm in train mode with frozen statistics."""
    from yolobone.models.loading import model_from_checkpoint
    from yolobone.models.loss import ComputeLoss
    from yolobone.models.loss_af import AnchorFreeLoss
    from yolobone.utils.checkpoint import load_checkpoint
    from yolobone.utils.hyp import load_hyp
    ckpt = load_checkpoint(weights)
    model = model_from_checkpoint(ckpt, weights).float().train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.0
    hyp = load_hyp(ROOT / hyp_file)  # not the checkpoint's: a foreign one (Ultralytics') has none
    if getattr(model.detect, "anchor_free", False):
        loss_fn, names = AnchorFreeLoss(model.detect, hyp), ("box", "cls", "dfl")
    else:
        loss_fn, names = ComputeLoss(model.detect, hyp, imgsz=img), ("box", "obj", "cls")
    out = []
    with torch.no_grad():
        for b in range(0, len(d["ims"]), batch):
            ims = d["ims"][b:b + batch].float() / 255
            targets = [lb.clone() for lb in d["labels"][b:b + batch]]
            for k, lb in enumerate(targets):
                lb[:, 0] = k
            out.append(loss_fn(model(ims), torch.cat(targets))[1].numpy())
    return np.array(out), names


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits-det", help="'digits-det', 'shapes' or a data.yaml path")
    p.add_argument("--img", type=int, default=160)
    p.add_argument("--items", type=int, default=960)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--weights", default="", help="one of our checkpoints for the fixed-model loss")
    p.add_argument("--reference", choices=tuple(HYP), default="yolov5", help="whose pipeline to compare with")
    p.add_argument("--no-mosaic", action="store_true", help="the close-mosaic epochs' items (ultralytics only)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    data_yaml = resolve_data(a.data)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dumps = {}
        for side in ("ours", a.reference):  # private label copies: the two label caches share a file name
            data = side_copy(data_yaml, work / side)
            images = data.parent / "images" / "train"
            dumps[side] = (dump_ours(images, a.img, a.items, a.seed, HYP[a.reference], a.no_mosaic) if side == "ours"
                           else dump_ref(a.reference, data, images, a.img, a.items, a.seed, work, a.no_mosaic))
    for side, d in dumps.items():
        s = item_stats(d, a.img)
        line = f"{side:11s} " + "  ".join(f"{k} {v:.3f}" for k, v in s.items())
        if a.weights:
            loss, names = fixed_model_loss(a.weights, d, a.img, a.batch, HYP[a.reference])
            total = loss.sum(1)
            line += ("  loss " + " ".join(f"{k} {loss[:, j].mean():.4f}" for j, k in enumerate(names)) +
                     f" total {total.mean():.4f} ± {total.std(ddof=1) / np.sqrt(len(total)):.4f} "
                     f"({len(total)} batches)")
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
