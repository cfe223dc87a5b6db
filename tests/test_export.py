"""export.py and the inference backends: every config exports to ONNX and TorchScript with PyTorch's outputs,
OpenVINO on a subset, val.py / detect.py agree across backends, INT8, metadata and one-line errors."""
from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn

from yolobone.cli import detect
from yolobone.cli import export
from yolobone.cli import val
from yolobone.engine.backends import BackendError, TorchBackend, backend_kind, load_backend, model_meta
from yolobone.engine.export import ExportConfig, ExportError, export_model
from yolobone.engine.export.onnx_format import _torch_onnx_export, export_onnx
from yolobone.engine.export.openvino_format import export_openvino
from yolobone.engine.export.prepare import dummy_input, export_ready
from yolobone.engine.export.torchscript_format import export_torchscript
from yolobone.models import build_model, register_block
from yolobone.models.parse import load_model_yaml
from yolobone.models.registry import _REGISTRY, scaled_out
from tolerance import assert_close_scaled
from yolobone.utils.checkpoint import save_checkpoint
from yolobone.data.synthetic import SHAPE_NAMES, make_detection_dataset

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.relative_to(ROOT / "configs").as_posix() for p in (ROOT / "configs").rglob("*.yaml")
                 if p.parent.name in ("configs", "cls"))
OPENVINO_SUBSET = ("yolov5n.yaml", "yolov5s-shufflenetv2.yaml", "yolov5-p6.yaml", "yolo11n.yaml", "cls/yolov5n-cls.yaml")
NC = 2


def _slim(cfg: str) -> dict:
    """The config's YAML at most yolov5n's depth and a quarter width: every row and block stays as written (what
    export exercises), the l/x-scale copies just stop costing minutes. Fixed-width backbones keep their widths."""
    d = copy.deepcopy(load_model_yaml(ROOT / "configs" / cfg).data)  # compositions arrive composed
    d["depth_multiple"] = min(float(d.get("depth_multiple", 1.0)), 0.33)
    d["width_multiple"] = min(float(d.get("width_multiple", 1.0)), 0.25)
    if d.get("scales"):  # Ultralytics' scales table: slim the scale in use (its letter and channel cap kept)
        depth, width, *cap = d["scales"][d["scale"]]
        d["scales"] = {d["scale"]: [min(depth, 0.33), min(width, 0.25), *cap]}
    return d


@pytest.mark.parametrize("cfg", CONFIGS)
def test_every_config_exports(cfg, tmp_path):
    torch.manual_seed(0)
    model = build_model(_slim(cfg), nc=NC)
    task = getattr(model, "task", "detect")
    stride = int(max(model.stride.tolist())) if task == "detect" else 32
    size = (max(64, stride), max(64, stride))  # P6/P7 heads need the image to span their largest stride
    model = export_ready(model, torch.device("cpu"), half=False)
    meta = model_meta(model, imgsz=size, dynamic=False)
    x = dummy_input(1, size, torch.device("cpu"), False) + torch.rand(1, 3, *size)
    with torch.no_grad():
        ref = model(x)
    onnx_path = export_onnx(model, x, tmp_path / "m.onnx", meta)
    files = [onnx_path, export_torchscript(model, x, tmp_path / "m.torchscript", meta)]
    if cfg in OPENVINO_SUBSET:
        files.append(export_openvino(onnx_path, tmp_path / "m_openvino_model", meta))
        if importlib.util.find_spec("ncnn") and importlib.util.find_spec("pnnx"):  # every config: export_matrix.py
            from yolobone.engine.export.ncnn_format import export_ncnn

            files.append(export_ncnn(model, x, tmp_path / "m_ncnn_model", meta))
    for f in files:
        backend = load_backend(f, "cpu")
        assert (backend.task, backend.names, backend.stride, backend.meta.imgsz) == (task, ["0", "1"], stride, size)
        assert_close_scaled(backend(x), ref, rtol=0.0)
    names = [o.name for o in onnx.load(str(onnx_path)).graph.output]
    assert names == (["predictions"] if task == "detect" else ["logits"])


