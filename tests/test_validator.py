"""validate(): perfect predictions score mAP 1 after letterbox mapping; shifted ones score lower; outputs written."""
from __future__ import annotations

import json
from typing import List

import pytest
import torch
import torch.nn as nn

from yolobone.engine.detect.validator import ValResult, validate
from yolobone.data.datasets import create_dataloader
from yolobone.data.synthetic import make_detection_dataset


class ReplayModel(nn.Module):
    """Returns prepared decoded outputs, one tensor per batch, in loader order (eval-mode output format)."""

    def __init__(self, outputs: List[torch.Tensor]):
        super().__init__()
        self.outputs = outputs
        self.calls = 0
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = self.outputs[self.calls]
        self.calls += 1
        assert out.shape[0] == x.shape[0]
        return out, []


def _perfect_outputs(loader, nc: int, shift: float = 0.0) -> List[torch.Tensor]:
    """Ground truth of every batch as decoded predictions (cx, cy, w, h in input pixels, obj 1, one-hot class)."""
    outs = []
    for im, targets, _, _ in loader:
        b, _, h, w = im.shape
        n = max(int(torch.bincount(targets[:, 0].long(), minlength=b).max()), 1) if len(targets) else 1
        out = torch.zeros(b, n, 5 + nc)
        fill = [0] * b
        for img, cls, cx, cy, bw, bh in targets.tolist():
            i = int(img)
            out[i, fill[i], :4] = torch.tensor([cx * w + shift * bw * w, cy * h, bw * w, bh * h])
            out[i, fill[i], 4] = 0.9
            out[i, fill[i], 5 + int(cls)] = 1.0
            fill[i] += 1
        outs.append(out)
    return outs


@pytest.fixture(scope="module")
def loader(tmp_path_factory):
    root = tmp_path_factory.mktemp("val")
    data = make_detection_dataset(root, n_train=1, n_val=10, imgsz=96, verbose=False)
    # rect batches with padding: images are letterboxed, so boxes must be mapped back to each original image
    dl, _ = create_dataloader(root / "images/val", 96, 4, 32, rect=True, pad=0.5, nc=6)
    return dl, data


def test_perfect_predictions_score_one(loader, tmp_path):
    dl, _ = loader
    names = ["circle", "square", "triangle", "star", "cross", "ring"]
    res = validate(ReplayModel(_perfect_outputs(dl, 6)), dl, names=names, save_dir=tmp_path, plots=True,
                   save_txt=True, save_conf=True, save_json=True, verbose=True)
    assert isinstance(res, ValResult)
    assert res.seen == 10 and res.nt.sum() > 0
    assert res.map50 == pytest.approx(1.0) and res.map50_95 == pytest.approx(1.0)
    assert res.mp == pytest.approx(1.0) and res.mr == pytest.approx(1.0)
    assert res.fitness == pytest.approx(1.0) and len(res.maps) == 6
    assert res.loss == (0.0, 0.0, 0.0) and set(res.speed) == {"pre", "inf", "nms"}
    assert [c.instances for c in res.classes] == [int(n) for n in res.nt if n]
    for f in ("confusion_matrix.png", "PR_curve.png", "val_batch0_labels.jpg", "val_batch0_pred.jpg",
              "predictions.json"):
        assert (tmp_path / f).is_file(), f
    records = json.loads((tmp_path / "predictions.json").read_text())
    assert len(records) == int(res.nt.sum()) and isinstance(records[0]["image_id"], int)
    txt = sorted((tmp_path / "labels").glob("*.txt"))
    assert txt and all(len(line.split()) == 6 for f in txt for line in f.read_text().splitlines())


def test_shifted_predictions_score_lower_and_single_cls(loader):
    dl, _ = loader
    names = ["circle", "square", "triangle", "star", "cross", "ring"]
    # boxes shifted by 30% of their width: IoU ~0.54, above 0.5 but below the stricter thresholds
    res = validate(ReplayModel(_perfect_outputs(dl, 6, shift=0.3)), dl, names=names)
    assert res.map50 == pytest.approx(1.0) and res.map50_95 < 0.2
    single = validate(ReplayModel(_perfect_outputs(dl, 6)), dl, names=names, single_cls=True)
    assert single.map50_95 == pytest.approx(1.0) and len(single.maps) == 1 and single.nt.tolist() == [res.nt.sum()]
