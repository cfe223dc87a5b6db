"""A comparison's outputs across seeds: results.md, results.csv, results.tex (booktabs), results.json, the plots.

One results.csv / .tex row per config: mean over its finished seeds (the metric columns), std and n beside them,
and the test against the baseline (the first config, yolobone/engine/compare/stats.py). results.md shows the same table
(mean ± std (n)) and, with several seeds, every run below it; results.json holds everything (protocol, per-run
figures and curves, the tests).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from yolobone.engine.compare.int8_eval import int8_table
from yolobone.engine.compare.metrics import metric_columns, pareto_metric
from yolobone.engine.compare.report import (ConfigResult, _device_label, _duration, _fmt_gflops, _latency_keys, _rel,
                                            _status_text, csv_fieldnames, markdown_table, plot_curves, plot_pareto,
                                            write_results_md)
from yolobone.engine.compare.stats import ALPHA, TEST_NAME, ConfigStats, config_stats


@dataclass
class ConfigGroup:
    """One config's runs (one per seed) and their statistics."""

    name: str
    cfg: str
    runs: List[ConfigResult]
    stats: ConfigStats

    @property
    def done(self) -> List[ConfigResult]:
        return [r for r in self.runs if r.status == "done" and r.history is not None]

    @property
    def profile(self):
        return next((r.profile for r in self.runs if r.profile is not None), None)

    @property
    def status(self) -> str:
        """'done (trained)' when every seed finished, else the first unfinished run's state and 'k/n done'."""
        bad = next((r for r in self.runs if r.status != "done"), None)
        if bad is None:
            hows = sorted({r.how for r in self.runs})
            return _status_text(dataclasses.replace(self.runs[0], how=", ".join(h for h in hows if h)))
        text = _status_text(bad)
        return text if len(self.runs) == 1 else f"{len(self.done)}/{len(self.runs)} done; seed {bad.seed} {text}"

    def folder(self) -> Optional[Path]:
        dirs = [r.run_dir for r in self.runs if r.run_dir is not None]
        if not dirs:
            return None
        return dirs[0] if len(self.runs) == 1 else dirs[0].parent


def group_runs(rows: Sequence[ConfigResult], task: str) -> List[ConfigGroup]:
    """Rows per config (in order) with mean/std/n and, for all but the first, Welch's t-test against the first."""
    by_name: Dict[str, List[ConfigResult]] = {}
    for r in rows:
        by_name.setdefault(r.name, []).append(r)
    groups: List[ConfigGroup] = []
    baseline: Optional[Dict[str, List[float]]] = None
    for name, runs in by_name.items():
        done = [r for r in runs if r.status == "done" and r.history is not None]
        values = {m: [r.metric(m) for r in done] for m in metric_columns(task)}
        stats = config_stats(values, [float(r.history.best_epoch) for r in done],
                             [float(r.train_time_s) for r in done if r.train_time_s is not None],
                             baseline=baseline if groups else None)
        if not groups:
            baseline = values
        groups.append(ConfigGroup(name, runs[0].cfg, runs, stats))
    return groups


# ---------------------------------------------------------------------------------------------------- formatting
def _num(v: Optional[float]) -> str:
    """Full precision for the CSV; whole numbers (epochs) without a fraction."""
    if v is None:
        return ""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _pm(mean: Optional[float], std: Optional[float], spec: str, n: Optional[int] = None, sep: str = " ± ") -> str:
    if mean is None:
        return ""
    text = format(mean, spec) + (f"{sep}{format(std, spec)}" if std is not None else "")
    return text + (f" ({n})" if n is not None else "")


def _p_text(g: ConfigGroup, metric: str, baseline: bool) -> str:
    """'baseline', 'p=0.012', 'p=0.41 ≈' (cannot be told apart) or 'n<2' (not testable)."""
    if baseline:
        return "baseline"
    t = g.stats.tests.get(metric)
    if t is None:
        return ""
    if not t.testable:
        return "n<2"
    return f"p={t.p_value:.3g}" + ("" if t.distinguishable else " ≈")


