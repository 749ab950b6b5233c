"""klog's text and JSON lines and Go panics, as `sidecar.core.lines.decode` reads them (the lines
are the ones client-go, cluster-api and kube-controller-manager write)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sidecar.core.lines.decode import (
    CONTINUATION,
    UNRECOGNISED,
    decode,
    klog_year,
    years_at,
)
from sidecar.core.lines.records import ObjectRef, Record
from tests.decode_support import YEAR, at, record

# --- klog text ------------------------------------------------------------------------------------


def test_klog_structured_line() -> None:
    rec = record(
        'I1025 00:15:15.525108       1 controller_utils.go:116] "Pod status updated" '
        'pod="kube-system/kubedns" status="ready"'
    )
    assert rec.format == "klog"
    assert rec.message == "Pod status updated"
    assert rec.level == "info"
    assert rec.time == at("2024-10-25T00:15:15.525108+00:00")
    assert rec.fields == {"pod": "kube-system/kubedns", "status": "ready"}
    assert rec.ref("pod") == ObjectRef("kubedns", "kube-system")
    assert rec.ref("status") is None


@pytest.mark.parametrize(
    ("severity", "level"), [("I", "info"), ("W", "warning"), ("E", "error"), ("F", "fatal")]
)
def test_klog_severities(severity: str, level: str) -> None:
    rec = record(f'{severity}0111 14:21:02.000000       1 x.go:1] "m"')
    assert (rec.level, rec.verbosity) == (level, 0)


def test_klog_uses_the_given_year() -> None:
    line = b'I0229 23:59:59.999999       1 x.go:1] "leap"'
    assert decode(line, year=2024).time == at("2024-02-29T23:59:59.999999+00:00")  # type: ignore[union-attr]
    # 2023 has no 29 February: the time is unreadable, the line still decodes.
    rec = decode(line, year=2023)
    assert type(rec) is Record
    assert rec.time is None


@pytest.mark.parametrize(
    ("month", "now", "year"),
    [
        (12, "2025-01-01T00:00:05", 2024),  # December's last lines, read just after New Year
        (11, "2025-01-20T00:00:00", 2024),
        (1, "2025-01-01T00:00:05", 2025),  # January's first lines: the new year
        (2, "2025-01-31T00:00:00", 2025),  # a month ahead: clock skew, still this year
        (3, "2025-01-31T00:00:00", 2024),  # further ahead: last year
        (12, "2025-12-31T23:00:00", 2025),
        (6, "2025-06-15T00:00:00", 2025),
    ],
)
def test_klog_year_comes_from_the_clock_and_the_lines_month(
    month: int, now: str, year: int
) -> None:
    assert klog_year(month, datetime.fromisoformat(now).replace(tzinfo=UTC)) == year


def test_klog_lines_read_after_new_year_keep_their_year() -> None:
    new_year = datetime(2025, 1, 1, 0, 0, 5, tzinfo=UTC)
    december = decode(b'I1231 23:59:58.000000       1 x.go:1] "m"', year=years_at(new_year))
    january = decode(b'I0101 00:00:04.000000       1 x.go:1] "m"', year=years_at(new_year))
    assert december.time == at("2024-12-31T23:59:58+00:00")  # type: ignore[union-attr]
    assert january.time == at("2025-01-01T00:00:04+00:00")  # type: ignore[union-attr]


def test_klog_printf_style_line() -> None:
    rec = record(
        "E1025 00:15:16.123456       1 reflector.go:138] "
        "k8s.io/client-go/informers/factory.go:134: "
        'Failed to watch *v1.Pod: pods is forbidden: User "system:serviceaccount:kube-system:x"'
    )
    assert rec.level == "error"
    assert rec.message == (
        "k8s.io/client-go/informers/factory.go:134: Failed to watch *v1.Pod: pods is forbidden: "
        'User "system:serviceaccount:kube-system:x"'
    )
    assert rec.fields == {}


def test_klog_quoted_message_with_escapes_and_values() -> None:
    rec = record(
        'I1025 00:15:17.000001       1 controller.go:162] "re-queuing \\"item\\"" '
        'key="default/example-com" error="Operation cannot be fulfilled on '
        'certificates.cert-manager.io \\"example-com\\": the object has been modified" count=3'
    )
    assert rec.message == 're-queuing "item"'
    assert rec.fields["error"] == (
        'Operation cannot be fulfilled on certificates.cert-manager.io "example-com": '
        "the object has been modified"
    )
    assert rec.fields["count"] == "3"
    assert rec.ref("key") == ObjectRef("example-com", "default")


def test_klog_multi_line_value() -> None:
    lines = [
        b'I1025 00:15:18.000000    4242 config.go:50] "Config loaded" node="worker-1" config=<',
        b"\tkind: KubeletConfiguration",
        b"\tmaxPods: 110",
        b" >",
    ]
    first = record(lines[0])
    assert first.message == "Config loaded"
    assert first.fields["node"] == "worker-1"
    assert [decode(line, year=YEAR) for line in lines[1:]] == [CONTINUATION] * 3
    # Framed as one record (see sidecar.core.lines.multiline), the value is joined.
    joined = decode(b"\n".join(lines), year=YEAR)
    assert type(joined) is Record
    assert joined.message == "Config loaded"
    assert joined.fields == {
        "node": "worker-1",
        "config": "kind: KubeletConfiguration\nmaxPods: 110",
    }


def test_klog_multi_line_values_one_after_another_and_cut_short() -> None:
    lines = b'I1025 00:15:18.000000 1 x.go:5] "two" a=<\n\tx\n > b=<\n\ty "q"\n\tz\n > c=1'
    joined = decode(lines, year=YEAR)
    assert type(joined) is Record
    assert joined.fields == {"a": "x", "b": 'y "q"\nz', "c": "1"}
    cut = decode(b'I1025 00:15:18.000000 1 x.go:5] "cut" a=<\n\tx', year=YEAR)
    assert type(cut) is Record
    assert cut.fields == {"a": "x"}


GO_PANIC = b"""\
panic: assignment to entry in nil map [recovered]
\tpanic: assignment to entry in nil map
[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x12f4a3]

