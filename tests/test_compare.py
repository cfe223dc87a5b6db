"""Backbone comparison on tiny generated data: table figures from the runs, plots, failures, resume, profile-only."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from yolobone.cli.compare import build_parser, main as compare_main
from yolobone.engine.compare import CompareError, CompareOptions, compare
from yolobone.engine.compare.report import (ConfigResult, RunHistory, RunResultsError, latency_axis, markdown_table,
                                            pareto_front, plot_pareto, read_run_history, write_results_csv)
from yolobone.models.classification import ClassificationModel
from yolobone.models.yolo import DetectionModel
from yolobone.utils.profiling import ModelProfile
from yolobone.data.synthetic import make_classification_dataset, make_detection_dataset
from tests.helpers import tiny_cfg

ROOT = Path(__file__).resolve().parents[1]
NO_AUG = dict(mosaic=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, fliplr=0.0, translate=0.0, scale=0.0, warmup_epochs=0.0)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    data = make_detection_dataset(root / "data", n_train=8, n_val=4, imgsz=64, max_objects=3, min_size=0.2,
                                  max_size=0.6, verbose=False)
    hyp = root / "hyp.yaml"
    hyp.write_text(yaml.safe_dump(NO_AUG))
    bad = root / "broken.yaml"
    bad.write_text(yaml.safe_dump({**yaml.safe_load((ROOT / "configs/yolov5n.yaml").read_text()),
                                   "backbone": [[-1, 1, "NoSuchBlock", [16]]]}, sort_keys=False))
    return {"root": root, "data": str(data), "hyp": str(hyp), "bad": str(bad),
            "a": tiny_cfg(root / "tiny-a.yaml", 0.0625), "b": tiny_cfg(root / "tiny-b.yaml", 0.125)}


def _opts(work, **kw):
    return dict(dict(cfgs=[work["a"], work["bad"], work["b"]], data=work["data"], epochs=2, imgsz=64, batch_size=8,
                     device="cpu", workers=0, hyp=work["hyp"], project=str(work["root"] / "cmp"), name="exp",
                     exist_ok=True, latency_runs=2, noplots=True), **kw)


def _table(path: Path):
    return {r["config"]: r for r in csv.DictReader(path.open())}


def _run_csv(run_dir: Path):
    """mAP50 / mAP50-95 per epoch straight from a training run's results.csv."""
    rows = [{k.strip(): v.strip() for k, v in r.items()} for r in csv.DictReader((run_dir / "results.csv").open())]
    return [(int(float(r["epoch"])), float(r["metrics/mAP_0.5"]), float(r["metrics/mAP_0.5:0.95"])) for r in rows]


class _Stop:
    """Trainer callback: Ctrl-C after the first epoch of one run (its last.pt is written by then)."""

    def __init__(self, run_name: str):
        self.run_name, self.fired = run_name, False

    def __call__(self, trainer):
        if trainer.save_dir.name == self.run_name and trainer.epoch == 0 and not self.fired:
            self.fired = True
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def interrupted_then_finished(work):
    """First call stopped after tiny-a's epoch 0; second call resumes tiny-a, reports broken, trains tiny-b."""
    stop = _Stop("tiny-a")
    with pytest.raises(KeyboardInterrupt):
        compare(_opts(work), train_callbacks={"on_fit_epoch_end": stop})
    save_dir = work["root"] / "cmp" / "exp"
    first = _table(save_dir / "results.csv")
    second = compare(_opts(work))
    return {"stop": stop, "first": first, "result": second, "save_dir": save_dir}


def test_interrupted_run_is_reported_then_resumed(interrupted_then_finished):
    r = interrupted_then_finished
    assert r["stop"].fired
    assert r["first"]["tiny-a"]["status"] == "interrupted"
    rows = {row.name: row for row in r["result"].rows}
    assert rows["tiny-a"].how == "resumed" and rows["tiny-b"].how == "trained"
    epochs = [e for e, _, _ in _run_csv(r["save_dir"] / "runs" / "tiny-a")]
    assert sorted(set(epochs)) == [0, 1]


