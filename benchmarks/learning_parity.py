"""Learning parity with YOLOv5 v7.0 or Ultralytics: both trainers, same data, model, schedule and seeds; one metric.

    python benchmarks/learning_parity.py                        # digits-det, yolov5n, 160 px, 30 epochs, seeds 0 1
    python benchmarks/learning_parity.py --n-train 1200 --n-val 500 --epochs 60 --seeds 0 1 2 3 4
    python benchmarks/learning_parity.py --reference ultralytics --cfg yolo11n --n-train 1200 --n-val 500 --epochs 60
    python benchmarks/learning_parity.py --reference yolov7 --cfg yolov7-tiny --n-train 1200 --n-val 500 --epochs 60
    python benchmarks/learning_parity.py --ours-batches yolov5 --tag=-swap     # ours trained on YOLOv5's batches
    python benchmarks/learning_parity.py --data shapes --epochs 30        # the built-in shapes set
    python benchmarks/learning_parity.py --sides ours --ours-args "--hyp my_hyp.yaml" --tag trial

For every seed, our train.py and the reference's trainer (YOLOv5's `python -m yolov5.train`, or Ultralytics' `yolo
detect train` with `--reference ultralytics`, YOLOv7's train.py (the yolov7detect package) with `--reference yolov7`;
all from the reference venv, ../shared/yolov5-ref) run at the same time
(one process each, OMP_NUM_THREADS = --threads, niceness 10). Ours reads a private copy of the label folders (the
images are shared through a link); the references resolve the link and read, and cache, the original labels, so
the label caches never meet. Each side trains with its own defaults for the model:
YOLOv5's scratch-low SGD recipe for anchor-based configs, Ultralytics' recipe (optimizer auto, close-mosaic 10) for
the anchor-free ones. Afterwards each side's best.pt is validated by its own val (conf 0.001, IoU 0.6 for YOLOv5,
0.7 for Ultralytics, on both sides) with the predictions saved as COCO JSON, and both JSON files are scored by
pycocotools against the same ground truth (yolobone/engine/detect/coco_eval.py): that is the "COCOeval" column.

From each trainer's own per-epoch val mAP50 (results.csv) it also reports the best, the mean of the last 10 epochs and
the area under the curve (the mean over epochs), which vary less between seeds than the best; across seeds, Welch's
t-test and the Mann-Whitney U test (two-sided p, and one-sided p for "ours is below the reference"). Everything goes
to <out>/parity.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.data.make_digits_det import DEFAULT_OUT as DIGITS_DET, build as build_digits_det  # noqa: E402

# ../shared/yolov5-ref beside the checkout (or beside a worktree's parent folder), else $YOLOV5_REF_SETUP
REF_SETUP = Path(os.environ.get("YOLOV5_REF_SETUP") or next(
    (p for p in (d / "shared" / "yolov5-ref" / "setup.sh" for d in ROOT.parents) if p.is_file()),
    ROOT.parent / "shared" / "yolov5-ref" / "setup.sh"))
REFERENCES = ("yolov5", "ultralytics", "yolov7")
YOLOV7_HYP = "configs/hyp/hyp.yolov7-scratch-tiny.yaml"  # YOLOv7's hyp.scratch.tiny in our keys (both sides read it)
# YOLOv7's train.py has no --seed (it seeds with 2 + rank): shift its init_seeds by the run's seed, then run it as is.
# Its code still uses numpy's removed aliases (np.int, ...): they are put back as the builtins they stood for.
YOLOV7_RUN = ("import sys, runpy, numpy, yolov7.utils.general as g; numpy.int, numpy.float, numpy.bool = int, float, "
              "bool; f = g.init_seeds; g.init_seeds = lambda s=0: f(s + {seed}); sys.argv = [sys.argv[0]] + "
              "sys.argv[1:]; runpy.run_module('yolov7.{module}', run_name='__main__')")
# Its test.py's command line loads `--weights` as a list (torch.load of the list fails): call its test() instead,
# with the module-level options it reads
YOLOV7_VAL = ("import argparse, numpy, yolov7.test as t; numpy.int, numpy.float, numpy.bool = int, float, bool; "
              "t.opt = argparse.Namespace(device='cpu', project={project!r}, name='val', exist_ok=True, task='val', "
              "single_cls=False); "
              "t.test({data!r}, weights={weights!r}, batch_size={batch}, imgsz={img}, conf_thres=0.001, "
              "iou_thres={iou}, save_json=True, plots=False, trace=False)")
LAST_EPOCHS = 10  # the "last-10" mean


def resolve_data(data: str, n_train: int = 400, n_val: int = 100) -> Path:
    """data.yaml for 'digits-det' (built on first use, n_train/n_val images), 'shapes' (built-in) or a path."""
    if data == "digits-det":
        out = DIGITS_DET if (n_train, n_val) == (400, 100) else DIGITS_DET.with_name(f"digits-det-{n_train}-{n_val}")
        build_digits_det(out, n_train=n_train, n_val=n_val)
        return out / "data.yaml"
    if data == "shapes":
        from yolobone.data.synthetic import ensure_builtin_dataset
        return ensure_builtin_dataset("shapes")
    return Path(data).resolve()


def side_copy(data_yaml: Path, dest: Path) -> Path:
    """A data.yaml whose train/val images link to the originals and whose labels are private copies."""
    from yolobone.utils.yaml_io import load_yaml
    cfg = load_yaml(data_yaml)
    base = Path(cfg.get("path") or data_yaml.parent)
    base = base if base.is_absolute() else (data_yaml.parent / base).resolve()
    out = {"path": str(dest), "nc": cfg["nc"], "names": [str(n) for n in cfg["names"]]}
    for split in ("train", "val"):
        images = base / cfg[split]
        labels = Path(str(images).replace(f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"))
        link, lbl = dest / "images" / split, dest / "labels" / split
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(images, target_is_directory=True)
        if not lbl.exists():
            shutil.copytree(labels, lbl, ignore=shutil.ignore_patterns("*.cache"))
        out[split] = str(dest / "images" / split)  # absolute: YOLOv7 reads no `path:` key
    path = dest / "data.yaml"
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in out.items()))
    return path


def ref_command(args: str) -> List[str]:
    return ["bash", "-c", f". {shlex.quote(str(REF_SETUP))} >/dev/null 2>&1 && {args}"]


def ultralytics_args(**kw) -> str:
    """Ultralytics' key=value command-line form."""
    return " ".join(f"{k}={shlex.quote(str(v))}" for k, v in kw.items())


