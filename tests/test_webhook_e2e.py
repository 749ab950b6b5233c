"""The webhook called by a real kube-apiserver through MutatingWebhookConfigurations.

Each test registers its own configuration (cluster-scoped, so uniquely named, scoped to the test's
namespace with a namespaceSelector, and deleted afterwards). The webhook runs as the real CLI
(`python -m sidecar webhook`) on https://127.0.0.1:<free port>, with a serving certificate from the
control plane's CA; its Prometheus counters tell whether the apiserver called it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from cryptography import x509
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from sidecar.inject import INJECT_LABEL, PREFIX, SIDECAR_NAME, STATUS_ANNOTATION
from tests.controlplane import REPO_ROOT, ControlPlane
from tests.webhook_helpers import free_port, served_serial, write_serving_cert

IMAGE = "example.test/event-sidecar:e2e"
RESTRICTED_APP = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass
class Webhook:
    """A running `event-sidecar webhook` process."""

    port: int
    proc: subprocess.Popen[bytes]
    cert_file: Path
    key_file: Path
    log: Path
    cp: ControlPlane

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/mutate"

    def _get(self, path: str) -> str:
        context = ssl.create_default_context(cadata=self.cp.ca_pem.decode())
        url = f"https://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, context=context, timeout=5) as resp:
            return str(resp.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels`."""
        total = 0.0
        for family in text_string_to_metric_families(self._get("/metrics")):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    total += sample.value
        return total

    def requests(self) -> float:
        return self.metric("event_sidecar_webhook_requests_total")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def run_webhook(cp: ControlPlane, workdir: Path, *args: str) -> Iterator[Webhook]:
    workdir.mkdir(parents=True, exist_ok=True)
    cert_file, key_file, log = workdir / "tls.crt", workdir / "tls.key", workdir / "webhook.log"
    write_serving_cert(cp.ca, cert_file, key_file)
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sidecar",
                "webhook",
                f"--listen=127.0.0.1:{port}",
                f"--tls-cert-file={cert_file}",
                f"--tls-private-key-file={key_file}",
                f"--image={IMAGE}",
                *args,
            ],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    hook = Webhook(port, proc, cert_file, key_file, log, cp)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"webhook exited:\n{log.read_text()}"
            try:
                hook._get("/readyz")
                break
            except OSError:
                assert time.monotonic() < deadline, f"webhook not ready:\n{log.read_text()}"
                time.sleep(0.1)
        yield hook
    finally:
        hook.stop()


@pytest.fixture(scope="module")
def webhook(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Webhook]:
    """One webhook process shared by the tests that do not stop or rotate it."""
    with run_webhook(control_plane, tmp_path_factory.mktemp("webhook")) as hook:
        yield hook


@contextlib.contextmanager
def registered(
    api: client.ApiClient,
    name: str,
    url: str,
    ca_pem: bytes,
    namespace: str,
    *,
    failure_policy: str = "Ignore",
    object_selector: dict[str, Any] | None = None,
) -> Iterator[None]:
    """A MutatingWebhookConfiguration for pods CREATEd in `namespace`, deleted on exit."""
    admission = client.AdmissionregistrationV1Api(api)
    body: Any = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "inject.event-sidecar.kube-event-sidecar.io",
                "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_pem).decode()},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "objectSelector": object_selector
                if object_selector is not None
                else {"matchLabels": {INJECT_LABEL: "true"}},
                "failurePolicy": failure_policy,
                "reinvocationPolicy": "IfNeeded",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5,
            }
        ],
    }
    admission.create_mutating_webhook_configuration(body)
    try:
        yield
    finally:
        admission.delete_mutating_webhook_configuration(name)


def pod_body(name: str, *, opted_in: bool = True, **annotations: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if opted_in:
        metadata["labels"] = {INJECT_LABEL: "true"}
    if annotations:
        metadata["annotations"] = {PREFIX + k.replace("_", "-"): v for k, v in annotations.items()}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": [
                {"name": "controller", "image": "ctl:1", "securityContext": RESTRICTED_APP}
            ]
        },
    }


