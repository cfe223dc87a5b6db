"""NCNN export: pnnx converts the traced TorchScript model to `<stem>_ncnn_model/` (.param + .bin, metadata.yaml).

FP16 here means FP16 weight storage in the .bin (pnnx fp16=1), which ncnn reads on any CPU.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import yaml

from yolobone.engine.backends.ncnn_backend import META_FILE, PARAM_FILE
from yolobone.engine.backends.runtime import require
from yolobone.engine.core.backend import ModelMeta
from yolobone.engine.export.prepare import ExportError
from yolobone.utils.errors import first_line


def _pnnx_binary() -> Path:
    """The pnnx executable shipped inside the `pnnx` wheel."""
    pnnx = require("pnnx", "NCNN export")
    exe = Path(pnnx.__file__).with_name("pnnx")
    if not exe.is_file():
        raise ExportError(f"NCNN export: the pnnx package at {exe.parent} has no pnnx executable; reinstall: "
                          f"pip install --force-reinstall pnnx")
    return exe


def export_ncnn(model: nn.Module, x: torch.Tensor, out_dir: Path, meta: ModelMeta, half: bool = False) -> Path:
    """Trace `model` on `x` (float32 on the CPU), convert it with pnnx and write out_dir with metadata.yaml."""
    exe = _pnnx_binary()
    model, x = model.float().cpu(), x.float().cpu()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        ts = Path(tmp) / "model.pt"
        try:
            with warnings.catch_warnings():  # jit.trace deprecation: pnnx reads TorchScript on purpose
                warnings.simplefilter("ignore")
                torch.jit.trace(model, x, strict=False, check_trace=False).save(str(ts))
        except Exception as e:  # the tracer raises RuntimeError / TypeError naming the op
            raise ExportError(f"NCNN export: tracing failed ({first_line(e)[:300]})") from None
        side = {k: str(Path(tmp) / f"side.{k}") for k in ("pnnxparam", "pnnxbin", "pnnxpy", "pnnxonnx", "ncnnpy")}
        args = [str(exe), str(ts), f"inputshape=[{','.join(str(s) for s in x.shape)}]", f"fp16={int(half)}",
                f"ncnnparam={out_dir / PARAM_FILE}", f"ncnnbin={out_dir / PARAM_FILE.replace('.param', '.bin')}",
                *(f"{k}={v}" for k, v in side.items())]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not (out_dir / PARAM_FILE).is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        raise ExportError(f"NCNN export: pnnx exited with {proc.returncode} ({(tail[-1] if tail else '')[:300]})")
    (out_dir / META_FILE).write_text(yaml.safe_dump(meta.to_dict(), sort_keys=False))
    return out_dir
