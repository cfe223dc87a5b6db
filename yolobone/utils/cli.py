"""Command-line entry points: an input error prints one line and exits 2, Ctrl-C prints a hint and exits 130."""
from __future__ import annotations

import argparse

import sys
from typing import Callable, Optional, Tuple, Type

from yolobone.utils.errors import YoloboneError, first_line

RESUME_HINT = "weights/last.pt holds the last finished epoch; continue with --resume"
# Besides YoloboneError (always caught): files that cannot be read, and the plain ValueErrors a few checks still raise.
INPUT_ERRORS: Tuple[Type[BaseException], ...] = (ValueError, OSError)


def run_cli(job: Callable[[], Optional[int]], errors: Tuple[Type[BaseException], ...] = INPUT_ERRORS,
            interrupted: Optional[str] = None) -> int:
    """Run `job` and return its exit code (None = 0): a YoloboneError or one of `errors` prints one line and gives 2;
    `interrupted` is the hint for Ctrl-C (None = re-raise)."""
    try:
        code = job()
    except (YoloboneError, *errors) as e:
        print(f"error: {first_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if interrupted is None:
            raise
        print(f"interrupted: {interrupted}", file=sys.stderr)
        return 130
    return 0 if code is None else int(code)


def add_run_folder_args(p: argparse.ArgumentParser, project: str) -> None:
    """--project, --name and --exist-ok: where a command writes its run folder (project/name, incremented)."""
    p.add_argument("--project", default=project, help="save to project/name")
    p.add_argument("--name", default="exp", help="save to project/name")
    p.add_argument("--exist-ok", action="store_true", help="existing project/name ok, do not increment")
