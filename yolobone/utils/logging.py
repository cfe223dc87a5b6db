"""Project logger: one named logger, plain messages on stderr."""
from __future__ import annotations

import logging
import sys

LOGGER_NAME = "yolobone"


def get_logger(verbose: bool = True) -> logging.Logger:
    """The project logger, configured once (INFO when verbose, WARNING otherwise)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    return logger


LOGGER = get_logger()
