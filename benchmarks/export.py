"""CPU latency per inference backend at batch 1 vs YOLOv5 v7.0's eager fused model, measured in one run.

    python benchmarks/export.py                                   # yolov5n, yolov5s at 640, 2 threads, 3 rounds
    python benchmarks/export.py --map-weights runs/train/exp/weights/best.pt --map-imgsz 256   # + INT8 mAP drop
    python benchmarks/export.py --models yolov5n --imgsz 320 --edge --no-compile                 # + NCNN, TFLite

Backends: ours PyTorch default (fused, inference_mode, channels_last, conv + activation packed as one oneDNN call,
yolobone/engine/backends/onednn_pack.py), the same without packing ("torch unpacked"), ours PyTorch compiled (the same plus
torch.compile with inductor freezing, what --compile on/auto gives val.py and detect.py; its compile seconds
are printed too), ONNX Runtime FP32, OpenVINO FP32, ONNX
Runtime INT8 and OpenVINO INT8 (the QDQ model export.py --int8 writes, calibrated on the built-in shapes train
images). Models are random-init with 80 classes (as YOLOv5's speed reference); weights do not change the latency.
YOLOv5 v7.0 (PyPI yolov5==7.0.14) runs in its own venv (../shared/yolov5-ref/setup.sh) in a subprocess;
rounds interleave it with ours (A B A B ...) and medians of the per-round medians are reported.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from yolobone.engine.backends import TorchBackend, load_backend  # noqa: E402
from yolobone.engine.export import ExportConfig, export_model, score  # noqa: E402
from yolobone.models import DetectionModel  # noqa: E402
from yolobone.utils.checkpoint import save_checkpoint  # noqa: E402
from yolobone.utils.logging import LOGGER  # noqa: E402
from yolobone.utils.profiling import median_ms  # noqa: E402

REF_PYTHON = Path(os.environ.get("YOLOV5_REF_VENV", Path.home() / ".cache/yolov5-ref/venv")) / "bin/python"
REF_SCRIPT = r"""
import contextlib, io, json, statistics, sys, time, warnings
warnings.filterwarnings("ignore")
import torch
name, imgsz, runs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
from pathlib import Path
import yolov5
from yolov5.models.yolo import Model
torch.manual_seed(0)
with contextlib.redirect_stdout(io.StringIO()):
    m = Model(str(Path(yolov5.__file__).parent / "models" / f"{name}.yaml"), ch=3, nc=80).eval().fuse()
x = torch.rand(1, 3, imgsz, imgsz)
ts = []
with torch.inference_mode():
    for i in range(5 + runs):
        t = time.perf_counter()
        m(x)
        if i >= 5:
            ts.append((time.perf_counter() - t) * 1e3)
