"""The injection patch: property tests over pod shapes (applied with `jsonpatch`), and examples."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.inject import (
    PREFIX,
    SIDECAR_NAME,
    STATUS_ANNOTATION,
    InjectionError,
    InjectSettings,
    InvalidAnnotations,
    build_patch,
    is_injected,
)
from sidecar.inject.patch import LOG_VOLUME, SOCKET_ENV, escape

# The file source (what most of these tests are about); the default, the pod log, is tested below.
SETTINGS = InjectSettings(image="example.test/event-sidecar:1", log_path="/var/log/app/*.log")
RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}

names = st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z0-9]", fullmatch=True)
volume_names = st.one_of(names, st.sampled_from([LOG_VOLUME, "event-sidecar-rules"]))
annotation_keys = st.one_of(
    st.sampled_from(["a/b", "x~y", "~/~1", "prometheus.io/scrape", "kubectl.kubernetes.io/x"]),
    st.from_regex(r"[a-z]{1,5}(\.[a-z]{1,5})?/[a-z~]{1,5}", fullmatch=True),
)
maybe_empty_list: st.SearchStrategy[Any] = st.sampled_from([None, [], "absent"])


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    """Pods of every shape the apiserver may hand over: missing or empty arrays, name clashes
    with our volumes and ports, odd annotation keys, several containers, init containers."""
    container_names = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    init_names = draw(
        st.lists(names.filter(lambda n: n not in container_names), max_size=2, unique=True)
    )
    vols = draw(st.lists(volume_names, max_size=3, unique=True))

    def container(name: str) -> dict[str, Any]:
        c: dict[str, Any] = {"name": name, "image": "app:1"}
        if len(vols) > 0 and draw(st.booleans()):
            vol = draw(st.sampled_from(vols))
            path = draw(st.sampled_from(["/var/log/app", "/data", "/var/log/other"]))
            c["volumeMounts"] = [{"name": vol, "mountPath": path}]
        env = draw(maybe_empty_list | st.just([{"name": "A", "value": "1"}]))
        if env != "absent":
            c["env"] = env
        ports = draw(st.lists(st.integers(9089, 9092), max_size=2, unique=True))
        if ports:
            c["ports"] = [{"containerPort": p} for p in ports]
        return c

    spec: dict[str, Any] = {"containers": [container(n) for n in container_names]}
    if init_names:
        spec["initContainers"] = [container(n) for n in init_names]
    else:
        init = draw(maybe_empty_list)
        if init != "absent":
            spec["initContainers"] = init
    if vols:
        spec["volumes"] = [{"name": v, "emptyDir": {}} for v in vols]
    else:
        empty = draw(maybe_empty_list)
        if empty != "absent":
            spec["volumes"] = empty
    pod: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "spec": spec}
    shape = draw(st.sampled_from(["absent", "empty", "no-annotations", "annotations"]))
    if shape != "absent":
        pod["metadata"] = {} if shape == "empty" else {"name": "p", "labels": {"a": "b"}}
    if shape == "annotations":
        pod["metadata"]["annotations"] = draw(
            st.dictionaries(annotation_keys, st.text(max_size=5), max_size=3)
        )
        ours = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    PREFIX + "container": st.sampled_from(container_names),
                    PREFIX + "native-sidecar": st.sampled_from(["auto", "true", "false"]),
                    PREFIX + "log-level": st.sampled_from(["debug", "error"]),
                    PREFIX + "log-path": st.sampled_from(["/var/log/app/*.log", "/logs/x.log"]),
                },
            )
        )
        pod["metadata"]["annotations"].update(ours)
        if draw(st.booleans()) and PREFIX + "log-path" not in ours:
            pod["metadata"]["annotations"][PREFIX + "socket"] = "tcp://127.0.0.1:5170"
    return pod


def inject(pod: dict[str, Any], settings: InjectSettings = SETTINGS) -> dict[str, Any]:
    patch = build_patch(pod, settings)
    result: dict[str, Any] = jsonpatch.apply_patch(pod, patch)
    return result


def sidecars(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod["spec"]
    return [
        c
        for key in ("containers", "initContainers")
        for c in spec.get(key) or ()
        if c["name"] == SIDECAR_NAME
    ]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(pods(), st.booleans())
def test_patch_applies_to_every_pod_shape_and_is_idempotent(
    pod: dict[str, Any], native: bool
) -> None:
    original = copy.deepcopy(pod)
    settings_ = InjectSettings(image="img:1", native_sidecar=native)
    result = inject(pod, settings_)
    assert pod == original, "the input must not be mutated"
    assert build_patch(result, settings_) == [], "a second injection must change nothing"

    [sidecar] = sidecars(result)
    assert sidecar["securityContext"] == RESTRICTED
    wanted_native = {"true": True, "false": False}.get(
        ((pod.get("metadata") or {}).get("annotations") or {}).get(PREFIX + "native-sidecar", ""),
        native,
    )
    assert (sidecar.get("restartPolicy") == "Always") is wanted_native
    assert sidecar in (result["spec"].get("initContainers") or []) if wanted_native else True

    spec = result["spec"]
    volume_list = [v["name"] for v in spec["volumes"]]
    assert len(volume_list) == len(set(volume_list)), "volume names must stay unique"
    for c in [*spec["containers"], *(spec.get("initContainers") or [])]:
        for m in c.get("volumeMounts") or ():
            assert m["name"] in volume_list
    app_ports = {
        p["containerPort"]
        for c in [*original["spec"]["containers"], *(original["spec"].get("initContainers") or [])]
        for p in c.get("ports") or ()
    }
    [metrics_port] = sidecar["ports"]
    assert metrics_port["containerPort"] not in app_ports, "the metrics port must not clash"

    # Everything the pod had is still there, arrays only appended to.
    for before, after in zip(original["spec"]["containers"], spec["containers"], strict=False):
        for key, value in before.items():
            if isinstance(value, list) or value is None:
                assert after[key] is None or after[key][: len(value or ())] == (value or [])
            else:
                assert after[key] == value
    annotations = result["metadata"]["annotations"]
    for key, value in ((original.get("metadata") or {}).get("annotations") or {}).items():
        assert annotations[key] == value
    assert annotations[STATUS_ANNOTATION] == "injected"
    app_names = {c["name"] for c in spec["containers"]} - {SIDECAR_NAME}
    assert annotations["kubectl.kubernetes.io/default-container"] in app_names


@given(pods())
def test_patch_only_adds(pod: dict[str, Any]) -> None:
    """`add` of whole arrays only where there is none: never `/-` on a missing array."""
    for op in build_patch(pod, SETTINGS):
        assert op["op"] == "add"
        if op["path"].endswith("/-"):
            parent = jsonpatch.JsonPointer(op["path"][:-2]).resolve(pod)
            assert isinstance(parent, list) and parent


def minimal_pod(**annotations: str) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "ctl", "namespace": "ns"},
        "spec": {"containers": [{"name": "controller", "image": "ctl:1"}]},
    }
    if annotations:
        pod["metadata"]["annotations"] = {
            PREFIX + k.replace("_", "-"): v for k, v in annotations.items()
        }
    return pod


def test_a_pod_without_volumes_gets_whole_arrays() -> None:
    patch = build_patch(minimal_pod(), SETTINGS)
    paths = [op["path"] for op in patch]
    assert "/spec/volumes" in paths
    assert "/spec/initContainers" in paths
    assert "/spec/containers/0/volumeMounts" in paths
    assert "/metadata/annotations" in paths
    assert not any(p.endswith("/-") for p in paths)


def test_the_sidecar_reads_the_apps_log_directory_and_its_rules() -> None:
    pod = inject(minimal_pod(log_path="/var/log/ctl/*.log", rules_configmap="ctl-rules"))
    [sidecar] = sidecars(pod)
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["image"] == SETTINGS.image
    assert sidecar["command"] == ["event-sidecar"]
    assert sidecar["args"] == [
        "run",
        "--rules",
        "/etc/event-sidecar/rules.yaml",
        "--file",
        "/var/log/ctl/*.log",
        "--listen",
        "0.0.0.0:9090",
        "--log-level",
        "info",
    ]
    assert {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in sidecar["env"]} == {
        "POD_NAME": "metadata.name",
        "POD_NAMESPACE": "metadata.namespace",
    }
    assert sidecar["ports"] == [
        {"name": "sidecar-metrics", "containerPort": 9090, "protocol": "TCP"}
    ]
    assert sidecar["resources"] == {
        "requests": {"cpu": "10m", "memory": "96Mi"},
        "limits": {"memory": "192Mi"},
    }
    app = pod["spec"]["containers"][0]
    assert app["volumeMounts"] == [{"name": "event-sidecar-logs", "mountPath": "/var/log/ctl"}]
    assert {"name": "event-sidecar-logs", "mountPath": "/var/log/ctl"} in sidecar["volumeMounts"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["event-sidecar-rules"]["configMap"] == {"name": "ctl-rules"}
    assert "emptyDir" in volumes["event-sidecar-logs"]
    assert pod["metadata"]["annotations"] == {
        PREFIX + "log-path": "/var/log/ctl/*.log",
        PREFIX + "rules-configmap": "ctl-rules",
        STATUS_ANNOTATION: "injected",
        "kubectl.kubernetes.io/default-container": "controller",
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
        "prometheus.io/path": "/metrics",
    }


def test_the_sidecar_has_a_readiness_probe_that_asks_what_lasts() -> None:
    """A sidecar that cannot read its source for good shows not ready in `kubectl get pods`;
    an apiserver outage or a reconnecting stream does not (see `patch.probes`)."""
    for pod in (minimal_pod(), minimal_pod(log_path="/var/log/ctl/*.log")):
        [sidecar] = sidecars(inject(pod))
        assert sidecar["readinessProbe"] == {
            "httpGet": {"path": "/readyz?exclude=api&exclude=sources", "port": "sidecar-metrics"},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        }
        assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_annotation_keys_are_escaped_as_json_pointer_tokens() -> None:
    pod = minimal_pod(image="reg.test/sc:2")
    patch = build_patch(pod, SETTINGS)
    assert {
        "op": "add",
        "path": "/metadata/annotations/prometheus.io~1scrape",
        "value": "true",
    } in patch
    assert escape("a~b/c") == "a~0b~1c"
    assert sidecars(inject(pod))[0]["image"] == "reg.test/sc:2"


def test_an_existing_log_mount_is_shared_rather_than_shadowed() -> None:
    pod = minimal_pod(log_path="/logs/*.log")
    pod["spec"]["volumes"] = [{"name": "logs", "emptyDir": {}}]
    pod["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "logs", "mountPath": "/logs", "subPath": "ctl"}
    ]
    result = inject(pod)
    assert [v["name"] for v in result["spec"]["volumes"]] == ["logs", "event-sidecar-rules"]
    assert (
        result["spec"]["containers"][0]["volumeMounts"]
        == pod["spec"]["containers"][0]["volumeMounts"]
    )
    [sidecar] = sidecars(result)
    assert sidecar["volumeMounts"][0] == {
        "name": "logs",
        "mountPath": "/logs",
        "subPath": "ctl",
    }


def test_socket_mode_puts_the_address_in_the_apps_environment() -> None:
    result = inject(minimal_pod(socket="tcp://127.0.0.1:5170", native_sidecar="false"))
    app, sidecar = result["spec"]["containers"]
    assert sidecar["name"] == SIDECAR_NAME and "restartPolicy" not in sidecar
    assert app["env"] == [{"name": SOCKET_ENV, "value": "tcp://127.0.0.1:5170"}]
    assert sidecar["args"][3:5] == ["--tcp", "127.0.0.1:5170"]
    assert "volumes" not in result["spec"] or all(
        "emptyDir" not in v for v in result["spec"]["volumes"]
    )


def test_the_target_container_and_resources_come_from_annotations() -> None:
    pod = minimal_pod(container="ctl", resources='{"limits": {"memory": "100Mi"}}')
    pod["spec"]["containers"].insert(0, {"name": "proxy", "image": "proxy:1"})
    pod["spec"]["containers"][1]["name"] = "ctl"
    result = inject(pod, InjectSettings(native_sidecar=False))
    assert result["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"] == "ctl"
    # The default source reads the target's own log through the API: no container changes.
    assert result["spec"]["containers"][:2] == pod["spec"]["containers"]
    args = sidecars(result)[0]["args"]
    assert args[args.index("--pod-log") + 1] == "ctl"
    assert sidecars(result)[0]["resources"] == {"limits": {"memory": "100Mi"}}


def test_by_default_the_sidecar_follows_the_target_log_and_checkpoints_on_an_emptydir() -> None:
    pod = minimal_pod()
    result = inject(pod, InjectSettings())
    assert result["spec"]["containers"] == pod["spec"]["containers"]
    [sidecar] = sidecars(result)
    args = sidecar["args"]
    assert args[args.index("--pod-log") + 1] == "controller"
    assert "--file" not in args and "--tcp" not in args
    checkpoint = args[args.index("--checkpoint") + 1]
    [state] = [v for v in result["spec"]["volumes"] if "emptyDir" in v]
    [mount] = [m for m in sidecar["volumeMounts"] if m["name"] == state["name"]]
    assert checkpoint.startswith(mount["mountPath"] + "/")
    assert not mount.get("readOnly")
    # POD_NAME and POD_NAMESPACE name the pod whose log it reads.
    assert {e["name"] for e in sidecar["env"]} >= {"POD_NAME", "POD_NAMESPACE"}


def test_existing_default_container_and_scrape_annotations_are_kept() -> None:
    pod = minimal_pod()
    pod["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/default-container": "controller",
        "prometheus.io/scrape": "false",
    }
    annotations = inject(pod)["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "false"
    assert "prometheus.io/port" not in annotations


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({"log_path": "var/log/*.log"}, "absolute"),
        ({"log_path": "/var/log/*/x.log"}, "glob"),
        ({"log_path": "/x.log"}, "other than /"),
        ({"socket": "tcp://10.0.0.1:80"}, "loopback"),
        ({"socket": "tcp://127.0.0.1:5", "log_path": "/a/b.log"}, "mutually exclusive"),
        ({"native_sidecar": "yes"}, "native-sidecar"),
        ({"log_level": "loud"}, "log-level"),
        ({"resources": "{"}, "resources"),
        ({"resources": '{"requests": {"cpu": "a lot"}}'}, "requests.cpu"),
        ({"resources": '{"requests": {"gpu": "1"}}'}, "requests.gpu"),
        ({"rules_configmap": "Bad_Name"}, "rules-configmap"),
        ({"image": "has space"}, "image"),
        ({"colour": "blue"}, "unknown annotation"),
    ],
)
def test_invalid_annotations_are_refused_with_the_key_named(
    annotations: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidAnnotations) as caught:
        build_patch(minimal_pod(**annotations), SETTINGS)
    assert message in str(caught.value)


def test_a_missing_target_container_is_refused() -> None:
    with pytest.raises(InjectionError, match="'nope' not found"):
        build_patch(minimal_pod(container="nope"), SETTINGS)


def test_logs_cannot_share_the_rules_mount() -> None:
    with pytest.raises(InjectionError, match="where the rules go"):
        build_patch(minimal_pod(log_path="/etc/event-sidecar/*.log"), SETTINGS)


def test_a_pod_with_the_sidecar_in_either_list_is_left_alone() -> None:
    classic = minimal_pod()
    classic["spec"]["containers"].append({"name": SIDECAR_NAME, "image": "x"})
    native = minimal_pod()
    native["spec"]["initContainers"] = [{"name": SIDECAR_NAME, "restartPolicy": "Always"}]
    for pod in (classic, native):
        assert is_injected(pod)
        assert build_patch(pod, SETTINGS) == []
