"""Anchor-free loss parity: ours (yolobone.models.loss_af) vs Ultralytics' v8DetectionLoss on the same maps and batch.

    python benchmarks/loss_parity.py                                   # needs ../shared/yolov5-ref (ultralytics)
    python benchmarks/loss_parity.py --ref-setup /work/shared/yolov5-ref/setup.sh --seeds 5
    python benchmarks/loss_parity.py --models yolov8n yolo11n yolov5nu   # whole models with the same weights

Random head maps (B, 4 * 16 + nc, H, W) on strides 8/16/32 and random targets (tiny, large, crowded and empty
images, and a batch without any target); odd seeds shift the class logits by the head's initial bias are saved to a temporary folder; the reference venv computes Ultralytics'
loss items and the gradient of its total w.r.t. the maps there, ours here. Per case it prints the largest absolute and
relative difference of the (box, cls, dfl) items and the total and of the gradients (relative to the largest gradient magnitude).
With --models, each name is built twice, by Ultralytics from its own YAML (<name>.yaml) and by us from
configs/<name>.yaml (the anchor-free configs, issue 34); Ultralytics' initial weights are copied into ours parameter
by parameter, and both losses and the gradients w.r.t. every weight are compared on one batch of 2 random 128 px
images in train mode.
Exit status 1 when a difference exceeds --tol (relative), 2 when the reference cannot run.
"""
from __future__ import annotations

import argparse
import math
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Sequence

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from yolobone.models.loss_af import AnchorFreeLoss  # noqa: E402

REF_SETUP = ROOT.parent / "shared" / "yolov5-ref" / "setup.sh"
STRIDES = (8.0, 16.0, 32.0)
REG_MAX = 16
GAINS = {"box": 7.5, "cls": 0.5, "dfl": 1.5}
# (image size, batch, classes): small, COCO-sized classes, rectangular-free 320 px
SHAPES = ((64, 2, 1), (128, 4, 3), (160, 2, 80), (320, 2, 10))

REF_CODE = """
import sys, types, torch, torch.nn as nn
from ultralytics.utils.loss import v8DetectionLoss
cases = torch.load(sys.argv[1])
out = []
for c in cases:
    head = nn.Module(); head.stride = torch.tensor(c['strides']); head.nc = c['nc']; head.reg_max = c['reg_max']
    model = nn.Module(); model.model = nn.ModuleList([head]); model.p = nn.Parameter(torch.zeros(1))
    model.args = types.SimpleNamespace(**c['gains'])
    crit = v8DetectionLoss(model)
    feats = [m.clone().requires_grad_(True) for m in c['maps']]
    bs, no = feats[0].shape[:2]
    flat = torch.cat([f.view(bs, no, -1) for f in feats], 2)
    boxes, scores = flat.split((4 * c['reg_max'], c['nc']), 1)
    t = c['targets']
    batch = {'batch_idx': t[:, 0], 'cls': t[:, 1:2], 'bboxes': t[:, 2:6]}
    preds = {'boxes': boxes, 'scores': scores, 'feats': feats} if hasattr(crit, 'parse_output') else feats
    loss, items = crit(preds, batch)
    loss.sum().backward()
    items = torch.stack(list(items.values())) if isinstance(items, dict) else items
    out.append({'total': float(loss.sum()), 'items': items.detach(), 'grads': [f.grad for f in feats]})
torch.save(out, sys.argv[2])
"""


