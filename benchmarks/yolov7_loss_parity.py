"""YOLOv7's OTA loss, ours vs YOLOv7's own (`yolov7.utils.loss.ComputeLossOTA`, yolov7detect 1.0.1), on shared
predictions and targets: the loss, its three terms and the gradient with respect to every prediction map.

    python benchmarks/yolov7_loss_parity.py                       # yolov7-tiny anchors, 4 images, 8 boxes each
    python benchmarks/yolov7_loss_parity.py --cfg configs/yolov7/yolov7.yaml --batch 2 --boxes 20 --seeds 0 1 2
    python benchmarks/yolov7_loss_parity.py --cfg configs/yolov7/yolov7-w6.yaml --img 256  # ComputeLossAuxOTA

The reference runs in the YOLOv5 reference venv (../shared/yolov5-ref, where yolov7detect is installed with
`pip install --no-deps yolov7detect==1.0.1`). Predictions are random maps shaped like the model's Detect outputs at
--img; targets are random boxes (several per image, overlapping, so that SimOTA's dynamic k and its conflict rule
both act). Hyperparameters are hyp.scratch.tiny's loss gains, scaled for the level count as YOLOv7's train.py and our
LossGains do (image-size term at 640), so both sides see the same gains. Prints per seed whether every figure is bit-identical and the largest
difference otherwise.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.learning_parity import REF_SETUP  # noqa: E402
from yolobone.models.loss_ota import ComputeLossAuxOTA, ComputeLossOTA  # noqa: E402
from yolobone.models.yolov7_heads import IAuxDetect  # noqa: E402
from yolobone.models.yolo import DetectionModel  # noqa: E402

HYP = {"box": 0.05, "obj": 1.0, "cls": 0.5, "cls_pw": 1.0, "obj_pw": 1.0, "fl_gamma": 0.0, "anchor_t": 4.0}

REF_LOSS = """
import sys, types, torch
import torch.nn as nn
from yolov7.utils.loss import ComputeLossAuxOTA, ComputeLossOTA
d = torch.load(sys.argv[1], weights_only=True)
det = types.SimpleNamespace(na=int(d["na"]), nc=int(d["nc"]), nl=len(d["stride"]), anchors=d["anchors"],
                            stride=d["stride"])
class Holder(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.model = [det]
holder = Holder()
holder.hyp, holder.gr = {hyp}, 1.0
nl, nc = det.nl, det.nc  # gains scaled as YOLOv7's train.py does (at --img 640 the image term is 1)
holder.hyp["box"] *= 3. / nl
holder.hyp["cls"] *= nc / 80. * 3. / nl
holder.hyp["obj"] *= 1.0 * 3. / nl
preds = [p.clone().requires_grad_(True) for p in d["preds"]]
kind = ComputeLossAuxOTA if len(preds) > len(d["stride"]) else ComputeLossOTA
loss, items = kind(holder)(preds, d["targets"], d["imgs"])
loss.backward()
torch.save({{"loss": loss.detach(), "items": items, "grads": [p.grad for p in preds]}}, sys.argv[2])
"""


def shared_inputs(model: DetectionModel, batch: int, boxes: int, img: int, seed: int) -> Dict[str, object]:
    """Random Detect-shaped maps and targets (img, cls, cx, cy, w, h normalised) for one seed."""
    g = torch.Generator().manual_seed(seed)
    det = model.detect
    heads = 2 if isinstance(det, IAuxDetect) else 1  # IAuxDetect: lead maps, then auxiliary maps
    preds = [torch.randn(batch, det.na, img // int(s), img // int(s), det.no, generator=g) * 1.5
             for _ in range(heads) for s in det.stride.tolist()]
    rows = []
    for b in range(batch):
        xy = torch.rand(boxes, 2, generator=g) * 0.6 + 0.2
        wh = torch.rand(boxes, 2, generator=g) * 0.35 + 0.03
        cls = torch.randint(0, det.nc, (boxes, 1), generator=g).float()
        rows.append(torch.cat((torch.full((boxes, 1), float(b)), cls, xy, wh), 1))
    return {"preds": preds, "targets": torch.cat(rows), "imgs": torch.zeros(batch, 3, img, img),
            "anchors": det.anchors.clone(), "stride": det.stride.clone(), "na": det.na, "nc": det.nc}


def ours(model: DetectionModel, d: Dict[str, object]) -> Dict[str, object]:
    preds = [p.clone().requires_grad_(True) for p in d["preds"]]
    kind = ComputeLossAuxOTA if isinstance(model.detect, IAuxDetect) else ComputeLossOTA
    loss, items = kind(model.detect, HYP, imgsz=640)(preds, d["targets"])
    loss.backward()
    return {"loss": loss.detach(), "items": torch.cat((items, loss.detach() / preds[0].shape[0])),
            "grads": [p.grad for p in preds]}


def reference(d: Dict[str, object], workdir: Path, setup: Path) -> Dict[str, object]:
    src, out = workdir / "shared.pt", workdir / "ref.pt"
    torch.save(d, src)
    code = REF_LOSS.format(hyp=repr(HYP))
    cmd = f". {shlex.quote(str(setup))} >/dev/null 2>&1 && python -c {shlex.quote(code)} {src} {out}"
    subprocess.run(["bash", "-c", cmd], cwd=workdir, check=True,
                   env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "OMP_NUM_THREADS": "1"})
    return torch.load(out, weights_only=True)


def compare(a: Dict[str, object], b: Dict[str, object]) -> List[str]:
    """'name: identical' or 'name: max |diff| x' for the loss, the four items and each gradient map."""
    pairs = [("loss", a["loss"], b["loss"]), ("box/obj/cls/total", a["items"], b["items"])]
    pairs += [(f"grad P{i}", x, y) for i, (x, y) in enumerate(zip(a["grads"], b["grads"]))]
    return [f"{name}: " + ("identical" if torch.equal(x.float().view(-1), y.float().view(-1)) else
                           f"max |diff| {float((x.float().view(-1) - y.float().view(-1)).abs().max()):.3g}")
            for name, x, y in pairs]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cfg", default=str(ROOT / "configs" / "yolov7" / "yolov7-tiny.yaml"))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--boxes", type=int, default=8, help="targets per image")
    ap.add_argument("--img", type=int, default=320)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--ref-setup", type=Path, default=REF_SETUP, help="the reference venv's setup.sh")
    opt = ap.parse_args()
    torch.set_num_threads(1)
    model = DetectionModel(opt.cfg, nc=80)
    with tempfile.TemporaryDirectory() as tmp:
        for seed in opt.seeds:
            d = shared_inputs(model, opt.batch, opt.boxes, opt.img, seed)
            mine, ref = ours(model, d), reference(d, Path(tmp), opt.ref_setup)
            print(f"seed {seed}: loss ours {float(mine['loss']):.9g} yolov7 {float(ref['loss']):.9g}; "
                  + "; ".join(compare(mine, ref)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
