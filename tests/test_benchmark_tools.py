"""The figures benchmarks/learning_parity.py reports (per-seed curve summaries, the tests between sides, the
references' result files), benchmarks/replay_train.py's loader of saved batches (the pipeline swap), and the GPU
check's CPU smoke mode (benchmarks/gpu_check.sh)."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.learning_parity import curve_stats, prediction_json, read_results, side_tests
from benchmarks.replay_train import ReplayLoader


def test_curve_stats_best_last10_and_area():
    curve = [float(e) for e in range(20)]
    assert curve_stats(curve) == {"best": 19.0, "last10": statistics.mean(range(10, 20)), "auc": 9.5}
    assert curve_stats([0.1, 0.3, 0.2])["last10"] == pytest.approx(0.2)  # fewer than 10 epochs: all of them


def test_side_tests_welch_and_mann_whitney():
    t = side_tests([0.10, 0.11, 0.12], [0.20, 0.21, 0.22])
    assert t["welch_p"] < 0.01 and t["welch_p_less"] == pytest.approx(t["welch_p"] / 2)
    assert t["mw_u"] == 0.0 and t["mw_p_less"] == pytest.approx(1 / 20)  # exact: 1 of C(6, 3) orderings
    assert side_tests([0.2, 0.3], [0.1, 0.2])["mw_p_less"] > 0.5
    assert "welch_p" not in side_tests([0.2], [0.1])  # one seed a side: no variance, Mann-Whitney only


def test_reads_yolov7_results_txt_by_column(tmp_path):
    rows = ["       0/1     0.0G   0.08   0.02   0.05   0.15   40   160   0.1   0.2   0.30   0.10   0.07   0.02   0.04",
            "       1/1     0.0G   0.07   0.02   0.04   0.13   41   160   0.2   0.3   0.40   0.20   0.06   0.02   0.03"]
    (tmp_path / "results.txt").write_text("\n".join(rows) + "\n")
    res = read_results(tmp_path / "results.csv")
    assert res["metrics/mAP_0.5"] == [0.30, 0.40] and res["metrics/mAP_0.5:0.95"] == [0.10, 0.20]
    assert res["train/box_loss"] == [0.08, 0.07] and "train/total" not in res


def test_ultralytics_class_ids_are_shifted_to_ours(tmp_path):
    preds = [{"image_id": 3, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.9},
             {"image_id": 3, "category_id": 10, "bbox": [1, 2, 3, 4], "score": 0.5}]
    (tmp_path / "predictions.json").write_text(json.dumps(preds))
    shifted = json.loads(prediction_json("ultralytics", tmp_path).read_text())
    assert [p["category_id"] for p in shifted] == [0, 9]
    assert prediction_json("yolov5", tmp_path) == tmp_path / "predictions.json"


def test_replay_loader_yields_the_saved_epoch(tmp_path):
    for epoch in range(2):
        batches = [(torch.full((2, 3, 8, 8), 10 * epoch + b, dtype=torch.uint8), torch.zeros(1, 6)) for b in range(3)]
        torch.save(batches, tmp_path / f"e{epoch:03d}.pt")
    seen = []

    class Real:  # our loader, as far as the trainer and ReplayLoader use it
        dataset = "ours"

        def __init__(self, n: int):
            self.n = n

        def __len__(self) -> int:
            return self.n

        def set_epoch(self, epoch: int) -> None:
            seen.append(epoch)

    loader = ReplayLoader(tmp_path, Real(3))
    loader.set_epoch(1)
    out = list(loader)
    assert len(loader) == 3 and seen == [1] and loader.dataset == "ours"
    assert [int(imgs[0, 0, 0, 0]) for imgs, *_ in out] == [10, 11, 12] and out[0][2] == ["", ""]
    with pytest.raises(SystemExit, match="3 saved batches an epoch, our loader has 4"):
        ReplayLoader(tmp_path, Real(4))


def test_replay_train_trains_on_the_saved_batches(tmp_path, capsys):
    """benchmarks/replay_train.py end to end: train.py's flags, our trainer, the saved batches in place of our loader."""
    from benchmarks.replay_train import main as replay_main
    from helpers import tiny_cfg
    from yolobone.data.synthetic import make_detection_dataset

    data = make_detection_dataset(tmp_path / "data", n_train=4, n_val=2, imgsz=64, seed=0, verbose=False)
    boxes = torch.tensor([[0, 1, 0.5, 0.5, 0.3, 0.3], [1, 2, 0.4, 0.6, 0.2, 0.4]])
    torch.save([(torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8), boxes) for _ in range(2)],
               tmp_path / "e000.pt")
    rc = replay_main(["--batches", str(tmp_path), "--cfg", tiny_cfg(tmp_path / "m.yaml"), "--data", str(data),
                      "--epochs", "1", "--imgsz", "64", "--batch-size", "2", "--workers", "0", "--device", "cpu",
                      "--project", str(tmp_path / "runs"), "--name", "r", "--noplots", "--noautoanchor"])
    assert rc == 0 and "replay_train: training batches from" in capsys.readouterr().out
    assert (tmp_path / "runs" / "r" / "weights" / "last.pt").is_file()


def test_gpu_check_smoke_runs_end_to_end_on_the_cpu(tmp_path):
    """`bash benchmarks/gpu_check.sh --device cpu --smoke`, as a GPU owner runs it but at tiny sizes: every step
    runs (the TensorRT tests skip without CUDA) and one JSON summary names no failed step."""
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "summary.json"
    # the script calls `python`: the interpreter running the tests, first on PATH
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}  # its scratch folder under tmp_path too
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--device", "cpu", "--smoke", "--out", str(out)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["failed"] == [] and summary["device"] == "cpu" and summary["smoke"]
    assert set(summary["steps"]) == {"cuda_tests", "yolov5n", "yolo11n", "detect_throughput",
                                     "train_speed_vs_yolov5", "learning_parity_vs_yolov5"}
    # both need YOLOv5's reference (../shared/yolov5-ref): skipped with the reason where it is not set up
    speed, parity = summary["steps"]["train_speed_vs_yolov5"], summary["steps"]["learning_parity_vs_yolov5"]
    assert "skipped" in speed or speed["yolov5n@64"]["ratio_cycle"] > 0
    assert "skipped" in parity or set(parity) >= {"means", "tests"}
    assert "skipped" in summary["steps"]["cuda_tests"]["result"]  # TensorRT needs CUDA
    for model in ("yolov5n", "yolo11n"):
        s = summary["steps"][model]
        assert s["train_images_per_s"] > 0 and 0 <= s["pt_map50_95"] <= 1 and 0 <= s["onnx_map50_95"] <= 1
    assert summary["steps"]["detect_throughput"]["images"] == 4
