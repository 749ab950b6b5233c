"""A real Kubernetes test control plane: etcd plus kube-apiserver, with kubectl to match.

The binaries are compiled from Go modules by ``tools/build-control-plane.sh`` (which caches them by
version, and honours the envtest convention ``KUBEBUILDER_ASSETS``). :class:`ControlPlane` starts
them on free loopback ports with freshly generated certificates, RBAC authorization and working
ServiceAccount tokens, and writes an admin kubeconfig.

For fault tests, :meth:`ControlPlane.stop_server` and :meth:`ControlPlane.start_server` stop and
restart etcd or kube-apiserver (same ports, same data), and :meth:`ControlPlane.signal_server`
sends one a signal (``SIGSTOP``/``SIGCONT`` freeze and thaw it).

There is no controller-manager and no scheduler: namespaces never finish deleting, no ``default``
ServiceAccount appears on its own, nothing is garbage-collected. TokenRequest works.
:meth:`ControlPlane.start_cluster` turns it into a small working cluster: kube-controller-manager,
kube-scheduler and kwok (one simulated node, ``KWOK_NODE``, whose pods go Running at once and
whose container logs kwok serves from files named in a ``ClusterLogs`` configuration).

kwok v0.8.0 serves ``pods/log`` with the kubelet's own reader (``k8s.io/cri-client/pkg/logs``)
over CRI-format files, so ``timestamps`` (RFC 3339 nanoseconds), ``sinceTime`` (lines before the
whole second are skipped), ``tailLines``, ``limitBytes`` and ``follow`` (a re-created file is
followed) behave as on a kubelet. What it lacks: its container status stub always answers
"running", so a followed stream never ends by itself; it reports no ``containerID`` and never
restarts a container (``restartCount`` stays 0 unless a test patches the status); ``previous``
reads the one fixed ``previousLogsFile`` (without one, kwok answers 400); no log rotation.

Usage from Python::

    with ControlPlane() as cp:
        cp.kubectl("get", "namespaces")

From a shell (the processes keep running after ``start`` returns)::

    python -m tests.controlplane start --state-dir /tmp/cp   # prints the kubeconfig path
    python -m tests.controlplane stop --state-dir /tmp/cp
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "REPO_ROOT",
    "ControlPlane",
    "ControlPlaneError",
    "KubectlError",
    "build_control_plane",
    "kubernetes_version",
    "main",
    "token_kubeconfig",
    "write_kubeconfig",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The repository root (this file lives in ``<root>/tests/``)."""

BUILD_SCRIPT = REPO_ROOT / "tools" / "build-control-plane.sh"
KUBE_GO_MOD = REPO_ROOT / "tools" / "kube" / "go.mod"

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
KWOK_NODE = "kwok-node-0"
#: The annotation by which kwok knows the nodes it manages.
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
CLUSTER_BINARIES = ("kube-controller-manager", "kube-scheduler", "kwok")
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"