def test_note(task: str) -> str:
    m = pareto_metric(task)
    return (f"vs baseline: {TEST_NAME} (two-sided, unequal variances) of each config's per-seed best-epoch {m} "
            f"against the first config's; ≈ marks a pair that cannot be told apart at α={ALPHA} "
            f"(p ≥ {ALPHA}), n<2 one that cannot be tested (fewer than two finished seeds).")


def environment_note(env: Mapping[str, Any]) -> str:
    """'Software: ...; training devices: ...' from protocol.yaml's environment."""
    cuda = f"CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}" if env.get("cuda") else "CPU build"
    devices = ", ".join(f"{k}: {v}" for k, v in (env.get("devices") or {}).items())
    return (f"Software: torch {env.get('torch')} ({cuda}), torchvision {env.get('torchvision')}, timm "
            f"{env.get('timm')}, python {env.get('python')}, yolobone {str(env.get('git_commit') or '?')[:10]}; "
            f"training devices (as the driver sees them): {devices}; each run's own device is in results.json.")


# ---------------------------------------------------------------------------------------------------- tables
def seeds_markdown_table(groups: Sequence[ConfigGroup], task: str, imgsz: int, base: Path) -> str:
    """mean ± std (n) per config, with the test against the baseline."""
    keys, _ = _latency_keys([r for g in groups for r in g.runs])
    metrics = list(metric_columns(task))
    head = (["config", "params", f"GFLOPs@{imgsz}"] + [f"{_device_label(k).upper()} ms" for k in keys]
            + ["train time", "best epoch", *metrics, f"vs baseline ({pareto_metric(task)})", "status", "runs"])
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(head) - 4) + ["---"] * 3) + "|"]
    for i, g in enumerate(groups):
        p, s = g.profile, g.stats
        cells = [g.name, f"{p.params:,}" if p else "", _fmt_gflops(p.gflops if p else None)]
        cells += [f"{p.latency_ms[k]:.1f}" if p and k in p.latency_ms else "" for k in keys]
        t = s.train_time_s
        cells.append(_duration(t.mean) + (f" ± {_duration(t.std)}" if t.std is not None else ""))
        cells.append(_pm(s.best_epoch.mean, s.best_epoch.std, ".1f") if s.best_epoch.n else "")
        cells += [_pm(s.metrics[m].mean, s.metrics[m].std, ".3f", s.metrics[m].n) for m in metrics]
        cells += [_p_text(g, pareto_metric(task), i == 0), g.status.replace("|", "\\|")]
        folder = g.folder()
        link = _rel(folder, base) if folder is not None and folder.exists() else ""
        cells.append(f"[{link}]({link})" if link else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_seeds_csv(path: Path, groups: Sequence[ConfigGroup], task: str) -> Path:
    """results.csv: the per-config columns of a one-seed comparison (metrics = means), then std, n and the test."""
    keys, _ = _latency_keys([r for g in groups for r in g.runs])
    metrics = list(metric_columns(task))
    extra = (["n", "seeds"] + [f"{m}_std" for m in metrics] + ["best_epoch_std", "train_time_s_std"]
             + [f"{m}_p_vs_baseline" for m in metrics] + ["test", "distinguishable_from_baseline", "devices"])
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=csv_fieldnames(task, keys) + extra)
        w.writeheader()
        for i, g in enumerate(groups):
            p, s, done = g.profile, g.stats, g.done
            bad = next((r for r in g.runs if r.status != "done"), None)
            folder = g.folder()
            rec: Dict[str, Any] = {
                "config": g.name, "cfg": g.cfg, "status": bad.status if bad else "done",
                "error": bad.error if bad else "", "params": p.params if p else "",
                "gflops": f"{p.gflops:.4f}" if p else "", "imgsz": p.imgsz if p else "",
                "train_time_s": f"{s.train_time_s.mean:.1f}" if s.train_time_s.n else "",
                "epochs": len(done[0].history.epochs) if done else "", "best_epoch": _num(s.best_epoch.mean),
                "run_dir": _rel(folder, path.parent) if folder is not None else "",
                "n": s.best_epoch.n, "seeds": " ".join(str(r.seed) for r in done),
                "best_epoch_std": _num(s.best_epoch.std),
                "train_time_s_std": f"{s.train_time_s.std:.1f}" if s.train_time_s.std is not None else "",
                "test": TEST_NAME if i else "baseline",
                "devices": "; ".join(sorted({r.device for r in done if r.device}))}
            for k in keys:
                rec[f"latency_{_device_label(k)}_ms"] = f"{p.latency_ms[k]:.3f}" if p and k in p.latency_ms else ""
                rec[f"latency_{_device_label(k)}_device"] = p.device_names.get(k, "") if p else ""
            for m in metrics:
                rec[m] = repr(s.metrics[m].mean) if s.metrics[m].n else ""
                rec[f"{m}_std"] = repr(s.metrics[m].std) if s.metrics[m].std is not None else ""
                t = s.tests.get(m)
                rec[f"{m}_p_vs_baseline"] = repr(t.p_value) if t is not None and t.testable else ""
            t = s.tests.get(pareto_metric(task))
            rec["distinguishable_from_baseline"] = "" if t is None or not t.testable else str(t.distinguishable)
            w.writerow(rec)
    return path


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(c, c) for c in str(text))