def iou_thres(a: argparse.Namespace) -> float:
    """Each reference's val NMS IoU default (YOLOv7: YOLOv5's), used on both sides."""
    return 0.7 if a.reference == "ultralytics" else 0.6


def device_of(a: argparse.Namespace) -> str:
    """--device of both sides' train and val ('cpu' for callers whose options have none, e.g. transfer.py)."""
    return str(getattr(a, "device", "cpu"))


def ours_cfg(a: argparse.Namespace) -> str:
    return f"configs/yolov7/{a.cfg}.yaml" if a.reference == "yolov7" else f"configs/{a.cfg}.yaml"


def train_command(side: str, data: Path, run_dir: Path, seed: int, a: argparse.Namespace) -> List[str]:
    common = (f"--data {data} --weights '' --img {a.img} --batch-size {a.batch} --epochs {a.epochs} --seed {seed} "
              f"--device {device_of(a)} --workers {a.workers} --project {run_dir.parent} --name {run_dir.name} --exist-ok "
              f"--noplots")
    if side == "ours":
        recipe = f"--hyp {YOLOV7_HYP} --cos-lr " if a.reference == "yolov7" else ""  # as YOLOv7's train.py trains
        script = "train.py"
        if a.ours_batches == "yolov5":  # the pipeline swap: our trainer on YOLOv5's batches of this seed
            script = f"{ROOT / 'benchmarks' / 'replay_train.py'} --batches {run_dir.parent / f'batches-seed{seed}'}"
        return ["bash", "-c", f"cd {shlex.quote(str(a.ours_root))} && {shlex.quote(sys.executable)} {script} "
                              f"--cfg {ours_cfg(a)} {recipe}{common} {a.ours_args}"]
    if side == "yolov7":
        v7 = common.replace("--noplots", "").replace(f"--img {a.img}", f"--img-size {a.img} {a.img}").replace(
            f"--seed {seed} ", "")
        return ref_command(f"python -c {shlex.quote(YOLOV7_RUN.format(seed=seed, module='train'))} --cfg "
                           f"{a.ours_root / ours_cfg(a)} --hyp {a.ours_root / YOLOV7_HYP} {v7} {a.ref_args}")
    if side == "ultralytics":
        return ref_command("yolo detect train " + ultralytics_args(
            model=f"{a.cfg}.yaml", data=data, imgsz=a.img, batch=a.batch, epochs=a.epochs, seed=seed, device=device_of(a),
            workers=a.workers, project=run_dir.parent, name=run_dir.name, exist_ok=True, plots=False,
            pretrained=False, amp=False) + f" {a.ref_args}")
    return ref_command(f"python -m yolov5.train --cfg {a.cfg}.yaml {common} {a.ref_args}")


