"""CPU per Event write for each way of writing from Python, on one real kube-apiserver.

    .venv/bin/python -m bench.clients --runs 3

Why the daemon writes through `sidecar.kube.sender.KubeSender` (aiohttp, an orjson body) rather
than through the official client. Each client POSTs the same `--events` distinct core/v1 Events
(built with `sidecar.core.events.corev1.make_event`), 8 requests in flight, in this one process, one
client after the other (the order rotates from run to run):

- `kubernetes` (blocking): `KubeSink.create` on 8 threads, the client's urllib3 pool (what the
  daemon's poster did up to 0.1);
- `kubernetes.aio`: the official client's asyncio package, `ApiClient.param_serialize` and
  `call_api` with the Event's dict, 8 coroutines, its retries off;
- `KubeSender`: the daemon's writer, 8 coroutines;
- aiohttp: a bare session POSTing the orjson body (bench/writes_peer.py's way), 8 coroutines.

Reported: this process's CPU time (user + system) per POST over the clock from the first POST to
the last answer, POSTs per second (which the apiserver on the same cores also bounds), and the
CPU kube-apiserver and etcd spent per POST over the same span (when the benchmark started them).
Checked: every POST answered 201. Median of `--runs` (min-max). Writes its section of
BENCHMARKS.md; `--smoke` measures 200 Events once per client and writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from typing import Any

import aiohttp
import orjson
from kubernetes import client, config
from prometheus_client import CollectorRegistry

from bench.report import (
    control_plane,
    load_average,
    machine,
    process_cpu,
    spread,
    today,
    write_section,
)
from sidecar.core.events.corev1 import Event, InvolvedObject, make_event
from sidecar.kube import connect
from sidecar.kube.session import ssl_context
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import Send

IN_FLIGHT = 8
CLIENTS = ("kubernetes", "kubernetes.aio", "KubeSender", "aiohttp")
#: One POST and its answer, as each client makes it.
Post = Callable[[Event], Awaitable[int]]
#: (the client's CPU ms per POST, POSTs/s, kube-apiserver's and etcd's CPU ms per POST).
Measured = tuple[float, float, float]
#: The servers' pids, when the benchmark started them (their CPU is measured too).
SERVERS: dict[str, int] = {}


def servers_cpu() -> float:
    return sum(process_cpu(pid) for pid in SERVERS.values())


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def events(namespace: str, count: int, run: int, name: str) -> list[Event]:
    """Distinct Events about one ConfigMap (that need not exist: Events are not checked)."""
    involved = InvolvedObject("ConfigMap", "bench-clients", namespace, "v1")
    now = time.time()
    return [
        make_event(
            involved=involved,
            type="Normal",
            reason="PhaseChanged",
            message=f"phase changed ({name}, run {run}, #{n})",
            component="bench-clients",
            host="bench",
            now=now,
            name=f"bench-clients.{run:02x}{CLIENTS.index(name):02x}{n:012x}",
        )
        for n in range(count)
    ]


async def measure(post: Post, batch: list[Event]) -> Measured:
    """`IN_FLIGHT` POSTs at a time; every answer must be 201."""
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one(event: Event) -> int:
        async with slots:
            return await post(event)

    began_cpu, began_servers, began = cpu(), servers_cpu(), time.perf_counter()
    statuses = await asyncio.gather(*(one(event) for event in batch))
    seconds, spent = time.perf_counter() - began, cpu() - began_cpu
    servers = servers_cpu() - began_servers
    wrong = [status for status in statuses if status != 201]
    if wrong:
        raise SystemExit(f"{len(wrong)} POSTs were not answered 201: {sorted(set(wrong))}")
    return spent / len(batch) * 1e3, len(batch) / seconds, servers / len(batch) * 1e3


async def blocking(kubeconfig: str, batch: list[Event]) -> Measured:
    sink = connect(kubeconfig=kubeconfig, metrics=Metrics(CollectorRegistry()))
    pool = ThreadPoolExecutor(IN_FLIGHT)
    loop = asyncio.get_running_loop()

    async def post(event: Event) -> int:
        await loop.run_in_executor(pool, sink.create, event)
        return 201  # create raises on anything else

    try:
        await post(batch[0])  # connect before the clock starts
        return await measure(post, batch[1:])
    finally:
        pool.shutdown()
        sink.close()


async def official_aio(kubeconfig: str, batch: list[Event]) -> Measured:
    from kubernetes.aio import client as aio_client  # noqa: PLC0415
    from kubernetes.aio import config as aio_config  # noqa: PLC0415

    configuration = aio_client.Configuration()
    await aio_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.retries = 0
    api = aio_client.ApiClient(configuration)

    async def post(event: Event) -> int:
        request = await api.param_serialize(
            method="POST",
            resource_path=f"/api/v1/namespaces/{event.namespace}/events",
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
            body=event.to_body(),
            auth_settings=["BearerToken"],
        )
        response = await api.call_api(*request)
        await response.read()  # type: ignore[no-untyped-call]
        return int(response.status)

    try:
        await post(batch[0])
        return await measure(post, batch[1:])
    finally:
        await api.close()  # type: ignore[no-untyped-call]


async def sender(kubeconfig: str, batch: list[Event]) -> Measured:
    ours = connect(kubeconfig=kubeconfig, metrics=Metrics(CollectorRegistry())).sender(IN_FLIGHT)

    async def post(event: Event) -> int:
        await ours.send(Send(event))
        return 201  # send raises on anything else

    try:
        await post(batch[0])
        return await measure(post, batch[1:])
    finally:
        await ours.close()


async def bare(kubeconfig: str, batch: list[Event]) -> Measured:
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    token = configuration.get_api_key_with_prefix("authorization")
    if token:
        headers["Authorization"] = token
    connector = aiohttp.TCPConnector(ssl=ssl_context(configuration), limit=IN_FLIGHT)
    session = aiohttp.ClientSession(base_url=configuration.host, connector=connector)

    async def post(event: Event) -> int:
        path = f"/api/v1/namespaces/{event.namespace}/events"
        async with session.post(path, data=orjson.dumps(event.to_body()), headers=headers) as r:
            await r.read()
            return r.status

    try:
        await post(batch[0])
        return await measure(post, batch[1:])
    finally:
        await session.close()


WAYS: dict[str, Callable[[str, list[Event]], Coroutine[Any, Any, Measured]]] = {
    "kubernetes": blocking,
    "kubernetes.aio": official_aio,
    "KubeSender": sender,
    "aiohttp": bare,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--kubeconfig", help="an existing cluster instead of starting one")
    parser.add_argument("--smoke", action="store_true", help="200 Events once; no report")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.events = 1, 200
    results: dict[str, list[Measured]] = {name: [] for name in CLIENTS}
    with control_plane(args.kubeconfig) as started:
        kubeconfig, origin = started.kubeconfig, started.origin
        SERVERS.update(started.pids)
        api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        namespace = f"bench-clients-{int(time.time())}"
        client.CoreV1Api(api).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace))
        )
        for run in range(args.runs):
            order = CLIENTS[run % len(CLIENTS) :] + CLIENTS[: run % len(CLIENTS)]
            for name in order:
                batch = events(namespace, args.events + 1, run, name)
                results[name].append(asyncio.run(WAYS[name](kubeconfig, batch)))
                print(f"run {run + 1} {name}: {results[name][-1]}", file=sys.stderr)
        client.CoreV1Api(api).delete_namespace(namespace)
        api.close()
    if args.smoke:
        print(f"smoke ok: {args.events} Events per client, every POST answered 201")
        return
    report(args, origin, results)


def report(args: argparse.Namespace, origin: str, results: dict[str, list[Measured]]) -> None:
    rows = []
    for name in CLIENTS:
        cost = spread([ms for ms, _, _ in results[name]])
        rate = spread([per_second for _, per_second, _ in results[name]])
        servers = spread([ms for _, _, ms in results[name]])
        rows.append(
            f"| {name} | {cost[0]:.2f} ({cost[1]:.2f}-{cost[2]:.2f}) "
            f"| {rate[0]:,.0f} ({rate[1]:,.0f}-{rate[2]:,.0f}) "
            f"| {servers[0]:.2f} ({servers[1]:.2f}-{servers[2]:.2f}) |"
        )
    body = f"""## Writing clients: CPU per Event POST

`.venv/bin/python -m bench.clients --runs {args.runs} --events {args.events}` on {today()};
{machine()}; load average before: {load_average()}; {origin}; kubernetes {version("kubernetes")},
aiohttp {version("aiohttp")}.

Each client POSTs {args.events:,} distinct core/v1 Events, {IN_FLIGHT} in flight, in one process
(see the script's docstring). CPU is the process's own per POST, and kube-apiserver's and
etcd's (from /proc) over the same span; POSTs/s is bounded by the servers on the same cores.
Median of {args.runs} (min-max).

| client | CPU ms per POST | POSTs/s | kube-apiserver + etcd CPU ms per POST |
|---|---|---|---|
{chr(10).join(rows)}

The daemon writes through `KubeSender` (`sidecar/kube/sender.py`): the official client's asyncio
package costs about as much CPU per write as its blocking one (it re-walks and re-serializes
each body, and wraps requests in `aiohttp_retry`).
"""
    write_section("clients", body)
    print(body)


if __name__ == "__main__":
    main()
