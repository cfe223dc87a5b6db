"""Validation loop shared by train.py (every epoch) and val.py: NMS, boxes mapped to original images, COCO AP.

    res = validate(model, val_loader, names=["circle", "square"])
    print(res.map50, res.map50_95, res.speed)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from yolobone.engine.core.backend import Backend
from yolobone.engine.core.validator import EvalStep, LoopStats, evaluate_loop, model_device
from yolobone.utils.boxes import scale_boxes, xywh2xyxy, xyxy2ltwh, xyxy2xywh
from yolobone.utils.logging import LOGGER
from yolobone.engine.detect.metrics import ConfusionMatrix, DetectionEvaluator, DetectionMetrics, fitness
from yolobone.engine.detect.nms import non_max_suppression

Names = Union[Sequence[str], Dict[int, str]]
TABLE_HEADER = ("%22s" + "%11s" * 6) % ("Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95")
PLOT_BATCHES = 3  # val_batch0..2 label/prediction mosaics


@dataclass
class ClassStats:
    """One row of the per-class table."""

    name: str
    images: int
    instances: int
    p: float
    r: float
    ap50: float
    ap: float


@dataclass
class ValResult:
    """What validate() measured. maps[c] is class c's mAP50-95 (the overall mAP for classes without labels)."""

    mp: float
    mr: float
    map50: float
    map50_95: float
    maps: np.ndarray
    loss: Tuple[float, float, float]  # the loss's items ((box, obj, cls) or anchor-free (box, cls, dfl)) mean per
    # batch; zeros without compute_loss
    speed: Dict[str, float]  # ms per image: 'pre', 'inf', 'nms'
    classes: List[ClassStats]
    seen: int  # images evaluated
    nt: np.ndarray  # (nc,) labelled instances per class
    metrics: Optional[DetectionMetrics] = field(default=None, repr=False)
    confusion_matrix: Optional[ConfusionMatrix] = field(default=None, repr=False)
    files: List[Path] = field(default_factory=list)  # plots / txt / json written

    @property
    def fitness(self) -> float:
        """0.1 x mAP50 + 0.9 x mAP50-95."""
        return fitness(self.map50, self.map50_95)

    def results_tuple(self) -> Tuple[float, ...]:
        """(P, R, mAP50, mAP50-95, val box, val obj, val cls) in results.csv order."""
        return (self.mp, self.mr, self.map50, self.map50_95, *self.loss)


# ----------------------------------------------------------------------------------------------- helpers
def names_dict(names: Names) -> Dict[int, str]:
    return dict(names) if isinstance(names, dict) else dict(enumerate(names))


def image_targets(targets: torch.Tensor, index: int, input_shape: Sequence[int], shapes) -> torch.Tensor:
    """Labels of one batch image as (m, 5) [cls, x1, y1, x2, y2] in original-image pixels."""
    t = targets[targets[:, 0] == index, 1:]  # [cls, cx, cy, w, h] in input pixels
    boxes = xywh2xyxy(t[:, 1:5])
    original, ratio_pad = _original_shape(input_shape, shapes)
    scale_boxes(input_shape, boxes, original, ratio_pad)
    return torch.cat((t[:, :1], boxes), 1)


def scale_predictions(pred: torch.Tensor, input_shape: Sequence[int], shapes, single_cls: bool) -> torch.Tensor:
    """NMS output (n, 6) [x1, y1, x2, y2, conf, cls] of one image mapped to original-image pixels (a copy)."""
    predn = pred.clone()
    if single_cls:
        predn[:, 5] = 0
    original, ratio_pad = _original_shape(input_shape, shapes)
    scale_boxes(input_shape, predn[:, :4], original, ratio_pad)
    return predn


def _original_shape(input_shape: Sequence[int], shapes):
    """((h0, w0), ratio_pad) from a dataset item's shapes; a mosaic (None) is its own original."""
    if shapes is None:
        return tuple(input_shape[:2]), ((1.0, 1.0), (0.0, 0.0))
    return shapes[0], shapes[1]


