"""End-to-end detect.py throughput over a folder of 640-px images, split by stage.

    python benchmarks/detect.py                          # yolov5n (random init, 80 classes), 50 generated images, CPU
    python benchmarks/detect.py --weights best.pt --source path/to/images --threads 2

Runs the same code path as detect.py (engine.detect.predict_run.run_detect with --save-txt) after one warm-up image and
prints images/s plus ms per image for read, pre-process, inference, NMS and draw+write, and detections per image.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from yolobone.engine.detect.predict_run import DetectConfig, run_detect
from yolobone.engine.detect.predictor import Detector
from yolobone.models import DetectionModel
from yolobone.data.synthetic import make_detection_dataset
from yolobone.utils.yaml_io import load_yaml

ROOT = Path(__file__).resolve().parents[1]


def build_detector(weights: str, cfg: str, device: str) -> Detector:
    """A Detector for a checkpoint, or for a randomly initialised model built from cfg."""
    if weights:
        return Detector(weights, device=device)
    torch.manual_seed(0)
    return Detector(DetectionModel(load_yaml(cfg)), device=device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", default="", help="checkpoint ('' = random-init --cfg model)")
    p.add_argument("--cfg", default=str(ROOT / "configs" / "yolov5n.yaml"))
    p.add_argument("--source", default="", help="image folder ('' = generate --n synthetic 640-px images)")
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--conf-thres", type=float, default=0.25)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    opt = p.parse_args()
    if opt.threads:
        torch.set_num_threads(opt.threads)

    with tempfile.TemporaryDirectory() as tmp:
        source = opt.source
        if not source:
            make_detection_dataset(Path(tmp) / "data", n_train=1, n_val=opt.n, imgsz=640, seed=0, verbose=True)
            source = str(Path(tmp) / "data" / "images" / "val")
        det = build_detector(opt.weights, opt.cfg, opt.device)
        first = sorted(Path(source).iterdir())[0]
        det.predict(str(first), imgsz=opt.imgsz)  # warm-up: one-off allocations are not throughput
        cfg = DetectConfig(weights=opt.weights, source=source, imgsz=opt.imgsz, conf_thres=opt.conf_thres,
                           device=opt.device, save_txt=True, project=Path(tmp) / "runs", batch_size=opt.batch_size)
        report = run_detect(cfg, detector=det)
        n_det = sum(len(f.read_text().splitlines()) for f in (report.save_dir / "labels").glob("*.txt"))

    s = report.speed
    total = sum(s.values())
    print(f"\n{Path(opt.weights or opt.cfg).name} on {opt.device}, imgsz {opt.imgsz}, batch {opt.batch_size}, "
          f"torch threads {torch.get_num_threads()}: {report.frames} images, "
          f"{n_det / max(report.frames, 1):.1f} detections/image")
    print(f"{'stage':<14}{'ms/image':>10}{'share':>8}")
    for key, label in (("read", "read"), ("preprocess", "pre-process"), ("inference", "inference"),
                       ("postprocess", "NMS"), ("write", "draw+write")):
        print(f"{label:<14}{s[key]:>10.1f}{s[key] / total:>8.0%}")
    print(f"{'sum':<14}{total:>10.1f}")
    print(f"end-to-end: {report.frames / report.wall_s:.2f} images/s ({report.wall_s * 1e3 / report.frames:.1f} "
          f"ms/image wall, logging included)")


if __name__ == "__main__":
    main()
