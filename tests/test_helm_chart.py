"""The Helm chart (charts/kube-event-sidecar) with the real Helm, built from tools/helm.

`helm lint` and `helm template` for every values file under the chart's ci/; the chart renders
what the kustomize manifests render for the same settings (webhook configuration, sidecar defaults,
RBAC, monitoring, policy); `helm install --dry-run=server` and a real install and upgrade against
the test kube-apiserver. Helm is required: a missing Go toolchain or a failed build is an error.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sidecar.cli import build_parser
from sidecar.cli.inject_command import _settings
from sidecar.inject import InjectSettings
from tests.controlplane import REPO_ROOT, ControlPlane, build_control_plane
from tests.sidecar_rbac import assert_sidecar_grants
from tests.test_webhook_e2e import ensure_namespaces, install_minimal_crds

CHART = REPO_ROOT / "charts" / "kube-event-sidecar"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
MANIFESTS = REPO_ROOT / "manifests"
BUILD_HELM = REPO_ROOT / "tools" / "build-helm.sh"
RELEASE, NAMESPACE = "event-sidecar", "event-sidecar-system"
Objects = list[dict[str, Any]]


class Helm:
    """The helm binary with its caches and configuration in a private folder."""

    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if check:
            assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def template(self, *args: str, namespace: str = NAMESPACE) -> Objects:
        out = self.run("template", RELEASE, str(CHART), "-n", namespace, *args).stdout
        return [o for o in yaml.safe_load_all(out) if o]


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """Helm built (or found in the cache) by tools/build-helm.sh, which prints its path."""
    proc = subprocess.run(
        ["bash", str(BUILD_HELM)],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    assert proc.returncode == 0, f"{BUILD_HELM} failed (helm is required):\n{proc.stderr}"
    binary = Path(proc.stdout.strip().splitlines()[-1])
    assert os.access(binary, os.X_OK), f"{BUILD_HELM} printed {binary}, not an executable"
    return Helm(binary, tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="module")
def kubectl() -> Path:
    """kubectl (for `kubectl kustomize`) from the control plane's cached build."""
    return build_control_plane() / "kubectl"


def kustomize(kubectl: Path, root: Path) -> Objects:
    out = subprocess.run(
        [str(kubectl), "kustomize", str(root)], capture_output=True, text=True, check=True
    ).stdout
    return [o for o in yaml.safe_load_all(out) if o]


def overlay(tmp_path: Path, base: str, patch: str) -> Path:
    """A kustomization over manifests/<base> with one JSON patch to the webhook configuration."""
    relative = os.path.relpath(MANIFESTS / base, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [relative],
                "patches": [{"target": {"kind": "MutatingWebhookConfiguration"}, "patch": patch}],
            }
        )
    )
    return tmp_path


def only(objects: Objects, kind: str, name: str | None = None) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    return found


def injector_settings(deployment: dict[str, Any]) -> InjectSettings:
    """What the webhook Deployment's command line makes the webhook inject."""
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return _settings(build_parser().parse_args(container["args"]))


# -- lint and template --------------------------------------------------------------------------


