"""The Kubernetes API sink: writes Events to a real apiserver and looks up involved objects.

This is the only module that imports `kubernetes`, so that the rest of the package (rules,
correlation, the Recorder, `replay`) stays importable and testable without it, and so that the
client's models and exceptions never leak: everything here is translated into the `sidecar.sinks`
vocabulary (`Unreachable`, `Refused`, `NotFound`) and into `InvolvedObject`s.

No global client state is touched: `connect` loads the configuration into a fresh
`Configuration` and builds a private `ApiClient`. In a pod (in-cluster service account) nothing is
written to disk, which suits a read-only root filesystem; only a kubeconfig with embedded
`*-data` certificates makes the client library write temporary files.

Involved objects are resolved through discovery (`/api`, `/apis`, `/apis/<group>`,
`/api/v1`, `/apis/<group>/<version>`), which every authenticated user may read (ClusterRole
`system:discovery`), and one GET of the object's metadata, which needs `get` on its resource.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import urllib3
from cachetools import TTLCache
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from sidecar.events import Event, InvolvedObject
from sidecar.metrics import Metrics
from sidecar.model import ObjectTarget
from sidecar.sinks import NotFound, Refused, Unreachable, unresolved

log = logging.getLogger(__name__)

USER_AGENT: Final = "kube-event-sidecar/0.1.0"
STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"
_JSON: Final = "application/json"
#: Ask for the object's metadata only (any resource, built-in or custom); plain JSON as fallback.
_METADATA_ONLY: Final = (
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
)
_DEFAULT_KUBECONFIG: Final = "~/.kube/config"
#: `object_lookups` results: `hit` is any answer from the cache (found, forbidden or not found,
#: cached for `KubeSettings.lookup_ttl`); `error` is a look-up that could not be made (the API
#: unreachable or answering 5xx), which is not cached.
LOOKUP_RESULTS: Final = ("hit", "found", "forbidden", "not_found", "unknown_kind", "error")


class KubeConfigError(Exception):
    """No usable Kubernetes client configuration; the message says what was tried and why each
    attempt failed."""


@dataclass(frozen=True, slots=True)
class KubeSettings:
    #: Seconds for a whole request (connect plus answer); a timeout is `Unreachable`.
    request_timeout: float = 10.0
    #: How long discovery answers (groups, versions, resource lists) are reused.
    discovery_ttl: float = 600.0
    #: How long an object's look-up (uid, resourceVersion, or forbidden / not found) is reused.
    #: Short, so a deleted and re-created object soon gets its new uid.
    lookup_ttl: float = 30.0
    #: A kind missing from cached discovery triggers a fresh discovery (a CRD installed later),
    #: at most this often.
    rediscover_interval: float = 30.0
    #: Entries per cache (discovery documents; object look-ups).
    cache_size: int = 2048


@dataclass(frozen=True, slots=True)
class _Resource:
    """A kind as discovery serves it in one group/version."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _LookupFailed(Exception):
    """A discovery request failed in a way that says nothing about the kind (5xx, 403, ...)."""


def connect(
    *,
    kubeconfig: str | None,
    context: str | None = None,
    metrics: Metrics,
    settings: KubeSettings = KubeSettings(),
) -> KubeSink:
    """Build a `KubeSink` on a private client: from `kubeconfig` when given; else from the pod's
    service account; else from `$KUBECONFIG` or `~/.kube/config`.

    Raises:
        KubeConfigError: nothing worked; the message lists every attempt and its failure.
    """
    configuration = load_configuration(kubeconfig=kubeconfig, context=context)
    # Retries belong to the Recorder (and only for transport errors): urllib3 must not add its
    # own, hidden ones.
    configuration.retries = False
    api = k8s_client.ApiClient(configuration)
    api.user_agent = USER_AGENT
    return KubeSink(api, metrics, settings)


def load_configuration(
    *, kubeconfig: str | None, context: str | None = None
) -> k8s_client.Configuration:
    """Return a fresh `kubernetes.client.Configuration`, never touching the global default."""
    tried: list[str] = []
    if kubeconfig is not None:
        configuration = _try_kubeconfig(kubeconfig, "given explicitly", context, tried)
        if configuration is not None:
            return configuration
        raise KubeConfigError(_no_configuration(tried))

    configuration = k8s_client.Configuration()
    try:
        # kubernetes.config's loaders carry no annotations (the client package itself does).
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException as error:
        tried.append(f"in-cluster service account: {_in_cluster_problem(error)}")
    else:
        return configuration

    from_env = os.environ.get("KUBECONFIG", "")
    if from_env:
        paths, origin = from_env, "from $KUBECONFIG"
    else:
        paths, origin = _DEFAULT_KUBECONFIG, "the default; $KUBECONFIG is not set"
    configuration = _try_kubeconfig(paths, origin, context, tried)
    if configuration is not None:
        return configuration
    raise KubeConfigError(_no_configuration(tried))


