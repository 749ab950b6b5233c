"""The daemon's own logs: one JSON object per line on stderr.

JSON because the sidecar's logs are collected beside the controller's and should be as easy to
query. They go to stderr and never into a file the sidecar tails; the file source also refuses to
read the file stderr points to, so that the sidecar cannot read its own words back as input.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import orjson

#: Attributes every `LogRecord` has; anything else was passed through `extra=` and is kept.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...extra fields, "error"}` as one line."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object, on one line (tracebacks are escaped inside `error`)."""
        document: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["error"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send every logger's records, as JSON lines, to `stream` (stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The client library logs every request at debug; keep ours readable.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