def write_seeds_tex(path: Path, groups: Sequence[ConfigGroup], task: str, imgsz: int, settings: Mapping[str, Any]
                    ) -> Path:
    """results.tex: a booktabs table (\\usepackage{booktabs}) ready for a paper."""
    metrics = list(metric_columns(task))
    keys, names = _latency_keys([r for g in groups for r in g.runs])
    heads = (["Config", "Params (M)", f"GFLOPs@{imgsz}"] + [f"{_device_label(k).upper()} ms" for k in keys]
             + [tex_escape(m) for m in metrics] + ["$p$ vs.\\ baseline"])
    lines = ["% generated by yolobone compare.py; needs \\usepackage{booktabs}", "\\begin{table}[t]", "\\centering",
             "\\begin{tabular}{l" + "r" * (len(heads) - 1) + "}", "\\toprule", " & ".join(heads) + " \\\\",
             "\\midrule"]
    for i, g in enumerate(groups):
        p, s = g.profile, g.stats
        cells = [tex_escape(g.name), f"{p.params / 1e6:.2f}" if p else "--", _fmt_gflops(p.gflops) if p else "--"]
        cells += [f"{p.latency_ms[k]:.1f}" if p and k in p.latency_ms else "--" for k in keys]
        for m in metrics:
            v = s.metrics[m]
            cells.append("--" if not v.n else f"{v.mean:.3f}" + (f" $\\pm$ {v.std:.3f}" if v.std is not None else ""))
        t = s.tests.get(pareto_metric(task))
        if i == 0:
            cells.append("baseline")
        elif t is None or not t.testable:
            cells.append("--")
        else:
            cells.append(f"{t.p_value:.3g}" + ("" if t.distinguishable else "$^{\\approx}$"))
        lines.append(" & ".join(cells) + " \\\\")
    n = sorted({g.stats.best_epoch.n for g in groups})
    caption = (f"{tex_escape(pareto_metric(task))} and {tex_escape(metrics[0])}: mean $\\pm$ std over "
               f"{'/'.join(map(str, n))} seeds (best epoch); $p$: {TEST_NAME} against the baseline on "
               f"{tex_escape(pareto_metric(task))}, $^{{\\approx}}$: not distinguishable at $\\alpha={ALPHA}$. "
               + tex_escape(", ".join(f"{k}={v}" for k, v in settings.items()))
               + "".join(f"; {_device_label(k).upper()} latency on {tex_escape(names[k])}" for k in keys) + ".")
    lines += ["\\bottomrule", "\\end{tabular}", f"\\caption{{{caption}}}", "\\label{tab:backbones}", "\\end{table}",
              ""]
    path.write_text("\n".join(lines))
    return path


