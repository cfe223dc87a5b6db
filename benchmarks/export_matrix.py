"""Every shipped config x every edge format, each cell measured: exported and run by its runtime (max error against
PyTorch, scaled by the output's magnitude), or refused with its one-line reason. Prints a markdown table.

    python benchmarks/export_matrix.py                             # ncnn, tflite, coreml (spec only: macOS runs it)
    python benchmarks/export_matrix.py --formats ncnn --configs yolov5n.yaml cls/yolov5n-cls.yaml

Models are built at most yolov5n's depth and a quarter width (every YAML row and block as written; the large
scales only cost time), random weights, 2 classes, 64 px (P6/P7 heads: their largest stride).
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from yolobone.engine.backends import load_backend, model_meta  # noqa: E402
from yolobone.engine.export.prepare import dummy_input, export_ready  # noqa: E402
from yolobone.models import build_model  # noqa: E402
from yolobone.models.backbones.pretrained import no_pretrained  # noqa: E402
from yolobone.models.parse import load_model_yaml  # noqa: E402


def slim(cfg: str) -> dict:
    d = copy.deepcopy(load_model_yaml(ROOT / "configs" / cfg).data)
    d["depth_multiple"] = min(float(d.get("depth_multiple", 1.0)), 0.33)
    d["width_multiple"] = min(float(d.get("width_multiple", 1.0)), 0.25)
    return d


def cell(fmt: str, model, x, meta, ref, folder: Path) -> str:
    """'ok err=..' or 'refused: <reason>' for one format."""
    try:
        if fmt == "ncnn":
            from yolobone.engine.export.ncnn_format import export_ncnn
            path = export_ncnn(model, x, folder / "m_ncnn_model", meta)
        elif fmt == "tflite":
            from yolobone.engine.export.tflite_format import export_tflite
            path = export_tflite(model, x, folder / "m_tflite_model", meta)
        else:
            from yolobone.engine.export.coreml_format import export_coreml
            export_coreml(model, x, folder / "m.mlpackage", meta)
            return "spec ok (runs on macOS)"
        got = load_backend(path, "cpu")(x)
    except ValueError as e:  # ExportError / BackendError: the one-line reason
        return "refused: " + str(e).replace("|", "/")[:160]
    err = float((got - ref).abs().max()) / max(1.0, float(ref.abs().max()))
    return f"ok ({err:.0e})"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--formats", nargs="+", default=["ncnn", "tflite", "coreml"])
    p.add_argument("--configs", nargs="+", default=None, help="paths under configs/ (default: every shipped config)")
    o = p.parse_args()
    cfgs = o.configs or sorted(q.relative_to(ROOT / "configs").as_posix() for q in (ROOT / "configs").rglob("*.yaml")
                               if q.parent.name in ("configs", "cls"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; cell: max |export - torch| / max(1, |torch|)")
    print("| config | " + " | ".join(o.formats) + " |\n|---|" + "---|" * len(o.formats), flush=True)
    for cfg in cfgs:
        t0 = time.time()
        torch.manual_seed(0)
        with no_pretrained():  # random weights: nothing is downloaded, the export is the same
            model = build_model(slim(cfg), nc=2)
        task = getattr(model, "task", "detect")
        s = max(64, int(max(model.stride.tolist())) if task == "detect" else 32)
        model = export_ready(model, torch.device("cpu"), half=False)
        meta = model_meta(model, imgsz=(s, s), dynamic=False)
        x = dummy_input(1, (s, s), torch.device("cpu"), False) + torch.rand(1, 3, s, s)
        with torch.no_grad():
            ref = model(x)
        with tempfile.TemporaryDirectory() as tmp:
            cells = [cell(f, model, x, meta, ref, Path(tmp)) for f in o.formats]
        print(f"| {cfg} | " + " | ".join(cells) + f" |  <!-- {time.time() - t0:.0f}s -->", flush=True)


if __name__ == "__main__":
    main()
