"""What the benchmarks against a live cluster share: `event-sidecar run` as a child process, a
watch on a namespace's Events, the phase-flipping log lines and their rule, the involved objects.

The log's transition lines carry a unique id that the rule (`phase_rules`) copies into the
Event's message, so every Event is distinct (nothing deduplicated) and the watch can tell whose
it is and when it arrived.
"""

from __future__ import annotations

import compileall
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, watch

from bench.report import ROOT, process_cpu
from sidecar.core.events.corev1 import InvolvedObject

REASON = "PhaseChanged"
PHASES = ("Ready", "Degraded")
_RULES = """\
component: {component}
rules:
  - name: phase
    match: {{message: Observed status}}
    object: {{apiVersion: v1, kind: ConfigMap, namespace: "{{namespace}}", name: "{{name}}"}}
    transition: {{state: "{{phase}}", first: emit, initial: none}}
    type: Normal
    reason: PhaseChanged
    message: "phase {{from}} -> {{to}} id={{id}}"
"""
_ID = re.compile(r"id=(\S+)")


def phase_rules(component: str) -> str:
    """The rules file: an Event `phase {from} -> {to} id={id}` for each transition line."""
    return _RULES.format(component=component)


# -- the log ----------------------------------------------------------------------------------


def transition_line(namespace: str, name: str, phase: str, ident: str) -> bytes:
    document = {
        "level": "info",
        "ts": time.time(),
        "logger": "controller",
        "msg": "Observed status",
        "controller": "configmap",
        "namespace": namespace,
        "name": name,
        "phase": phase,
        "id": ident,
    }
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


class Transitions:
    """Round-robin over the objects, each flipping its phase every time it comes up."""

    def __init__(self, namespace: str, objects: int, prefix: str) -> None:
        self.namespace = namespace
        self.objects = objects
        self.prefix = prefix
        self.count = 0
        self.phase: dict[int, int] = {}

    def next(self) -> tuple[str, str, str]:
        """(object name, new phase, id)."""
        index = self.count % self.objects
        phase = self.phase.get(index, 1) ^ 1
        self.phase[index] = phase
        ident = f"{self.prefix}-{self.count}"
        self.count += 1
        return f"obj-{index}", PHASES[phase], ident


# -- the stored side ----------------------------------------------------------------------------


class EventWatch:
    """Watches a namespace's Events on a thread; `arrived[id]` = monotonic arrival time."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.arrived: dict[str, float] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        listed = self.core.list_namespaced_event(namespace, limit=1)
        assert listed.metadata is not None
        self.resource_version = listed.metadata.resource_version
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, name="event-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._watch = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for item in self._watch.stream(  # type: ignore[no-untyped-call]
                    self.core.list_namespaced_event,
                    self.namespace,
                    resource_version=self.resource_version,
                    timeout_seconds=60,
                    deserialize=False,
                ):
                    now = time.monotonic()
                    obj = item["object"]
                    self.resource_version = obj["metadata"]["resourceVersion"]
                    if item["type"] != "ADDED":
                        continue
                    found = _ID.search(obj.get("message", ""))
                    if found:
                        with self.lock:
                            self.arrived.setdefault(found.group(1), now)
            except Exception as error:  # a dropped watch is resumed from the last version
                if not self._stop.is_set():
                    print(f"watch restarted: {error}", file=sys.stderr)
                    time.sleep(0.2)

    def wait_for(self, ids: Iterator[str] | list[str], timeout: float) -> float:
        """Wait until every id arrived or `timeout`; return the seconds waited."""
        wanted = list(ids)
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            with self.lock:
                if all(ident in self.arrived for ident in wanted):
                    break
            time.sleep(0.05)
        return time.monotonic() - began

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()  # type: ignore[no-untyped-call]


# -- the daemon ---------------------------------------------------------------------------------


def started_port(stderr: Path, process: subprocess.Popen[bytes]) -> int:
    """The /metrics port of `event-sidecar run` (`process`), from its "started" log line in
    `stderr`, once it has written it."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the daemon exited early:\n{_tail(stderr)}")
        for line in stderr.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("msg") == "started":
                    return int(str(record["metrics"]).rsplit(":", 1)[1])
        time.sleep(0.05)
    raise SystemExit(f"the daemon did not start:\n{_tail(stderr)}")


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]


def vm(pid: int, key: str) -> int:
    """A /proc/<pid>/status size in KiB (VmHWM, VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the samples `name` in a Prometheus text exposition whose labels include
    `labels`."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    return sum(
        float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def wait_http(url: str, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            http_text(url)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{what} never answered {url}") from None
            time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 30 s; reaped either way."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@dataclass
class Child:
    """A process the benchmark started and measures from outside: CPU and memory from /proc
    (never its own word), what it counts from its /metrics."""

    process: subprocess.Popen[bytes]
    #: Its /metrics.
    url: str
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User + system CPU seconds so far, all threads."""
        return process_cpu(self.pid)

    def vm(self, key: str) -> int:
        """VmRSS, VmHWM... in KiB."""
        return vm(self.pid, key)

    def metrics(self) -> str:
        return http_text(self.url)

    def metric(self, name: str, **labels: str) -> float:
        return metric_sum(self.metrics(), name, **labels)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        stop(self.process)


