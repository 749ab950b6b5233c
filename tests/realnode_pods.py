"""The example's pod on the real node, varied for one test: a paced controller, a sidecar that
starts late or with other flags. Shared by the real-node tests and `bench.realnode_cost`.

The variations are made on the injected Deployment (`event-sidecar inject`, offline), so the
images stay those of tests/realnode.py and tests/test_real_node.py; the paced controller is the
stand-in controller's image run with another script (`python3 -c`), which prints the same
example log stamped now, at a steady rate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from sidecar.inject import SIDECAR_NAME
from tests.controlplane import REPO_ROOT, ControlPlane

__all__ = [
    "PACED_CONTROLLER",
    "apply_example",
    "cri_lines",
    "replayed_events",
    "stored_events",
    "totals",
    "without_uid",
]

CONTROLLER = "controller"
#: The stand-in controller's lines, at $RATE lines a second (steady, however long printing takes),
#: $REPEAT times over, to stderr; then it waits to be stopped. The image holds the example log.
PACED_CONTROLLER = r"""
import datetime, json, os, re, signal, sys, time

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
KLOG = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d\.\d{6}")
rate = float(os.environ.get("RATE", "100"))
lines = open("/quota-autoscaler.log", encoding="utf-8").read().splitlines()
began, printed = time.monotonic(), 0
for _ in range(int(os.environ.get("REPEAT", "1"))):
    for line in lines:
        now = datetime.datetime.now(datetime.timezone.utc)
        if line.startswith("{"):
            record = json.loads(line)
            if "ts" in record:
                record["ts"] = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        else:
            line = KLOG.sub(lambda m: m.group(1) + now.strftime("%m%d %H:%M:%S.%f"), line)
        print(line, file=sys.stderr, flush=True)
        printed += 1
        ahead = began + printed / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
while True:
    time.sleep(3600)
"""


def apply_example(
    cp: ControlPlane,
    *,
    rate: float | None = None,
    repeat: int = 1,
    sidecar_delay: float = 0.0,
    sidecar_args: Sequence[str] = (),
    sidecar_resources: Mapping[str, Any] | None = None,
) -> None:
    """`kubectl kustomize manifests/example | event-sidecar inject -f - | kubectl apply -f -`,
    the injected Deployment changed on the way: with ``rate``, the controller prints the example
    log ``repeat`` times at ``rate`` lines a second (:data:`PACED_CONTROLLER`); the sidecar's
    program starts ``sidecar_delay`` seconds after its container (the controller's start waits
    only for the container), with ``sidecar_args`` added and ``sidecar_resources`` instead of
    the injected ones."""
    rendered = cp.kubectl("kustomize", str(REPO_ROOT / "manifests" / "example")).stdout
    injected = subprocess.run(
        [sys.executable, "-m", "sidecar", "inject", "-f", "-"],
        input=rendered,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO_ROOT,
    ).stdout
    objects = [o for o in yaml.safe_load_all(injected) if o]
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    [controller] = [c for c in spec["containers"] if c["name"] == CONTROLLER]
    [sidecar] = [c for c in spec["initContainers"] if c["name"] == SIDECAR_NAME]
    if rate is not None:
        controller["command"] = ["python3", "-u", "-c", PACED_CONTROLLER]
        controller["env"] = [
            *controller.get("env", ()),
            {"name": "RATE", "value": str(rate)},
            {"name": "REPEAT", "value": str(repeat)},
        ]
    sidecar["args"] = [*sidecar["args"], *sidecar_args]
    if sidecar_delay:
        # The image's /bin/sh (Debian's, in the official Python image too) waits, then becomes
        # the sidecar, which keeps its pid, its signals and its args.
        sidecar["command"] = [
            "sh", "-c", f'sleep {sidecar_delay:g} && exec "$0" "$@"', *sidecar["command"],
        ]  # fmt: skip
    if sidecar_resources is not None:
        sidecar["resources"] = dict(sidecar_resources)
    cp.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))


def cri_lines(cp: ControlPlane, namespace: str, container: str) -> list[tuple[str, str]]:
    """(the kubelet's timestamp, the line) of each line a container of the example's pod logged,
    as `kubectl logs --timestamps` shows them."""
    out = cp.kubectl(
        "logs", "-n", namespace, "deploy/quota-autoscaler", "-c", container, "--timestamps"
    ).stdout
    return [(stamp, line) for stamp, _, line in (row.partition(" ") for row in out.splitlines())]


def stored_events(cp: ControlPlane) -> list[tuple[str, str, str, int]]:
    """(reason, object, message, count) of each Event the sidecar wrote, sorted."""
    items = json.loads(cp.kubectl("get", "events", "-A", "-o", "json").stdout)["items"]
    return sorted(
        (
            e["reason"],
            f"{e['involvedObject']['kind']}/{e['involvedObject']['name']}",
            e["message"],
            int((e.get("series") or {}).get("count") or e.get("count") or 1),
        )
        for e in items
        if (e.get("source") or {}).get("component") == "quota-autoscaler"
    )


def totals(events: Sequence[tuple[str, str, str, int]]) -> dict[tuple[str, str, str], int]:
    """The occurrences counted per (reason, object, message), over however many Events carry
    them: what a line lost or read twice changes, however the Events are split."""
    counted: dict[tuple[str, str, str], int] = {}
    for reason, involved, message, count in events:
        counted[reason, involved, message] = counted.get((reason, involved, message), 0) + count
    return counted


def without_uid(cp: ControlPlane) -> list[str]:
    """The names of the Events the sidecar wrote whose involved object has no uid (its look-up
    failed when the Event was made)."""
    items = json.loads(cp.kubectl("get", "events", "-A", "-o", "json").stdout)["items"]
    return [
        e["metadata"]["name"]
        for e in items
        if (e.get("source") or {}).get("component") == "quota-autoscaler"
        and not e["involvedObject"].get("uid")
    ]


def replayed_events(lines: Sequence[str]) -> list[tuple[str, str, str, int]]:
    """What `event-sidecar replay` makes of ``lines`` (the example's rules): the Events, as
    :func:`stored_events` has them, that one reading of each line writes."""
    done = subprocess.run(
        [
            sys.executable, "-m", "sidecar", "replay", "-",
            "--rules", str(REPO_ROOT / "manifests" / "example" / "rules.yaml"), "-o", "json",
        ],
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=REPO_ROOT,
    )  # fmt: skip
    events = [json.loads(row) for row in done.stdout.splitlines() if row.startswith("{")]
    return sorted(
        (
            e["reason"],
            f"{e['involvedObject']['kind']}/{e['involvedObject']['name']}",
            e["message"],
            int((e.get("series") or {}).get("count") or e.get("count") or 1),
        )
        for e in events
    )
