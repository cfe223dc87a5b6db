"""The comparison driver: compare() profiles every config, trains each (config, seed) run here or in worker
processes, and writes the tables and plots after each run (a stopped comparison has its results so far)."""
from __future__ import annotations

import argparse
import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import yaml
from tqdm import tqdm

from yolobone.engine.compare.folder import (check_settings, comparison_protocol, dataset_nc, model_cfgs,
                                            report_settings, resume_options, unique_names)
from yolobone.engine.compare.jobs import Job, device_slots, run_pool, run_ray
from yolobone.engine.compare.options import CompareOptions
from yolobone.engine.compare.outputs import write_outputs
from yolobone.engine.compare.profile import Profiler
from yolobone.engine.compare.protocol import (PROTOCOL_FILE, check_same_protocol, protocol_options, read_protocol,
                                              write_protocol)
from yolobone.engine.compare.report import ConfigResult
from yolobone.engine.compare.recipe import recipes_markdown
from yolobone.engine.compare.tune import tune_configs
from yolobone.engine.compare.training import RunTrainer, job_key, read_clock, tracker_group
from yolobone.engine.core.trackers import open_group
from yolobone.engine.train import TASKS
from yolobone.utils.errors import error_summary
from yolobone.utils.faults import fault_point
from yolobone.utils.logging import LOGGER
from yolobone.utils.paths import increment_path


@dataclass
class CompareResult:
    """What compare() returns."""

    save_dir: Path
    rows: List[ConfigResult]
    results_md: Path
    results_csv: Path
    pareto: Optional[Path] = None
    curves: Optional[Path] = None
    results_tex: Optional[Path] = None
    results_json: Optional[Path] = None


