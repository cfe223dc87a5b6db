"""Step parity with Ultralytics' trainer: the same initial weights and the same batches, both training loops side by side.

    python benchmarks/ultralytics_steps.py --data ~/.cache/yolobone/datasets/digits-det-1200-500/data.yaml
    python benchmarks/ultralytics_steps.py --cfg yolov5nu --run-epochs 3 --seed 1 --out runs/steps

1. In the reference venv (../shared/yolov5-ref), Ultralytics' DetectionTrainer (what `yolo detect train` runs, the
   reference of learning_parity.py --reference ultralytics) trains the first --run-epochs epochs of an --epochs
   schedule. Callbacks save its initial weights (fp32), every batch its loader gives (in our batch format, the one
   benchmarks/replay_train.py reads), each iteration's total loss and the weights after its first optimizer step.
2. Ours (train.py's trainer, the anchor-free recipe it picks by itself) starts from those weights, copied tensor by
   tensor in state-dict order, trains on those batches over the same schedule and records the same.
3. It prints both losses per iteration with their relative difference, and the weights' difference after the first
   step and at the end. With identical updates the losses agree to float rounding over the first steps and then
   drift apart slowly (rounding grows through training); a difference in the update shows at once.
Exit status 1 when the first --strict iterations differ by more than --tol (relative).
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.learning_parity import REF_SETUP, side_copy  # noqa: E402

REF_RUN = """
import json, sys, torch
from pathlib import Path
from ultralytics.models.yolo.detect import DetectionTrainer
out, run_epochs = Path({out!r}), {run_epochs}


class Enough(Exception):
    pass


tr = DetectionTrainer(overrides=dict(model={cfg!r} + '.yaml', data={data!r}, imgsz={img}, batch={batch},
                                     epochs={epochs}, seed={seed}, device='cpu', workers={workers}, project=str(out),
                                     name='ultralytics', exist_ok=True, plots=False, pretrained=False, amp=False,
                                     val=False))
losses, batches = [], []


def state(model):
    return {{k: v.detach().clone().float() for k, v in model.state_dict().items()}}


def record_batch(pre):
    def wrapped(batch):
        targets = torch.cat((batch['batch_idx'].view(-1, 1).float(), batch['cls'].view(-1, 1).float(),
                             batch['bboxes'].float()), 1)
        batches.append((batch['img'].clone(), targets))
        return pre(batch)
    return wrapped


def on_train_start(t):
    torch.save(state(t.model), out / 'init.pt')
    t.preprocess_batch = record_batch(t.preprocess_batch)


def on_train_batch_end(t):
    losses.append(float(t.loss.detach()))
    if len(losses) == 1:
        torch.save(state(t.model), out / 'step1.pt')


def on_fit_epoch_end(t):
    torch.save(batches[:], out / 'batches' / f'e{{t.epoch:03d}}.pt')
    batches.clear()
    if t.epoch + 1 >= run_epochs:
        torch.save(state(t.model), out / 'end.pt')
        raise Enough


(out / 'batches').mkdir(parents=True, exist_ok=True)
for event, fn in (('on_train_start', on_train_start), ('on_train_batch_end', on_train_batch_end),
                  ('on_fit_epoch_end', on_fit_epoch_end)):
    tr.add_callback(event, fn)
try:
    tr.train()
except Enough:
    pass
(out / 'losses.json').write_text(json.dumps(losses))
"""


class Enough(Exception):
    """Raised after --run-epochs epochs: the schedule is the full --epochs one, the run stops early."""


def run_reference(a: argparse.Namespace, data: Path, out: Path) -> None:
    code = REF_RUN.format(out=str(out), run_epochs=a.run_epochs, cfg=a.cfg, data=str(data), img=a.img, batch=a.batch,
                          epochs=a.epochs, seed=a.seed, workers=a.workers)
    cmd = f". {shlex.quote(str(REF_SETUP))} >/dev/null 2>&1 && python -c {shlex.quote(code)}"
    log = out / "ultralytics.log"
    with log.open("w") as f:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "OMP_NUM_THREADS": str(a.threads)}
        if subprocess.run(["bash", "-c", cmd], cwd=out, env=env, stdout=f, stderr=subprocess.STDOUT).returncode:
            raise SystemExit(f"Ultralytics' run failed: see {log}")


def copy_state(model: torch.nn.Module, ref: Dict[str, torch.Tensor]) -> None:
    """Ultralytics' tensors into ours, in state-dict order (the two layer lists are built the same way)."""
    ours = model.state_dict()
    if len(ours) != len(ref):
        raise SystemExit(f"state dicts differ in length: ours {len(ours)}, Ultralytics {len(ref)}")
    with torch.no_grad():
        for (k, v), (rk, rv) in zip(ours.items(), ref.items()):
            if v.shape != rv.shape:
                raise SystemExit(f"{k} {tuple(v.shape)} vs Ultralytics' {rk} {tuple(rv.shape)}")
            v.copy_(rv)


