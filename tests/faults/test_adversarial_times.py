"""Times an Event cannot carry: dropped (the log's clock stands in), counted, never a crash.

`replay -o json` crashed on `0001-01-01T00:00:00+05:00`: it parses, but its offset takes it before
the year 1, which no timestamp can render.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from sidecar.cli import main
from sidecar.core.lines.decode import decode
from sidecar.core.lines.records import Record

RULES = """\
component: probe
rules:
  - name: any
    match: {message: {regex: "."}}
    object: {kind: Node, name: n1}
    reason: Seen
"""

OUT_OF_RANGE = [
    '"0001-01-01T00:00:00+05:00"',
    '"9999-12-31T23:59:59-05:00"',
    '"inf"',
    '"nan"',
    "1e300",
    '"-1e300"',
]


@pytest.mark.parametrize("stamp", OUT_OF_RANGE)
def test_out_of_range_time_is_dropped_and_flagged(stamp: str) -> None:
    record = decode(f'{{"ts":{stamp},"msg":"m"}}'.encode(), year=2024)
    assert type(record) is Record
    assert record.time is None
    assert record.time_out_of_range


def test_time_at_the_edge_of_the_range_is_kept() -> None:
    record = decode(b'{"ts":"0001-01-01T05:00:00+05:00","msg":"m"}', year=2024)
    assert type(record) is Record
    assert record.time == pytest.approx(-62135596800.0)
    assert not record.time_out_of_range


@pytest.mark.parametrize("stamp", OUT_OF_RANGE)
def test_replay_json_writes_the_event_and_counts_the_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stamp: str
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    log = tmp_path / "app.log"
    log.write_bytes(
        b'{"ts":1704982863,"msg":"first"}\n' + f'{{"ts":{stamp},"msg":"absurd"}}\n'.encode()
    )
    assert main(["replay", str(log), "--rules", str(rules), "-o", "json", "--metrics"]) == 0
    out = capsys.readouterr().out
    events = [orjson.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [event["message"] for event in events] == ["first", "absurd"]
    # The log's clock (the last readable time) stands in for the dropped one.
    assert events[1]["lastTimestamp"] == "2024-01-11T14:21:03Z"
    assert 'event_sidecar_lines_time_out_of_range_total{source="replay"} 1.0' in out
