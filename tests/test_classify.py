"""Classification: models cut from detection YAMLs, the layer summary, ImageFolder checks, training (YOLOv5 backbone
and a torchvision wrapper backbone), exact resume, best.pt reloading, val and predict entry points.

Trainings are 2 epochs of tiny models on a generated 3-colour ImageFolder at 64 px. Colour is learnable in a few
dozen steps; the 240 training images (120 steps at batch 4) are there for the BatchNorm running statistics, which
the eval-mode (val) accuracy depends on and which YOLOv5's BatchNorm momentum of 0.03 makes slow to settle.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from yolobone.data.classify import ClassifyDataError, resolve_classify_data, split_by_ratio
from yolobone.engine.classify.predict_run import main as predict_main
from yolobone.engine.classify.predict_run import predict_classifier
from yolobone.engine.classify.options import ClassifyOptions
from yolobone.engine.core.options import TrainConfigError
from yolobone.engine.train import train
from yolobone.engine.classify.val_run import val_classifier
from yolobone.engine.classify.validator import evaluate
from yolobone.engine.classify.val_run import main as val_main
from yolobone.models import DetectionModel, build_model, load_model
from yolobone.models.classification import ClassificationModel
from yolobone.models.parse import load_model_yaml
from yolobone.models.registry import ModelConfigError
from yolobone.models.summary import model_summary
from yolobone.utils.checkpoint import load_checkpoint
from tests.helpers import CLS_IMGSZ as IMGSZ, HUES, tiny_cls_yaml, write_colour_folder

ROOT = Path(__file__).resolve().parents[1]


def _tiny_shufflenet_yaml() -> dict:
    """The ShuffleNetV2 detection config at x0.5 width: its backbone (torchvision wrapper + Index rows) is cut."""
    d = load_model_yaml(ROOT / "configs/yolov5s-shufflenetv2.yaml").data  # a composition: neck + backbone file
    assert d["backbone"][0][2] == "ShuffleNetV2"
    d["backbone"][0][3][0] = 0.5
    d["yaml_file"] = "yolov5s-shufflenetv2 x0.5"
    return d


def _opts(data: Path, project: Path, cfg, **kw) -> dict:
    o = dict(task="classify", cfg=cfg, data=str(data), epochs=2, imgsz=IMGSZ, batch_size=4, workers=0, device="cpu",
             project=str(project), lr0=0.003, jitter=0.0, crop_scale=0.5, seed=0)
    o.update(kw)
    return o


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory) -> Path:
    root = write_colour_folder(tmp_path_factory.mktemp("colours"))
    (root / "train" / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    return root


@pytest.fixture(scope="module")
def yolo_run(colour_data, tmp_path_factory):
    """2 epochs of the YOLOv5-backbone classifier; the EMA logits on a fixed batch are recorded every epoch."""
    probe = torch.stack([torch.rand(3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(i)) for i in range(4)])
    logits = {}

    def record(trainer):
        with torch.no_grad():
            logits[trainer.epoch] = trainer.ema.ema.eval()(probe).clone()

    project = tmp_path_factory.mktemp("runs")
    result = train(_opts(colour_data, project, tiny_cls_yaml()), callbacks={"on_fit_epoch_end": record})
    return result, logits, probe


# ---------------------------------------------------------------------------------------------------- models
def test_cut_detection_yaml_matches_cls_yaml():
    """yolov5s.yaml cut at 9 layers + Classify is the yolov5s-cls architecture; the default cut keeps SPPF."""
    det = yaml.safe_load((ROOT / "configs/yolov5s.yaml").read_text())
    cls = yaml.safe_load((ROOT / "configs/cls/yolov5s-cls.yaml").read_text())
    for d in (det, cls):
        d["width_multiple"] = 0.125
    cut = ClassificationModel(det, nc=5, cutoff=9)
    ref = ClassificationModel(cls, nc=5)
    assert [m.type for m in cut.model] == [m.type for m in ref.model]
    assert {k: v.shape for k, v in cut.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    default = ClassificationModel(det, nc=5)
    assert [m.type for m in default.model][-2:] == ["SPPF", "Classify"]
    # the cut model's YAML rebuilds the same model through build_model (what checkpoints rely on)
    rebuilt = build_model(copy.deepcopy(cut.yaml))
    assert isinstance(rebuilt, ClassificationModel) and rebuilt.yaml["backbone"] == cut.yaml["backbone"]
    with pytest.raises(ModelConfigError, match="cutoff"):
        ClassificationModel(det, nc=5, cutoff=len(det["backbone"]) + len(det["head"]))
    with pytest.raises(ModelConfigError, match="already a classification YAML"):
        ClassificationModel(cls, nc=5, cutoff=3)


def test_from_detection_model_and_checkpoint_copy_backbone_weights(tmp_path):
    from yolobone.utils.checkpoint import save_checkpoint

    det_cfg = yaml.safe_load((ROOT / "configs/yolov5n.yaml").read_text())
    det_cfg["width_multiple"] = 0.125
    det = DetectionModel(det_cfg, nc=3)
    path = save_checkpoint({"model": det.state_dict(), "model_yaml": det.yaml, "task": "detect", "nc": 3},
                           tmp_path / "det.pt")
    for cls in (ClassificationModel.from_detection_model(det, nc=4), ClassificationModel(path, nc=4)):
        head = f"model.{len(cls.model) - 1}."
        assert head == "model.10."  # backbone rows 0-9 kept, Classify appended
        for k, v in cls.state_dict().items():
            if not k.startswith(head):
                assert torch.equal(v, det.state_dict()[k]), k
        assert cls(torch.rand(2, 3, IMGSZ, IMGSZ)).shape == (2, 4)


def test_multi_output_cut_selects_deepest_map():
    """Cutting right after a wrapper backbone (3 outputs) inserts Index [-1]: the head sees the stride-32 map."""
    model = ClassificationModel(_tiny_shufflenet_yaml(), nc=3, cutoff=1)
    assert [m.type for m in model.model] == ["ShuffleNetV2", "Index", "Classify"]
    assert model.layer_channels[1] == model.layer_channels[0][-1] == 192
    assert model(torch.rand(2, 3, IMGSZ, IMGSZ)).shape == (2, 3)


@pytest.mark.parametrize("make", [lambda: ClassificationModel(tiny_cls_yaml(), nc=3),
                                  lambda: ClassificationModel(_tiny_shufflenet_yaml(), nc=3),
                                  lambda: DetectionModel(dict(yaml.safe_load((ROOT / "configs/yolov5n.yaml")
                                                                             .read_text()), width_multiple=0.125))],
                         ids=["yolov5n-cls", "shufflenetv2-cls", "yolov5n-detect"])
def test_model_summary_totals_equal_parameter_count(make):
    model = make()
    frozen = next(model.parameters())
    frozen.requires_grad_(False)
    text = model_summary(model, IMGSZ)
    n = sum(p.numel() for p in model.parameters())
    total = int(re.search(r"Total params: ([\d,]+)", text).group(1).replace(",", ""))
    trainable = int(re.search(r"Trainable params: ([\d,]+)", text).group(1).replace(",", ""))
    assert total == n and trainable == n - frozen.numel()
    lines = text.splitlines()
    bars = [i for i, line in enumerate(lines) if line and set(line) == {"="}]
    rows = lines[bars[0] + 1:bars[1]]
    assert sum(int(r.split()[-1].replace(",", "")) for r in rows) == n  # every parameter in exactly one row
    assert all("not run" not in r for r in rows)
    assert re.search(r"\[-1, \d+, 2, 2\]", text)  # stride-32 maps of a 64 px input appear
    for key in ("Input size (MB)", "Forward/backward pass size (MB)", "Params size (MB)", "Estimated Total Size (MB)"):
        assert float(re.search(re.escape(key) + r": ([\d.]+)", text).group(1)) > 0


# ---------------------------------------------------------------------------------------------------- data
def test_corrupt_images_are_reported_and_skipped(tmp_path):
    root = write_colour_folder(tmp_path / "d", n_train=3, n_val=2)
    garbage = root / "train" / "green" / "garbage.jpg"
    garbage.write_bytes(b"not an image at all")
    good = (root / "train" / "blue" / "000.jpg").read_bytes()
    truncated = root / "val" / "blue" / "truncated.jpg"
    truncated.write_bytes(good[: len(good) // 2])
    (root / "train" / "red" / "notes.txt").write_text("not an image suffix: ignored, not reported")
    ds = resolve_classify_data(root, verbose=False)
    reported = dict(ds.corrupt)
    assert set(reported) == {str(garbage), str(truncated)}
    assert all(reason.startswith("corrupt image") for reason in reported.values())
    assert ds.names == ["blue", "green", "red"]
    assert len(ds.train) == 9 and len(ds.val) == 6
    assert str(garbage) not in {p for p, _ in ds.train} and str(truncated) not in {p for p, _ in ds.val}


def test_single_folder_is_split_by_ratio(tmp_path):
    src = write_colour_folder(tmp_path / "d", n_train=10, n_val=1)
    flat = src / "train"  # class folders directly under the root, no train/val
    ds = resolve_classify_data(flat, val_ratio=0.3, seed=3, verbose=False)
    assert ds.split_ratio == 0.3 and len(ds.val) == 9 and len(ds.train) == 21
    assert not {p for p, _ in ds.val} & {p for p, _ in ds.train}
    again = resolve_classify_data(flat, val_ratio=0.3, seed=3, verbose=False)
    assert again.val == ds.val  # the same files go to val every run
    with pytest.raises(ClassifyDataError, match="val-ratio"):
        split_by_ratio(ds.train, 1.5)
    with pytest.raises(ClassifyDataError, match="not found"):
        resolve_classify_data(tmp_path / "missing", verbose=False)


def test_options_accept_train_py_namespace_keys_only():
    o = ClassifyOptions.from_any({"task": "classify", "hyp": None, "rect": False, "freeze": [0], "epochs": 3})
    assert o.epochs == 3 and o.optimizer == "Adam"
    with pytest.raises(TrainConfigError, match="unknown option"):
        ClassifyOptions.from_any({"epochs": 3, "bogus": 1})
    with pytest.raises(TrainConfigError, match="--optimizer"):
        ClassifyOptions.from_any({"optimizer": "RMSProp"})


# ---------------------------------------------------------------------------------------------------- training
def test_yolov5_backbone_classifier_learns(yolo_run, colour_data):
    result, _, _ = yolo_run
    assert result.best_fitness >= 0.6  # chance is 1/3: 18 of 30 right by luck has p < 0.005
    assert [str(p) for p, _ in result.data.corrupt] == [str(colour_data / "train" / "red" / "broken.jpg")]
    save = result.save_dir
    for f in ("results.csv", "results.png", "confusion_matrix.png", "opt.yaml", "weights/best.pt", "weights/last.pt"):
        assert (save / f).is_file(), f
    header, *rows = [line.split(",") for line in (save / "results.csv").read_text().splitlines()]
    assert [h.strip() for h in header] == ["epoch", "train/loss", "val/loss", "metrics/accuracy_top1",
                                           "metrics/accuracy_top5", "lr/0"]
    assert [int(float(r[0])) for r in rows] == [0, 1]
    assert max(float(r[3]) for r in rows) == pytest.approx(result.best_fitness, abs=1e-4)  # CSV keeps 5 digits
    ckpt = load_checkpoint(save / "weights" / "best.pt")
    assert ckpt["task"] == "classify" and ckpt["names"] == ["blue", "green", "red"] and ckpt["epoch"] == -1
    assert ckpt["optimizer"] is None  # stripped at the end


def test_reloaded_best_pt_gives_identical_predictions(yolo_run, colour_data):
    result, logits, probe = yolo_run
    model = load_model(result.best, device="cpu")
    assert model.task == "classify" and model.names == ["blue", "green", "red"]
    with torch.no_grad():
        assert torch.equal(model(probe), logits[result.best_epoch])
    metrics = val_classifier(weights=result.best, data=colour_data, imgsz=IMGSZ, batch_size=8, device="cpu",
                             workers=0, verbose=False)
    # another batch size may run other CPU kernels: an image whose two best logits are within rounding may flip
    assert abs(metrics.top1 - result.best_fitness) <= 1 / len(result.data.val) + 1e-9
    assert metrics.confusion.sum() == len(result.data.val) and np.trace(metrics.confusion) == round(
        metrics.top1 * len(result.data.val))


def test_wrapper_backbone_classifier_learns(colour_data, tmp_path):
    result = train(_opts(colour_data, tmp_path, _tiny_shufflenet_yaml(), noplots=True))
    assert result.model.model[0].type == "ShuffleNetV2"
    assert result.best_fitness > 0.6


def test_resume_continues_exactly(tmp_path):
    """Interrupt after epoch 0, resume from last.pt: the final weights equal those of an uninterrupted run."""
    data = write_colour_folder(tmp_path / "d", n_train=4, n_val=2)

    class Stop(Exception):
        pass

    def stop(trainer):
        raise Stop

    reference = train(_opts(data, tmp_path / "a", tiny_cls_yaml(), noplots=True))
    with pytest.raises(Stop):
        train(_opts(data, tmp_path / "b", tiny_cls_yaml(), noplots=True), callbacks={"on_fit_epoch_end": stop})
    last = tmp_path / "b" / "exp" / "weights" / "last.pt"
    assert load_checkpoint(last)["epoch"] == 0
    resumed = train({"task": "classify", "resume": str(last), "workers": 0})
    assert resumed.save_dir == last.parent.parent and resumed.epochs_completed == 2
    want, got = (load_checkpoint(r.last)["model"] for r in (reference, resumed))
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in got)
    rows = (resumed.save_dir / "results.csv").read_text().splitlines()
    assert len(rows) == 3  # header + epoch 0 (before the interruption) + epoch 1
    with pytest.raises(ValueError, match="already finished"):
        train({"task": "classify", "resume": str(last), "workers": 0})


# ---------------------------------------------------------------------------------------------------- val / predict
def test_val_and_predict_entry_points(yolo_run, colour_data, tmp_path):
    result = yolo_run[0]
    assert val_main(["--task", "classify", "--weights", str(result.best), "--data", str(colour_data), "--imgsz",
                     str(IMGSZ), "--workers", "0", "--device", "cpu", "--project", str(tmp_path / "val")]) == 0
    assert (tmp_path / "val" / "exp" / "confusion_matrix.png").is_file()

    images = colour_data / "val" / "red"
    code = predict_main(["--task", "classify", "--weights", str(result.best), "--source", str(images), "--imgsz",
                         str(IMGSZ), "--topk", "2", "--save-txt", "--device", "cpu", "--project", str(tmp_path / "p")])
    assert code == 0
    out = tmp_path / "p" / "exp"
    assert len(list(out.glob("*.jpg"))) == len(list(images.glob("*.jpg")))
    lines = (out / "labels" / "000.txt").read_text().splitlines()
    assert len(lines) == 2 and lines[0].split()[1] in HUES and 0 <= float(lines[0].split()[0]) <= 1

    report = predict_classifier(model=result.model, source=str(images), imgsz=IMGSZ, topk=5, device="cpu",
                                verbose=False)
    assert len(report.predictions[0].top) == 3  # top-k capped at nc
    assert all(abs(sum(p for _, _, p in pred.top) - 1) < 1e-4 for pred in report.predictions)
    red = sum(pred.name == "red" for pred in report.predictions) / len(report.predictions)
    assert red > 1 / 3

    det_cfg = dict(yaml.safe_load((ROOT / "configs/yolov5n.yaml").read_text()), width_multiple=0.125)
    from yolobone.utils.checkpoint import save_checkpoint
    det_ckpt = save_checkpoint({"model": DetectionModel(det_cfg, nc=3).state_dict(), "model_yaml": det_cfg,
                                "task": "detect", "nc": 3}, tmp_path / "det.pt")
    assert val_main(["--weights", str(det_ckpt), "--data", str(colour_data), "--device", "cpu",
                     "--project", str(tmp_path / "v")]) == 2
    assert predict_main(["--weights", str(tmp_path / "missing.pt"), "--source", str(images),
                         "--project", str(tmp_path / "p")]) == 2


def test_evaluate_counts_topk():
    """top-1/top-5 from ranked predictions on a hand-made 6-class example."""
    class Fixed(torch.nn.Module):
        nc, names = 6, list("abcdef")

        def forward(self, x):
            return x

    logits = torch.tensor([[6., 5, 4, 3, 2, 1], [1, 6, 5, 4, 3, 2], [6, 5, 4, 3, 2, 1]])
    loader = [(logits, torch.tensor([0, 0, 4]))]  # right; 6th guess; 5th guess
    m = evaluate(Fixed(), loader)
    assert m.top1 == pytest.approx(1 / 3) and m.top5 == pytest.approx(2 / 3)
    assert m.confusion.sum() == 3 and m.confusion[0, 0] == 1 and m.confusion[1, 0] == 1 and m.confusion[0, 4] == 1
    assert [row[0] for row in m.per_class()] == ["a", "e"]