def write_txt(predn: torch.Tensor, original_shape: Sequence[int], path: Path, save_conf: bool) -> None:
    """One YOLO label line per detection (cls cx cy w h [conf], normalised to the original image)."""
    h, w = original_shape[:2]
    gn = torch.tensor([w, h, w, h], dtype=torch.float32)
    lines = []
    for *xyxy, conf, cls in predn.tolist():
        xywh = (xyxy2xywh(torch.tensor(xyxy).view(1, 4)) / gn).view(-1).tolist()
        row = (cls, *xywh, conf) if save_conf else (cls, *xywh)
        lines.append(("%g " * len(row)).rstrip() % row)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


def json_records(predn: torch.Tensor, image_path: str, image_id: Any = None,
                 category_ids: Optional[Sequence[int]] = None) -> List[dict]:
    """COCO results records for one image, bbox [x, y, w, h] in pixels. image_id defaults to int(stem) when numeric,
    else the stem (YOLOv5); category_ids[c] is class c's category id (default c)."""
    if image_id is None:
        stem = Path(image_path).stem
        image_id = int(stem) if stem.isnumeric() else stem
    boxes = xyxy2ltwh(predn[:, :4]).tolist()
    cat = (lambda c: int(c)) if category_ids is None else (lambda c: int(category_ids[int(c)]))
    return [{"image_id": image_id, "category_id": cat(c), "bbox": [round(v, 3) for v in b], "score": round(s, 5)}
            for b, s, c in zip(boxes, predn[:, 4].tolist(), predn[:, 5].tolist())]


def class_table(metrics: DetectionMetrics, names: Dict[int, str], seen: int) -> List[ClassStats]:
    rows = []
    for i, c in enumerate(metrics.classes):
        p, r, ap50, ap = metrics.class_result(i)
        rows.append(ClassStats(names.get(int(c), str(c)), seen, int(metrics.n_instances[c]), p, r, ap50, ap))
    return rows


def log_results(res: ValResult, verbose: bool, nc: int, input_shape: Optional[Tuple[int, ...]]) -> None:
    """The 'all' row, the per-class rows when verbose (and nc > 1), then the speed line."""
    pf = "%22s" + "%11i" * 2 + "%11.3g" * 4
    LOGGER.info(pf % ("all", res.seen, int(res.nt.sum()), res.mp, res.mr, res.map50, res.map50_95))
    if res.nt.sum() == 0:
        LOGGER.warning("WARNING: no labels found in the validation set, cannot compute metrics without labels")
    if verbose and nc > 1:
        for row in res.classes:
            LOGGER.info(pf % (row.name, row.images, row.instances, row.p, row.r, row.ap50, row.ap))
    if verbose and input_shape is not None:
        LOGGER.info("Speed: %.1fms pre-process, %.1fms inference, %.1fms NMS per image at shape %s"
                    % (res.speed["pre"], res.speed["inf"], res.speed["nms"], input_shape))


def plot_batch(images: torch.Tensor, targets: torch.Tensor, preds: List[torch.Tensor], paths: Sequence[str],
               names: Dict[int, str], save_dir: Path, batch_index: int) -> List[Path]:
    """val_batch{i}_labels.jpg and val_batch{i}_pred.jpg (boxes in input pixels)."""
    from yolobone.engine.detect.drawing import plot_images

    rows = []
    for k, p in enumerate(preds):
        if len(p):
            xywh = xyxy2xywh(p[:, :4].float().cpu())
            rows.append(torch.cat((torch.full((len(p), 1), float(k)), p[:, 5:6].float().cpu(), xywh,
                                   p[:, 4:5].float().cpu()), 1))
    pred_rows = torch.cat(rows, 0) if rows else torch.zeros((0, 7))
    f_lab, f_pred = save_dir / f"val_batch{batch_index}_labels.jpg", save_dir / f"val_batch{batch_index}_pred.jpg"
    plot_images(images, targets.cpu(), paths, f_lab, names)
    plot_images(images, pred_rows, paths, f_pred, names)
    return [f_lab, f_pred]


