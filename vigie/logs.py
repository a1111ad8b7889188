"""Logging set-up for entry points only (libraries just call logging.getLogger)."""

from __future__ import annotations

import logging
import os
import sys


def configure(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else getattr(
        logging, os.environ.get("VIGIE_LOG_LEVEL", "INFO").upper(), logging.INFO)
    logging.basicConfig(
        level=level, stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "urllib3", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