def _try_kubeconfig(
    paths: str, origin: str, context: str | None, tried: list[str]
) -> k8s_client.Configuration | None:
    """Load a kubeconfig (a `:`-separated list, as kubectl) or note in `tried` why not."""
    label = f"kubeconfig {paths} ({origin})"
    if context is not None:
        label += f" with context {context!r}"
    parts = [part for part in paths.split(os.pathsep) if part]
    missing = [part for part in parts if not Path(part).expanduser().is_file()]
    if len(missing) == len(parts):
        what = "file does not exist" if len(parts) <= 1 else "none of these files exists"
        tried.append(f"{label}: {what}")
        return None
    configuration = k8s_client.Configuration()
    try:
        # persist_config=False: never write refreshed credentials back (read-only filesystem).
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=paths,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except Exception as error:  # YAML, OS, exec-plugin and schema errors alike: say which
        tried.append(f"{label}: not usable: {type(error).__name__}: {error}")
        return None
    return configuration


def _in_cluster_problem(error: Exception) -> str:
    text = str(error)
    if "host/port" in text:
        return f"{text} (KUBERNETES_SERVICE_HOST/PORT; not running in a pod?)"
    return text


def _no_configuration(tried: list[str]) -> str:
    lines = "\n".join(f"  - {attempt}" for attempt in tried)
    return f"no usable Kubernetes configuration; tried:\n{lines}"


