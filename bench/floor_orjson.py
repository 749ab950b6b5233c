"""The floor for `replay`: a substring pre-filter and orjson, counting what `replay` counts.

    python -m bench.floor_orjson LOG

reads the log in binary lines, skips over-long lines (the same 100 KiB limit), decodes only the
lines that hold one of bench/rules.yaml's messages, and counts the matches per rule and the
Events the transition rules (`first: skip`) produce, as bench/generate.py's truth file states
them; prints one JSON object. No rules engine, no templates, no Event objects, no correlation:
what any Python reader of this log must at least spend (bench/throughput.py times it).
"""

from __future__ import annotations

import sys
from collections import Counter

import orjson

MAX_LINE_BYTES = 100 * 1024
_POD = b'"Pod status updated" pod="'


def count(path: str) -> dict[str, object]:
    matched: Counter[str] = Counter()
    events: Counter[str] = Counter()
    state: dict[tuple[str, ...], str] = {}
    lines = too_long = undecodable = 0

    def transition(rule: str, key: tuple[str, ...], value: str) -> None:
        matched[rule] += 1
        previous = state.get(key)
        state[key] = value
        if previous is not None and previous != value:
            events[rule] += 1

    with open(path, "rb") as stream:  # noqa: PTH123
        for line in stream:
            lines += 1
            if len(line) > MAX_LINE_BYTES:
                too_long += 1
            elif b"Quota evaluated" in line or b"Reconciler error" in line:
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    undecodable += 1
                    continue
                msg, level = record.get("msg"), record.get("level")
                if msg == "Quota evaluated" and level == "info":
                    name, resource = record["name"], record["resource"]
                    transition("quota-changed", ("q", name, resource), record["hard"])
                elif msg == "Reconciler error" and level == "error":
                    matched["reconcile-error"] += 1
                    events["reconcile-error"] += 1
            elif _POD in line:
                # klog text, not JSON: the two quoted values after the message.
                rest = line.split(_POD, 1)[1]
                pod, _, tail = rest.partition(b'" status="')
                transition("pod-status", ("p", pod.decode()), tail.split(b'"', 1)[0].decode())
    return {
        "lines": lines,
        "too_long": too_long,
        "undecodable": undecodable,
        "matched": dict(sorted(matched.items())),
        "events": dict(sorted(events.items())),
    }


if __name__ == "__main__":
    sys.stdout.write(orjson.dumps(count(sys.argv[1])).decode() + "\n")
