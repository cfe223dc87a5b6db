"""compare.py --int8: each trained config's best.pt quantized to INT8 (ONNX Runtime QDQ, the export.py --int8 path),
calibrated on training images, scored on the val set beside its FP32 export, and its INT8 latency timed."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from yolobone.engine.compare.report import ConfigResult
from yolobone.engine.export import ExportConfig, export_model, score
from yolobone.utils.logging import LOGGER
from yolobone.utils.profiling import median_ms

INT8_IMAGES = 64  # calibration images per config (training split)


def int8_figures(best: Path, data: str, imgsz: int, runs: int) -> Dict[str, float]:
    """FP32 and INT8 score (mAP50-95 or top-1) of best.pt's static ONNX exports, their drop, and INT8 latency."""
    from yolobone.engine.backends import load_backend

    cfg = ExportConfig(weights=best, include=("onnx",), imgsz=imgsz, int8=True, data=data, int8_images=INT8_IMAGES,
                       skip_int8_val=True, workers=0)
    files = export_model(cfg)
    fp32, int8 = score(files["onnx"], cfg), score(files["int8_onnx"], cfg)
    backend = load_backend(files["int8_onnx"], "cpu")
    x = torch.rand(1, 3, *backend.meta.imgsz)
    return {"fp32": fp32, "int8": int8, "drop": fp32 - int8, "int8_ms": median_ms(lambda: backend(x), runs, 3)}


def add_int8(rows: Sequence[ConfigResult], data: Optional[str], imgsz: int, runs: int) -> None:
    """Fill row.int8 for every finished row that has a best.pt and no figures yet (a failure is a row note)."""
    for r in rows:
        best = Path(r.run_dir) / "weights" / "best.pt" if r.run_dir else None
        if r.status != "done" or r.int8 or best is None or not best.is_file():
            continue
        try:
            r.int8 = int8_figures(best, str(data), imgsz, runs)
        except ValueError as e:  # ExportError / BackendError: one line, the comparison goes on
            r.notes.append(f"INT8: {e}")
            LOGGER.warning(f"WARNING: compare --int8: {r.name}: {e}")


def int8_table(rows: Sequence[ConfigResult], metric: str) -> List[str]:
    """results.md lines: per config the FP32 and INT8 score of its ONNX export, the drop, the INT8 latency."""
    done = [r for r in rows if r.int8]
    if not done:
        return []
    lines = ["", f"INT8 (ONNX Runtime QDQ, {INT8_IMAGES} training images calibrate; scored on the val set, batch-1 "
                 f"CPU latency):", "", f"| config | FP32 {metric} | INT8 {metric} | drop | INT8 ms |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {r.name} | {r.int8['fp32']:.4f} | {r.int8['int8']:.4f} | {r.int8['drop']:+.4f} | "
              f"{r.int8['int8_ms']:.1f} |" for r in done]
    return lines
