"""The shared training engine with the classification task: warmup, EMA, early-stopping patience, exact resume and
2-process gloo DDP all come from yolobone/engine/core, not from a classification copy of the loop.

Runs are 2 epochs of the tiny yolov5n-cls on a 3-colour ImageFolder of 12 training images (3 batches of 4).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from yolobone.engine.classify.options import ClassifyOptions
from yolobone.engine.classify.task import ClassifyTask
from yolobone.engine.core.trainer import run_training
from yolobone.engine.train import train
from tests.helpers import tiny_cls_yaml, write_colour_folder
from yolobone.utils.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
LR0 = 0.003


def _opts(data: Path, project: Path, **kw) -> dict:
    o = dict(task="classify", cfg=tiny_cls_yaml(), data=str(data), epochs=2, imgsz=64, batch_size=4, workers=0,
             device="cpu", project=str(project), lr0=LR0, jitter=0.0, crop_scale=0.5, seed=0, noplots=True,
             warmup_epochs=1.0, patience=5)
    o.update(kw)
    return o


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_colour_folder(tmp_path_factory.mktemp("colours"), n_train=4, n_val=2)


def test_classifier_warmup_ema_patience_and_exact_resume(data, tmp_path):
    seen = {}

    def record(t):
        seen[t.epoch] = (t.nw, t.nb, t.ema.updates, t.stopper.state_dict(), t.accumulate)

    reference = train(_opts(data, tmp_path / "a"), callbacks={"on_fit_epoch_end": record})
    nw, nb = seen[0][0], seen[0][1]
    assert nb == 3 and nw == 100  # warmup: max(1 epoch x 3 batches, 100) iterations, longer than the run
    lr1 = 1 - 1 / 2 * (1 - 0.01)  # the linear schedule's factor at epoch 1 of 2 (lrf 0.01)
    lrs = [row["lr/0"] for row in reference.history]
    assert lrs == pytest.approx([LR0 * (nb - 1) / nw, LR0 * lr1 * (2 * nb - 1) / nw], rel=1e-4)  # CSV keeps 5 digits
    assert [seen[e][2] for e in (0, 1)] == [nb, 2 * nb]  # one EMA update per optimizer step, no accumulation
    assert all(seen[e][4] == 1 for e in (0, 1))
    top1 = [row["metrics/accuracy_top1"] for row in reference.history]
    assert seen[1][3]["best_fitness"] == max(top1) == reference.best_fitness  # the stopper saw every epoch
    tb = list(reference.save_dir.glob("events.out.tfevents.*"))
    assert tb, "TensorBoard scalars are written for classification too"

    class Stop(Exception):
        pass

    def stop(t):
        raise Stop

    with pytest.raises(Stop):
        train(_opts(data, tmp_path / "b"), callbacks={"on_fit_epoch_end": stop})
    last = tmp_path / "b" / "exp" / "weights" / "last.pt"
    assert load_checkpoint(last)["epoch"] == 0
    resumed = train({"task": "classify", "resume": str(last), "workers": 0})
    assert resumed.epochs_completed == 2 and resumed.save_dir == last.parent.parent
    want, got = (load_checkpoint(r.last)["model"] for r in (reference, resumed))
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)
    assert resumed.results == reference.results
    rows = [r.split(",") for r in (resumed.save_dir / "results.csv").read_text().splitlines()[1:]]
    ref_rows = [r.split(",") for r in (reference.save_dir / "results.csv").read_text().splitlines()[1:]]
    assert rows == ref_rows


def test_classifier_early_stopping_patience(data, tmp_path):
    """The shared EarlyStopping ends a classification run after `patience` epochs without a better fitness."""

    class Declining(ClassifyTask):
        """Fitness 1, 1/2, 1/3, ... per epoch: never better than epoch 0."""

        calls = 0

        def fitness(self, results, rules=None):
            self.calls += 1
            return 1.0 / self.calls

    result = run_training(ClassifyOptions.from_any(_opts(data, tmp_path, epochs=4, patience=1)), Declining())
    assert result.stopped_early and result.epochs_completed == 2 and result.best_epoch == 0
    assert load_checkpoint(result.last)["epoch"] == -1 and load_checkpoint(result.best)["epoch"] == -1


@pytest.mark.slow
def test_classifier_ddp_two_process_gloo(data, tmp_path):
    cfg = tmp_path / "tiny-cls.yaml"
    cfg.write_text(yaml.safe_dump({k: v for k, v in tiny_cls_yaml().items() if k != "yaml_file"}, sort_keys=False))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "train.py",
           "--task", "classify", "--cfg", str(cfg), "--data", str(data), "--epochs", "2", "--batch-size", "4",
           "--imgsz", "64", "--device", "cpu", "--workers", "0", "--project", str(tmp_path / "runs"), "--name",
           "ddp", "--noplots", "--warmup-epochs", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    runs = sorted((tmp_path / "runs").iterdir())
    assert [r.name for r in runs] == ["ddp"], "only rank 0 creates a run folder"
    assert sorted(f.name for f in (runs[0] / "weights").iterdir()) == ["best.pt", "last.pt"]
    ckpt = torch.load(runs[0] / "weights/last.pt", weights_only=True)
    assert ckpt["epoch"] == -1 and ckpt["task"] == "classify"
    assert "DDP: rank 1/2" in p.stderr and "DDP: rank 0/2" in p.stderr
    assert len((runs[0] / "results.csv").read_text().splitlines()) == 3
