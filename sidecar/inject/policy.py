"""Injection without a webhook: the same patch as a MutatingAdmissionPolicy written in CEL.

`build_policy` renders the policy and its binding from :class:`InjectSettings`, so that the
manifest in `manifests/policy/` (and any future CLI output) comes from one place and a test keeps
them in sync. The apiserver itself applies the policy (admissionregistration.k8s.io/v1, GA in
Kubernetes 1.36): there is no TLS, no certificate and no outage mode.

The CEL mirrors `sidecar.inject.patch.build_patch` step by step (volumes, the app container's
mount or socket variable, the sidecar, the annotations), with the same name and port choices, so a
pod gets the same sidecar either way; a test on a real apiserver compares the two. What CEL cannot
do, the policy refuses rather than guesses, through `matchConditions` (the pod is then created
without the sidecar, as the webhook does for invalid annotations, but with no warning):

- the `resources` annotation is JSON, and CEL in the apiserver has no JSON parser;
- annotation values are checked by simpler rules than the webhook's validators;
- at most :data:`_CANDIDATES` alternative volume names and metrics ports are tried.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import yaml

from sidecar.inject.admission import MIRROR_ANNOTATION, SYSTEM_NAMESPACES
from sidecar.inject.annotations import INJECT_LABEL, PREFIX, STATUS_ANNOTATION
from sidecar.inject.cel import Cel, dyn, render
from sidecar.inject.patch import (
    DEFAULT_CONTAINER_ANNOTATION,
    LOG_VOLUME,
    METRICS_PORT_NAME,
    RULES_DIR,
    RULES_KEY,
    RULES_VOLUME,
    SIDECAR_NAME,
    SOCKET_ENV,
    STATE_DIR,
    STATE_SIZE_LIMIT,
    STATE_VOLUME,
    escape,
    probes,
    restricted_security_context,
)
from sidecar.inject.settings import InjectSettings

POLICY_NAME: Final = "event-sidecar-inject"
API_VERSION: Final = "admissionregistration.k8s.io/v1"
_CANDIDATES: Final = 16
"""How many volume names (`name`, `name-2`, ...) and ports the CEL tries; `build_patch` has no
bound, but a pod that already uses 16 of them is not one to inject blindly."""

#: Annotations the policy honours (the `resources` one is JSON, which CEL cannot parse).
_HONOURED: Final = (
    "container",
    "log-path",
    "socket",
    "rules-configmap",
    "image",
    "log-level",
    "native-sidecar",
)
_DNS_LABEL: Final = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_DNS_SUBDOMAIN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_LOG_PATH: Final = r"^(/[^/*?\[\]:]+)+/[^/]+$"
_SOCKET: Final = r"^tcp://(127\.0\.0\.1|localhost|\[::1\]):[1-9][0-9]{0,4}$"


def _annotation(suffix: str) -> str:
    """CEL for the optional value of the pod annotation `PREFIX + suffix`."""
    return f"variables.annotations[?{render(PREFIX + suffix)}]"


def _unique(base: str, taken: str) -> Cel:
    """CEL for `patch._unique`: the first of `base`, `base-2`, ... not in the list `taken`."""
    names = [base, *(f"{base}-{n}" for n in range(2, _CANDIDATES + 1))]
    return Cel(f"{render(names)}.filter(n, !(n in {taken}))[0]")


def _variables(settings: InjectSettings) -> list[tuple[str, str]]:
    """Named CEL values, each computed once, in the order `patch._plan` decides them."""
    ports = render(list(range(settings.metrics_port, settings.metrics_port + _CANDIDATES)))
    native_default = render("true" if settings.native_sidecar else "false")
    return [
        ("annotations", "object.metadata.?annotations.orValue({})"),
        ("socket", f"{_annotation('socket')}.orValue('')"),
        (
            "logPath",
            f"variables.socket != '' ? '' : "
            f"{_annotation('log-path')}.orValue({render(settings.log_path or '')})",
        ),
        # Neither a file nor a socket: the target container's log through the API (the default).
        ("podLog", "variables.socket == '' && variables.logPath == ''"),
        (
            "logDir",
            "variables.logPath == '' ? '' : "
            "variables.logPath.substring(0, variables.logPath.lastIndexOf('/'))",
        ),
        (
            "targetName",
            f"{_annotation('container')}.orValue(variables.annotations"
            f"[?{render(DEFAULT_CONTAINER_ANNOTATION)}].orValue(object.spec.containers[0].name))",
        ),
        ("target", "object.spec.containers.map(c, c.name).indexOf(variables.targetName)"),
        ("app", "object.spec.containers[variables.target]"),
        (
            "logMounts",
            "variables.logPath == '' ? [] : variables.app.?volumeMounts.orValue([])"
            ".filter(m, m.mountPath == variables.logDir)",
        ),
        ("volumeNames", "object.spec.?volumes.orValue([]).map(v, v.name)"),
        (
            "logVolume",
            "variables.logMounts.size() > 0 ? variables.logMounts[0].name : "
            + _unique(LOG_VOLUME, "variables.volumeNames"),
        ),
        ("rulesVolume", _unique(RULES_VOLUME, "variables.volumeNames")),
        (
            "stateVolume",
            _unique(
                STATE_VOLUME, f"(variables.volumeNames + {render([RULES_VOLUME, LOG_VOLUME])})"
            ),
        ),
        (
            "port",
            f"{ports}.filter(p, !(object.spec.containers + object.spec.?initContainers"
            ".orValue([])).exists(c, c.?ports.orValue([]).exists(q, q.containerPort == p)))[0]",
        ),
        (
            "native",
            f"{_annotation('native-sidecar')}.orValue('auto') == 'true' || "
            f"({_annotation('native-sidecar')}.orValue('auto') == 'auto' && "
            f"{native_default} == 'true')",
        ),
    ]


def _match_conditions() -> list[dict[str, str]]:
    """When the pod is not mutated: what `admission.skip_reason` and the webhook's validation
    catch, written as CEL (each a named condition, so `kubectl describe` says which failed)."""
    annotations = "object.metadata.?annotations.orValue({})"

    def value(suffix: str) -> str:
        return f"{annotations}[?{render(PREFIX + suffix)}]"

    known = render([PREFIX + s for s in (*_HONOURED, "inject", "status")])
    containers = "object.spec.containers.map(c, c.name)"
    conditions = {
        "not-injected-yet": (
            f"!(object.spec.containers + object.spec.?initContainers.orValue([]))"
            f".exists(c, c.name == {render(SIDECAR_NAME)})"
        ),
        "pending": "!has(object.spec.nodeName) || object.spec.nodeName == ''",
        "not-mirror": f"!({render(MIRROR_ANNOTATION)} in {annotations})",
        "not-host-network": "!object.spec.?hostNetwork.orValue(false)",
        "has-containers": "object.spec.containers.size() > 0",
        "annotations-known": (
            f"{annotations}.all(k, !k.startsWith({render(PREFIX)}) || k in {known})"
        ),
        "container-exists": (
            f"{value('container')}.orValue({annotations}"
            f"[?{render(DEFAULT_CONTAINER_ANNOTATION)}].orValue({containers}[0])) in {containers}"
        ),
        "container-valid": f"{value('container')}.orValue('a').matches({render(_DNS_LABEL)})",
        "log-path-valid": (
            f"{value('log-path')}.orValue('/a/b').matches({render(_LOG_PATH)}) && "
            f"!{value('log-path')}.orValue('/a/b').startsWith({render(RULES_DIR + '/')})"
        ),
        "socket-valid": (
            f"{value('socket')}.orValue('tcp://127.0.0.1:1').matches({render(_SOCKET)}) && "
            f"int({value('socket')}.orValue(':1').substring("
            f"{value('socket')}.orValue(':1').lastIndexOf(':') + 1)) < 65536"
        ),
        "one-source": f"!({value('socket')}.hasValue() && {value('log-path')}.hasValue())",
        "rules-configmap-valid": (
            f"{value('rules-configmap')}.orValue('a').size() <= 253 && "
            f"{value('rules-configmap')}.orValue('a').matches({render(_DNS_SUBDOMAIN)})"
        ),
        "image-valid": (
            f"{value('image')}.orValue('a').size() <= 512 && "
            f"{value('image')}.orValue('a').matches('^\\\\S+$')"
        ),
        "log-level-valid": (
            f"{value('log-level')}.orValue('info') in ['debug', 'info', 'warning', 'error']"
        ),
        "native-sidecar-valid": (
            f"{value('native-sidecar')}.orValue('auto') in ['auto', 'true', 'false']"
        ),
    }
    return [{"name": name, "expression": expression} for name, expression in conditions.items()]


def _append(parent: str, pointer: str, array: str, items: str) -> str:
    """CEL for `patch._append`: add the array whole when it is missing or empty, else each item.

    `parent` is the CEL of the object holding `array`, `pointer` a CEL string expression for its
    JSON Pointer, `items` a CEL list expression."""
    path = f"{pointer} + {render('/' + array)}"
    return (
        f"({parent}.?{array}.orValue([]).size() == 0 ? "
        f"[JSONPatch{{op: 'add', path: {path}, value: {items}}}] : "
        f"({items}).map(i, JSONPatch{{op: 'add', path: {path} + '/-', value: i}}))"
    )


def _sidecar(settings: InjectSettings) -> dict[str, Any]:
    """The container `patch._sidecar` builds, with CEL where it depends on the pod."""
    log_mount = Cel(
        "[{'name': dyn(variables.logVolume), 'mountPath': dyn(variables.logDir), "
        "?'subPath': variables.logMounts.size() > 0 ? dyn(variables.logMounts[0]).?subPath "
        ": optional.none(), "
        "?'subPathExpr': variables.logMounts.size() > 0 ? dyn(variables.logMounts[0]).?subPathExpr "
        ": optional.none()}]"
    )
    rules_mount = {"name": Cel("variables.rulesVolume"), "mountPath": RULES_DIR, "readOnly": True}
    checkpoint = render(["--checkpoint", f"{STATE_DIR}/checkpoint.json"])
    source = Cel(
        f"(variables.podLog ? ['--pod-log', string(variables.targetName)] + {checkpoint} : "
        "variables.logPath == '' ? ['--tcp', variables.socket.substring(6)] "
        ": ['--file', variables.logPath])"
    )
    state_mount = {"name": Cel("variables.stateVolume"), "mountPath": STATE_DIR}
    uid = settings.run_as_user
    return {
        "name": SIDECAR_NAME,
        "image": Cel(f"{_annotation('image')}.orValue({render(settings.image)})"),
        "imagePullPolicy": "IfNotPresent",
        "command": ["event-sidecar"],
        "args": Cel(
            f"{render(['run', '--rules', f'{RULES_DIR}/{RULES_KEY}'])} + {source} + "
            f"['--listen', '0.0.0.0:' + string(variables.port), '--log-level', "
            f"{_annotation('log-level')}.orValue({render(settings.log_level)})]"
        ),
        "env": [
            {"name": n, "valueFrom": {"fieldRef": {"fieldPath": f"metadata.{f}"}}}
            for n, f in (("POD_NAME", "name"), ("POD_NAMESPACE", "namespace"))
        ],
        "ports": [
            {
                "name": METRICS_PORT_NAME,
                "containerPort": Cel("variables.port"),
                "protocol": "TCP",
            }
        ],
        **probes(),
        "resources": settings.resources,
        "securityContext": restricted_security_context(uid),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": Cel(
            f"(variables.logPath == '' ? [] : {log_mount}) + [{render(rules_mount)}] + "
            f"(variables.podLog ? [{render(state_mount)}] : [])"
        ),
        "?restartPolicy": Cel("variables.native ? optional.of(dyn('Always')) : optional.none()"),
    }


def _render_container(container: Mapping[str, Any]) -> str:
    """Like :func:`render`, but a key starting with `?` is an optional entry (CEL `?key: opt`)."""
    parts = []
    for key, value in container.items():
        if key.startswith("?"):
            parts.append(f"?{render(key[1:])}: {render(value)}")
        else:
            parts.append(f"{render(key)}: {dyn(value)}")
    return "{" + ", ".join(parts) + "}"


def _patch_expression(settings: InjectSettings) -> str:
    """The JSONPatch list, in the order of `build_patch`."""
    size_limit = settings.log_volume_size_limit
    rules_cm = f"{_annotation('rules-configmap')}.orValue({render(settings.rules_configmap)})"
    log_volume = {"name": Cel("variables.logVolume"), "emptyDir": {"sizeLimit": size_limit}}
    rules_volume = {"name": Cel("variables.rulesVolume"), "configMap": {"name": Cel(rules_cm)}}
    state_volume = {
        "name": Cel("variables.stateVolume"),
        "emptyDir": {"sizeLimit": STATE_SIZE_LIMIT},
    }
    volumes = (
        f"(variables.logPath != '' && variables.logMounts.size() == 0 ? "
        f"[{render(log_volume)}] : []) + [{render(rules_volume)}] + "
        f"(variables.podLog ? [{render(state_volume)}] : [])"
    )
    app = ("variables.app", "'/spec/containers/' + string(variables.target)")
    socket_env = render([{"name": SOCKET_ENV, "value": Cel("variables.socket")}])
    app_mount = render([{"name": Cel("variables.logVolume"), "mountPath": Cel("variables.logDir")}])
    wire = (
        f"(variables.podLog ? [] : variables.logPath == '' ? "
        f"(variables.app.?env.orValue([]).exists(e, e.name == {render(SOCKET_ENV)}) ? [] : "
        f"{_append(*app, 'env', socket_env)}) : "
        f"(variables.logMounts.size() > 0 ? [] : {_append(*app, 'volumeMounts', app_mount)}))"
    )
    spec = ("object.spec", "'/spec'")
    sidecar = "[variables.sidecar]"
    containers = (
        f"(variables.native ? {_append(*spec, 'initContainers', sidecar)} : "
        f"{_append(*spec, 'containers', sidecar)})"
    )
    # Without annotations nothing is set yet, so every one is wanted (CEL cannot join maps).
    wanted = render(
        {
            STATUS_ANNOTATION: "injected",
            DEFAULT_CONTAINER_ANNOTATION: Cel("variables.targetName"),
            "prometheus.io/scrape": "true",
            "prometheus.io/port": Cel("string(variables.port)"),
            "prometheus.io/path": "/metrics",
        }
    )
    annotate = (
        f"(variables.annotations.size() == 0 ? "
        f"[JSONPatch{{op: 'add', path: '/metadata/annotations', value: {wanted}}}] : "
        f"[{', '.join(_annotation_ops())}].filter(o, o[0]).map(o, "
        f"JSONPatch{{op: 'add', path: '/metadata/annotations/' + o[1], value: o[2]}}))"
    )
    return " +\n".join([_append(*spec, "volumes", volumes), wire, containers, annotate])


def _annotation_ops() -> list[str]:
    """`[wanted?, escaped key, value]` triples, in `patch._annotate`'s order."""
    scrape = "!('prometheus.io/scrape' in variables.annotations)"
    rows = [
        ("true", STATUS_ANNOTATION, "'injected'"),
        (
            f"!({render(DEFAULT_CONTAINER_ANNOTATION)} in variables.annotations)",
            DEFAULT_CONTAINER_ANNOTATION,
            "variables.targetName",
        ),
        (scrape, "prometheus.io/scrape", "'true'"),
        (scrape, "prometheus.io/port", "string(variables.port)"),
        (scrape, "prometheus.io/path", "'/metrics'"),
    ]
    return [f"[dyn({cond}), dyn({render(escape(key))}), dyn({value})]" for cond, key, value in rows]


