"""train.py --evolve: YOLOv5's mutation within its bounds, reproducible per (seed, generation); a 2-generation search
of a tiny model killed (SIGKILL) after its first generation continues from evolve.csv to the same hyps."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.tiny_runs import tiny_detection_files
from yolobone.engine.evolve import (EVOLVE_META, N_RESULTS, EvolveError, bounded, evolve, evolve_keys, mutate,
                                    read_evolve_csv)
from yolobone.utils.faults import FAULT_ENV
from yolobone.utils.hyp import load_hyp

ROOT = Path(__file__).resolve().parents[1]


def _rows(keys, n, seed=0):
    rng = np.random.default_rng(seed)
    base = bounded(keys, [load_hyp().to_dict()[k] for k in keys])
    return np.array([[*rng.random(N_RESULTS), *base.values()] for _ in range(n)])


def test_mutation_respects_bounds_and_is_reproducible():
    keys = evolve_keys(load_hyp().to_dict())
    rows = _rows(keys, 8)
    a = [mutate(keys, rows, np.random.default_rng([3, g]), "single") for g in range(50)]
    b = [mutate(keys, rows, np.random.default_rng([3, g]), "single") for g in range(50)]
    assert a == b
    for child in a + [mutate(keys, rows, np.random.default_rng([4, g]), "weighted") for g in range(50)]:
        for k, v in child.items():
            assert EVOLVE_META[k][1] <= v <= EVOLVE_META[k][2], k
    parent = dict(zip(keys, rows[0, N_RESULTS:]))
    assert all(any(c[k] != parent[k] for k in keys) for c in a)  # every child differs from its parent somewhere
    fixed = [k for k in keys if EVOLVE_META[k][0] == 0]  # gain 0: never mutated (iou_t, fl_gamma, fliplr, ...)
    assert fixed and all(c[k] == parent[k] for c in a for k in fixed)
    assert a != [mutate(keys, rows, np.random.default_rng([5, g]), "single") for g in range(50)]


def test_evolve_writes_files_and_resumes_after_sigkill(tmp_path):
    data, cfg = tiny_detection_files(tmp_path)
    args = dict(cfg=str(cfg), data=str(data), epochs=1, batch_size=8, imgsz=64, device="cpu", workers=0,
                noautoanchor=True, project=str(tmp_path / "evo"), name="exp", exist_ok=True, seed=1)
    cli = [sys.executable, "train.py", "--evolve", "2", "--exist-ok", "--noautoanchor", "--seed", "1"]
    for k in ("cfg", "data", "epochs", "batch_size", "imgsz", "device", "workers", "project", "name"):
        cli += [f"--{k.replace('_', '-')}", str(args[k])]
    env = {**os.environ, FAULT_ENV: "evolve_generation:0", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    p = subprocess.run(cli, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode != 0, p.stderr[-2000:]  # killed right after generation 0 was recorded
    save_dir = tmp_path / "evo" / "exp"
    keys = evolve_keys(load_hyp().to_dict())
    first = read_evolve_csv(save_dir / "evolve.csv", keys)
    assert first.shape == (1, N_RESULTS + len(keys))
    assert not (save_dir / "gen1").exists()

    result = evolve(args, 2)
    assert result.rows.shape == (2, N_RESULTS + len(keys))
    np.testing.assert_allclose(result.rows[0], first[0], rtol=1e-4)
    expected = mutate(keys, first, np.random.default_rng([1, 1]), "single")  # what an unbroken search draws
    np.testing.assert_allclose(result.rows[1, N_RESULTS:], [expected[k] for k in keys], rtol=1e-4, atol=1e-9)
    assert yaml.safe_load((save_dir / "hyp_evolve.yaml").read_text()).keys() == set(keys)
    assert (save_dir / "evolve.png").stat().st_size > 0
    assert len((save_dir / "evolve.csv").read_text().splitlines()) == 3
    assert load_hyp(str(save_dir / "hyp_evolve.yaml"))  # usable as --hyp


def test_evolve_rejects_bad_settings(tmp_path):
    with pytest.raises(EvolveError, match="--evolve 0"):
        evolve({"project": str(tmp_path)}, 0)
    with pytest.raises(EvolveError, match="detection only"):
        evolve({"task": "classify", "project": str(tmp_path)}, 2)
