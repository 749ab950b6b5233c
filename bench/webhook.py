"""Admission latency and throughput: `event-sidecar webhook` beside a no-op webhook, over TLS.

    .venv/bin/python -m bench.webhook --runs 5

Starts `event-sidecar webhook` and bench/webhook_peer.py (a minimal aiohttp webhook answering
`allowed: true` without a patch: the floor of TLS + HTTP + JSON) as subprocesses on loopback, with
a serving certificate from a throwaway trustme CA. Both get the same AdmissionReview v1 CREATE
requests for a realistic opted-in pod (a Deployment's pod as the apiserver sends it after its
built-in admission plugins: two containers, probes, projected token volume, tolerations), each
with its own uid, as HTTP/1.1 POSTs on keep-alive connections, as the apiserver's client sends
them. Each run, for each webhook in turn:

- open loop: one request every 1/rate s (100 req/s for 20 s) whatever the answers; a request
  that finds no idle connection opens one (its TLS handshake counted in its latency);
- closed loop: a few connections (4) each sending the next request as soon as an answer arrives,
  for 5 s: the most the webhook can answer.

Latency is from the request's first byte written to its answer's last byte read. Every answer is
checked: HTTP 200, the request's uid, `allowed: true`; the sidecar's must carry a JSONPatch that
jsonpatch applies to the pod, giving it the sidecar; the peer's must carry none. Reports the
median of the runs (min-max) and the ratio to the peer; writes its section of BENCHMARKS.md.
`--smoke` sends a few hundred requests once and writes nothing (the test suite calls it).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ctypes
import json
import os
import random
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jsonpatch
import trustme

from bench.report import ROOT, machine, spread, today, write_section

BENCH = ROOT / "bench"
SIDECAR = Path(sys.executable).parent / "event-sidecar"
INJECT_LABEL = "event-sidecar.kube-event-sidecar.io/inject"
TARGET_P99_MS = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- the requests --------------------------------------------------------------------------


def realistic_pod(rng: random.Random) -> dict[str, Any]:
    """A Deployment's pod as a mutating webhook receives it: defaulted, with the ServiceAccount
    admission plugin's projected token volume, not yet named (generateName) nor scheduled."""
    template_hash = f"{rng.getrandbits(40):010x}"[:10]
    suffix = "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
    token_volume = f"kube-api-access-{suffix}"
    token_mount = {
        "name": token_volume,
        "readOnly": True,
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
    }
    probe: dict[str, Any] = {
        "httpGet": {"path": "/healthz", "port": 8081, "scheme": "HTTP"},
        "initialDelaySeconds": 15,
        "timeoutSeconds": 1,
        "periodSeconds": 20,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "generateName": f"quota-autoscaler-{template_hash}-",
            "namespace": "quota-system",
            "creationTimestamp": None,
            "labels": {
                "app.kubernetes.io/name": "quota-autoscaler",
                "app.kubernetes.io/instance": "quota-autoscaler",
                "app.kubernetes.io/version": "v1.4.2",
                "control-plane": "controller-manager",
                "pod-template-hash": template_hash,
                INJECT_LABEL: "true",
            },
            "annotations": {
                "kubectl.kubernetes.io/default-container": "manager",
                "kubectl.kubernetes.io/restartedAt": "2026-11-20T09:00:00Z",
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"quota-autoscaler-{template_hash}",
                    "uid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": [
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2026-11-20T09:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {}}},
                }
            ],
        },
        "spec": {
            "volumes": [
                {"name": "config", "configMap": {"name": "quota-autoscaler", "defaultMode": 420}},
                {
                    "name": token_volume,
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                            {
                                "downwardAPI": {
                                    "items": [
                                        {
                                            "path": "namespace",
                                            "fieldRef": {
                                                "apiVersion": "v1",
                                                "fieldPath": "metadata.namespace",
                                            },
                                        }
                                    ]
                                }
                            },
                        ],
                        "defaultMode": 420,
                    },
                },
            ],
            "containers": [
                {
                    "name": "manager",
                    "image": "registry.example.com/quota-autoscaler:v1.4.2",
                    "command": ["/manager"],
                    "args": [
                        "--leader-elect",
                        "--health-probe-bind-address=:8081",
                        "--metrics-bind-address=127.0.0.1:8080",
                        "--zap-log-level=info",
                    ],
                    "ports": [{"name": "health", "containerPort": 8081, "protocol": "TCP"}],
                    "env": [
                        {"name": "WATCH_NAMESPACE", "value": ""},
                        {"name": "GOMEMLIMIT", "value": "230MiB"},
                        {
                            "name": "POD_NAME",
                            "valueFrom": {
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}
                            },
                        },
                    ],
                    "resources": {
                        "limits": {"cpu": "500m", "memory": "256Mi"},
                        "requests": {"cpu": "50m", "memory": "128Mi"},
                    },
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/quota-autoscaler"},
                        token_mount,
                    ],
                    "livenessProbe": probe,
                    "readinessProbe": {**probe, "httpGet": {**probe["httpGet"], "path": "/readyz"}},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                    "securityContext": {
                        "capabilities": {"drop": ["ALL"]},
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                    },
                },
                {
                    "name": "kube-rbac-proxy",
                    "image": "quay.io/brancz/kube-rbac-proxy:v0.18.1",
                    "args": [
                        "--secure-listen-address=0.0.0.0:8443",
                        "--upstream=http://127.0.0.1:8080/",
                        "--logtostderr=true",
                        "--v=0",
                    ],
                    "ports": [{"name": "https", "containerPort": 8443, "protocol": "TCP"}],
                    "resources": {
                        "limits": {"cpu": "500m", "memory": "128Mi"},
                        "requests": {"cpu": "5m", "memory": "64Mi"},
                    },
                    "volumeMounts": [token_mount],
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                },
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 10,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "quota-autoscaler",
            "serviceAccount": "quota-autoscaler",
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }


@dataclass(frozen=True)
class Review:
    uid: str
    pod: dict[str, Any]
    body: bytes


def make_reviews(count: int, seed: int = 1) -> list[Review]:
    """`count` AdmissionReview v1 CREATE requests, each with its own uid and pod."""
    rng = random.Random(seed)
    reviews = []
    for _ in range(count):
        pod = realistic_pod(rng)
        uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        review = {
            "kind": "AdmissionReview",
            "apiVersion": "admission.k8s.io/v1",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "quota-system",
                "operation": "CREATE",
                "userInfo": {
                    "username": "system:serviceaccount:kube-system:replicaset-controller",
                    "uid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "groups": [
                        "system:serviceaccounts",
                        "system:serviceaccounts:kube-system",
                        "system:authenticated",
                    ],
                },
                "object": pod,
                "oldObject": None,
                "dryRun": False,
                "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
            },
        }
        # Go's encoding/json: compact, as the apiserver sends it.
        body = json.dumps(review, separators=(",", ":")).encode()
        reviews.append(Review(uid, pod, body))
    return reviews


def http_request(port: int, body: bytes) -> bytes:
    """The bytes of one POST as the apiserver's webhook client sends it."""
    head = (
        "POST /mutate?timeout=10s HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "User-Agent: kube-apiserver-admission\r\n"
        "Accept: application/json, */*\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Accept-Encoding: gzip\r\n"
        "\r\n"
    )
    return head.encode() + body


# -- checking answers ----------------------------------------------------------------------


class Checker:
    """Checks every answer; an answer byte-equal to one already checked for the same request
    (the answers are deterministic) is not decoded again."""

    def __init__(self, reviews: list[Review], *, patched: bool) -> None:
        self.reviews = reviews
        self.patched = patched
        self._seen: set[tuple[int, bytes]] = set()
        self.checked = 0

    def check(self, index: int, status: int, body: bytes) -> None:
        self.checked += 1
        if (index, body) in self._seen:
            return
        if status != 200:
            raise SystemExit(f"HTTP {status}: {body[:300]!r}")
        review = self.reviews[index]
        answer = json.loads(body)
        response = answer.get("response") or {}
        if answer.get("apiVersion") != "admission.k8s.io/v1" or answer.get("kind") != (
            "AdmissionReview"
        ):
            raise SystemExit(f"not an AdmissionReview v1: {body[:300]!r}")
        if response.get("uid") != review.uid or response.get("allowed") is not True:
            raise SystemExit(f"wrong uid or not allowed: {body[:300]!r}")
        if self.patched:
            if response.get("patchType") != "JSONPatch" or not response.get("patch"):
                raise SystemExit(f"no JSONPatch in the answer: {body[:300]!r}")
            patch = json.loads(base64.b64decode(response["patch"]))
            pod = jsonpatch.apply_patch(review.pod, patch)  # raises when it does not apply
            sidecars = [
                c for c in pod["spec"].get("initContainers", ()) if c["name"] == ("event-sidecar")
            ]
            if len(sidecars) != 1 or sidecars[0].get("restartPolicy") != "Always":
                raise SystemExit(f"the patch does not add the native sidecar: {patch}")
            if len(pod["spec"]["containers"]) != 2:
                raise SystemExit("the patch changed the app containers' count")
        elif "patch" in response or "patchType" in response:
            raise SystemExit(f"the peer answered a patch: {body[:300]!r}")
        self._seen.add((index, body))


