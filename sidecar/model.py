"""The plain data the layers hand each other, and the fixed vocabularies of their outcomes.

Nothing here does anything: frozen dataclasses and `Literal` types, importing nothing from the
package. A type lives here when more than one layer needs it (the core makes an `EventSpec`, the
engines record it, the Kubernetes edge resolves its `ObjectTarget`); keeping them out of the
module that first made them is what lets the layering (cli > engines > core > model, checked by
`lint-imports`) hold.

The four "object" types, from the rules file to the Event body:

- `ObjectSpec` (`sidecar.rules.schema`): what the rules file says about the involved object,
  validated but not compiled (templates as text).
- `ObjectTarget` (here): the involved object one rule names for one line, compiled and rendered
  (kind, name, namespace, optional group/version), before anything is looked up.
- `ObjectRef` (`sidecar.records`): a `{kind, name, namespace}` reference found in the line itself
  (klog's `pod="ns/name"`, a nested object), which an `ObjectTarget` may be made from.
- `InvolvedObject` (`sidecar.events`): the Event body's `involvedObject`, the `ObjectTarget` after
  the sink's look-up (uid, resourceVersion, preferred apiVersion when known).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

#: Why an Event was not written. Every one is counted; client-go drops most of these silently.
DropCause = Literal[
    "spam_filter",
    "queue_full",
    "forbidden",
    "namespace_terminating",
    "namespace_missing",
    "conflict",
    "invalid",
    "rejected",
    "retries_exhausted",
    "shutdown",
]
DROP_CAUSES: Final[tuple[DropCause, ...]] = get_args(DropCause)

#: What a rules reload did: new rules run; the file was invalid or unreadable (the old rules keep
#: running); or a reload was asked for and the file had not changed.
ReloadResult = Literal["success", "failure", "unchanged"]
RELOAD_RESULTS: Final[tuple[ReloadResult, ...]] = get_args(ReloadResult)

#: Why the API refused a write (`sidecar.sinks.Refused.cause`). `event_missing` is a PATCH's 404:
#: the Event expired or was deleted, and the Recorder re-creates it, so it is never a drop cause.
RefusalCause = Literal[
    "forbidden",
    "namespace_terminating",
    "namespace_missing",
    "event_missing",
    "conflict",
    "invalid",
    "rejected",
]

#: How an Event was written.
Written = Literal["create", "patch"]
WRITTEN: Final[tuple[Written, ...]] = get_args(Written)

#: What the Recorder did with one `EventSpec`: written, or dropped and why.
RecordOutcome = Written | DropCause

#: `object_lookups{result}`: `hit` is any answer from the cache (found, forbidden or not found);
#: `error` is a look-up that could not be made (the API unreachable or answering 5xx).
LookupResult = Literal["hit", "found", "forbidden", "not_found", "unknown_kind", "error"]
LOOKUP_RESULTS: Final[tuple[LookupResult, ...]] = get_args(LookupResult)

#: Why a line did not decode (`lines_undecodable{reason}`).
UndecodableReason = Literal["empty", "continuation", "invalid_json", "unrecognised"]


@dataclass(frozen=True, slots=True)
class ObjectTarget:
    """The involved object a rule names for one line, before the sink looks up its uid."""

    kind: str
    name: str
    namespace: str
    #: Empty when the rules did not give it; the Kubernetes sink asks discovery for the
    #: preferred version of `api_group` (or of any group serving `kind` when that is None too).
    api_version: str = ""
    api_group: str | None = None
    field_path: str = ""


@dataclass(frozen=True, slots=True)
class EventSpec:
    """What a rule says should be reported about one line, before the object's uid is known."""

    rule: str
    target: ObjectTarget
    type: str
    reason: str
    message: str
    #: The line's own time (seconds since the epoch), when it had one.
    time: float | None


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """How the Recorder retries a write the API did not answer."""

    #: client-go's `maxTriesPerEvent`.
    max_tries: int = 12
    #: client-go's `sleepDuration`; the first wait is a random part of it so that many clients
    #: do not retry in step after an apiserver outage.
    interval_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class FilePosition:
    """A file and how far its complete lines have been turned into recorded Events."""

    #: The path it was last seen under (informational: identity is device, inode, fingerprint).
    path: str
    device: int
    inode: int
    #: Hex digest of the file's first `fingerprint_size` bytes.
    fingerprint: str
    fingerprint_size: int
    #: Byte offset just past the last line whose Events are recorded.
    offset: int
