"""An involved object's live uid, resourceVersion and preferred apiVersion: discovery for its
resource, then one GET of its metadata (which needs `get` on that resource), cached briefly."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Final, cast
from urllib.parse import quote

from sidecar.core.events.corev1 import InvolvedObject
from sidecar.core.lru import LRU
from sidecar.kube.discovery import Discovery, LookupFailed, NotDiscovered, Resource, root_of
from sidecar.kube.errors import ApiContact, describe
from sidecar.kube.settings import KubeSettings
from sidecar.kube.transport import Answer, Transport, get
from sidecar.model import LOOKUP_RESULTS, LookupResult, ObjectTarget
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import Unreachable, unresolved

log = logging.getLogger(__name__)

#: Ask for the object's metadata only (any resource, built-in or custom); plain JSON as fallback.
METADATA_ONLY: Final = (
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
)
#: Answers worth caching for `lookup_ttl`; `error` (no answer, or 5xx) is asked again next time.
_CACHED: Final[frozenset[LookupResult]] = frozenset({"found", "forbidden", "not_found"})


@dataclass(frozen=True, slots=True)
class Fetch:
    """The request a look-up makes once its kind is known: GET `path`, the object's metadata
    (`METADATA_ONLY`), to fill in `reference`."""

    path: str
    reference: InvolvedObject


#: A look-up as steps (`ObjectLookup.steps`): yields its `Fetch`, is sent the `Answer` (or thrown
#: `Unreachable`), returns the object.
LookupSteps = Generator[Fetch, Answer, InvolvedObject]


def begin(steps: LookupSteps) -> Fetch | InvolvedObject:
    """The look-up's request, or its answer when it needs none."""
    try:
        return next(steps)
    except StopIteration as stop:
        return cast(InvolvedObject, stop.value)


def conclude(steps: LookupSteps, answer: Answer | Unreachable) -> InvolvedObject:
    """Hand a look-up the answer to its `Fetch` (or the failure to get one); its object."""
    try:
        if isinstance(answer, Unreachable):
            steps.throw(answer)
        else:
            steps.send(answer)
    except StopIteration as stop:
        return cast(InvolvedObject, stop.value)
    raise RuntimeError("a look-up makes one request")


