"""The base class of our errors, and error text helpers shared by the builders, loaders and command-line entry
points."""
from __future__ import annotations


class YoloboneError(Exception):
    """Base of every error yolobone raises for bad input: a one-line message naming the file, line, layer or value
    and what is expected. Each subclass also keeps its builtin base (ValueError, ...), so `except ValueError` works;
    the command-line entry points (yolobone/utils/cli.py run_cli) print the line and exit with code 2."""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, or its class name when the message is empty."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def error_summary(e: BaseException, limit: int = 300) -> str:
    """'ErrorClass: first line of the message' (the class alone for an empty message), at most `limit` characters."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}"[:limit] if text else type(e).__name__
