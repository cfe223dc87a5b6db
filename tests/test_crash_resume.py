"""A training killed (SIGKILL, via the YOLOBONE_FAULT injection point) during its end sequence is finished by
--resume: best.pt, final validation, plots and strip all happen, and best.pt equals an uninterrupted run's."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest
import torch
import yaml

from yolobone.engine.detect.options import DetectOptions
from yolobone.engine.train import train
from yolobone.utils.checkpoint import CheckpointError
from yolobone.utils.faults import FAULT_ENV

from tests.tiny_runs import tiny_detection_files

ROOT = Path(__file__).resolve().parents[1]
END_FILES = ("results.png", "confusion_matrix.png", "PR_curve.png")


def _train(args, fault: Optional[str] = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    env.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg", **({FAULT_ENV: fault} if fault else {}))
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Dict[str, Path]:
    """A yolov5n-layout model at width 0.125 and 8 + 2 images of 64 px."""
    root = tmp_path_factory.mktemp("crash")
    data, cfg = tiny_detection_files(root)
    return {"root": root, "cfg": cfg, "data": data}


@pytest.fixture(scope="module")
def setup(tiny) -> Dict[str, object]:
    """The uninterrupted run, in a subprocess like the killed ones."""
    root = tiny["root"]
    args = ["--cfg", str(tiny["cfg"]), "--data", str(tiny["data"]), "--epochs", "2", "--batch-size", "8",
            "--imgsz", "64", "--device", "cpu", "--workers", "0", "--optimizer", "Adam", "--noautoanchor",
            "--noval", "--name", "exp"]  # --noval: only the last epoch is scored, so it is best.pt whatever the seed
    ref = _train([*args, "--project", str(root / "ref"), "--noplots"])  # plots draw no random numbers
    assert ref.returncode == 0, ref.stderr[-3000:]
    return {"root": root, "args": args, "ref": root / "ref" / "exp"}


def _checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.slow
@pytest.mark.parametrize("fault,plots", [("final:best.pt", True), ("strip:best.pt", False)])
def test_kill_in_end_sequence_then_resume_completes(setup, fault, plots, capture_log):
    """`final:best.pt`: killed while writing the last epoch's best.pt; `strip:best.pt`: killed in the final
    strip. Either way the kill leaves last.pt at an end stage, and --resume runs the remaining steps.
    (Plots cost most of a tiny run's time: the second case leaves them out.)"""
    project = setup["root"] / fault.replace(":", "-")
    run = project / "exp"
    killed = _train([*setup["args"], "--project", str(project), *([] if plots else ["--noplots"])], fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    weights = run / "weights"
    assert list(weights.glob(".*.tmp")), "the kill interrupted a checkpoint write"
    assert _checkpoint(weights / "last.pt")["stage"] == "best"  # every epoch done, end sequence not
    assert not any((run / f).exists() for f in END_FILES)

    with capture_log() as lines:  # in this process: the weights compared below all come from subprocesses
        resumed = train(DetectOptions(resume=str(weights / "last.pt"), device="cpu", workers=0))
    assert any("completing the end of the run" in m for m in lines)
    assert resumed.final is not None and resumed.epochs_completed == 2 and resumed.loss_history == []
    assert not list(weights.glob(".*.tmp")), "temp files of the killed write are removed on resume"
    assert all((run / f).is_file() == plots for f in END_FILES)
    ref_best, best, last = (_checkpoint(p) for p in (setup["ref"] / "weights/best.pt", weights / "best.pt",
                                                     weights / "last.pt"))
    for ckpt in (best, last):
        assert ckpt["epoch"] == -1 and ckpt["stage"] == "done" and ckpt["optimizer"] is None  # stripped
    assert best["best_fitness"] == ref_best["best_fitness"]
    assert best["model"].keys() == ref_best["model"].keys()
    for k, v in ref_best["model"].items():
        assert torch.equal(best["model"][k], v), k
    rows = (run / "results.csv").read_text().splitlines()
    assert len(rows) == 3, "epochs are not repeated"
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(DetectOptions(resume=str(weights / "last.pt"), device="cpu"))


def test_new_run_removes_stale_temp_files(tiny, tmp_path, log_lines):
    """A kill during a checkpoint write leaves `.<name>.<random>.tmp`; a run starting in that folder deletes it."""
    weights = tmp_path / "runs" / "exp" / "weights"
    weights.mkdir(parents=True)
    stale = [weights / ".last.pt.k2j3.tmp", weights / ".best.pt.x9a1.tmp"]
    for f in stale:
        f.write_bytes(b"half a checkpoint")
    train(dict(cfg=str(tiny["cfg"]), data=str(tiny["data"]), epochs=1, batch_size=8, imgsz=64, device="cpu",
               workers=0, noplots=True, noval=True, project=str(tmp_path / "runs"), name="exp", exist_ok=True))
    assert not any(f.exists() for f in stale) and (weights / "last.pt").is_file()
    assert sum("the temp file of an interrupted checkpoint write" in m for m in log_lines) == 2


@pytest.mark.slow
def test_classifier_killed_in_final_strip_then_resumed(tmp_path, capture_log):
    """Classification training has the same end sequence: killed while stripping best.pt, its --resume strips it
    (same weights), evaluates and strips last.pt."""
    from yolobone.engine.train import train
    from tests.helpers import tiny_cls_yaml, write_colour_folder

    data = write_colour_folder(tmp_path / "colours", n_train=4, n_val=2)
    cfg = tmp_path / "tiny-cls.yaml"
    cfg.write_text(yaml.safe_dump({k: v for k, v in tiny_cls_yaml().items() if k != "yaml_file"}, sort_keys=False))
    project = tmp_path / "runs"
    killed = _train(["--task", "classify", "--cfg", str(cfg), "--data", str(data), "--epochs", "2", "--imgsz", "64",
                     "--batch-size", "4", "--device", "cpu", "--workers", "0", "--noplots",
                     "--project", str(project), "--name", "exp"], fault="strip:best.pt")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    weights = project / "exp" / "weights"
    assert _checkpoint(weights / "last.pt")["stage"] == "best" and list(weights.glob(".*.tmp"))
    unstripped = _checkpoint(weights / "best.pt")
    assert unstripped["epoch"] >= 0
    with capture_log() as lines:
        result = train({"task": "classify", "resume": str(weights / "last.pt"), "device": "cpu", "workers": 0})
    assert any("completing the end of the run" in m for m in lines)
    assert result.final is not None and result.history == [] and not list(weights.glob(".*.tmp"))
    best, last = _checkpoint(weights / "best.pt"), _checkpoint(weights / "last.pt")
    assert best["epoch"] == last["epoch"] == -1 and best["stage"] == last["stage"] == "done"
    assert best["optimizer"] is None and last["optimizer"] is None
    for k, v in unstripped["model"].items():
        assert torch.equal(best["model"][k], v), k
