"""Command-line entry points: an input error prints one line and exits 2, Ctrl-C prints a hint and exits 130."""
from __future__ import annotations

import argparse

import sys
from typing import Callable, Optional, Sequence, Tuple, Type

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


def task_of(argv: Sequence[str], default: str) -> str:
    """The value of --task in a command line (the last one given, as argparse would take it), else `default`: the
    scripts hand the whole line to the chosen task's own parser."""
    task = default
    for i, arg in enumerate(argv):
        if arg == "--task" and i + 1 < len(argv):
            task = argv[i + 1]
        elif arg.startswith("--task="):
            task = arg.split("=", 1)[1]
    return task


def parse_bool(value: str) -> bool:
    """An argparse type for true/false flags given a value (`--pretrained false`)."""
    words = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}
    if str(value).strip().lower() not in words:
        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
    return words[str(value).strip().lower()]
