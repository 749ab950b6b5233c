"""Helpers shared by the webhook tests: certificates on disk, AdmissionReviews, TLS probes."""

from __future__ import annotations

import contextlib
import socket
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from cryptography import x509

from sidecar.inject import INJECT_LABEL


@dataclass(frozen=True)
class ServingCert:
    cert_pem: bytes
    key_pem: bytes
    serial: int


def issue_serving_cert(ca: trustme.CA) -> ServingCert:
    """A serving certificate (chain) and key for 127.0.0.1 from `ca`."""
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    serial = x509.load_pem_x509_certificate(chain).serial_number
    return ServingCert(chain, leaf.private_key_pem.bytes(), serial)


def replace_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (write aside, rename), as cert-manager's kubelet does."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_serving_cert(ca: trustme.CA, cert_file: Path, key_file: Path) -> int:
    """Issue a serving certificate and write it over the files, key first, as a rotation does;
    return its serial number."""
    cert = issue_serving_cert(ca)
    replace_file(key_file, cert.key_pem)
    replace_file(cert_file, cert.cert_pem)
    return cert.serial


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def served_serial(port: int, ca: trustme.CA) -> int:
    """The serial number of the certificate a new TLS connection to 127.0.0.1:`port` gets."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def opted_in_pod(name: str = "ctl", **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "labels": {INJECT_LABEL: "true"},
            **({"annotations": annotations} if annotations else {}),
        },
        "spec": {"containers": [{"name": "controller", "image": "ctl:1"}]},
    }


def admission_review(
    pod: dict[str, Any], *, operation: str = "CREATE", namespace: str = "team-a"
) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": operation,
            "object": pod,
            "dryRun": False,
        },
    }
