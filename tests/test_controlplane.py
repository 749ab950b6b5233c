"""The test control plane is a real Kubernetes API server, and it enforces RBAC."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.controlplane import ControlPlane, kubernetes_version
from tests.daemon_support import wait_for

pytestmark = pytest.mark.controlplane


def test_kubectl_and_server_versions_match_go_mod(control_plane: ControlPlane) -> None:
    expected = kubernetes_version()
    assert expected.startswith("v1.")
    out = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["gitVersion"] == expected
    assert out["clientVersion"]["gitVersion"] == expected
    minor = expected.split(".")[1]
    assert (out["serverVersion"]["major"], out["serverVersion"]["minor"]) == ("1", minor)


def test_configmap_round_trip(kube_api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api_client)
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="greeting"), data={"hello": "world"}),
    )
    got = core.read_namespaced_config_map("greeting", namespace)
    assert got.data == {"hello": "world"}
    assert got.metadata is not None
    assert got.metadata.uid  # assigned by the server
    assert got.metadata.namespace == namespace


def test_namespace_fixture_gives_fresh_namespace(
    kube_api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api_client)
    status = core.read_namespace(namespace).status
    assert status is not None and status.phase == "Active"
    assert core.list_namespaced_config_map(namespace).items == []
    # Created by the fixture, standing in for the absent ServiceAccount controller.
    sas = core.list_namespaced_service_account(namespace).items
    assert [sa.metadata.name for sa in sas if sa.metadata is not None] == ["default"]


def test_serviceaccount_token_is_subject_to_rbac(
    control_plane: ControlPlane,
    kube_api_client: client.ApiClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    core = client.CoreV1Api(kube_api_client)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    token_request = core.create_namespaced_service_account_token(
        "reader",
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        ),
    )
    assert token_request.status is not None
    token = token_request.status.token
    assert token
    kubeconfig = control_plane.token_kubeconfig(token, tmp_path / "reader.kubeconfig")
    sa_user = f"system:serviceaccount:{namespace}:reader"

    sa_api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    try:
        # The token authenticates: the server knows who we are ...
        review = client.AuthenticationV1Api(sa_api).create_self_subject_review(
            client.V1SelfSubjectReview()
        )
        assert review.status is not None and review.status.user_info is not None
        assert review.status.user_info.username == sa_user
        # ... and RBAC says no.
        with pytest.raises(ApiException) as excinfo:
            client.CoreV1Api(sa_api).list_namespaced_secret(namespace)
        assert excinfo.value.status == 403
        assert sa_user in str(excinfo.value.body)

        can_i = control_plane.kubectl(
            "auth", "can-i", "list", "secrets", "-n", namespace,
            kubeconfig=kubeconfig, check=False,
        )  # fmt: skip
        assert (can_i.returncode, can_i.stdout.strip()) == (1, "no")
        as_admin = control_plane.kubectl(
            "auth", "can-i", "list", "secrets", "-n", namespace, f"--as={sa_user}", check=False
        )
        assert as_admin.stdout.strip() == "no"

        # RBAC is evaluated, not a blanket deny: a Role + RoleBinding grants exactly this.
        rbac = client.RbacAuthorizationV1Api(kube_api_client)
        rbac.create_namespaced_role(
            namespace,
            client.V1Role(
                metadata=client.V1ObjectMeta(name="secret-lister"),
                rules=[client.V1PolicyRule(api_groups=[""], resources=["secrets"], verbs=["list"])],
            ),
        )
        rbac.create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="reader-lists-secrets"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="Role", name="secret-lister"
                ),
                subjects=[
                    client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)
                ],
            ),
        )
        # The authorizer learns of new bindings through a watch: on a busy machine that takes a
        # moment, so the grant is awaited (bounded) rather than assumed to be instant.
        wait_for(
            lambda: allowed(lambda: client.CoreV1Api(sa_api).list_namespaced_secret(namespace)),
            "the RoleBinding to take effect",
            timeout=30,
        )
        assert client.CoreV1Api(sa_api).list_namespaced_secret(namespace).items == []
        can_i = control_plane.kubectl(
            "auth", "can-i", "list", "secrets", "-n", namespace, kubeconfig=kubeconfig
        )
        assert can_i.stdout.strip() == "yes"
        # ... and nothing more: other namespaces and other verbs stay forbidden.
        with pytest.raises(ApiException) as excinfo:
            client.CoreV1Api(sa_api).read_namespaced_secret("anything", namespace)
        assert excinfo.value.status == 403
        with pytest.raises(ApiException) as excinfo:
            client.CoreV1Api(sa_api).list_namespaced_secret("default")
        assert excinfo.value.status == 403
    finally:
        sa_api.close()


def test_admin_kubeconfig_is_cluster_admin(control_plane: ControlPlane) -> None:
    whoami = json.loads(control_plane.kubectl("auth", "whoami", "-o", "json").stdout)
    assert "system:masters" in whoami["status"]["userInfo"]["groups"]
    assert control_plane.kubectl("auth", "can-i", "*", "*").stdout.strip() == "yes"


def allowed(call: Callable[[], object]) -> bool:
    """True when `call` succeeds, False when the apiserver answers 403 (any other error raises)."""
    try:
        call()
    except ApiException as error:
        if error.status != 403:
            raise
        return False
    return True