def create_pod(
    api: client.ApiClient, namespace: str, body: dict[str, Any], *, dry_run: bool = False
) -> dict[str, Any]:
    """Create a pod and return the stored object as raw JSON (typed models can drop fields)."""
    core = client.CoreV1Api(api)
    kwargs: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
    raw: Any = body  # the client sends dicts as they are
    resp: Any = core.create_namespaced_pod(namespace, raw, _preload_content=False, **kwargs)
    created: dict[str, Any] = json.loads(resp.data)
    return created


def sidecars(pod: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (key, c)
        for key in ("containers", "initContainers")
        for c in pod["spec"].get(key) or ()
        if c["name"] == SIDECAR_NAME
    ]


def wait_until_injecting(api: client.ApiClient, namespace: str, timeout: float = 30) -> None:
    """Webhook configurations reach the apiserver's admission chain through an informer: probe
    with server-side dry-run pods (no side effects) until one comes back injected."""
    deadline = time.monotonic() + timeout
    while not sidecars(create_pod(api, namespace, pod_body("probe"), dry_run=True)):
        assert time.monotonic() < deadline, "the webhook configuration never took effect"
        time.sleep(0.2)


@contextlib.contextmanager
def active(
    api: client.ApiClient, cp: ControlPlane, hook: Webhook, namespace: str, **kwargs: Any
) -> Iterator[None]:
    with registered(api, f"event-sidecar-{namespace}", hook.url, cp.ca_pem, namespace, **kwargs):
        wait_until_injecting(api, namespace)
        yield


def test_opted_in_pods_are_stored_injected_and_others_never_reach_the_webhook(
    control_plane: ControlPlane, kube_api_client: client.ApiClient, namespace: str, webhook: Webhook
) -> None:
    with active(kube_api_client, control_plane, webhook, namespace):
        before = webhook.requests()
        bare = pod_body("native")  # no token volume either: the webhook sees no `volumes`
        bare["spec"]["automountServiceAccountToken"] = False
        native = create_pod(kube_api_client, namespace, bare)
        [(where, sidecar)] = sidecars(native)
        assert where == "initContainers"
        assert sidecar["restartPolicy"] == "Always"
        assert sidecar["image"] == IMAGE
        assert native["metadata"]["annotations"][STATUS_ANNOTATION] == "injected"
        # The default source, the app's own log through the API: rules, and the state emptyDir.
        assert [v["name"] for v in native["spec"]["volumes"]] == [
            "event-sidecar-rules",
            "event-sidecar-state",
        ], "a pod with no volumes gets the whole array"

        classic = create_pod(
            kube_api_client, namespace, pod_body("classic", native_sidecar="false")
        )
        [(where, sidecar)] = sidecars(classic)
        assert where == "containers" and "restartPolicy" not in sidecar
        # Called once per pod, plus once more each when in-tree admission (the ServiceAccount
        # plugin mounting its token into our container) changed the pod after us: IfNeeded.
        called = webhook.requests()
        assert before + 2 <= called <= before + 4

        plain = create_pod(kube_api_client, namespace, pod_body("plain", opted_in=False))
        assert sidecars(plain) == []
        assert "annotations" not in plain["metadata"]
        assert not any(v["name"].startswith("event-sidecar") for v in plain["spec"]["volumes"])
        assert webhook.requests() == called, "the objectSelector must keep the call away"

        invalid = create_pod(kube_api_client, namespace, pod_body("bad", log_path="relative"))
        assert sidecars(invalid) == []
        assert (
            webhook.metric("event_sidecar_inject_skipped_total", reason="invalid_annotations") >= 1
        )


def test_an_injected_pod_is_admitted_under_restricted_pod_security(
    control_plane: ControlPlane, kube_api_client: client.ApiClient, namespace: str, webhook: Webhook
) -> None:
    core = client.CoreV1Api(kube_api_client)
    core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    with active(kube_api_client, control_plane, webhook, namespace):
        for native in ("true", "false"):
            pod = create_pod(
                kube_api_client, namespace, pod_body(f"pod-{native}", native_sidecar=native)
            )
            assert len(sidecars(pod)) == 1
        # Pod Security is really enforced here: a non-compliant pod is refused.
        privileged = pod_body("privileged", opted_in=False)
        privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True}
        with pytest.raises(ApiException) as refused:
            create_pod(kube_api_client, namespace, privileged)
        assert refused.value.status == 403 and "restricted" in str(refused.value.body)


