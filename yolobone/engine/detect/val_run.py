"""The val.py run: load a detection checkpoint, validate it on a data split, write runs/val/exp*.

    report = run_val(ValConfig(weights="runs/train/exp/weights/best.pt", data="configs/data/shapes.yaml",
                               imgsz=256, save_json=True, coco_eval=True))
    print(report.result.map50, report.result.map50_95, report.coco_stats)

Validation itself is engine.detect.validator.validate(), the code train.py runs every epoch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from yolobone.engine.backends import Backend, TorchBackend, load_backend
from yolobone.engine.backends.compiled import compile_option, dominant_shape
from yolobone.engine.detect.coco_eval import evaluate_json_files, format_stats, labels_ground_truth, write_json
from yolobone.engine.detect.options import DEFAULT_DATA
from yolobone.engine.detect.validator import TABLE_HEADER, ValResult, validate
from yolobone.data.datasets import check_dataset, create_dataloader
from yolobone.utils.errors import YoloboneError
from yolobone.utils.image_size import stride_multiple
from yolobone.utils.logging import LOGGER
from yolobone.utils.options import at_least, between, check_options, one_of, option
from yolobone.utils.paths import increment_path
from yolobone.utils.torch_utils import select_device

PathLike = Union[str, os.PathLike]
TASKS = ("val", "test", "train", "speed")
PER_CLASS_MAX_NC = 50  # YOLOv5 prints the per-class rows by default below this many classes
SPEED_CONF, SPEED_IOU = 0.25, 0.45  # --task speed times NMS at deployment thresholds, as YOLOv5 does
VAL_PAD = 0.5  # rect batch shapes get half a stride of extra padding, as in YOLOv5's val loader


class ValRunError(YoloboneError, ValueError):
    """An option, checkpoint or data split that val.py cannot use; the message names the value and what is expected."""


@dataclass
class ValConfig:
    """val.py's options (YOLOv5 v7.0 names and defaults; `agnostic` and `coco_eval` are ours), each declared once:
    the parser is generated from these fields."""

    weights: PathLike = option("", "checkpoint path (a train.py best.pt or last.pt) or an exported model",
                               required=True)
    data: PathLike = option(DEFAULT_DATA, "data YAML or built-in name (default shapes)")
    batch_size: int = option(32, "batch size", check=at_least(1))
    imgsz: int = option(640, "inference size (pixels)", aliases=("--img", "--img-size"), check=at_least(1))
    conf_thres: float = option(0.001, "confidence threshold", check=between(0.0, 1.0))
    iou_thres: float = option(0.6, "NMS IoU threshold", check=between(0.0, 1.0))
    max_det: int = option(300, "maximum detections per image", check=at_least(1))
    task: str = option("val", "data split (val, test, train), 'speed' (timing at batch 1), or 'classify' "
                              "(classifiers)", choices=(*TASKS, "classify"), check=one_of(TASKS))
    device: str = option("", "cuda device, i.e. 0 or 0,1,2,3 or cpu")
    workers: int = option(8, "max dataloader workers", check=at_least(0))
    single_cls: bool = option(False, "treat as single-class dataset")
    agnostic: bool = option(False, "class-agnostic NMS", aliases=("--agnostic-nms",))
    verbose: bool = option(False, "report mAP by class even with 50 classes or more")
    save_txt: bool = option(False, "save results to labels/*.txt")
    save_conf: bool = option(False, "save confidences in --save-txt labels")
    save_json: bool = option(False, "save a COCO results JSON (<weights>_predictions.json, original-image pixels)")
    coco_eval: bool = option(False, "score the results JSON with pycocotools against the split's COCO JSON (a "
                                    "COCO-format set) or against a ground-truth JSON written from its labels")
    project: PathLike = option("runs/val", "save to project/name")
    name: str = option("exp", "save to project/name")
    exist_ok: bool = option(False, "existing project/name ok, do not increment")
    half: bool = option(False, "FP16 half-precision inference (CUDA only)")
    plots: bool = option(True, "draw the curves and the confusion matrix", cli=False)
    compile: str = compile_option()


@dataclass
class ValReport:
    """What a val.py run measured and wrote."""

    result: ValResult
    shape: Tuple[int, int, int, int]  # (B, 3, H, W) of the last batch, as in the speed line
    save_dir: Optional[Path] = None  # None for --task speed (nothing written)
    json_path: Optional[Path] = None
    gt_json_path: Optional[Path] = None
    coco_stats: Optional[np.ndarray] = None  # pycocotools' 12 stats with --coco-eval


def check_config(cfg: ValConfig) -> None:
    """Reject option values validate() cannot use, naming the flag."""
    check_options(cfg, ValRunError)
    if not str(cfg.weights):
        raise ValRunError("--weights: a detection checkpoint path is required")


def load_detection_model(weights: PathLike, device: torch.device, half: bool = False, compile: str = "off"
                         ) -> Backend:
    """The backend for a detection checkpoint or export (suffix picks it); other tasks are refused by name."""
    backend = load_backend(weights, device, half=half, compile=compile)
    if backend.task != "detect":
        raise ValRunError(f"{weights}: a {backend.task!r} checkpoint; val.py needs a detection checkpoint "
                          f"(use --task classify for classifiers)")
    return backend


def as_backend(model: Union[nn.Module, Backend], device: torch.device) -> Backend:
    """An in-memory model as a PyTorch backend that runs it as it is (no copy, no fusing, no layout change)."""
    if isinstance(model, Backend):
        return model
    return TorchBackend(model, device, fuse=False, channels_last=False, copy_model=False, pack=False)


def _split(data: dict, task: str) -> Tuple[str, Union[str, list]]:
    split = "val" if task == "speed" else task
    path = data.get(split)
    if not path:
        raise ValRunError(f"{data.get('yaml_file') or 'data'}: no {split!r} split to validate (--task {task})")
    return split, path


def _model_names(backend: Backend, nc: int) -> list:
    names = list(backend.names)
    return [str(n) for n in names] if len(names) == nc else [f"class{i}" for i in range(nc)]


def _class_names(cfg: ValConfig, model: Backend, data: dict, nc: int) -> list:
    """The model's class names for the table, after checking they fit the data (one 'item' with --single-cls)."""
    where = data.get('yaml_file') or 'data'
    if not cfg.single_cls and int(model.nc) != nc:
        raise ValRunError(f"{cfg.weights}: the model has {int(model.nc)} classes but {where} has {nc}; pass "
                          f"--weights and --data that were trained together (or --single-cls)")
    names = _model_names(model, int(model.nc))
    if not cfg.single_cls and names != list(data["names"]):
        LOGGER.warning(f"WARNING: {cfg.weights} names its classes {names[:6]}, {where} "
                       f"{list(data['names'])[:6]}; the table uses the model's names")
    if cfg.single_cls and len(names) != 1:
        names = ["item"]  # validate() names the merged class the same way
    return names