REF_MODEL_CODE = """
import sys, torch
from ultralytics.cfg import get_cfg
from ultralytics.nn.tasks import DetectionModel
out = []
for c in torch.load(sys.argv[1]):
    torch.manual_seed(0)
    m = DetectionModel(c['ref_yaml'], nc=c['nc'], verbose=False)
    m.args = get_cfg()  # default.yaml: box 7.5, cls 0.5, dfl 1.5
    m.train()
    params = [p.detach().clone() for p in m.parameters()]
    t = c['targets']
    loss, items = m.loss({'batch_idx': t[:, 0], 'cls': t[:, 1:2], 'bboxes': t[:, 2:6]}, m(c['imgs']))
    loss.sum().backward()
    items = torch.stack(list(items.values())) if isinstance(items, dict) else items
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in m.parameters()]  # DFL's fixed conv
    out.append({'params': params, 'grads': grads, 'items': items.detach(),
                'total': float(loss.sum().detach())})
torch.save(out, sys.argv[2])
"""
MODEL_TARGETS = torch.tensor([[0, 1, 0.5, 0.5, 0.4, 0.3], [0, 2, 0.2, 0.3, 0.1, 0.1], [1, 0, 0.6, 0.6, 0.5, 0.5],
                              [1, 1, 0.3, 0.7, 0.05, 0.08]])


def random_targets(g: torch.Generator, bs: int, nc: int, case: int) -> torch.Tensor:
    """Targets (N, 6) [image, class, x, y, w, h] normalised: a mix of tiny and large boxes; image 1 stays empty."""
    rows = []
    for b in range(bs):
        if b == 1 or case == 0:
            continue  # an image without labels, and (case 0) a batch without any
        n = int(torch.randint(1, 12, (1,), generator=g))
        wh = torch.rand(n, 2, generator=g) * 0.6 + 0.02
        xy = wh / 2 + torch.rand(n, 2, generator=g) * (1 - wh)
        cls = torch.randint(0, nc, (n, 1), generator=g).float()
        rows.append(torch.cat((torch.full((n, 1), float(b)), cls, xy, wh), 1))
    return torch.cat(rows) if rows else torch.zeros(0, 6)