def launch(
    argv: list[str], stderr_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`argv` from the repository's root, its stderr to `stderr_path`, no stdin or stdout."""
    with stderr_path.open("wb") as stderr:
        return subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def compile_bytecode() -> None:
    """Compile `sidecar/` to bytecode, as the image does at build time (Dockerfile): under
    `PYTHONDONTWRITEBYTECODE` a checkout would otherwise compile every module again at each
    start, which is not what a user's sidecar pays (CPU at start, and peak memory)."""
    compileall.compile_dir(ROOT / "sidecar", quiet=1)


@contextlib.contextmanager
def sidecar_run(work: Path, options: Sequence[str], *, host: str) -> Iterator[Child]:
    """`python -m sidecar run --listen 127.0.0.1:0 OPTIONS` (pod name `host`), once its /metrics
    answers; stopped (SIGTERM) on the way out. Its stderr goes to `work/sidecar.stderr`."""
    compile_bytecode()
    stderr_path = work / "sidecar.stderr"
    argv = [sys.executable, "-m", "sidecar", "run", "--listen", "127.0.0.1:0", *options]
    process = launch(argv, stderr_path, {**os.environ, "POD_NAME": host})
    try:
        url = f"http://127.0.0.1:{started_port(stderr_path, process)}/metrics"
        wait_http(url, "the daemon")
        yield Child(process, url, stderr_path)
    finally:
        stop(process)


@contextlib.contextmanager
def mtail_daemon(work: Path, progs: Path, logs: str) -> Iterator[Child]:
    """mtail's daemon running `progs` on `logs` (a path or glob), once its /metrics answers."""
    binary = shutil.which("mtail")
    if binary is None:
        raise SystemExit("mtail is not installed (apt-get install mtail): no peer to compare with")
    port = free_port()
    argv = [binary, "--progs", str(progs), "--logs", logs, "--address", "127.0.0.1"]
    process = launch([*argv, "--port", str(port), "--logtostderr"], work / "mtail.stderr")
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_http(url, "mtail")
        yield Child(process, url, work / "mtail.stderr")
    finally:
        stop(process)


class Daemon:
    """`python -m sidecar run` as a child process, posting to the API (the cluster benchmarks)."""

    def __init__(
        self,
        work: Path,
        log: Path,
        rules: Path,
        kubeconfig: str,
        options: Sequence[str] = (),
        *,
        host: str = "bench-0",
    ) -> None:
        """Start it following `log` from its beginning, with `options` after the usual ones;
        return once it is ready (its /readyz answers 200)."""
        self._stack = contextlib.ExitStack()
        argv = ["--file", str(log), "--rules", str(rules), "--kubeconfig", kubeconfig]
        self.child = self._stack.enter_context(
            sidecar_run(work, [*argv, "--start", "beginning", *options], host=host)
        )
        self.process = self.child.process
        self.stderr_path = self.child.stderr_path
        self.port = int(self.child.url.rsplit(":", 1)[1].split("/")[0])
        deadline = time.monotonic() + 20
        while not self._ready():
            if time.monotonic() > deadline:
                self._stack.close()
                raise SystemExit(f"the daemon never became ready:\n{_tail(self.stderr_path)}")
            time.sleep(0.05)

    def stderr(self) -> str:
        return self.child.stderr()

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        return self.child.metrics()

    def cpu_seconds(self) -> float:
        return self.child.cpu_seconds()

    def stop(self) -> None:
        self._stack.close()


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    return [
        (sample.labels, float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


# -- the cluster ----------------------------------------------------------------------------------


_SAMPLE = re.compile(r"^apiserver_request_total\{([^}]*)\} (\S+)$", re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def raw_get(api: client.ApiClient, path: str, accept: str = "application/json") -> bytes:
    request = api.param_serialize(
        method="GET",
        resource_path=path,
        header_params={"Accept": accept},
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*request, _request_timeout=30)
    body: bytes = response.read()  # type: ignore[no-untyped-call]
    if response.status != 200:
        raise SystemExit(f"GET {path}: HTTP {response.status}: {body[:300]!r}")
    return body


def event_requests(api: client.ApiClient, group: str = "") -> Counter[str]:
    """The apiserver's own count of requests on Events of `group` ("": core/v1), by verb and
    code ("POST 201")."""
    counts: Counter[str] = Counter()
    for labels, value in _SAMPLE.findall(raw_get(api, "/metrics", "text/plain").decode()):
        sample = dict(_LABEL.findall(labels))
        if sample.get("resource") == "events" and sample.get("group", "") == group:
            counts[f"{sample.get('verb')} {sample.get('code')}"] += int(float(value))
    return counts


def prepare(
    api: client.ApiClient, objects: int, prefix: str
) -> tuple[str, dict[str, InvolvedObject]]:
    """A fresh namespace `<prefix>-<random>` with `objects` ConfigMaps `obj-<n>`; (namespace,
    {name: the involved object as the sidecar's look-up finds it: uid and resourceVersion})."""
    core = client.CoreV1Api(api)
    namespace = f"{prefix}-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    involved: dict[str, InvolvedObject] = {}
    for index in range(objects):
        made = core.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=f"obj-{index}"), data={"phase": "Ready"}
            ),
        )
        assert made.metadata is not None
        name = str(made.metadata.name)
        involved[name] = InvolvedObject(
            kind="ConfigMap",
            name=name,
            namespace=namespace,
            api_version="v1",
            uid=str(made.metadata.uid),
            resource_version=str(made.metadata.resource_version),
        )
    return namespace, involved
