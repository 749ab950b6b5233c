"""Event names derived from the line, so that a line read again after a crash names the same
Event (see "What holds across a crash" in `sidecar.recording.poster`)."""

from __future__ import annotations

import hashlib
import uuid

from sidecar.core.events.corev1 import EventNamer
from sidecar.model import EventSpec


class LineNamer(EventNamer):
    """client-go's `<object>.<16 hex digits>` names, but derived from the line, not the clock.

    While `current` is set (by the poster, around one `record` call), the hex digits are a hash
    of the Event's source, object, field path, type, reason, message and the line's own time,
    so re-reading a line after a crash yields the same name (and the UUID fallback for names
    that are not valid is derived the same way). Lines without a time get wall-clock names, as
    in client-go.
    """

    def __init__(self, component: str, host: str) -> None:
        super().__init__()
        self._salt = f"{component}\0{host}"
        self.current: EventSpec | None = None

    def __call__(self, object_name: str) -> str:
        """The name for an Event about `object_name` (see the class docstring)."""
        spec = self.current
        if spec is None or spec.time is None:
            return super().__call__(object_name)
        target = spec.target
        # What makes two Events distinct for client-go's dedup (less the uid, resolved later),
        # plus the line's time: equal only for a line read again.
        key = "\0".join(
            (
                self._salt,
                target.api_version,
                target.kind,
                target.namespace,
                target.name,
                target.field_path,
                spec.type,
                spec.reason,
                spec.message,
                repr(spec.time),
            )
        )
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        # Positive and 16 hex digits, like today's nanoseconds.
        suffix = int.from_bytes(digest[:8], "big") | (1 << 60)
        return self.name_for(object_name, suffix, lambda: uuid.UUID(bytes=digest, version=4))
