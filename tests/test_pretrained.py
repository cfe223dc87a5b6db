"""ImageNet backbones by default, offline: downloads from a local HTTP server (verified, hash mismatch, cut
transfer: nothing corrupt is cached), the one-line offline error, a shipped ResNet config training from the torch hub
cache by default, --pretrained false, and model summaries / profiles that read no weights."""
from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import socket
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Collection, Dict, Iterator, Tuple

import pytest
import timm
import torch
import yaml
from torchvision.models import ShuffleNet_V2_X0_5_Weights, get_model

from yolobone.cli.train import main as train_main
from yolobone.data.synthetic import make_detection_dataset
from yolobone.engine.train import train
from yolobone.models.backbones.pretrained import from_scratch
from yolobone.models.backbones.timm_wrap import Timm
from yolobone.models.compose import with_backbone
from yolobone.models.registry import ModelConfigError
from yolobone.models.yolo import DetectionModel
from yolobone.models.yolo import main as yolo_main

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = "or train from scratch with --pretrained false (weights: false in the YAML)"


@contextlib.contextmanager
def serve(files: Dict[str, bytes], cut: Collection[str] = ()) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 for `files` (name -> bytes); for names in `cut` it announces the full
    Content-Length, sends half the body and hangs up. Yields the base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:len(body) // 2] if self.path.lstrip("/") in cut else body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _state_bytes(state: Dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _random_state(name: str, seed: int = 1) -> Dict[str, torch.Tensor]:
    """A torchvision model's full state dict (classifier included, as the release files are), seeded."""
    torch.manual_seed(seed)
    return get_model(name).state_dict()


def _shufflenet_files(tmp_path: Path) -> Tuple[str, str]:
    """(neck, backbone) files: the YOLOv5n neck at width 0.125 and ShuffleNetV2 x0.5 with weights: true."""
    neck = yaml.safe_load((ROOT / "configs/yolov5n.yaml").read_text())
    neck["width_multiple"] = 0.125
    (tmp_path / "neck.yaml").write_text(yaml.safe_dump(neck, sort_keys=False))
    rows = [[-1, 1, "ShuffleNetV2", [0.5, True]], [0, 1, "Index", [0]], [0, 1, "Index", [1]], [0, 1, "Index", [2]]]
    (tmp_path / "shufflenet05.yaml").write_text(yaml.safe_dump({"backbone": rows}, sort_keys=False))
    return str(tmp_path / "neck.yaml"), str(tmp_path / "shufflenet05.yaml")