class _Comparison:
    """One compare() call: the folder, the rows, the progress bar."""

    def __init__(self, o: CompareOptions, save_dir: Path, train_callbacks: Optional[Mapping[str, Any]],
                 cfgs: Sequence[str], names: Sequence[str]):
        self.opt, self.save_dir = o, save_dir
        # one row per (config, seed) training run, configs in order, seeds inside
        self.rows = [ConfigResult(name=n, cfg=c, seed=s) for n, c in zip(names, cfgs) for s in o.run_seeds]
        self.profiler = Profiler(o, save_dir)
        self.trainer = RunTrainer(o, save_dir, train_callbacks)
        self.per_config = 1 if o.profile_only else o.epochs
        self.accounted = [0 if o.profile_only else self._epochs_done(r) for r in self.rows]
        self.bar: Optional[tqdm] = None
        self.protocol: Optional[Dict[str, Any]] = None  # protocol.yaml's content (None: profile only)

    def order(self) -> List[int]:
        """Rows in the order they run: every config with the first seed, then with the next, ... (a comparison
        stopped early has whole seeds, the tests across configs already usable)."""
        seeds = self.opt.run_seeds
        return sorted(range(len(self.rows)), key=lambda i: (seeds.index(self.rows[i].seed), i))

    def _epochs_done(self, row: ConfigResult) -> int:
        return min(int(read_clock(self.trainer.run_dir(row)).get("epochs_done", 0)), self.opt.epochs)

    def _account(self, i: int, n: int) -> None:
        self.accounted[i] = n
        if self.bar is not None and sum(self.accounted) != self.bar.n:
            self.bar.update(sum(self.accounted) - self.bar.n)

    def _epoch_done(self, i: int, epoch: int) -> None:
        self.bar.set_postfix_str(f"epoch {epoch + 1}/{self.opt.epochs}")
        self._account(i, epoch + 1)

    def _stopped(self, row: ConfigResult, status: str, error: str) -> None:
        """A run that failed or was interrupted: its state, and its folder when it has one."""
        row.status, row.error = status, error
        run_dir = self.trainer.run_dir(row)
        row.run_dir = run_dir if run_dir.exists() else None

    # ---- in worker processes ---------------------------------------------------------------------------------
    def _pending_jobs(self, nc: int) -> List[Job]:
        """Profile each config once and read finished runs back; the (config, seed) runs left, as worker jobs."""
        o, profiled, jobs = self.opt, {}, []
        for i in self.order():
            row = self.rows[i]
            try:
                if row.name not in profiled:
                    self.profiler.profile(row, nc)
                    profiled[row.name] = row.profile
                row.profile = profiled[row.name]
                run_dir = self.trainer.run_dir(row)
                if read_clock(run_dir).get("finished") and (run_dir / "weights" / "last.pt").is_file():
                    self.trainer.train(row)  # reads it back
                    self._account(i, self.per_config)
                    continue
            except Exception as e:  # a config that cannot be built fails in the table; the others go on
                profiled.setdefault(row.name, None)
                row.status, row.error = "failed", error_summary(e)
                continue
            spec = {"options": {**o.to_dict(), "resume": False, "protocol": ""}, "save_dir": str(self.save_dir),
                    "name": row.name, "cfg": row.cfg, "seed": row.seed}
            jobs.append(Job(i, job_key(row), self.trainer.run_dir(row), spec))
        return jobs

    def _job_done(self, job: Job, result: Dict[str, Any]) -> None:
        """A worker's result into its row (the tables are rewritten)."""
        row = self.rows[job.index]
        try:
            if result.get("status") == "done":
                self.trainer.finish(row, job.run_dir)
                row.how = result.get("how", "")
            else:
                row.status, row.error = result.get("status", "failed"), result.get("error", "")
                row.run_dir = job.run_dir if job.run_dir.exists() else None
                LOGGER.warning(f"compare: {job.key} {row.status}: {row.error}")
        except Exception as e:  # e.g. a results.csv that cannot be read
            row.status, row.error = "failed", error_summary(e)
        worker_devices = (result.get("worker") or {}).get("devices") or {}
        if worker_devices:  # the device as the worker saw it (another machine under Ray)
            row.device = ", ".join(worker_devices.values())
        self._account(job.index, self.per_config)
        self.write(plots=False)
        fault_point(f"compare_job:{job.key}")

    def _run_parallel(self, nc: int) -> None:
        """Profile every config here (no training runs beside the timing), read finished runs back, and hand the
        rest to worker processes: a local pool (--jobs, --device 0,1,...) or Ray tasks (--ray)."""
        o = self.opt
        jobs = self._pending_jobs(nc)
        self.write(plots=False)
        finished, shown = set(), [""]

        def on_done(job: Job, result: Dict[str, Any]) -> None:
            finished.add(job.index)
            self._job_done(job, result)

        def on_poll() -> None:
            for job in jobs:
                if job.index not in finished:
                    self._account(job.index, min(int(read_clock(job.run_dir).get("epochs_done", 0)), o.epochs))
            text = f"compare: {len(finished)}/{len(jobs)} jobs done"
            if shown[0] != text:  # a redraw per change, not per poll (logs stay short)
                shown[0] = text
                self.bar.set_description(text)

        LOGGER.info(f"compare: {len(jobs)} jobs to run, {len(self.rows) - len(jobs)} read back or failed; "
                    f"logs in <run>/job.log")
        if o.ray:
            run_ray(jobs, o.ray, o.device, o.cpus_per_job, on_done, on_poll, local_cpus=o.jobs * o.cpus_per_job)
        else:
            run_pool(jobs, device_slots(o.device, o.jobs), o.cpus_per_job, on_done, on_poll)

    # ---- here, one run after another ---------------------------------------------------------------------------
    def _run_one(self, k: int, i: int, nc: int) -> None:
        o, row, n = self.opt, self.rows[i], len(self.rows)
        self.bar.set_description(f"compare [{k + 1}/{n}] {job_key(row)}")
        LOGGER.info(f"\ncompare: run {k + 1}/{n} {row.cfg} seed {row.seed} -> {self.trainer.run_dir(row)}")
        try:
            self.profiler.profile(row, nc)
            if o.profile_only:
                row.status = "profiled"
            else:
                self.trainer.train(row, on_epoch=lambda epoch: self._epoch_done(i, epoch))
        except KeyboardInterrupt:
            self._stopped(row, "interrupted", "stopped by the user; re-run the command to resume")
            self.write(plots=True)
            raise
        except Exception as e:  # one failing config is reported in the table; the others go on
            self._stopped(row, "failed", error_summary(e))
            LOGGER.warning(f"compare: {row.name} failed: {row.error}")
        self._account(i, self.per_config)
        self.write(plots=False)
        fault_point(f"compare_job:{job_key(row)}")
        gc.collect()  # the next config starts without the previous model's tensors
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def run(self) -> CompareResult:
        o = self.opt
        nc = dataset_nc(o)
        self.bar = tqdm(total=len(self.rows) * self.per_config, initial=sum(self.accounted), position=0, leave=True,
                        unit="config" if o.profile_only else "epoch", bar_format="{l_bar}{bar:20}{r_bar}")
        try:
            if o.parallel and not o.profile_only:
                self._run_parallel(nc)
            else:
                for k, i in enumerate(self.order()):
                    self._run_one(k, i, nc)
        finally:
            self.bar.close()
        return self.write(plots=True)

    def write(self, plots: bool) -> CompareResult:
        o = self.opt
        if o.int8 and plots and not o.profile_only:  # once, at the end: every finished row's best.pt
            from yolobone.engine.compare.int8_eval import add_int8

            add_int8(self.rows, o.data or TASKS[o.task].default_data, o.imgsz, o.latency_runs)
        imgsz = next((r.profile.imgsz for r in self.rows if r.profile), o.imgsz)  # a stride multiple when rounded
        out = write_outputs(self.save_dir, self.rows, o.task, imgsz, report_settings(o), o.command(), self.protocol,
                            plots=plots and not o.profile_only, trained=not o.profile_only,
                            pareto_backend=None if o.pareto_backend == "torch" else o.pareto_backend)
        return CompareResult(save_dir=self.save_dir, rows=self.rows, results_md=out.md, results_csv=out.csv,
                             pareto=out.pareto, curves=out.curves, results_tex=out.tex, results_json=out.json)


