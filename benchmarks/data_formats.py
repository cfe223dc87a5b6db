"""The digits-det set (real photos, real handwritten digits) in YOLO txt, COCO JSON and VOC XML: same labels, same
training, and val.py --save-json scored by pycocotools against the original COCO JSON.

    python benchmarks/data_formats.py                                  # 128 train / 48 val images at 64 px
    python benchmarks/data_formats.py --val-epochs 30 --imgsz 96       # a model worth scoring (long on a CPU)

Steps: build digits-det (benchmarks/data/make_digits_det.py) in YOLO form; convert it with `yolobone dataset
convert` to COCO and to VOC; check that every image's float32 box array is bit-identical in the three; train the
same tiny model (yolov5n layout, width 0.125) for --epochs with one seed from each format and print the losses;
run val.py --save-json --coco-eval on the COCO form (after --val-epochs more, if given) against the COCO JSON
itself and print both scores.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import yaml

from yolobone.data.convert import convert_dataset, load_splits
from yolobone.engine.detect.val_run import ValConfig, run_val
from yolobone.engine.train import train

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "data"))
from make_digits_det import build  # noqa: E402


def tiny_cfg(path: Path) -> str:
    d = yaml.safe_load((ROOT / "configs" / "yolov5n.yaml").read_text())
    d["depth_multiple"], d["width_multiple"] = 0.33, 0.125
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return str(path)


def identical_labels(paths: dict) -> bool:
    ref = load_splits(paths["yolo"])[1]
    same = True
    for fmt in ("coco", "voc"):
        got = load_splits(paths[fmt])[1]
        for split in ref:
            equal = all(np.array_equal(a, b) for a, b in zip(ref[split].labels, got[split].labels))
            equal &= [len(x) for x in ref[split].labels] == [len(x) for x in got[split].labels]
            n = sum(len(x) for x in got[split].labels)
            print(f"{fmt:>4} {split:>5}: {len(got[split].files)} images, {n} boxes, identical to YOLO txt: {equal}")
            same &= equal
    return same


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=128)
    p.add_argument("--n-val", type=int, default=48)
    p.add_argument("--imgsz", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2, help="epochs of the same-loss check")
    p.add_argument("--val-epochs", type=int, default=0,
                   help="train this long on the COCO form before the --save-json check (0: use the --epochs run)")
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root / "yolo", a.n_train, a.n_val, max(a.imgsz, 64))
        paths = {"yolo": root / "yolo" / "data.yaml"}
        for fmt in ("coco", "voc"):
            paths[fmt] = convert_dataset(paths["yolo"], root / fmt, fmt)
        same = identical_labels(paths)
        common = dict(cfg=tiny_cfg(root / "tiny.yaml"), imgsz=a.imgsz, batch_size=16, device=a.device, workers=0,
                      seed=0, noplots=True, project=str(root / "runs"), exist_ok=True)
        losses = {}
        for fmt, path in paths.items():
            r = train(dict(common, data=str(path), epochs=a.epochs, noval=True, name=fmt))
            losses[fmt] = r.loss_history
            print(f"{fmt:>4} losses (box, obj, cls) per epoch: "
                  + "; ".join(", ".join(f"{v:.8f}" for v in e) for e in r.loss_history))
        print(f"identical labels: {same}; identical losses: {losses['coco'] == losses['yolo'] == losses['voc']}")
        weights = root / "runs" / "coco" / "weights" / "last.pt"
        if a.val_epochs:
            r = train(dict(common, data=str(paths["coco"]), epochs=a.val_epochs, name="coco_long"))
            weights = r.save_dir / "weights" / "best.pt"
        report = run_val(ValConfig(weights=str(weights), data=str(paths["coco"]),
                                   imgsz=a.imgsz, device=a.device, workers=0, save_json=True, coco_eval=True,
                                   plots=False, project=str(root / "val")))
        res, stats = report.result, report.coco_stats
        print(f"val.py: mAP50 {res.map50:.4f} mAP50-95 {res.map50_95:.4f}; pycocotools on {report.gt_json_path.name}"
              f": mAP50 {stats[1]:.4f} mAP50-95 {stats[0]:.4f}; differences {abs(stats[1] - res.map50):.4f}, "
              f"{abs(stats[0] - res.map50_95):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