goroutine 187 [running]:
panic({0x1a2b3c, 0x2d4e5f})
\t/usr/local/go/src/runtime/panic.go:770 +0x132
example.com/ctl/internal/reconcile.(*Reconciler).Reconcile(0xc0001, {0x1f2e3d, 0xc0002})
\t/src/internal/reconcile/reconcile.go:88 +0x1d"""


def test_go_panic_is_one_fatal_record() -> None:
    rec = decode(GO_PANIC, year=YEAR)
    assert type(rec) is Record
    assert rec.level == "fatal"
    assert rec.format == "go-panic"
    assert rec.message == "assignment to entry in nil map"
    assert rec.time is None
    assert rec.fields["panic"] == "panic"
    assert rec.fields["goroutine"] == "187"
    assert rec.fields["signal"].startswith("signal SIGSEGV")
    assert rec.fields["function"].startswith("example.com/ctl/internal/reconcile.(*Reconciler)")
    assert rec.fields["location"] == "/src/internal/reconcile/reconcile.go:88"
    assert rec.fields["stack"].startswith("panic({0x1a2b3c")
    runtime = decode(b"fatal error: concurrent map writes\n\ngoroutine 7 [running]:", year=YEAR)
    assert type(runtime) is Record
    assert (runtime.message, runtime.fields["panic"]) == ("concurrent map writes", "fatal error")
    assert "function" not in runtime.fields


def test_klog_bare_name_is_not_a_namespaced_ref() -> None:
    rec = record('I0111 14:21:04.000000       1 drain.go:77] "Drained node" node="worker-1"')
    assert rec.ref("node") is None


def test_lines_that_only_look_like_klog() -> None:
    assert decode(b"INFO starting", year=YEAR) == UNRECOGNISED
    assert decode(b"I1025 garbage] x", year=YEAR) == UNRECOGNISED


# --- klog JSON ---------------------------------------------------------------------------------


def test_klog_json_seconds_and_v() -> None:
    rec = record(
        '{"ts":1580306777.04728,"v":4,"msg":"Pod status updated",'
        '"pod":{"name":"nginx-1","namespace":"default"},"status":"ready"}'
    )
    assert rec.time == pytest.approx(1580306777.04728)
    assert (rec.level, rec.verbosity) == ("debug", 4)
    assert "v" not in rec.fields
    assert rec.ref("pod") == ObjectRef("nginx-1", "default")


def test_klog_json_milliseconds() -> None:
    rec = record('{"ts":1704982864123.456,"caller":"s.go:42","msg":"m","v":0}')
    assert rec.time == pytest.approx(1704982864.123456)
    assert (rec.level, rec.verbosity) == ("info", 0)
    assert rec.fields == {"caller": "s.go:42"}


def test_klog_json_error_line_has_err_and_no_v() -> None:
    rec = record('{"ts":1704982866.75,"msg":"Failed to drain node","err":"cannot evict pod"}')
    assert rec.level == "error"
    assert rec.fields["err"] == "cannot evict pod"
