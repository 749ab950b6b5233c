"""Unit tests of `sidecar.core.lines.decode` (zap, logrus, logfmt, slog; levels, times, Go
quoting) and the line scanning of `sidecar.core.lines.scan`.

Example lines are the ones real controllers write (kueue, cluster-api, cert-manager, client-go's
leader election, logrus and slog applications); see tests/golden/ for the same lines end to end.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sidecar.core.lines.decode import (
    CONTINUATION,
    EMPTY,
    INVALID_JSON,
    UNRECOGNISED,
    Undecodable,
    decode,
    parse_level,
    parse_time,
    unquote_go,
)
from sidecar.core.lines.multiline import is_head
from sidecar.core.lines.records import ObjectRef
from sidecar.core.lines.scan import LineFramer, select_lines
from sidecar.core.lines.stacks import begins_frame, begins_stack
from tests.decode_support import PROPERTY, YEAR, at, record

# --- controller-runtime zap JSON ------------------------------------------------------------------

KUEUE = (
    '{"level":"info","ts":"2024-01-11T14:21:03.806759252Z","logger":"controller",'
    '"msg":"Reconciling Workload","controller":"workload","controllerGroup":"kueue.x-k8s.io",'
    '"controllerKind":"Workload","Workload":{"name":"job-1","namespace":"dev"},'
    '"namespace":"dev","name":"job-1","reconcileID":"0a85c3a1"}'
)


def test_zap_json_lifts_the_well_known_keys() -> None:
    rec = record(KUEUE)
    assert rec.message == "Reconciling Workload"
    assert (rec.level, rec.verbosity) == ("info", 0)
    assert rec.logger == "controller"
    assert rec.format == "json"
    assert rec.time == pytest.approx(at("2024-01-11T14:21:03.806759+00:00"), abs=1e-6)
    assert rec.fields == {
        "controller": "workload",
        "controllerGroup": "kueue.x-k8s.io",
        "controllerKind": "Workload",
        "Workload": {"name": "job-1", "namespace": "dev"},
        "namespace": "dev",
        "name": "job-1",
        "reconcileID": "0a85c3a1",
    }


def test_zap_json_object_refs() -> None:
    rec = record(KUEUE)
    assert rec.ref("Workload") == ObjectRef("job-1", "dev")
    # controller-runtime's top-level namespace and name, under the key "".
    assert rec.ref("") == ObjectRef("job-1", "dev")
    # `controllerKind` is a plain string without a slash: not a reference.
    assert rec.ref("controllerKind") is None


def test_zap_json_cluster_scoped_ref_has_no_namespace() -> None:
    rec = record(
        '{"level":"Level(-3)","ts":1704982865.0,"msg":"ClusterQueue is active",'
        '"clusterQueue":{"name":"cluster-queue"}}'
    )
    assert rec.ref("clusterQueue") == ObjectRef("cluster-queue", "")
    assert rec.ref("") is None


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("info", ("info", 0)),
        ("debug", ("debug", 1)),
        ("Level(-2)", ("debug", 2)),
        ("Level(-5)", ("debug", 5)),
        ("warn", ("warning", 0)),
        ("error", ("error", 0)),
        ("dpanic", ("error", 0)),
        ("panic", ("fatal", 0)),
        ("fatal", ("fatal", 0)),
    ],
)
def test_zap_json_levels(level: str, expected: tuple[str, int]) -> None:
    rec = record(f'{{"level":"{level}","ts":1704982864.1234567,"msg":"m"}}')
    assert (rec.level, rec.verbosity) == expected


def test_zap_json_epoch_float_ts() -> None:
    rec = record('{"level":"Level(-2)","ts":1704982864.1234567,"msg":"Workload assumed"}')
    assert rec.time == pytest.approx(1704982864.1234567)
    assert (rec.level, rec.verbosity) == ("debug", 2)


def test_json_with_invalid_utf8_is_decoded_with_replacement() -> None:
    rec = record(b'{"level":"error","msg":"Reconciler error","error":"bad \xff byte"}')
    assert rec.fields["error"] == "bad \ufffd byte"
    assert rec.level == "error"


@pytest.mark.parametrize(
    "line",
    [b"{", b'{"msg": "x"', b"{not json}", b'{"a":1}}', b"{}garbage"],
)
def test_broken_json_is_invalid_json(line: bytes) -> None:
    assert decode(line, year=YEAR) == INVALID_JSON


def test_json_that_is_not_an_object() -> None:
    # Starts with `{`? No: arrays and strings are not log records.
    assert decode(b'["Sync failed"]', year=YEAR) == UNRECOGNISED
    assert decode(b'"Sync failed"', year=YEAR) == UNRECOGNISED


def test_empty_json_object_is_a_record_without_message() -> None:
    rec = record("{}")
    assert (rec.message, rec.level, rec.time, rec.fields) == ("", "info", None, {})


# --- controller-runtime console (development) encoder ---------------------------------------------


def test_zap_console_with_logger_and_json() -> None:
    rec = record(
        "2024-01-11T14:21:07Z\tERROR\tcontrollers.Guestbook\tReconciler error\t"
        '{"controller": "guestbook", "Guestbook": {"name": "guestbook-sample", "namespace": '
        '"default"}, "namespace": "default", "name": "guestbook-sample", "error": "boom"}'
    )
    assert rec.format == "zap-console"
    assert rec.message == "Reconciler error"
    assert rec.logger == "controllers.Guestbook"
    assert rec.level == "error"
    assert rec.time == at("2024-01-11T14:21:07+00:00")
    assert rec.fields["error"] == "boom"
    assert rec.ref("Guestbook") == ObjectRef("guestbook-sample", "default")
    assert rec.ref("") == ObjectRef("guestbook-sample", "default")


def test_zap_console_without_logger() -> None:
    rec = record(
        '2024-01-11T14:21:03Z\tINFO\tStarting EventSource\t{"controller": "guestbook", '
        '"source": "kind source: *v1.Guestbook"}'
    )
    assert (rec.message, rec.logger) == ("Starting EventSource", "")
    assert rec.fields == {"controller": "guestbook", "source": "kind source: *v1.Guestbook"}


def test_zap_console_without_json() -> None:
    rec = record("2024-01-11T14:21:03Z\tINFO\tsetup\tstarting manager")
    assert (rec.message, rec.logger, rec.fields) == ("starting manager", "setup", {})


def test_zap_console_with_caller() -> None:
    rec = record(
        "2024-01-11T14:21:08Z\tINFO\tcontrollers.Guestbook\tguestbook_controller.go:88\t"
        'Scaled deployment\t{"replicas": 5}'
    )
    assert (rec.message, rec.logger, rec.fields) == (
        "Scaled deployment",
        "controllers.Guestbook",
        {"replicas": 5},
    )


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("1.7049828653e+09", 1704982865.3),
        ("2024-01-11T15:21:06.123+0100", at("2024-01-11T14:21:06.123+00:00")),
        ("2024-01-11T14:21:06.123Z", at("2024-01-11T14:21:06.123+00:00")),
    ],
)
def test_zap_console_time_encoders(stamp: str, expected: float) -> None:
    rec = record(f"{stamp}\tDEBUG\tObserved generation\t{{}}")
    assert rec.time == pytest.approx(expected)
    assert (rec.level, rec.verbosity) == ("debug", 1)


def test_zap_console_needs_a_time_and_a_level() -> None:
    assert decode(b"not-a-time\tINFO\tmessage", year=YEAR) == UNRECOGNISED
    assert decode(b"2024-01-11T14:21:03Z\tNOTALEVEL\tmessage", year=YEAR) == UNRECOGNISED
    assert decode(b"a\tb", year=YEAR) == UNRECOGNISED


def test_zap_console_capital_v_level() -> None:
    rec = record('2024-01-11T14:21:07Z\tLEVEL(-2)\tcontrollers.Guestbook\tObserved\t{"a": 1}')
    assert (rec.level, rec.verbosity) == ("debug", 2)


def test_stack_trace_lines() -> None:
    # zap's console stack trace: function lines are unrecognised, file lines are continuations.
    assert (
        decode(
            b"sigs.k8s.io/controller-runtime/pkg/internal/controller.(*Controller).reconcileHandler",
            year=YEAR,
        )
        == UNRECOGNISED
    )
    assert decode(b"\t/go/pkg/mod/sigs.k8s.io/controller.go:329", year=YEAR) == CONTINUATION


# --- logrus JSON, logfmt, slog ------------------------------------------------------------------


def test_logrus_json() -> None:
    rec = record(
        '{"level":"warning","msg":"The group\'s number increased tremendously!","number":122,'
        '"omg":true,"time":"2024-01-11T09:21:05-05:00"}'
    )
    assert (rec.level, rec.message) == ("warning", "The group's number increased tremendously!")
    assert rec.time == at("2024-01-11T14:21:05+00:00")
    assert rec.fields == {"number": 122, "omg": True}


def test_logfmt_logrus_text() -> None:
    rec = record(
        'time="2015-03-26T01:27:38-04:00" level=info msg="A group of walrus emerges from the '
        'ocean" animal=walrus size=10 cm=zoo/walrus-config'
    )
    assert rec.format == "logfmt"
    assert rec.message == "A group of walrus emerges from the ocean"
    assert rec.level == "info"
    assert rec.time == at("2015-03-26T05:27:38+00:00")
    assert rec.fields == {"animal": "walrus", "size": "10", "cm": "zoo/walrus-config"}
    assert rec.ref("cm") == ObjectRef("walrus-config", "zoo")


def test_logfmt_go_kit() -> None:
    rec = record(
        'level=error ts=2024-01-11T14:21:06.123Z caller=sync.go:42 msg="failed to sync" '
        'err="Get \\"https://10.96.0.1:443/api\\": context deadline exceeded"'
    )
    assert (rec.level, rec.message) == ("error", "failed to sync")
    assert rec.time == pytest.approx(at("2024-01-11T14:21:06.123+00:00"))
    assert rec.fields == {
        "caller": "sync.go:42",
        "err": 'Get "https://10.96.0.1:443/api": context deadline exceeded',
    }


def test_logfmt_needs_a_message_or_level() -> None:
    assert decode(b"a=b c=d", year=YEAR) == UNRECOGNISED
    assert record(b"lvl=warn x=1").level == "warning"


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("INFO", ("info", 0)),
        ("INFO+2", ("info", 0)),
        ("WARN", ("warning", 0)),
        ("WARN+2", ("warning", 0)),
        ("ERROR", ("error", 0)),
        ("ERROR+4", ("error", 0)),
        ("DEBUG", ("debug", 1)),
        ("DEBUG-4", ("debug", 1)),
    ],
)
def test_slog_levels(level: str, expected: tuple[str, int]) -> None:
    rec = record(f'{{"time":"2024-01-11T15:21:03.806+01:00","level":"{level}","msg":"hello"}}')
    assert (rec.level, rec.verbosity) == expected
    assert rec.time == pytest.approx(at("2024-01-11T14:21:03.806+00:00"))


def test_slog_groups_are_refs() -> None:
    rec = record(
        '{"time":"2024-01-11T15:21:04.000+01:00","level":"INFO","msg":"reconciled",'
        '"source":{"function":"main.main","file":"/app/main.go","line":42},'
        '"req":{"namespace":"dev","name":"job-1"},"count":3}'
    )
    assert rec.ref("req") == ObjectRef("job-1", "dev")
    assert rec.ref("source") is None  # a group without a name
    assert rec.fields["count"] == 3


# --- levels and times ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("trace", ("debug", 2)),
        ("TRACE", ("debug", 2)),
        ("Warning", ("warning", 0)),
        ("crit", ("fatal", 0)),
        ("notice", ("info", 0)),
        ("Level(-2)", ("debug", 2)),
        ("Level(0)", ("info", 0)),
        (-2, ("debug", 2)),
        (0, ("info", 0)),
        # Not known: never read as info (a `level: info` rule would quietly take them).
        (3, ("unknown", 0)),
        ("bogus", ("unknown", 0)),
        ("", ("info", 0)),
        (None, ("info", 0)),
    ],
)
def test_parse_level(raw: Any, expected: tuple[str, int]) -> None:
    assert parse_level(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-01-11T14:21:03.806759252Z", at("2024-01-11T14:21:03.806759+00:00")),
        ("2024-01-11T14:21:03.806759252+05:30", at("2024-01-11T08:51:03.806759+00:00")),
        ("2015-03-26T01:27:38-04:00", at("2015-03-26T05:27:38+00:00")),
        ("2024-01-11T15:21:03+0100", at("2024-01-11T14:21:03+00:00")),
        (1704982863.04728, 1704982863.04728),
        (1704982863, 1704982863.0),
        ("1704982863.5", 1704982863.5),
        (1704982864123.456, 1704982864.123456),
        ("1704982864123", 1704982864.123),
    ],
)
def test_parse_time(raw: Any, expected: float) -> None:
    assert parse_time(raw) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("raw", ["yesterday", "", None, True, [1], {"s": 1}])
def test_parse_time_unreadable(raw: Any) -> None:
    assert parse_time(raw) is None


@pytest.mark.parametrize("raw", ["inf", "-inf", "nan", "Infinity", 1e300, "1e300", -1e300])
def test_parse_time_rejects_non_finite_and_absurd_times(raw: Any) -> None:
    value = parse_time(raw)
    assert value is None or (math.isfinite(value) and -62135596800 <= value <= 253402300799)


# --- continuation, empty, whitespace ------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"", EMPTY),
        (b"   ", EMPTY),
        (b"\t", EMPTY),
        (b"\r", EMPTY),
        (b"\tat main.main()", CONTINUATION),
        (b"  Sync failed level=error", CONTINUATION),
        (b' {"msg":"indented json"}', CONTINUATION),
    ],
)
def test_empty_and_continuation_lines(line: bytes, expected: Undecodable) -> None:
    assert decode(line, year=YEAR) == expected


def test_trailing_carriage_return_is_ignored() -> None:
    assert record(b'{"msg":"crlf"}\r').message == "crlf"
    assert record(b'level=info msg="crlf"\r').message == "crlf"


# --- Go-quoted strings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quoted", "expected"),
    [
        ('"plain"', "plain"),
        ('""', ""),
        ('"a\\tb"', "a\tb"),
        ('"say \\"hi\\""', 'say "hi"'),
        ('"back\\\\slash"', "back\\slash"),
        ('"\\x41"', "A"),
        ('"caf\\u00e9"', "café"),
        ('"\\U0001F600"', "\U0001f600"),
        ('"\\a\\b\\f\\n\\r\\t\\v"', "\a\b\f\n\r\t\v"),
        ('"\\x41 \\u00e9"', "A é"),  # \x forces the hand-written path for \u too
        ('"\\\\x41"', "\\x41"),  # an escaped backslash, not an escape
        ("\"'single'\"", "'single'"),
        ('"扩容成功"', "扩容成功"),
    ],
)
def test_unquote_go(quoted: str, expected: str) -> None:
    assert unquote_go(quoted) == expected


@pytest.mark.parametrize("text", ['"unterminated', '"', "bare", "", '"also \\"unterminated'])
def test_unquote_go_keeps_what_is_not_a_quoted_string(text: str) -> None:
    assert unquote_go(text) == text


def test_unquote_go_replaces_an_invalid_code_point() -> None:
    assert unquote_go('"\\U00110000"') == "\ufffd"  # not a character: replaced


def test_unquote_go_never_returns_lone_surrogates() -> None:
    result = unquote_go('"bad \\ud800"')
    result.encode("utf-8")


def test_klog_and_logfmt_values_are_unquoted() -> None:
    rec = record('time="2024-01-11T14:21:04Z" level=info msg="a\\tb \\"c\\" \\u00e9" k="x\\x41"')
    assert rec.message == 'a\tb "c" é'
    assert rec.fields["k"] == "xA"


# --- select_lines: the pre-filter's scan ----------------------------------------------------------


def naive_select(
    block: bytes, literals: frozenset[bytes] | None, limit: int
) -> tuple[list[bytes], int, int]:
    lines = block.split(b"\n")[:-1]
    candidates = [
        line
        for line in lines
        if len(line) <= limit and (literals is None or any(lit in line for lit in literals))
    ]
    return candidates, len(lines), sum(1 for line in lines if len(line) > limit)


#: A small alphabet makes literal hits, overlaps and adjacent matches common. Lines that start a
#: multi-line record are left out: the naive model is one line per record (tests/test_multiline.py
#: covers records).
small_lines = st.lists(
    (
        st.binary(max_size=30).map(lambda b: b.replace(b"\n", b""))
        | st.text(alphabet="ab \n", max_size=30).map(lambda t: t.replace("\n", "").encode())
    ).filter(lambda b: not is_head(b)),
    max_size=25,
)
literal_sets = st.none() | st.frozensets(
    st.text(alphabet="ab ", min_size=1, max_size=4).map(str.encode), max_size=4
)


@PROPERTY
@given(small_lines, literal_sets, st.integers(min_value=1, max_value=40))
@example([b"ab" * 20, b"a"], frozenset({b"a"}), 5)
@example([b"", b"", b"abab"], frozenset({b"ab", b"ba"}), 4)
@example([b"a" * 9], None, 3)
def test_select_lines_agrees_with_split_and_filter(
    lines: list[bytes], literals: frozenset[bytes] | None, limit: int
) -> None:
    block = b"".join(line + b"\n" for line in lines)
    selection = select_lines(block, literals, limit)
    candidates, count, too_long = naive_select(block, literals, limit)
    assert selection.candidates == candidates
    assert selection.lines == count
    assert selection.too_long == too_long


# --- LineFramer ---------------------------------------------------------------------------------


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return pieces


@PROPERTY
@given(
    # Lines that start no multi-line record (tests/test_multiline.py covers those).
    st.lists(
        st.binary(max_size=25)
        .map(lambda b: b.replace(b"\n", b"").rstrip(b"<"))
        .filter(lambda b: not is_head(b)),
        max_size=15,
    ),
    # A partial line that may begin a stack holds the line before it (tests/test_multiline.py).
    st.binary(max_size=25)
    .map(lambda b: b.replace(b"\n", b""))
    .filter(lambda b: not begins_stack(b) and not begins_frame(b)),
    st.lists(st.integers(min_value=0, max_value=400), max_size=20),
    st.integers(min_value=1, max_value=20),
)
@example([b"x" * 30, b"ok"], b"", [5, 10, 31], 10)
@example([b"ok"], b"y" * 30, [1], 10)
@example([b"a" * 10], b"b" * 10, [], 10)
def test_line_framer_yields_the_lines_within_the_limit(
    lines: list[bytes], trailing: bytes, cuts: list[int], limit: int
) -> None:
    data = b"".join(line + b"\n" for line in lines) + trailing
    framer = LineFramer(limit)
    emitted: list[bytes] = []
    for piece in split_at(data, cuts):
        block = framer.feed(piece)
        if block:
            assert block.endswith(b"\n"), "a block holds complete lines only"
            emitted.extend(block.split(b"\n")[:-1])
        # Held back: at most one partial line, never more than the limit.
        assert framer.pending <= limit
    # The input goes quiet: lines kept back for a stack that may follow them go.
    emitted.extend(framer.release().split(b"\n")[:-1])
    # Every line within the limit comes out, in order; longer ones may be dropped early.
    assert [line for line in emitted if len(line) <= limit] == [
        line for line in lines if len(line) <= limit
    ]
    iterator = iter(lines)
    assert all(any(line == other for other in iterator) for line in emitted), "not a subsequence"
    dropped = len(lines) - len(emitted)
    if len(trailing) > limit:
        assert framer.too_long == dropped + 1
        assert framer.pending == 0
        assert framer.flush() == b""
    else:
        assert framer.too_long == dropped
        assert framer.pending == len(trailing)
        assert framer.flush() == (trailing + b"\n" if trailing else b"")
    assert framer.pending == 0


def test_line_framer_holds_a_partial_line() -> None:
    framer = LineFramer(100)
    assert framer.feed(b'{"msg":"one"}\n{"msg":"tw') == b'{"msg":"one"}\n'
    assert framer.pending == len(b'{"msg":"tw')
    assert framer.feed(b'o"}') == b""
    # Ended exactly at a newline: kept back while a stack may follow, until the input is quiet.
    assert framer.feed(b"\n") == b""
    assert framer.lingering
    assert framer.pending == len(b'{"msg":"two"}\n')
    assert framer.release() == b'{"msg":"two"}\n'
    assert framer.pending == 0
    assert not framer.lingering


def test_line_framer_drops_a_runaway_line_and_resumes() -> None:
    framer = LineFramer(8)
    assert framer.feed(b"ok\n" + b"x" * 9) == b"ok\n"
    assert (framer.too_long, framer.pending) == (1, 0)
    assert framer.feed(b"x" * 100) == b""
    assert framer.feed(b"xx\nnext\n") == b""  # lingering: a stack may follow
    assert framer.release() == b"next\n"
    assert framer.too_long == 1


def test_line_framer_reports_each_dropped_line_once() -> None:
    framer = LineFramer(4)
    assert framer.feed(b"ok\n" + b"x" * 5) == b"ok\n"  # a runaway partial line is dropped
    assert framer.take_too_long() == 1
    assert framer.take_too_long() == 0
    assert framer.feed(b"x\nnext\n" + b"z" * 5) == b"next\n"
    assert framer.take_too_long() == 1
    assert framer.too_long == 2
