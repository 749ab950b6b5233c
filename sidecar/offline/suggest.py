"""`event-sidecar suggest`: read a log, draft rules for it, and a tests file from its own lines.

The analysis is `sidecar.core.rules.draft` (pure); this reads the log the way `replay` does (the
same framing, multi-line records and decoders), and for the tests file replays each drafted
rule's sample lines through the draft (`sidecar.offline.rulestests`' own `replay`), so that every
expected Event in it is one the draft really gives: a baseline for the person who edits the
rules, whose `event-sidecar test` then shows what an edit changed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import yaml
from prometheus_client import CollectorRegistry

from sidecar.core.lines.decode import Undecodable, decode, years_at
from sidecar.core.lines.records import Record
from sidecar.core.lines.scan import DEFAULT_MAX_LINE_BYTES, LineFramer, select_lines
from sidecar.core.rules import RuleSet, compile_rules, parse_rules
from sidecar.core.rules.draft import Draft, draft_rules
from sidecar.offline.replay import ReplaySettings, read_chunks, replay
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import MemorySink

#: Lines of the log read at most: a draft needs the shape of the log, not all of it, and the
#: analysis keeps every line naming an object in memory.
MAX_LINES = 200_000


@dataclass(frozen=True, slots=True)
class Read:
    """The decoded lines of a log (with their text), and how many lines it had."""

    lines: list[tuple[str, Record]]
    read: int


def read_log(stream: BinaryIO, *, year: int | None = None) -> Read:
    """Frame and decode `stream` as `replay` does, up to `MAX_LINES` lines."""
    framer = LineFramer(DEFAULT_MAX_LINE_BYTES)
    the_year = year if year is not None else years_at(datetime.now(UTC))
    out: list[tuple[str, Record]] = []
    read = 0

    def take(block: bytes) -> bool:
        nonlocal read
        for line in select_lines(block, None, DEFAULT_MAX_LINE_BYTES).candidates:
            read += line.count(b"\n") + 1
            record = decode(line, year=the_year)
            if type(record) is not Undecodable:
                assert type(record) is Record
                try:
                    out.append((line.decode("utf-8"), record))
                except UnicodeDecodeError:
                    continue  # not a line a tests file can hold; rare in a controller's log
            if read >= MAX_LINES:
                return False
        return True

    for chunk in read_chunks(stream):
        if not take(framer.feed(chunk)):
            return Read(out, read)
    take(framer.flush())
    return Read(out, read)


def suggest(path: Path, *, component: str | None = None, year: int | None = None) -> Draft | None:
    """The draft for the log at `path` (None: no line names an object)."""
    with path.open("rb") as stream:
        found = read_log(stream, year=year)
    return draft_rules(found.lines, component or path.stem, read=found.read)


def tests_file(
    draft: Draft, *, rules_path: Path, tests_path: Path, log_path: Path, year: int | None = None
) -> str:
    """A tests file (`event-sidecar test`) for the draft: per rule, its sample lines and the
    Events the draft gives for them; then the whole log and its count of Events."""
    rules = compile_rules(parse_rules(draft.text, str(rules_path)), os.environ)
    folder = tests_path.parent
    tests: list[dict[str, Any]] = []
    for rule in draft.rules:
        text = "".join(line + "\n" for line in rule.sample)
        test: dict[str, Any] = {"name": f"{rule.name}: lines of the log about one object"}
        if year is not None:
            test["year"] = year
        test["input"] = text
        test["events"] = _events(text.encode(), rules, year)
        tests.append(test)
    whole: dict[str, Any] = {"name": "the whole log"}
    if year is not None:
        whole["year"] = year
    whole["input_file"] = os.path.relpath(log_path, folder)
    whole["counters"] = _summary(log_path.read_bytes(), rules, year)
    tests.append(whole)
    head = (
        f"# Tests drafted from {log_path.name}: each expects the Events the draft rules give\n"
        "# today. Run them with `event-sidecar test`; after editing the rules, fix what you\n"
        "# meant to change.\n"
    )
    body = {"rules": os.path.relpath(rules_path, folder), "tests": tests}
    return head + yaml.dump(
        body, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 16
    )


def _events(data: bytes, rules: RuleSet, year: int | None) -> list[dict[str, Any]]:
    sink = MemorySink()
    replay([data], rules, sink, Metrics(CollectorRegistry()), settings=ReplaySettings(year=year))
    return [
        {
            "type": event.type,
            "reason": event.reason,
            "object": f"{event.involved.kind}/{event.involved.name}",
            **({"namespace": event.namespace} if event.namespace else {}),
            "message": event.message,
            "count": event.count,
        }
        for event in sink.events.values()
    ]


def _summary(data: bytes, rules: RuleSet, year: int | None) -> dict[str, int]:
    result = replay(
        [data],
        rules,
        MemorySink(),
        Metrics(CollectorRegistry()),
        settings=ReplaySettings(year=year),
    )
    summary = result.summary()
    return {key: int(summary[key]) for key in ("lines_read", "matched", "events")}


class _Dumper(yaml.SafeDumper):
    """Log lines as literal blocks (`|`), which read like the log."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)
