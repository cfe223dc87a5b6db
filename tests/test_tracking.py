"""--loggers mlflow wandb: a tiny 2-epoch run read back from an MLflow file store and a W&B offline run folder; a
tracker that cannot start costs one warning and the run finishes."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from tests.tiny_runs import tiny_detection_files
from yolobone.engine.core.options import TrainConfigError
from yolobone.engine.train import train


def _options(tmp_path: Path, loggers) -> dict:
    data, cfg = tiny_detection_files(tmp_path)
    return dict(cfg=str(cfg), data=str(data), epochs=2, batch_size=8, imgsz=64, device="cpu", workers=0,
                noautoanchor=True, project=str(tmp_path / "runs"), name="exp", loggers=loggers)


def _wandb_records(path: Path):
    """The protobuf payloads of a W&B offline run file: a 7-byte ':W&B' header, then LevelDB-log chunks (crc32,
    length, type 1 full / 2 first / 3 middle / 4 last) in 32 KiB blocks (the format W&B's sync reads)."""
    raw, block, pos, parts = path.read_bytes(), 32768, 7, b""
    assert raw[:4] == b":W&B"
    while pos + 7 <= len(raw):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(raw[pos + 4:pos + 6], "little"), raw[pos + 6]
        if length == 0 and kind == 0:
            break
        parts += raw[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            yield parts
            parts = b""


def _wandb_history(path: Path):
    """Each history record of an offline run file as {key: value}."""
    from wandb.proto import wandb_internal_pb2
    for payload in _wandb_records(path):
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(payload)
        if rec.WhichOneof("record_type") == "history":
            yield {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in rec.history.item}


def test_mlflow_and_wandb_offline(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    store = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads its file store only when told
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    result = train(_options(tmp_path, ["csv", "mlflow", "wandb"]))
    assert result.best is not None

    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name("yolobone")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.params["opt/epochs"] == "2" and run.data.params["hyp/lr0"] == "0.01"
    assert len(run.data.params["data_yaml_sha256"]) == 16
    hist = client.get_metric_history(run.info.run_id, "metrics/mAP_0.5")
    assert [m.step for m in hist] == [0, 1]
    assert abs(hist[-1].value - result.history[-1]["metrics/mAP_0.5"]) <= 1e-6 * max(1.0, hist[-1].value)
    assert [a.path for a in client.list_artifacts(run.info.run_id, "weights")] == ["weights/best.pt"]
    assert any(a.path.endswith("results.png") for a in client.list_artifacts(run.info.run_id, "plots"))

    runs = list((tmp_path / "wandb_dir" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    (records,) = list(runs[0].glob("*.wandb"))
    assert records.stat().st_size > 0
    steps = [int(h["_step"]) for h in _wandb_history(records) if "metrics/mAP_0.5" in h]
    assert steps == [0, 1]


def test_missing_tracker_warns_and_trains(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    with caplog.at_level(logging.WARNING):
        result = train(_options(tmp_path, ["mlflow"]))
    assert result.best is not None and result.epochs_completed == 2
    warnings = [r.getMessage() for r in caplog.records if "mlflow logging disabled" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert not list((tmp_path / "runs" / "exp").glob("events.out.tfevents*"))  # tensorboard not in --loggers
    assert (tmp_path / "runs" / "exp" / "results.csv").is_file()


def test_unknown_logger_is_rejected(tmp_path):
    with pytest.raises(TrainConfigError, match="--loggers comet"):
        train(_options(tmp_path, ["comet"]))


def test_compare_groups_runs_per_config_and_seed(tmp_path, monkeypatch):
    """compare.py --loggers mlflow: one MLflow run per (config, seed), nested under one parent run."""
    pytest.importorskip("mlflow")
    from tests.helpers import tiny_cfg
    from yolobone.data.synthetic import make_classification_dataset
    from yolobone.engine.compare import compare
    store = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads its file store only when told
    data = make_classification_dataset(tmp_path / "cls", n_train_per_class=2, n_val_per_class=2, imgsz=32,
                                       verbose=False)
    cfgs = [tiny_cfg(tmp_path / "tiny-a.yaml", 0.0625), tiny_cfg(tmp_path / "tiny-b.yaml", 0.125)]
    res = compare(cfgs=cfgs, data=str(data), task="classify", epochs=1, imgsz=32, batch_size=8, device="cpu",
                  workers=0, project=str(tmp_path / "cmp"), name="exp", latency_runs=1, noplots=True, seeds=[0, 1],
                  loggers=["csv", "mlflow"])
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([client.get_experiment_by_name("yolobone").experiment_id])
    parents = [r for r in runs if "yolobone.group_parent" in r.data.tags]
    assert len(parents) == 1 and len(runs) == 5
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.info.run_name for r in children) == ["tiny-a/seed0", "tiny-a/seed1", "tiny-b/seed0",
                                                        "tiny-b/seed1"]
    assert {r.data.params["opt/seed"] for r in children} == {"0", "1"}
    assert all(r.data.tags["yolobone.group"] == str(res.save_dir.resolve()) for r in children)
