"""Edge and GPU exports: NCNN and TFLite run by their own runtimes, the CoreML spec, the TensorRT path on CUDA."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from yolobone.cli import detect
from yolobone.engine.backends import BackendError, backend_kind, load_backend
from yolobone.engine.export import ExportConfig, ExportError, export_model
from yolobone.models import build_model
from yolobone.utils.checkpoint import save_checkpoint
from yolobone.data.synthetic import SHAPE_NAMES, make_detection_dataset
from helpers import VAL_IMGSZ, save_detector, tiny_detector
from tolerance import assert_close_scaled

ROOT = Path(__file__).resolve().parents[1]
IMGSZ = 64


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """An untrained yolov5n checkpoint for the synthetic shapes: exports must reproduce its raw outputs."""
    torch.manual_seed(0)
    model = build_model(str(ROOT / "configs/yolov5n.yaml"), nc=len(SHAPE_NAMES))
    path = tmp_path_factory.mktemp("edge") / "w.pt"
    save_checkpoint({"model": model.state_dict(), "model_yaml": model.yaml, "task": "detect",
                     "nc": len(SHAPE_NAMES), "names": list(SHAPE_NAMES)}, path)
    return path


def _same_outputs(ckpt: Path, export: Path, rel: float) -> None:
    torch.manual_seed(1)
    x = torch.rand(2, 3, IMGSZ, IMGSZ)
    ref, got = load_backend(ckpt, "cpu"), load_backend(export, "cpu")
    assert (got.names, got.stride, tuple(got.meta.imgsz)) == (list(SHAPE_NAMES), 32, (IMGSZ, IMGSZ))
    assert_close_scaled(got(x), ref(x), rel=rel)


@pytest.mark.parametrize("fmt, modules", [("ncnn", ("ncnn", "pnnx")), ("tflite", ("litert_torch", "ai_edge_litert"))])
@pytest.mark.parametrize("half", [False, True])
def test_edge_export_matches_torch(ckpt, fmt, modules, half):
    for m in modules:
        pytest.importorskip(m)
    files = export_model(ExportConfig(weights=ckpt, include=(fmt,), imgsz=IMGSZ, half=half))
    assert backend_kind(files[fmt]) == fmt and files[fmt].name.endswith(f"_{fmt}_model")
    assert load_backend(files[fmt], "cpu").meta.precision == ("fp16" if half else "fp32")
    _same_outputs(ckpt, files[fmt], rel=2e-2 if half else 1e-4)  # FP16 weights: ~1e-3 relative rounding


@pytest.fixture(scope="module")
def af_ckpt(tmp_path_factory) -> Path:
    """An untrained anchor-free (DFL, no objectness) tiny detector."""
    torch.manual_seed(0)
    cfg = dict(nc=len(SHAPE_NAMES), depth_multiple=0.33, width_multiple=0.125,
               backbone=[[-1, 1, "Conv", [64, 6, 2, 2]], [-1, 1, "Conv", [128, 3, 2]], [-1, 1, "Conv", [256, 3, 2]],
                         [-1, 1, "Conv", [512, 3, 2]], [-1, 1, "Conv", [1024, 3, 2]]],
               head=[[[2, 3, 4], 1, "Detect", ["nc"]]])
    model = build_model(cfg)
    path = tmp_path_factory.mktemp("edge_af") / "w.pt"
    save_checkpoint({"model": model.state_dict(), "model_yaml": model.yaml, "task": "detect",
                     "nc": len(SHAPE_NAMES), "names": list(SHAPE_NAMES)}, path)
    return path


@pytest.mark.parametrize("fmt, modules", [("ncnn", ("ncnn", "pnnx")), ("tflite", ("litert_torch", "ai_edge_litert"))])
def test_anchor_free_head_exports_to_edge_formats(af_ckpt, fmt, modules):
    """The anchor-free decode traces for torch.export (TFLite): its strides stay tensors (an .item() stopped it)."""
    for m in modules:
        pytest.importorskip(m)
    files = export_model(ExportConfig(weights=af_ckpt, include=(fmt,), imgsz=IMGSZ))
    _same_outputs(af_ckpt, files[fmt], rel=1e-4)


def test_ncnn_export_runs_in_detect_and_val(ckpt, tmp_path):
    pytest.importorskip("ncnn")
    from yolobone.engine.detect.val_run import ValConfig, run_val

    folder = export_model(ExportConfig(weights=ckpt, include=("ncnn",), imgsz=IMGSZ))["ncnn"]
    data = make_detection_dataset(tmp_path / "data", n_train=2, n_val=3, imgsz=IMGSZ, seed=1, verbose=False)
    scores = [run_val(ValConfig(weights=w, data=str(data), imgsz=IMGSZ, batch_size=2, device="cpu", workers=0,
                                plots=False, project=str(tmp_path / "val"), name=n)).result.map50_95
              for w, n in ((ckpt, "pt"), (folder, "ncnn"))]
    assert abs(scores[0] - scores[1]) <= 1e-3
    rc = detect.main(["--weights", str(folder), "--source", str(Path(data).parent / "images" / "val"), "--imgsz",
                      str(IMGSZ), "--conf-thres", "0.001", "--device", "cpu", "--nosave", "--save-txt",
                      "--project", str(tmp_path / "det")])
    assert rc == 0


@pytest.mark.parametrize("half", [False, True])
def test_coreml_spec(ckpt, half):
    ct = pytest.importorskip("coremltools")
    path = export_model(ExportConfig(weights=ckpt, include=("coreml",), imgsz=IMGSZ, half=half))["coreml"]
    spec = ct.utils.load_spec(str(path))
    (inp,), (out,) = spec.description.input, spec.description.output
    assert (inp.name, list(inp.type.multiArrayType.shape)) == ("images", [1, 3, IMGSZ, IMGSZ])
    anchors = 3 * sum((IMGSZ // s) ** 2 for s in (8, 16, 32))
    assert (out.name, list(out.type.multiArrayType.shape)) == ("predictions", [1, anchors, 5 + len(SHAPE_NAMES)])
    meta = json.loads(spec.description.metadata.userDefined["yolobone"])
    assert (meta["names"], meta["stride"], meta["imgsz"]) == (list(SHAPE_NAMES), 32, [IMGSZ, IMGSZ])
    assert meta["precision"] == ("fp16" if half else "fp32") and spec.WhichOneof("Type") == "mlProgram"
    with pytest.raises(BackendError, match="only on macOS"):
        load_backend(path, "cpu")


def test_engine_needs_cuda_and_our_header(ckpt, tmp_path):
    if not torch.cuda.is_available():
        with pytest.raises(ExportError, match="needs a CUDA GPU"):
            export_model(ExportConfig(weights=ckpt, include=("engine",), imgsz=IMGSZ))
    (tmp_path / "x.engine").write_bytes(b"\x00\x01\x02\x03 not an engine")
    with pytest.raises(BackendError, match="CUDA device|no metadata header"):
        load_backend(tmp_path / "x.engine", "cpu")
    from yolobone.engine.backends.tensorrt_backend import read_engine_file

    with pytest.raises(BackendError, match="no metadata header"):
        read_engine_file(tmp_path / "x.engine")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="TensorRT builds and runs engines on a CUDA GPU only")
@pytest.mark.parametrize("half", [False, True])
def test_engine_matches_torch_on_cuda(ckpt, half):
    pytest.importorskip("tensorrt")
    files = export_model(ExportConfig(weights=ckpt, include=("engine",), imgsz=IMGSZ, half=half, device="0"))
    torch.manual_seed(1)
    x = torch.rand(2, 3, IMGSZ, IMGSZ, device="cuda")
    ref, got = load_backend(ckpt, "0"), load_backend(files["engine"], "0")
    assert got.kind == "tensorrt" and got.meta.precision == ("fp16" if half else "fp32")
    assert_close_scaled(got(x).cpu(), ref(x).cpu(), rel=2e-2 if half else 1e-3)  # TF32 tactics round at ~1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="TensorRT builds and runs engines on a CUDA GPU only")
def test_int8_engine_calibrates_and_validates(ckpt, tmp_path):
    pytest.importorskip("tensorrt")
    data = make_detection_dataset(tmp_path / "data", n_train=8, n_val=4, imgsz=IMGSZ, seed=2, verbose=False)
    files = export_model(ExportConfig(weights=ckpt, include=("engine",), imgsz=IMGSZ, int8=True, data=str(data),
                                      int8_images=8, skip_int8_val=True, device="0"))
    backend = load_backend(files["int8_engine"], "0")
    assert backend.meta.precision == "int8" and files["int8_engine"].with_suffix(".cache").is_file()
    assert backend(torch.rand(1, 3, IMGSZ, IMGSZ, device="cuda")).shape == (1, 3 * (64 + 16 + 4), 5 + len(SHAPE_NAMES))


def test_half_on_cpu_refused_for_torch_formats(ckpt):
    with pytest.raises(ExportError, match="--half exports FP16 on a CUDA device only for onnx"):
        export_model(ExportConfig(weights=ckpt, include=("onnx", "ncnn"), imgsz=IMGSZ, half=True))


def test_tflite_int8_quantizes_the_body_and_keeps_the_decode_float(tmp_path):
    for m in ("litert_torch", "ai_edge_litert", "ai_edge_quantizer"):
        pytest.importorskip(m)
    import numpy as np

    from yolobone.engine.export.int8 import calibration_batches, calibration_images

    data = make_detection_dataset(tmp_path / "data", n_train=8, n_val=4, imgsz=VAL_IMGSZ, seed=2, verbose=False)
    weights = save_detector(tiny_detector(len(SHAPE_NAMES)), tmp_path / "w.pt", SHAPE_NAMES)
    files = export_model(ExportConfig(weights=weights, include=("tflite",), imgsz=VAL_IMGSZ, int8=True,
                                      data=str(data), int8_images=8, skip_int8_val=True))
    assert files["int8_tflite"].name == "w_int8_tflite_model" and "int8_onnx" not in files
    fp32, int8 = load_backend(files["tflite"], "cpu"), load_backend(files["int8_tflite"], "cpu")
    assert int8.meta.precision == "int8" and int8.input["dtype"] == np.int8 and int8.output["dtype"] == np.float32
    kinds = [d["dtype"] for d in int8.interpreter.get_tensor_details()]
    assert kinds.count(np.int8) > kinds.count(np.float32)  # the body runs in int8, the decode in float
    x = torch.from_numpy(next(calibration_batches(calibration_images(str(data), "detect", 2), "detect",
                                                  (VAL_IMGSZ, VAL_IMGSZ), 2)))
    a, b = fp32(x), int8(x)
    assert a.shape == b.shape
    assert_close_scaled(b[..., :4], a[..., :4], rel=1e-6)  # boxes: the anchors, decoded in float from zero logits
    r = np.corrcoef(a[..., 4].flatten().numpy(), b[..., 4].flatten().numpy())[0, 1]
    assert r > 0.6, r  # objectness, computed by the int8 body, follows the float model's (0.88 measured)


def test_int8_refused_for_formats_without_an_int8_path(ckpt):
    with pytest.raises(ExportError, match=r"--int8 with --include ncnn: INT8 is written for onnx, openvino, tflite, "
                                          r"engine; ncnn's INT8 tools \(ncnn2table, ncnn2int8\) are not in"):
        export_model(ExportConfig(weights=ckpt, include=("ncnn",), imgsz=IMGSZ, int8=True, data="x.yaml"))