class ObjectLookup:
    """Resolves `ObjectTarget`s, counting each in `object_lookups{result}`. Thread-safe."""

    def __init__(
        self,
        transport: Transport,
        metrics: Metrics,
        settings: KubeSettings,
        clock: Callable[[], float] = time.monotonic,
        contact: ApiContact | None = None,
    ) -> None:
        self._transport = transport
        #: When the API was last out of reach (shared with the writes): a 403 soon after is an
        #: apiserver whose RBAC caches are still filling, so it is not cached as the answer.
        self._contact = contact
        self._metrics = metrics
        self.discovery = Discovery(transport, settings, clock)
        self._lock = threading.Lock()
        self._clock = clock
        self._ttl = settings.lookup_ttl
        #: Each answer with when it expires. Not cachetools' TTLCache: every Event asks this
        #: cache (`known`), and its bookkeeping per access cost more than the rest of a hit.
        self._cache: LRU[tuple[str, ...], tuple[float, InvolvedObject]] = LRU(settings.cache_size)
        for result in LOOKUP_RESULTS:
            metrics.object_lookups.labels(result)
        self._hits = metrics.object_lookups.labels("hit")

    def resolve(self, target: ObjectTarget) -> InvolvedObject:
        """The involved object with the live uid, resourceVersion and preferred apiVersion.

        Never raises: when the object is forbidden, missing, of an unknown kind or the API
        cannot be asked, the reference comes back without uid (with the best apiVersion known),
        and `object_lookups{result}` says why.
        """
        cached = self.known(target)
        if cached is not None:
            return cached
        steps = self.steps(target)
        fetch = begin(steps)
        if not isinstance(fetch, Fetch):
            return fetch
        try:
            answer = get(self._transport, "get", fetch.path, METADATA_ONLY)
        except Unreachable as error:
            return conclude(steps, error)
        return conclude(steps, answer)

    def steps(self, target: ObjectTarget, *, discover: bool = True) -> LookupSteps:
        """`resolve` after the cache, as steps: the object's GET is yielded (a `Fetch`) for the
        caller to make, and its `Answer` sent back (or `Unreachable` thrown in), so the event
        loop makes it on its own connections (`KubeSender.resolve`). With `discover` False,
        discovery answers from its cache alone (no request on the event loop).

        Raises:
            NotDiscovered: (`discover` False) before any step, when discovery must ask.
        """
        cached_only = nullcontext if discover else self.discovery.cached_only
        try:
            with cached_only():
                located = self._locate(target, discover=discover)
            if isinstance(located, Fetch):
                answer = yield located
                with cached_only():
                    found, result = self._interpret(located, answer)
            else:
                found, result = located
        except NotDiscovered:
            raise
        except (Unreachable, LookupFailed) as error:
            log.debug(
                "cannot look up %s %s/%s: %s", target.kind, target.namespace, target.name, error
            )
            self._count("error")
            stale = self._stale(target)
            if stale is not None:
                return stale
            with cached_only():
                version = self.discovery.best_version(target)
            return replace(unresolved(target), api_version=version)
        except Exception as error:  # never raise: an Event without uid beats no Event
            log.debug("look-up of %s %s failed", target.kind, target.name, exc_info=error)
            self._count("error")
            return unresolved(target)
        self._count(result)
        transient = result == "forbidden" and self._contact and self._contact.forbidden_transient()
        if result in _CACHED and not transient:
            expires = self._clock() + self._ttl
            with self._lock:
                self._cache.put(_cache_key(target), (expires, replace(found, field_path="")))
        return found

    def known(self, target: ObjectTarget) -> InvolvedObject | None:
        """`resolve`'s answer from the cache (counted as a hit), or None when it would ask."""
        if target.uid:
            # The line gave the uid: `steps` takes it (the cache may hold an older object's).
            return None
        key = _cache_key(target)
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            expires, cached = entry
            if expires <= self._clock():
                return None  # asked again; kept, for `_stale`, until the cache evicts it
        self._hits.inc()
        # Cached without a field path; most references have none, and the answer is frozen.
        return replace(cached, field_path=target.field_path) if target.field_path else cached

    def _stale(self, target: ObjectTarget) -> InvolvedObject | None:
        """The last answer about `target`, past its TTL, for when the API cannot be asked.

        An object known a little while ago is a better answer than none during an outage: its
        uid is part of the correlator's key, so without it the repeats of an Event made during
        (and after) the outage would start a second Event beside the first (client-go's
        EventRecorder has the object itself, so its repeats never split). A uid from the line
        is the line's to give.
        """
        if target.uid:
            return None
        with self._lock:
            entry = self._cache.get(_cache_key(target))
        if entry is None:
            return None
        cached = entry[1]
        return replace(cached, field_path=target.field_path) if target.field_path else cached

    def _locate(
        self, target: ObjectTarget, *, discover: bool
    ) -> Fetch | tuple[InvolvedObject, LookupResult]:
        """The GET that finds the object, or the answer when none is needed."""
        discovery = self.discovery
        resource = discovery.find_resource(target) if discover else discovery.find_cached(target)
        if resource is None:
            return replace(
                unresolved(target), api_version=discovery.best_version(target)
            ), "unknown_kind"
        reference = InvolvedObject(
            kind=resource.kind,
            name=target.name,
            namespace=target.namespace if resource.namespaced else "",
            api_version=target.api_version or resource.api_version,
            field_path=target.field_path,
        )
        if resource.namespaced and not target.namespace:
            # A namespaced kind named without a namespace cannot be fetched.
            return reference, "not_found"
        if target.uid:
            # The line gave the uid: nothing to ask (discovery gave the version and the scope).
            return replace(reference, uid=target.uid), "hit"
        return Fetch(object_path(resource, reference), reference)

    @staticmethod
    def _interpret(fetch: Fetch, answer: Answer) -> tuple[InvolvedObject, LookupResult]:
        """What the object's GET answered."""
        reference = fetch.reference
        if answer.status == 200:
            metadata = answer.json().get("metadata") or {}
            live = replace(
                reference,
                uid=str(metadata.get("uid") or ""),
                resource_version=str(metadata.get("resourceVersion") or ""),
            )
            return live, "found"
        if answer.status == 403:
            return reference, "forbidden"
        if answer.status == 404:
            return reference, "not_found"
        raise LookupFailed(f"GET {fetch.path}: {describe(answer)}")

    def _count(self, result: LookupResult) -> None:
        self._metrics.object_lookups.labels(result).inc()


def _cache_key(target: ObjectTarget) -> tuple[str, ...]:
    # `None` (any group) and "" (the core group) must not share an entry.
    group = "*" if target.api_group is None else target.api_group
    return (target.kind, target.name, target.namespace, target.api_version, group)


def object_path(resource: Resource, reference: InvolvedObject) -> str:
    """The object's path under its group/version (namespaced or cluster-scoped)."""
    root = root_of(resource.api_version)
    name = quote(reference.name, safe="")
    if resource.namespaced:
        return f"{root}/namespaces/{quote(reference.namespace, safe='')}/{resource.plural}/{name}"
    return f"{root}/{resource.plural}/{name}"
