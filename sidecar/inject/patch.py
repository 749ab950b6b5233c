"""The JSON Patch that injects the sidecar into a pod: pure, shared by the webhook and `inject`.

It is built from the pod's raw JSON, never through typed models, which can drop fields they do not
know (an old Python client dropped `restartPolicy: Always` on init containers). Every operation is
an `add` that the apiserver can apply to the object it holds, whatever its shape:

- a missing array or object (`volumes`, `initContainers`, `env`, `metadata.annotations`, even
  `metadata`) is added whole, because `add /spec/volumes/-` fails when there is no array;
- annotation keys are escaped as JSON Pointer tokens (`/` -> `~1`, `~` -> `~0`);
- names the pod already uses (volumes, ports) are never reused, so the result stays valid.

A pod that already has the sidecar (in `containers` or `initContainers`) yields an empty patch,
which makes injection idempotent and safe under webhook reinvocation.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sidecar.inject.annotations import STATUS_ANNOTATION, PodOptions, parse_annotations
from sidecar.inject.settings import InjectSettings

SIDECAR_NAME: Final = "event-sidecar"
LOG_VOLUME: Final = "event-sidecar-logs"
STATE_VOLUME: Final = "event-sidecar-state"
STATE_DIR: Final = "/var/run/event-sidecar"
"""The pod log source's checkpoint lives here, on an `emptyDir`: it survives a restart of the
sidecar container, so a restarted sidecar neither loses nor doubles a line."""
STATE_SIZE_LIMIT: Final = "1Mi"
RULES_VOLUME: Final = "event-sidecar-rules"
RULES_DIR: Final = "/etc/event-sidecar"
RULES_KEY: Final = "rules.yaml"
METRICS_PORT_NAME: Final = "sidecar-metrics"
SOCKET_ENV: Final = "EVENT_SIDECAR_SOCKET"
"""Set in the app container in socket mode, so the app (or its log shipper) knows where to write."""
DEFAULT_CONTAINER_ANNOTATION: Final = "kubectl.kubernetes.io/default-container"

Operation = dict[str, Any]
Pod = Mapping[str, Any]


class InjectionError(ValueError):
    """The pod cannot get the sidecar (e.g. the target container does not exist)."""


class HostNetworkError(InjectionError):
    """The pod uses the node's network namespace, where the sidecar's ports would be the node's."""


#: Why a hostNetwork pod is refused: said in the admission warning, `inject`'s warning and the
#: pod's status annotation.
HOST_NETWORK_REFUSAL: Final = (
    "hostNetwork pods are not injected: the sidecar's metrics port would listen on the node's "
    "addresses, and in socket mode its log socket would open on the node's loopback, where any "
    "process on the node could forge Events"
)


@dataclass(frozen=True)
class _Plan:
    """Everything decided about one pod before any operation is written."""

    options: PodOptions
    target: int
    target_name: str
    native: bool
    metrics_port: int
    log_path: str | None
    log_volume: str
    log_volume_exists: bool
    log_mount: Mapping[str, Any] | None
    """The app's existing mount of the log directory, when it has one (the sidecar shares it)."""
    rules_volume: str
    state_volume: str

    @property
    def pod_log(self) -> bool:
        """Neither a file nor a socket: follow the target container's log (the default)."""
        return self.log_path is None and not self.options.socket


def is_injected(pod: Pod) -> bool:
    """Whether the pod already runs the sidecar, as a classic or a native one."""
    return any(c.get("name") == SIDECAR_NAME for c in _all_containers(pod.get("spec") or {}))


def _all_containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """App and init containers alike (a native sidecar is an init container)."""
    for key in ("containers", "initContainers"):
        yield from spec.get(key) or ()


def build_patch(pod: Pod, settings: InjectSettings) -> list[Operation]:
    """The JSON Patch (RFC 6902) adding the sidecar to `pod`; empty when it is already there.

    Raises:
        InvalidAnnotations: the pod's injection annotations are invalid.
        HostNetworkError: the pod has `hostNetwork: true`.
        InjectionError: the pod has no containers, or names a target container it lacks.
    """
    if is_injected(pod):
        return []
    if (pod.get("spec") or {}).get("hostNetwork") is True:
        raise HostNetworkError(HOST_NETWORK_REFUSAL)
    plan = _plan(pod, settings)
    spec = pod["spec"]
    return [
        *_add_volumes(spec, plan, settings),
        *_wire_target(spec, plan),
        *_append(
            "/spec",
            spec,
            "initContainers" if plan.native else "containers",
            [_sidecar(plan, settings)],
        ),
        *_annotate(pod, plan),
    ]