# -- the load generator ----------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection over TLS; a request at a time (no pipelining)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, context: ssl.SSLContext) -> Connection:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
        )
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as Go does by default
        return cls(reader, writer)

    async def post(self, data: bytes) -> tuple[int, bytes, bool]:
        """Send one prepared request; (status, body, whether the server keeps the connection)."""
        self.writer.write(data)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, keep = 0, True
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
            elif name == b"transfer-encoding":
                raise SystemExit("chunked answers are not expected from these webhooks")
        body = await self.reader.readexactly(length)
        return status, body, keep

    def closed(self) -> bool:
        """Whether the server closed it (its FIN or close_notify already read)."""
        return self.reader.at_eof() or self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Idle keep-alive connections, newest first, opened on demand, like Go's http.Transport.

    A connection idle longer than `IDLE_SECONDS` (below aiohttp's 75 s keep-alive timeout, as
    Go's 90 s IdleConnTimeout is below most servers') or already closed by the server is
    dropped rather than reused.
    """

    IDLE_SECONDS = 30.0

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self.port = port
        self.context = context
        self.idle: list[tuple[Connection, float]] = []
        self.opened = 0

    async def acquire(self) -> Connection:
        now = time.monotonic()
        while self.idle:
            connection, since = self.idle.pop()
            if now - since < self.IDLE_SECONDS and not connection.closed():
                return connection
            connection.close()
        self.opened += 1
        return await Connection.open(self.port, self.context)

    def release(self, connection: Connection, keep: bool) -> None:
        if keep:
            self.idle.append((connection, time.monotonic()))
        else:
            connection.close()

    def close(self) -> None:
        for connection, _ in self.idle:
            connection.close()
        self.idle.clear()


@dataclass
class Phase:
    """What one load phase measured."""

    latencies_ms: list[float]
    rps: float
    server_cpu_s: float
    client_cpu_s: float
    wall_s: float
    connections: int
    answers: list[tuple[int, int, bytes]] = field(repr=False, default_factory=list)

    def percentile(self, p: float) -> float:
        return percentile(self.latencies_ms, p)


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile (p in 0-100) of `values`."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def open_loop(pool: Pool, requests: list[bytes], rate: float, count: int, pid: int) -> Phase:
    """Send `count` requests at `rate` per second, each on schedule whatever the answers."""
    loop = asyncio.get_running_loop()
    answers: list[tuple[int, int, bytes]] = []
    latencies: list[float] = []
    starts: list[float] = []
    ends: list[float] = []

    async def one(index: int) -> None:
        began = time.perf_counter()
        starts.append(began)
        connection = await pool.acquire()
        status, body, keep = await connection.post(requests[index])
        ended = time.perf_counter()
        pool.release(connection, keep)
        latencies.append((ended - began) * 1000)
        ends.append(ended)
        answers.append((index, status, body))

    opened = pool.opened
    cpu0, client0 = process_cpu(pid), time.process_time()
    start = loop.time() + 0.01
    tasks = []
    for i in range(count):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    wall = max(ends) - min(starts)
    return Phase(
        latencies,
        count / wall,
        process_cpu(pid) - cpu0,
        time.process_time() - client0,
        wall,
        pool.opened - opened,
        answers,
    )


async def closed_loop(
    port: int,
    context: ssl.SSLContext,
    requests: list[bytes],
    *,
    connections: int,
    seconds: float,
    pid: int,
) -> Phase:
    """`connections` connections, each sending its next request as soon as an answer arrives."""
    answers: list[tuple[int, int, bytes]] = []
    latencies: list[float] = []
    counter = iter(range(10**9))
    pool = [await Connection.open(port, context) for _ in range(connections)]
    # One round first, so that every connection is warm (handshakes done, buffers grown).
    for connection in pool:
        status, body, _ = await connection.post(requests[0])
        answers.append((0, status, body))
    cpu0, client0 = process_cpu(pid), time.process_time()
    began = time.perf_counter()
    deadline = began + seconds

    async def worker(connection: Connection) -> None:
        while time.perf_counter() < deadline:
            index = next(counter) % len(requests)
            sent = time.perf_counter()
            status, body, keep = await connection.post(requests[index])
            latencies.append((time.perf_counter() - sent) * 1000)
            answers.append((index, status, body))
            if not keep:
                raise SystemExit("the webhook closed a keep-alive connection")

    await asyncio.gather(*(worker(connection) for connection in pool))
    wall = time.perf_counter() - began
    for connection in pool:
        connection.close()
    return Phase(
        latencies,
        len(latencies) / wall,
        process_cpu(pid) - cpu0,
        time.process_time() - client0,
        wall,
        connections,
        answers,
    )


# -- the servers -----------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    checker: Checker
    requests: list[bytes]


#: libc's prctl (ctypes functions are untyped: this says what the call takes and returns).
_PRCTL: Callable[[int, int], int] | None = (
    ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
)
_PR_SET_PDEATHSIG = 1


def _die_with_us() -> None:
    """In the child before exec: have Linux SIGTERM it should the benchmark die (say, killed by
    a test's timeout), so that no webhook outlives it."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(proc: subprocess.Popen[bytes], port: int, context: ssl.SSLContext) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args!r} exited with {proc.returncode}")
        try:
            url = f"https://127.0.0.1:{port}/healthz"
            with urllib.request.urlopen(url, context=context, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{proc.args!r} did not answer /healthz within 30 s")


@contextlib.contextmanager
def servers(
    cert: Path, key: Path, context: ssl.SSLContext, reviews: list[Review]
) -> Iterator[list[Server]]:
    """Start `event-sidecar webhook` and the peer; stop both (SIGTERM, by pid) afterwards."""
    started: list[Server] = []
    try:
        for name, patched, argv in (
            (
                "event-sidecar webhook",
                True,
                lambda port: [
                    str(SIDECAR),
                    "webhook",
                    "--listen",
                    f"127.0.0.1:{port}",
                    "--tls-cert-file",
                    str(cert),
                    "--tls-private-key-file",
                    str(key),
                    "--log-level",
                    "warning",
                ],
            ),
            (
                "no-op aiohttp webhook (peer)",
                False,
                lambda port: [
                    sys.executable,
                    "-m",
                    "bench.webhook_peer",
                    "--listen",
                    f"127.0.0.1:{port}",
                    "--cert",
                    str(cert),
                    "--key",
                    str(key),
                ],
            ),
        ):
            port = free_port()
            command: list[str] = argv(port)  # type: ignore[no-untyped-call]
            proc = subprocess.Popen(
                command,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_us,  # noqa: PLW1509 - no threads here
            )
            requests = [http_request(port, review.body) for review in reviews]
            started.append(Server(name, port, proc, Checker(reviews, patched=patched), requests))
            wait_ready(proc, port, context)
        yield started
    finally:
        for server in started:
            if server.proc.poll() is None:
                server.proc.send_signal(signal.SIGTERM)
                try:
                    server.proc.wait(10)
                except subprocess.TimeoutExpired:
                    server.proc.kill()
                    server.proc.wait()


def make_certs(folder: Path) -> tuple[Path, Path, ssl.SSLContext]:
    ca = trustme.CA(organization_name="bench/webhook.py")
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = folder / "tls.crt", folder / "tls.key"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return cert, key, context


@dataclass
class Results:
    open: list[Phase] = field(default_factory=list)
    closed: list[Phase] = field(default_factory=list)


async def run_all(
    args: argparse.Namespace, group: list[Server], context: ssl.SSLContext
) -> tuple[dict[str, Results], str]:
    """Every run's phases for each webhook, and the TLS version and cipher negotiated."""
    pools = {server.name: Pool(server.port, context) for server in group}
    try:
        results = await _run_all(args, group, pools)
        tls = await negotiated(group[0].port, context)
    finally:
        for pool in pools.values():
            pool.close()
    return results, tls


async def _run_all(
    args: argparse.Namespace, group: list[Server], pools: dict[str, Pool]
) -> dict[str, Results]:
    count = round(args.rate * args.duration)
    results = {server.name: Results() for server in group}

    def check(server: Server, phase: Phase) -> None:
        for index, status, body in phase.answers:
            server.checker.check(index, status, body)
        phase.answers.clear()

    async def warm_up(server: Server, requests: int) -> None:
        """Unmeasured requests at the rate: connections open, code paths and caches warm."""
        phase = await open_loop(
            pools[server.name], server.requests, args.rate, requests, server.proc.pid
        )
        check(server, phase)

    for server in group:
        await warm_up(server, min(count, round(args.rate)))
    for run in range(args.runs):
        # Alternate which webhook goes first, so that drift in the machine's load is shared.
        order = group if run % 2 == 0 else group[::-1]
        for server in order:
            # The other webhook ran meanwhile: renew the keep-alive connections (unmeasured).
            await warm_up(server, min(count, round(args.rate / 2)))
            phase = await open_loop(
                pools[server.name], server.requests, args.rate, count, server.proc.pid
            )
            check(server, phase)
            results[server.name].open.append(phase)
        for server in order:
            phase = await closed_loop(
                server.port,
                pools[server.name].context,
                server.requests,
                connections=args.connections,
                seconds=args.closed_seconds,
                pid=server.proc.pid,
            )
            check(server, phase)
            results[server.name].closed.append(phase)
        if not args.smoke:
            ours = results[group[0].name]
            print(
                f"run {run + 1}/{args.runs}: open p50 {ours.open[-1].percentile(50):.2f} ms "
                f"p99 {ours.open[-1].percentile(99):.2f} ms; closed {ours.closed[-1].rps:.0f} "
                "req/s",
                file=sys.stderr,
            )
    return results


def cell(values: list[float], fmt: str = "{:.2f}") -> str:
    median, low, high = spread(values)
    return f"{fmt.format(median)} ({fmt.format(low)}-{fmt.format(high)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rate", type=float, default=100.0, help="open loop: requests/s")
    parser.add_argument("--duration", type=float, default=20.0, help="open loop: seconds")
    parser.add_argument("--connections", type=int, default=4, help="closed loop: connections")
    parser.add_argument("--closed-seconds", type=float, default=5.0, help="closed loop: seconds")
    parser.add_argument("--smoke", action="store_true", help="a few hundred requests, no report")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.duration, args.closed_seconds = 1, 2.0, 1.0
    load_before = os.getloadavg()
    reviews = make_reviews(round(args.rate * args.duration))
    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as tmp:
        cert, key, context = make_certs(Path(tmp))
        with servers(cert, key, context, reviews) as group:
            results, tls = asyncio.run(run_all(args, group, context))
            checked = {server.name: server.checker.checked for server in group}
    load_after = os.getloadavg()
    ours, peer = (results[name] for name in checked)
    if args.smoke:
        o, p = ours.open[0], peer.open[0]
        print(
            f"smoke ok: {sum(checked.values())} answers checked; open loop p99 "
            f"{o.percentile(99):.2f} ms (peer {p.percentile(99):.2f} ms); closed loop "
            f"{ours.closed[0].rps:.0f} req/s (peer {peer.closed[0].rps:.0f} req/s)"
        )
        return
    body = report(
        args,
        ours=ours,
        peer=peer,
        checked=checked,
        tls=tls,
        load=(load_before[0], load_after[0]),
        body_bytes=len(reviews[0].body),
    )
    write_section("webhook", body)
    print(body)


async def negotiated(port: int, context: ssl.SSLContext) -> str:
    connection = await Connection.open(port, context)
    tls = connection.writer.get_extra_info("ssl_object")
    description = f"{tls.version()} {tls.cipher()[0]}"
    connection.close()
    return description


def report(
    args: argparse.Namespace,
    *,
    ours: Results,
    peer: Results,
    checked: dict[str, int],
    tls: str,
    load: tuple[float, float],
    body_bytes: int,
) -> str:
    def open_row(name: str, result: Results) -> str:
        phases = result.open
        return (
            f"| {name} | {cell([p.percentile(50) for p in phases])} "
            f"| {cell([p.percentile(99) for p in phases])} "
            f"| {cell([max(p.latencies_ms) for p in phases])} "
            f"| {cell([p.rps for p in phases], '{:.1f}')} "
            f"| {cell([p.server_cpu_s / len(p.latencies_ms) * 1000 for p in phases])} |"
        )

    def closed_row(name: str, result: Results) -> str:
        phases = result.closed
        client = statistics.median(p.client_cpu_s / p.wall_s for p in phases)
        return (
            f"| {name} | {cell([p.rps for p in phases], '{:.0f}')} "
            f"| {cell([p.percentile(50) for p in phases])} "
            f"| {cell([p.percentile(99) for p in phases])} "
            f"| {cell([p.server_cpu_s / p.wall_s * 100 for p in phases], '{:.0f}')} "
            f"| {client * 100:.0f} |"
        )

    def median_of(phases: list[Phase], value: Callable[[Phase], float]) -> float:
        return statistics.median(value(p) for p in phases)

    p99 = median_of(ours.open, lambda p: p.percentile(99))
    worst_p99 = max(p.percentile(99) for p in ours.open)
    ratio_p50 = median_of(ours.open, lambda p: p.percentile(50)) / median_of(
        peer.open, lambda p: p.percentile(50)
    )
    ratio_p99 = p99 / median_of(peer.open, lambda p: p.percentile(99))
    ratio_rps = median_of(ours.closed, lambda p: p.rps) / median_of(peer.closed, lambda p: p.rps)
    cpu_ours = median_of(ours.open, lambda p: p.server_cpu_s / len(p.latencies_ms) * 1000)
    cpu_peer = median_of(peer.open, lambda p: p.server_cpu_s / len(p.latencies_ms) * 1000)
    new_connections = sum(p.connections for p in ours.open + peer.open)
    met = "met" if p99 <= TARGET_P99_MS else "**missed**"
    names = list(checked)
    return f"""
## Webhook admission latency and throughput

`.venv/bin/python -m bench.webhook --runs {args.runs}` on {today()}; {machine()};
aiohttp {aiohttp.__version__}, {ssl.OPENSSL_VERSION}, {tls} on loopback; event-sidecar
{_version()}. Load average {load[0]:.2f} before, {load[1]:.2f} after (the machine is shared
with other tests).

Both webhooks ran as subprocesses, one Python process each, with the same trustme serving
certificate; the load generator (bench/webhook.py, asyncio, HTTP/1.1 keep-alive like the
apiserver's client) ran in a third process. The requests are AdmissionReview v1 CREATEs of a
Deployment's opted-in pod ({body_bytes:,} bytes each, two containers, projected token volume),
each with its own uid. Every answer was checked ({checked[names[0]]:,} and
{checked[names[1]]:,}): HTTP 200, the uid, `allowed: true`; the sidecar's JSONPatch applied with
jsonpatch and gave the pod the native sidecar; the peer (bench/webhook_peer.py) sent no patch.
Median of {args.runs} runs (min-max).

Open loop, {args.rate:.0f} req/s for {args.duration:.0f} s, each after half a second of unmeasured
warm-up (latency from the first byte sent to the last byte received; {new_connections} connections
had to be opened during the measured phases beyond the warm ones):

| webhook | p50 (ms) | p99 (ms) | max (ms) | achieved req/s | server CPU per request (ms) |
|---|---|---|---|---|---|
{open_row(names[0], ours)}
{open_row(names[1], peer)}

Closed loop, {args.connections} keep-alive connections for {args.closed_seconds:.0f} s (each sends
its next request when the answer arrives):

| webhook | req/s | p50 (ms) | p99 (ms) | server CPU (% of a core) | load generator CPU (%) |
|---|---|---|---|---|---|
{closed_row(names[0], ours)}
{closed_row(names[1], peer)}

Ratios to the peer (medians): p50 **{ratio_p50:.1f}x**, p99 **{ratio_p99:.1f}x** at
{args.rate:.0f} req/s; CPU per admission {cpu_ours:.2f} ms vs {cpu_peer:.2f} ms
(**{cpu_ours / cpu_peer:.1f}x**); closed-loop throughput **{ratio_rps:.2f}x**.
Target p99 <= {TARGET_P99_MS:.0f} ms at {args.rate:.0f} req/s: {met} (median {p99:.2f} ms, worst
run {worst_p99:.2f} ms).
"""


def _version() -> str:
    return subprocess.run(
        [str(SIDECAR), "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[-1]


if __name__ == "__main__":
    main()
