"""INT8 post-training static quantization with ONNX Runtime (QDQ), calibrated on the data YAML's train images.

Why ONNX Runtime and not OpenVINO's NNCF: it needs no extra package (onnxruntime is already the ONNX backend),
the QDQ file it writes runs in ONNX Runtime and converts to OpenVINO IR as an INT8 model too, so one calibration
serves both runtimes.
"""
from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from yolobone.engine.core.backend import ModelMeta
from yolobone.engine.backends.runtime import require
from yolobone.engine.export.onnx_format import add_metadata
from yolobone.engine.export.prepare import INPUT_NAME, ExportError
from yolobone.data.augment import letterbox
from yolobone.utils.errors import first_line
from yolobone.utils.logging import LOGGER


def calibration_images(data: str, task: str, n: int, seed: int = 0) -> List[str]:
    """Up to n training images of `data` (a detection data YAML, or a classification root/name), sampled evenly."""
    if task == "detect":
        from yolobone.data.config import check_dataset, list_image_files

        cfg = check_dataset(data)
        if not cfg.get("train"):
            raise ExportError(f"--data {data}: no 'train' split to calibrate INT8 on")
        files = list_image_files(cfg["train"], prefix="int8 calibration: ")
    else:
        from yolobone.data.classify import resolve_classify_data

        files = [p for p, _ in resolve_classify_data(data, verbose=False).train]
    random.Random(seed).shuffle(files)
    return sorted(files[:n])


def calibration_files(data: str, meta: ModelMeta, n: int) -> List[str]:
    """calibration_images for an export of meta's task, refused when they do not fill one batch."""
    files = calibration_images(data, meta.task, n)
    if len(files) < meta.batch:
        raise ExportError(f"--data {data}: {len(files)} training images, fewer than the batch size {meta.batch}")
    return files


def detection_input(path: str, imgsz: Tuple[int, int]) -> np.ndarray:
    """(1, 3, h, w) float32 RGB in [0, 1], letterboxed exactly as the predictor does for a static export."""
    im = cv2.imread(path)
    if im is None:
        raise ExportError(f"int8 calibration: {path} could not be read")
    im = letterbox(im, imgsz, auto=False)[0]
    return np.ascontiguousarray(im[..., ::-1].transpose(2, 0, 1))[None].astype(np.float32) / 255


def classification_input(path: str, imgsz: Tuple[int, int]) -> np.ndarray:
    """(1, 3, s, s) float32, the classifier's eval transform (centre crop, resize, normalise)."""
    from yolobone.data.classify import eval_transform, load_rgb

    return eval_transform(imgsz[0])(load_rgb(path)).numpy()[None]


def calibration_batches(files: Sequence[str], task: str, imgsz: Tuple[int, int], batch: int) -> Iterator[np.ndarray]:
    """(batch, 3, h, w) float32 inputs from the files, read as the predictor reads them (letterbox or centre crop)."""
    read = detection_input if task == "detect" else classification_input
    for i in range(0, len(files) - batch + 1, batch):
        yield np.concatenate([read(f, imgsz) for f in files[i:i + batch]])


class ImageCalibration:
    """onnxruntime CalibrationDataReader over image files (batches of the exported batch size)."""

    def __init__(self, files: Sequence[str], task: str, imgsz: Tuple[int, int], batch: int):
        self.files, self.task, self.imgsz, self.batch = list(files), task, imgsz, batch
        self._it: Optional[Iterator] = None

    def _batches(self) -> Iterator[dict]:
        for x in calibration_batches(self.files, self.task, self.imgsz, self.batch):
            yield {INPUT_NAME: x}

    def get_next(self) -> Optional[dict]:
        if self._it is None:
            self._it = self._batches()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


def head_nodes(onnx_path: Path, head_index: int) -> List[str]:
    """Detect's decode nodes (sigmoid, grid and anchor arithmetic, reshapes): kept in float, only its convs quantized.

    Their outputs are box coordinates in pixels (up to the image size) next to scores in [0, 1]; one 8-bit scale
    for both would cost whole pixels of box precision and most of the score resolution.
    """
    onnx = require("onnx", "INT8 export")
    prefix = f"/model.{head_index}/"
    graph = onnx.load(str(onnx_path)).graph
    return [n.name for n in graph.node if n.name.startswith(prefix) and n.op_type != "Conv"]


def quantize_onnx(fp32_path: Path, int8_path: Path, meta: ModelMeta, data: str, n_images: int = 128,
                  head_index: Optional[int] = None) -> Path:
    """Write the QDQ INT8 model (per-channel int8 weights, uint8 activations, MinMax calibration)."""
    require("onnxruntime", "INT8 export")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    files = calibration_files(data, meta, n_images)
    LOGGER.info(f"INT8: calibrating on {len(files)} training images of {data} ...")
    pre = int8_path.with_name(int8_path.stem + "_pre.onnx")
    try:
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        exclude = head_nodes(pre, head_index) if head_index is not None else []
        quantize_static(str(pre), str(int8_path), ImageCalibration(files, meta.task, meta.imgsz, meta.batch),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=exclude)
    except ExportError:
        raise
    except Exception as e:  # onnxruntime.quantization raises plain Exceptions with the node name
        raise ExportError(f"INT8 quantization of {fp32_path} failed: {first_line(e)[:300]}") from None
    finally:
        pre.unlink(missing_ok=True)
    int8_meta = dataclasses.replace(meta, precision="int8")
    add_metadata(int8_path, int8_meta)
    return int8_path
