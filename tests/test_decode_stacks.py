"""A stack printed after a log line decodes as that line's record with the stack as a field;
the stack's lines, alone, decode as continuations (sidecar.core.lines.stacks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.core.lines.decode import CONTINUATION, UNRECOGNISED, decode
from sidecar.core.lines.records import Record
from sidecar.core.lines.scan import select_lines
from sidecar.core.rules import compile_rules, parse_rules

GOLDEN = Path(__file__).parent / "golden"


def _records(log: bytes) -> list[Record]:
    out = []
    for line in select_lines(log, None, 1 << 20).candidates:
        decoded = decode(line, year=2024)
        assert type(decoded) is Record, line
        out.append(decoded)
    return out


def test_a_chained_python_traceback_is_the_field_stack_of_the_line_before_it() -> None:
    records = _records((GOLDEN / "python-traceback" / "input.log").read_bytes())
    assert [r.message.split(" ")[0] for r in records] == [
        "Handler", "Handler", "Phase", "Handler", "Stopping:",
    ]  # fmt: skip
    failed = records[1]
    assert failed.format == "kopf-text"
    assert failed.level == "error"
    assert failed.fields["name"] == "quota-1"
    stack = failed.fields["stack"]
    assert stack.startswith("Traceback (most recent call last):\n")
    assert "The above exception was the direct cause of the following exception:" in stack
    assert stack.endswith("RuntimeError: cannot apply the quota")
    assert failed.fields["exception"] == "RuntimeError: cannot apply the quota"
    during = records[3].fields
    assert "During handling of the above exception" in during["stack"]
    assert during["exception"].startswith("ValueError: invalid literal for int()")
    assert "    ~~^^^^^^^^" in during["stack"]  # 3.11's carets stay in the stack
    assert "stack" not in records[2].fields


def test_a_java_stack_is_the_field_stack_of_the_line_before_it() -> None:
    records = _records((GOLDEN / "java-stack-trace" / "input.log").read_bytes())
    assert len(records) == 3
    failed = records[1]
    assert (failed.format, failed.level, failed.logger) == (
        "log4j2",
        "error",
        "KafkaAssemblyOperator",
    )
    assert failed.fields["exception"] == (
        "java.lang.IllegalStateException: Reconciliation of Kafka(team-a/my-cluster) failed"
    )
    stack = failed.fields["stack"]
    assert "\n\tSuppressed: java.lang.RuntimeException: rollback failed\n" in stack
    assert "\nCaused by: java.io.IOException: " in stack
    assert stack.endswith("\t... 1 more")


def test_a_stack_on_a_json_line_is_added_to_its_fields() -> None:
    line = b'{"level":"error","msg":"failed","ts":1}\njava.lang.Error: x\n\tat a.B.c(B.java:1)'
    record = decode(line, year=2024)
    assert type(record) is Record
    assert record.message == "failed"
    assert record.fields == {
        "stack": "java.lang.Error: x\n\tat a.B.c(B.java:1)",
        "exception": "java.lang.Error: x",
    }


@pytest.mark.parametrize(
    "record",
    [
        b'Traceback (most recent call last):\n  File "a.py", line 1, in f\nValueError: x',
        b"java.lang.IllegalStateException: boom\n\tat a.B.c(B.java:1)\n\t... 1 more",
        b"\tat a.B.c(B.java:1)\nCaused by: java.io.IOException: x\n\tat a.B.d(B.java:2)",
    ],
)
def test_a_stack_without_its_line_is_a_continuation(record: bytes) -> None:
    assert decode(record, year=2024) is CONTINUATION


@pytest.mark.parametrize(
    "line",
    [
        b"Traceback (most recent call last):",
        b"ValueError: quota exceeded msg=denied level=error",
        b"During handling of the above exception, another exception occurred:",
        b"The above exception was the direct cause of the following exception:",
        b"Caused by: java.io.IOException: level=error msg=refused",
        b"java.lang.IllegalStateException: msg=x level=error",
        b"io.strimzi.operator.common.ReconciliationException",
    ],
)
def test_a_stack_line_alone_is_a_continuation_not_logfmt(line: bytes) -> None:
    assert decode(line, year=2024) is CONTINUATION


@pytest.mark.parametrize("line", [b"Error: no such file", b"plain text", b"Exception"])
def test_other_text_stays_unrecognised(line: bytes) -> None:
    assert decode(line, year=2024) is UNRECOGNISED


#: `logging`'s `stack_info=True`, alone and after an exception (CPython 3.11,
#: `%(levelname)s:%(name)s:%(message)s`, logfmt-free so the lines are read by a declared format).
STACK_INFO = b"""WARNING:op:slow reconcile
Stack (most recent call last):
  File "/app/op.py", line 11, in <module>
    f()
  File "/app/op.py", line 6, in f
    log.warning("slow reconcile", stack_info=True)
ERROR:op:failed
Traceback (most recent call last):
  File "/app/op.py", line 8, in f
    raise KeyError("x")
KeyError: 'x'
Stack (most recent call last):
  File "/app/op.py", line 11, in <module>
    f()
  File "/app/op.py", line 10, in f
    log.error("failed", exc_info=True, stack_info=True)
INFO:op:next
"""


def test_stack_info_is_part_of_the_record_alone_and_after_an_exception() -> None:
    candidates = select_lines(STACK_INFO, None, 1 << 20).candidates
    assert [line.split(b"\n")[0] for line in candidates] == [
        b"WARNING:op:slow reconcile",
        b"ERROR:op:failed",
        b"INFO:op:next",
    ]
    assert candidates[0].endswith(b'log.warning("slow reconcile", stack_info=True)')
    assert candidates[1].endswith(b'log.error("failed", exc_info=True, stack_info=True)')
    formats = compile_rules(
        parse_rules(
            "formats:\n  declared:\n    - name: basic\n"
            "      regex: '^(?P<level>[A-Z]+):(?P<logger>[^:]+):(?P<message>.*)$'\n"
            "rules: [{name: a, match: {message: x}, object: {kind: Node, name: n}, reason: X}]\n",
            "rules.yaml",
        )
    ).formats
    warned, failed = (decode(line, year=2024, formats=formats) for line in candidates[:2])
    assert type(warned) is Record and type(failed) is Record
    assert warned.fields["stack"].startswith("Stack (most recent call last):")
    assert warned.fields["exception"] == ""
    assert failed.fields["exception"] == "KeyError: 'x'"


def test_frames_printed_without_an_exception_line_belong_to_the_logged_line() -> None:
    log = (
        b"2024-01-11 14:21:02 INFO  Op:1 - before\n"
        b"2024-01-11 14:21:03 ERROR Op:2 - failed\n"
        b"\tat com.example.Op.run(Op.java:2)\n"
        b"\t... 3 more\n"
    )
    candidates = select_lines(log, None, 1 << 20).candidates
    assert [line.split(b"\n")[0] for line in candidates] == log.split(b"\n")[:2]
    record = decode(candidates[1], year=2024)
    assert type(record) is Record
    assert record.message == "failed"
    assert record.fields["stack"] == "\tat com.example.Op.run(Op.java:2)\n\t... 3 more"
    assert record.fields["exception"] == ""
