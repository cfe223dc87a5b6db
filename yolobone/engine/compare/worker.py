"""The worker side of a parallel comparison: run one job from its spec file and write its result beside it.

    python -m yolobone.engine.compare.worker runs/compare/exp/runs/<config>/seed0/job_spec.json

The local pool starts this module in a fresh process per job; a Ray task calls run_job in a Ray worker
(yolobone/engine/compare/jobs.py). Nothing in the package imports it at import time, so `-m` runs a fresh module.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from yolobone.engine.compare.protocol import environment
from yolobone.engine.compare.training import JOB_RESULT, train_job
from yolobone.utils.errors import error_summary
from yolobone.utils.torch_utils import select_device


def run_job(spec_path: Path) -> int:
    """Train (or resume, or read back) the job a spec describes; write job_result.json. 0: done."""
    spec = json.loads(spec_path.read_text())
    run_dir = spec_path.parent
    t0 = time.time()
    try:
        result = {"status": "done", **train_job(**spec)}
    except KeyboardInterrupt:
        result = {"status": "interrupted", "error": "stopped; re-run the command to resume"}
    except Exception as e:  # reported in the table by the driver
        result = {"status": "failed", "error": error_summary(e)}
    result["worker"] = {"host": os.uname().nodename if hasattr(os, "uname") else "", "pid": os.getpid(),
                        "seconds": time.time() - t0, **environment([str(select_device(spec.get("device", "")))])}
    tmp = run_dir / (JOB_RESULT + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, run_dir / JOB_RESULT)
    return 0 if result["status"] == "done" else 1


if __name__ == "__main__":
    sys.exit(run_job(Path(sys.argv[1])))
