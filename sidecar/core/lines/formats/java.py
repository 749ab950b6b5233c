"""Java's loggers in text: log4j2's PatternLayout as Strimzi's operators configure it. (Java's
JSON, logstash-logback-encoder's, is read with the other JSON shapes, in `json`; its stack
traces are framed by `sidecar.core.lines.stacks`.)"""

from __future__ import annotations

import re

from sidecar.core.lines.formats.common import text_record
from sidecar.core.lines.records import Record

#: log4j2's PatternLayout as Strimzi's operators configure it (their log4j2.properties,
#: e.g. cluster-operator/src/main/resources/log4j2.properties):
#: `%d{yyyy-MM-dd HH:mm:ss} %-5p %c{1}:%L - %m%n`: the level padded to 5 characters, the
#: logger's last name part, the line number (empty when log4j2 has no location).
LOG4J2 = re.compile(
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:[.,]\d{3})?) ([A-Z]+) +([^\s:]*):(\d*) - (.*)",
    re.DOTALL,
)


def decode_log4j2(text: str) -> Record | None:
    """`2024-01-11 14:21:03 INFO  KafkaAssemblyOperator:123 - message`; the time is UTC."""
    match = LOG4J2.fullmatch(text)
    if match is None:
        return None
    stamp_text, level_name, logger, line, message = match.groups()
    fields = {"line": line} if line else {}
    return text_record(stamp_text, level_name, logger, message, fields=fields, format_name="log4j2")