def log_speed(res: ValResult, shape: Tuple[int, ...]) -> None:
    s = res.speed
    LOGGER.info(f"Speed: {s['pre']:.1f}ms pre-process, {s['inf']:.1f}ms inference, {s['nms']:.1f}ms NMS "
                f"per image at shape {tuple(shape)}")


def last_batch_shape(dataset, batch_size: int, imgsz: int) -> Tuple[int, int, int, int]:
    """(B, 3, H, W) of the loader's last batch: the shape validate() puts in its speed line."""
    return loader_batch_shapes(dataset, batch_size, imgsz)[-1]


def loader_batch_shapes(dataset, batch_size: int, imgsz: int) -> List[Tuple[int, int, int, int]]:
    """The (B, 3, H, W) input each image of the split is validated in (rect batch shapes, a short last batch)."""
    n = len(dataset)
    shapes = []
    for i in range(n):
        b = i // batch_size
        h, w = dataset.batch_shapes[b] if dataset.batch_shapes is not None else (imgsz, imgsz)
        shapes.append((min(batch_size, n - b * batch_size), 3, int(h), int(w)))
    return shapes


def predictions_name(weights: PathLike) -> str:
    """<weights stem>_predictions.json, as YOLOv5 names the --save-json file."""
    return f"{Path(str(weights)).stem or 'model'}_predictions.json"


