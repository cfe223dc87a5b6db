"""Dataset tools: convert a detection set between YOLO txt, COCO JSON and Pascal VOC; report what a set holds.

    yolobone dataset convert --data coco.yaml --to yolo --out /data/mycoco-yolo    # COCO or VOC -> YOLO txt
    yolobone dataset convert --data data.yaml --to coco --out /data/mine-coco      # YOLO -> COCO JSON
    yolobone dataset report --data voc.yaml --out runs/dataset                     # report.txt and labels.jpg

The input is any data YAML train.py reads (YOLO folders, {coco: ..., images: ...}, {voc: ...}); the converter
writes a new folder with its own data.yaml. Bad input exits with code 2 and a one-line message.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from yolobone.data.convert import FORMATS, convert_dataset, load_splits
from yolobone.data.report import dataset_report
from yolobone.utils.cli import run_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="yolobone dataset", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="action", required=True)
    c = sub.add_parser("convert", help="write the set in another format into a new folder")
    c.add_argument("--data", required=True, help="data YAML of the set to convert")
    c.add_argument("--to", required=True, choices=FORMATS, help="output format")
    c.add_argument("--out", required=True, type=Path, help="new (or empty) output folder")
    r = sub.add_parser("report", help="per-split counts, class histogram, box sizes, duplicates; labels.jpg")
    r.add_argument("--data", required=True, help="data YAML")
    r.add_argument("--out", type=Path, default=Path("runs/dataset"), help="folder for report.txt and labels.jpg")
    return p


def _report(data: str, out: Path) -> None:
    from yolobone.engine.detect.drawing import plot_labels

    cfg, splits = load_splits(data)
    text = dataset_report(splits, cfg["names"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.txt").write_text(text + "\n")
    train = [lb for lb in splits["train"].labels if len(lb)]
    image = plot_labels(np.concatenate(train or [np.zeros((0, 5), np.float32)], 0), cfg["names"], out)
    print(f"{text}\nSaved {out / 'report.txt'} and {image}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args: List[str] = list(sys.argv[1:] if argv is None else argv)
    opt = build_parser().parse_args(args)

    def job() -> None:
        if opt.action == "convert":
            path = convert_dataset(opt.data, opt.out, opt.to)
            print(f"Wrote {opt.to} to {opt.out}: train.py --data {path}")
        else:
            _report(opt.data, opt.out)

    return run_cli(job)