def test_there_are_several_ci_values_files() -> None:
    assert {p.stem for p in CI_VALUES} >= {
        "default-values",
        "cert-manager-values",
        "secret-values",
        "policy-values",
    }


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_helm_lint_passes_strictly(helm: Helm, values: Path) -> None:
    result = helm.run("lint", str(CHART), "--strict", "-f", str(values))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_template_renders_restricted_pods_with_the_values(helm: Helm, values: Path) -> None:
    objects = helm.template("-f", str(values))
    kinds = {o["kind"] for o in objects}
    settings = yaml.safe_load(values.read_text()) or {}
    if settings.get("policy", {}).get("enabled"):
        assert {"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"} <= kinds
        assert not kinds & {"Deployment", "MutatingWebhookConfiguration", "Secret", "Service"}
        return
    deployment = only(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    replicas = settings.get("webhook", {}).get("replicas", 2)
    assert deployment["spec"]["replicas"] == replicas
    assert {"Service", "PodDisruptionBudget", "MutatingWebhookConfiguration"} <= kinds


def test_values_outside_the_schema_are_refused(helm: Helm) -> None:
    for bad in (
        "webhook.failurePolicy=Never",
        "sidecar.logPath=relative/*.log",
        "webhook.tls.source=openssl",
        "sidecar.metricsPort=70000",
        "no.such=value",
    ):
        result = helm.run("template", RELEASE, str(CHART), "--set", bad, check=False)
        assert result.returncode != 0 and "schema" in result.stderr, bad


def test_the_chart_defaults_inject_what_the_kustomize_webhook_injects(
    helm: Helm, kubectl: Path
) -> None:
    ours, theirs = helm.template(), kustomize(kubectl, MANIFESTS / "webhook")
    chart = injector_settings(only(ours, "Deployment"))
    assert chart == InjectSettings()
    assert injector_settings(only(theirs, "Deployment")) == chart
    for kind in ("Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"):
        assert only(ours, kind)["metadata"]["name"] == only(theirs, kind)["metadata"]["name"]
    assert (
        only(ours, "PodDisruptionBudget")["spec"]["minAvailable"]
        == only(theirs, "PodDisruptionBudget")["spec"]["minAvailable"]
    )
    assert (
        only(ours, "Deployment")["spec"]["replicas"]
        == only(theirs, "Deployment")["spec"]["replicas"]
    )


def test_sidecar_values_become_the_webhooks_flags(helm: Helm) -> None:
    values = CHART / "ci" / "secret-values.yaml"
    sidecar = yaml.safe_load(values.read_text())["sidecar"]
    settings = injector_settings(only(helm.template("-f", str(values)), "Deployment"))
    assert settings == InjectSettings(
        image=sidecar["image"],
        rules_configmap="event-sidecar-rules",
        native_sidecar=False,
        log_path=sidecar["logPath"],
        log_level="debug",
        metrics_port=9191,
        resources=sidecar["resources"],
    )


# -- the chart and kustomize agree -------------------------------------------------------------

WEBHOOK_CASES = {
    "defaults": ([], "webhook", "[]"),
    "cert-manager, fail closed": (
        ["--set", "webhook.tls.source=certManager", "--set", "webhook.failurePolicy=Fail"],
        "webhook-cert-manager",
        "- {op: replace, path: /webhooks/0/failurePolicy, value: Fail}",
    ),
}


@pytest.mark.parametrize("case", WEBHOOK_CASES, ids=str)
def test_chart_and_kustomize_render_the_same_webhook_configuration(
    helm: Helm, kubectl: Path, tmp_path: Path, case: str
) -> None:
    args, base, patch = WEBHOOK_CASES[case]
    ours = only(helm.template(*args), "MutatingWebhookConfiguration")
    theirs = only(
        kustomize(kubectl, overlay(tmp_path, base, patch)), "MutatingWebhookConfiguration"
    )
    [hook] = ours["webhooks"]
    if "certManager" in " ".join(args):
        assert "caBundle" not in hook["clientConfig"], "cert-manager's CA injector sets it"
    else:
        assert base64.b64decode(hook["clientConfig"].pop("caBundle")).startswith(b"-----BEGIN")
    assert ours["webhooks"] == theirs["webhooks"]
    assert ours["metadata"]["name"] == theirs["metadata"]["name"]
    assert ours["metadata"].get("annotations") == theirs["metadata"].get("annotations")


def test_the_own_namespace_is_excluded_beside_the_configured_ones(helm: Helm) -> None:
    config = only(
        helm.template(
            "--set-json",
            'webhook.excludedNamespaces=["kube-system"]',
            "--set-json",
            'webhook.namespaceSelector={"matchLabels": {"team": "a"}}',
            namespace="injector",
        ),
        "MutatingWebhookConfiguration",
    )
    [hook] = config["webhooks"]
    assert hook["namespaceSelector"] == {
        "matchLabels": {"team": "a"},
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": ["kube-system", "injector"],
            }
        ],
    }
    assert hook["clientConfig"]["service"]["namespace"] == "injector"
    assert {
        "key": "app.kubernetes.io/name",
        "operator": "NotIn",
        "values": ["event-sidecar-webhook"],
    } in (hook["objectSelector"]["matchExpressions"])