def _prepare(opt: Union[CompareOptions, argparse.Namespace, Mapping[str, Any], None], overrides: Mapping[str, Any]
             ) -> Tuple[CompareOptions, Optional[Dict[str, Any]], str]:
    """The options to run (a protocol's settings, where and how to run from this command; a resumed folder's saved
    options), checked; and the protocol given, with its file."""
    o = CompareOptions.from_any(opt, **overrides)
    where = o.protocol
    given = read_protocol(Path(where)) if where else None
    if given is not None:
        o = CompareOptions.from_any({**o.to_dict(), **protocol_options(given, Path(where).parent)})
    if o.resume:
        o = resume_options(o)
    o.check()
    return o, given, where


def compare(opt: Union[CompareOptions, argparse.Namespace, Mapping[str, Any], None] = None,
            train_callbacks: Optional[Mapping[str, Any]] = None, **overrides: Any) -> CompareResult:
    """Profile and train every config under the same settings; write results.md/.csv, pareto.png and curves.png.

    train_callbacks are passed to each run's train() (events of engine.core.trainer.EVENTS), whatever the task.
    Input errors raise ValueError subclasses with one line.
    """
    o, given, where = _prepare(opt, overrides)
    save_dir = increment_path(Path(o.project) / o.name, exist_ok=o.exist_ok)
    check_settings(save_dir, o)
    cfgs = model_cfgs(o, save_dir)
    names = unique_names(cfgs)
    if o.tuning and not o.profile_only:
        o.recipes = tune_configs(o, cfgs, names, save_dir)
    protocol = None if o.profile_only else comparison_protocol(o, cfgs, names)
    if given is not None:
        check_same_protocol(given, protocol, where, "the files it names changed since it was written")
    if protocol is not None and (save_dir / PROTOCOL_FILE).is_file():
        check_same_protocol(read_protocol(save_dir / PROTOCOL_FILE), protocol, str(save_dir / PROTOCOL_FILE),
                            "use another --name, or --protocol with that file to rerun it")
    save_dir.mkdir(parents=True, exist_ok=True)
    (save_dir / "compare.yaml").write_text(yaml.safe_dump({"command": o.command(), "options": o.to_dict()},
                                                          sort_keys=False))
    if protocol is not None:
        write_protocol(save_dir / PROTOCOL_FILE, protocol)
        open_group(o.loggers, tracker_group(save_dir))
    LOGGER.info(f"compare: {len(cfgs)} configs x {len(o.run_seeds)} seeds, results in {save_dir}")
    comparison = _Comparison(o, save_dir, train_callbacks, cfgs, names=names)
    comparison.protocol = protocol
    result = comparison.run()
    if o.recipes:
        with open(result.results_md, "a") as f:
            f.write(recipes_markdown(o.recipes, o.tune_each, o.tune_time))
    LOGGER.info(f"compare: results in {result.results_md}")
    return result