def test_table_holds_each_runs_real_figures(interrupted_then_finished, work):
    save_dir = interrupted_then_finished["save_dir"]
    table = _table(save_dir / "results.csv")
    assert list(table) == ["tiny-a", "broken", "tiny-b"]
    for name, cfg in (("tiny-a", work["a"]), ("tiny-b", work["b"])):
        row = table[name]
        per_epoch = {e: (m50, m) for e, m50, m in _run_csv(save_dir / "runs" / name)}  # last row of an epoch wins
        fitness = {e: 0.1 * m50 + 0.9 * m for e, (m50, m) in per_epoch.items()}
        best = max(fitness, key=lambda e: (fitness[e], e))
        assert row["status"] == "done" and row["error"] == ""
        assert int(row["best_epoch"]) == best and int(row["epochs"]) == 2
        assert float(row["mAP50"]) == pytest.approx(per_epoch[best][0], abs=1e-12)
        assert float(row["mAP50-95"]) == pytest.approx(per_epoch[best][1], abs=1e-12)
        assert int(row["params"]) == sum(p.numel() for p in DetectionModel(cfg, nc=6).parameters())
        assert float(row["gflops"]) > 0 and float(row["latency_cpu_ms"]) > 0 and float(row["train_time_s"]) > 0
        assert row["run_dir"] == f"runs/{name}" and (save_dir / row["run_dir"] / "weights" / "best.pt").is_file()
    assert int(table["tiny-b"]["params"]) > int(table["tiny-a"]["params"])
    md = (save_dir / "results.md").read_text()
    assert "[runs/tiny-a](runs/tiny-a)" in md and "![pareto](pareto.png)" in md
    assert "--cfgs" in md and "--epochs 2" in md


def test_failing_config_is_reported_and_others_go_on(interrupted_then_finished):
    save_dir = interrupted_then_finished["save_dir"]
    row = _table(save_dir / "results.csv")["broken"]
    assert row["status"] == "failed"
    assert "NoSuchBlock" in row["error"] and "\n" not in row["error"]
    assert row["mAP50"] == "" and row["params"] == ""
    md_line = next(l for l in (save_dir / "results.md").read_text().splitlines() if l.startswith("| broken "))
    assert "failed: " in md_line and "NoSuchBlock" in md_line


def test_plots_exist(interrupted_then_finished):
    res = interrupted_then_finished["result"]
    for p in (res.pareto, res.curves):
        assert p is not None and p.is_file() and p.stat().st_size > 10_000
    assert res.pareto.name == "pareto.png" and res.curves.name == "curves.png"


def test_rerun_reads_back_without_retraining(interrupted_then_finished, work):
    save_dir = interrupted_then_finished["save_dir"]
    weights = sorted((save_dir / "runs").glob("tiny-*/weights/*.pt"))
    assert len(weights) == 4
    before = {w: w.stat().st_mtime_ns for w in weights}
    csv_before = {n: (save_dir / "runs" / n / "results.csv").read_text() for n in ("tiny-a", "tiny-b")}
    table_before = _table(save_dir / "results.csv")
    res = compare(_opts(work))
    assert {w: w.stat().st_mtime_ns for w in weights} == before
    assert {n: (save_dir / "runs" / n / "results.csv").read_text() for n in ("tiny-a", "tiny-b")} == csv_before
    assert [r.how for r in res.rows if r.status == "done"] == ["read back", "read back"]
    table = _table(save_dir / "results.csv")
    for name in ("tiny-a", "tiny-b"):
        for k in ("params", "gflops", "latency_cpu_ms", "train_time_s", "best_epoch", "mAP50", "mAP50-95"):
            assert table[name][k] == table_before[name][k], (name, k)


def test_reused_folder_with_other_settings_is_refused(interrupted_then_finished, work):
    with pytest.raises(CompareError, match="--epochs 2"):
        compare(_opts(work, epochs=3))
    with pytest.raises(CompareError, match="--optimizer SGD, this command has Adam"):
        compare(_opts(work, optimizer="Adam"))


def test_every_run_trains_with_its_heads_recipe_unless_told(interrupted_then_finished, work):
    save_dir = interrupted_then_finished["save_dir"]
    protocol = yaml.safe_load((save_dir / "protocol.yaml").read_text())
    assert protocol["optimizer"] is None  # not given: each model's default_recipe
    for name in ("tiny-a", "tiny-b"):  # YOLOv5's anchor-based head: scratch-low and SGD
        assert yaml.safe_load((save_dir / "runs" / name / "opt.yaml").read_text())["optimizer"] == "SGD"
        assert protocol["models"][name]["default_recipe"] == {"hyp": "configs/hyp/hyp.scratch-low.yaml",
                                                              "optimizer": "SGD", "close_mosaic": 0}
    assert "optimizer=per head (default_recipe)" in (save_dir / "results.md").read_text()
    with pytest.raises(CompareError, match="--optimizer 'Lion'"):
        CompareOptions.from_any(_opts(work, optimizer="Lion")).check()


def test_profile_only(work, tmp_path):
    res = compare(_opts(work, cfgs=[work["a"], work["bad"]], profile_only=True, project=str(tmp_path), exist_ok=False))
    table = _table(res.results_csv)
    assert table["tiny-a"]["status"] == "profiled" and table["broken"]["status"] == "failed"
    model = DetectionModel(work["a"], nc=6)
    assert int(table["tiny-a"]["params"]) == sum(p.numel() for p in model.parameters())
    assert float(table["tiny-a"]["latency_cpu_ms"]) > 0 and table["tiny-a"]["mAP50"] == ""
    assert not (res.save_dir / "runs").exists() and res.pareto is None


