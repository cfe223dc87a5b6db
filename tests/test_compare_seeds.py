"""compare.py --seeds: mean ± std (n) from the per-run results.csv files, results.tex / .json, protocol.yaml, a
driver killed after one job (only the rest retrain), and the same table through Ray (a local instance, 2 workers).

Classification keeps it fast and gives per-seed accuracies that differ (1-epoch detection mAP is 0 on tiny data).
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from statistics import mean, stdev

import pytest
import yaml

from yolobone.engine.compare import compare
from yolobone.engine.compare.jobs import device_slots
from yolobone.engine.compare.protocol import ProtocolError
from yolobone.engine.compare.stats import welch_test
from tests.helpers import tiny_cfg
from yolobone.utils.faults import FAULT_ENV
from yolobone.data.synthetic import make_classification_dataset

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1)
METRICS = {"top1": "metrics/accuracy_top1", "top5": "metrics/accuracy_top5"}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    data = make_classification_dataset(root / "cls", n_train_per_class=2, n_val_per_class=2, imgsz=32, verbose=False)
    return {"root": root, "data": str(data), "a": tiny_cfg(root / "tiny-a.yaml", 0.0625),
            "b": tiny_cfg(root / "tiny-b.yaml", 0.125)}


def _opts(work, name, **kw):
    return dict(dict(cfgs=[work["a"], work["b"]], data=work["data"], task="classify", epochs=1, imgsz=32, batch_size=8,
                     device="cpu", workers=0, project=str(work["root"] / "cmp"), name=name, exist_ok=True,
                     latency_runs=1, noplots=True, seeds=list(SEEDS)), **kw)


def _cli(opts):
    args = ["--cfgs", *opts["cfgs"], "--seeds", *map(str, opts["seeds"])]
    for k in ("data", "task", "epochs", "imgsz", "batch_size", "device", "workers", "project", "name", "latency_runs"):
        args += [f"--{k.replace('_', '-')}", str(opts[k])]
    return args + ["--exist-ok", "--noplots"]


def _table(path: Path):
    return {r["config"]: r for r in csv.DictReader(path.open())}


def _weights_mtimes(save_dir: Path):
    return {p: p.stat().st_mtime_ns for p in sorted(save_dir.glob("runs/*/seed*/weights/*.pt"))}


@pytest.fixture(scope="module")
def killed_then_finished(work):
    """A driver SIGKILLed right after its first job (tiny-a seed 0) finished, then the same command again."""
    opts = _opts(work, "seq")
    env = {**os.environ, FAULT_ENV: "compare_job:tiny-a/seed0", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "compare.py", *_cli(opts)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600)
    save_dir = work["root"] / "cmp" / "seq"
    killed = {"returncode": p.returncode, "stderr": p.stderr[-2000:], "weights": _weights_mtimes(save_dir)}
    t0 = time.perf_counter()
    result = compare(opts)
    return {"killed": killed, "result": result, "save_dir": save_dir, "seconds": time.perf_counter() - t0}


def test_killed_driver_retrains_only_unfinished_jobs(killed_then_finished):
    k, res = killed_then_finished["killed"], killed_then_finished["result"]
    assert k["returncode"] == -9, k["stderr"]  # SIGKILL at the fault point, nothing cleaned up
    assert {p.parent.parent.name for p in k["weights"]} == {"seed0"}  # only tiny-a seed 0 had finished
    how = {(r.name, r.seed): r.how for r in res.rows}
    assert how == {("tiny-a", 0): "read back", ("tiny-a", 1): "trained", ("tiny-b", 0): "trained",
                   ("tiny-b", 1): "trained"}
    after = _weights_mtimes(killed_then_finished["save_dir"])
    assert all(after[p] == t for p, t in k["weights"].items())  # the finished job was not retrained
    assert len(after) == 8  # last.pt and best.pt of 4 runs


def _per_run_best(run_dir: Path):
    """Best epoch's top-1 / top-5 straight from a run's results.csv (the first epoch with the highest top-1)."""
    rows = [{k.strip(): v.strip() for k, v in r.items()} for r in csv.DictReader((run_dir / "results.csv").open())]
    best = max(rows, key=lambda r: (float(r[METRICS["top1"]]), -float(r["epoch"])))
    return {m: float(best[col]) for m, col in METRICS.items()}


def test_mean_and_std_come_from_the_per_run_results(killed_then_finished):
    save_dir = killed_then_finished["save_dir"]
    table = _table(save_dir / "results.csv")
    assert list(table) == ["tiny-a", "tiny-b"]
    values = {}
    for name in table:
        runs = [_per_run_best(save_dir / "runs" / name / f"seed{s}") for s in SEEDS]
        values[name] = runs
        row = table[name]
        assert row["status"] == "done" and row["n"] == "2" and row["seeds"] == "0 1"
        for m in METRICS:
            v = [r[m] for r in runs]
            assert float(row[m]) == pytest.approx(mean(v), abs=1e-12)
            assert float(row[f"{m}_std"]) == pytest.approx(stdev(v), abs=1e-12)
    test = welch_test([r["top1"] for r in values["tiny-b"]], [r["top1"] for r in values["tiny-a"]], "top1")
    b = table["tiny-b"]
    assert b["test"] == "Welch's t-test" and table["tiny-a"]["test"] == "baseline"
    if test.testable:
        assert float(b["top1_p_vs_baseline"]) == pytest.approx(test.p_value, rel=1e-9)
        assert b["distinguishable_from_baseline"] == str(test.distinguishable)
    md = (save_dir / "results.md").read_text()
    assert "Welch's t-test" in md and re.search(r"\| tiny-a \|.* ± .*\(2\) \| baseline \|", md)
    assert "| tiny-b seed 1 |" in md  # every run listed under the table
    assert "Software: torch " in md and "training devices" in md
    res = killed_then_finished["result"]
    assert res.pareto.is_file() and res.curves.is_file()  # mean ± std error bars, mean curves with ±std bands


def test_table_follows_the_per_run_files(killed_then_finished, work):
    """1-epoch accuracies on tiny data are the same for every seed (std 0); to check mean, std and the test on
    values that differ, a copy of the folder gets other best-epoch accuracies in its runs' results.csv files, and
    the re-run (which reads every finished run back) must tabulate exactly those."""
    copy = work["root"] / "cmp" / "edited"
    shutil.copytree(killed_then_finished["save_dir"], copy)
    edits = {("tiny-a", 0): 0.25, ("tiny-a", 1): 0.5, ("tiny-b", 0): 0.75, ("tiny-b", 1): 1.0}
    for (name, seed), top1 in edits.items():
        f = copy / "runs" / name / f"seed{seed}" / "results.csv"
        rows = list(csv.reader(f.open()))
        col = [c.strip() for c in rows[0]].index(METRICS["top1"])
        for r in rows[1:]:
            r[col] = str(top1)
        with f.open("w", newline="") as out:
            csv.writer(out).writerows(rows)
    res = compare(_opts(work, "edited"))
    assert {r.how for r in res.rows} == {"read back"}
    table = _table(res.results_csv)
    for name in ("tiny-a", "tiny-b"):
        v = [_per_run_best(copy / "runs" / name / f"seed{s}")["top1"] for s in SEEDS]
        assert v == [edits[(name, s)] for s in SEEDS]
        assert float(table[name]["top1"]) == pytest.approx(mean(v), abs=1e-12)
        assert float(table[name]["top1_std"]) == pytest.approx(stdev(v), abs=1e-12)
    # Welch: means 0.375 vs 0.875, both std 0.1768 (n=2): t = 2.83, df = 2 -> p = 0.106, not distinguishable
    assert float(table["tiny-b"]["top1_p_vs_baseline"]) == pytest.approx(0.1056, abs=1e-3)
    assert table["tiny-b"]["distinguishable_from_baseline"] == "False"
    assert re.search(r"\| tiny-b \|.*\| 0\.875 ± 0\.177 \(2\) \|.*\| p=0\.106 ≈ \|", res.results_md.read_text())


def test_tex_and_json_exist_and_parse(killed_then_finished):
    save_dir = killed_then_finished["save_dir"]
    tex = (save_dir / "results.tex").read_text()
    assert [line for line in tex.splitlines() if line.startswith("\\") and "rule" in line] == \
        ["\\toprule", "\\midrule", "\\bottomrule"]
    assert tex.count("\\begin{") == tex.count("\\end{") == 2 and "{lrrrrrr}" in tex
    body = tex.split("\\midrule")[1].split("\\bottomrule")[0].strip().splitlines()
    assert [line.split(" & ")[0] for line in body] == ["tiny-a", "tiny-b"]
    head = tex.split("\\toprule")[1].split("\\midrule")[0]
    assert all(line.count("&") == head.count("&") and line.endswith("\\\\") for line in body)
    assert "$\\pm$" in body[0] and body[0].split(" & ")[-1] == "baseline \\\\"
    doc = json.loads((save_dir / "results.json").read_text())
    table = _table(save_dir / "results.csv")
    assert doc["test"]["name"] == "Welch's t-test" and doc["test"]["baseline"] == "tiny-a"
    assert doc["protocol"]["seeds"] == [0, 1] and doc["protocol"]["environment"]["torch"]
    for c in doc["configs"]:
        assert [r["seed"] for r in c["runs"]] == [0, 1]
        assert c["metrics"]["top1"]["mean"] == pytest.approx(float(table[c["name"]]["top1"]), abs=1e-12)
        assert c["metrics"]["top1"]["values"] == [r["metrics"]["top1"] for r in c["runs"]]


def test_protocol_records_the_comparison_and_refuses_another(killed_then_finished, work, tmp_path):
    save_dir = killed_then_finished["save_dir"]
    protocol = yaml.safe_load((save_dir / "protocol.yaml").read_text())
    assert (protocol["epochs"], protocol["imgsz"], protocol["batch_size"], protocol["seeds"]) == (1, 32, 8, [0, 1])
    assert protocol["optimizer"] == "Adam" and protocol["task"] == "classify"
    assert protocol["models"]["tiny-a"]["pretrained"] == "none (random init)"
    assert protocol["models"]["tiny-b"]["freeze"] == [] and len(protocol["models"]["tiny-b"]["sha1"]) == 40
    env = protocol["environment"]
    assert env["torch"] and "cuda" in env and env["devices"]["cpu"]
    with pytest.raises(ProtocolError, match=r"differs in seeds \(seeds: \[0, 1\] there, \[0, 1, 2\] now\)"):
        compare(_opts(work, "seq", seeds=[0, 1, 2]))
    # --protocol reruns it: here into the same folder, so every run is read back and nothing trains
    before = _weights_mtimes(save_dir)
    res = compare(protocol=str(save_dir / "protocol.yaml"), project=str(work["root"] / "cmp"), name="seq",
                  exist_ok=True, device="cpu", workers=0, latency_runs=1, noplots=True)
    assert {r.how for r in res.rows} == {"read back"} and _weights_mtimes(save_dir) == before
    edited = tmp_path / "protocol.yaml"
    edited.write_text(yaml.safe_dump({**protocol, "seeds": [0, 5]}))
    with pytest.raises(ProtocolError, match=r"protocol\.yaml: the protocol differs in seeds \("):
        compare(protocol=str(edited), project=str(work["root"] / "cmp"), name="seq", exist_ok=True, device="cpu",
                workers=0, latency_runs=1, noplots=True)


def test_welch_test_known_values():
    # equal variances 0.01, difference 0.3, n=3 each: t = 3.674, df = 4 -> p = 0.0213
    t = welch_test([0.4, 0.5, 0.6], [0.1, 0.2, 0.3], "m")
    assert t.p_value == pytest.approx(0.02131, abs=2e-4) and t.distinguishable
    t = welch_test([0.15, 0.25, 0.35], [0.1, 0.2, 0.3], "m")  # t = 0.612 -> p = 0.57: cannot be told apart
    assert t.p_value == pytest.approx(0.5734, abs=2e-3) and t.distinguishable is False
    assert welch_test([0.5], [0.1, 0.2], "m").testable is False


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_local_gives_the_sequential_table(killed_then_finished, work, ray_cluster):
    t0 = time.perf_counter()
    res = compare(_opts(work, "ray", ray="local", jobs=2))
    seconds = time.perf_counter() - t0
    seq = _table(killed_then_finished["save_dir"] / "results.csv")
    par = _table(res.results_csv)
    same = ["params", "gflops", "epochs", "best_epoch", "top1", "top5", "n", "seeds", "top1_std", "top5_std",
            "best_epoch_std", "top1_p_vs_baseline", "distinguishable_from_baseline", "status"]
    for name in ("tiny-a", "tiny-b"):
        assert {k: par[name][k] for k in same} == {k: seq[name][k] for k in same}, name
    workers = {json.loads(p.read_text())["worker"]["pid"] for p in res.save_dir.glob("runs/*/seed*/job_result.json")}
    assert len(workers) >= 2  # Ray ran the jobs on (at least) its 2 worker processes, each job logging to its folder
    assert all((p.parent / "job.log").stat().st_size > 0 for p in res.save_dir.glob("runs/*/seed*/job_spec.json"))
    print(f"ray comparison (4 jobs, 2 workers): {seconds:.1f}s")


def test_device_list_gives_one_slot_per_gpu():
    assert device_slots("0,1,2,3", 1) == ["0", "1", "2", "3"]
    assert device_slots("0,1", 4) == ["0", "1", "0", "1"]  # --jobs 4 on 2 GPUs: two jobs per GPU
    assert device_slots("cpu", 3) == ["cpu"] * 3 and device_slots("", 1) == [""]
