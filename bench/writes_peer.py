"""The peer for bench/writes.py: a plain asyncio client writing Events with N requests in flight.

    .venv/bin/python -m bench.writes_peer --kubeconfig K --bodies EVENTS.jsonl --in-flight 8

Reads the Events (one `{"path": ..., "body": ...}` per line: the POSTs the sidecar would make)
and the kubeconfig's server, CA and credentials (client certificate or bearer token), prints
`ready`, waits for a line on stdin, then POSTs every body with aiohttp, `--in-flight` requests
at a time over as many kept-alive connections, each body serialized per request as the sidecar
does. Prints one JSON line: the answers by status, the seconds from the go to the last answer,
and this process's CPU seconds (user + system, all threads) over the same span. Run in its own
process so that its CPU time is its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import ssl
import sys
import time
from collections import Counter
from typing import Any

import aiohttp
from kubernetes import client, config


def connection(kubeconfig: str) -> tuple[str, ssl.SSLContext, dict[str, str]]:
    """(server URL, TLS context, headers) from the kubeconfig's current context."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    headers = {"Accept": "application/json"}
    token = configuration.get_api_key_with_prefix("authorization")
    if token:
        headers["Authorization"] = token
    return str(configuration.host), context, headers


async def write_all(
    server: str,
    context: ssl.SSLContext,
    headers: dict[str, str],
    items: list[dict[str, Any]],
    in_flight: int,
) -> Counter[int]:
    """POST every item's body to its path, `in_flight` at a time; the answers by status."""
    statuses: Counter[int] = Counter()
    pending = iter(items)
    connector = aiohttp.TCPConnector(limit=in_flight, ssl=context)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            for item in pending:  # shared: each item is taken by one worker
                async with session.post(server + item["path"], json=item["body"]) as answer:
                    await answer.read()
                    statuses[answer.status] += 1

        await asyncio.gather(*(worker() for _ in range(in_flight)))
    return statuses


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--bodies", required=True, help="JSON lines: {path, body}")
    parser.add_argument("--in-flight", type=int, default=8)
    args = parser.parse_args()
    server, context, headers = connection(args.kubeconfig)
    with open(args.bodies) as lines:  # noqa: PTH123
        items = [json.loads(line) for line in lines]
    print("ready", flush=True)
    sys.stdin.readline()
    cpu, began = cpu_seconds(), time.monotonic()
    statuses = asyncio.run(write_all(server, context, headers, items, args.in_flight))
    seconds, cpu = time.monotonic() - began, cpu_seconds() - cpu
    print(json.dumps({"statuses": statuses, "seconds": seconds, "cpu": cpu}), flush=True)


if __name__ == "__main__":
    main()
