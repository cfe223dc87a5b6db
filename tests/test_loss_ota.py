"""YOLOv7's OTA loss: SimOTA assignment rules, the loss it feeds, and (where the reference venv exists) bit-identity
with yolov7detect's ComputeLossOTA via benchmarks/yolov7_loss_parity.py."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from yolobone.models.heads import Detect
from yolobone.models.loss import ComputeLoss
from yolobone.models.loss_ota import OTA_TOPK_IOU, ComputeLossOTA
from yolobone.utils.boxes import box_iou, xywh2xyxy
from yolobone.utils.hyp import Hyp

ROOT = Path(__file__).resolve().parents[1]
# ../shared/yolov5-ref from the main checkout, ../../shared from a worktree under wt/
REF_SETUP = next((p / "yolov5-ref" / "setup.sh" for p in (ROOT.parent / "shared", ROOT.parents[1] / "shared")
                  if (p / "yolov5-ref" / "setup.sh").is_file()), ROOT.parent / "shared" / "yolov5-ref" / "setup.sh")
# the test only uses a reference venv that is already built: building one (minutes, downloads) is not a test's job
REF_VENV = Path(os.environ.get("YOLOV5_REF_VENV", Path.home() / ".cache" / "yolov5-ref" / "venv"))


def _head(nc: int = 3) -> Detect:
    """P3-P5 head with yolov7-tiny's anchors in grid units."""
    anchors = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
    det = Detect(nc=nc, anchors=anchors, ch=[8, 8, 8])
    det.stride = torch.tensor([8.0, 16.0, 32.0])
    det.anchors /= det.stride.view(-1, 1, 1)
    return det


def _inputs(det: Detect, seed: int, boxes: int = 5, bs: int = 2, img: int = 128):
    g = torch.Generator().manual_seed(seed)
    preds = [torch.randn(bs, det.na, img // s, img // s, det.no, generator=g) for s in (8, 16, 32)]
    rows = [torch.cat((torch.full((boxes, 1), float(b)), torch.randint(0, det.nc, (boxes, 1), generator=g).float(),
                       torch.rand(boxes, 2, generator=g) * 0.6 + 0.2, torch.rand(boxes, 2, generator=g) * 0.3 + 0.05),
                      1) for b in range(bs)]
    return preds, torch.cat(rows)


def _cells(indices, level: int):
    return {tuple(int(v) for v in x) for x in zip(*indices[level])}


def test_matches_are_yolov5_candidates_each_used_once():
    det = _head()
    loss = ComputeLossOTA(det, Hyp())
    preds, targets = _inputs(det, seed=0)
    _, _, cand, _ = ComputeLoss.build_targets(loss, preds, targets)
    tcls, tbox, indices, anchors = loss.build_targets(preds, targets)
    for i in range(3):
        assert _cells(indices, i) <= _cells(cand, i)
        assert len(tcls[i]) == len(tbox[i]) == len(indices[i][0]) == len(anchors[i])
    assert sum(len(t) for t in tcls) > 0


def test_one_target_keeps_its_dynamic_k_cheapest_candidates():
    """A single ground truth: no conflicts, so exactly k = max(1, int(sum of its 10 best IoUs)) candidates."""
    det = _head()
    loss = ComputeLossOTA(det, Hyp())
    preds, _ = _inputs(det, seed=1, bs=1)
    target = torch.tensor([[0.0, 1.0, 0.5, 0.5, 0.3, 0.4]])
    _, _, cand, anch = ComputeLoss.build_targets(loss, preds, target)
    boxes = []
    for i, p in enumerate(preds):
        b, a, gj, gi = cand[i]
        ps = p[b, a, gj, gi]
        xy = (ps[:, :2].sigmoid() * 2 - 0.5 + torch.stack((gi, gj), 1)) * det.stride[i]
        wh = (ps[:, 2:4].sigmoid() * 2) ** 2 * anch[i] * det.stride[i]
        boxes.append(xywh2xyxy(torch.cat((xy, wh), 1)))
    iou = box_iou(xywh2xyxy(target[:, 2:6] * 128), torch.cat(boxes))[0]
    k = max(1, int(iou.topk(min(OTA_TOPK_IOU, len(iou)))[0].sum()))
    tcls, _, _, _ = loss.build_targets(preds, target)
    assert sum(len(t) for t in tcls) == k


def test_duplicate_targets_keep_the_same_cells():
    """Two copies of one box: each candidate goes to one copy (the conflict rule), the cells kept stay the same."""
    det = _head()
    loss = ComputeLossOTA(det, Hyp())
    preds, _ = _inputs(det, seed=2, bs=1)
    one = torch.tensor([[0.0, 2.0, 0.4, 0.6, 0.25, 0.2]])
    single = loss.build_targets(preds, one)
    double = loss.build_targets(preds, torch.cat((one, one)))
    for i in range(3):
        assert _cells(single[2], i) == _cells(double[2], i)


def test_loss_backward_and_empty_batch():
    det = _head()
    loss = ComputeLossOTA(det, Hyp(), imgsz=128)
    preds, targets = _inputs(det, seed=3)
    preds = [p.requires_grad_(True) for p in preds]
    total, items = loss(preds, targets)
    total.backward()
    assert torch.isfinite(total) and items.shape == (3,) and (items > 0).all()
    assert all(torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in preds)
    total, items = loss([p.detach() for p in preds], torch.zeros(0, 6))
    assert items[0] == 0 and items[2] == 0 and items[1] > 0


@pytest.mark.slow  # two interpreters (ours and the reference venv) start: about a minute on 2 busy cores
@pytest.mark.skipif(not (REF_SETUP.is_file() and (REF_VENV / "bin" / "python").is_file()),
                    reason="the YOLOv7 reference venv is not built (`. ../shared/yolov5-ref/setup.sh` builds it)")
@pytest.mark.parametrize("cfg,img,maps", [("yolov7-tiny.yaml", 256, 3), ("yolov7-w6.yaml", 128, 8)])
def test_bit_identical_to_yolov7_ota_loss(cfg: str, img: int, maps: int):
    """ComputeLossOTA (yolov7-tiny) and ComputeLossAuxOTA (yolov7-w6, lead + auxiliary maps) against YOLOv7's."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "yolov7_loss_parity.py"), "--cfg",
                          str(ROOT / "configs" / "yolov7" / cfg), "--batch", "2", "--boxes", "6", "--img", str(img),
                          "--seeds", "5", "--ref-setup", str(REF_SETUP)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    if "No module named 'yolov7'" in out.stderr:
        pytest.skip("yolov7detect is not installed in the reference venv")
    assert out.returncode == 0, out.stderr[-2000:]
    line = [x for x in out.stdout.splitlines() if x.startswith("seed 5")][0]
    assert line.count("identical") == 2 + maps and "diff" not in line, line