def run_ours(a: argparse.Namespace, data: Path, out: Path) -> None:
    from benchmarks.replay_train import ReplayLoader
    from yolobone.engine.train import train
    from yolobone.utils.ema import ModelEMA
    losses: List[float] = []
    init = torch.load(out / "init.pt", weights_only=True)

    def on_train_start(t: Any) -> None:
        copy_state(t.model, init)
        t.ema = ModelEMA(t.model)  # the EMA starts from the copied weights, as Ultralytics' does from its own
        t.train_loader = ReplayLoader(out / "batches", t.train_loader)
        criterion, step = t.criterion, t._optimizer_step

        def recorded(pred: Any, targets: torch.Tensor) -> Any:
            total, items = criterion(pred, targets)
            losses.append(float(total.detach()))
            return total, items

        def first_step() -> None:
            step()
            if not (out / "ours_step1.pt").exists():
                torch.save({k: v.detach().clone().float() for k, v in t.model.state_dict().items()},
                           out / "ours_step1.pt")

        t.criterion, t._optimizer_step = recorded, first_step

    def on_fit_epoch_end(t: Any) -> None:
        if t.epoch + 1 >= a.run_epochs:
            torch.save({k: v.detach().clone().float() for k, v in t.model.state_dict().items()}, out / "ours_end.pt")
            raise Enough

    options = dict(cfg=str(ROOT / "configs" / f"{a.cfg}.yaml"), data=str(data), weights="", imgsz=a.img,
                   batch_size=a.batch, epochs=a.epochs, seed=a.seed, device="cpu", workers=0, noval=True,
                   noplots=True, project=str(out), name="ours", exist_ok=True)
    try:
        train(options, callbacks={"on_train_start": on_train_start, "on_fit_epoch_end": on_fit_epoch_end})
    except Enough:
        pass
    (out / "ours_losses.json").write_text(json.dumps(losses))


def weight_gap(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> str:
    """Largest |difference| over all float tensors relative to that tensor's largest |value|, and where."""
    worst, where = 0.0, ""
    for (k, v), w in zip(a.items(), b.values()):
        if v.is_floating_point() and v.numel():
            rel = float((v - w).abs().max() / v.abs().max().clamp_min(1e-12))
            if rel > worst:
                worst, where = rel, k
    return f"{worst:.2e} ({where})"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, type=Path, help="data.yaml")
    p.add_argument("--cfg", default="yolo11n", help="configs/<cfg>.yaml here, <cfg>.yaml in Ultralytics")
    p.add_argument("--img", type=int, default=160)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=60, help="the schedule's length (warmup, LR decay, close-mosaic)")
    p.add_argument("--run-epochs", type=int, default=2, help="epochs actually trained")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="Ultralytics' loader workers")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--strict", type=int, default=5, help="iterations that must agree within --tol")
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "ultralytics_steps")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = (a.out / f"{a.cfg}-seed{a.seed}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "losses.json").is_file():
        run_reference(a, side_copy(a.data.resolve(), out / "data-ultralytics"), out)
    run_ours(a, side_copy(a.data.resolve(), out / "data-ours"), out)
    ref, ours = json.loads((out / "losses.json").read_text()), json.loads((out / "ours_losses.json").read_text())
    n = min(len(ref), len(ours))
    print(f"{'iteration':>9s} {'Ultralytics':>12s} {'ours':>12s} {'rel diff':>9s}")
    rel = [abs(o - r) / max(abs(r), 1e-12) for r, o in zip(ref, ours)]
    for i in range(n):
        if i < 10 or i % 10 == 9 or i == n - 1:
            print(f"{i:9d} {ref[i]:12.4f} {ours[i]:12.4f} {rel[i]:9.2e}")
    per_epoch = n // a.run_epochs
    print(f"mean loss per epoch ({per_epoch} iterations): epoch, Ultralytics, ours, ours / Ultralytics")
    for e in range(a.run_epochs):
        r, o = (sum(x[e * per_epoch:(e + 1) * per_epoch]) / per_epoch for x in (ref, ours))
        print(f"{e:5d} {r:12.4f} {o:12.4f} {o / r:8.4f}")
    print("weights after the first step, largest relative difference:",
          weight_gap(torch.load(out / "step1.pt", weights_only=True), torch.load(out / "ours_step1.pt", weights_only=True)))
    print(f"weights after {a.run_epochs} epochs, largest relative difference:",
          weight_gap(torch.load(out / "end.pt", weights_only=True), torch.load(out / "ours_end.pt", weights_only=True)))
    bad = [i for i in range(min(a.strict, n)) if rel[i] > a.tol]
    if bad:
        print(f"iterations {bad} differ by more than {a.tol:g}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
