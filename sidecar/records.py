"""The normalised log record every decoder produces, whatever the line's format.

Records are the boundary between decoding and rules: rules never see raw bytes or know which
format a line was in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Canonical level names. Decoders map every spelling onto one of these so that a rule written
#: `level: warning` matches klog's `W`, logrus' `warning` and slog's `WARN` alike.
LEVELS = ("debug", "info", "warning", "error", "fatal")


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """A Kubernetes object named in a log line: `Kind: {name, namespace}`, `ns/name`, ..."""

    name: str
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded log line.

    `fields` holds every key the line carried except the ones lifted into the attributes
    (time, level, message, logger), with their original JSON types.
    """

    message: str
    level: str = "info"
    #: V-level for info lines (zap `Level(-2)` -> 2, klog JSON `"v": 4` -> 4); 0 otherwise.
    verbosity: int = 0
    #: Seconds since the epoch, or None when the line had no readable time.
    time: float | None = None
    logger: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    #: Object references found in the line, keyed by the field that held them. The key `""` is
    #: the pair of top-level `namespace` and `name` fields controller-runtime adds.
    refs: dict[str, ObjectRef] = field(default_factory=dict)
    #: Which decoder produced the record (`json`, `zap-console`, `klog`, `logfmt`).
    format: str = ""
