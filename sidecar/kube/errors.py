"""What the apiserver's error answers mean, in the `sidecar.runtime.sinks` vocabulary.

Which answers are tried again follows client-go. Its REST client (`rest/with_retry.go`,
`checkWait`) retries a 429 or any 5xx that carries Retry-After, after that many seconds, whatever
the verb: that covers API Priority and Fairness (429) and an apiserver shutting down gracefully
(503 `apiserver is shutting down`, `Retry-After: 1`; or 429 with `Retry-After: 5`). Its Event
recorder (`tools/record/event.go`, `recordEvent`) retries only what got no answer; any other
status is final. One exception of ours: a 403 soon after the apiserver was out of reach, or soon
after the start (`ApiContact`), is tried again too, because a kube-apiserver that just started
answers 403 until its RBAC caches are filled, and a sidecar may start before the RoleBinding
applied with it is seen. Past that bound a 403 is final (`forbidden`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sidecar.kube.transport import Answer
from sidecar.runtime.sinks import (
    NotFound,
    NotYetAllowed,
    Refused,
    Throttled,
    Unavailable,
    Unreachable,
)


def status_of(answer: Answer) -> dict[str, Any]:
    """The apiserver's Status object from an error answer ({} if the body is not one)."""
    try:
        document = answer.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def describe(answer: Answer) -> str:
    """`<status> <reason>: <message>`, for logs and error messages."""
    status = status_of(answer)
    message = status.get("message") or answer.body.decode("utf-8", "replace").strip()[:300]
    reason = status.get("reason") or ""
    return f"{answer.status} {reason}: {message}" if reason else f"{answer.status}: {message}"


def refusal(
    verb: str, answer: Answer, *, forbidden_transient: bool = False
) -> Refused | Unreachable:
    """What an HTTP error status means for a write (`create` or `patch`); see the module
    docstring for which are tried again.

    429 is `Throttled`, with the answer's Retry-After: API Priority and Fairness sends one, the
    `EventRateLimit` admission plugin does not (the Recorder backs off per object). A 5xx with
    Retry-After is `Unavailable`; one without it is final (`rejected`). A 403 is `NotYetAllowed`
    while `forbidden_transient` (`ApiContact.forbidden_transient`), else final (`forbidden`),
    except one for a terminating namespace, final whenever it comes.
    """
    detail = describe(answer)
    if answer.status == 429:
        return Throttled(f"{verb}: throttled by the apiserver: {detail}", answer.retry_after)
    if answer.status >= 500 and answer.retry_after is not None:
        return Unavailable(f"{verb}: {detail}", answer.retry_after)
    if answer.status == 404:
        # create: the namespace is missing; patch: the Event expired (the Recorder re-creates).
        return NotFound("event_missing" if verb == "patch" else "namespace_missing", detail)
    if answer.status == 403:
        if _namespace_terminating(status_of(answer)):
            return Refused("namespace_terminating", detail)
        if forbidden_transient:
            return NotYetAllowed(f"{verb}: {detail} (soon after the API was out of reach)")
        return Refused("forbidden", detail)
    if answer.status == 409:
        return Refused("conflict", detail)
    if answer.status in (400, 422):
        return Refused("invalid", detail)
    return Refused("rejected", f"{verb}: {detail}")


class ApiContact:
    """When the apiserver was last out of reach, so that a 403 soon after is held transient.

    `lost` is called when a request got no answer or a 5xx (an apiserver stopping, restarting,
    or without its storage); the start counts as one too. For `grace` seconds after the last
    of these, `forbidden_transient` is true. A 403 does not extend it, so a RoleBinding that is
    really missing is counted as `forbidden` at most `grace` seconds (plus one retry interval)
    after the API was last out of reach.
    """

    def __init__(self, grace: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace = grace
        self._clock = clock
        self._lost_at = clock()

    def lost(self) -> None:
        """A request got no answer, or a 5xx."""
        self._lost_at = self._clock()

    def answered(self, status: int) -> None:
        """Note an answer's status: a 5xx counts as the API being out of reach."""
        if status >= 500:
            self.lost()

    def forbidden_transient(self) -> bool:
        """Whether a 403 now is to be tried again."""
        return self._clock() - self._lost_at < self.grace


def _namespace_terminating(status: dict[str, Any]) -> bool:
    causes = (status.get("details") or {}).get("causes") or []
    if any(
        isinstance(cause, dict) and cause.get("reason") == "NamespaceTerminating"
        for cause in causes
    ):
        return True
    return "because it is being terminated" in str(status.get("message", ""))