def _plan(pod: Pod, settings: InjectSettings) -> _Plan:
    """Validate the annotations and resolve every name and number the patch needs."""
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    options = parse_annotations(annotations)
    spec = pod.get("spec") or {}
    containers: Sequence[Mapping[str, Any]] = spec.get("containers") or ()
    if not containers:
        raise InjectionError("the pod has no containers")
    wanted = options.container or annotations.get(DEFAULT_CONTAINER_ANNOTATION)
    names = [str(c.get("name")) for c in containers]
    if wanted is None:
        target = 0
    elif wanted in names:
        target = names.index(wanted)
    else:
        raise InjectionError(f"container {wanted!r} not found (containers: {', '.join(names)})")
    volumes = spec.get("volumes") or ()
    taken_volumes = {v.get("name") for v in volumes}
    log_path = None if options.socket else options.log_path or settings.log_path
    if log_path and posixpath.dirname(log_path) == RULES_DIR:  # two mounts at one path: invalid
        raise InjectionError(f"the log directory cannot be {RULES_DIR}, where the rules go")
    log_mount = _mount_at(containers[target], posixpath.dirname(log_path)) if log_path else None
    return _Plan(
        options=options,
        target=target,
        target_name=names[target],
        native=settings.native_sidecar
        if options.native_sidecar == "auto"
        else options.native_sidecar == "true",
        metrics_port=_free_port(settings.metrics_port, _declared_ports(spec)),
        log_path=log_path,
        log_volume=log_mount["name"] if log_mount else _unique(LOG_VOLUME, taken_volumes),
        log_volume_exists=log_mount is not None,
        log_mount=log_mount,
        rules_volume=_unique(RULES_VOLUME, taken_volumes),
        state_volume=_unique(STATE_VOLUME, taken_volumes | {RULES_VOLUME, LOG_VOLUME}),
    )


def _add_volumes(spec: Mapping[str, Any], plan: _Plan, settings: InjectSettings) -> list[Operation]:
    """The rules ConfigMap volume, and the shared log `emptyDir` unless the app already has one."""
    rules = plan.options.rules_configmap or settings.rules_configmap
    new = [{"name": plan.rules_volume, "configMap": {"name": rules}}]
    if plan.log_path and not plan.log_volume_exists:
        size = settings.log_volume_size_limit
        new.insert(0, {"name": plan.log_volume, "emptyDir": {"sizeLimit": size}})
    if plan.pod_log:
        new.append({"name": plan.state_volume, "emptyDir": {"sizeLimit": STATE_SIZE_LIMIT}})
    return _append("/spec", spec, "volumes", new)


def _wire_target(spec: Mapping[str, Any], plan: _Plan) -> list[Operation]:
    """Give the app container the log directory mount, or the socket address in its env; with
    the pod log source the app container is left exactly as it is."""
    if plan.pod_log:
        return []
    container = spec["containers"][plan.target]
    path = f"/spec/containers/{plan.target}"
    if plan.log_path is None:
        env = container.get("env") or ()
        if any(e.get("name") == SOCKET_ENV for e in env):
            return []
        return _append(path, container, "env", [{"name": SOCKET_ENV, "value": plan.options.socket}])
    if plan.log_mount is not None:
        return []
    mount = {"name": plan.log_volume, "mountPath": posixpath.dirname(plan.log_path)}
    return _append(path, container, "volumeMounts", [mount])


def _sidecar(plan: _Plan, settings: InjectSettings) -> dict[str, Any]:
    """The sidecar container: `event-sidecar run`, restricted-compliant, small and read-only."""
    options = plan.options
    if plan.pod_log:
        source = ["--pod-log", plan.target_name, "--checkpoint", f"{STATE_DIR}/checkpoint.json"]
    elif plan.log_path is None:
        source = ["--tcp", str(options.socket).removeprefix("tcp://")]
    else:
        source = ["--file", plan.log_path]
    mounts: list[dict[str, Any]] = [
        {"name": plan.rules_volume, "mountPath": RULES_DIR, "readOnly": True}
    ]
    if plan.pod_log:
        mounts.append({"name": plan.state_volume, "mountPath": STATE_DIR})
    if plan.log_path is not None:
        # Writable: `run` keeps its checkpoint next to the first log file, on this volume, so
        # that a restarted sidecar resumes where it stopped.
        log_mount = {"name": plan.log_volume, "mountPath": posixpath.dirname(plan.log_path)}
        for key in ("subPath", "subPathExpr"):  # see exactly what the app sees
            if plan.log_mount and key in plan.log_mount:
                log_mount[key] = plan.log_mount[key]
        mounts.insert(0, log_mount)
    container: dict[str, Any] = {
        "name": SIDECAR_NAME,
        "image": options.image or settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["event-sidecar"],
        "args": [
            "run",
            "--rules",
            f"{RULES_DIR}/{RULES_KEY}",
            *source,
            "--listen",
            f"0.0.0.0:{plan.metrics_port}",
            "--log-level",
            options.log_level or settings.log_level,
        ],
        "env": [
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
        ],
        "ports": [
            {"name": METRICS_PORT_NAME, "containerPort": plan.metrics_port, "protocol": "TCP"}
        ],
        **probes(),
        "resources": options.resources.to_container() if options.resources else settings.resources,
        "securityContext": restricted_security_context(settings.run_as_user),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    }
    if plan.native:
        container["restartPolicy"] = "Always"
    return container