def val_command(side: str, data: Path, run_dir: Path, a: argparse.Namespace) -> List[str]:
    best = run_dir / "weights" / "best.pt"
    common = (f"--weights {best} --data {data} --img {a.img} --batch-size {a.batch} --iou-thres {iou_thres(a)} "
              f"--device {device_of(a)} --workers {a.workers} --project {run_dir} --name val --exist-ok --save-json")
    if side == "ours":
        return ["bash", "-c", f"cd {shlex.quote(str(a.ours_root))} && {shlex.quote(sys.executable)} val.py {common} "
                              f"--coco-eval"]
    if side == "yolov7":
        return ref_command("python -c " + shlex.quote(YOLOV7_VAL.format(
            project=str(run_dir), data=str(data), weights=str(best), batch=a.batch, img=a.img, iou=iou_thres(a))))
    if side == "ultralytics":
        return ref_command("yolo detect val " + ultralytics_args(
            model=best, data=data, imgsz=a.img, batch=a.batch, conf=0.001, iou=iou_thres(a), device=device_of(a),
            workers=a.workers, project=run_dir, name="val", exist_ok=True, save_json=True, plots=False))
    return ref_command(f"python -m yolov5.val {common}")


def launch(cmd: List[str], log: Path, threads: int, side: str, ours_root: Path = ROOT) -> subprocess.Popen:
    """Start cmd niced; YOLOv5 runs outside our tree (`python -m` puts the working directory on sys.path, and its
    attempt_load would import our models/ package)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env["PYTHONPATH"] = str(ours_root) if side == "ours" else ""
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(["nice", "-n", "10", *cmd], cwd=ROOT if side == "ours" else log.parent, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


YOLOV7_COLUMNS = ("epoch", "gpu_mem", "train/box_loss", "train/obj_loss", "train/cls_loss", "train/total", "targets",
                  "img_size", "metrics/precision", "metrics/recall", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95",
                  "val/box_loss", "val/obj_loss", "val/cls_loss")  # YOLOv7's results.txt, one line an epoch


def read_results(csv_path: Path) -> Dict[str, List[float]]:
    """results.csv columns (keys stripped of YOLOv5's padding) -> values per epoch; YOLOv7's results.txt beside a
    missing results.csv is read by its column order."""
    txt = csv_path.with_name("results.txt")
    if not csv_path.is_file() and txt.is_file():
        rows = [line.split() for line in txt.read_text().splitlines() if line.strip()]
        return {k: [float(r[j]) for r in rows] for j, k in enumerate(YOLOV7_COLUMNS) if j >= 2 and k != "train/total"}
    with csv_path.open() as f:
        rows = [{k.strip(): float(v) for k, v in r.items() if k and v and v.strip()} for r in csv.DictReader(f)]
    return {k: [r[k] for r in rows] for k in rows[0]} if rows else {}


def metric_column(res: Dict[str, List[float]], names: Sequence[str]) -> List[float]:
    """The first of `names` (ours/YOLOv5's or Ultralytics' spelling of one metric) that results.csv has."""
    for name in names:
        if name in res:
            return res[name]
    raise SystemExit(f"results.csv has none of {list(names)}; columns: {list(res)}")


def prediction_json(side: str, val_dir: Path) -> Optional[Path]:
    """The side's saved predictions; Ultralytics numbers classes from 1 on non-COCO data, so shift them to 0."""
    pred = next(iter(sorted(val_dir.glob("*predictions.json"))), None)
    if side != "ultralytics" or pred is None:
        return pred
    shifted = val_dir / "predictions_from0.json"
    shifted.write_text(json.dumps([{**r, "category_id": r["category_id"] - 1} for r in json.loads(pred.read_text())]))
    return shifted


def coco_scores(side: str, run_dir: Path) -> Optional[List[float]]:
    """[mAP50-95, mAP50] of the side's best.pt predictions, scored by pycocotools against one ground truth (ours)."""
    from yolobone.engine.detect.coco_eval import evaluate_json_files
    ours_val = run_dir.parent / run_dir.name.replace(side, "ours", 1) / "val"
    gt = next(iter(sorted(ours_val.glob("*_ground_truth.json"))), None)
    pred = prediction_json(side, run_dir / "val")
    if gt is None or pred is None:
        return None
    stats = evaluate_json_files(gt, pred)
    return [float(stats[0]), float(stats[1])]


def curve_stats(curve: Sequence[float]) -> Dict[str, float]:
    """Best, mean of the last LAST_EPOCHS epochs, and area under the curve (the mean over epochs) of one metric."""
    return {"best": max(curve), "last10": statistics.mean(curve[-LAST_EPOCHS:]), "auc": statistics.mean(curve)}


def summarize(run_dir: Path, side: str) -> dict:
    res = read_results(run_dir / "results.csv")
    loss = [sum(v) for v in zip(*(res[k] for k in res if k.startswith("train/") and k.endswith("_loss")))]
    map50 = metric_column(res, ("metrics/mAP_0.5", "metrics/mAP50(B)"))
    map5095 = metric_column(res, ("metrics/mAP_0.5:0.95", "metrics/mAP50-95(B)"))
    return {"loss": loss, "map50": map50, "map": map5095, "best_map50": max(map50), "best_map": max(map5095),
            "map50_stats": curve_stats(map50), "coco": coco_scores(side, run_dir)}


def side_tests(ours: Sequence[float], ref: Sequence[float]) -> Dict[str, float]:
    """Welch's t-test and Mann-Whitney U between the seeds of two sides: two-sided p and one-sided p (ours < ref)."""
    from scipy import stats
    out: Dict[str, float] = {}
    if len(ours) >= 2 and len(ref) >= 2:
        welch = stats.ttest_ind(ours, ref, equal_var=False)
        out.update(welch_t=float(welch.statistic), welch_p=float(welch.pvalue),
                   welch_p_less=float(stats.ttest_ind(ours, ref, equal_var=False, alternative="less").pvalue))
    if ours and ref:
        mw = stats.mannwhitneyu(ours, ref, alternative="two-sided")
        out.update(mw_u=float(mw.statistic), mw_p=float(mw.pvalue),
                   mw_p_less=float(stats.mannwhitneyu(ours, ref, alternative="less").pvalue))
    return out


def finished(run_dir: Path, epochs: int) -> bool:
    """A run of `epochs` epochs whose best.pt was written (so --seeds can be split over several invocations)."""
    csv_path = run_dir / "results.csv"
    written = csv_path.is_file() or csv_path.with_suffix(".txt").is_file()
    return (run_dir / "weights" / "best.pt").is_file() and written and \
        len(next(iter(read_results(csv_path).values()), [])) >= epochs


def dump_yolov5_batches(seed: int, data: Path, out: Path, a: argparse.Namespace) -> None:
    """YOLOv5's training batches of this seed, saved for our trainer (--ours-batches yolov5)."""
    folder = out / f"batches-seed{seed}"
    if (folder / f"e{a.epochs - 1:03d}.pt").is_file():
        return
    print(f"seed {seed}: saving YOLOv5's training batches to {folder}", flush=True)
    cmd = ref_command(f"python {ROOT / 'benchmarks' / 'dump_yolov5_batches.py'} --data {data} --img {a.img} "
                      f"--batch {a.batch} --epochs {a.epochs} --seed {seed} --workers {a.workers} --out {folder}")
    if launch(cmd, out / f"batches-seed{seed}.log", a.threads, "yolov5").wait():
        raise SystemExit(f"saving YOLOv5's batches failed; see {out}/batches-seed{seed}.log")


def run_pair(seed: int, data: Dict[str, Path], out: Path, a: argparse.Namespace) -> Dict[str, dict]:
    """Train the sides at the same time (finished runs are reused unless --retrain), then validate each side."""
    dirs = {s: out / f"{s}-seed{seed}" for s in a.sides}
    todo = [s for s in a.sides if a.retrain or not finished(dirs[s], a.epochs)]
    if "ours" in todo and a.ours_batches == "yolov5":
        dump_yolov5_batches(seed, data["ours"], out, a)
    if len(todo) < len(a.sides):
        print(f"seed {seed}: reusing the finished runs of {', '.join(s for s in a.sides if s not in todo)}")
    procs = {s: launch(train_command(s, data[s], dirs[s], seed, a), out / f"{s}-seed{seed}.log", a.threads, s,
                       a.ours_root) for s in todo}
    t0 = time.time()
    for s, p in procs.items():
        if p.wait():
            raise SystemExit(f"{s} seed {seed} training failed (exit {p.returncode}); see {out}/{s}-seed{seed}.log")
    if todo:
        print(f"seed {seed}: trained {', '.join(todo)} in {time.time() - t0:.0f} s", flush=True)
    for s in sorted(a.sides, key=lambda s: s != "ours"):  # ours first: the other side is scored on our ground truth
        if s not in todo and prediction_json(s, dirs[s] / "val") is not None:
            continue
        log = out / f"{s}-seed{seed}-val.log"
        if launch(val_command(s, data[s], dirs[s], a), log, a.threads, s, a.ours_root).wait():
            print(f"  {s} seed {seed}: validation failed, see {out}/{s}-seed{seed}-val.log")
    return {s: summarize(dirs[s], s) for s in a.sides}


def report(runs: Dict[str, Dict[int, dict]], a: argparse.Namespace) -> Dict[str, dict]:
    seeds = sorted(next(iter(runs.values())))
    print("\ntraining loss (sum of the train/*_loss columns) per epoch")
    cols = [(s, k) for s in runs for k in seeds]
    print("epoch " + " ".join(f"{s[:6]}-s{k:<3}" for s, k in cols))
    for e in range(a.epochs):
        print(f"{e:5d} " + " ".join(f"{runs[s][k]['loss'][e]:10.4f}" if e < len(runs[s][k]["loss"]) else " " * 10
                                    for s, k in cols))
    print("\nbest mAP per run            own results.csv          COCOeval on best.pt (same JSON scoring)")
    means = {}
    for s in runs:
        own50 = [runs[s][k]["best_map50"] for k in seeds]
        coco = [runs[s][k]["coco"] for k in seeds]
        for k in seeds:
            r, c = runs[s][k], runs[s][k]["coco"]
            print(f"  {s:7s} seed {k}: mAP50 {r['best_map50']:.4f} mAP50-95 {r['best_map']:.4f}     "
                  + (f"mAP50 {c[1]:.4f} mAP50-95 {c[0]:.4f}" if c else "n/a"))
        means[s] = {"own_map50": statistics.mean(own50),
                    "coco_map50": statistics.mean(c[1] for c in coco) if all(coco) else None,
                    "coco_map": statistics.mean(c[0] for c in coco) if all(coco) else None,
                    "final_loss": statistics.mean(runs[s][k]["loss"][-1] for k in seeds)}
        m = means[s]
        print(f"  {s:7s} mean  : mAP50 {m['own_map50']:.4f}                      "
              + (f"mAP50 {m['coco_map50']:.4f} mAP50-95 {m['coco_map']:.4f}" if m["coco_map50"] else "")
              + f"   final loss {m['final_loss']:.4f}")
    ref = a.reference
    if {"ours", ref} <= set(means) and means[ref]["coco_map50"]:
        o, y = means["ours"], means[ref]
        print(f"ratio ours / {ref}: COCOeval mAP50 {o['coco_map50'] / y['coco_map50']:.3f}, mAP50-95 "
              f"{o['coco_map'] / y['coco_map']:.3f}; own mAP50 {o['own_map50'] / y['own_map50']:.3f}; "
              f"final loss {o['final_loss'] / y['final_loss']:.3f}")
    return {"means": means, "tests": report_tests(runs, seeds, ref)}


def report_tests(runs: Dict[str, Dict[int, dict]], seeds: List[int], ref: str) -> Dict[str, dict]:
    """Per-seed best / last-10 / AUC of each side's own mAP50 curve and COCOeval mAP50, their means and the tests."""
    measures = {"best mAP50": lambda r: r["map50_stats"]["best"], "last-10 mAP50": lambda r: r["map50_stats"]["last10"],
                "AUC mAP50": lambda r: r["map50_stats"]["auc"],
                "COCOeval mAP50": lambda r: r["coco"][1] if r["coco"] else float("nan")}
    print(f"\nper seed (own per-epoch val mAP50; COCOeval on best.pt), tests of ours vs {ref} across seeds")
    tests = {}
    for name, get in measures.items():
        vals = {s: [get(runs[s][k]) for k in seeds] for s in runs}
        line = "  ".join(f"{s} " + " ".join(f"{v:.4f}" for v in vals[s]) + f" (mean {statistics.mean(vals[s]):.4f})"
                         for s in runs)
        print(f"  {name:15s} {line}")
        if {"ours", ref} <= set(vals):
            t = tests[name] = side_tests(vals["ours"], vals[ref])
            print("  " + " " * 15 + " ".join(f"{k} {v:.3g}" for k, v in t.items()))
    return tests


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits-det", help="'digits-det', 'shapes' or a data.yaml path")
    p.add_argument("--n-train", type=int, default=400, help="digits-det train images")
    p.add_argument("--n-val", type=int, default=100, help="digits-det val images")
    p.add_argument("--reference", choices=REFERENCES, default="yolov5", help="the other side: YOLOv5 v7.0's "
                   "trainer, Ultralytics' (yolov5nu, yolov8n, yolo11n ...) or YOLOv7's (yolov7-tiny: its "
                   "hyp.scratch.tiny and cosine LR on both sides)")
    p.add_argument("--cfg", default="yolov5n", help="model YAML name (configs/<cfg>.yaml and the reference's "
                   "<cfg>.yaml)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--img", type=int, default=160)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--device", default="cpu", help="both sides' device: cpu or a CUDA index (0)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every process")
    p.add_argument("--sides", nargs="+", choices=("ours", "reference"), default=["ours", "reference"])
    p.add_argument("--ours-args", default="", help="extra flags for our train.py")
    p.add_argument("--ref-args", default="", help="extra flags for YOLOv5's train")
    p.add_argument("--ours-root", type=Path, default=ROOT, help="checkout whose train.py/val.py are 'ours' "
                   "(e.g. a worktree of main, to A/B a change)")
    p.add_argument("--ours-batches", choices=("ours", "yolov5"), default="ours",
                   help="yolov5: the pipeline swap - our trainer learns from the batches YOLOv5's own dataloader "
                        "gives for the same seed (benchmarks/dump_yolov5_batches.py, replay_train.py)")
    p.add_argument("--retrain", action="store_true", help="train again runs that already finished in <out>")
    p.add_argument("--tag", default="", help="suffix of the output folder")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "learning_parity")
    a = p.parse_args(argv)
    a.sides = ["ours" if s == "ours" else a.reference for s in a.sides]
    data_yaml = resolve_data(a.data, a.n_train, a.n_val)
    name = data_yaml.parent.name if a.data.endswith(".yaml") or a.data == "digits-det" else a.data
    ref_tag = "" if a.reference == "yolov5" else f"-{a.reference}"
    out = (a.out / f"{name}-{a.cfg}-e{a.epochs}{ref_tag}{a.tag}").resolve()
    data = {s: side_copy(data_yaml, out / f"data-{s}") for s in a.sides}
    runs: Dict[str, Dict[int, dict]] = {s: {} for s in a.sides}
    for seed in a.seeds:
        for s, r in run_pair(seed, data, out, a).items():
            runs[s][seed] = r
        (out / "parity.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()},
                                                      "runs": runs}, indent=1))
    summary = report(runs, a)
    (out / "parity.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "runs": runs,
                                                  **summary}, indent=1))
    print(f"\n{out / 'parity.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