def test_the_cert_manager_objects_match_the_kustomize_component(helm: Helm, kubectl: Path) -> None:
    ours = helm.template("--set", "webhook.tls.source=certManager")
    theirs = kustomize(kubectl, MANIFESTS / "webhook-cert-manager")
    for kind in ("Certificate", "Issuer"):
        assert only(ours, kind)["spec"] == only(theirs, kind)["spec"]
    issuer = {"kind": "ClusterIssuer", "name": "corporate-ca"}
    custom = helm.template(
        "--set",
        "webhook.tls.source=certManager",
        "--set-json",
        f"webhook.tls.certManager.issuerRef={json.dumps(issuer)}",
    )
    assert not [o for o in custom if o["kind"] == "Issuer"]
    assert only(custom, "Certificate")["spec"]["issuerRef"] == issuer


def test_a_self_generated_certificate_is_signed_by_the_ca_bundle(helm: Helm) -> None:
    objects = helm.template()
    secret = only(objects, "Secret")
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    [hook] = only(objects, "MutatingWebhookConfiguration")["webhooks"]
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == data["ca.crt"]
    leaf = x509.load_pem_x509_certificate(data["tls.crt"])
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(data["ca.crt"]))
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"event-sidecar-webhook.{NAMESPACE}.svc" in sans.get_values_for_type(x509.DNSName)
    mount = only(objects, "Deployment")["spec"]["template"]["spec"]["volumes"][0]
    assert mount["secret"]["secretName"] == secret["metadata"]["name"]


def test_a_provided_secret_needs_its_ca_bundle(helm: Helm) -> None:
    result = helm.run(
        "template",
        RELEASE,
        str(CHART),
        "--set",
        "webhook.tls.source=secret",
        "--set",
        "webhook.tls.secret.name=mine",
        check=False,
    )
    assert result.returncode != 0 and "caBundle" in result.stderr
    objects = helm.template("-f", str(CHART / "ci" / "secret-values.yaml"))
    assert not [o for o in objects if o["kind"] == "Secret"]
    volume = only(objects, "Deployment")["spec"]["template"]["spec"]["volumes"][0]
    assert volume["secret"]["secretName"] == "my-webhook-tls"


def test_the_sidecar_rbac_is_the_kustomize_rbac(helm: Helm, kubectl: Path) -> None:
    ours = helm.template("--set-json", 'sidecarRbac.namespaces=["event-sidecar"]')
    theirs = kustomize(kubectl, MANIFESTS / "sidecar-rbac")
    names = {o["metadata"]["name"] for o in theirs if o["kind"] == "ClusterRole"}
    assert names == {"event-sidecar-events", "event-sidecar-lookup", "event-sidecar-pod-logs"}
    assert names == {o["metadata"]["name"] for o in ours if o["kind"] == "ClusterRole"}
    for name in names:
        assert (
            only(ours, "ClusterRole", name)["rules"] == only(theirs, "ClusterRole", name)["rules"]
        )
        for key in ("roleRef", "subjects"):
            assert only(ours, "RoleBinding", name)[key] == only(theirs, "RoleBinding", name)[key]
    account = only(ours, "ServiceAccount", "event-sidecar")
    assert account["metadata"]["namespace"] == "event-sidecar"
    assert account["automountServiceAccountToken"] is True
    assert not [o for o in helm.template() if o["kind"] in ("RoleBinding",)]


def test_the_pod_log_grant_can_be_left_out(helm: Helm) -> None:
    objects = helm.template(
        "--set-json",
        'sidecarRbac.namespaces=["event-sidecar"]',
        "--set",
        "sidecarRbac.podLogs=false",
    )
    roles = {o["metadata"]["name"] for o in objects if o["kind"] in ("ClusterRole", "RoleBinding")}
    assert roles == {"event-sidecar-events", "event-sidecar-lookup"}


