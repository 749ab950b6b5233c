"""A real node for the test cluster: containerd, runc and the CNI plugins from Debian, kubelet and
kube-proxy built from the control plane's Kubernetes version (``tools/build-node.sh``).

:class:`RealNode` joins a :class:`~tests.controlplane.ControlPlane` started with
``node_address=host_address()`` (kube-apiserver on the host's address, which pods reach through
the ``kubernetes`` Service) and ``start_cluster(simulated_node=False)``. It runs everything from one
temporary folder (containerd's root and state, the kubelet's root and pod logs, the CNI
configuration and address leases), imports images from podman's storage into containerd
(``podman save | ctr images import``; nothing is pulled, no registry is reachable) and waits for
the node to be Ready.

Settings this machine needs (hybrid cgroup v1, no systemd, root without CAP_SYS_RESOURCE):
``failCgroupV1: false`` and ``cgroupDriver: cgroupfs`` for the kubelet, containerd's
``restrict_oom_score_adj`` (else a sandbox fails with "can't get final child's PID from pipe"),
no OOM score changes for kubelet and kube-proxy.

A host runs one real node at a time (kube-proxy's iptables chains and the kubepods cgroups are
host-wide): a lock file serializes them. :meth:`RealNode.stop` leaves the host as it was:
processes stopped by pid (kubelet, kube-proxy, the containers, the shims, containerd), the mounts
under the work folder unmounted, the kubepods cgroups, the CNI bridge and its veths, the
KUBE-/CNI- iptables chains that were not there before removed, and the sysctls the kubelet,
kube-proxy and the bridge plugin set restored. A run that was killed (its kubelet and containerd
die with it; its containers do not) is undone by the next start, from the record it left.
Nothing falls back: a node that cannot start raises :class:`NodeError` with the reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from tests.controlplane import (
    REPO_ROOT,
    ControlPlane,
    _die_with_parent_preexec,
    _free_ports,
    _read,
    _tail,
    _terminate,
)

__all__ = [
    "CONTROLLER_IMAGE",
    "NODE_NAME",
    "NodeError",
    "RealNode",
    "build_controller_image",
    "build_node",
    "host_address",
    "host_state",
]

BUILD_SCRIPT = REPO_ROOT / "tools" / "build-node.sh"
CONTAINERS_CONF = REPO_ROOT / "tools" / "containers.conf"
#: tools/build-image.sh's stand-in base (Debian 12's Python 3.11): the stand-in controller's too.
STAND_IN_BASE = "localhost/event-sidecar-base:python3.11-bookworm"
#: The image manifests/example names for its controller; here a stand-in (see
#: :func:`build_controller_image`).
CONTROLLER_IMAGE = "registry.example.com/quota-autoscaler:v1.4.2"
#: The stand-in controller's label: a digest of its script and log, to rebuild it when they change.
STAND_IN_LABEL = "io.kube-event-sidecar.stand-in"
PAUSE_IMAGE = "localhost/kube-event-sidecar/pause:catatonit"
NODE_NAME = "real-node-0"
POD_CIDR = "10.244.0.0/24"
BRIDGE = "kes-cni0"
CNI_BIN_DIR = Path("/usr/lib/cni")
LOCK_FILE = Path("/run/lock/kube-event-sidecar-real-node.lock")
#: The host's state before the node started, while it runs (what the next start undoes if this
#: run is killed).
RECORD_FILE = Path("/run/lock/kube-event-sidecar-real-node.json")
#: Chain prefixes that kubelet, kube-proxy and the CNI plugins create.
CHAIN_PREFIXES = ("KUBE-", "CNI-")
#: Set by the kubelet (setupKernelTunables), kube-proxy and the bridge plugin; restored by stop().
SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.ip_forward",
    "net.ipv6.conf.all.forwarding",
    "net.ipv4.conf.all.route_localnet",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
)
#: The kubelet makes this folder (a constant, not under its root) for its log symlinks.
LEGACY_LOG_DIR = Path("/var/log/containers")
_CONTROLLER_SCRIPT = '''\
"""Stand-in for the example's controller: prints examples/quota-autoscaler.log, each line stamped
with the current time, as the live controller would, then waits to be stopped. It writes to stderr
(what the example's controller does), or, for the sidecar's two other sources, appends to the file
$LOG_FILE names (on the shared emptyDir) or sends to the socket $EVENT_SIDECAR_SOCKET names (the
injected env; the sidecar may still be starting, so connecting is retried for 30 s)."""
import datetime, json, os, re, signal, socket, sys, time

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 ignores it by default
KLOG = re.compile(r"^([IWEF])\\d{4} \\d\\d:\\d\\d:\\d\\d\\.\\d{6}")


def output():
    if os.environ.get("LOG_FILE"):
        return open(os.environ["LOG_FILE"], "a", encoding="utf-8")
    address = os.environ.get("EVENT_SIDECAR_SOCKET")
    if not address:
        return sys.stderr
    for _ in range(300):
        try:
            if address.startswith("tcp://"):
                host, _, port = address[len("tcp://"):].rpartition(":")
                connection = socket.create_connection((host, int(port)), timeout=5)
            else:
                connection = socket.socket(socket.AF_UNIX)
                connection.connect(address.removeprefix("unix://"))
            return connection.makefile("w", encoding="utf-8")
        except OSError:
            time.sleep(0.1)
    sys.exit(f"cannot connect to {address}")


out = output()
# $REPEAT times over (a busy controller, to make the kubelet rotate its log); once by default.
lines = [line for _ in range(int(os.environ.get("REPEAT", "1")))
         for line in open("/quota-autoscaler.log", encoding="utf-8")]
for line in lines:
    now = datetime.datetime.now(datetime.timezone.utc)
    line = line.rstrip("\\n")
    if line.startswith("{"):
        record = json.loads(line)
        if "ts" in record:
            record["ts"] = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    else:
        line = KLOG.sub(lambda m: m.group(1) + now.strftime("%m%d %H:%M:%S.%f"), line)
    print(line, file=out, flush=True)
    time.sleep(0.005)
while True:
    time.sleep(3600)
'''


class NodeError(RuntimeError):
    """The real node could not be built, started or torn down; the message says why."""


def _run(
    cmd: Sequence[str],
    *,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    stdin: int | IO[bytes] | None = subprocess.DEVNULL,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; raise :class:`NodeError` with its output if it fails."""
    proc = subprocess.run(
        list(cmd),
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise NodeError(
            f"{shlex.join(cmd)} failed ({proc.returncode}):\n{_tail(proc.stdout + proc.stderr)}"
        )
    return proc


def build_node(timeout: float = 3600.0) -> Path:
    """Run ``tools/build-node.sh``; the folder holding ``kubelet`` and ``kube-proxy``."""
    try:
        proc = _run(["bash", str(BUILD_SCRIPT)], timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise NodeError(f"{BUILD_SCRIPT} did not finish within {timeout:.0f} s") from exc
    folder = Path(proc.stdout.strip().splitlines()[-1])
    for name in ("kubelet", "kube-proxy"):
        if not os.access(folder / name, os.X_OK):
            raise NodeError(f"{BUILD_SCRIPT} printed {folder}, which lacks {name}")
    return folder


def host_address() -> str:
    """The host's first global IPv4 address: the kubelet's node IP and the address pods reach
    kube-apiserver on (loopback inside a pod is the pod's own)."""
    out = _run(["ip", "-j", "-4", "addr", "show", "scope", "global"]).stdout
    for link in json.loads(out):
        for info in link.get("addr_info", ()):
            if info.get("family") == "inet" and not link.get("ifname", "").startswith(BRIDGE):
                return str(info["local"])
    raise NodeError("the host has no global IPv4 address for the node")


def _podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def _image_exists(name: str) -> bool:
    return (
        subprocess.run(
            ["podman", "image", "exists", name], env=_podman_env(), timeout=60, check=False
        ).returncode
        == 0
    )


def _image_label(name: str, label: str) -> str:
    """A label of a local image ("" without it): what the stand-in was built from."""
    done = subprocess.run(
        ["podman", "image", "inspect", "--format", f'{{{{ index .Labels "{label}" }}}}', name],
        env=_podman_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def build_pause_image() -> str:
    """The sandbox image: Debian's static catatonit in pause mode, from scratch (0.7 MB; kept)."""
    if not _image_exists(PAUSE_IMAGE):
        catatonit = shutil.which("catatonit")
        if catatonit is None:
            raise NodeError("catatonit is required for the pause image: make system-deps")
        env = _podman_env()
        container = _run(["buildah", "from", "scratch"], env=env).stdout.strip()
        try:
            _run(["buildah", "copy", container, catatonit, "/pause"], env=env)
            _run(["buildah", "config", "--entrypoint", '["/pause", "-P"]', container], env=env)
            _run(["buildah", "commit", "--quiet", container, PAUSE_IMAGE], env=env)
        finally:
            subprocess.run(["buildah", "rm", container], env=env, capture_output=True, check=False)
    return PAUSE_IMAGE


def build_controller_image() -> str:
    """The example's controller, stood in for by a script printing the example log (stamped now;
    to stderr, a file or a socket) on the sidecar image's stand-in base; kept until the script
    or the log changes. Needs that base (``BASE=debian tools/build-image.sh`` makes it)."""
    example = REPO_ROOT / "examples" / "quota-autoscaler.log"
    digest = hashlib.sha256(_CONTROLLER_SCRIPT.encode() + example.read_bytes()).hexdigest()
    if _image_exists(CONTROLLER_IMAGE) and _image_label(CONTROLLER_IMAGE, STAND_IN_LABEL) == digest:
        return CONTROLLER_IMAGE
    if not _image_exists(STAND_IN_BASE):
        raise NodeError(f"{STAND_IN_BASE} is missing: BASE=debian tools/build-image.sh makes it")
    env = _podman_env()
    with tempfile.TemporaryDirectory(prefix="kes-controller-") as tmp:
        context = Path(tmp)
        (context / "controller.py").write_text(_CONTROLLER_SCRIPT)
        shutil.copyfile(example, context / "example.log")
        (context / "Containerfile").write_text(
            f"FROM {STAND_IN_BASE}\n"
            "COPY controller.py /controller.py\n"
            "COPY example.log /quota-autoscaler.log\n"
            f"LABEL {STAND_IN_LABEL}={digest}\n"
            "USER 65532:65532\n"
            'ENTRYPOINT ["python3", "-u", "/controller.py"]\n'
        )
        _run(
            ["buildah", "bud", "--quiet", "--pull=never", "--tag", CONTROLLER_IMAGE, str(context)],
            env=env,
            timeout=300,
        )
    return CONTROLLER_IMAGE


# -- host state: recorded before, restored after ---------------------------------------------


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls() -> dict[str, str]:
    """The current values of :data:`SYSCTLS` (those this kernel has)."""
    values = {}
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            values[name] = _sysctl_path(name).read_text().strip()
    return values


def restore_sysctls(before: dict[str, str]) -> list[str]:
    """Write back each value that changed; the names that could not be restored."""
    failed = []
    for name, value in before.items():
        path = _sysctl_path(name)
        try:
            if path.read_text().strip() != value:
                path.write_text(value + "\n")
        except OSError:
            failed.append(name)
    return failed


def _iptables_tools() -> list[str]:
    return [tool for tool in ("iptables", "ip6tables") if shutil.which(tool)]


def node_chains() -> set[tuple[str, str, str]]:
    """(tool, table, chain) of every KUBE-/CNI- chain now."""
    chains = set()
    for tool in _iptables_tools():
        dump = subprocess.run(
            [f"{tool}-save"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
        table = ""
        for line in dump.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":") and line[1:].startswith(CHAIN_PREFIXES):
                chains.add((tool, table, line[1:].split()[0]))
    return chains


def remove_chains(chains: set[tuple[str, str, str]]) -> None:
    """Delete the rules that jump to ``chains`` from other chains, then flush and delete them."""
    by_table: dict[tuple[str, str], set[str]] = {}
    for tool, table, chain in chains:
        by_table.setdefault((tool, table), set()).add(chain)
    for (tool, table), names in by_table.items():
        dump = subprocess.run(
            [f"{tool}-save", "-t", table], capture_output=True, text=True, timeout=30, check=False
        ).stdout
        for line in dump.splitlines():
            if not line.startswith("-A "):
                continue
            words = shlex.split(line)
            owner = words[1]
            target = words[words.index("-j") + 1] if "-j" in words else ""
            if owner not in names and target in names:
                subprocess.run(
                    [tool, "-w", "5", "-t", table, "-D", *words[1:]],
                    capture_output=True,
                    timeout=30,
                    check=False,
                )
        for verb in ("-F", "-X"):
            for chain in sorted(names):
                subprocess.run(
                    [tool, "-w", "5", "-t", table, verb, chain],
                    capture_output=True,
                    timeout=30,
                    check=False,
                )


def _mounts_under(folder: Path) -> list[str]:
    """Mount points at or under ``folder``, deepest first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == str(folder) or point.startswith(str(folder) + "/"):
            points.append(point)
    return sorted(points, key=lambda p: p.count("/"), reverse=True)


def unmount_under(folder: Path) -> None:
    for _ in range(3):  # a mount can hide another at the same point
        points = _mounts_under(folder)
        if not points:
            return
        for point in points:
            done = subprocess.run(["umount", point], capture_output=True, timeout=30, check=False)
            if done.returncode != 0:
                subprocess.run(
                    ["umount", "-l", point], capture_output=True, timeout=30, check=False
                )


def _cgroup_roots() -> list[Path]:
    roots = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[0] in ("cgroup", "cgroup2"):
            roots.append(Path(left.split()[4]))
    return roots


def kubepods_cgroups() -> list[Path]:
    return [root / "kubepods" for root in _cgroup_roots() if (root / "kubepods").is_dir()]


def kill_and_remove_kubepods() -> list[str]:
    """SIGKILL every process left in the kubepods cgroups (the containers, by pid), then remove
    those cgroups, deepest first; the ones that would not go."""
    deadline = time.monotonic() + 20
    while True:
        pids: set[int] = set()
        for top in kubepods_cgroups():
            for procs in top.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in procs.read_text().split())
        if not pids or time.monotonic() > deadline:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    left = []
    for top in kubepods_cgroups():
        folders = sorted(
            (p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        )
        for folder in [*folders, top]:
            try:
                folder.rmdir()
            except OSError as exc:
                left.append(f"{folder}: {exc}")
    return left


def _links_on_bridge() -> list[str]:
    done = subprocess.run(
        ["ip", "-j", "link", "show", "master", BRIDGE],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        return []
    return [str(link["ifname"]) for link in json.loads(done.stdout)]


def remove_bridge() -> None:
    for link in _links_on_bridge():
        subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=30, check=False)
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, timeout=30, check=False)


def _pids_naming(needle: str) -> list[int]:
    """Processes whose command line mentions ``needle`` (containerd's shims name its socket)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
    return pids


def host_state() -> dict[str, object]:
    """What a real node changes on the host, to compare before and after one ran."""
    return {
        "sysctls": read_sysctls(),
        "chains": sorted(node_chains()),
        "kubepods cgroups": [str(p) for p in kubepods_cgroups()],
        "bridge": subprocess.run(
            ["ip", "link", "show", BRIDGE], capture_output=True, timeout=30, check=False
        ).returncode
        == 0,
        "work folders": sorted(str(p) for p in Path(tempfile.gettempdir()).glob("kes-node-*")),
        "processes": _pids_naming("/kes-node-"),
        LEGACY_LOG_DIR.name: LEGACY_LOG_DIR.exists(),
        "/run/containerd": Path("/run/containerd").exists(),
    }


# -- the node --------------------------------------------------------------------------------


class RealNode:
    """containerd + kubelet + kube-proxy on this host, joined to ``cp`` as :data:`NODE_NAME`.

    Attributes (after :meth:`start`):
        work_dir: the temporary folder everything lives in.
        address: the host address the node registers (``--node-ip``).
        startup_seconds: wall time of :meth:`start` (images imported, node Ready).
        host_before: :func:`host_state` before the node changed anything (after undoing a
            killed run's changes): what :meth:`stop` leaves.
    """

    def __init__(
        self,
        cp: ControlPlane,
        *,
        images: Sequence[str] = (),
        bin_dir: Path | None = None,
        ready_timeout: float = 90.0,
        kubelet_config: Mapping[str, object] | None = None,
    ) -> None:
        """``kubelet_config``: KubeletConfiguration fields that replace the defaults here (a
        small ``containerLogMaxSize``, say)."""
        self.cp = cp
        self.kubelet_config = dict(kubelet_config or {})
        self.images = list(images)
        self._bin_dir = bin_dir
        self.ready_timeout = ready_timeout
        self.work_dir = Path()
        self.address = ""
        self.startup_seconds = 0.0
        self.host_before: dict[str, object] = {}
        #: Seconds each step of the last stop took.
        self.stop_seconds: dict[str, float] = {}
        self._lock: IO[bytes] | None = None
        self._popens: dict[str, subprocess.Popen[bytes]] = {}
        self._sysctls: dict[str, str] = {}
        self._chains: set[tuple[str, str, str]] = set()
        self._legacy_log_dir_existed = True
        self._run_containerd_existed = True

    @property
    def socket(self) -> Path:
        return self.work_dir / "containerd" / "containerd.sock"

    def log_path(self, name: str) -> Path:
        return self.work_dir / f"{name}.log"

    def ctr(self, *args: str, timeout: float = 120, stdin: IO[bytes] | None = None) -> str:
        """Run Debian's ``ctr`` against this node's containerd, in the kubelet's namespace."""
        cmd = ["ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args]
        return _run(
            cmd, timeout=timeout, stdin=stdin if stdin is not None else subprocess.DEVNULL
        ).stdout

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        began = time.monotonic()
        for tool in ("containerd", "ctr", "runc", "podman", "buildah", "iptables", "ip"):
            if shutil.which(tool) is None:
                raise NodeError(f"{tool} is required for the real node: make system-deps")
        for plugin in ("bridge", "host-local", "portmap"):
            if not (CNI_BIN_DIR / plugin).is_file():
                raise NodeError(f"{CNI_BIN_DIR / plugin} is missing: make system-deps")
        if os.geteuid() != 0:
            raise NodeError("the real node needs root (namespaces, cgroups, iptables)")
        bin_dir = self._bin_dir or build_node()
        self._take_lock()
        try:
            if RECORD_FILE.exists():  # a run that was killed: undo what it did first
                self._load_record()
                self._undo(kill_all=True)
            elif busy := kubepods_cgroups():
                raise NodeError(f"{busy[0]} exists: is another kubelet running on this host?")
            self.host_before = host_state()
            self._sysctls = read_sysctls()
            self._chains = node_chains()
            self._legacy_log_dir_existed = LEGACY_LOG_DIR.exists()
            self._run_containerd_existed = Path("/run/containerd").exists()
            self.work_dir = Path(tempfile.mkdtemp(prefix="kes-node-"))
            self._save_record()
            self.address = host_address()
            self._start(bin_dir)
        except BaseException as exc:
            try:
                self.stop()
            except NodeError as undo:  # the reason it failed stays the error
                exc.add_note(str(undo))
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def _take_lock(self) -> None:
        LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
        lock = LOCK_FILE.open("wb")
        deadline = time.monotonic() + 600
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    lock.close()
                    raise NodeError(f"another real node holds {LOCK_FILE} for 10 minutes") from None
                time.sleep(1)
        self._lock = lock

    def _start(self, bin_dir: Path) -> None:
        work = self.work_dir
        cni_conf = work / "cni" / "net.d"
        cni_conf.mkdir(parents=True)
        (cni_conf / "10-kes.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "0.4.0",
                    "name": "kes-node",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": BRIDGE,
                            "isGateway": True,
                            "ipMasq": False,  # pods talk only to this host
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_CIDR}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": str(work / "cni" / "ipam"),
                            },
                        },
                        {"type": "portmap", "capabilities": {"portMappings": True}},
                    ],
                }
            )
        )
        containerd = work / "containerd"
        config = containerd / "config.toml"
        containerd.mkdir()
        cri = '[plugins."io.containerd.grpc.v1.cri"]'
        runc = f"{cri[:-1]}.containerd.runtimes.runc]"
        config.write_text(
            f"""version = 2
root = "{containerd / "root"}"
state = "{containerd / "state"}"
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{containerd / "ttrpc.sock"}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{containerd / "opt"}"
{cri}
  sandbox_image = "{PAUSE_IMAGE}"
  # Root here lacks CAP_SYS_RESOURCE: runc cannot lower a sandbox's oom_score_adj.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  disable_apparmor = true
{cri[:-1]}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
{runc}
  runtime_type = "io.containerd.runc.v2"
{runc[:-1]}.options]
  BinaryName = "{shutil.which("runc")}"
  Root = "{containerd / "runc"}"
  SystemdCgroup = false
{cri[:-1]}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{cni_conf}"
"""
        )
        self._spawn("containerd", ["containerd", "--config", str(config)])
        deadline = time.monotonic() + 30
        while True:
            self._check_alive("containerd")
            done = subprocess.run(
                ["ctr", "--address", str(self.socket), "version"],
                capture_output=True,
                timeout=10,
                check=False,
            )
            if done.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise NodeError(f"containerd did not answer in 30 s\n{self._logs()}")
            time.sleep(0.2)

        for image in [build_pause_image(), *self.images]:
            self.import_image(image)

        kubelet_dir = work / "kubelet"
        kubelet_dir.mkdir()
        kubelet_port, kubelet_healthz, proxy_healthz, proxy_metrics = _free_ports(4)
        kubelet_config = work / "kubelet.json"
        kubelet_config.write_text(
            json.dumps(
                {
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration",
                    # Hybrid cgroup v1 and no systemd on these machines.
                    "failCgroupV1": False,
                    "cgroupDriver": "cgroupfs",
                    "containerRuntimeEndpoint": f"unix://{self.socket}",
                    # kube-apiserver has no kubelet client certificate: it reads logs anonymously.
                    "authentication": {
                        "anonymous": {"enabled": True},
                        "webhook": {"enabled": False},
                    },
                    "authorization": {"mode": "AlwaysAllow"},
                    "address": self.address,
                    "port": kubelet_port,
                    "readOnlyPort": 0,
                    "healthzBindAddress": "127.0.0.1",
                    "healthzPort": kubelet_healthz,
                    "podLogsDir": str(work / "pod-logs"),
                    "volumePluginDir": str(kubelet_dir / "volume-plugins"),
                    "failSwapOn": False,
                    "oomScoreAdj": 0,  # lowering it needs CAP_SYS_RESOURCE
                    # A full shared disk must not evict the test's pods or its images.
                    "evictionHard": {
                        "memory.available": "1Mi",
                        "nodefs.available": "1%",
                        "imagefs.available": "1%",
                        "nodefs.inodesFree": "1%",
                    },
                    "imageGCHighThresholdPercent": 100,
                    "imageGCLowThresholdPercent": 99,
                    "resolvConf": "/etc/resolv.conf",
                    "containerLogMaxSize": "10Mi",
                    **self.kubelet_config,
                }
            )
        )
        kubeconfig = str(self.cp.kubeconfig)
        self._spawn(
            "kubelet",
            [
                str(bin_dir / "kubelet"),
                f"--config={kubelet_config}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={kubelet_dir}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={self.address}",
                "--v=2",
            ],
        )
        proxy_config = work / "kube-proxy.json"
        proxy_config.write_text(
            json.dumps(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "clientConnection": {"kubeconfig": kubeconfig},
                    "mode": "iptables",
                    "clusterCIDR": POD_CIDR,
                    "hostnameOverride": NODE_NAME,
                    "bindAddress": self.address,
                    "healthzBindAddress": f"127.0.0.1:{proxy_healthz}",
                    "metricsBindAddress": f"127.0.0.1:{proxy_metrics}",
                    "oomScoreAdj": 0,
                    # Leave the host's conntrack settings and route_localnet alone.
                    "conntrack": {
                        "maxPerCore": 0,
                        "min": 0,
                        "tcpEstablishedTimeout": "0s",
                        "tcpCloseWaitTimeout": "0s",
                    },
                    "iptables": {"localhostNodePorts": False},
                }
            )
        )
        self._spawn("kube-proxy", [str(bin_dir / "kube-proxy"), f"--config={proxy_config}"])
        self._wait_ready()

    def _spawn(self, name: str, argv: list[str]) -> None:
        with self.log_path(name).open("ab") as out:
            self._popens[name] = subprocess.Popen(
                argv,
                cwd=self.work_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent_preexec(),  # noqa: PLW1509
            )

    def _check_alive(self, name: str) -> None:
        popen = self._popens[name]
        if popen.poll() is not None:
            raise NodeError(f"{name} exited with code {popen.returncode}\n{self._logs()}")

    def _logs(self) -> str:
        return "\n".join(
            f"--- last lines of {name}.log ---\n{_tail(_read(self.log_path(name)))}"
            for name in self._popens
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while True:
            for name in self._popens:
                self._check_alive(name)
            got = self.cp.kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
            if got.returncode == 0:
                conditions = json.loads(got.stdout)["status"].get("conditions", [])
                if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                    return
            if time.monotonic() > deadline:
                raise NodeError(
                    f"node {NODE_NAME} not Ready after {self.ready_timeout:.0f} s: "
                    f"{got.stdout[-1500:] or got.stderr}\n{self._logs()}"
                )
            time.sleep(0.5)

    def import_image(self, image: str) -> None:
        """Copy ``image`` from podman's storage into containerd (the kubelet pulls nothing)."""
        with tempfile.TemporaryFile() as archive:
            saved = subprocess.run(
                ["podman", "save", "--format=docker-archive", image],
                stdout=archive,
                stderr=subprocess.PIPE,
                env=_podman_env(),
                timeout=180,
                check=False,
            )
            if saved.returncode != 0:
                raise NodeError(f"podman save {image} failed: {saved.stderr.decode()[-2000:]}")
            archive.seek(0)
            self.ctr("images", "import", "-", timeout=300, stdin=archive)

    def _save_record(self) -> None:
        """What :meth:`stop` restores, kept where the next start finds it if this run is killed."""
        record = {
            "sysctls": self._sysctls,
            "chains": sorted(self._chains),
            "legacy_log_dir": self._legacy_log_dir_existed,
            "run_containerd": self._run_containerd_existed,
            "work_dir": str(self.work_dir),
        }
        RECORD_FILE.write_text(json.dumps(record) + "\n")

    def _load_record(self) -> None:
        record = json.loads(RECORD_FILE.read_text())
        self._sysctls = dict(record["sysctls"])
        self._chains = {(tool, table, chain) for tool, table, chain in record["chains"]}
        self._legacy_log_dir_existed = bool(record["legacy_log_dir"])
        self._run_containerd_existed = bool(record["run_containerd"])
        self.work_dir = Path(record["work_dir"])

    def stop(self) -> None:
        """Stop everything by pid and undo what the node changed on the host.

        Raises:
            NodeError: something could not be undone (after trying all the rest).
        """
        try:
            self._undo()
        finally:
            if self._lock is not None:
                self._lock.close()
                self._lock = None

    def _undo(self, *, kill_all: bool = False) -> None:
        """Stop this node's processes, then undo its changes to the host. ``kill_all``: after a
        killed run, whose kubelet and containerd died with it but whose containers and shims
        did not, kill every process naming a work folder and every one in the kubepods cgroups
        (the lock says no other real node runs)."""
        if self.work_dir == Path() and not kill_all:
            return  # nothing started, nothing changed
        problems: list[str] = []
        began = time.monotonic()

        def took(step: str) -> None:
            nonlocal began
            self.stop_seconds[step] = round(time.monotonic() - began, 2)
            began = time.monotonic()

        for name in ("kube-proxy", "kubelet"):
            popen = self._popens.get(name)
            if popen is not None:
                _terminate(popen.pid, popen, timeout=10)
                took(name)
        left = kill_and_remove_kubepods() if (self._popens or kill_all) else []
        took("containers")
        containerd = self._popens.get("containerd")
        if containerd is not None:
            _terminate(containerd.pid, containerd, timeout=10)
        self._popens.clear()
        took("containerd")
        needle = "/kes-node-" if kill_all else str(self.socket)
        if self.work_dir != Path():
            for pid in _pids_naming(needle):  # the shims, reparented away from us
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        left += kill_and_remove_kubepods() if kubepods_cgroups() else []
        if left:
            problems.append("cgroups left: " + "; ".join(left))
        remove_bridge()
        if self._sysctls:
            remove_chains(node_chains() - self._chains)
            if still := node_chains() - self._chains:
                problems.append(f"iptables chains left: {sorted(still)}")
            if failed := restore_sysctls(self._sysctls):
                problems.append(f"sysctls not restored: {failed}")
        took("host state")
        if not self._legacy_log_dir_existed:
            shutil.rmtree(LEGACY_LOG_DIR, ignore_errors=True)
        if not self._run_containerd_existed:
            shutil.rmtree("/run/containerd", ignore_errors=True)
        if self.work_dir != Path():
            unmount_under(self.work_dir)
            if points := _mounts_under(self.work_dir):
                problems.append(f"mounts left: {points}")
            else:
                shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = Path()
        took("mounts and files")
        if problems:
            raise NodeError("teardown incomplete: " + " | ".join(problems))
        RECORD_FILE.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