#: What the readiness probe asks: `/readyz` without `api` and `sources` (see `probes`).
READINESS_PATH: Final = "/readyz?exclude=api&exclude=sources"


def probes() -> dict[str, Any]:
    """The sidecar's liveness and readiness probes (the webhook, `inject` and the policy's).

    Liveness (`/healthz`): the event loop answers and no supervised task ended; failing it
    restarts the sidecar, which is what helps then. Readiness asks whether the sidecar does its
    job: its rules loaded and no source unreadable for `--unreadable-seconds` (a 403 on
    `pods/log`, a log file that never appears), so such a pod shows not ready in `kubectl get
    pods` instead of sitting silently useless. It leaves out `api`: an apiserver outage is
    ridden out by retrying, and must not take every injected pod out of its Services at once;
    and `sources`, which flips while a pod log stream reconnects. A sidecar's readiness is the
    pod's (a native sidecar's too), so it is kept to what lasts.
    """
    return {
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": METRICS_PORT_NAME},
            "periodSeconds": 20,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": READINESS_PATH, "port": METRICS_PORT_NAME},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
    }


def restricted_security_context(uid: int) -> dict[str, Any]:
    """A securityContext that passes the `restricted` Pod Security Standard on its own, so the
    injected container never gets a restricted namespace's pod rejected."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _annotate(pod: Pod, plan: _Plan) -> list[Operation]:
    """Status, kubectl's default container (so `kubectl logs` keeps showing the app) and the
    Prometheus scrape annotations, each only where the pod has not set it itself."""
    metadata = pod.get("metadata")
    existing: Mapping[str, Any] = (metadata or {}).get("annotations") or {}
    wanted = {STATUS_ANNOTATION: "injected"}
    if DEFAULT_CONTAINER_ANNOTATION not in existing:
        wanted[DEFAULT_CONTAINER_ANNOTATION] = plan.target_name
    if "prometheus.io/scrape" not in existing:  # the app's own scrape config wins
        wanted["prometheus.io/scrape"] = "true"
        wanted["prometheus.io/port"] = str(plan.metrics_port)
        wanted["prometheus.io/path"] = "/metrics"
    return annotate(pod, wanted)


def annotate(pod: Pod, wanted: Mapping[str, str]) -> list[Operation]:
    """The operations that set the annotations `wanted` on `pod`, whatever its metadata holds."""
    metadata = pod.get("metadata")
    if metadata is None:
        return [{"op": "add", "path": "/metadata", "value": {"annotations": dict(wanted)}}]
    if not metadata.get("annotations"):
        return [{"op": "add", "path": "/metadata/annotations", "value": dict(wanted)}]
    return [
        {"op": "add", "path": f"/metadata/annotations/{escape(key)}", "value": value}
        for key, value in wanted.items()
    ]


def _append(parent: str, obj: Mapping[str, Any], key: str, items: Sequence[Any]) -> list[Operation]:
    """Append `items` to the array `obj[key]` at pointer `parent`, adding the array if needed."""
    if not items:
        return []
    if not obj.get(key):  # missing, null or empty: add (or replace) the whole array
        return [{"op": "add", "path": f"{parent}/{key}", "value": list(items)}]
    return [{"op": "add", "path": f"{parent}/{key}/-", "value": item} for item in items]


def escape(token: str) -> str:
    """A JSON Pointer reference token for `token` (RFC 6901: `~` -> `~0`, then `/` -> `~1`)."""
    return token.replace("~", "~0").replace("/", "~1")


def _field_env(name: str, field_path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def _mount_at(container: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    return next(
        (m for m in container.get("volumeMounts") or () if m.get("mountPath") == path), None
    )


def _declared_ports(spec: Mapping[str, Any]) -> set[int]:
    return {p.get("containerPort") for c in _all_containers(spec) for p in c.get("ports") or ()}


def _free_port(first: int, taken: Iterable[int]) -> int:
    """The first port from `first` up that no container of the pod declares."""
    used = set(taken)
    port = first
    while port in used:
        port += 1
    return port


def _unique(base: str, taken: Iterable[Any]) -> str:
    """`base`, or `base-2`, `base-3`, ... : the first name not in `taken`."""
    used = set(taken)
    name, n = base, 1
    while name in used:
        n += 1
        name = f"{base}-{n}"
    return name
