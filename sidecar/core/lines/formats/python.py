"""Python's `logging` in text, as kopf writes it by default."""

from __future__ import annotations

import re
from typing import Any, Final

from sidecar.core.lines.formats.common import text_record
from sidecar.core.lines.records import Record

#: Python `logging` with kopf's format string, `LogFormat.FULL` in kopf/_core/actions/loggers.py:
#: `[%(asctime)s] %(name)-20.20s [%(levelname)-8.8s] %(message)s`. The logger name is padded
#: or cut to exactly 20 characters and the level name to 8; asctime is `logging.Formatter`'s
#: default, `%Y-%m-%d %H:%M:%S,mmm`, in the controller's local time zone.
PYTHON_TEXT = re.compile(
    r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] (.{20}) \[(.{8})\] (.*)", re.DOTALL
)
#: kopf's `ObjectPrefixingMixin`: `[namespace/name] ` before the message of an object's logger
#: (`kopf.objects`, the only logger that has one), `[name] ` for a cluster-scoped object.
_KOPF_OBJECT = re.compile(r"\[(?:([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)/)?([^\]\s/]+)\] ")
_KOPF_OBJECTS_LOGGER: Final = "kopf.objects"


def decode_python_text(text: str) -> Record | None:
    """`[2024-01-11 14:21:03,806] kopf.objects         [INFO    ] [ns/name] message`.

    The time has no offset and is read as UTC, like every such time here. An object's prefix
    becomes the fields `namespace` (when there is one) and `name`, and is taken off the
    message, so `message:` conditions and `{message}` see what the handler logged.
    """
    match = PYTHON_TEXT.fullmatch(text)
    if match is None:
        return None
    stamp_text, name, level_name, message = match.groups()
    logger = name.rstrip(" ")
    fields: dict[str, Any] = {}
    if logger == _KOPF_OBJECTS_LOGGER and (prefix := _KOPF_OBJECT.match(message)) is not None:
        namespace, object_name = prefix.groups()
        if namespace is not None:
            fields["namespace"] = namespace
        fields["name"] = object_name
        message = message[prefix.end() :]
    return text_record(
        stamp_text, level_name.rstrip(" "), logger, message, fields=fields, format_name="kopf-text"
    )