@contextlib.contextmanager
def labelling_webhook(cp: ControlPlane, workdir: Path) -> Iterator[tuple[str, list[int]]]:
    """A second mutating webhook (aiohttp, own thread) that adds a label to every pod."""
    cert_file, key_file = workdir / "second.crt", workdir / "second.key"
    write_serving_cert(cp.ca, cert_file, key_file)
    port, calls = free_port(), [0]
    patch = [{"op": "add", "path": "/metadata/labels/second-webhook", "value": "was-here"}]

    async def mutate(request: web.Request) -> web.Response:
        calls[0] += 1
        review = await request.json()
        response = {
            "uid": review["request"]["uid"],
            "allowed": True,
            "patchType": "JSONPatch",
            "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
        }
        return web.json_response({**review, "response": response})

    loop = asyncio.new_event_loop()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    app = web.Application()
    app.router.add_post("/mutate", mutate)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    assert runner.server is not None
    handlers: list[asyncio.BaseProtocol] = []

    def accept() -> asyncio.BaseProtocol:
        assert runner.server is not None
        handlers.append(runner.server())
        return handlers[-1]

    server = loop.run_until_complete(loop.create_server(accept, "127.0.0.1", port, ssl=context))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{port}/mutate", calls
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        server.close()
        # The apiserver keeps its connections alive, and closing a TLS connection waits for the
        # peer's close_notify: abort them instead, so that each socket is closed (on the next
        # loop turn) before the loop is, not left to the garbage collector.
        for handler in handlers:
            transport = getattr(handler, "transport", None)
            if transport is not None:
                transport.abort()
        loop.run_until_complete(runner.cleanup())
        loop.run_until_complete(asyncio.sleep(0.1))
        loop.close()


def test_reinvocation_after_a_second_webhook_does_not_double_the_sidecar(
    control_plane: ControlPlane,
    kube_api_client: client.ApiClient,
    namespace: str,
    webhook: Webhook,
    tmp_path: Path,
) -> None:
    # Configurations are called in name order: ours ("a-...") first, then the labeller ("b-..."),
    # whose change makes the apiserver call ours again (reinvocationPolicy IfNeeded).
    with (
        labelling_webhook(control_plane, tmp_path) as (second_url, calls),
        registered(
            kube_api_client,
            f"a-event-sidecar-{namespace}",
            webhook.url,
            control_plane.ca_pem,
            namespace,
        ),
        registered(
            kube_api_client, f"b-labeller-{namespace}", second_url, control_plane.ca_pem, namespace
        ),
    ):
        wait_until_injecting(kube_api_client, namespace)
        deadline = time.monotonic() + 30
        while calls[0] == 0:  # the labeller's configuration may arrive after ours
            create_pod(kube_api_client, namespace, pod_body("probe"), dry_run=True)
            assert time.monotonic() < deadline, "the second webhook was never called"
            time.sleep(0.2)
        before = webhook.requests()
        skipped = webhook.metric("event_sidecar_inject_skipped_total", reason="already_injected")
        pod = create_pod(kube_api_client, namespace, pod_body("twice"))
        assert pod["metadata"]["labels"]["second-webhook"] == "was-here"
        assert len(sidecars(pod)) == 1
        assert webhook.requests() >= before + 2, "ours must have been reinvoked"
        assert (
            webhook.metric("event_sidecar_inject_skipped_total", reason="already_injected")
            >= skipped + 1
        )


