"""utils.cli.run_cli: the exit-code contract every command-line entry point relies on."""
from __future__ import annotations

import pytest

from yolobone.utils.cli import run_cli
from yolobone.utils.errors import first_line


def _raise(e: BaseException):
    def job():
        raise e
    return job


def test_exit_codes_and_one_line_errors(capsys):
    assert run_cli(lambda: None) == 0
    assert run_cli(lambda: 3) == 3
    assert run_cli(_raise(ValueError("data.yaml: 'val' folder missing\nmore detail"))) == 2
    assert capsys.readouterr().err == "error: data.yaml: 'val' folder missing\n"
    assert run_cli(_raise(KeyboardInterrupt()), interrupted="continue with --resume") == 130
    assert capsys.readouterr().err == "interrupted: continue with --resume\n"
    with pytest.raises(KeyboardInterrupt):  # no hint given: Ctrl-C is not swallowed
        run_cli(_raise(KeyboardInterrupt()))
    with pytest.raises(OSError):  # errors outside the given tuple propagate
        run_cli(_raise(OSError("disk full")), errors=(ValueError,))


def test_first_line():
    assert first_line(ValueError("  a\nb ")) == "a"
    assert first_line(RuntimeError()) == "RuntimeError"