_STATE_FILE = "state.json"
_KUBECONFIG_NAME = "kubeconfig"
_LOG_TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1
_T = TypeVar("_T")


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or stopped."""


class KubectlError(subprocess.CalledProcessError):
    """A kubectl run failed; unlike its base class, the message includes stdout and stderr."""

    def __str__(self) -> str:
        return (
            f"{super().__str__()}\n--- stdout ---\n{self.stdout or ''}"
            f"\n--- stderr ---\n{self.stderr or ''}"
        )


def build_control_plane(timeout: float = 3600.0) -> Path:
    """Run ``tools/build-control-plane.sh`` and return the folder holding the three binaries.

    A warm run (binaries cached, or ``KUBEBUILDER_ASSETS`` set) returns at once; a cold run
    compiles kube-apiserver, which takes 10-25 minutes on two cores.

    Raises:
        ControlPlaneError: the script failed (no Go, a build error, ...) or printed no usable
            folder.
    """
    try:
        proc = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ControlPlaneError(f"{BUILD_SCRIPT} did not finish within {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise ControlPlaneError(
            f"{BUILD_SCRIPT} failed with exit code {proc.returncode}:\n{_tail(proc.stderr)}"
        )
    lines = proc.stdout.strip().splitlines()
    bin_dir = Path(lines[-1]) if lines else None
    if bin_dir is None:
        raise ControlPlaneError(f"{BUILD_SCRIPT} printed no folder; stderr:\n{_tail(proc.stderr)}")
    for name in ("etcd", "kube-apiserver", "kubectl"):
        if not os.access(bin_dir / name, os.X_OK):
            raise ControlPlaneError(f"{BUILD_SCRIPT} printed {bin_dir}, which lacks {name}")
    return bin_dir


def kubernetes_version(go_mod: Path = KUBE_GO_MOD) -> str:
    """The ``k8s.io/kubernetes`` version (e.g. ``v1.36.3``) the control plane is built from."""
    match = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes\s+(v\S+)", go_mod.read_text(), re.M)
    if match is None:
        raise ControlPlaneError(f"{go_mod} does not require k8s.io/kubernetes")
    return match.group(1)


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_pem: bytes,
    user: dict[str, str],
    name: str = "test-control-plane",
    namespace: str | None = None,
) -> Path:
    """Write a self-contained kubeconfig (JSON, which YAML readers accept); return ``path``.

    ``user`` is the kubeconfig ``user`` stanza, e.g. ``{"token": "..."}`` or
    ``{"client-certificate-data": ..., "client-key-data": ...}``. The file is made private (0600).
    """
    context: dict[str, str] = {"cluster": name, "user": name}
    if namespace is not None:
        context["namespace"] = namespace
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": context}],
        "current-context": name,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    return path


def token_kubeconfig(
    path: Path, *, server: str, ca_pem: bytes, token: str, namespace: str | None = None
) -> Path:
    """Write a kubeconfig that authenticates with a bearer ``token`` (e.g. a ServiceAccount's)."""
    return write_kubeconfig(
        path, server=server, ca_pem=ca_pem, user={"token": token}, namespace=namespace
    )


def event_rate_limit_args(folder: Path, limits: Sequence[Mapping[str, object]]) -> list[str]:
    """kube-apiserver flags that turn on the ``EventRateLimit`` admission plugin with ``limits``
    (each ``{"type": "Namespace" | "SourceAndObject" | ..., "qps": n, "burst": n}``), its
    configuration written in ``folder``; pass them as ``extra_apiserver_args`` to start a
    server that limits Events (it answers 429 without Retry-After)."""
    folder.mkdir(parents=True, exist_ok=True)
    plugin = folder / "eventratelimit.json"
    plugin.write_text(
        json.dumps(
            {
                "apiVersion": "eventratelimit.admission.k8s.io/v1alpha1",
                "kind": "Configuration",
                "limits": list(limits),
            }
        )
    )
    admission = folder / "admission.json"
    admission.write_text(
        json.dumps(
            {
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "AdmissionConfiguration",
                "plugins": [{"name": "EventRateLimit", "path": str(plugin)}],
            }
        )
    )
    return [
        "--enable-admission-plugins=EventRateLimit",
        f"--admission-control-config-file={admission}",
    ]


@dataclass(frozen=True)
class _Proc:
    """A started server process as recorded in the state file."""

    name: str
    pid: int
    exe: str
    log: str


class ControlPlane:
    """etcd + kube-apiserver on loopback, with certificates, RBAC and an admin kubeconfig.

    Call :meth:`start` (or use the object as a context manager), then :meth:`stop`. After
    ``start`` the attributes below are set; before it, reading them raises.

    Attributes:
        bin_dir: folder holding ``etcd``, ``kube-apiserver`` and ``kubectl``.
        work_dir: temporary folder with certificates, etcd data, logs and the kubeconfig.
        server: the API server URL, ``https://127.0.0.1:<port>`` (or ``node_address``).
        kubeconfig: path of the admin kubeconfig (user in group ``system:masters``).
        ca_pem: PEM of the CA that signs the serving certificate (and the admin client
            certificate); use it as a ``caBundle`` or to verify the server.
        ca_file: the same CA as a file.
        ca: the :class:`trustme.CA` itself, e.g. to issue a webhook's serving certificate
            that ``ca_pem`` already vouches for.
        startup_seconds: wall time from launching etcd to ``/readyz`` answering ``ok``.
    """

    def __init__(
        self,
        *,
        bin_dir: Path | None = None,
        work_parent: Path | None = None,
        ready_timeout: float = 90.0,
        die_with_parent: bool = True,
        extra_apiserver_args: Sequence[str] = (),
        node_address: str | None = None,
    ) -> None:
        """Configure, but do not start, a control plane.

        Args:
            bin_dir: use these binaries instead of running ``tools/build-control-plane.sh``.
            work_parent: create the work folder in here (default: the system temp folder).
            ready_timeout: seconds to wait for ``/readyz``.
            die_with_parent: on Linux, have the kernel SIGKILL etcd and kube-apiserver when this
                process dies (so a killed test run leaks nothing). The CLI turns it off. Linux
                ties this to the *thread* that calls :meth:`start`: call it from a thread that
                outlives the control plane (not, say, from ``asyncio.to_thread``).
            extra_apiserver_args: appended to kube-apiserver's command line.
            node_address: for a real node (tests/realnode.py): kube-apiserver listens on this
                host address instead of loopback (pods reach it there through the
                ``kubernetes`` Service; their loopback is their own), advertises it, and reaches
                kubelets at their InternalIP (the node names do not resolve).
        """
        self._bin_dir = bin_dir
        self._work_parent = work_parent
        self.ready_timeout = ready_timeout
        self.die_with_parent = die_with_parent
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.node_address = node_address
        self._work_dir: Path | None = None
        self._server: str | None = None
        self._kubeconfig: Path | None = None
        self._ca: trustme.CA | None = None
        self._procs: list[_Proc] = []
        self._apiserver_args: list[str] = []
        self._popens: dict[int, subprocess.Popen[bytes]] = {}
        #: Each server's command-line arguments and health URL (with its TLS context), to
        #: start it again after `stop_server`.
        self._args: dict[str, list[str]] = {}
        self._health: dict[str, tuple[str, ssl.SSLContext | None]] = {}
        self.startup_seconds: float | None = None

    # -- attributes available after start() ------------------------------------------------

    @property
    def bin_dir(self) -> Path:
        return _require(self._bin_dir, "bin_dir")

    @property
    def work_dir(self) -> Path:
        return _require(self._work_dir, "work_dir")

    @property
    def server(self) -> str:
        return _require(self._server, "server")

    @property
    def kubeconfig(self) -> Path:
        return _require(self._kubeconfig, "kubeconfig")

    @property
    def ca(self) -> trustme.CA:
        return _require(self._ca, "ca")

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    @property
    def ca_file(self) -> Path:
        return self.work_dir / "pki" / "ca.crt"

    @property
    def pids(self) -> dict[str, int]:
        """``{"etcd": pid, "kube-apiserver": pid}`` for the processes started (and not stopped)."""
        return {p.name: p.pid for p in self._procs}

    def log_path(self, name: str) -> Path:
        """The combined stdout/stderr log of ``etcd``, ``kube-apiserver`` or a cluster part."""
        return self.work_dir / f"{name}.log"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Build or locate the binaries, then start etcd and kube-apiserver and wait for readiness.

        On any failure everything already started is stopped and :class:`ControlPlaneError` is
        raised, with the tail of the server logs in its message.
        """
        if self._procs:
            raise ControlPlaneError("control plane already started")
        if self._bin_dir is None:
            self._bin_dir = build_control_plane()
        self._work_dir = Path(tempfile.mkdtemp(prefix="kube-cp-", dir=self._work_parent))
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        work = self.work_dir
        pki = work / "pki"
        pki.mkdir()

        ca = self._ca = trustme.CA(organization_name="kube-event-sidecar test control plane")
        ca.cert_pem.write_to_path(str(pki / "ca.crt"))
        serving = ca.issue_cert(
            "127.0.0.1", "localhost", "kubernetes", "kubernetes.default",
            "kubernetes.default.svc", "10.0.0.1", *filter(None, [self.node_address]),
            common_name="kube-apiserver",
        )  # fmt: skip
        _write_private(pki / "apiserver.key", serving.private_key_pem.bytes())
        _write_leaf(pki / "apiserver.crt", serving)
        admin = ca.issue_cert(
            "kube-admin.invalid", common_name="kube-admin", organization_name="system:masters"
        )
        _write_private(pki / "admin.key", admin.private_key_pem.bytes())
        _write_leaf(pki / "admin.crt", admin)
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_private(
            pki / "sa.key",
            sa_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )

        etcd_port, peer_port, api_port = _free_ports(3)
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        address = self.node_address or "127.0.0.1"
        self._server = f"https://{address}:{api_port}"

        began = time.monotonic()
        deadline = began + self.ready_timeout
        self._spawn(
            "etcd",
            [
                "--name=default",
                f"--data-dir={work / 'etcd-data'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync",
            ],
        )
        self._health["etcd"] = (f"{etcd_url}/health", None)
        self._wait_http("etcd", f"{etcd_url}/health", None, deadline)
        self._apiserver_args = [
            f"--etcd-servers={etcd_url}",
            f"--bind-address={address}",
            f"--advertise-address={address}",
            f"--secure-port={api_port}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki / 'sa.key'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            *(["--kubelet-preferred-address-types=InternalIP"] if self.node_address else []),
            *self.extra_apiserver_args,
        ]
        self._spawn("kube-apiserver", self._apiserver_args)
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self._health["kube-apiserver"] = (f"{self._server}/readyz", ctx)
        self._wait_http("kube-apiserver", f"{self._server}/readyz", ctx, deadline)
        self.startup_seconds = time.monotonic() - began

        self._kubeconfig = write_kubeconfig(
            work / _KUBECONFIG_NAME,
            server=self._server,
            ca_pem=ca.cert_pem.bytes(),
            user={
                "client-certificate-data": _b64(admin.cert_chain_pems[0].bytes()),
                "client-key-data": _b64(admin.private_key_pem.bytes()),
            },
        )

    def _spawn(self, name: str, args: list[str]) -> None:
        self._args[name] = args
        exe = str(self.bin_dir / name)
        log = self.log_path(name)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [exe, *args],
                cwd=self.work_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own session and process group: no terminal signals
                preexec_fn=_die_with_parent_preexec() if self.die_with_parent else None,  # noqa: PLW1509
            )
        self._popens[popen.pid] = popen
        self._procs.append(_Proc(name=name, pid=popen.pid, exe=exe, log=str(log)))
        # etcd first, so that `stop` stops kube-apiserver before it, even after a restart.
        self._procs.sort(key=lambda p: p.name != "etcd")

    def stop_server(self, name: str) -> None:
        """Stop ``etcd`` or ``kube-apiserver`` (SIGCONT, SIGTERM, wait, SIGKILL) and keep its
        arguments and data for :meth:`start_server`."""
        proc = self._proc(name)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        _terminate(proc.pid, self._popens.pop(proc.pid, None))
        self._procs.remove(proc)

    def start_server(self, name: str) -> float:
        """Start a server stopped by :meth:`stop_server` again, with the same arguments, and
        wait until it answers its health check; return the seconds that took."""
        if name in self.pids:
            raise ControlPlaneError(f"{name} is running")
        began = time.monotonic()
        self._spawn(name, self._args[name])
        url, ctx = self._health[name]
        self._wait_http(name, url, ctx, began + self.ready_timeout)
        return time.monotonic() - began

    def signal_server(self, name: str, signum: signal.Signals) -> None:
        """Send ``etcd`` or ``kube-apiserver`` a signal (``SIGSTOP`` freezes it, ``SIGCONT``
        thaws it)."""
        os.kill(self._proc(name).pid, signum)

    def _proc(self, name: str) -> _Proc:
        for proc in self._procs:
            if proc.name == name:
                return proc
        raise ControlPlaneError(f"{name} is not running")

    def _wait_http(self, name: str, url: str, ctx: ssl.SSLContext | None, deadline: float) -> None:
        """Poll ``url`` until it answers 200, the process exits, or ``deadline`` passes."""
        popen = next(self._popens[p.pid] for p in self._procs if p.name == name)
        last = "no answer yet"
        while True:
            if popen.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with code {popen.returncode} during start-up\n{self._logs()}"
                )
            try:
                with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                body = exc.read().decode(errors="replace").splitlines()
                failing = [line for line in body if line.startswith("[-]")] or body[-5:]
                last = f"HTTP {exc.code}: " + "; ".join(failing)
            except (OSError, ssl.SSLError) as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{name} not ready after {self.ready_timeout:.0f} s ({url}: {last})\n"
                    f"{self._logs()}"
                )
            time.sleep(0.25)

    def _logs(self) -> str:
        """The tail of each server's log, kube-apiserver's first."""
        parts = []
        for p in reversed(self._procs):
            parts.append(f"--- last lines of {p.log} ---\n{_tail(_read(Path(p.log)))}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop kube-apiserver then etcd (SIGTERM, wait, SIGKILL) and remove the work folder.

        Safe to call more than once, and after a failed :meth:`start`.
        """
        for p in reversed(self._procs):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGCONT)  # a frozen server cannot act on SIGTERM
            _terminate(p.pid, self._popens.get(p.pid))
        self._procs.clear()
        self._popens.clear()
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None
            self._kubeconfig = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def restart_apiserver(self) -> None:
        """Stop kube-apiserver (SIGTERM, as an upgrade would) and start it again with the same
        flags on the same port; return once it answers ``/readyz``. Clients' connections and
        streams (watches, followed logs) break meanwhile."""
        [old] = [p for p in self._procs if p.name == "kube-apiserver"]
        _terminate(old.pid, self._popens.pop(old.pid, None))
        self._procs.remove(old)
        self._spawn("kube-apiserver", self._apiserver_args)
        pki = self.work_dir / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        deadline = time.monotonic() + self.ready_timeout
        self._wait_http("kube-apiserver", f"{self.server}/readyz", ctx, deadline)

    def start_cluster(
        self, kwok_config: Sequence[dict[str, Any]] = (), *, simulated_node: bool = True
    ) -> None:
        """Start kube-controller-manager, kube-scheduler and kwok, register ``KWOK_NODE`` and
        wait until it is Ready. ``kwok_config`` adds kwok objects (``ClusterLogs``, ``Logs``) to
        its stock stages; kwok reads them once, at start. :meth:`stop` stops them by pid.
        ``simulated_node=False`` starts no kwok and registers no node: a real one joins
        (tests/realnode.py).

        Raises:
            ControlPlaneError: a binary is missing (``KUBEBUILDER_ASSETS`` without them) or a
                component does not come up.
        """
        wanted = CLUSTER_BINARIES if simulated_node else CLUSTER_BINARIES[:2]
        missing = [b for b in wanted if not os.access(self.bin_dir / b, os.X_OK)]
        stages = (self.bin_dir / "kwok-stages.yaml").is_file() or not simulated_node
        if missing or not stages:
            raise ControlPlaneError(
                f"{self.bin_dir} lacks {', '.join(missing) or 'kwok-stages.yaml'}: build the "
                "cluster with tools/build-control-plane.sh (unset KUBEBUILDER_ASSETS)"
            )
        pki = self.work_dir / "pki"
        kcm_port, scheduler_port, kwok_port = _free_ports(3)
        kubeconfig = str(self.kubeconfig)
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--use-service-account-credentials=false",
                "--controllers=*",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={scheduler_port}",
            ],
        )
        if not simulated_node:
            return
        work = self.work_dir
        kwok_serving = self.ca.issue_cert("127.0.0.1", "localhost", common_name="kwok")
        _write_private(pki / "kwok.key", kwok_serving.private_key_pem.bytes())
        _write_leaf(pki / "kwok.crt", kwok_serving)
        config = work / "kwok.yaml"
        config.write_text(
            (self.bin_dir / "kwok-stages.yaml").read_text()
            + "".join("\n---\n" + json.dumps(item) for item in kwok_config)
        )
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={kubeconfig}",
                f"--config={config}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                "--node-ip=127.0.0.1",
                f"--node-port={kwok_port}",
                f"--server-address=127.0.0.1:{kwok_port}",
                f"--tls-cert-file={pki / 'kwok.crt'}",
                f"--tls-private-key-file={pki / 'kwok.key'}",
            ],
        )
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": KWOK_NODE,
                "annotations": {KWOK_NODE_ANNOTATION: "fake"},
                "labels": {"kubernetes.io/hostname": KWOK_NODE, "type": "kwok"},
            },
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(node))
        waited = self.kubectl(
            "wait", "--for=condition=Ready", f"node/{KWOK_NODE}", "--timeout=90s",
            check=False, timeout=120,
        )  # fmt: skip
        if waited.returncode != 0:
            raise ControlPlaneError(f"{KWOK_NODE} not Ready: {waited.stderr}\n{self._logs()}")

    # -- clients ---------------------------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        kubeconfig: Path | None = None,
        input: str | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl with ``--kubeconfig`` (the admin one, or ``kubeconfig``).

        Raises:
            KubectlError: ``check`` is true and kubectl exited non-zero.
        """
        cmd = [
            str(self.bin_dir / "kubectl"),
            f"--kubeconfig={kubeconfig or self.kubeconfig}",
            *args,
        ]
        env = {**os.environ, "KUBECACHEDIR": str(self.work_dir / "kube-cache")}
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def token_kubeconfig(self, token: str, path: Path, namespace: str | None = None) -> Path:
        """Write a kubeconfig for this server that authenticates with a bearer ``token``."""
        return token_kubeconfig(
            path, server=self.server, ca_pem=self.ca_pem, token=token, namespace=namespace
        )

    # -- state file, for the CLI -----------------------------------------------------------

    def save_state(self, state_dir: Path) -> Path:
        """Record pids, paths and a copy of the admin kubeconfig in ``state_dir``.

        Returns the kubeconfig copy's path.
        """
        state_dir.mkdir(parents=True, exist_ok=True)
        kubeconfig = state_dir / _KUBECONFIG_NAME
        shutil.copyfile(self.kubeconfig, kubeconfig)
        kubeconfig.chmod(0o600)
        state = {
            "server": self.server,
            "work_dir": str(self.work_dir),
            "bin_dir": str(self.bin_dir),
            "kubeconfig": str(kubeconfig),
            "ca_file": str(self.ca_file),
            "processes": [p.__dict__ for p in self._procs],
        }
        (state_dir / _STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
        return kubeconfig

    @staticmethod
    def stop_from_state(state_dir: Path) -> list[str]:
        """Kill the processes recorded by :meth:`save_state` and remove their work folder.

        A pid is only signalled while it still runs the recorded executable (pid reuse).
        Returns a line per process describing what was done.
        """
        state_file = state_dir / _STATE_FILE
        state = json.loads(state_file.read_text())
        done = []
        for raw in reversed(state["processes"]):
            p = _Proc(**raw)
            if _runs(p.pid, p.exe):
                _terminate(p.pid, None)
                done.append(f"stopped {p.name} (pid {p.pid})")
            else:
                done.append(f"{p.name} (pid {p.pid}) was not running")
        shutil.rmtree(state["work_dir"], ignore_errors=True)
        state_file.unlink()
        Path(state["kubeconfig"]).unlink(missing_ok=True)
        return done


# -- helpers -------------------------------------------------------------------------------


def _require(value: _T | None, name: str) -> _T:
    if value is None:
        raise ControlPlaneError(f"{name} is only available after ControlPlane.start()")
    return value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _write_leaf(path: Path, leaf: trustme.LeafCert) -> None:
    path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (all held open together, then released)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def _die_with_parent_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when its parent thread exits.

    ``prctl`` is looked up here, in the parent, so the forked child only makes the call.
    """
    if sys.platform != "linux":
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return preexec


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read: {exc})"


