"""Suite-wide settings: one intra-op thread (tiny tensors gain nothing from more, and a loaded 2-core machine
loses a lot), headless matplotlib, no pretrained backbone weights and no downloads (the shipped backbone configs load
ImageNet weights by default: a test that wants them asks with the `pretrained_on` fixture and writes the files it
reads), the same torch seed before every test, the random order's seed in the summary; fixtures that capture the
project logger's messages."""
import contextlib
import logging
import os
from typing import Iterator, List

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["YOLOBONE_PRETRAINED"] = "false"  # as train.py --pretrained false, in subprocesses too
os.environ["YOLOBONE_OFFLINE"] = "1"  # yolobone/utils/download.py refuses every download

import pytest  # noqa: E402
import torch  # noqa: E402

from yolobone.utils.logging import LOGGER  # noqa: E402

torch.set_num_threads(1)


@contextlib.contextmanager
def _captured_log() -> Iterator[List[str]]:
    lines: List[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    LOGGER.addHandler(handler)
    try:
        yield lines
    finally:
        LOGGER.removeHandler(handler)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    """Every test (and the module fixtures it sets up first) starts from the same torch random state, whatever ran
    before it in this worker: the order cannot change a test's random tensors (pytest-randomly reseeds random and
    numpy the same way)."""
    torch.manual_seed(0)


def pytest_terminal_summary(terminalreporter, config) -> None:
    """The random order's seed at the end, also under -q (pytest-randomly prints it only in the header)."""
    seed = getattr(config.option, "randomly_seed", None)
    if config.pluginmanager.hasplugin("randomly") and isinstance(seed, int):
        terminalreporter.write_line(f"random test order: replay with -p randomly --randomly-seed={seed}")


@pytest.fixture(scope="session")
def capture_log():
    """`with capture_log() as lines:` collects the project logger's messages (usable in module-scoped fixtures)."""
    return _captured_log


@pytest.fixture
def log_lines():
    """Messages logged by the project logger during the test."""
    with _captured_log() as lines:
        yield lines


@pytest.fixture
def pretrained_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backbone blocks read pretrained weights in this test (still offline: YOLOBONE_OFFLINE stays set)."""
    monkeypatch.delenv("YOLOBONE_PRETRAINED", raising=False)
