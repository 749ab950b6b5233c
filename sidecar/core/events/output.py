"""Rendering Events for people: a `kubectl get events -o wide`-like table, or JSON lines."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

import orjson

from sidecar.core.events.corev1 import Event
from sidecar.core.events.eventsv1 import ModernEvent

_COLUMNS = (
    "LAST SEEN",
    "TYPE",
    "REASON",
    "OBJECT",
    "SUBOBJECT",
    "SOURCE",
    "MESSAGE",
    "FIRST SEEN",
    "COUNT",
    "NAME",
)


def human_duration(seconds: float) -> str:
    """kubectl's `duration.HumanDuration`: 45s, 3m12s, 25m, 4h5m, 30h, 12d, 2y."""
    seconds = max(0, int(seconds))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def format_table(events: Iterable[Event], now: float) -> str:
    """Rows sorted by last timestamp, as `kubectl get events --sort-by=.lastTimestamp` shows."""
    rows = [_COLUMNS]
    for event in sorted(events, key=lambda event: (event.last_timestamp, event.name)):
        source = f"{event.component}, {event.host}" if event.host else event.component
        rows.append(
            (
                human_duration(now - event.last_timestamp),
                event.type,
                event.reason,
                f"{event.involved.kind.lower()}/{event.involved.name}",
                event.involved.field_path,
                source,
                event.message,
                human_duration(now - event.first_timestamp),
                str(event.count),
                event.name,
            )
        )
    widths = [max(display_width(row[column]) for row in rows) for column in range(len(_COLUMNS))]
    return "\n".join(
        "   ".join(
            cell + " " * (width - display_width(cell))
            for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    )


def display_width(text: str) -> int:
    """Terminal columns: East Asian wide characters (such as Chinese) take two."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def format_json_lines(events: Iterable[Event | ModernEvent]) -> str:
    """One Event object per line, in write order, as the API would return it (core/v1 or
    events.k8s.io/v1)."""
    return "".join(orjson.dumps(event.to_body()).decode() + "\n" for event in events)
