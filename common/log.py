"""Structured logging: one JSON line per event (per request, for servers),
always carrying the transaction id when there is one."""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from typing import Any

_LOGGER = logging.getLogger("ringstack")


def setup_logging(level: str = "INFO", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("ringstack")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def get_logger(name: str) -> logging.Logger:
    return _LOGGER.getChild(name)


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``event`` with ``fields`` as one JSON line."""
    if not logger.isEnabledFor(level):
        return
    record = {"ts": round(time.time(), 6), "event": event, **fields}
    logger.log(level, json.dumps(record, default=str, separators=(",", ":")))


def new_trans_id(suffix: str = "") -> str:
    """A Swift-style transaction id: ``tx<hex>-<hex time><suffix>``."""
    return f"tx{uuid.uuid4().hex[:21]}-{int(time.time()):010x}{suffix}"