def build_policy(
    settings: InjectSettings, *, exclude_namespaces: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The MutatingAdmissionPolicy and its binding that inject the sidecar like the webhook.

    Opted-in pods (label :data:`INJECT_LABEL` = `"true"`) are mutated on CREATE, outside the
    system namespaces and `exclude_namespaces`; `reinvocationPolicy: IfNeeded` lets the policy see
    the pod again after other mutations, and `not-injected-yet` makes that a no-op.
    """
    excluded = sorted({*SYSTEM_NAMESPACES, *exclude_namespaces})
    policy = {
        "apiVersion": API_VERSION,
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "failurePolicy": "Ignore",
            "reinvocationPolicy": "IfNeeded",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ],
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "NotIn",
                            "values": excluded,
                        }
                    ]
                },
                "objectSelector": {"matchLabels": {INJECT_LABEL: "true"}},
            },
            "matchConditions": _match_conditions(),
            "variables": [
                *({"name": n, "expression": str(e)} for n, e in _variables(settings)),
                {"name": "sidecar", "expression": _render_container(_sidecar(settings))},
            ],
            "mutations": [
                {
                    "patchType": "JSONPatch",
                    "jsonPatch": {"expression": _patch_expression(settings)},
                }
            ],
        },
    }
    binding = {
        "apiVersion": API_VERSION,
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": POLICY_NAME},
        "spec": {"policyName": POLICY_NAME},
    }
    return [policy, binding]


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (the CEL) as literal blocks, so the manifest stays readable."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_policy(settings: InjectSettings, *, exclude_namespaces: Sequence[str] = ()) -> str:
    """:func:`build_policy` as a two-document YAML manifest, as in `manifests/policy/`."""
    docs = build_policy(settings, exclude_namespaces=exclude_namespaces)
    header = (
        "# Generated by sidecar.inject.policy.dump_policy (sidecar/inject/policy.py) from the\n"
        "# default settings; tests/test_inject_policy.py fails when it is out of date.\n"
    )
    body = yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    return header + body
