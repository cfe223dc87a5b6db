"""Run a comparison's (config, seed) training jobs in parallel: a local pool of worker processes (--jobs N on CPU,
--device 0,1,2,3 one job per GPU) or Ray tasks (--ray auto|ADDRESS|local), one code path for both.

Every job runs `run_job(<run_dir>/job_spec.json)` (yolobone/engine/compare/worker.py): it trains (or resumes, or
reads back) through training.train_job, logs to <run_dir>/job.log and writes <run_dir>/job_result.json. The local
pool runs it in a fresh process per job (`python -m yolobone.engine.compare.worker SPEC`, started in the repository
root); Ray runs it inside a Ray worker, placed by the task's resource request (CPUs, GPUs) on some machine of the
cluster. Results land in the comparison folder, which must be shared between the machines (and the code importable
on each). The driver follows progress by reading each run's epoch clock from that folder.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from yolobone.engine.compare.training import JOB_LOG, JOB_RESULT, JOB_SPEC

ROOT = Path(__file__).resolve().parents[3]  # the repository root (holds yolobone/)
POLL_S = 0.5


@dataclass
class Job:
    """One (config, seed) training job."""

    index: int  # the comparison's row
    key: str  # 'config/seed0', unique in the comparison
    run_dir: Path
    spec: Dict[str, Any]  # train_job's keyword arguments, less the device


def device_slots(device: str, jobs: int) -> List[str]:
    """Devices of the concurrent jobs: '0,1,2,3' -> one job per GPU (x jobs // 4 when --jobs asks for more),
    anything else -> `jobs` slots of that device."""
    parts = [d.strip() for d in str(device).split(",") if d.strip()]
    if len(parts) > 1:
        return [parts[i % len(parts)] for i in range(max(jobs, len(parts)))]
    return [str(device)] * max(jobs, 1)


def _write_spec(job: Job, device: str) -> Path:
    job.run_dir.mkdir(parents=True, exist_ok=True)
    path = job.run_dir / JOB_SPEC
    path.write_text(json.dumps({**job.spec, "device": device}, indent=1))
    (job.run_dir / JOB_RESULT).unlink(missing_ok=True)
    return path


def _parent_death_signal() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the worker gets SIGTERM when the driver dies, so a killed driver leaves no orphan training."""
    try:
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_worker(spec_path: Path, threads: int, env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    """The worker process of one job, output to job.log beside its spec."""
    e = {**os.environ, **(env or {}), "OMP_NUM_THREADS": str(threads)}
    e["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), e.get("PYTHONPATH", "")) if p)
    log = open(spec_path.parent / JOB_LOG, "ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "yolobone.engine.compare.worker", str(spec_path)], cwd=str(ROOT),
                                env=e, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=_parent_death_signal if sys.platform.startswith("linux") else None)
    finally:
        log.close()


def read_result(run_dir: Path, returncode: Optional[int]) -> Dict[str, Any]:
    """The worker's job_result.json, or a failure naming its exit code and log."""
    try:
        return json.loads((run_dir / JOB_RESULT).read_text())
    except (OSError, ValueError):
        return {"status": "failed", "error": f"worker exited with code {returncode} before writing its result; "
                                             f"see {run_dir / JOB_LOG}"}


def run_pool(jobs: Sequence[Job], slots: Sequence[str], threads: int, on_done: Callable[[Job, Dict[str, Any]], None],
             on_poll: Callable[[], None]) -> None:
    """Run jobs on the local slots, at most one job per slot at a time."""
    pending, running = list(jobs), {}  # slot index -> (job, process)
    try:
        while pending or running:
            for s, device in enumerate(slots):
                if s not in running and pending:
                    job = pending.pop(0)
                    running[s] = (job, start_worker(_write_spec(job, device), threads))
            time.sleep(POLL_S)
            for s in [s for s, (_, p) in running.items() if p.poll() is not None]:
                job, p = running.pop(s)
                on_done(job, read_result(job.run_dir, p.returncode))
            on_poll()
    finally:
        for _, p in running.values():  # the driver stops (Ctrl-C, an error): stop its workers too
            p.terminate()
        for _, p in running.values():
            p.wait()


# ---------------------------------------------------------------------------------------------------- Ray
def _ray_task(spec_path: str, threads: int) -> Dict[str, Any]:
    """Inside a Ray worker process (GPUs as Ray assigned them): the worker's job function, its output (file
    descriptors 1 and 2, so the logger's and tqdm's too) appended to the job's log. Ray runs one task at a time
    in a worker and keeps the worker (and its imports) for the next task."""
    import torch

    from yolobone.engine.compare.worker import run_job  # here, not at the top: `-m ...worker` must find it unloaded
    spec = Path(spec_path)
    torch.set_num_threads(threads)
    sys.stdout.flush(), sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(spec.parent / JOB_LOG, "ab") as log:
        os.dup2(log.fileno(), 1), os.dup2(log.fileno(), 2)
        try:
            code = run_job(spec)
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return read_result(spec.parent, code)


def ray_connect(address: str, num_cpus: Optional[int] = None) -> None:
    """Join a Ray cluster ('auto', 'ray://host:port', 'host:port') or start one on this machine ('local')."""
    import ray
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_ACCEPT_CLUSTER_DEPRECATION", "1")
    kwargs: Dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address == "local":
        ray.init(num_cpus=num_cpus, **kwargs)
    else:
        ray.init(address=address, **kwargs)


def run_ray(jobs: Sequence[Job], address: str, device: str, cpus: int, on_done: Callable[[Job, Dict[str, Any]], None],
            on_poll: Callable[[], None], local_cpus: Optional[int] = None) -> None:
    """Submit every job as a Ray task asking for `cpus` CPUs and one GPU, unless the device is the CPU (or, with no
    --device, the cluster has no GPU)."""
    import ray
    ray_connect(address, local_cpus)
    spec = str(device).strip().lower()
    gpus = 0 if spec == "cpu" or (not spec and not ray.cluster_resources().get("GPU")) else 1
    task = ray.remote(_ray_task).options(num_cpus=cpus, num_gpus=gpus, max_retries=0)
    # Ray sets CUDA_VISIBLE_DEVICES for a GPU task, so its worker's device is the first visible one
    refs = {task.remote(str(_write_spec(job, "0" if gpus else "cpu")), cpus): job for job in jobs}
    try:
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=POLL_S)
            for ref in ready:
                job = refs.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as e:  # a lost node or worker: that job fails, the others go on
                    last = str(e).strip().splitlines()[-1] if str(e).strip() else ""
                    result = {"status": "failed", "error": f"Ray task failed: {type(e).__name__}: {last}"[:300]}
                on_done(job, result)
            on_poll()
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)