print(json.dumps({"ms": statistics.median(ts)}))
"""
TARGETS = {"torch": 0.7, "torch compiled": 0.7, "onnx": 0.5, "openvino": 0.5, "onnx int8": 0.4, "openvino int8": 0.4}


def reference_ms(name: str, imgsz: int, runs: int, threads: int) -> Optional[float]:
    """YOLOv5 v7.0 eager fused latency from its own venv, or None when that venv is missing or fails."""
    if not REF_PYTHON.is_file():
        return None
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # our yolobone/models/utils would shadow YOLOv5's
    env.setdefault("YOLOV5_CONFIG_DIR", str(Path.home() / ".cache/yolov5-ref/config"))
    env["OMP_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory() as cwd:
        out = subprocess.run([str(REF_PYTHON), "-c", REF_SCRIPT, name, str(imgsz), str(runs), str(threads)],
                             capture_output=True, text=True, env=env, cwd=cwd, timeout=900)
    if out.returncode != 0:
        LOGGER.warning(f"WARNING: YOLOv5 reference failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
        return None
    return float(json.loads(out.stdout.strip().splitlines()[-1])["ms"])


def build_exports(name: str, imgsz: int, folder: Path, calib_data: str, calib_images: int) -> Dict[str, Path]:
    """Random-init 80-class checkpoint of configs/<name>.yaml and its ONNX / OpenVINO / INT8 exports (reused when
    `folder` already holds them, e.g. from an earlier run with the same --workdir)."""
    files = {"torch": folder / f"{name}.pt", "onnx": folder / f"{name}.onnx",
             "openvino": folder / f"{name}_openvino_model", "onnx int8": folder / f"{name}_int8.onnx",
             "openvino int8": folder / f"{name}_int8_openvino_model"}
    if all(f.exists() for f in files.values()):
        return files
    torch.manual_seed(0)
    model = DetectionModel(str(ROOT / "configs" / f"{name}.yaml"), nc=80)
    pt = save_checkpoint({"model": model.state_dict(), "model_yaml": model.yaml, "task": "detect", "nc": 80,
                          "names": [str(i) for i in range(80)]}, folder / f"{name}.pt")
    files = export_model(ExportConfig(weights=pt, include=("onnx", "openvino"), imgsz=imgsz, int8=True,
                                      data=calib_data, int8_images=calib_images, skip_int8_val=True))
    return {"torch": pt, "onnx": files["onnx"], "openvino": files["openvino"], "onnx int8": files["int8_onnx"],
            "openvino int8": files["int8_openvino"]}


def int8_map(weights: str, imgsz: int, data: str, calib_images: int, folder: Path) -> Dict[str, float]:
    """mAP50-95 of FP32 and INT8 ONNX exports of a trained checkpoint on data's val split."""
    pt = folder / "trained.pt"
    pt.write_bytes(Path(weights).read_bytes())
    cfg = ExportConfig(weights=pt, include=("onnx", "openvino"), imgsz=imgsz, int8=True, data=data,
                       int8_images=calib_images, skip_int8_val=True, batch_size=1)
    files = export_model(cfg)
    return {k: score(files[k], cfg) for k in ("onnx", "int8_onnx", "openvino", "int8_openvino")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["yolov5n", "yolov5s"])
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=20, help="timed passes per measurement")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (YOLOv5, then ours)")
    p.add_argument("--calib-data", default="configs/data/shapes.yaml", help="INT8 calibration data YAML")
    p.add_argument("--calib-images", type=int, default=32)
    p.add_argument("--map-weights", default=None, help="trained checkpoint: also report FP32 vs INT8 mAP50-95")
    p.add_argument("--map-imgsz", type=int, default=256)
    p.add_argument("--map-data", default="configs/data/shapes.yaml")
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile'd PyTorch row")
    p.add_argument("--edge", action="store_true", help="also time NCNN and TFLite (LiteRT) FP32 exports")
    p.add_argument("--warm-cache", action="store_true",
                   help="compile with inductor's usual on-disk cache (a repeated compile) instead of a fresh one")
    p.add_argument("--workdir", default=None, help="keep (and reuse) the exports here instead of a temp folder")
    opt = p.parse_args()
    torch.set_num_threads(opt.threads)
    results: Dict[str, Dict[str, List[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if opt.workdir:
            tmp = opt.workdir
            Path(tmp).mkdir(parents=True, exist_ok=True)
        backends = {}
        x = torch.rand(1, 3, opt.imgsz, opt.imgsz)
        compile_s = {}
        if not opt.warm_cache:  # a fresh inductor cache: a first compile's seconds, what --compile auto assumes
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor_cache_", dir=tmp)
        for name in opt.models:
            files = build_exports(name, opt.imgsz, Path(tmp), opt.calib_data, opt.calib_images)
            if opt.edge:  # static FP32 exports of the same checkpoint, run by ncnn and LiteRT
                edge = export_model(ExportConfig(weights=files["torch"], include=("ncnn", "tflite"), imgsz=opt.imgsz))
                files = {**files, "ncnn": edge["ncnn"], "tflite": edge["tflite"]}
            runtimes = {k: load_backend(f, "cpu") for k, f in files.items()}
            rows = {"torch": runtimes.pop("torch"),
                    "torch unpacked": TorchBackend.load(files["torch"], torch.device("cpu"), pack=False)}
            if not opt.no_compile:
                compiled = load_backend(files["torch"], "cpu", compile="on")
                compiled(x)  # compiles for this shape
                if compiled.compiled is not None and compiled.compiled.compile_s is not None:
                    rows["torch compiled"] = compiled
                    compile_s[name] = compiled.compiled.compile_s
            backends[name] = {**rows, **runtimes}
        for r in range(opt.rounds):
            for name in opt.models:
                row = results.setdefault(name, {})
                ref = reference_ms(name, opt.imgsz, opt.runs, opt.threads)
                if ref is not None:
                    row.setdefault("YOLOv5 v7.0", []).append(ref)
                for kind, b in backends[name].items():
                    row.setdefault(kind, []).append(median_ms(lambda: b(x), opt.runs))
                print(f"round {r + 1}/{opt.rounds} {name}: " +
                      ", ".join(f"{k} {v[-1]:.1f}" for k, v in row.items()), flush=True)
        maps = int8_map(opt.map_weights, opt.map_imgsz, opt.map_data, opt.calib_images, Path(tmp)) \
            if opt.map_weights else None
    print(f"\ntorch {torch.__version__}, {opt.threads} threads, batch 1, {opt.imgsz}x{opt.imgsz}, "
          f"median of {opt.runs} passes per round, median over {opt.rounds} interleaved rounds")
    print("| model | backend | ms (per round) | median ms | vs YOLOv5 | paired | target |")
    print("|---|---|---|---|---|---|---|")
    for name, row in results.items():
        refs = row.get("YOLOv5 v7.0")
        ref = statistics.median(refs) if refs else None
        for kind, ts in row.items():
            ms = statistics.median(ts)
            ratio = f"{ms / ref:.2f}x" if ref else "n/a"
            # median of the per-round ratios: each round's pair saw the same machine load
            paired = statistics.median(t / r for t, r in zip(ts, refs)) if refs else None
            target = f"<= {TARGETS[kind]}x " + ("met" if ms / ref <= TARGETS[kind] else "NOT met") \
                if kind in TARGETS and ref else ""
            print(f"| {name} | {kind} | {' / '.join(f'{t:.1f}' for t in ts)} | {ms:.1f} | {ratio} | "
                  f"{f'{paired:.2f}x' if paired else 'n/a'} | {target} |")
    for name, s in compile_s.items():
        saved = statistics.median(results[name]["torch"]) - statistics.median(results[name]["torch compiled"])
        print(f"{name}: torch.compile took {s:.1f} s ({'warm' if opt.warm_cache else 'empty'} inductor cache, first "
              f"call at {opt.imgsz}x{opt.imgsz}), saves {saved:.1f} ms per "
              f"image vs ours PyTorch default: repaid after {s * 1e3 / saved:.0f} images" if saved > 0 else
              f"{name}: torch.compile took {s:.1f} s and saved nothing per image")
    for name, row in results.items():
        if "torch unpacked" in row:
            paired = statistics.median(p / u for p, u in zip(row["torch"], row["torch unpacked"]))
            print(f"{name}: oneDNN packing (ours PyTorch default / unpacked, paired per round): {paired:.2f}x")
    if maps:
        print(f"\nmAP50-95 on {opt.map_data} val at {opt.map_imgsz} px ({opt.map_weights}): "
              f"ONNX FP32 {maps['onnx']:.4f} -> INT8 {maps['int8_onnx']:.4f} "
              f"({(maps['int8_onnx'] - maps['onnx']) * 100:+.2f} points); OpenVINO FP32 {maps['openvino']:.4f} -> "
              f"INT8 {maps['int8_openvino']:.4f} ({(maps['int8_openvino'] - maps['openvino']) * 100:+.2f} points)")


if __name__ == "__main__":
    main()
