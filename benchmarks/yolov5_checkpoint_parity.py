"""A checkpoint written by YOLOv5 v7.0's own train.py, scored by ours and by YOLOv5: val mAP50-95 and detect boxes.

    python benchmarks/yolov5_checkpoint_parity.py                       # trains yolov5n with YOLOv5 first (3 epochs)
    python benchmarks/yolov5_checkpoint_parity.py --weights best.pt     # a YOLOv5 checkpoint you have
    python benchmarks/yolov5_checkpoint_parity.py --weights best.pt --data data.yaml --img 160   # on its own data
    python benchmarks/yolov5_checkpoint_parity.py --ref-setup /path/to/shared/yolov5-ref/setup.sh

YOLOv5 runs in its reference venv (../shared/yolov5-ref/setup.sh); ours reads the same file through its restricted
unpickler (yolobone/utils/pickled_checkpoint.py). Data: --data (the built-in shapes set; YOLOv5 gets its own label copies,
so neither side reads the other's label cache). Val: conf 0.001, IoU 0.6, batch 32 on both sides; each val.py's own
mAP (ours is COCOeval's, YOLOv5's integrates differently, README "Validation"), then both sides' --save-json
detections scored by pycocotools. Detect: --detect-conf (0.25, YOLOv5's default; lower it for a barely trained
model), IoU 0.45 on --detect-images non-square PNG crops of val images (so the letterbox pads), compared box by box
from both sides' --save-txt --save-conf files: counts, classes and scores, the corner gap as written (ours maps
boxes back through the letterbox's real padding; YOLOv5's detect.py estimates the padding from the shapes and
rounds to whole pixels), and the boxes equal once ours are mapped back YOLOv5's way. Exit 0 when the val.py
figures are within 0.002 and every box is equal.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.learning_parity import REF_SETUP, resolve_data, side_copy  # noqa: E402

MARK = "PARITY_JSON "
REF_VAL = """
import json
from yolov5 import val
r = val.run(data={data!r}, weights={weights!r}, imgsz={img}, batch_size=32, conf_thres=0.001, iou_thres=0.6,
            device='cpu', workers={workers}, project={project!r}, name='yolov5_val', exist_ok=True, plots=False,
            save_json=True)
print({mark!r} + json.dumps({{'map50': float(r[0][2]), 'map50_95': float(r[0][3])}}))
"""
REF_DETECT = """
from yolov5 import detect
detect.run(weights={weights!r}, source={source!r}, imgsz=({img}, {img}), conf_thres={conf}, iou_thres=0.45,
           device='cpu', save_txt=True, save_conf=True, nosave=True, project={project!r}, name='yolov5_detect',
           exist_ok=True)