def _shufflenet_model(tmp_path: Path) -> DetectionModel:
    return DetectionModel(with_backbone(*_shufflenet_files(tmp_path)), nc=2)


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pretrained_on) -> Path:
    """Pretrained weights on, downloads allowed (only to the local server), an empty torch hub cache."""
    monkeypatch.delenv("YOLOBONE_OFFLINE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_download_is_verified_and_never_leaves_a_corrupt_file(online: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch, log_lines) -> None:
    weights = ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1
    state = _random_state("shufflenet_v2_x0_5")
    body = _state_bytes(state)
    good = f"shufflenet-{hashlib.sha256(body).hexdigest()[:10]}.pth"
    files = {good: body, "shufflenet-0123456789.pth": body, "shufflenet-cut.pth": body}
    with serve(files, cut={"shufflenet-cut.pth"}) as base:
        for name, why in (("shufflenet-0123456789.pth", "does not start with 0123456789, the hash in its name"),
                          ("shufflenet-cut.pth", f"the transfer ended after {len(body) // 2} of {len(body)} bytes")):
            monkeypatch.setattr(weights.value, "url", f"{base}/{name}")
            with pytest.raises(ModelConfigError) as e:
                _shufflenet_model(tmp_path)
            msg = str(e.value)
            assert "\n" not in msg and why in msg and f"put {name} (from {base}/{name}) in {online}/" in msg
            assert msg.endswith(SCRATCH)
            assert not list(online.iterdir()), "a failed download left a file in the cache"
        monkeypatch.setattr(weights.value, "url", f"{base}/{good}")
        model = _shufflenet_model(tmp_path)
    assert [f.name for f in online.iterdir()] == [good] and (online / good).read_bytes() == body
    body_state = model.model[0].body.state_dict()
    assert body_state and all(torch.equal(v, state[k]) for k, v in body_state.items())
    assert any(line.startswith("pretrained: backbone shufflenet05: ") and f"from IMAGENET1K_V1 (file "
               f"{online / good})" in line for line in log_lines)
    _shufflenet_model(tmp_path)  # from the cache now: the server is gone


def test_offline_and_not_cached_is_one_line(online: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture) -> None:
    url = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"
    monkeypatch.setenv("YOLOBONE_OFFLINE", "1")
    with pytest.raises(ModelConfigError) as e:
        DetectionModel(str(ROOT / "configs/yolov5s-resnet50.yaml"))
    assert str(e.value).endswith(
        f"pretrained weights ResNet50_Weights.IMAGENET1K_V2: resnet50-11ad3fa6.pth is not cached and could not be "
        f"downloaded (YOLOBONE_OFFLINE is set): put resnet50-11ad3fa6.pth (from {url}) in {online}/, {SCRATCH}")
    monkeypatch.delenv("YOLOBONE_OFFLINE")
    with socket.socket() as s:  # a port nothing listens on: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1.value, "url", f"http://127.0.0.1:{port}/x-1234.pth")
    data = make_detection_dataset(tmp_path / "data", n_train=2, n_val=1, imgsz=64, verbose=False)
    neck, backbone = _shufflenet_files(tmp_path)
    args = ["--cfg", neck, "--backbone", backbone, "--data", str(data), "--epochs", "1", "--batch-size", "2",
            "--imgsz", "64", "--device", "cpu", "--workers", "0", "--noplots", "--noval", "--noautoanchor",
            "--project", str(tmp_path / "runs")]
    assert train_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x-1234.pth is not cached and could not be downloaded (no connection: " in err[0]
    assert err[0].endswith(SCRATCH) and not list(online.glob("*"))
    assert train_main([*args, "--pretrained", "false"]) == 0  # from scratch: nothing read, nothing downloaded


def test_shipped_resnet_config_trains_from_the_cache_by_default(online: Path, tmp_path: Path, log_lines) -> None:
    state = _random_state("resnet50")
    cached = online / "resnet50-11ad3fa6.pth"
    online.mkdir(parents=True)
    torch.save(state, cached)
    data = make_detection_dataset(tmp_path / "data", n_train=2, n_val=1, imgsz=64, verbose=False)
    loaded = {}

    def at_start(t) -> None:
        body = t.model.model[0].body.state_dict()
        loaded["same"] = bool(body) and all(torch.equal(v.cpu(), state[k]) for k, v in body.items())
        loaded["n"] = len(body)

    r = train(dict(cfg=str(ROOT / "configs/yolov5s-resnet50.yaml"), data=str(data), epochs=1, batch_size=2,
                   imgsz=64, device="cpu", workers=0, noval=True, noplots=True, noautoanchor=True,
                   project=str(tmp_path / "runs")), callbacks={"on_train_start": at_start})
    assert r.epochs_completed == 1 and loaded["same"]
    n = loaded["n"]
    assert any(line.startswith(f"pretrained: backbone resnet50: {n}/{n} tensors from IMAGENET1K_V2 "
                               f"(file {cached}); neck + head: ") for line in log_lines)


def test_timm_weights_download_from_its_url(online: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    state = timm.create_model("convnext_atto").state_dict()
    body = _state_bytes(state)
    name = f"convnext_atto-{hashlib.sha256(body).hexdigest()[:8]}.pth"
    with serve({name: body}) as base:
        monkeypatch.setattr(timm.models, "get_pretrained_cfg", lambda model: SimpleNamespace(
            hf_hub_id=None, hf_hub_filename=None, url=f"{base}/{name}"))
        block = Timm(3, "convnext_atto", True)
    assert block.loaded_weights.origin == f"file {online / name}" and block.loaded_weights.unused == 4  # head.*


def test_summaries_and_profiles_read_no_weights(online: Path, monkeypatch: pytest.MonkeyPatch, capsys,
                                               log_lines) -> None:
    """yolo.py and compare.py --profile-only build shipped pretrained configs with an empty cache and no network."""
    from yolobone.engine.compare.profile import build_for_profile
    monkeypatch.setenv("YOLOBONE_OFFLINE", "1")
    assert yolo_main(["--cfg", str(ROOT / "configs/yolov5s-resnet50.yaml"), "--imgsz", "64"]) == 0
    assert "TorchVision" in capsys.readouterr().out
    model, imgsz = build_for_profile(str(ROOT / "configs/yolov5s-resnet50.yaml"), "detect", 80, 64)
    assert imgsz == 64 and not list(online.parent.glob("**/*.pth"))
    with from_scratch():  # train.py --pretrained false: random init, and the report says so
        DetectionModel(str(ROOT / "configs/yolov5s-resnet50.yaml"))
    assert log_lines[-1].startswith("pretrained: backbone resnet50: 0/") and "random init" in log_lines[-1]


def test_hub_download_is_checked_against_the_blob_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Hugging Face cache names a large file's blob by its sha256: a blob whose bytes differ is removed."""
    import huggingface_hub

    from yolobone.utils.download import DownloadError, download_from_hub
    monkeypatch.delenv("YOLOBONE_OFFLINE", raising=False)
    good, bad = b"weights", b"weights, corrupted"
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / "main"
    blobs.mkdir()
    snapshot.mkdir(parents=True)
    served = {}

    def fake_download(repo_id: str, filename: str) -> str:
        blob = blobs / hashlib.sha256(good).hexdigest()
        blob.write_bytes(served["bytes"])
        link = snapshot / filename
        link.unlink(missing_ok=True)
        link.symlink_to(blob)
        return str(link)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    served["bytes"] = good
    assert download_from_hub("timm/x", "model.safetensors").read_bytes() == good
    served["bytes"] = bad
    with pytest.raises(DownloadError, match="its sha256 differs from the hub's"):
        download_from_hub("timm/x", "model.safetensors")
    assert not list(blobs.iterdir()) and not list(snapshot.iterdir())


def test_compare_passes_pretrained_false(online: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """compare.py --pretrained false: every run trains its backbone from scratch, and the protocol says so."""
    from yolobone.cli.compare import build_parser
    from yolobone.engine.compare import CompareOptions
    from yolobone.engine.compare.protocol import describe_model
    monkeypatch.setenv("YOLOBONE_OFFLINE", "1")
    assert build_parser().parse_args(["--pretrained", "false"]).pretrained is False
    assert CompareOptions(pretrained=False).command().endswith("--pretrained false")
    cfg = str(ROOT / "configs/yolov5s-resnet50.yaml")
    assert describe_model(cfg, "detect", 2, [0], pretrained=False)["pretrained"] == "none (random init)"
    assert "resnet50-11ad3fa6.pth is not cached" in describe_model(cfg, "detect", 2, [0])["error"]