def make_cases(seeds: int) -> List[Dict[str, object]]:
    cases = []
    for seed in range(seeds):
        for k, (img, bs, nc) in enumerate(SHAPES):
            g = torch.Generator().manual_seed(1000 * seed + k)
            maps = [torch.randn(bs, 4 * REG_MAX + nc, img // int(s), img // int(s), generator=g) for s in STRIDES]
            if seed % 2:  # class logits as a freshly initialised head starts (bias log(5 / nc / (640 / s)^2))
                for m, s in zip(maps, STRIDES):
                    m[:, 4 * REG_MAX:] += math.log(5 / nc / (640 / s) ** 2)
            cases.append({"name": f"seed{seed} {img}px b{bs} nc{nc}", "maps": maps, "strides": list(STRIDES),
                          "nc": nc, "reg_max": REG_MAX, "gains": dict(GAINS),
                          "targets": random_targets(g, bs, nc, seed * len(SHAPES) + k)})
    return cases


def ours(case: Dict[str, object]) -> Dict[str, object]:
    head = torch.nn.Module()
    head.stride, head.nc, head.reg_max = torch.tensor(case["strides"]), case["nc"], case["reg_max"]
    maps = [m.clone().requires_grad_(True) for m in case["maps"]]
    total, items = AnchorFreeLoss(head, case["gains"])(maps, case["targets"])
    total.backward()
    return {"total": float(total.detach()), "items": items, "grads": [m.grad for m in maps]}


def model_cases(names: Sequence[str]) -> List[Dict[str, object]]:
    imgs = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    return [{"name": n, "ref_yaml": f"{n}.yaml", "nc": 3, "imgs": imgs, "targets": MODEL_TARGETS} for n in names]


def ours_model(case: Dict[str, object], ref: Dict[str, object]) -> Dict[str, object]:
    """Our model from configs/<name>.yaml with the reference's weights: loss items and weight gradients."""
    from yolobone.models import DetectionModel
    model = DetectionModel(str(ROOT / "configs" / case["ref_yaml"]), nc=case["nc"])
    params = list(model.parameters())
    shapes = [tuple(p.shape) for p in params], [tuple(p.shape) for p in ref["params"]]
    if shapes[0] != shapes[1]:
        raise SystemExit(f"{case['name']}: our parameters ({len(params)}) do not line up with Ultralytics' "
                         f"({len(ref['params'])}) in order and shape")
    with torch.no_grad():
        for p, q in zip(params, ref["params"]):
            p.copy_(q)
    model.train()
    total, items = AnchorFreeLoss(model.detect, GAINS)(model(case["imgs"]), case["targets"])
    total.backward()
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    return {"total": float(total.detach()), "items": items, "grads": grads}


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max(|b|.max(), 1e-12)."""
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def compare(cases: Sequence[Dict[str, object]], refs: Sequence[Dict[str, object]], tol: float,
            models: bool = False) -> bool:
    print(f"{'case':28s} {'targets':>7s} {'box/cls/dfl (ours)':>26s} {'loss max abs':>12s} {'loss max rel':>12s} "
          f"{'grad max abs':>12s} {'grad max rel':>12s}   (gradients w.r.t. the {'weights' if models else 'maps'})")
    ok = True
    for case, ref in zip(cases, refs):
        mine = ours_model(case, ref) if models else ours(case)
        got = torch.cat((mine["items"], torch.tensor([mine["total"]])))
        want = torch.cat((ref["items"], torch.tensor([ref["total"]])))
        items_abs = float((got - want).abs().max())
        items_rel = float(((got - want).abs() / want.abs().clamp(min=1e-12)).max())
        g_mine, g_ref = torch.cat([g.flatten() for g in mine["grads"]]), torch.cat([g.flatten() for g in ref["grads"]])
        g_abs, g_rel = float((g_mine - g_ref).abs().max()), rel_diff(g_mine, g_ref)
        ok &= items_rel <= tol and g_rel <= tol
        shown = "/".join(f"{v:.4g}" for v in mine["items"].tolist())
        print(f"{case['name']:28s} {len(case['targets']):7d} {shown:>26s} {items_abs:12.3g} {items_rel:12.3g} "
              f"{g_abs:12.3g} {g_rel:12.3g}")
    return ok


def main(argv: Sequence[str] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref-setup", type=Path, default=REF_SETUP, help="setup.sh of the reference venv (ultralytics)")
    p.add_argument("--seeds", type=int, default=3, help="random cases per shape")
    p.add_argument("--tol", type=float, default=1e-4, help="largest relative difference accepted")
    p.add_argument("--models", nargs="*", default=[], help="whole models instead of random maps: yolov8n yolo11n ...")
    a = p.parse_args(argv)
    if not a.ref_setup.is_file():
        print(f"reference venv not found: {a.ref_setup} (pass --ref-setup)")
        return 2
    missing = [n for n in a.models if not (ROOT / "configs" / f"{n}.yaml").is_file()]
    if missing:
        print(f"--models: no configs/{missing[0]}.yaml (the anchor-free configs come with issue 34's head)")
        return 2
    torch.set_num_threads(1)  # as the reference's OMP_NUM_THREADS=1: the same kernels, the same summation order
    cases = model_cases(a.models) if a.models else make_cases(a.seeds)
    code = REF_MODEL_CODE if a.models else REF_CODE
    with tempfile.TemporaryDirectory() as tmp:
        cases_pt, ref_pt = Path(tmp) / "cases.pt", Path(tmp) / "ref.pt"
        torch.save(cases, cases_pt)
        cmd = (f". {shlex.quote(str(a.ref_setup))} >/dev/null 2>&1 && python -c {shlex.quote(code)} "
               f"{shlex.quote(str(cases_pt))} {shlex.quote(str(ref_pt))}")
        run = subprocess.run(["bash", "-c", cmd], cwd=tmp, capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "OMP_NUM_THREADS": "1"})
        if run.returncode != 0:
            print(f"the Ultralytics reference failed (exit {run.returncode}):\n{run.stderr[-2000:]}")
            return 2
        refs = torch.load(ref_pt, weights_only=True)
    ok = compare(cases, refs, a.tol, models=bool(a.models))
    print(f"{'all within' if ok else 'NOT all within'} relative tolerance {a.tol:g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