"""


def ref_python(code: str, setup: Path, cwd: Path) -> str:
    """Run python code in YOLOv5's reference venv (from a folder without our packages); its stdout + stderr."""
    cmd = f". {shlex.quote(str(setup))} >/dev/null 2>&1 && python -c {shlex.quote(code)}"
    out = subprocess.run(["bash", "-c", cmd], cwd=cwd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"YOLOv5 reference failed (exit {out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return out.stdout + out.stderr


def train_yolov5(data: Path, work: Path, a: argparse.Namespace) -> Path:
    """yolov5n from scratch with YOLOv5's own train.py; returns its best.pt."""
    best = work / "yolov5_train" / "weights" / "best.pt"
    if best.is_file():
        print(f"reusing {best}")
        return best
    args = (f"--data {data} --cfg yolov5n.yaml --weights '' --img {a.img} --batch-size {a.batch} --epochs {a.epochs} "
            f"--device cpu --workers {a.workers} --project {work} --name yolov5_train --exist-ok --noplots")
    cmd = f". {shlex.quote(str(a.ref_setup))} >/dev/null 2>&1 && python -m yolov5.train {args}"
    print(f"training yolov5n with YOLOv5 v7.0: {args}", flush=True)
    subprocess.run(["bash", "-c", cmd], cwd=work, check=True, capture_output=True)
    return best


def crops(val_images: Path, out: Path, n: int) -> Path:
    """n non-square PNG crops of val images (lossless, so both sides decode the same pixels)."""
    import cv2
    out.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(sorted(val_images.glob("*.jpg"))[:n]):
        im = cv2.imread(str(f))
        h, w = im.shape[:2]
        cut = im[: int(h * 0.7)] if i % 2 == 0 else im[:, : int(w * 0.6)]  # wide and tall
        cv2.imwrite(str(out / f"{f.stem}.png"), cut)
    return out


def read_labels(folder: Path) -> Dict[str, np.ndarray]:
    """stem -> (n, 6) rows 'cls cx cy w h conf' sorted by confidence, descending."""
    out = {}
    for f in sorted(folder.glob("*.txt")):
        rows = np.loadtxt(f, ndmin=2) if f.stat().st_size else np.zeros((0, 6))
        out[f.stem] = rows[np.argsort(-rows[:, 5], kind="stable")] if len(rows) else rows
    return out


def _xyxy(rows: np.ndarray, w: int, h: int) -> np.ndarray:
    """Normalised 'cls cx cy w h ...' rows -> xyxy in original pixels."""
    xy, wh = rows[:, 1:3] * (w, h), rows[:, 3:5] * (w, h)
    return np.concatenate([xy - wh / 2, xy + wh / 2], 1)


def yolov5_mapped(rows: np.ndarray, w: int, h: int, imgsz: int) -> np.ndarray:
    """Our rows as YOLOv5's detect.py maps boxes back: ours subtract the letterbox's real (integer) padding and
    divide by the per-axis resize ratio; its scale_boxes derives one gain and a fractional padding from the shapes
    alone, then rounds the corners to whole pixels. Re-mapping ours that way isolates the detections themselves."""
    from yolobone.data.augment import letterbox_geometry
    new_w, new_h, pad_w, pad_h = letterbox_geometry(h, w, imgsz, auto=True, stride=32)
    ours, bounds = _xyxy(rows, w, h), np.array([w, h, w, h], dtype=np.float64)
    lb = ours * ([new_w / w, new_h / h] * 2) + ([pad_w // 2, pad_h // 2] * 2)  # network pixels
    in_w, in_h = new_w + pad_w, new_h + pad_h
    gain = min(in_h / h, in_w / w)
    xyxy = np.clip(np.round((lb - ([(in_w - w * gain) / 2, (in_h - h * gain) / 2] * 2)) / gain), 0, bounds)
    clipped = (np.abs(ours) < 1e-3) | (np.abs(ours - bounds) < 1e-3)  # at the border: clipped on both sides
    xyxy = np.where(clipped, np.round(ours), xyxy)
    out = rows.copy()
    out[:, 1:3] = (xyxy[:, :2] + xyxy[:, 2:]) / 2 / (w, h)
    out[:, 3:5] = (xyxy[:, 2:] - xyxy[:, :2]) / (w, h)
    return out


def compare_boxes(ours: Dict[str, np.ndarray], ref: Dict[str, np.ndarray], sizes: Dict[str, Tuple[int, int]],
                  imgsz: int) -> Tuple[str, bool]:
    """One line: boxes per side, whether counts, classes and scores agree, the largest corner gap in pixels as
    written, and how many of our boxes equal YOLOv5's once mapped back its way (yolov5_mapped)."""
    n_ours, n_ref = (sum(len(d.get(s, ())) for s in sizes) for d in (ours, ref))
    same, d_px, d_conf, equal = True, 0.0, 0.0, 0
    for s, (w, h) in sizes.items():
        a, b = ours.get(s, np.zeros((0, 6))), ref.get(s, np.zeros((0, 6)))
        if a.shape != b.shape or not np.array_equal(a[:, 0], b[:, 0]):
            same = False
            continue
        if len(a):
            d_px = max(d_px, float(np.abs(_xyxy(a, w, h) - _xyxy(b, w, h)).max()))
            d_conf = max(d_conf, float(np.abs(a[:, 5] - b[:, 5]).max()))
            equal += int((np.abs(yolov5_mapped(a, w, h, imgsz)[:, 1:5] - b[:, 1:5]).max(1) < 1e-5).sum())
    line = (f"detect (IoU 0.45): {len(sizes)} images, ours {n_ours} boxes, YOLOv5 {n_ref} boxes; same count and "
            f"classes per image: {'yes' if same else 'NO'}; max |diff| conf {d_conf:.1e}, box corners {d_px:.2f} px "
            f"as written; {equal}/{n_ref} boxes identical when ours are mapped back as YOLOv5 maps them")
    return line, same and d_conf < 1e-5 and equal == n_ref


def same_metric(report, ref_json: Path) -> str:
    """Both sides' --save-json detections scored by one metric (pycocotools against the same ground truth): the
    difference left is in the detections, not in how each val.py integrates AP."""
    from yolobone.engine.detect.coco_eval import evaluate_json_files
    theirs = evaluate_json_files(report.gt_json_path, ref_json)
    ours = report.coco_stats
    return (f"pycocotools on each side's detections: mAP50-95 ours {ours[0]:.4f}, YOLOv5 {theirs[0]:.4f}, "
            f"|diff| {abs(ours[0] - theirs[0]):.4f}; mAP50 ours {ours[1]:.4f}, YOLOv5 {theirs[1]:.4f}")


def run(a: argparse.Namespace) -> int:
    from yolobone.engine.detect.predict_run import DetectConfig, run_detect
    from yolobone.engine.detect.val_run import ValConfig, run_val

    work = Path(a.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = resolve_data(a.data)
    v5_data = side_copy(data, work / "yolov5_data")
    weights = Path(a.weights).resolve() if a.weights else train_yolov5(v5_data, work, a)
    ref = json.loads(ref_python(REF_VAL.format(data=str(v5_data), weights=str(weights), img=a.img, workers=a.workers,
                                               project=str(work), mark=MARK), a.ref_setup, work)
                     .split(MARK)[-1].splitlines()[0])
    report = run_val(ValConfig(weights=weights, data=data, imgsz=a.img, batch_size=32, device="cpu",
                               workers=a.workers, project=work, name="ours_val", exist_ok=True, plots=False,
                               compile="off", save_json=True, coco_eval=True))
    mine = report.result
    gap = abs(mine.map50_95 - ref["map50_95"])
    print(f"weights: {weights} (written by YOLOv5 v7.0's train.py)")
    print(f"val.py mAP50-95: ours {mine.map50_95:.4f}, YOLOv5 {ref['map50_95']:.4f}, |diff| {gap:.4f} "
          f"(target <= 0.002); mAP50: ours {mine.map50:.4f}, YOLOv5 {ref['map50']:.4f}")
    print(same_metric(report, work / "yolov5_val" / f"{weights.stem}_predictions.json"))
    source = crops(Path(data).parent / "images" / "val", work / "detect_images", a.detect_images)
    for old in ("yolov5_detect", "ours_detect"):  # YOLOv5's detect.py appends to label files left by a rerun
        shutil.rmtree(work / old, ignore_errors=True)
    ref_python(REF_DETECT.format(weights=str(weights), source=str(source), img=a.img, project=str(work),
                                 conf=a.detect_conf), a.ref_setup, work)
    run_detect(DetectConfig(weights=weights, source=source, imgsz=a.img, conf_thres=a.detect_conf, device="cpu",
                            save_txt=True, save_conf=True, nosave=True, project=work, name="ours_detect",
                            exist_ok=True, compile="off"))
    import cv2
    sizes = {p.stem: cv2.imread(str(p)).shape[1::-1] for p in sorted(source.glob("*.png"))}
    line, boxes_ok = compare_boxes(read_labels(work / "ours_detect" / "labels"),
                                   read_labels(work / "yolov5_detect" / "labels"), sizes, a.img)
    print(f"{line}; conf {a.detect_conf}")
    return 0 if gap <= 0.002 and boxes_ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", default="", help="a YOLOv5 checkpoint (default: train yolov5n with YOLOv5 first)")
    p.add_argument("--data", default="shapes", help="'shapes' (built-in), 'digits-det' or a data.yaml")
    p.add_argument("--img", type=int, default=128, help="train, val and detect size")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--detect-images", type=int, default=8)
    p.add_argument("--detect-conf", type=float, default=0.25,
                   help="detect.py confidence threshold on both sides (lower it for a barely trained model)")
    p.add_argument("--workdir", default="runs/yolov5_parity")
    p.add_argument("--ref-setup", type=Path, default=REF_SETUP, help="YOLOv5 reference venv setup script")
    return run(p.parse_args())


if __name__ == "__main__":
    sys.exit(main())
