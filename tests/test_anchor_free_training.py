"""Training anchor-free heads as Ultralytics does: --optimizer auto, defaults by head, loss and results columns."""
from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
import yaml

from tests.interrupt import Interrupt, stop_after_first_epoch
from yolobone.engine.core.optim import OptimizerError, auto_iterations, choose_optimizer
from yolobone.engine.core.options import TrainConfigError
from yolobone.engine.detect.options import ANCHOR_FREE_HYP, DEFAULT_HYP, DetectOptions
from yolobone.engine.detect.plots import plot_results, results_panels
from yolobone.engine.detect.task import RESULT_KEYS, ULTRALYTICS_RULES, YOLOV5_RULES, DetectTask, \
    is_anchor_free, result_keys
from yolobone.engine.train import train
from yolobone.models import DetectionModel, get_block, registered_names
from yolobone.models.loss import ComputeLoss
from yolobone.models.loss_af import LOSS_NAMES, AnchorFreeLoss
from yolobone.data.synthetic import make_detection_dataset
from yolobone.utils.hyp import load_hyp

YOLOV5_CFG = dict(nc=2, depth_multiple=0.33, width_multiple=0.125,
                  anchors=[[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
                  backbone=[[-1, 1, "Conv", [64, 6, 2, 2]], [-1, 1, "Conv", [128, 3, 2]], [-1, 1, "Conv", [256, 3, 2]],
                            [-1, 1, "Conv", [512, 3, 2]], [-1, 1, "Conv", [1024, 3, 2]]],
                  head=[[[2, 3, 4], 1, "Detect", ["nc", "anchors"]]])
ANCHOR_FREE_CFG = dict(nc=2, depth_multiple=0.33, width_multiple=0.125,
                       backbone=YOLOV5_CFG["backbone"], head=[[[2, 3, 4], 1, "Detect", ["nc"]]])


def _anchor_free_registered() -> bool:
    return any(getattr(get_block(n).cls, "anchor_free", False) for n in registered_names())


def _af_head(nc: int = 2) -> nn.Module:
    head = nn.Module()
    head.nc, head.nl, head.reg_max, head.no, head.anchor_free = nc, 3, 16, 64 + nc, True
    head.stride = torch.tensor([8.0, 16.0, 32.0])
    return head


def _trainer(model: nn.Module, **opt) -> SimpleNamespace:
    o = DetectOptions.from_any(opt)
    return SimpleNamespace(opt=o, model=model, resume_ckpt=None, hyp=DetectTask().hyp(o, None), imgsz=64,
                           dist=SimpleNamespace(distributed=False, world_size=1))


def test_auto_optimizer_rule():
    adamw = choose_optimizer("auto", 0.01, 0.937, 0.1, nc=10, iterations=10_000)
    assert (adamw.name, adamw.lr0, adamw.momentum, adamw.warmup_bias_lr, adamw.auto) == \
        ("AdamW", 0.000714, 0.9, 0.0, True)  # round(0.002 * 5 / 14, 6)
    assert choose_optimizer("auto", 0.01, 0.937, 0.1, nc=80, iterations=5).lr0 == 0.000119
    sgd = choose_optimizer("auto", 0.001, 0.937, 0.1, nc=10, iterations=10_001)
    assert (sgd.name, sgd.lr0, sgd.momentum, sgd.warmup_bias_lr) == ("SGD", 0.01, 0.9, 0.0)
    given = choose_optimizer("Adam", 0.002, 0.95, 0.1, nc=10, iterations=5)
    assert (given.name, given.lr0, given.momentum, given.warmup_bias_lr, given.note) == ("Adam", 0.002, 0.95, 0.1, "")
    with pytest.raises(OptimizerError, match="'Lion'.*auto"):
        choose_optimizer("Lion", 0.01, 0.9, 0.1, nc=1, iterations=1)
    # 1,200 images, batch 32 (nominal 64), 60 epochs: 19 x 60 iterations
    assert auto_iterations(1200, 32, 64, 60) == 1140 and auto_iterations(1200, 128, 64, 2) == 20
    assert auto_iterations(10, 4, None, 3) == 9


def test_detect_options_leave_head_dependent_defaults_open():
    o = DetectOptions.from_any({})
    assert (o.optimizer, o.close_mosaic, o.hyp) == ("", None, "")
    assert DetectOptions.from_any({"optimizer": "auto"}).optimizer == "auto"
    with pytest.raises(TrainConfigError, match="--optimizer 'Lion'"):
        DetectOptions.from_any({"optimizer": "Lion"})
    with pytest.raises(TrainConfigError, match="--close-mosaic"):
        DetectOptions.from_any({"close_mosaic": -1})


def test_defaults_by_head():
    af = _trainer(SimpleNamespace(detect=_af_head()))
    DetectTask().resolve_defaults(af)
    assert (af.opt.optimizer, af.opt.close_mosaic, af.opt.hyp) == ("auto", 10, ANCHOR_FREE_HYP)
    assert af.hyp == load_hyp(ANCHOR_FREE_HYP) and af.hyp.box == 7.5
    ab = _trainer(DetectionModel(YOLOV5_CFG))
    DetectTask().resolve_defaults(ab)
    assert (ab.opt.optimizer, ab.opt.close_mosaic, ab.opt.hyp) == ("SGD", 0, DEFAULT_HYP)
    assert ab.hyp == load_hyp(DEFAULT_HYP)
    given = _trainer(SimpleNamespace(detect=_af_head()), optimizer="SGD", close_mosaic=0, hyp={"lr0": 0.02})
    DetectTask().resolve_defaults(given)
    assert (given.opt.optimizer, given.opt.close_mosaic, given.hyp.lr0) == ("SGD", 0, 0.02)
    with pytest.raises(TrainConfigError, match="--label-smoothing 0.1: the anchor-free loss"):
        DetectTask().resolve_defaults(_trainer(SimpleNamespace(detect=_af_head()), label_smoothing=0.1))


def test_training_rules_follow_the_head():
    """Anchor-free heads train in Ultralytics' loop (no LR lag, gradients carried over epochs, mAP50-95 picks
    best.pt), YOLOv5's heads in v7.0's; compare.py reads a run's best epoch by the same rule."""
    from yolobone.engine.compare.metrics import task_metrics
    task = DetectTask()
    assert task.training_rules(SimpleNamespace(detect=_af_head())) == ULTRALYTICS_RULES
    assert task.training_rules(DetectionModel(YOLOV5_CFG)) == YOLOV5_RULES
    assert ULTRALYTICS_RULES.carry_gradients and not ULTRALYTICS_RULES.lr_lags_one_epoch
    assert YOLOV5_RULES.lr_lags_one_epoch and not YOLOV5_RULES.carry_gradients
    results = (0.5, 0.5, 0.8, 0.3)
    assert task.fitness(results, ULTRALYTICS_RULES) == pytest.approx(0.3)
    assert task.fitness(results, YOLOV5_RULES) == task.fitness(results) == pytest.approx(0.08 + 0.27)
    metrics = {"mAP50": [0.8, 0.5], "mAP50-95": [0.30, 0.31]}  # YOLOv5's fitness: 0.35 then 0.329
    best = task_metrics("detect").best_epoch
    assert best(metrics, ["epoch", "train/box_loss", "train/cls_loss", "train/dfl_loss"]) == 1
    assert best(metrics, ["epoch", "train/box_loss", "train/obj_loss", "train/cls_loss"]) == 0


def test_loss_and_columns_follow_the_head():
    task = DetectTask()
    af = _trainer(SimpleNamespace(detect=_af_head()))
    task.resolve_defaults(af)
    setup = task.setup_loss(af)
    af.criterion, af.compute_loss = setup.criterion, setup.loss  # what the Trainer keeps
    assert isinstance(af.compute_loss, AnchorFreeLoss) and is_anchor_free(af.model)
    assert task.loss_columns(af) == LOSS_NAMES == ("box_loss", "cls_loss", "dfl_loss")
    assert task.result_columns(af)[:3] == ("train/box_loss", "train/cls_loss", "train/dfl_loss")
    assert task.result_columns(af)[7:10] == ("val/box_loss", "val/cls_loss", "val/dfl_loss")
    preds = [torch.zeros(2, 66, s, s) for s in (8, 4, 2)]
    total, items = af.criterion(preds, torch.tensor([[0, 1, 0.5, 0.5, 0.5, 0.5]]))
    assert items.shape == (3,) and total.item() == pytest.approx(items.sum().item() * 2, rel=1e-6)
    ab = _trainer(DetectionModel(YOLOV5_CFG))
    task.resolve_defaults(ab)
    ab.compute_loss = task.setup_loss(ab).loss
    assert isinstance(ab.compute_loss, ComputeLoss) and not is_anchor_free(ab.model)
    assert task.result_columns(ab) == RESULT_KEYS and RESULT_KEYS[:3] == ("train/box_loss", "train/obj_loss",
                                                                          "train/cls_loss")


def test_results_png_from_anchor_free_columns(tmp_path):
    keys = result_keys(LOSS_NAMES)
    assert results_panels(["epoch", *keys]) == (*keys[:3], *keys[3:5], *keys[7:10], *keys[5:7])
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", *keys])
        for e in range(3):
            w.writerow([e, *[0.1 * (e + 1)] * len(keys)])
    assert plot_results(path).is_file()


@pytest.fixture(scope="module")
def af_run(tmp_path_factory):
    """(data YAML, model YAML) of a tiny anchor-free run on 16 generated 64 px images."""
    root = tmp_path_factory.mktemp("af")
    data = make_detection_dataset(root / "data", n_train=16, n_val=4, imgsz=64, max_objects=3, min_size=0.2,
                                  max_size=0.6, verbose=False)
    cfg = root / "af.yaml"
    cfg.write_text(yaml.safe_dump(ANCHOR_FREE_CFG, sort_keys=False))
    return str(data), str(cfg)


needs_anchor_free_head = pytest.mark.skipif(not _anchor_free_registered(), reason="the anchor-free Detect head (issue "
                                            "34 part A) is not registered on this branch")


@needs_anchor_free_head
def test_anchor_free_model_trains_with_its_recipe(af_run, tmp_path):
    data, cfg = af_run
    r = train(dict(cfg=cfg, data=data, epochs=3, batch_size=8, imgsz=64, device="cpu", workers=0,
                   project=str(tmp_path / "runs"), name="af", noplots=True))
    opt = yaml.safe_load((r.save_dir / "opt.yaml").read_text())
    assert (opt["optimizer"], opt["close_mosaic"], opt["hyp"]) == ("auto", 10, ANCHOR_FREE_HYP)
    assert yaml.safe_load((r.save_dir / "hyp.yaml").read_text())["box"] == 7.5
    header = (r.save_dir / "results.csv").read_text().splitlines()[0]
    assert [h.strip() for h in header.split(",")][1:4] == ["train/box_loss", "train/cls_loss", "train/dfl_loss"]
    assert all(torch.isfinite(torch.tensor(v)).all() for v in r.loss_history)
    assert r.best is not None and r.final is not None


@needs_anchor_free_head
def test_anchor_free_resume_matches_uninterrupted(af_run, tmp_path):
    """--optimizer auto, the bias warmup from 0, close-mosaic and the gradients of an unfinished accumulation after a
    resume: the same run as without the cut."""
    data, cfg = af_run
    # 3 batches of 6 an epoch, steps every 12 images after a one-epoch warmup: epoch 0 ends inside an accumulation
    hyp = dict(load_hyp(ANCHOR_FREE_HYP).to_dict(), warmup_epochs=1.0)
    base = dict(cfg=cfg, data=data, epochs=3, close_mosaic=1, batch_size=6, nbs=12, hyp=hyp, imgsz=64, device="cpu",
                workers=0, noval=True, noplots=True, deterministic=True, project=str(tmp_path / "runs"))
    full = train(base, name="full")
    with pytest.raises(Interrupt):
        train(base, name="cut", callbacks={"on_fit_epoch_end": stop_after_first_epoch})
    last = tmp_path / "runs" / "cut" / "weights" / "last.pt"
    assert torch.load(last, weights_only=True)["resume_state"]["pending_grads"]
    resumed = train(DetectOptions(resume=str(last), device="cpu", workers=0))
    assert resumed.loss_history == full.loss_history[1:]
    a = torch.load(full.last, weights_only=True)["model"]
    b = torch.load(resumed.last, weights_only=True)["model"]
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6, rtol=0), k


@needs_anchor_free_head
def test_anchor_free_lr_follows_ultralytics_schedule(af_run, tmp_path):
    """Without warmup, epoch e trains at lr0 x lf(e) (Ultralytics), not lf(e - 1) as YOLOv5 v7.0's rewind gives."""
    data, cfg = af_run
    hyp = dict(load_hyp(ANCHOR_FREE_HYP).to_dict(), warmup_epochs=0.0, lr0=0.001)
    r = train(dict(cfg=cfg, data=data, epochs=2, batch_size=8, imgsz=64, device="cpu", workers=0, optimizer="Adam",
                   hyp=hyp, project=str(tmp_path / "runs"), name="lr", noplots=True, noval=True))
    with (r.save_dir / "results.csv").open() as f:
        rows = [{k.strip(): float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    assert [row["x/lr1"] for row in rows] == pytest.approx([0.001, 0.001 * (0.5 * 0.99 + 0.01)])


def test_compare_gives_each_config_its_heads_recipe(tmp_path):
    """compare.py without --hyp / --optimizer: no shared optimizer is forced on the runs, each model's head picks
    its recipe, and the protocol records which."""
    from yolobone.engine.compare.options import CompareOptions
    from yolobone.engine.compare.protocol import describe_model
    from yolobone.engine.compare.report import ConfigResult
    from yolobone.engine.compare.training import RunTrainer
    cfgs = {}
    for name, cfg in (("ab", YOLOV5_CFG), ("af", ANCHOR_FREE_CFG)):
        cfgs[name] = tmp_path / f"{name}.yaml"
        cfgs[name].write_text(yaml.safe_dump(cfg))
    recipes = {n: describe_model(str(c), "detect", 2, [0], pretrained=False)["default_recipe"] for n, c in cfgs.items()}
    assert recipes == {"ab": {"hyp": DEFAULT_HYP, "optimizer": "SGD", "close_mosaic": 0},
                       "af": {"hyp": ANCHOR_FREE_HYP, "optimizer": "auto", "close_mosaic": 10}}
    o = CompareOptions.from_any(dict(cfgs=[str(c) for c in cfgs.values()], epochs=1, imgsz=64))
    assert o.training_optimizer == "per head (default_recipe)"
    opts = RunTrainer(o, tmp_path / "cmp")._fresh_options(ConfigResult(name="af", cfg=str(cfgs["af"]), seed=0))
    assert "optimizer" not in opts and "hyp" not in opts  # train() resolves them by the head
    told = CompareOptions.from_any(dict(cfgs=[str(cfgs["af"])], optimizer="Adam", hyp=DEFAULT_HYP))
    opts = RunTrainer(told, tmp_path / "cmp")._fresh_options(ConfigResult(name="af", cfg=str(cfgs["af"]), seed=0))
    assert (opts["optimizer"], opts["hyp"], told.training_optimizer) == ("Adam", DEFAULT_HYP, "Adam")