class KubeSink:
    """A `Sink` that writes core/v1 Events to the apiserver and resolves involved objects.

    Every request is timed in `api_latency{verb, result}`: verb is `create`, `patch`, `get`
    (an object's metadata), `discover` or `ping`; result is the HTTP status code, or
    `unreachable`. Nothing is logged above debug: the Recorder decides what is worth a warning.
    """

    def __init__(
        self,
        api: k8s_client.ApiClient,
        metrics: Metrics,
        settings: KubeSettings = KubeSettings(),
    ) -> None:
        self._api = api
        self._metrics = metrics
        self.settings = settings
        self._lock = threading.Lock()
        #: Discovery documents by path; None for a 404 (group or version not served).
        self._discovery: TTLCache[str, Any] = TTLCache(settings.cache_size, settings.discovery_ttl)
        self._discovered_at = 0.0
        self._lookups: TTLCache[tuple[str, ...], InvolvedObject] = TTLCache(
            settings.cache_size, settings.lookup_ttl
        )
        for result in LOOKUP_RESULTS:
            metrics.object_lookups.labels(result)

    @property
    def server(self) -> str:
        """The API server's URL."""
        return str(self._api.configuration.host)

    def close(self) -> None:
        """Close the client's connection pool."""
        self._api.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> KubeSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writing Events ------------------------------------------------------------------------

    def create(self, event: Event) -> None:
        """POST the Event to `/api/v1/namespaces/<event namespace>/events`.

        Raises:
            Unreachable: transport error or timeout (retry).
            NotFound: 404, the namespace does not exist.
            Refused: any other status (cause: namespace_terminating, forbidden, conflict,
                invalid, rejected).
        """
        path = f"/api/v1/namespaces/{quote(event.namespace, safe='')}/events"
        answer = self._send("create", "POST", path, event.to_body(), _JSON)
        if answer.status >= 300:
            raise _refusal("create", answer)

    def patch(self, event: Event, patch: dict[str, Any]) -> None:
        """Strategic-merge PATCH `patch` onto the Event named `event.name`.

        Raises:
            Unreachable: transport error or timeout (retry).
            NotFound: 404, the Event expired (the Recorder re-creates it).
            Refused: any other status.
        """
        namespace, name = quote(event.namespace, safe=""), quote(event.name, safe="")
        path = f"/api/v1/namespaces/{namespace}/events/{name}"
        answer = self._send("patch", "PATCH", path, patch, STRATEGIC_MERGE_PATCH)
        if answer.status >= 300:
            raise _refusal("patch", answer)

    def ping(self) -> str:
        """GET /version; return the server's gitVersion.

        Raises:
            Unreachable: no answer, or an answer other than 200 (e.g. 401 for a bad token).
        """
        answer = self._get("ping", "/version", _JSON)
        if answer.status != 200:
            raise Unreachable(f"GET /version answered {_describe(answer)}")
        try:
            return str(answer.json().get("gitVersion", ""))
        except (ValueError, AttributeError) as error:
            raise Unreachable(
                f"GET /version answered something that is not JSON: {error}"
            ) from error

    # -- resolving involved objects ------------------------------------------------------------

    def resolve(self, target: ObjectTarget) -> InvolvedObject:
        """The involved object with the live uid, resourceVersion and preferred apiVersion.

        Never raises: when the object is forbidden, missing, of an unknown kind or the API
        cannot be asked, the reference comes back without uid (with the best apiVersion known),
        and `object_lookups{result}` says why.
        """
        # `None` (any group) and "" (the core group) must not share an entry.
        group = "*" if target.api_group is None else target.api_group
        key = (target.kind, target.name, target.namespace, target.api_version, group)
        with self._lock:
            cached = self._lookups.get(key)
        if cached is not None:
            self._count("hit")
            return replace(cached, field_path=target.field_path)
        try:
            found, result = self._look_up(target)
        except (Unreachable, _LookupFailed) as error:
            log.debug(
                "cannot look up %s %s/%s: %s", target.kind, target.namespace, target.name, error
            )
            self._count("error")
            return replace(unresolved(target), api_version=self._best_version(target))
        except Exception as error:  # never raise: an Event without uid beats no Event
            log.debug("look-up of %s %s failed", target.kind, target.name, exc_info=error)
            self._count("error")
            return unresolved(target)
        self._count(result)
        if result in {"found", "forbidden", "not_found"}:
            with self._lock:
                self._lookups[key] = replace(found, field_path="")
        return found

    def _look_up(self, target: ObjectTarget) -> tuple[InvolvedObject, str]:
        resource = self._find_resource(target)
        if resource is None:
            return replace(
                unresolved(target), api_version=self._best_version(target)
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
        answer = self._get("get", _object_path(resource, reference), _METADATA_ONLY)
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
        raise _LookupFailed(f"GET {_object_path(resource, reference)}: {_describe(answer)}")

    def _best_version(self, target: ObjectTarget) -> str:
        """The apiVersion to report when the kind could not be resolved."""
        if target.api_version:
            return target.api_version
        if target.api_group == "":
            return "v1"
        if target.api_group:
            try:
                group = self._group(target.api_group)
            except (Unreachable, _LookupFailed):
                return ""
            if group is not None:
                return group[0]
        return ""

    def _find_resource(self, target: ObjectTarget) -> _Resource | None:
        """Search cached discovery; on a miss, discover afresh (rate-limited) and search again."""
        found = self._search(target)
        if found is not None:
            return found
        with self._lock:
            stale = time.monotonic() - self._discovered_at >= self.settings.rediscover_interval
            if stale:
                self._discovery.clear()
        if not stale:
            return None
        log.debug("kind %s not in discovery; discovering again", target.kind)
        return self._search(target)

    def _search(self, target: ObjectTarget) -> _Resource | None:
        failed: list[str] = []
        for api_version in self._candidate_versions(target):
            try:
                found = self._kind_in(api_version, target.kind)
            except _LookupFailed as error:
                # One broken group/version (typically an aggregated API whose backend is down,
                # answering 503) must not hide the kind in the others.
                failed.append(str(error))
                continue
            if found is not None:
                return found
        if failed:
            raise _LookupFailed("; ".join(failed))
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

    def _kind_in(self, api_version: str, kind: str) -> _Resource | None:
        document = self._discover(_root(api_version))
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
        return _Resource(
            api_version=api_version,
            kind=str(resource["kind"]),
            plural=str(resource["name"]),
            namespaced=bool(resource.get("namespaced")),
        )

    def _discover(self, path: str) -> Any:
        """A discovery document, from the cache or the API; None when the path is not served."""
        with self._lock:
            if path in self._discovery:
                return self._discovery[path]
        answer = self._get("discover", path, _JSON)
        if answer.status == 200:
            document = answer.json()
        elif answer.status == 404:
            document = None
        else:
            raise _LookupFailed(f"GET {path}: {_describe(answer)}")
        with self._lock:
            if not self._discovery:
                self._discovered_at = time.monotonic()
            self._discovery[path] = document
        return document

    # -- requests --------------------------------------------------------------------------

    def _get(self, verb: str, path: str, accept: str) -> _Answer:
        """A plain GET through the client (auth, TLS, proxy), any status returned as is."""
        return self._request(verb, "GET", path, {"Accept": accept})

    def _send(self, verb: str, method: str, path: str, body: Any, content_type: str) -> _Answer:
        """A write with a JSON body, any status returned as is."""
        headers = {"Accept": _JSON, "Content-Type": content_type}
        return self._request(verb, method, path, headers, body)

    def _request(
        self, verb: str, method: str, path: str, headers: dict[str, str], body: Any = None
    ) -> _Answer:
        """One request through the client's plain `call_api`.

        Deliberately not through the generated `CoreV1Api`: its module (413 validated methods, of
        which we would use two) costs about 21 MiB of memory, a quarter of the daemon's, and it
        re-serializes bodies through its models.
        """

        def send() -> Any:
            request = self._api.param_serialize(
                method=method,
                resource_path=path,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            return self._api.call_api(*request, _request_timeout=self.settings.request_timeout)

        return self._call(verb, send)

    def _call(self, verb: str, send: Callable[[], Any]) -> _Answer:
        """Run one request; time it; any HTTP answer is returned, transport errors raised.

        Raises:
            Unreachable: no HTTP answer (connection refused, TLS failure, timeout, ...).
        """
        result = "unreachable"
        began = time.perf_counter()
        try:
            try:
                response = send()
            except k8s_client.ApiException as error:
                if not error.status:
                    # The client reports TLS failures as an ApiException with status 0.
                    raise Unreachable(f"{verb}: {error.reason}") from error
                answer = _Answer(int(error.status), _as_bytes(error.body))
            except (urllib3.exceptions.HTTPError, OSError) as error:
                raise Unreachable(f"{verb}: {type(error).__name__}: {error}") from error
            else:
                answer = _Answer(int(response.status), _as_bytes(response.read()))
            result = str(answer.status)
            log.debug("%s answered %d", verb, answer.status)
            return answer
        finally:
            self._metrics.api_latency.labels(verb, result).observe(time.perf_counter() - began)

    def _count(self, result: str) -> None:
        self._metrics.object_lookups.labels(result).inc()


def _group_versions(group: Any) -> tuple[str, list[str]]:
    """(preferred groupVersion, every groupVersion) of an APIGroup document."""
    versions = [str(version["groupVersion"]) for version in group.get("versions", [])]
    preferred = str((group.get("preferredVersion") or {}).get("groupVersion") or "")
    return (preferred or (versions[0] if versions else "")), versions


def _root(api_version: str) -> str:
    """The path serving a group/version: `/api/v1` for the core group, else `/apis/<g>/<v>`."""
    return f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"


def _object_path(resource: _Resource, reference: InvolvedObject) -> str:
    root = _root(resource.api_version)
    name = quote(reference.name, safe="")
    if resource.namespaced:
        return f"{root}/namespaces/{quote(reference.namespace, safe='')}/{resource.plural}/{name}"
    return f"{root}/{resource.plural}/{name}"


def _as_bytes(data: Any) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    return str(data).encode("utf-8", "replace")


def _status(answer: _Answer) -> dict[str, Any]:
    """The apiserver's Status object from an error answer ({} if the body is not one)."""
    try:
        document = answer.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _describe(answer: _Answer) -> str:
    status = _status(answer)
    message = status.get("message") or answer.body.decode("utf-8", "replace").strip()[:300]
    reason = status.get("reason") or ""
    return f"{answer.status} {reason}: {message}" if reason else f"{answer.status}: {message}"


def _refusal(verb: str, answer: _Answer) -> Refused | Unreachable:
    """What an HTTP error status means for a write: final (`Refused`), except 429.

    429 is API Priority and Fairness asking us to come back later; client-go's REST client
    retries it inside the request (honouring Retry-After) before the recorder ever sees it, so
    here it is a retryable `Unreachable` too.
    """
    detail = _describe(answer)
    if answer.status == 429:
        return Unreachable(f"{verb}: throttled by the apiserver: {detail}")
    if answer.status == 404:
        # create: the namespace is missing; patch: the Event expired (the Recorder re-creates).
        return NotFound(detail)
    if answer.status == 403:
        if _namespace_terminating(_status(answer)):
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