def test_the_chart_copies_are_the_kustomize_files() -> None:
    for copy_name, original in (
        ("policy.yaml", MANIFESTS / "policy" / "policy.yaml"),
        ("dashboard.json", MANIFESTS / "monitoring" / "dashboard.json"),
        ("alerts.rules.yaml", MANIFESTS / "monitoring" / "alerts.rules.yaml"),
        *(
            (f"sidecar-rbac/{f.name}", f)
            for f in sorted((MANIFESTS / "sidecar-rbac").glob("clusterrole-*.yaml"))
            if f.name != "clusterrole-lookup.yaml"  # the chart's look-up rules are values
        ),
    ):
        assert (CHART / "files" / copy_name).read_text() == original.read_text(), copy_name


def test_monitoring_toggles_render_the_kustomize_content(helm: Helm, kubectl: Path) -> None:
    objects = helm.template("-f", str(CHART / "ci" / "cert-manager-values.yaml"))
    rule = only(objects, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    monitoring = kustomize(kubectl, MANIFESTS / "monitoring")
    assert rule["spec"] == only(monitoring, "PrometheusRule")["spec"]
    dashboard = only(objects, "ConfigMap")
    expected = only(monitoring, "ConfigMap", "event-sidecar-dashboard")
    assert dashboard["data"] == expected["data"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    operator = kustomize(kubectl, MANIFESTS / "webhook-cert-manager")
    for name in ("event-sidecar-webhook", "event-sidecar"):
        ours, theirs = (
            only(objects, "PodMonitor", name)["spec"],
            only(operator, "PodMonitor", name)["spec"],
        )
        theirs = copy.deepcopy(theirs)
        if name == "event-sidecar-webhook":  # the chart's selector adds the release's instance
            theirs["selector"]["matchLabels"]["app.kubernetes.io/instance"] = RELEASE
        assert ours == theirs
    service_monitor = helm.template("--set", "monitoring.serviceMonitor.enabled=true")
    assert only(service_monitor, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "https"
    assert not [
        o for o in helm.template() if o["kind"].endswith("Monitor") or o["kind"] == "PrometheusRule"
    ]


def test_the_policy_toggle_renders_the_kustomize_policy_instead_of_the_webhook(
    helm: Helm, kubectl: Path
) -> None:
    ours = [
        o
        for o in helm.template("--set", "policy.enabled=true")
        if o["kind"].startswith("MutatingAdmission")
    ]
    theirs = kustomize(kubectl, MANIFESTS / "policy")
    for obj in theirs:
        obj["metadata"].pop("labels", None)
    assert ours == theirs
    for other in ("sidecar.logLevel=debug", "sidecar.image=elsewhere/sidecar:1", "image.tag=0.2.0"):
        result = helm.run(
            "template",
            RELEASE,
            str(CHART),
            "--set",
            "policy.enabled=true",
            "--set",
            other,
            check=False,
        )
        assert result.returncode != 0 and "--emit-policy" in result.stderr, other


# -- against the apiserver ---------------------------------------------------------------------


@pytest.fixture
def release_namespace(control_plane: ControlPlane, namespace: str) -> str:
    """The test's namespace, with the minimal CRDs of cert-manager and the Prometheus Operator."""
    install_minimal_crds(control_plane)
    return namespace


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_install_dry_run_server_is_accepted(
    helm: Helm, control_plane: ControlPlane, release_namespace: str, values: Path
) -> None:
    rendered = helm.template("-f", str(values), namespace=release_namespace)
    ensure_namespaces(control_plane, rendered)  # the sidecar's namespaces (team-a, team-b)
    name = f"es-{uuid.uuid4().hex[:8]}"
    result = helm.run(
        "install",
        name,
        str(CHART),
        "-n",
        release_namespace,
        "-f",
        str(values),
        "--set",
        f"fullnameOverride={name}",
        "--dry-run=server",
        "--kubeconfig",
        str(control_plane.kubeconfig),
    )
    assert "STATUS: pending-install" in result.stdout
    assert result.stdout.count("\nkind: ") == len(rendered)


@pytest.fixture
def installed(
    helm: Helm,
    control_plane: ControlPlane,
    kube_api_client: client.ApiClient,
    release_namespace: str,
) -> Iterator[tuple[str, str]]:
    """A real install (self-signed TLS) into a `restricted` namespace; uninstalled afterwards.
    Its webhook would run nowhere (no scheduler), so no pod is selected: a label none has."""
    client.CoreV1Api(kube_api_client).patch_namespace(
        release_namespace,
        {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
    )
    name = f"es-{uuid.uuid4().hex[:8]}"
    args = [
        str(CHART),
        "-n",
        release_namespace,
        "--kubeconfig",
        str(control_plane.kubeconfig),
        "--set",
        f"fullnameOverride={name}",
        "--set-json",
        'webhook.objectSelector={"matchLabels": {"no-pod-has-this-label": "true"}}',
    ]
    helm.run("install", name, *args)
    try:
        yield name, " ".join(args)
    finally:
        helm.run(
            "uninstall",
            name,
            "-n",
            release_namespace,
            "--kubeconfig",
            str(control_plane.kubeconfig),
        )


def test_a_real_install_keeps_its_certificate_across_upgrades_and_runs_restricted(
    helm: Helm,
    control_plane: ControlPlane,
    kube_api_client: client.ApiClient,
    release_namespace: str,
    installed: tuple[str, str],
) -> None:
    name, _ = installed
    core = client.CoreV1Api(kube_api_client)
    admission = client.AdmissionregistrationV1Api(kube_api_client)

    def tls() -> tuple[dict[str, Any], Any]:
        secret = core.read_namespaced_secret(f"{name}-webhook-tls", release_namespace)
        config = admission.read_mutating_webhook_configuration(f"{name}-injector")
        assert secret.data is not None and config.webhooks is not None
        return secret.data, config.webhooks[0].client_config.ca_bundle

    data, bundle = tls()
    assert bundle == data["ca.crt"]
    helm.run(
        "upgrade",
        name,
        str(CHART),
        "-n",
        release_namespace,
        "--kubeconfig",
        str(control_plane.kubeconfig),
        "--reuse-values",
        "--set",
        "webhook.replicas=3",
    )
    assert tls() == (data, bundle), "an upgrade must keep the certificate (lookup)"
    apps = client.AppsV1Api(kube_api_client)
    assert apps.read_namespaced_deployment(f"{name}-webhook", release_namespace).spec.replicas == 3

    # The webhook's pod template is admitted by `restricted` Pod Security (server-side dry run).
    raw: Any = apps.read_namespaced_deployment(
        f"{name}-webhook", release_namespace, _preload_content=False
    )
    template = json.loads(raw.data)["spec"]["template"]
    pod: Any = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "webhook"},
        "spec": template["spec"],
    }
    core.create_namespaced_pod(release_namespace, pod, dry_run="All")
    pod["spec"]["containers"][0]["securityContext"] = {}
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(release_namespace, pod, dry_run="All")
    assert refused.value.status == 403 and "restricted" in str(refused.value.body)


@pytest.mark.parametrize("pod_logs", [True, False], ids=["default", "no-pod-logs"])
def test_the_charts_service_account_can_do_exactly_what_each_source_needs(
    helm: Helm, control_plane: ControlPlane, release_namespace: str, pod_logs: bool
) -> None:
    """A real install's RBAC, asked of the apiserver as the sidecar's ServiceAccount: the pod log
    source (the injection default) may read pods/log in its namespace, nothing more is allowed."""
    name = f"es-{uuid.uuid4().hex[:8]}"
    kubeconfig = ("--kubeconfig", str(control_plane.kubeconfig))
    helm.run(
        "install",
        name,
        str(CHART),
        "-n",
        release_namespace,
        *kubeconfig,
        "--set",
        f"fullnameOverride={name}",
        "--set-json",
        f'sidecarRbac.namespaces=["{release_namespace}"]',
        "--set",
        f"sidecarRbac.podLogs={str(pod_logs).lower()}",
        "--set-json",
        'webhook.objectSelector={"matchLabels": {"no-pod-has-this-label": "true"}}',
    )
    subject = f"--as=system:serviceaccount:{release_namespace}:event-sidecar"

    def can_i(*args: str) -> str:
        return control_plane.kubectl("auth", "can-i", *args, subject, check=False).stdout.strip()

    try:
        assert_sidecar_grants(can_i, release_namespace, pod_logs=pod_logs)
    finally:
        helm.run("uninstall", name, "-n", release_namespace, *kubeconfig)