# ------------------------------------------------------------------------------ val.py / detect.py across backends
IMGSZ = 64
LOW_CONF = 0.001  # to see the whole score distribution before picking a threshold inside one of its gaps
FIT_STEPS = 60
MIN_GAP = 0.005  # backends' scores differ by ~1e-5: a threshold this far from every score is crossed by none


def _fit_detector(data: Path, steps: int) -> nn.Module:
    """yolov5n fitted to the validation images themselves (full batch, Adam, no augmentation): a model that has
    learned something, with confident boxes on the objects standing far above the low-score tail."""
    from yolobone.data.datasets import check_dataset, create_dataloader
    from yolobone.models.loss import ComputeLoss
    from yolobone.utils.hyp import load_hyp

    loader, _ = create_dataloader(check_dataset(str(data))["val"], IMGSZ, 8, 32, nc=len(SHAPE_NAMES))
    imgs, targets = next(iter(loader))[:2]
    torch.manual_seed(0)
    model = build_model(str(ROOT / "configs" / "yolov5n.yaml"), nc=len(SHAPE_NAMES)).train()
    loss_fn = ComputeLoss(model.model[-1], load_hyp(None), imgsz=IMGSZ)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        loss, _ = loss_fn(model(imgs.float() / 255), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():  # BatchNorm statistics of the fitted weights (the running means lag behind 60 steps)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # a cumulative average: after one batch, that batch's statistics
        model(imgs.float() / 255)
    return model.eval()


def _separated_threshold(scores: np.ndarray, lo: float = 0.05, hi: float = 0.5) -> float:
    """The middle of the widest gap between the scores in [lo, hi]: no score of any backend can round across it."""
    s = np.unique(np.concatenate([[lo, hi], scores[(scores > lo) & (scores < hi)]]))
    k = int(np.argmax(np.diff(s)))
    assert s[k + 1] - s[k] > MIN_GAP, f"no score gap wider than {MIN_GAP} in [{lo}, {hi}]: {s}"
    return float(s[k] + s[k + 1]) / 2


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A fitted yolov5n checkpoint on a tiny generated set, exported to dynamic ONNX and OpenVINO."""
    root = tmp_path_factory.mktemp("export")
    data = make_detection_dataset(root / "data", n_train=1, n_val=4, imgsz=IMGSZ, seed=1, max_objects=2,
                                  min_size=0.3, max_size=0.6, verbose=False)
    model = _fit_detector(data, FIT_STEPS)
    pt = save_checkpoint({"model": model.state_dict(), "model_yaml": model.yaml, "task": "detect",
                          "nc": len(SHAPE_NAMES), "names": list(SHAPE_NAMES)}, root / "best.pt")
    files = export_model(ExportConfig(weights=pt, include=("onnx", "openvino"), imgsz=IMGSZ, dynamic=True))
    return {"root": root, "data": str(data), "pt": str(pt), **{k: str(v) for k, v in files.items()}}


def test_raw_outputs_equal_across_backends(trained):
    """Network outputs on the validation images agree within rounding scaled to their size (boxes ~ pixels,
    objectness and class scores ~ 1), for every backend."""
    from yolobone.data.datasets import check_dataset, create_dataloader

    loader, _ = create_dataloader(check_dataset(trained["data"])["val"], IMGSZ, 4, 32, nc=len(SHAPE_NAMES))
    x = next(iter(loader))[0].float() / 255
    ref = load_backend(trained["pt"], "cpu")(x)
    for kind in ("onnx", "openvino"):
        got = load_backend(trained[kind], "cpu")(x)
        assert got.shape == ref.shape
        assert_close_scaled(got[..., :4], ref[..., :4], rtol=0.0)
        assert_close_scaled(got[..., 4:], ref[..., 4:], rtol=0.0)


def _val(trained, weights: str, name: str, conf: float) -> dict:
    from yolobone.engine.detect.val_run import ValConfig, run_val

    report = run_val(ValConfig(weights=weights, data=trained["data"], imgsz=IMGSZ, batch_size=4, device="cpu",
                               workers=0, plots=False, save_json=True, conf_thres=conf,
                               project=str(trained["root"] / "val"), name=name))
    records = json.loads(report.json_path.read_text())
    rows = np.array([[r["category_id"], *r["bbox"], r["score"]] for r in records]).reshape(-1, 6)
    return {"map": report.result.map50_95, "map50": report.result.map50, "rows": rows}


def _match(ref: np.ndarray, got: np.ndarray, tol: float) -> None:
    """The same detections: equal count, and each row of ref (cls, 4 coords, score) has a row of got with the same
    class, coordinates within tol and a score within 1e-3."""
    assert len(ref) == len(got), (len(ref), len(got))
    for row in ref:
        same = got[(got[:, 0] == row[0]) & (np.abs(got[:, 1:5] - row[1:5]).max(1) <= tol)
                   & (np.abs(got[:, 5] - row[5]) <= 1e-3)]
        assert len(same), f"no match within {tol} for {row}"


def test_val_map_equal_across_backends(trained):
    """mAP of a model that has learned something, at a confidence threshold inside a wide gap of its scores."""
    conf = _separated_threshold(_val(trained, trained["pt"], "pt_low", LOW_CONF)["rows"][:, 5])
    ref = _val(trained, trained["pt"], "pt", conf)
    assert len(ref["rows"]) > 0 and ref["map50"] > 0.3  # it has learned the shapes it was fitted on
    for kind in ("onnx", "openvino"):
        got = _val(trained, trained[kind], kind, conf)
        assert abs(got["map"] - ref["map"]) <= 1e-3 and abs(got["map50"] - ref["map50"]) <= 1e-3
        _match(ref["rows"], got["rows"], tol=0.01 * IMGSZ)


def _detect_txt(trained, weights: str, name: str, conf: float) -> dict:
    out = trained["root"] / "detect"
    rc = detect.main(["--weights", weights, "--source", str(Path(trained["data"]).parent / "images" / "val"),
                      "--imgsz", str(IMGSZ), "--conf-thres", str(conf), "--max-det", "30", "--device", "cpu",
                      "--save-txt", "--save-conf", "--nosave", "--project", str(out), "--name", name])
    assert rc == 0
    return {f.stem: np.array([[float(v) for v in line.split()] for line in f.read_text().splitlines()]).reshape(-1, 6)
            for f in (out / name / "labels").glob("*.txt")}


def test_detect_boxes_agree_within_1px(trained):
    low = _detect_txt(trained, trained["pt"], "pt_low", LOW_CONF)
    conf = _separated_threshold(np.concatenate([rows[:, 5] for rows in low.values()]))
    ref = _detect_txt(trained, trained["pt"], "pt", conf)
    assert sum(len(v) for v in ref.values()) > 0
    for kind in ("onnx", "openvino"):
        got = _detect_txt(trained, trained[kind], kind, conf)
        assert set(got) == set(ref)
        for stem, rows in ref.items():  # normalised cx cy w h: 1 px of the 64 px image = 1 / 64
            _match(rows, got[stem], tol=1 / IMGSZ)


def test_static_export_runs_at_its_own_shape(trained, tmp_path, capture_log):
    """A static export validates at its batch and size (no rect batches), and the Detector pads to its size."""
    pt = tmp_path / "s.pt"
    pt.write_bytes(Path(trained["pt"]).read_bytes())
    files = export_model(ExportConfig(weights=pt, include=("torchscript", "onnx"), imgsz=IMGSZ, batch_size=2))
    with capture_log() as lines:
        rc = val.main(["--weights", str(files["onnx"]), "--data", trained["data"], "--imgsz", "96", "--device", "cpu",
                       "--workers", "0", "--project", str(tmp_path / "v")])
    assert rc == 0 and any("static shape" in m for m in lines)
    from yolobone.engine.detect.predictor import Detector

    images = str(Path(trained["data"]).parent / "images" / "val")
    low = Detector(trained["pt"], device="cpu").predict(images, imgsz=IMGSZ, conf=LOW_CONF, max_det=30)
    conf = _separated_threshold(np.concatenate([r.scores for r in low]))
    res = Detector(files["torchscript"], device="cpu").predict(images, imgsz=IMGSZ, conf=conf, max_det=30)
    ref = Detector(trained["pt"], device="cpu").predict(images, imgsz=IMGSZ, conf=conf, max_det=30)
    assert [r.input_shape for r in res] == [(IMGSZ, IMGSZ)] * len(ref)
    for a, b in zip(res, ref):  # square images: the static letterbox equals the PyTorch one
        assert len(a) == len(b) and np.allclose(a.boxes, b.boxes, atol=1.0)


def test_int8_export_prints_map_before_and_after(trained, tmp_path, capture_log):
    pt = tmp_path / "q.pt"
    pt.write_bytes(Path(trained["pt"]).read_bytes())
    with capture_log() as lines:
        rc = export.main(["--weights", str(pt), "--include", "onnx", "--imgsz", str(IMGSZ), "--int8", "--data",
                          trained["data"], "--int8-images", "4", "--workers", "0"])
    assert rc == 0
    assert any(m.startswith("INT8 ONNX validation mAP50-95: FP32 ") for m in lines)
    proto = onnx.load(str(tmp_path / "q_int8.onnx"))
    assert any(n.op_type == "QuantizeLinear" for n in proto.graph.node)
    backend = load_backend(tmp_path / "q_int8.onnx", "cpu")
    assert backend.meta.precision == "int8" and backend.names == list(SHAPE_NAMES)


# ------------------------------------------------------------------------------ classification, metadata, errors
def test_classifier_export_validates_and_predicts(tmp_path):
    from yolobone.engine.classify.predict_run import predict_classifier
    from yolobone.engine.classify.val_run import val_classifier
    from yolobone.data.synthetic import make_classification_dataset

    root = make_classification_dataset(tmp_path / "cls", n_train_per_class=1, n_val_per_class=2, imgsz=32,
                                       verbose=False)
    torch.manual_seed(0)
    model = build_model(str(ROOT / "configs/cls/yolov5n-cls.yaml"), nc=len(SHAPE_NAMES))
    save_checkpoint({"model": model.state_dict(), "model_yaml": model.yaml, "task": "classify",
                     "nc": len(SHAPE_NAMES), "names": list(SHAPE_NAMES)}, tmp_path / "c.pt")
    files = export_model(ExportConfig(weights=tmp_path / "c.pt", include=("onnx", "openvino"), imgsz=32))
    ref = val_classifier(weights=tmp_path / "c.pt", data=root, imgsz=32, batch_size=4, device="cpu", workers=0,
                         plots=False, verbose=False)
    for f in files.values():
        got = val_classifier(weights=f, data=root, imgsz=32, batch_size=4, device="cpu", workers=0, plots=False,
                             verbose=False)
        # an untrained net: an image whose two best logits are within rounding may rank them either way on
        # another runtime, so one such flip is allowed; the logits themselves are compared below
        n = len(ref.ranked)
        assert (got.ranked[:, 0] != ref.ranked[:, 0]).sum() <= 1 and abs(got.top1 - ref.top1) <= 1 / n + 1e-9
        x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        assert_close_scaled(load_backend(f, "cpu")(x), load_backend(tmp_path / "c.pt", "cpu")(x), rtol=0.0)
        preds = predict_classifier(weights=f, source=str(Path(root) / "val" / SHAPE_NAMES[0]), imgsz=32,
                                   verbose=False).predictions
        assert preds and preds[0].name in SHAPE_NAMES


def test_foreign_onnx_falls_back_to_numbered_names(tmp_path, log_lines):
    model = export_ready(build_model(str(ROOT / "configs/yolov5n.yaml"), nc=3), torch.device("cpu"), False)
    x = dummy_input(1, (64, 64), torch.device("cpu"), False)
    _torch_onnx_export(model, (x,), str(tmp_path / "f.onnx"))  # plain torch.onnx.export: no metadata
    backend = load_backend(tmp_path / "f.onnx", "cpu")
    assert (backend.task, backend.names, backend.meta.imgsz) == ("detect", ["0", "1", "2"], (64, 64))
    assert any("carries no yolobone metadata" in m for m in log_lines)


def test_torch_backend_is_fused_channels_last_and_leaves_the_model_alone():
    model = build_model(str(ROOT / "configs/yolov5n.yaml"), nc=NC).train()
    backend = TorchBackend(model, torch.device("cpu"))
    assert model.training and hasattr(model.model[0], "bn")  # a copy was fused, not the caller's model
    assert not hasattr(backend.model.model[0], "bn") and backend.channels_last
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert_close_scaled(backend(x), model.eval()(x)[0], rtol=0.0)


def test_unexportable_block_names_layer_and_op(tmp_path):
    @register_block(channels=scaled_out)
    class SpectralMix(nn.Module):  # rfft2 has no ONNX symbolic in opset 17
        def __init__(self, c1: int, c2: int):
            super().__init__()
            self.cv = nn.Conv2d(c1, c2, 1)

        def forward(self, x):
            return self.cv(x) + torch.fft.rfft2(x).abs().mean()

    try:
        cfg = {"nc": 2, "depth_multiple": 1.0, "width_multiple": 1.0, "anchors": [[10, 13, 16, 30, 33, 23]],
               "backbone": [[-1, 1, "Conv", [8, 3, 2]], [-1, 1, "SpectralMix", [8]], [-1, 1, "Conv", [16, 3, 2]],
                            [-1, 1, "Conv", [16, 3, 2]]],
               "head": [[[3], 1, "Detect", ["nc", "anchors"]]]}
        model = build_model(cfg)
        save_checkpoint({"model": model.state_dict(), "model_yaml": model.yaml, "task": "detect", "nc": 2,
                         "names": ["a", "b"]}, tmp_path / "x.pt")
        with pytest.raises(ExportError, match=r"layer 1 \(SpectralMix\): op aten::fft_rfft2"):
            export_model(ExportConfig(weights=tmp_path / "x.pt", include=("onnx",), imgsz=64))
    finally:
        _REGISTRY.pop("SpectralMix", None)


def test_errors_are_one_line(tmp_path, monkeypatch, capsys):
    model = build_model(str(ROOT / "configs/yolov5n.yaml"), nc=NC)
    save_checkpoint({"model": model.state_dict(), "model_yaml": model.yaml, "task": "detect", "nc": NC,
                     "names": ["a", "b"]}, tmp_path / "w.pt")
    export_onnx(export_ready(model, torch.device("cpu"), False), dummy_input(1, (64, 64), torch.device("cpu"), False),
                tmp_path / "w.onnx", model_meta(model, imgsz=(64, 64), dynamic=False))
    with pytest.raises(BackendError, match="unknown format"):
        backend_kind(tmp_path / "w.tfjs")
    with pytest.raises(BackendError, match="exported for 64x64 inputs without --dynamic"):
        load_backend(tmp_path / "w.onnx", "cpu")(torch.zeros(1, 3, 96, 96))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(BackendError, match="pip install onnxruntime"):
        load_backend(tmp_path / "w.onnx", "cpu")
    for argv, needle in ((["--half", "--device", "cpu"], "--half exports FP16 on a CUDA device only"),
                         (["--int8"], "--int8 needs --data")):
        assert export.main(["--weights", str(tmp_path / "w.pt"), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1


def test_compare_latency_column_per_backend(tmp_path):
    from yolobone.engine.compare import CompareError, compare

    data = make_detection_dataset(tmp_path / "data", n_train=2, n_val=2, imgsz=64, verbose=False)
    res = compare(cfgs=[str(ROOT / "configs/yolov5n.yaml")], data=str(data), imgsz=64, profile_only=True,
                  backends=["torch", "onnx", "openvino"], pareto_backend="onnx", latency_runs=2, device="cpu",
                  project=str(tmp_path / "cmp"))
    latency = res.rows[0].profile.latency_ms
    assert set(latency) == {"cpu", "onnx", "openvino"} and all(v > 0 for v in latency.values())
    header = next(line for line in res.results_md.read_text().splitlines() if line.startswith("| config"))
    assert "| CPU ms | ONNX ms | OPENVINO ms |" in header
    with pytest.raises(CompareError, match="--pareto-backend 'openvino'"):
        compare(cfgs=[str(ROOT / "configs/yolov5n.yaml")], data=str(data), backends=["torch", "onnx"],
                pareto_backend="openvino", project=str(tmp_path / "cmp2"))
