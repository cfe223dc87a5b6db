"""compare.py --tune-each: 2 Ray Tune trials (1 epoch) per config on a local Ray instance, each config's chosen recipe
in protocol.yaml and in the run it then trains, and the recipes table in results.md."""
from __future__ import annotations

import csv
import math

import pytest
import yaml

from tests.helpers import tiny_cfg
from yolobone.data.synthetic import make_detection_dataset
from yolobone.engine.compare import compare
from yolobone.engine.compare.options import CompareError
from yolobone.engine.compare.recipe import RECIPE_KEYS


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.tune")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_tune_each_gives_each_config_its_recipe(tmp_path, ray_local):
    data = make_detection_dataset(tmp_path / "data", n_train=10, n_val=2, imgsz=64, max_objects=2, min_size=0.3,
                                  max_size=0.6, verbose=False)
    cfgs = [tiny_cfg(tmp_path / "tiny-a.yaml", 0.0625), tiny_cfg(tmp_path / "tiny-b.yaml", 0.125)]
    res = compare(cfgs=cfgs, data=str(data), epochs=1, imgsz=64, batch_size=8, device="cpu", workers=0,
                  project=str(tmp_path / "cmp"), name="exp", latency_runs=1, noplots=True, seeds=[0],
                  tune_each=2, ray="local")
    protocol = yaml.safe_load((res.save_dir / "protocol.yaml").read_text())
    recipes = protocol["tuning"]["recipes"]
    assert protocol["tuning"]["trials_per_config"] == 2 and set(recipes) == {"tiny-a", "tiny-b"}
    split = res.save_dir / "tune"
    train_imgs = (split / "tune_train.txt").read_text().split()
    val_imgs = (split / "tune_val.txt").read_text().split()
    assert len(train_imgs) == 8 and len(val_imgs) == 2 and not set(train_imgs) & set(val_imgs)
    for name, recipe in recipes.items():
        assert 1e-5 <= recipe["lr0"] <= 0.1 and 0 <= recipe["weight_decay"] <= 1e-3
        assert 0 <= recipe["warmup_epochs"] <= 5 and recipe["optimizer"] in ("SGD", "Adam", "AdamW")
        trials = list(csv.DictReader((split / name / "trials.csv").open()))
        assert len(trials) == 2 and all(t["seed"] == "0" and t["error"] == "" for t in trials)
        assert max(float(t["fitness"]) for t in trials) == pytest.approx(recipe["fitness"], rel=1e-6, abs=1e-9)
        run = res.save_dir / "runs" / name
        hyp = yaml.safe_load((run / "hyp.yaml").read_text())
        opt = yaml.safe_load((run / "opt.yaml").read_text())
        assert math.isclose(hyp["lr0"], recipe["lr0"], rel_tol=1e-9) and opt["optimizer"] == recipe["optimizer"]
        assert math.isclose(opt["backbone_lr"], recipe["backbone_lr"]) and \
            math.isclose(hyp["weight_decay"], recipe["weight_decay"], rel_tol=1e-9, abs_tol=1e-12)
    md = res.results_md.read_text()
    assert "--tune-each 2" in md and all(k in md for k in RECIPE_KEYS)


def test_tune_each_is_detection_only():
    with pytest.raises(CompareError, match="--tune-each 2"):
        compare(cfgs=["configs/yolov5n.yaml"], task="classify", tune_each=2)


def test_train_tune_writes_the_best_hyp_and_the_command(tmp_path, ray_local, caplog):
    """train.py --tune 2 (with a time budget that the trial budget beats): trials.csv, recipe.yaml and a hyp YAML
    that train.py reads, holding the best trial's lr0 / weight decay / warmup over the starting hyp."""
    from yolobone.cli.train import main as train_main
    from yolobone.utils.hyp import load_hyp
    data = make_detection_dataset(tmp_path / "data", n_train=10, n_val=2, imgsz=64, max_objects=2, min_size=0.3,
                                  max_size=0.6, verbose=False)
    cfg = tiny_cfg(tmp_path / "tiny.yaml", 0.0625)
    rc = train_main(["--cfg", cfg, "--data", str(data), "--epochs", "1", "--imgsz", "64", "--batch-size", "8",
                     "--device", "cpu", "--workers", "0", "--tune", "2", "--tune-time", "600", "--ray", "local",
                     "--project", str(tmp_path / "tune"), "--name", "exp"])
    assert rc == 0
    out = tmp_path / "tune" / "exp"
    recipe = yaml.safe_load((out / "tune" / "tiny" / "recipe.yaml").read_text())
    assert recipe["trials"] == 2 and len(list(csv.DictReader((out / "tune" / "tiny" / "trials.csv").open()))) == 2
    hyp = load_hyp(out / "hyp_tuned.yaml")
    assert math.isclose(hyp.lr0, recipe["lr0"], rel_tol=1e-9) and math.isclose(hyp.warmup_epochs,
                                                                                 recipe["warmup_epochs"])
    assert hyp.box == load_hyp("configs/hyp/hyp.scratch-low.yaml").box  # the rest: the head's starting hyp
    assert f"--optimizer {recipe['optimizer']}" in caplog.text and str(out / "hyp_tuned.yaml") in caplog.text


def test_tune_budgets_are_checked():
    from yolobone.engine.compare.options import CompareOptions
    assert CompareOptions(tune_time=30.0).tuning and not CompareOptions().tuning
    with pytest.raises(CompareError, match="--tune-time -1: expected >= 0"):
        CompareOptions(cfgs=["configs/yolov5n.yaml"], tune_time=-1.0).check()
