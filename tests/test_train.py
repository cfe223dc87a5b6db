"""Training pipeline on tiny generated data: outputs, checkpoints, exact resume, bad data, CLI errors, DDP."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.helpers import tiny_cfg
from yolobone.engine.core.loggers import RunLogger, csv_header, csv_row
from yolobone.engine.detect.task import RESULT_KEYS
from yolobone.engine.detect.options import DetectOptions
from yolobone.engine.train import train
from yolobone.models import load_model
from yolobone.models.parse import load_model_yaml
from yolobone.data.synthetic import make_detection_dataset

from tests.tiny_runs import assert_same_weights, train_cut_after_first_epoch

ROOT = Path(__file__).resolve().parents[1]
NO_AUG = dict(mosaic=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, fliplr=0.0, translate=0.0, scale=0.0)
# One batch per epoch holding the whole tiny train set, so epoch 2's loss is measured after one optimizer step on
# the same images (batch 48 >= 43: no accumulation towards the nominal 64; Adam moves every weight from step 1).
FAST = dict(epochs=2, batch_size=48, imgsz=64, device="cpu", workers=0, optimizer="Adam",
            hyp=dict(NO_AUG, warmup_epochs=0.0, lr0=0.001))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    kw = dict(n_val=4, imgsz=64, max_objects=3, min_size=0.2, max_size=0.6, verbose=False)
    data = make_detection_dataset(root / "data", n_train=48, **kw)
    small = make_detection_dataset(root / "small", n_train=16, **kw)
    return {"root": root, "data": str(data), "small": str(small), "cfg": tiny_cfg(root / "tiny.yaml")}


@pytest.fixture(scope="module")
def first_run(work):
    """2 epochs of a yolov5n-layout model (width 0.125) with plots: the run most tests inspect."""
    return train(dict(FAST, cfg=work["cfg"], data=work["data"], project=str(work["root"] / "runs"), name="exp"))


def test_two_epochs_loss_decreases_and_outputs(first_run, work):
    r = first_run
    assert r.epochs_completed == 2 and len(r.loss_history) == 2
    assert sum(r.loss_history[1]) < sum(r.loss_history[0])
    assert r.save_dir == work["root"] / "runs" / "exp"
    for name in ("weights/last.pt", "weights/best.pt", "hyp.yaml", "opt.yaml", "results.csv", "results.png",
                 "labels.jpg", "train_batch0.jpg", "confusion_matrix.png", "PR_curve.png"):
        assert (r.save_dir / name).is_file(), name
    assert list((r.save_dir).glob("events.out.tfevents.*")), "TensorBoard event file"
    rows = list(csv.reader((r.save_dir / "results.csv").open()))
    assert [h.strip() for h in rows[0]] == ["epoch", *RESULT_KEYS]
    assert [int(float(row[0])) for row in rows[1:]] == [0, 1]
    train_losses = [float(v) for row in rows[1:] for v in row[1:4]]
    assert train_losses == pytest.approx([v for epoch in r.loss_history for v in epoch], rel=1e-4)
    assert yaml.safe_load((r.save_dir / "hyp.yaml").read_text())["lr0"] == 0.001
    assert yaml.safe_load((r.save_dir / "opt.yaml").read_text())["epochs"] == 2
    assert r.final is not None and r.final.seen == 4 and set(r.final.speed) == {"pre", "inf", "nms"}


def test_lr_schedule_lags_one_epoch_as_yolov5(first_run):
    """Without warmup, epochs 0 and 1 both train at lr0 x lf(0): YOLOv5 v7.0 rewinds its scheduler once."""
    with (first_run.save_dir / "results.csv").open() as f:
        rows = [{k.strip(): float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    assert [r["x/lr1"] for r in rows] == pytest.approx([0.001, 0.001])


def test_checkpoint_weights_only_and_contract(first_run):
    ckpt = torch.load(first_run.last, map_location="cpu", weights_only=True)
    for key in ("model", "model_yaml", "task", "nc", "names", "epoch", "best_fitness", "ema", "updates",
                "optimizer", "hyp", "opt"):
        assert key in ckpt, key
    assert ckpt["task"] == "detect" and ckpt["nc"] == 6 and ckpt["epoch"] == -1  # final: stripped
    assert ckpt["optimizer"] is None and ckpt["ema"] is None and ckpt["resume_state"] is None
    assert all(v.dtype == torch.float32 for v in ckpt["model"].values() if v.is_floating_point())
    assert len(ckpt["model_yaml"]["anchors"]) == 3
    model = load_model(first_run.last)
    assert model.names == ["circle", "square", "triangle", "star", "cross", "ring"]
    out, _ = model(torch.zeros(1, 3, 64, 64))
    assert out.shape[-1] == 11


@pytest.mark.slow
def test_resume_after_epoch_1_matches_uninterrupted(work, first_run):
    # default hyp (warmup, mosaic, HSV, flips) and multi-scale: the RNG streams all matter here
    base = dict(cfg=work["cfg"], data=work["small"], epochs=2, batch_size=8, imgsz=64, device="cpu", workers=0,
                multi_scale=True, noval=True, noplots=True, deterministic=True, project=str(work["root"] / "runs"))

    full = train(base, name="full")
    last = train_cut_after_first_epoch(base, "cut")
    assert torch.load(last, weights_only=True)["epoch"] == 0
    # a kill between logging epoch 1 and saving last.pt: resume repeats epoch 1 and must not log it twice
    csv_file = last.parent.parent / "results.csv"
    lines = csv_file.read_text().splitlines(keepends=True)
    csv_file.write_text("".join(lines) + lines[-1].replace("0,", "1,", 1))
    resumed = train(DetectOptions(resume=str(last), device="cpu", workers=0))
    assert [int(float(row[0])) for row in list(csv.reader(csv_file.open()))[1:]] == [0, 1]
    assert resumed.save_dir == last.parent.parent and resumed.epochs_completed == 2
    assert resumed.loss_history == [full.loss_history[1]]
    assert_same_weights(full.last, resumed.last)
    # a finished run has nothing to resume
    with pytest.raises(ValueError, match="nothing to resume"):
        train(DetectOptions(resume=str(resumed.last), device="cpu"))


def test_wrapper_backbone_trains(work, tmp_path):
    """A torchvision-wrapped backbone (ShuffleNetV2 x0.5) with a narrow YOLOv5 neck."""
    d = load_model_yaml(ROOT / "configs/yolov5s-shufflenetv2.yaml").data  # a composition: neck + backbone file
    d["backbone"][0][3] = [0.5, False, False]
    d["width_multiple"] = 0.125
    cfg = tmp_path / "shufflenet-tiny.yaml"
    cfg.write_text(yaml.safe_dump(d, sort_keys=False))
    r = train(dict(FAST, cfg=str(cfg), data=work["data"], project=str(tmp_path / "runs"), noplots=True))
    assert sum(r.loss_history[1]) < sum(r.loss_history[0])
    assert load_model(r.last).yaml["backbone"][0][2] == "ShuffleNetV2"


def test_bad_items_reported_transfer_and_freeze(work, first_run, tmp_path, log_lines):
    """Corrupt image, malformed label line and class id >= nc are skipped and named; a truncated JPEG trains as
    decoded and its file is left byte for byte as it was; --weights transfers the matching tensors; --freeze
    backbone keeps the backbone (weights and BatchNorm statistics) as loaded."""
    data = make_detection_dataset(tmp_path / "bad", n_train=6, n_val=2, imgsz=64, verbose=False)
    corrupt = tmp_path / "bad/images/train/000001.jpg"
    corrupt.write_bytes(b"this is not a jpeg")
    malformed = tmp_path / "bad/labels/train/000002.txt"
    malformed.write_text("1 0.5 0.5 0.2\n")
    out_of_range = tmp_path / "bad/labels/train/000003.txt"
    out_of_range.write_text("7 0.5 0.5 0.2 0.2\n")
    truncated = tmp_path / "bad/images/train/000004.jpg"
    truncated.write_bytes(truncated.read_bytes()[:-200])
    dataset_bytes = {f: f.read_bytes() for f in (tmp_path / "bad").rglob("*") if f.is_file()}
    r = train(dict(cfg=work["cfg"], data=str(data), epochs=1, batch_size=4, imgsz=64, device="cpu", workers=0,
                   weights=str(first_run.last), freeze=["backbone"], project=str(tmp_path / "runs"), noplots=True))
    assert r.epochs_completed == 1 and r.last.is_file()
    reported = {Path(f).name: why for f, why in r.problems}
    assert "corrupt" in reported["000001.jpg"]
    assert "000002.txt" in reported and "000003.txt" in reported and ">= nc" in reported["000003.txt"]
    assert "truncated JPEG" in reported["000004.jpg"]
    assert all(f.read_bytes() == b for f, b in dataset_bytes.items()), "training modified the dataset"
    text = "\n".join(log_lines)
    assert all(name in text for name in ("000001.jpg", "000002.txt", "000003.txt"))
    before = torch.load(first_run.last, weights_only=True)["model"]
    after = torch.load(r.last, weights_only=True)["model"]
    n = len(before)  # with --cfg given, YOLOv5 keeps the YAML's anchors: every tensor but Detect.anchors moves
    assert f"Transferred {n - 1}/{n} items from {first_run.last}" in text
    n_back = sum(int(k.split(".")[1]) < 10 for k in before)  # yolov5n layout: rows 0-9 are the backbone
    assert f"pretrained: backbone: {n_back}/{n_back} tensors from checkpoint {first_run.last}; neck + head: " \
           f"{n - n_back - 1}/{n - n_back} tensors from checkpoint {first_run.last}, 1 random init" in text
    n_backbone = len(yaml.safe_load(Path(work["cfg"]).read_text())["backbone"])
    backbone = [k for k in before if int(k.split(".")[1]) < n_backbone]
    neck = [k for k in before if int(k.split(".")[1]) >= n_backbone and k.endswith("running_mean")]
    assert backbone and all(torch.allclose(before[k].float(), after[k].float(), atol=1e-6) for k in backbone)
    assert any(not torch.allclose(before[k], after[k]) for k in neck)


def test_cli_bad_inputs_exit_2(work, tmp_path, capsys):
    from yolobone.cli.train import main

    cases = [["--cfg", work["cfg"], "--data", str(tmp_path / "missing.yaml")],
             ["--cfg", str(tmp_path / "missing-model.yaml"), "--data", work["data"]],
             ["--cfg", work["cfg"], "--data", work["data"], "--weights", str(tmp_path / "not-a-checkpoint.pt")],
             ["--data", work["data"]]]
    (tmp_path / "not-a-checkpoint.pt").write_text("garbage")
    for args in cases:
        assert main([*args, "--device", "cpu", "--project", str(tmp_path / "runs")]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), err
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("nc: 2\nbackbone: [[-1, 1, Conv, [16, 3, 2]]\n")
    assert main(["--cfg", str(bad_yaml), "--data", work["data"], "--device", "cpu"]) == 2
    assert "bad.yaml" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_two_process_gloo(work, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "train.py",
           "--cfg", work["cfg"], "--data", work["small"], "--epochs", "1", "--batch-size", "8", "--imgsz", "64",
           "--device", "cpu", "--workers", "0", "--project", str(tmp_path / "runs"), "--name", "ddp", "--noplots"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    runs = sorted((tmp_path / "runs").iterdir())
    assert [r.name for r in runs] == ["ddp"], "only rank 0 creates a run folder"
    assert sorted(f.name for f in (runs[0] / "weights").iterdir()) == ["best.pt", "last.pt"]
    assert torch.load(runs[0] / "weights/last.pt", weights_only=True)["epoch"] == -1
    assert "DDP: rank 1/2" in p.stderr and "DDP: rank 0/2" in p.stderr


def test_optimizer_groups_warmup_schedule_and_ema():
    import math

    import torch.nn as nn

    from yolobone.engine.core.optim import accumulation, apply_warmup, build_optimizer, lr_lambda, warmup_iterations
    from yolobone.utils.ema import ModelEMA

    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.Conv2d(8, 4, 1))
    opt = build_optimizer(model, "SGD", lr=0.01, momentum=0.937, decay=5e-4)
    bias, weight, norm = opt.param_groups
    assert [len(g["params"]) for g in opt.param_groups] == [2, 2, 1]  # BN + conv bias; 2 conv weights; BN weight
    assert (bias["weight_decay"], weight["weight_decay"], norm["weight_decay"]) == (0.0, 5e-4, 0.0)
    assert opt.defaults["nesterov"] is True
    assert accumulation(16) == (4, 1.0) and accumulation(48) == (1, 0.75) and accumulation(128) == (1, 2.0)
    assert warmup_iterations(3.0, 10) == 100 and warmup_iterations(3.0, 100) == 300 and warmup_iterations(0, 9) == 0
    assert warmup_iterations(3.0, 100, min_iters=1000) == 1000 and warmup_iterations(30.0, 100, 1000) == 3000
    lf = lr_lambda(10, 0.01)
    assert (lf(0), lf(10)) == pytest.approx((1.0, 0.01))
    cos = lr_lambda(10, 0.01, cos=True)
    assert (cos(0), cos(5), cos(10)) == pytest.approx((1.0, 0.505, 0.01))
    for g in opt.param_groups:
        g["initial_lr"] = 0.01
    assert apply_warmup(opt, 0, 100, 1.0, 0.1, 0.8, 0.937, batch_size=16) == 1
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.0, 0.0])
    assert bias["momentum"] == pytest.approx(0.8)
    assert apply_warmup(opt, 100, 100, 0.5, 0.1, 0.8, 0.937, batch_size=16) == 4
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.005] * 3)
    assert bias["momentum"] == pytest.approx(0.937)
    assert "momentum" not in build_optimizer(model, "Adam").param_groups[0]  # Adam: beta1, no momentum warmup

    ema = ModelEMA(model)
    assert ema.decay(1) == pytest.approx(0.9999 * (1 - math.exp(-1 / 2000)))
    with torch.no_grad():
        model[2].bias.fill_(1.0)
    before = ema.ema[2].bias.clone()
    ema.update(model)
    d = ema.decay(1)
    assert torch.allclose(ema.ema[2].bias, before * d + (1 - d) * 1.0)
    assert not any(p.requires_grad for p in ema.ema.parameters())


def test_resume_drops_repeated_and_cut_results_rows(tmp_path):
    log = RunLogger(tmp_path, RESULT_KEYS, tensorboard=False)
    values = [0.5] * len(RESULT_KEYS)
    for epoch in range(3):
        log.log_epoch(epoch, values)
    with open(log.csv, "a") as f:
        f.write(csv_row(3, values)[:9])  # killed while writing epoch 3's row
    log.drop_rows_from(2)
    assert log.csv.read_text() == csv_header(RESULT_KEYS) + csv_row(0, values) + csv_row(1, values)