def test_pareto_front():
    # (latency, accuracy): the slower point 2 is beaten by 0 on both axes; 3 is slower but more accurate
    assert pareto_front([(1.0, 0.5), (2.0, 0.7), (3.0, 0.4), (4.0, 0.9), (1.0, 0.3)]) == [0, 1, 3]


def test_cli_errors_exit_2(work, tmp_path, capsys):
    assert compare_main(["--cfgs", work["a"], "--data", str(tmp_path / "missing.yaml"), "--project",
                         str(tmp_path), "--profile-only", "--device", "cpu"]) == 2
    assert "missing.yaml" in capsys.readouterr().err
    assert compare_main(["--project", str(tmp_path)]) == 2
    assert "--cfgs" in capsys.readouterr().err


def test_parser_flags_match_options():
    opt = build_parser().parse_args(["--cfgs", "a.yaml", "b.yaml", "--epochs", "3", "--imgsz", "128", "--task",
                                     "classify", "--profile-only", "--exist-ok", "--batch-size", "4", "--seed", "7"])
    o = CompareOptions.from_any(opt)
    assert (o.cfgs, o.epochs, o.imgsz, o.task, o.profile_only, o.exist_ok, o.batch_size, o.seed) == \
        (["a.yaml", "b.yaml"], 3, 128, "classify", True, True, 4, 7)
    assert o.command().startswith("python compare.py --cfgs a.yaml b.yaml --epochs 3 --imgsz 128 --task classify")
    o = CompareOptions.from_any(build_parser().parse_args(["--cfgs", "a.yaml", "--optimizer", "AdamW"]))
    assert o.optimizer == "AdamW" and "--optimizer AdamW" in o.command()


def test_classify_comparison_reads_top1_top5(work, tmp_path):
    data = make_classification_dataset(tmp_path / "cls", n_train_per_class=2, n_val_per_class=1, imgsz=32,
                                       verbose=False)
    res = compare(dict(cfgs=[work["a"]], data=str(data), task="classify", epochs=1, imgsz=32, batch_size=8,
                       device="cpu", workers=0, project=str(tmp_path / "cmp"), latency_runs=1, noplots=True))
    row = _table(res.results_csv)["tiny-a"]
    run = [{k.strip(): v.strip() for k, v in r.items()}
           for r in csv.DictReader((res.save_dir / "runs" / "tiny-a" / "results.csv").open())]
    assert row["status"] == "done" and len(run) == 1 and row["best_epoch"] == "0"
    assert float(row["top1"]) == pytest.approx(float(run[0]["metrics/accuracy_top1"]), abs=1e-12)
    assert float(row["top5"]) == pytest.approx(float(run[0]["metrics/accuracy_top5"]), abs=1e-12)
    assert int(row["params"]) == sum(p.numel() for p in ClassificationModel(work["a"], nc=6).parameters())
    assert res.pareto.is_file() and res.curves.is_file()


def _row(name, latency, top, metric_names=("mAP50", "mAP50-95")):
    prof = ModelProfile(params=1000, gflops=0.5, imgsz=64, latency_ms=latency,
                        device_names={k: ("Test GPU" if k != "cpu" else "Test CPU") for k in latency})
    hist = RunHistory(epochs=[0, 1], metrics={metric_names[0]: [0.1, top + 0.1], metric_names[1]: [0.05, top]},
                      best_index=1)
    return ConfigResult(name=name, cfg=f"{name}.yaml", status="done", how="trained", profile=prof, history=hist)


def test_report_with_gpu_latency(tmp_path):
    rows = [_row("fast", {"cpu": 9.0, "cuda:0": 1.0}, 0.2), _row("slow", {"cpu": 5.0, "cuda:0": 3.0}, 0.4),
            _row("worse", {"cpu": 20.0, "cuda:0": 4.0}, 0.3)]
    assert latency_axis(rows) == "cuda:0"  # the Pareto plot uses the GPU when every row has it
    header = markdown_table(rows, "detect", 64, tmp_path).splitlines()[0]
    assert "| CPU ms | GPU ms |" in header
    write_results_csv(tmp_path / "r.csv", rows, "detect")
    table = _table(tmp_path / "r.csv")
    assert table["slow"]["latency_gpu_ms"] == "3.000" and table["slow"]["latency_cpu_ms"] == "5.000"
    assert table["slow"]["latency_gpu_device"] == "Test GPU"
    assert float(table["slow"]["mAP50-95"]) == 0.4 and table["slow"]["best_epoch"] == "1"
    assert plot_pareto(rows, "detect", tmp_path / "p.png").stat().st_size > 10_000