def save_plots(metrics: DetectionMetrics, cm: ConfusionMatrix, names: Dict[int, str], save_dir: Path) -> List[Path]:
    """PR / F1 / P / R curves and the confusion matrix."""
    from yolobone.engine.detect.plots import plot_confusion_matrix, plot_metric_curves

    files = list(plot_metric_curves(metrics, save_dir))
    files.append(plot_confusion_matrix(cm.matrix, names, save_dir / "confusion_matrix.png"))
    return files


# ----------------------------------------------------------------------------------------------- main loop
class DetectionStep(EvalStep):
    """validate()'s per-batch work: loss, NMS, boxes to original pixels, AP statistics, txt/JSON/plots."""

    def __init__(self, nc: int, names: Dict[int, str], conf_thres: float, iou_thres: float, max_det: int,
                 single_cls: bool, agnostic: bool, compute_loss: Optional[Callable], save_dir: Optional[Path],
                 plots: bool, save_txt: bool, save_conf: bool, save_json: bool, device: torch.device):
        self.names, self.nms = names, dict(conf_thres=conf_thres, iou_thres=iou_thres, multi_label=True,
                                           agnostic=agnostic or single_cls, max_det=max_det)
        self.single_cls, self.compute_loss, self.save_dir = single_cls, compute_loss, save_dir
        self.plots, self.save_txt, self.save_conf, self.save_json = plots, save_txt, save_conf, save_json
        self.evaluator = DetectionEvaluator(nc, names=names)
        self.cm = ConfusionMatrix(nc=nc)
        self.loss = torch.zeros(3, device=device)
        self.files: List[Path] = []
        self.records: List[dict] = []
        self.image_ids: Optional[Dict[str, Any]] = None  # a COCO/VOC set's original ids (the dataset's)
        self.category_ids: Optional[Sequence[int]] = None

    def coco_ids(self, path: str) -> Tuple[Any, Optional[Sequence[int]]]:
        """(image id, class -> category id) for --save-json: the annotation file's own, else YOLOv5's defaults."""
        image_id = self.image_ids.get(path) if self.image_ids else None
        return image_id, None if self.single_cls else self.category_ids

    def preprocess(self, batch: Any, device: torch.device) -> Tuple[torch.Tensor, Any]:
        im, targets, paths, shapes = batch
        return im.to(device, non_blocking=True).float() / 255, (targets.to(device), paths, shapes)

    def update(self, outputs: Any, im: torch.Tensor, rest: Any, batch_index: int) -> None:
        targets, paths, shapes = rest
        preds, train_out = outputs if isinstance(outputs, tuple) else (outputs, None)
        if self.compute_loss is not None:
            self.loss += self.compute_loss([x.float() for x in train_out], targets)[1]
        height, width = im.shape[2:]
        targets[:, 2:] *= torch.tensor((width, height, width, height), device=targets.device)
        preds = non_max_suppression(preds.float(), **self.nms)
        batch_preds, batch_gts = [], []
        for si, pred in enumerate(preds):
            gt = image_targets(targets, si, (height, width), shapes[si]).cpu()
            if self.single_cls:
                gt[:, 0] = 0
            predn = scale_predictions(pred, (height, width), shapes[si], self.single_cls).cpu()
            batch_preds.append(predn)
            batch_gts.append(gt)
            self._save_image(predn, gt, (height, width), paths[si], shapes[si])
        self.evaluator.update(batch_preds, batch_gts)
        if self.plots and batch_index < PLOT_BATCHES:
            self.files += plot_batch(im, targets, preds, paths, self.names, self.save_dir, batch_index)

    def _save_image(self, predn: torch.Tensor, gt: torch.Tensor, input_hw: Tuple[int, int], path: str,
                    shapes: Any) -> None:
        if self.plots:
            self.cm.process_batch(predn, gt)
        if self.save_txt:
            original = _original_shape(input_hw, shapes)[0]
            write_txt(predn, original, self.save_dir / "labels" / f"{Path(path).stem}.txt", self.save_conf)
        if self.save_json:
            self.records += json_records(predn, path, *self.coco_ids(path))


