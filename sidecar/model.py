"""The plain data the layers hand each other, and the fixed vocabularies of their outcomes.

Nothing here does anything: dataclasses and `Literal` types, importing nothing from the
package. A type lives here when more than one layer needs it (the core makes an `EventSpec`, the
engines record it, the Kubernetes edge resolves its `ObjectTarget`); keeping them out of the
module that first made them is what lets the layering (cli > engines > core > model, checked by
`lint-imports`) hold.

The four "object" types, from the rules file to the Event body:

- `ObjectSpec` (`sidecar.core.rules.schema`): what the rules file says about the involved object,
  validated but not compiled (templates as text).
- `ObjectTarget` (here): the involved object one rule names for one line, compiled and rendered
  (kind, name, namespace, optional group/version), before anything is looked up.
- `ObjectRef` (`sidecar.core.lines.records`): a `{kind, name, namespace}` reference found in the
  line itself (klog's `pod="ns/name"`, a nested object), which an `ObjectTarget` may be made from.
- `InvolvedObject` (`sidecar.core.events.corev1`): the Event body's `involvedObject`, the
  `ObjectTarget` after the sink's look-up (uid, resourceVersion, preferred apiVersion when known).
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
    "rate_limited",
    "shutdown",
]
DROP_CAUSES: Final[tuple[DropCause, ...]] = get_args(DropCause)

#: What a rules reload did: new rules run; the file was invalid or unreadable (the old rules keep
#: running); or a reload was asked for and the file had not changed.
ReloadResult = Literal["success", "failure", "unchanged"]
RELOAD_RESULTS: Final[tuple[ReloadResult, ...]] = get_args(ReloadResult)

#: Why the API refused a write (`sidecar.runtime.sinks.Refused.cause`). `event_missing` is a PATCH's
#: 404: the Event expired or was deleted, and the Recorder re-creates it, so it is never a drop
#: cause.
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

#: A create the API refused with 409 under a name derived from the line: the Event was written
#: before (a line read again after a restart, or a create stored although its answer was lost).
#: Counted apart from drops, which always mean loss.
AlreadyWritten = Literal["already_written"]

#: What the Recorder did with one `EventSpec`: written, written before, or dropped and why; or,
#: for events.k8s.io/v1, `series`: counted in a series in memory, written by the heartbeat.
RecordOutcome = Written | AlreadyWritten | DropCause | Literal["series"]

#: Why a write waited before it was tried again (`events_delayed{cause}`): `retry_after` is a 429
#: with a Retry-After header (API Priority and Fairness), `rate_limited` one without it (the
#: `EventRateLimit` admission plugin); `unreachable` no answer (connection refused or lost, a
#: timeout); `unavailable` a 5xx with Retry-After (an apiserver shutting down);
#: `forbidden_transient` a 403 soon after the API was out of reach or the sidecar started (an
#: apiserver's RBAC caches still filling).
DelayCause = Literal[
    "retry_after", "rate_limited", "unreachable", "unavailable", "forbidden_transient"
]
DELAY_CAUSES: Final[tuple[DelayCause, ...]] = get_args(DelayCause)

#: `object_lookups{result}`: `hit` is any answer from the cache (found, forbidden or not found);
#: `error` is a look-up that could not be made (the API unreachable or answering 5xx).
LookupResult = Literal["hit", "found", "forbidden", "not_found", "unknown_kind", "error"]
LOOKUP_RESULTS: Final[tuple[LookupResult, ...]] = get_args(LookupResult)

#: Which API Events are written to: `v1` is the core group's (client-go's `tools/record`),
#: `events.k8s.io/v1` the new one (`tools/events`, with series).
EventsApi = Literal["events.k8s.io/v1", "v1"]
EVENTS_APIS: Final[tuple[EventsApi, ...]] = get_args(EventsApi)
#: What `--events-api` accepts: an API, or `auto`: events.k8s.io/v1 when the apiserver serves it
#: and RBAC allows it, else core/v1.
EventsApiChoice = Literal["auto"] | EventsApi
EVENTS_API_CHOICES: Final[tuple[EventsApiChoice, ...]] = ("auto", *EVENTS_APIS)

#: Why a line did not decode (`lines_undecodable{reason}`).
UndecodableReason = Literal["empty", "continuation", "invalid_json", "unrecognised"]


# Not frozen: built per line (or per Event), where a frozen dataclass costs several times more
# (its __init__ goes through object.__setattr__). Immutable by convention: nothing assigns to it,
# which is what makes `unsafe_hash` safe (it is a key in maps, as the frozen one was).
@dataclass(slots=True, unsafe_hash=True)
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
    #: The object's uid when the line gave it: the sink then needs no look-up of the object.
    uid: str = ""


# Not frozen: built per line (or per Event), where a frozen dataclass costs several times more
# (its __init__ goes through object.__setattr__). Immutable by convention: nothing assigns to it,
# which is what makes `unsafe_hash` safe (it is a key in maps, as the frozen one was).
@dataclass(slots=True, unsafe_hash=True)
class EventSpec:
    """What a rule says should be reported about one line, before the object's uid is known."""

    rule: str
    target: ObjectTarget
    type: str
    reason: str
    message: str
    #: The line's own time (seconds since the epoch), when it had one.
    time: float | None
    #: events.k8s.io/v1's `action` (the rule's `action:`, else the reason).
    action: str = ""
    #: events.k8s.io/v1's optional `related` object (the rule's `related:`).
    related: ObjectTarget | None = None


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """How the Recorder retries a write the API did not answer."""

    #: client-go's `maxTriesPerEvent`.
    max_tries: int = 12
    #: client-go's `sleepDuration`; the first wait is a random part of it so that many clients
    #: do not retry in step after an apiserver outage.
    interval_seconds: float = 10.0
    #: The longest Retry-After honoured (API Priority and Fairness asks for a few seconds).
    retry_after_max_seconds: float = 30.0
    #: The first back-off of an object whose Event the `EventRateLimit` plugin refused (429
    #: without Retry-After); it doubles per refusal in a row, up to `backoff_max_seconds`, and
    #: each wait is a random 50-100 % of it so that objects do not retry in step.
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 30.0


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


@dataclass(frozen=True, slots=True)
class PodLogPosition:
    """How far one container's log, read through the pod log API, is turned into recorded Events.

    The kubelet's timestamp (nanoseconds) and the content identify a line; `sinceTime` takes
    whole seconds, so a resumed stream starts at the second a little before `stamp`
    (`sidecar.core.lines.stamps.SLACK`) and shows the lines in `seen` again first: those are skipped
    as already processed, and everything after them is read.
    """

    container: str
    #: The instance the position is in (`containerStatuses[].containerID`); "" when unknown.
    container_id: str = ""
    #: That instance's `restartCount`: a jump of more than one is a whole instance never read.
    restart_count: int = 0
    #: Nanoseconds since the epoch of the latest stamp processed; 0 before any.
    stamp: int = 0
    #: `<stamp>:<digest>` of the processed lines a resumed stream shows again, in the log's order
    #: (an earlier version kept the bare digests of the lines stamped exactly `stamp`).
    seen: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ContainerInstance:
    """Which instance of a container runs now, from the pod's `containerStatuses`."""

    container_id: str
    restart_count: int


class PodLogError(Exception):
    """The pod log API answered, but not with a stream (`status` 0: it did not answer at all)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