def _tail(text: str, lines: int = _LOG_TAIL_LINES, width: int = 400) -> str:
    """The last ``lines`` lines of ``text``, each cut to ``width`` characters."""
    return "\n".join(line[:width] for line in text.rstrip().splitlines()[-lines:])


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _runs(pid: int, exe: str) -> bool:
    """Whether ``pid`` is alive and was started from ``exe``."""
    if not _alive(pid):
        return False
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except OSError:
        return True  # no /proc: trust the recorded pid
    return argv0 == exe


def _terminate(pid: int, popen: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    """SIGTERM ``pid``, wait up to ``timeout`` seconds, then SIGKILL it."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        if popen is not None and popen.poll() is not None:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(wait)
                return
        else:
            end = time.monotonic() + wait
            while _alive(pid) and time.monotonic() < end:
                time.sleep(0.1)
            if not _alive(pid):
                return
    raise ControlPlaneError(f"pid {pid} survived SIGKILL")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.controlplane {start,stop} --state-dir DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.controlplane", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument(
        "--state-dir", type=Path, required=True, help="where pids and the kubeconfig are kept"
    )
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir.resolve()

    if args.command == "start":
        if (state_dir / _STATE_FILE).exists():
            parser.error(f"{state_dir / _STATE_FILE} exists: stop that control plane first")
        state_dir.mkdir(parents=True, exist_ok=True)
        cp = ControlPlane(work_parent=state_dir, die_with_parent=False)
        cp.start()
        kubeconfig = cp.save_state(state_dir)
        print(
            f"control plane {cp.server} ready in {cp.startup_seconds:.1f} s; "
            f"pids {cp.pids}; logs in {cp.work_dir}",
            file=sys.stderr,
        )
        print(kubeconfig)
        return 0

    if not (state_dir / _STATE_FILE).exists():
        print(f"no control plane recorded in {state_dir}", file=sys.stderr)
        return 1
    for line in ControlPlane.stop_from_state(state_dir):
        print(line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
