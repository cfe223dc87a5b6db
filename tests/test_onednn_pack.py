"""CPU inference packing (yolobone/engine/backends/onednn_pack.py): fused conv + activation blocks as one oneDNN call."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml

from yolobone.engine.backends import TorchBackend
from yolobone.engine.backends.onednn_pack import ConvActPack, PackedConvAct, pack_unavailable_reason, packable
from yolobone.engine.detect.val_run import as_backend
from yolobone.models import DetectionModel
from tolerance import assert_close_scaled

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
needs_onednn = pytest.mark.skipif(pack_unavailable_reason() is not None, reason=str(pack_unavailable_reason()))


def _model(act: str = "nn.SiLU()", nc: int = 3) -> DetectionModel:
    d = yaml.safe_load((ROOT / "configs/yolov5n.yaml").read_text())
    d.update(depth_multiple=0.33, width_multiple=0.125, nc=nc, activation=act)
    torch.manual_seed(0)
    m = DetectionModel(d).eval()
    for p in m.parameters():  # non-trivial BatchNorm statistics, so folding and packing both matter
        p.data.add_(torch.randn_like(p) * 0.05)
    return m


def _packed_blocks(backend: TorchBackend) -> int:
    return sum(isinstance(b.__dict__.get("forward"), PackedConvAct) for b in backend._model.modules())


@needs_onednn
@pytest.mark.parametrize("act,channels_last", [("nn.SiLU()", True), ("nn.SiLU()", False), ("nn.LeakyReLU(0.1)", True),
                                                ("nn.ReLU()", True), ("nn.Hardswish()", True)])
def test_packed_outputs_match_eager(act, channels_last):
    model = _model(act)
    eager = TorchBackend(model, CPU, pack=False, channels_last=channels_last)
    packed = TorchBackend(model, CPU, channels_last=channels_last)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    assert_close_scaled(packed(x), eager(x), rel=1e-4)  # the first call runs eagerly and packs
    n = len(packed.pack.blocks) + len(packed.pack.convs)
    assert len(packed.pack.blocks) > 10 and len(packed.pack.convs) == 3  # + the Detect head's three 1x1 convs
    assert _packed_blocks(packed) == n
    assert_close_scaled(packed(x * 0.5), eager(x * 0.5), rel=1e-4)  # packed calls, not a cached output
    other = torch.rand(1, 3, 96, 64, generator=torch.Generator().manual_seed(2))  # not the packing shape
    assert_close_scaled(packed(other), eager(other), rel=1e-4)
    assert not packed.pack.failed


@needs_onednn
def test_backbone_convs_are_packed():
    """A torchvision backbone's own convs (activation a separate module) run on once-reordered weights too."""
    from yolobone.models import build_model
    torch.manual_seed(0)
    model = build_model(str(ROOT / "configs/yolov5s-mobilenetv2.yaml"), nc=3).eval()
    eager, packed = TorchBackend(model, CPU, pack=False), TorchBackend(model, CPU)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    assert_close_scaled(packed(x), eager(x), rel=1e-4)
    assert len(packed.pack.convs) > 40 and _packed_blocks(packed) == len(packed.pack.blocks) + len(packed.pack.convs)
    assert_close_scaled(packed(x * 0.5), eager(x * 0.5), rel=1e-4)
    packed.model  # unpacking restores nn.Conv2d's own forward
    assert all("forward" not in c.__dict__ for c in packed.pack.convs)


@needs_onednn
def test_model_property_hands_out_the_plain_fused_model():
    b = TorchBackend(_model(), CPU)
    x = torch.rand(1, 3, 64, 64)
    want = b(x)
    b(x)
    assert b.pack.packed
    m = b.model  # unpacks: a model the caller can copy, trace, export or compile
    assert not b.pack.packed and _packed_blocks(b) == 0
    traced = torch.jit.trace(copy.deepcopy(m), x.contiguous(memory_format=torch.channels_last), check_trace=False)
    assert_close_scaled(traced(x.contiguous(memory_format=torch.channels_last))[0], want, rel=1e-4)
    assert_close_scaled(b(x), want, rel=1e-4)
    b(x)
    assert b.pack.packed  # packed again by the next runs


@needs_onednn
def test_packing_failure_runs_eagerly(monkeypatch, log_lines):
    def broken(self, x):
        raise RuntimeError("could not create a primitive\ndetails")

    monkeypatch.setattr(PackedConvAct, "__call__", broken)
    model = _model()
    b = TorchBackend(model, CPU)
    x = torch.rand(1, 3, 64, 64)
    want = TorchBackend(model, CPU, pack=False)(x)
    for _ in range(3):
        assert_close_scaled(b(x), want, rel=1e-4)
    warnings = [m for m in log_lines if "oneDNN packing: cannot be used here" in m]
    assert len(warnings) == 1 and "could not create a primitive" in warnings[0] and "\n" not in warnings[0]
    assert b.pack.failed and _packed_blocks(b) == 0


def test_only_fused_blocks_with_a_known_activation_are_packed():
    unfused = _model()
    assert not any(packable(m) for m in unfused.modules())  # BatchNorm still separate: training-time model
    gelu = _model("nn.GELU()").fuse()
    assert not any(packable(m) for m in gelu.modules())  # no oneDNN post-op in the table: stays eager
    assert sum(packable(m) for m in _model().fuse().modules()) > 10
    assert not ConvActPack(unfused).blocks  # its convs alone may still be packed; BatchNorm stays a separate op
    assert ConvActPack(nn.Sequential(nn.Linear(2, 2))).failed  # nothing to pack: plain eager runs


def test_half_cuda_and_caller_models_are_not_packed():
    assert TorchBackend(_model(), CPU, half=True).pack is not None  # half is CUDA-only: a CPU run stays float32
    model = _model().fuse()
    b = as_backend(model, CPU)  # val.py on a caller's model: runs it as it is, never rewrites its forwards
    b(torch.rand(1, 3, 64, 64))
    b(torch.rand(1, 3, 64, 64))
    assert b.pack is None
    assert all(not isinstance(m.__dict__.get("forward"), PackedConvAct) for m in model.modules())


def test_compare_latency_times_the_deployed_backend():
    from yolobone.engine.compare.profile import deployed_torch
    from yolobone.utils.profiling import median_latency_ms

    model, calls = _model(), []

    def runner(m, device):
        backend = deployed_torch(m, device)
        calls.append(backend)
        return lambda x: calls.append(tuple(x.shape)) or backend(x)

    ms = median_latency_ms(model, 64, CPU, runs=3, warmup=2, runner=runner)
    backend = calls[0]
    assert ms > 0 and isinstance(backend, TorchBackend) and calls[1:] == [(1, 3, 64, 64)] * 5
    assert backend.pack is not None and backend.channels_last  # what detect.py runs on the CPU
    assert "forward" not in model.model[0].__dict__  # the caller's (unfused) model is untouched