def run_val(cfg: ValConfig, model: Union[nn.Module, Backend, None] = None) -> ValReport:
    """Validate cfg.weights (any backend, or an in-memory model/backend) as val.py does; bad input raises ValueError.

    A static-shape export (no --dynamic) runs at its own batch size and image size without rect batches.
    """
    check_config(cfg)
    speed = cfg.task == "speed"
    device = select_device(cfg.device)
    half = cfg.half and device.type == "cuda"
    if cfg.half and not half:
        LOGGER.warning(f"WARNING: --half is for CUDA only; running in float32 on {device.type}")
    model = load_detection_model(cfg.weights, device, half, cfg.compile) if model is None else \
        as_backend(model, device)
    data = check_dataset(cfg.data)
    split, path = _split(data, cfg.task)
    nc = 1 if cfg.single_cls else int(data["nc"])
    names = _class_names(cfg, model, data, nc)
    stride = max(model.stride, 32)
    imgsz = stride_multiple(cfg.imgsz, stride)
    batch_size = 1 if speed else cfg.batch_size
    rect = not speed and model.dynamic
    if not model.dynamic:
        imgsz, batch_size = _static_shape(model, imgsz, batch_size)
    conf, iou = (SPEED_CONF, SPEED_IOU) if speed else (cfg.conf_thres, cfg.iou_thres)
    loader, dataset = create_dataloader(path, imgsz, batch_size, stride, pad=VAL_PAD if rect else 0.0,
                                        rect=rect, workers=cfg.workers, single_cls=cfg.single_cls,
                                        nc=int(data["nc"]), prefix=f"{split}: ")
    shape = last_batch_shape(dataset, batch_size, imgsz)

    save_dir = None
    save_json = (cfg.save_json or cfg.coco_eval) and not speed
    if not speed:
        save_dir = increment_path(Path(cfg.project) / cfg.name, exist_ok=cfg.exist_ok, mkdir=True)
    model.plan_compile(*dominant_shape(loader_batch_shapes(dataset, batch_size, imgsz)))
    model.warmup((imgsz, imgsz))
    table = nc > 1 and (cfg.verbose or nc < PER_CLASS_MAX_NC)
    LOGGER.info(TABLE_HEADER)
    res = validate(model, loader, names=names, conf_thres=conf, iou_thres=iou, max_det=cfg.max_det,
                   single_cls=cfg.single_cls, agnostic=cfg.agnostic, half=half, save_dir=save_dir,
                   plots=cfg.plots and not speed, save_txt=cfg.save_txt and not speed, save_conf=cfg.save_conf,
                   save_json=save_json, verbose=table, json_name=predictions_name(cfg.weights))
    if not table:  # validate() logs the speed line together with the per-class rows only
        log_speed(res, shape)
    report = ValReport(result=res, shape=shape, save_dir=save_dir)
    if save_json:
        report.json_path = save_dir / predictions_name(cfg.weights)
        if cfg.coco_eval:
            _coco_eval(report, dataset, names, split, cfg.single_cls)
    if save_dir is not None:
        extra = ""
        if cfg.save_txt:
            n = len(list((save_dir / "labels").glob("*.txt")))
            extra = f", {n} label{'s' * (n != 1)} saved to {save_dir / 'labels'}"
        LOGGER.info(f"Results saved to {save_dir}{extra}")
    return report


def _static_shape(backend: Backend, imgsz: int, batch_size: int) -> Tuple[int, int]:
    """(imgsz, batch) a static-shape export validates at: its own, square, without rect batches."""
    h, w = backend.meta.imgsz
    if h != w:
        raise ValRunError(f"{backend.source}: exported for {h}x{w}; val.py needs a square export or --dynamic")
    if (imgsz, batch_size) != (h, backend.meta.batch):
        LOGGER.info(f"{backend.source} has a static shape: validating at --imgsz {h} --batch-size "
                    f"{backend.meta.batch} without rect batches (export with --dynamic to choose)")
    return h, backend.meta.batch


def _coco_eval(report: ValReport, dataset, names: list, split: str, single_cls: bool) -> None:
    """Score the saved predictions with pycocotools against the split's COCO JSON itself (a COCO-format set) or
    against its labels written as COCO JSON."""
    source = dataset.annotation_file
    if source and source.lower().endswith(".json") and not single_cls:
        report.gt_json_path = Path(source)
    else:
        gt = labels_ground_truth(dataset.im_files, dataset.shapes, dataset.labels, names, dataset.image_ids,
                                 None if single_cls else dataset.category_ids)
        report.gt_json_path = write_json(gt, report.save_dir / f"{split}_ground_truth.json")
    LOGGER.info(f"\nEvaluating pycocotools mAP on {report.json_path.name} against {report.gt_json_path.name}...")
    stats = evaluate_json_files(report.gt_json_path, report.json_path)
    report.coco_stats = stats
    for line in format_stats(stats):
        LOGGER.info(line)
    res = report.result
    LOGGER.info(f"pycocotools mAP50 {stats[1]:.4f}, mAP50-95 {stats[0]:.4f} "
                f"(ours: mAP50 {res.map50:.4f}, mAP50-95 {res.map50_95:.4f})")
