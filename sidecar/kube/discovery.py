"""Which group/version serves a kind, and whether it is namespaced: API discovery, cached.

Hand-written over a few GETs (`/api`, `/apis`, `/apis/<group>`, `/api/v1`,
`/apis/<group>/<version>`), which every authenticated user may read (ClusterRole
`system:discovery`), rather than the client's `DynamicClient`: its discovery writes a cache file
to the temporary folder, and the sidecar's root filesystem is read-only. Only what a look-up needs
is fetched, each document cached for `discovery_ttl`; a kind missing from the cache triggers a
fresh discovery (a CRD installed later), at most every `rediscover_interval`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cachetools import TTLCache

from sidecar.kube.errors import describe
from sidecar.kube.settings import KubeSettings
from sidecar.kube.transport import JSON, Transport, get
from sidecar.model import ObjectTarget
from sidecar.runtime.sinks import Unreachable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Resource:
    """A kind as discovery serves it in one group/version."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool


class LookupFailed(Exception):
    """A request failed in a way that says nothing about the kind or object (5xx, 403, ...)."""


class NotDiscovered(Exception):
    """`find_cached` cannot answer without a discovery request."""


class Discovery:
    """Finds the resource serving a kind. Thread-safe: the daemon's event loop (`find_cached`) and
    its discovery thread share it.

    Raises `Unreachable` (no answer) and `LookupFailed` (an answer that says nothing).
    """

    def __init__(
        self,
        transport: Transport,
        settings: KubeSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        #: Discovery documents by path; None for a 404 (group or version not served).
        self._documents: TTLCache[str, Any] = TTLCache(
            settings.cache_size, settings.discovery_ttl, timer=clock
        )
        self._discovered_at = 0.0
        #: Set on a thread while `find_cached` searches: a document not cached raises instead
        #: of being asked for.
        self._offline = threading.local()

    def find_resource(self, target: ObjectTarget) -> Resource | None:
        """Search cached discovery; on a miss, discover afresh (rate-limited) and search again."""
        found = self._search(target)
        if found is not None:
            return found
        with self._lock:
            stale = self._clock() - self._discovered_at >= self.settings.rediscover_interval
            if stale:
                self._documents.clear()
        if not stale:
            return None
        log.debug("kind %s not in discovery; discovering again", target.kind)
        return self._search(target)

    def find_cached(self, target: ObjectTarget) -> Resource | None:
        """What `find_resource` answers, from the cached documents alone: the event loop asks
        this, and leaves to a thread what needs a request.

        Raises:
            NotDiscovered: a document the search needs is not cached, or the kind is missing
                and a fresh discovery is due.
        """
        with self.cached_only():
            found = self._search(target)
        if found is None:
            with self._lock:
                due = self._clock() - self._discovered_at >= self.settings.rediscover_interval
            if due:
                raise NotDiscovered(target.kind)
        return found

    @contextmanager
    def cached_only(self) -> Iterator[None]:
        """Within it, on this thread, a document not cached raises `NotDiscovered` instead of
        being asked for (`best_version` then answers "")."""
        before = getattr(self._offline, "active", False)
        self._offline.active = True
        try:
            yield
        finally:
            self._offline.active = before

    def best_version(self, target: ObjectTarget) -> str:
        """The apiVersion to report when the kind could not be resolved."""
        if target.api_version:
            return target.api_version
        if target.api_group == "":
            return "v1"
        if target.api_group:
            try:
                group = self._group(target.api_group)
            except (Unreachable, LookupFailed, NotDiscovered):
                return ""
            if group is not None:
                return group[0]
        return ""

    def _search(self, target: ObjectTarget) -> Resource | None:
        failed: list[str] = []
        for api_version in self._candidate_versions(target):
            try:
                found = self._kind_in(api_version, target.kind)
            except LookupFailed as error:
                # One broken group/version (typically an aggregated API whose backend is down,
                # answering 503) must not hide the kind in the others.
                failed.append(str(error))
                continue
            if found is not None:
                return found
        if failed:
            raise LookupFailed("; ".join(failed))
        return None

    def _candidate_versions(self, target: ObjectTarget) -> Iterator[str]:
        """Group/versions to search for the kind, best first; discovered only as far as needed."""
        if target.api_version:
            yield target.api_version
            return
        if target.api_group is not None and target.api_group != "":
            group = self._group(target.api_group)
            if group is not None:
                preferred, versions = group
                yield preferred
                yield from (version for version in versions if version != preferred)
            return
        # The core group; for any group (None) it comes first, then each group's preferred
        # version in the server's priority order, then the other versions.
        yield from self._core_versions()
        if target.api_group is None:
            groups = self._groups()
            yield from (preferred for preferred, _ in groups)
            for preferred, versions in groups:
                yield from (version for version in versions if version != preferred)

    def _core_versions(self) -> list[str]:
        document = self._discover("/api")
        return [str(version) for version in (document or {}).get("versions", [])]

    def _groups(self) -> list[tuple[str, list[str]]]:
        document = self._discover("/apis")
        return [_group_versions(group) for group in (document or {}).get("groups", [])]

    def _group(self, name: str) -> tuple[str, list[str]] | None:
        """(preferred groupVersion, every groupVersion) of one group; None if not served."""
        document = self._discover(f"/apis/{quote(name, safe='')}")
        if document is None:
            return None
        return _group_versions(document)

    def _kind_in(self, api_version: str, kind: str) -> Resource | None:
        document = self._discover(root_of(api_version))
        if document is None:
            return None
        resources = [
            resource
            for resource in document.get("resources", [])
            if "/" not in str(resource.get("name", ""))
        ]
        # The exact kind first; then ignoring case, as rules may spell it `pod`.
        exact = [resource for resource in resources if resource.get("kind") == kind]
        folded = [r for r in resources if str(r.get("kind", "")).lower() == kind.lower()]
        if not exact and not folded:
            return None
        resource = (exact or folded)[0]
        return Resource(
            api_version=api_version,
            kind=str(resource["kind"]),
            plural=str(resource["name"]),
            namespaced=bool(resource.get("namespaced")),
        )

    def _discover(self, path: str) -> Any:
        """A discovery document, from the cache or the API; None when the path is not served."""
        with self._lock:
            if path in self._documents:
                return self._documents[path]
        if getattr(self._offline, "active", False):
            raise NotDiscovered(path)
        answer = get(self._transport, "discover", path, JSON)
        if answer.status == 200:
            document = answer.json()
        elif answer.status == 404:
            document = None
        else:
            raise LookupFailed(f"GET {path}: {describe(answer)}")
        with self._lock:
            if not self._documents:
                self._discovered_at = self._clock()
            self._documents[path] = document
        return document


def root_of(api_version: str) -> str:
    """The path serving a group/version: `/api/v1` for the core group, else `/apis/<g>/<v>`."""
    return f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"


def _group_versions(group: Any) -> tuple[str, list[str]]:
    """(preferred groupVersion, every groupVersion) of an APIGroup document."""
    versions = [str(version["groupVersion"]) for version in group.get("versions", [])]
    preferred = str((group.get("preferredVersion") or {}).get("groupVersion") or "")
    return (preferred or (versions[0] if versions else "")), versions
