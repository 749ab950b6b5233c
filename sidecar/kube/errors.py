"""What the apiserver's error answers mean, in the `sidecar.sinks` vocabulary."""

from __future__ import annotations

from typing import Any

from sidecar.kube.transport import Answer
from sidecar.sinks import NotFound, Refused, Throttled, Unreachable


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


def refusal(verb: str, answer: Answer) -> Refused | Unreachable:
    """What an HTTP error status means for a write (`create` or `patch`): final (`Refused`),
    except 429.

    429 is `Throttled`, with the answer's Retry-After: API Priority and Fairness sends one
    (client-go's REST client sleeps that long and retries), the `EventRateLimit` admission
    plugin does not (the Recorder backs off per object).
    """
    detail = describe(answer)
    if answer.status == 429:
        return Throttled(f"{verb}: throttled by the apiserver: {detail}", answer.retry_after)
    if answer.status == 404:
        # create: the namespace is missing; patch: the Event expired (the Recorder re-creates).
        return NotFound("event_missing" if verb == "patch" else "namespace_missing", detail)
    if answer.status == 403:
        if _namespace_terminating(status_of(answer)):
            return Refused("namespace_terminating", detail)
        return Refused("forbidden", detail)
    if answer.status == 409:
        return Refused("conflict", detail)
    if answer.status in (400, 422):
        return Refused("invalid", detail)
    return Refused("rejected", f"{verb}: {detail}")


def _namespace_terminating(status: dict[str, Any]) -> bool:
    causes = (status.get("details") or {}).get("causes") or []
    if any(
        isinstance(cause, dict) and cause.get("reason") == "NamespaceTerminating"
        for cause in causes
    ):
        return True
    return "because it is being terminated" in str(status.get("message", ""))