def test_pareto_plot_marks_each_precision(tmp_path, monkeypatch):
    """--int8: a second (INT8) marker per config beside its FP32 point, in the legend as its own precision."""
    import matplotlib.axes

    rows = [_row("a", {"cpu": 9.0}, 0.2), _row("b", {"cpu": 5.0}, 0.4)]
    rows[0].int8 = {"fp32": 0.21, "int8": 0.19, "drop": 0.02, "int8_ms": 3.0}
    seen = []
    real = matplotlib.axes.Axes.scatter
    monkeypatch.setattr(matplotlib.axes.Axes, "scatter",
                        lambda ax, x, y, **kw: seen.append((list(x), list(y), kw.get("label"))) or real(ax, x, y, **kw))
    assert plot_pareto(rows, "detect", tmp_path / "p.png").stat().st_size > 10_000
    assert ([3.0], [0.19], "INT8 (ONNX Runtime latency)") in seen
    assert ([9.0, 5.0], [0.2, 0.4], "trained config") in seen


def test_history_keeps_last_row_of_a_repeated_epoch(tmp_path):
    f = tmp_path / "results.csv"
    head = "epoch,metrics/mAP_0.5,metrics/mAP_0.5:0.95\n"
    f.write_text(head + "0,0.5,0.2\n1,0.1,0.05\n1,0.6,0.3\n")  # epoch 1 written again after a resume
    h = read_run_history(f, "detect")
    assert h.epochs == [0, 1] and h.best_epoch == 1 and h.best("mAP50-95") == 0.3
    f.write_text(head + "0,0.5,zero\n")
    with pytest.raises(RunResultsError, match="results.csv:2"):
        read_run_history(f, "detect")


def test_cfg_with_backbones_composes_each_and_profiles(work, tmp_path, capsys):
    res = compare(_opts(work, cfgs=[], cfg=work["a"], backbones=["tiny-a", "resnet18"], profile_only=True,
                        project=str(tmp_path), exist_ok=False))
    table = _table(res.results_csv)
    assert set(table) == {"tiny-a", "tiny-a-resnet18"}
    composed = res.save_dir / "models" / "tiny-a-resnet18.yaml"  # an ordinary model YAML every run can read
    assert table["tiny-a-resnet18"]["status"] == "profiled"
    from yolobone.models.compose import compose
    model = DetectionModel(compose(work["a"], "resnet18"), nc=6)
    assert int(table["tiny-a-resnet18"]["params"]) == sum(p.numel() for p in model.parameters())
    assert DetectionModel(composed, nc=6).yaml["backbone"] == model.yaml["backbone"]
    o = CompareOptions.from_any(build_parser().parse_args(["--cfg", "a.yaml", "--backbones", "a", "resnet18"]))
    assert o.command() == "python compare.py --cfg a.yaml --backbones a resnet18"
    assert compare_main(["--cfg", work["a"], "--backbones", "resnet5", "--project", str(tmp_path), "--profile-only",
                         "--device", "cpu"]) == 2
    assert "unknown backbone 'resnet5'" in capsys.readouterr().err
    with pytest.raises(CompareError, match="--cfg and --backbones go together"):
        CompareOptions.from_any(cfgs=["a.yaml"], backbones=["resnet18"]).check()


def test_int8_column_per_config(work, tmp_path):
    """--int8: each trained config's FP32 and INT8 score of its exports, the drop between them, INT8 latency."""
    import json

    from yolobone.engine.export import ExportConfig, score

    res = compare(_opts(work, cfgs=[work["a"]], epochs=1, int8=True, project=str(tmp_path), exist_ok=False))
    (row,) = res.rows
    assert set(row.int8) == {"fp32", "int8", "drop", "int8_ms"} and row.int8["int8_ms"] > 0
    assert abs(row.int8["drop"] - (row.int8["fp32"] - row.int8["int8"])) < 1e-9
    onnx = Path(row.run_dir) / "weights" / "best.onnx"  # the FP32 export the comparison scored
    assert row.int8["fp32"] == pytest.approx(score(onnx, ExportConfig(data=work["data"], workers=0)), abs=1e-6)
    runs = json.loads(res.results_json.read_text())["configs"][0]["runs"]
    assert runs[0]["int8"]["int8"] == pytest.approx(row.int8["int8"])
    md = res.results_md.read_text()
    assert "| config | FP32 mAP50-95 | INT8 mAP50-95 | drop | INT8 ms |" in md and f"{row.int8['drop']:+.4f}" in md
    assert "--int8" in CompareOptions.from_any(_opts(work, int8=True)).command()
