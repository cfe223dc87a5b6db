"""Fault injection for crash tests: YOLOBONE_FAULT=<point> kills the process (SIGKILL) when it reaches that point.

Points are named `<step>:<file name>` by the checkpoint writer (yolobone/utils/checkpoint.py), which calls fault_point
after the temp file is written and before it replaces the target: exactly where a real kill leaves a `.tmp` file
and the old target behind. Steps: `save` (a checkpoint during training), `final` (best.pt after the last epoch),
`stage` (last.pt recording the end sequence's progress), `strip` (a final strip). compare.py's driver calls
`compare_job:<config>/seed<k>` after recording a finished job. Unset: no effect.
"""
from __future__ import annotations

import os
import signal

FAULT_ENV = "YOLOBONE_FAULT"


def fault_point(name: str) -> None:
    """SIGKILL this process when YOLOBONE_FAULT equals name (no cleanup, no exit handlers: a real crash)."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