def _run_record(r: ConfigResult, base: Path) -> Dict[str, Any]:
    h = r.history
    return {"seed": r.seed, "status": r.status, "how": r.how, "error": r.error, "device": r.device,
            "run_dir": _rel(r.run_dir, base) if r.run_dir else None, "train_time_s": r.train_time_s,
            "best_epoch": h.best_epoch if h else None, "int8": r.int8 or None,
            "metrics": {m: h.best(m) for m in h.metrics} if h else None,
            "curves": {"epochs": h.epochs, **h.metrics} if h else None}


def write_seeds_json(path: Path, groups: Sequence[ConfigGroup], task: str, settings: Mapping[str, Any], command: str,
                     protocol: Optional[Mapping[str, Any]]) -> Path:
    """results.json: everything (protocol, settings, per config: profile, statistics, tests, every run)."""
    doc = {"command": command, "task": task, "settings": dict(settings), "protocol": protocol,
           "test": {"name": TEST_NAME, "alpha": ALPHA, "metric": pareto_metric(task), "baseline": groups[0].name
                    if groups else None},
           "configs": [{"name": g.name, "cfg": g.cfg, "status": g.status,
                        "profile": g.profile.to_dict() if g.profile else None, **g.stats.to_dict(),
                        "runs": [_run_record(r, path.parent) for r in g.runs]} for g in groups]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=lambda v: None if isinstance(v, float) and math.isnan(v)
                              else str(v)))
    os.replace(tmp, path)
    return path


@dataclass
class Outputs:
    md: Path
    csv: Path
    tex: Path
    json: Path
    pareto: Optional[Path] = None
    curves: Optional[Path] = None


def write_outputs(save_dir: Path, rows: Sequence[ConfigResult], task: str, imgsz: int, settings: Dict[str, Any],
                  command: str, protocol: Optional[Mapping[str, Any]], plots: bool, trained: bool,
                  pareto_backend: Optional[str] = None) -> Outputs:
    """Every output file of a comparison folder from its per-run rows."""
    groups = group_runs(rows, task)
    several = any(len(g.runs) > 1 for g in groups)
    pareto = curves = None
    if plots:
        reps = [g.done[0] for g in groups if g.done]
        spread = {g.name: (g.stats.metrics[pareto_metric(task)].mean, g.stats.metrics[pareto_metric(task)].std)
                  for g in groups if g.done}
        pareto = plot_pareto(reps, task, save_dir / "pareto.png", backend=pareto_backend,
                             spread=spread if several else None)
        curves = plot_curves(reps, task, save_dir / "curves.png",
                             groups={g.name: [r.history for r in g.done] for g in groups if g.done} if several
                             else None)
    md = save_dir / "results.md"
    table, notes = None, []
    if protocol and protocol.get("environment"):
        notes.append(f"- {environment_note(protocol['environment'])}")
    if several and trained:
        table = seeds_markdown_table(groups, task, imgsz, save_dir)
        per_run = [dataclasses.replace(r, name=f"{r.name} seed {r.seed}") for r in rows]
        notes += [f"- {test_note(task)}", "- mean ± sample std (n finished seeds) over seeds; every run:", "",
                  markdown_table(per_run, task, imgsz, save_dir)]
    notes += int8_table(rows, pareto_metric(task))
    notes += [""] if notes else []
    write_results_md(md, rows if not several else [g.runs[0] for g in groups], task, imgsz, settings, command,
                     [p for p in (pareto, curves) if p is not None], trained=trained, table=table, notes=notes)
    return Outputs(md=md, csv=write_seeds_csv(save_dir / "results.csv", groups, task),
                   tex=write_seeds_tex(save_dir / "results.tex", groups, task, imgsz, settings),
                   json=write_seeds_json(save_dir / "results.json", groups, task, settings, command, protocol),
                   pareto=pareto, curves=curves)
