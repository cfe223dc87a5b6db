"""Backbone comparison: train (or only profile) several model YAMLs under identical settings, then tabulate and plot.

    from yolobone.engine.compare import compare
    res = compare({"cfgs": ["configs/yolov5s.yaml", "configs/yolov5s-resnet18.yaml"], "epochs": 3, "imgsz": 128})
    print(res.results_md.read_text())

Layout of a comparison folder (runs/compare/exp, exp2, ...):
    compare.yaml             the options (a re-run with different training settings is refused)
    protocol.yaml            everything that defines the comparison (protocol.py); --protocol reruns it
    profiles.json            cached size/speed measurements (reused while the YAML file and settings match)
    runs/<cfg stem>/         each config's own training run (results.csv, weights/last.pt, best.pt, plots)
    results.md, .csv, .tex, .json   the tables; pareto.png, curves.png
Re-running the same command with --exist-ok (or --resume DIR) reads finished runs back, resumes an interrupted run
from its last.pt and retries failed configs; nothing finished is retrained.

Modules, each importing only those above it in this list: options (CompareOptions), metrics (what each task's runs
are compared on), stats, report (per-run tables, plots), outputs (across seeds), protocol, profile (size, speed),
training (one run in its folder), worker (one job in a worker process), jobs (the pool and Ray), folder (the folder's
state), run (the driver: compare()).
"""
from yolobone.engine.compare.options import BACKENDS, CompareError, CompareOptions
from yolobone.engine.compare.run import CompareResult, compare

__all__ = ["BACKENDS", "CompareError", "CompareOptions", "CompareResult", "compare"]