def test_with_the_webhook_down_ignore_creates_the_pod_uninjected(
    control_plane: ControlPlane, kube_api_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    with (
        run_webhook(control_plane, tmp_path) as hook,
        active(kube_api_client, control_plane, hook, namespace),
    ):
        hook.stop()
        pod = create_pod(kube_api_client, namespace, pod_body("uninjected"))
        assert sidecars(pod) == []
        assert pod["metadata"]["labels"][INJECT_LABEL] == "true"


def test_rotating_the_certificate_during_pod_creation_fails_no_call(
    control_plane: ControlPlane, kube_api_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    """With failurePolicy Fail, any failed call would reject a pod; none may."""
    with (
        run_webhook(control_plane, tmp_path, "--cert-check-interval=0.2") as hook,
        active(kube_api_client, control_plane, hook, namespace, failure_policy="Fail"),
    ):
        first = served_serial(hook.port, control_plane.ca)
        stop = threading.Event()
        serials: list[int] = []

        def rotate() -> None:
            while not stop.wait(0.7):
                serials.append(write_serving_cert(control_plane.ca, hook.cert_file, hook.key_file))

        rotator = threading.Thread(target=rotate)
        rotator.start()
        try:
            pods: list[dict[str, Any]] = []
            deadline = time.monotonic() + 60
            while len(serials) < 4 or len(pods) < 40:  # a stream of pods across 4 rotations
                pods.append(create_pod(kube_api_client, namespace, pod_body(f"p-{len(pods)}")))
                assert time.monotonic() < deadline
                time.sleep(0.02)
        finally:
            stop.set()
            rotator.join()
        assert all(len(sidecars(p)) == 1 for p in pods)
        time.sleep(0.5)
        assert served_serial(hook.port, control_plane.ca) == serials[-1] != first
        assert hook.metric("event_sidecar_webhook_certificate_reloads_total", result="success") >= 3
        assert hook.metric("event_sidecar_webhook_errors_total") == 0


# -- manifests/ ---------------------------------------------------------------------------------

MANIFESTS = REPO_ROOT / "manifests"
#: Just enough of the CRDs that manifests/ uses for the apiserver to accept their objects: the
#: real schemas live with cert-manager and the Prometheus Operator, so fields are not validated.
MINIMAL_CRDS = [
    ("monitoring.coreos.com", "PodMonitor", "podmonitors"),
    ("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
    ("monitoring.coreos.com", "PrometheusRule", "prometheusrules"),
    ("cert-manager.io", "Certificate", "certificates"),
    ("cert-manager.io", "Issuer", "issuers"),
]


def kustomization_roots() -> list[Path]:
    """Every folder under manifests/ that kustomize can build (components are built via those)."""
    roots = []
    for path in sorted(MANIFESTS.rglob("kustomization.yaml")):
        if yaml.safe_load(path.read_text()).get("kind", "Kustomization") == "Kustomization":
            roots.append(path.parent)
    return roots


def install_minimal_crds(cp: ControlPlane) -> None:
    for group, kind, plural in MINIMAL_CRDS:
        install_crd(cp, group, kind, plural)


def install_crd(cp: ControlPlane, group: str, kind: str, plural: str) -> None:
    """A namespaced v1 CRD that keeps whatever fields its objects have, once Established."""
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    cp.kubectl("apply", "-f", "-", input=json.dumps(crd))
    cp.kubectl("wait", "--for=condition=Established", f"crd/{plural}.{group}")


def ensure_namespaces(cp: ControlPlane, objects: list[dict[str, Any]]) -> None:
    """Server-side dry-run does not create Namespaces, so objects in them would be refused."""
    names = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    names |= {o["metadata"]["namespace"] for o in objects if o["metadata"].get("namespace")}
    for name in sorted(names):
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        cp.kubectl("apply", "-f", "-", input=json.dumps(ns))


def test_every_manifest_is_accepted_by_the_apiserver(control_plane: ControlPlane) -> None:
    """`kubectl apply --dry-run=server -k` for every kustomization (CRD-based objects against
    minimal CRDs), and every YAML file under manifests/ is part of one."""
    install_minimal_crds(control_plane)
    roots = kustomization_roots()
    assert {r.relative_to(MANIFESTS).as_posix() for r in roots} >= {
        ".",
        "webhook",
        "webhook-cert-manager",
        "example",
        "sidecar-rbac",
    }
    kinds: set[str] = set()
    for root in roots:
        rendered = control_plane.kubectl("kustomize", str(root)).stdout
        objects = [o for o in yaml.safe_load_all(rendered) if o]
        kinds |= {o["kind"] for o in objects}
        ensure_namespaces(control_plane, objects)
        result = control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered)
        assert result.stdout.count("(server dry run)") == len(objects), result.stdout
    assert kinds >= {
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "MutatingWebhookConfiguration",
        "PodMonitor",
        "Certificate",
        "Issuer",
        "ConfigMap",
    }
    listed = {
        (path.parent / name).resolve()
        for path in MANIFESTS.rglob("kustomization.yaml")
        for key in ("resources", "components")
        for name in yaml.safe_load(path.read_text()).get(key) or ()
    } | {
        (path.parent / name).resolve()
        for path in MANIFESTS.rglob("kustomization.yaml")
        for gen in yaml.safe_load(path.read_text()).get("configMapGenerator") or ()
        for name in gen.get("files") or ()
    }
    for path in MANIFESTS.rglob("*.yaml"):
        assert path.name == "kustomization.yaml" or path.resolve() in listed, f"{path} is unused"


def test_the_example_rules_are_the_examples_rules() -> None:
    copy = MANIFESTS / "example" / "rules.yaml"
    assert copy.read_text() == (REPO_ROOT / "examples" / "quota-autoscaler.rules.yaml").read_text()


def test_offline_injection_of_the_example_is_accepted_by_the_apiserver(
    control_plane: ControlPlane, namespace: str
) -> None:
    deployment = (MANIFESTS / "example" / "deployment.yaml").read_text()
    injected = subprocess.run(
        [sys.executable, "-m", "sidecar", "inject", "-f", "-"],
        input=deployment,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    ).stdout
    [obj] = yaml.safe_load_all(injected)
    assert [c["name"] for c in obj["spec"]["template"]["spec"]["initContainers"]] == [SIDECAR_NAME]
    result = control_plane.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=injected
    )
    assert "created (server dry run)" in result.stdout


def test_the_self_signed_bootstrap_script_stores_tls_and_the_ca_bundle(
    control_plane: ControlPlane,
    kube_api_client: client.ApiClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    name = f"bootstrap-{namespace}"
    config = yaml.safe_load(
        (MANIFESTS / "webhook" / "mutatingwebhookconfiguration.yaml").read_text()
    )
    config["metadata"]["name"] = name
    [hook] = config["webhooks"]
    hook["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    hook["objectSelector"] = {"matchLabels": {"no-pod-has-this-label": "true"}}
    hook["clientConfig"]["service"]["namespace"] = namespace
    admission = client.AdmissionregistrationV1Api(kube_api_client)
    admission.create_mutating_webhook_configuration(config)
    try:
        kubectl = f"{control_plane.bin_dir / 'kubectl'} --kubeconfig={control_plane.kubeconfig}"
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),  # kubectl's cache goes there, not into the repository
            "NAMESPACE": namespace,
            "WEBHOOK_CONFIG": name,
            "KUBECTL": kubectl,
        }
        for _ in range(2):  # re-running rotates
            run = subprocess.run(
                ["bash", str(MANIFESTS / "webhook" / "bootstrap-tls.sh")],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert run.returncode == 0, run.stderr
        secret = client.CoreV1Api(kube_api_client).read_namespaced_secret(
            "event-sidecar-webhook-tls", namespace
        )
        assert secret.type == "kubernetes.io/tls"
        assert secret.data is not None
        data = {k: base64.b64decode(v) for k, v in secret.data.items()}
        stored = admission.read_mutating_webhook_configuration(name)
        assert stored.webhooks is not None
        assert (
            stored.webhooks[0].client_config.ca_bundle == base64.b64encode(data["ca.crt"]).decode()
        )
        context = ssl.create_default_context(cadata=data["ca.crt"].decode())
        assert context.cert_store_stats()["x509_ca"] == 1
        leaf = x509.load_pem_x509_certificate(data["tls.crt"])
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert f"event-sidecar-webhook.{namespace}.svc" in sans.get_values_for_type(x509.DNSName)
        leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(data["ca.crt"]))
    finally:
        admission.delete_mutating_webhook_configuration(name)
