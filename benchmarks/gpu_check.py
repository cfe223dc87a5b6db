"""The GPU check: one run that verifies the CUDA path end to end and prints one JSON summary (see gpu_check.sh).

    bash benchmarks/gpu_check.sh                      # CUDA device 0: 640 px, the built-in shapes set, ~5 min
    bash benchmarks/gpu_check.sh --device cpu --smoke # the same steps at 64 px on 8 generated images (CI)

Steps, each timed, each failure recorded (the JSON's "failed" lists them; the exit code is 1 then):
  1. the CUDA-marked tests (TensorRT export/run) - on the CPU they skip, which the summary says;
  2. per model (yolov5n, and yolo11n where configs/yolo11n.yaml exists): 1 epoch of training (AMP on CUDA) with
     its images/s, val.py of best.pt, then ONNX (and TensorRT FP16 on CUDA with tensorrt installed) exported and
     validated, each export's mAP50-95 beside the .pt's;
  3. detect.py-style throughput (Detector, batch 1) of yolov5n's best.pt on the val images;
  4. training images/s of yolov5n and yolov5s at 640 (AMP on CUDA), ours vs YOLOv5 v7.0 interleaved
     (benchmarks/train_speed.py), and 10 epochs of learning parity with YOLOv5 on the shapes set
     (benchmarks/learning_parity.py): both need the reference venv (../shared/yolov5-ref/setup.sh builds it) and
     are recorded as skipped without it.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.export import REF_PYTHON  # noqa: E402  (the venv setup.sh builds, or $YOLOV5_REF_VENV)
from yolobone.data.synthetic import make_detection_dataset  # noqa: E402
from yolobone.engine.detect.val_run import ValConfig, run_val  # noqa: E402
from yolobone.engine.export import ExportConfig, export_model  # noqa: E402
from yolobone.engine.train import train  # noqa: E402


def step(summary: Dict[str, Any], name: str, fn: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    """Run fn, store its figures and its seconds under summary['steps'][name]; a failure is recorded, not raised."""
    t0 = time.time()
    try:
        out = fn()
    except Exception as e:  # the check goes on: one summary names every failing step
        out = {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"}
        summary["failed"].append(name)
    out["seconds"] = round(time.time() - t0, 2)
    summary["steps"][name] = out
    print(f"gpu_check: {name}: {json.dumps(out)}", flush=True)
    return out


def cuda_tests() -> Dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-rs", "tests/test_export_edge.py", "-k",
                           "cuda"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    if proc.returncode != 0:
        raise RuntimeError(f"pytest exited {proc.returncode}: {last}")
    return {"result": last}


def reference_missing(setup: Path) -> str:
    """Why a step against YOLOv5 v7.0 cannot run here ('' when it can): its venv and the setup script it sources."""
    missing = [str(f) for f in (REF_PYTHON, setup) if not f.is_file()]
    return f"the YOLOv5 reference is not set up (missing {', '.join(missing)})" if missing else ""


def script(args: list, timeout: int) -> None:
    """Run one of the benchmarks/ scripts with this interpreter; a failure raises with its last output line."""
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:]
        raise RuntimeError(f"{args[0]} exited {proc.returncode}: {last}")


def versus_yolov5(o: argparse.Namespace, work: Path) -> Dict[str, Any]:
    """Training images/s ours vs YOLOv5 v7.0, interleaved (AMP on CUDA for both)."""
    from benchmarks.train_speed import REF_SETUP
    why = reference_missing(REF_SETUP)
    if why:
        return {"skipped": why}
    cfgs, size, images, batch = (["yolov5n"], 64, 8, 4) if o.smoke else (["yolov5n", "yolov5s"], 640, 256, 16)
    out = work / "train_speed.json"
    script(["benchmarks/train_speed.py", "--cfgs", *cfgs, "--imgsz", str(size), "--images", str(images), "--epochs",
            "3", "--batch-size", str(batch), "--workers", "2", "--device", o.device, "--project",
            str(work / "train_speed"), "--out", str(out)], timeout=600)
    return json.loads(out.read_text())


def learning_parity(o: argparse.Namespace, work: Path) -> Dict[str, Any]:
    """A short learning-parity run with YOLOv5 v7.0 on the shapes set (10 epochs; 1 in smoke mode)."""
    from benchmarks.learning_parity import REF_SETUP
    why = reference_missing(REF_SETUP)
    if why:
        return {"skipped": why}
    epochs, size, batch = (1, 64, 4) if o.smoke else (10, 320, 16)
    script(["benchmarks/learning_parity.py", "--data", "shapes", "--cfg", "yolov5n", "--epochs", str(epochs),
            "--img", str(size), "--batch", str(batch), "--seeds", "0", "--workers", "2", "--device", o.device,
            "--out", str(work / "learning_parity")], timeout=900)
    report = json.loads(next(iter((work / "learning_parity").glob("*/parity.json"))).read_text())
    return {k: v for k, v in report.items() if k not in ("args", "runs")}  # the two sides' figures and their ratio


def val_map(weights: Path, data: str, imgsz: int, device: str, batch: int, project: Path) -> float:
    report = run_val(ValConfig(weights=weights, data=data, imgsz=imgsz, batch_size=batch, device=device, workers=2,
                               plots=False, project=str(project), name=weights.stem, exist_ok=True))
    return round(float(report.result.map50_95), 4)


def check_model(cfg: Path, o: argparse.Namespace, data: str, work: Path) -> Dict[str, Any]:
    """Train 1 epoch, validate best.pt, export and validate ONNX (and TensorRT FP16 on CUDA)."""
    t0 = time.time()
    res = train({"cfg": str(cfg), "data": data, "epochs": 1, "imgsz": o.imgsz, "batch_size": o.batch,
                 "device": o.device, "workers": 2, "project": str(work), "name": cfg.stem, "noplots": True,
                 "exist_ok": True, "seed": 0})
    train_s = time.time() - t0
    n_train = len(list((Path(data).parent / "images" / "train").glob("*"))) if o.smoke else 512
    out: Dict[str, Any] = {"train_s": round(train_s, 1), "train_images_per_s": round(n_train / train_s, 1),
                           "pt_map50_95": val_map(res.best, data, o.imgsz, o.device, o.batch, work / "val")}
    # FP32 ONNX validated by ONNX Runtime on the CPU first: the FP16 engine export rewrites best.onnx in FP16
    onnx = export_model(ExportConfig(weights=res.best, include=("onnx",), imgsz=o.imgsz, device="cpu"))["onnx"]
    out["onnx_map50_95"] = val_map(onnx, data, o.imgsz, "cpu", 1, work / "val")
    if o.engine:
        engine = export_model(ExportConfig(weights=res.best, include=("engine",), imgsz=o.imgsz, device=o.device,
                                           half=True))["engine"]
        out["engine_fp16_map50_95"] = val_map(engine, data, o.imgsz, o.device, 1, work / "val")
    out["best"] = str(res.best)
    return out


def throughput(weights: str, source: Path, imgsz: int, device: str) -> Dict[str, Any]:
    from yolobone.engine.detect.predictor import Detector

    det = Detector(weights, device=device)
    images = sorted(source.glob("*"))[:200]
    det.predict(str(images[0]), imgsz=imgsz)  # warm-up: lazy initialisation, cudnn autotuning
    t0 = time.time()
    for im in images:
        det.predict(str(im), imgsz=imgsz)
    return {"images": len(images), "images_per_s": round(len(images) / (time.time() - t0), 1)}


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="GPU check: CUDA tests, 1-epoch training, val, ONNX/TensorRT, detect")
    p.add_argument("--device", default="0", help="cuda device (0) or cpu")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (64 px, 8 generated images): CI on the CPU")
    p.add_argument("--out", default="", help="also write the JSON summary to this file")
    o = p.parse_args(argv)
    o.imgsz, o.batch = (64, 4) if o.smoke else (640, 16)
    cuda = o.device != "cpu" and torch.cuda.is_available()
    try:
        import tensorrt  # noqa: F401
        o.engine = cuda
    except ImportError:
        o.engine = False
    return o


def main(argv=None) -> int:
    o = parse(argv)
    summary: Dict[str, Any] = {"device": torch.cuda.get_device_name(0) if o.device != "cpu" and
                               torch.cuda.is_available() else "cpu", "torch": torch.__version__, "smoke": o.smoke,
                               "imgsz": o.imgsz, "tensorrt": o.engine, "steps": {}, "failed": []}
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = str(make_detection_dataset(work / "data", n_train=8, n_val=4, imgsz=64, seed=0, verbose=False)) \
            if o.smoke else str(ROOT / "configs" / "data" / "shapes.yaml")
        step(summary, "cuda_tests", cuda_tests)
        cfgs = [ROOT / "configs" / f"{n}.yaml" for n in ("yolov5n", "yolo11n")]
        for cfg in (c for c in cfgs if c.is_file()):
            step(summary, cfg.stem, lambda cfg=cfg: check_model(cfg, o, data, work))
        best = summary["steps"].get("yolov5n", {}).get("best")
        if best:
            from yolobone.data.config import check_dataset

            val = Path(check_dataset(data)["val"])
            step(summary, "detect_throughput", lambda: throughput(best, val, o.imgsz, o.device))
        step(summary, "train_speed_vs_yolov5", lambda: versus_yolov5(o, work))
        step(summary, "learning_parity_vs_yolov5", lambda: learning_parity(o, work))
    summary["total_s"] = round(time.time() - t0, 1)
    text = json.dumps(summary, indent=1)
    print(text)
    if o.out:
        Path(o.out).write_text(text)
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