def _check_outputs(model: Union[nn.Module, Backend], compute_loss: Optional[Callable], save_dir: Optional[Path],
                   wants_files: bool) -> None:
    if wants_files and save_dir is None:
        raise ValueError("validate: plots, save_txt and save_json need a save_dir")
    if isinstance(model, Backend) and compute_loss is not None:
        raise ValueError("validate: compute_loss needs the nn.Module (raw maps), not an inference backend")


def validate(model: Union[nn.Module, Backend], dataloader, *, names: Names, conf_thres: float = 0.001,
             iou_thres: float = 0.6,
             max_det: int = 300, single_cls: bool = False, agnostic: bool = False, half: bool = False,
             compute_loss: Optional[Callable] = None, save_dir: Optional[Union[str, Path]] = None,
             plots: bool = False, save_txt: bool = False, save_conf: bool = False, save_json: bool = False,
             verbose: bool = False, json_name: str = "predictions.json") -> ValResult:
    """Run `model` over `dataloader` and measure P, R, mAP50 and mAP50-95 (COCO AP) in original-image pixels.

    Args:
        model: a detection model (eval-mode output (decoded, raw maps)); its mode is restored afterwards. Or any
            inference backend (engine.backends: PyTorch, ONNX Runtime, OpenVINO, TorchScript).
        dataloader: yields (uint8 images, targets (N, 6) normalised, paths, shapes) as utils.datasets does.
        names: class names (list or {index: name}); nc = len(names), or 1 with single_cls.
        agnostic: class-agnostic NMS (always on with single_cls).
        half: run inference under float16 autocast (CUDA only).
        compute_loss: a models.loss.ComputeLoss to also report the validation loss.
        save_dir: folder for plots, labels/*.txt and the results JSON (needed by plots/save_txt/save_json).
        json_name: file name of the COCO results JSON written with save_json.
    """
    names_d = names_dict(names)
    nc = 1 if single_cls else len(names_d)
    if single_cls:
        names_d = {0: names_d.get(0, "item") if len(names_d) == 1 else "item"}
    save_dir = Path(save_dir) if save_dir is not None else None
    _check_outputs(model, compute_loss, save_dir, plots or save_txt or save_json)
    step = DetectionStep(nc, names_d, conf_thres, iou_thres, max_det, single_cls, agnostic, compute_loss, save_dir,
                         plots, save_txt, save_conf, save_json, model_device(model))
    dataset = getattr(dataloader, "dataset", None)
    step.image_ids, step.category_ids = getattr(dataset, "image_ids", None), getattr(dataset, "category_ids", None)
    stats = evaluate_loop(model, dataloader, step, half=half, desc=TABLE_HEADER, bar_format="{l_bar}{bar:10}{r_bar}")
    res = _result(step, stats, max(len(dataloader), 1))
    log_results(res, verbose, nc, stats.input_shape)
    if plots:
        res.files += save_plots(res.metrics, step.cm, names_d, save_dir)
    if save_json:
        path = save_dir / json_name
        path.write_text(json.dumps(step.records))
        res.files.append(path)
        LOGGER.info(f"Saved {len(step.records)} detections to {path}")
    if save_txt:
        res.files.append(save_dir / "labels")
    return res


def _result(step: DetectionStep, stats: LoopStats, n_batches: int) -> ValResult:
    metrics = step.evaluator.compute()
    return ValResult(mp=metrics.mp, mr=metrics.mr, map50=metrics.map50, map50_95=metrics.map,
                     maps=metrics.class_maps(), loss=tuple((step.loss.cpu() / n_batches).tolist()),
                     speed=dict(zip(("pre", "inf", "nms"), stats.speed_ms())),
                     classes=class_table(metrics, step.names, stats.seen), seen=stats.seen,
                     nt=metrics.n_instances.copy(), metrics=metrics,
                     confusion_matrix=step.cm if step.plots else None, files=step.files)
