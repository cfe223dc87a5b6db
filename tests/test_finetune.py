"""Fine-tuning controls: --backbone-lr (YOLOv5's three groups, twice) and staged unfreezing (--freeze backbone
--freeze-epochs N): frozen BatchNorm in eval mode, the switch, the EMA, and an exact --resume across the switch."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from yolobone.cli.train import parse_opt
from yolobone.engine.core.optim import apply_warmup, build_optimizer, describe_optimizer
from yolobone.engine.core.options import TrainConfigError
from yolobone.engine.detect.options import DetectOptions
from yolobone.engine.train import train
from yolobone.models.freeze import backbone_layer_count, backbone_parameters
from yolobone.models.yolo import DetectionModel

from tests.tiny_runs import assert_same_weights, tiny_detection_files, train_cut_after_first_epoch

ROOT = Path(__file__).resolve().parents[1]
STAGED = dict(epochs=2, batch_size=8, imgsz=64, device="cpu", workers=0, noval=True, noplots=True,
              noautoanchor=True, deterministic=True, freeze=["backbone"], freeze_epochs=1, backbone_lr=0.1)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    data, cfg = tiny_detection_files(root)
    return {"root": root, "data": str(data), "cfg": str(cfg)}


def _backbone_state(model: nn.Module) -> dict:
    n = backbone_layer_count(model)
    return {k: v.detach().clone() for k, v in model.state_dict().items() if int(k.split(".")[1]) < n}


def _backbone_norms(model: nn.Module) -> list:
    n = backbone_layer_count(model)
    return [m for layer in list(model.model)[:n] for m in layer.modules() if isinstance(m, nn.BatchNorm2d)]


def test_backbone_lr_keeps_yolov5s_three_groups_per_section(work) -> None:
    model = DetectionModel(work["cfg"], nc=2)
    backbone = backbone_parameters(model)
    opt = build_optimizer(model, "SGD", lr=0.01, momentum=0.937, decay=5e-4, scaled=backbone, lr_scale=0.1)
    assert len(opt.param_groups) == 6
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.01] * 3 + [0.001] * 3)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 5e-4, 0.0] * 2
    ids = {id(p) for p in backbone}
    assert all(id(p) in ids for g in opt.param_groups[3:] for p in g["params"])
    assert not any(id(p) in ids for g in opt.param_groups[:3] for p in g["params"])
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    assert "; backbone at lr x 0.1: " in describe_optimizer(opt, 0.01)
    for g in opt.param_groups:
        g["initial_lr"] = g["lr"]
    apply_warmup(opt, 0, 100, 1.0, warmup_bias_lr=0.1, warmup_momentum=0.8, momentum=0.937, batch_size=8)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.0, 0.0, 0.01, 0.0, 0.0])
    plain = build_optimizer(model, "SGD", lr=0.01, scaled=backbone, lr_scale=1.0)
    assert len(plain.param_groups) == 3  # multiplier 1: exactly YOLOv5's optimizer


def test_options_and_flags() -> None:
    opt = parse_opt(["--freeze", "backbone", "--freeze-epochs", "3", "--backbone-lr", "0.1", "--pretrained", "false"])
    assert (opt.freeze_epochs, opt.backbone_lr, opt.pretrained) == (3, 0.1, False)
    assert parse_opt([]).pretrained is True and parse_opt(["--pretrained"]).pretrained is True
    with pytest.raises(TrainConfigError, match="--freeze-epochs 2: expected together with --freeze"):
        DetectOptions(freeze_epochs=2).check()
    with pytest.raises(TrainConfigError, match="--backbone-lr 0: expected > 0"):
        DetectOptions(backbone_lr=0).check()


def test_staged_unfreezing_switch_bn_and_ema(work, log_lines) -> None:
    start, seen = {}, {}

    def at_start(t) -> None:
        start.update(_backbone_state(t.model))

    def at_epoch_end(t) -> None:
        seen[t.epoch] = dict(state=_backbone_state(t.model), bn_training=[m.training for m in _backbone_norms(t.model)],
                             trainable=[p.requires_grad for p in backbone_parameters(t.model)],
                             lr=[g["lr"] for g in t.optimizer.param_groups])

    r = train(dict(STAGED, cfg=work["cfg"], data=work["data"], project=str(work["root"] / "runs"), name="switch"),
              callbacks={"on_train_start": at_start, "on_train_epoch_end": at_epoch_end})
    frozen, thawed = seen[0], seen[1]
    assert not any(frozen["trainable"]) and not any(frozen["bn_training"])
    assert all(torch.equal(start[k], v) for k, v in frozen["state"].items()), "a frozen tensor or BN statistic moved"
    assert all(thawed["trainable"]) and all(thawed["bn_training"])
    moved = [k for k, v in thawed["state"].items() if not torch.equal(start[k], v)]
    assert any(k.endswith(".weight") for k in moved) and any(k.endswith("running_mean") for k in moved)
    for epoch in (frozen, thawed):
        assert epoch["lr"][3:] == pytest.approx([0.1 * v for v in epoch["lr"][:3]], rel=1e-9)
    n_frozen = len(backbone_parameters(r.model))
    assert f"Unfreezing {n_frozen} parameter tensors at epoch 1 (frozen for the first 1 epochs)" in log_lines
    ema = torch.load(r.last, weights_only=True)["model"]
    assert any(not torch.equal(ema[k], start[k].float()) for k in start if k.endswith(".weight"))


@pytest.mark.slow
def test_resume_across_the_unfreeze_epoch_is_exact(work) -> None:
    base = dict(STAGED, cfg=work["cfg"], data=work["data"], project=str(work["root"] / "runs"))
    full = train(base, name="full")
    last = train_cut_after_first_epoch(base, "cut")
    resumed = train(DetectOptions(resume=str(last), device="cpu", workers=0))
    assert resumed.loss_history == [full.loss_history[1]]
    assert_same_weights(full.last, resumed.last)


@pytest.mark.slow
def test_staged_unfreezing_under_ddp(work, tmp_path) -> None:
    """Two gloo processes: DDP registers only trainable parameters, so the switch wraps the model again."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "train.py",
           "--cfg", work["cfg"], "--data", work["data"], "--epochs", "2", "--batch-size", "8", "--imgsz", "64",
           "--device", "cpu", "--workers", "0", "--project", str(tmp_path / "runs"), "--noplots", "--noval",
           "--freeze", "backbone", "--freeze-epochs", "1", "--backbone-lr", "0.1"]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Unfreezing" in p.stderr and "at epoch 1 (frozen for the first 1 epochs)" in p.stderr
    assert torch.load(tmp_path / "runs" / "exp" / "weights" / "last.pt", weights_only=True)["epoch"] == -1
