"""The built-in formats of operators not written in Go, and levels and times never guessed.

Every example line below was written by the logger itself, configured as the project in question
configures it (the same lines are replayed end to end in tests/golden/kopf-text, kopf-json,
python-json, tracing-json, logstash-json and log4j2-strimzi). Each test's docstring names the
source file that makes the shape, by repository and path.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sidecar.core.lines.decode import UNRECOGNISED, decode, parse_level
from sidecar.core.lines.records import LEVELS, UNKNOWN_LEVEL, ObjectRef, Record
from sidecar.core.rules import load_rules
from tests.decode_support import PROPERTY, check_decoded, json_values
from tests.faults.scaling import MAX_RATIO, cost_ratio

YEAR = 2026


def at(text: str) -> float:
    """Epoch seconds of an RFC 3339 time, independently of the decoder."""
    return datetime.fromisoformat(text).timestamp()


def record(line: str) -> Record:
    decoded = decode(line.encode(), year=YEAR)
    assert type(decoded) is Record, f"{line!r} did not decode: {decoded}"
    return decoded


# --- Python logging text as kopf writes it --------------------------------------------------------

KOPF_TEXT_OBJECT = (
    "[2026-12-06 01:38:23,903] kopf.objects         [ERROR   ] [team-b/kopf-example-2] "
    "Handler 'update_fn' failed temporarily: quota exceeded for team-b"
)
KOPF_TEXT_CLUSTER = (
    "[2026-12-06 01:38:23,903] kopf.objects         [INFO    ] [cluster-thing] "
    "Phase changed to Ready"
)
KOPF_TEXT_OPERATOR = (
    "[2026-12-06 01:38:23,903] kopf._core.reactor.r [WARNING ] "
    "OperatorSettings.peering.standalone is not set. Running in standalone mode."
)


def test_kopf_text_names_the_object() -> None:
    """nolar/kopf kopf/_core/actions/loggers.py: `LogFormat.FULL`
    (`[%(asctime)s] %(name)-20.20s [%(levelname)-8.8s] %(message)s`), the default of kopf/cli.py's
    `--log-format`, with `ObjectPrefixingMixin`'s `[namespace/name] ` (on by default for text)."""
    rec = record(KOPF_TEXT_OBJECT)
    assert rec.format == "kopf-text"
    assert rec.time == pytest.approx(at("2026-12-06T01:38:23.903+00:00"))
    assert (rec.level, rec.verbosity) == ("error", 0)
    assert rec.logger == "kopf.objects"
    assert rec.message == "Handler 'update_fn' failed temporarily: quota exceeded for team-b"
    assert rec.fields == {"namespace": "team-b", "name": "kopf-example-2"}
    assert rec.ref("") == ObjectRef("kopf-example-2", "team-b")
    assert rec.missing == ()


def test_kopf_text_cluster_scoped_object_has_no_namespace() -> None:
    """nolar/kopf kopf/_core/actions/loggers.py: `[{name}]` when the object has no namespace."""
    rec = record(KOPF_TEXT_CLUSTER)
    assert rec.fields == {"name": "cluster-thing"}
    assert rec.message == "Phase changed to Ready"


def test_kopf_text_logger_names_are_cut_to_twenty_characters() -> None:
    """nolar/kopf kopf/_core/actions/loggers.py: `%(name)-20.20s` pads and cuts the name;
    only `kopf.objects` (the `ObjectLogger`'s logger) carries an object prefix."""
    rec = record(KOPF_TEXT_OPERATOR)
    assert rec.logger == "kopf._core.reactor.r"
    assert (rec.level, rec.fields) == ("warning", {})
    assert rec.message.startswith("OperatorSettings.peering")
    other = record("[2026-12-06 01:38:23,903] my.handlers          [INFO    ] [retry] again")
    assert (other.message, other.fields) == ("[retry] again", {})


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("DEBUG   ", ("debug", 1)),
        ("INFO    ", ("info", 0)),
        ("WARNING ", ("warning", 0)),
        ("ERROR   ", ("error", 0)),
        ("CRITICAL", ("fatal", 0)),
        ("Level 5 ", (UNKNOWN_LEVEL, 0)),  # logging.getLevelName(5): a level with no name
    ],
)
def test_kopf_text_levels(name: str, level: tuple[str, int]) -> None:
    """CPython Lib/logging/__init__.py: `%(levelname)-8.8s` of the standard level names."""
    rec = record(f"[2026-12-06 01:38:23,903] kopf.objects         [{name}] [ns/n] m")
    assert (rec.level, rec.verbosity) == level


def test_kopf_text_message_with_key_value_text_is_not_logfmt() -> None:
    rec = record(
        '[2026-12-06 01:38:23,903] kopf.objects         [INFO    ] [ns/n] level=error msg="x"'
    )
    assert (rec.format, rec.level, rec.message) == ("kopf-text", "info", 'level=error msg="x"')


@pytest.mark.parametrize(
    "line",
    [
        "[2026-12-06 01:38:23,903] short [INFO    ] the name is not padded to 20",
        "[2026-12-06 01:38:23] kopf.objects         [INFO    ] no milliseconds",
        "[INFO] plain bracketed text",
    ],
)
def test_lines_that_only_look_like_kopf_text(line: str) -> None:
    assert decode(line.encode(), year=YEAR) == UNRECOGNISED


# --- kopf JSON and python-json-logger -------------------------------------------------------------

KOPF_JSON = (
    '{"message": "Handler \'update_fn\' failed temporarily: quota exceeded for team-b", '
    '"timestamp": "2026-12-06T01:38:24.637070+00:00", "object": {"apiVersion": "kopf.dev/v1", '
    '"kind": "KopfExample", "name": "kopf-example-2", "uid": "0f1e2d3c-aaaa-4bbb-8ccc-'
    '000000000002", "namespace": "team-b"}, "severity": "error"}'
)


def test_kopf_json() -> None:
    """nolar/kopf kopf/_core/actions/loggers.py: `ObjectJsonFormatter` (python-json-logger's
    JsonFormatter with `timestamp=True`, the object as `object`, `severity` from levelno)."""
    rec = record(KOPF_JSON)
    assert rec.format == "kopf-json"
    assert rec.time == pytest.approx(at("2026-12-06T01:38:24.637070+00:00"))
    assert rec.level == "error"
    assert rec.message.startswith("Handler 'update_fn' failed")
    assert rec.ref("object") == ObjectRef("kopf-example-2", "team-b")
    assert rec.fields["object"]["kind"] == "KopfExample"
    assert rec.missing == ()


@pytest.mark.parametrize(
    ("severity", "level"),
    [
        ("debug", "debug"),
        ("info", "info"),
        ("warn", "warning"),
        ("error", "error"),
        ("fatal", "fatal"),
    ],
)
def test_kopf_json_severities(severity: str, level: str) -> None:
    """nolar/kopf kopf/_core/actions/loggers.py: `ObjectJsonFormatter.add_fields` writes
    debug/info/warn/error/fatal."""
    line = KOPF_JSON.replace('"severity": "error"', f'"severity": "{severity}"')
    assert record(line).level == level


PYTHON_JSON = (
    '{"asctime": "2026-12-06 01:38:24,970", "levelname": "WARNING", "name": "quota.controller", '
    '"message": "quota near its limit", "namespace": "team-a", "used": 0.93}'
)


def test_python_json_logger() -> None:
    """nhairs/python-json-logger src/pythonjsonlogger/core.py: `add_fields` writes the
    LogRecord attributes the format string names (`%(asctime)s %(levelname)s %(name)s
    %(message)s`, as its README shows) under their own names, then the extras."""
    rec = record(PYTHON_JSON)
    assert rec.format == "python-json"
    assert rec.time == pytest.approx(at("2026-12-06T01:38:24.970+00:00"))
    assert rec.level == "warning"
    assert rec.logger == "quota.controller"
    assert rec.message == "quota near its limit"
    # Kept as fields too: rules that matched them before still do.
    assert rec.fields["levelname"] == "WARNING"
    assert rec.fields["used"] == 0.93
    assert rec.missing == ()


def test_python_json_logger_level_without_a_name_is_unknown() -> None:
    """CPython Lib/logging/__init__.py: `getLevelName(25)` is `Level 25`."""
    line = PYTHON_JSON.replace('"WARNING"', '"Level 25"')
    assert record(line).level == UNKNOWN_LEVEL


def test_python_json_logger_created_when_asctime_is_absent() -> None:
    rec = record('{"created": 1796521104.97, "levelname": "INFO", "message": "m"}')
    assert rec.time == pytest.approx(1796521104.97)
    assert rec.missing == ()


# --- tracing-subscriber JSON ----------------------------------------------------------------------

TRACING = (
    '{"timestamp":"2026-12-06T01:41:59.114910Z","level":"INFO","fields":{"message":"Phase '
    'changed to Pending","name":"samuel","namespace":"default","phase":"Pending"},"target":'
    '"gen_tracing","span":{"phase":"Pending","name":"reconcile"},"spans":[{"object.reason":'
    '"object updated","object.ref":"Document.v1.kube.rs/samuel.default","name":"reconciling '
    'object"},{"phase":"Pending","name":"reconcile"}]}'
)
TRACING_FLAT = (
    '{"timestamp":"2026-12-06T01:41:59.118554Z","level":"INFO","message":"Phase changed to '
    'Pending","name":"samuel","namespace":"default","phase":"Pending","target":"gen_tracing"}'
)


def test_tracing_subscriber_json() -> None:
    """tokio-rs/tracing tracing-subscriber/src/fmt/format/json.rs: `Format<Json>::format_event`
    writes `timestamp`, `level`, `fields` (the event's fields, the message as `message`),
    `target`, then `span` (the current span) and `spans` (root to leaf), each span's fields
    with its `name`; kube-rs's Controller logs in a "reconciling object" span with `object.ref`."""
    rec = record(TRACING)
    assert rec.format == "tracing-json"
    assert rec.time == pytest.approx(at("2026-12-06T01:41:59.114910+00:00"))
    assert (rec.level, rec.logger) == ("info", "gen_tracing")
    assert rec.message == "Phase changed to Pending"
    assert rec.fields["fields"]["phase"] == "Pending"
    assert rec.fields["fields"]["message"] == "Phase changed to Pending"  # kept
    assert rec.fields["target"] == "gen_tracing"  # kept
    assert rec.fields["span"] == {"phase": "Pending", "name": "reconcile"}
    assert rec.fields["spans"][0]["object.ref"] == "Document.v1.kube.rs/samuel.default"
    assert rec.ref("fields") == ObjectRef("samuel", "default")
    assert rec.missing == ()


def test_tracing_subscriber_json_flattened() -> None:
    """tokio-rs/tracing tracing-subscriber/src/fmt/format/json.rs: with `flatten_event(true)`
    the event's fields (the message too) are top-level keys; outside a span there is no
    `span`/`spans`."""
    rec = record(TRACING_FLAT)
    assert (rec.format, rec.logger, rec.message) == ("tracing-json", "gen_tracing", rec.message)
    assert rec.message == "Phase changed to Pending"


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("TRACE", ("debug", 2)),
        ("DEBUG", ("debug", 1)),
        ("INFO", ("info", 0)),
        ("WARN", ("warning", 0)),
        ("ERROR", ("error", 0)),
    ],
)
def test_tracing_levels(level: str, expected: tuple[str, int]) -> None:
    """tokio-rs/tracing tracing-serde/src/lib.rs: `SerializeLevel` writes TRACE ... ERROR."""
    rec = record(TRACING.replace('"level":"INFO"', f'"level":"{level}"'))
    assert (rec.level, rec.verbosity) == expected


def test_tracing_event_without_a_message_says_so() -> None:
    """`trace!(yaks = 3, shaved = true)`: an event may have no message field at all."""
    rec = record(
        '{"timestamp":"2026-12-06T01:41:59.115198Z","level":"TRACE","fields":{"yaks":3,'
        '"shaved":true},"target":"gen_tracing"}'
    )
    assert (rec.message, rec.logger, rec.missing) == ("", "gen_tracing", ("message",))


def test_a_go_line_with_a_target_field_keeps_its_meaning() -> None:
    """Only tracing's own keys make `target` the logger: a zap line's field stays a field."""
    rec = record('{"level":"info","ts":1704982863.1,"msg":"probe","target":"10.0.0.1:443"}')
    assert (rec.format, rec.logger, rec.fields) == ("json", "", {"target": "10.0.0.1:443"})


# --- logstash-logback-encoder JSON ----------------------------------------------------------------

LOGSTASH = (
    '{"@timestamp":"2026-12-06T01:39:44.35011127Z","@version":"1","message":"Error during '
    'event processing","logger_name":"com.example.WebPageReconciler","thread_name":"main",'
    '"level":"ERROR","level_value":40000,"stack_trace":"java.lang.IllegalStateException: '
    "ConfigMap lorem is invalid\\n\\tat Logstash.reconcile(Logstash.java:21)\\n\\tat "
    'Logstash.main(Logstash.java:30)\\n","resource.apiVersion":"sample.javaoperatorsdk/v1",'
    '"resource.generation":"2","resource.name":"lorem","resource.namespace":"team-a",'
    '"resource.uid":"7d3c2a1b-0000-4000-8000-000000000005","resource.kind":"WebPage",'
    '"resource.resourceVersion":"4711"}'
)


def test_logstash_logback_encoder() -> None:
    """logfellow/logstash-logback-encoder src/main/java/net/logstash/logback/fieldnames/
    LogstashFieldNames.java (and LogstashCommonFieldNames.java): `@timestamp`, `@version`,
    `message`, `logger_name`, `thread_name`, `level`, `level_value`, `stack_trace`, then the MDC;
    operator-framework/java-operator-sdk operator-framework-core/src/main/java/io/
    javaoperatorsdk/operator/processing/MDCUtils.java puts `resource.name`, ... in the MDC."""
    rec = record(LOGSTASH)
    assert rec.format == "logstash-json"
    assert rec.time == pytest.approx(at("2026-12-06T01:39:44.350111+00:00"))
    assert (rec.level, rec.logger) == ("error", "com.example.WebPageReconciler")
    assert rec.message == "Error during event processing"
    assert rec.fields["logger_name"] == "com.example.WebPageReconciler"  # kept
    assert rec.fields["resource.name"] == "lorem"  # literal dotted keys, as the MDC has them
    assert rec.fields["resource.namespace"] == "team-a"
    assert rec.fields["stack_trace"].startswith("java.lang.IllegalStateException")
    assert rec.missing == ()


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("TRACE", "debug"),
        ("DEBUG", "debug"),
        ("INFO", "info"),
        ("WARN", "warning"),
        ("ERROR", "error"),
    ],
)
def test_logstash_levels(level: str, expected: str) -> None:
    """qos-ch/logback logback-classic/src/main/java/ch/qos/logback/classic/Level.java: the
    level names LogstashEncoder writes as `level`."""
    assert record(LOGSTASH.replace('"ERROR"', f'"{level}"')).level == expected


# --- log4j2 pattern text as Strimzi configures it ------------------------------------------------

STRIMZI = (
    "2026-12-06 01:39:45 WARN  KafkaAssemblyOperator:14 - Reconciliation #2(timer) "
    "Kafka(myproject/broken): Failed to reconcile"
)


def test_log4j2_as_strimzi_configures_it() -> None:
    """strimzi/strimzi-kafka-operator cluster-operator/src/main/resources/log4j2.properties
    (and packaging/install/cluster-operator/050-ConfigMap-strimzi-cluster-operator.yaml):
    `%d{yyyy-MM-dd HH:mm:ss} %-5p %c{1}:%L - %m%n`; the message prefix is
    operator-common/src/main/java/io/strimzi/operator/common/Reconciliation.java's toString."""
    rec = record(STRIMZI)
    assert rec.format == "log4j2"
    assert rec.time == at("2026-12-06T01:39:45+00:00")
    assert (rec.level, rec.logger) == ("warning", "KafkaAssemblyOperator")
    assert rec.message == "Reconciliation #2(timer) Kafka(myproject/broken): Failed to reconcile"
    assert rec.fields == {"line": "14"}
    assert rec.missing == ()


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("TRACE", ("debug", 2)),
        ("DEBUG", ("debug", 1)),
        ("INFO ", ("info", 0)),
        ("WARN ", ("warning", 0)),
        ("ERROR", ("error", 0)),
        ("FATAL", ("fatal", 0)),
        ("DIAG", (UNKNOWN_LEVEL, 0)),  # a custom log4j2 level
    ],
)
def test_log4j2_levels(level: str, expected: tuple[str, int]) -> None:
    """apache/logging-log4j2 log4j-api/src/main/java/org/apache/logging/log4j/Level.java;
    `%-5p` pads the shorter names to five characters."""
    rec = record(f"2026-12-06 01:39:45 {level} Main:10 - ClusterOperator 0.45.0 is starting")
    assert (rec.level, rec.verbosity) == expected


def test_log4j2_without_a_location() -> None:
    """`%L` is empty when log4j2 has no location (an async logger): no `line` field."""
    rec = record("2026-12-06 01:39:45 INFO  Main: - starting")
    assert (rec.logger, rec.fields, rec.message) == ("Main", {}, "starting")


def test_lines_that_only_look_like_log4j2() -> None:
    assert decode(b"2026-12-06 01:39:45 - not a level", year=YEAR) == UNRECOGNISED
    assert decode(b"2026 was a year - of sorts", year=YEAR) == UNRECOGNISED


# --- levels the decoder does not know are never read as info -------------------------------------


@pytest.mark.parametrize(
    "raw",
    [1, 3, 5, 20, 30, 50, "3", "SEVERE", "verbose", "Level 25", True, 2.0, {"a": 1}],
)
def test_an_unknown_level_is_unknown(raw: Any) -> None:
    assert parse_level(raw) == (UNKNOWN_LEVEL, 0)
    rec = record(orjson.dumps({"ts": 1704982863, "msg": "m", "level": raw}).decode())
    assert (rec.level, rec.missing) == (UNKNOWN_LEVEL, ())


RULES = """
component: probe
rules:
  - name: by-level
    match: {message: m, level: [debug, info, warning, error, fatal]}
    object: {kind: Node, name: n1}
    reason: Seen
"""


def test_no_level_condition_matches_an_unknown_level(tmp_path: Path) -> None:
    """Before, `"level": 50` was read as info, so a `level: error` rule quietly missed it and a
    `level: info` rule took it."""
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    rules = load_rules(path)
    unknown = record('{"ts":1704982863,"msg":"m","level":50}')
    assert rules.first_match(unknown) is None
    assert rules.first_match(record('{"ts":1704982863,"msg":"m","level":"error"}')) is not None
    assert UNKNOWN_LEVEL not in LEVELS


@pytest.mark.parametrize(("raw", "expected"), [(0, ("info", 0)), (-1, ("debug", 1))])
def test_numbers_every_logger_agrees_on_are_still_read(raw: int, expected: tuple[str, int]) -> None:
    assert parse_level(raw) == expected


# --- what a line did not give is said, never guessed silently -----------------------------------


@pytest.mark.parametrize(
    ("line", "missing"),
    [
        ('{"level":"info","ts":1704982863,"msg":"m"}', ()),
        # A time key that is not a known one: the Event would get the read time, and a name
        # that changes on every replay; `missing` lets the caller count it.
        ('{"level":"info","eventTime":"2024-01-11T14:21:03Z","msg":"m"}', ("time",)),
        ('{"level":"info","ts":"yesterday","msg":"m"}', ("time",)),
        ('{"ts":1704982863,"msg":"m"}', ("level",)),
        ('{"ts":1704982863,"msg":"m","level":""}', ("level",)),
        ('{"ts":1704982863,"level":"info"}', ("message",)),
        ('{"ts":1704982863,"level":"info","msg":null}', ("message",)),
        ("{}", ("time", "level", "message")),
        ('{"ts":1704982863,"msg":"m","v":2}', ()),  # klog JSON: `v` is its level
        ('{"ts":1704982863,"msg":"m","err":"x"}', ()),  # klog JSON's error lines
        ('level=info msg="no time"', ("time",)),
        ('time="2024-01-11T14:21:03Z" level=info msg="m"', ()),
        ('I0111 14:21:03.000000       1 x.go:1] "m"', ()),
        ('I0230 14:21:03.000000       1 x.go:1] "February 30th"', ("time",)),
    ],
)
def test_missing_says_what_the_line_did_not_give(line: str, missing: tuple[str, ...]) -> None:
    assert record(line).missing == missing


def test_a_time_out_of_range_is_flagged_not_missing() -> None:
    rec = record('{"level":"info","ts":1e300,"msg":"m"}')
    assert (rec.time, rec.time_out_of_range, rec.missing) == (None, True, ())


def test_a_panic_has_no_time() -> None:
    rec = decode(
        b"panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/app/main.go:5 +0x1d", year=YEAR
    )
    assert type(rec) is Record
    assert (rec.format, rec.missing) == ("go-panic", ("time",))


# --- properties ---------------------------------------------------------------------------------

SHAPE_KEYS = [
    "target",
    "fields",
    "span",
    "spans",
    "timestamp",
    "@timestamp",
    "@version",
    "level_value",
    "logger_name",
    "levelname",
    "asctime",
    "created",
    "name",
    "severity",
    "object",
    "message",
    "level",
]


@PROPERTY
@given(st.dictionaries(st.sampled_from(SHAPE_KEYS) | st.text(max_size=8), json_values, max_size=8))
@example({"timestamp": 1, "level": {"a": 1}, "target": "x"})  # raised TypeError: unhashable
@example({"timestamp": 1, "level": [1], "target": "x"})
@example({"levelname": {"a": 1}, "name": [], "asctime": {}, "created": "x"})
@example({"logger_name": 1, "level_value": None, "message": {"a": 1}})
def test_other_json_shapes_with_any_values(obj: dict[str, Any]) -> None:
    check_decoded(decode(orjson.dumps(obj), year=YEAR))


@PROPERTY
@given(
    st.sampled_from(["target", "logger_name", "levelname", "severity"]).flatmap(
        lambda trigger: st.fixed_dictionaries(
            {trigger: json_values},
            optional={key: json_values for key in SHAPE_KEYS if key != trigger},
        )
    )
)
def test_each_shape_with_any_values(obj: dict[str, Any]) -> None:
    """Every key set that leads into a shape's detection, with values of any JSON type."""
    check_decoded(decode(orjson.dumps(obj), year=YEAR))


@PROPERTY
@given(
    st.sampled_from(
        [
            "[2026-12-06 01:38:23,903] kopf.objects         [INFO    ] ",
            "[2026-12-06 01:38:23,903] kopf.objects         [",
            "[2026-12-99 99:38:23,903] kopf.objects         [ERROR   ] [",
            "2026-12-06 01:39:45 INFO  Main:10 - ",
            "2026-13-45 01:39:45 WARN  Main: - ",
        ]
    ),
    st.text(max_size=100),
)
def test_text_headers_then_anything(header: str, rest: str) -> None:
    result = decode((header + rest).encode("utf-8", "surrogatepass"), year=YEAR)
    check_decoded(result)
    if type(result) is Record and result.time is None:
        assert result.missing[:1] == ("time",)


#: The new text headers' worst cases, each a function of a length (see tests/faults/scaling.py).
ADVERSARIAL: dict[str, Callable[[int], bytes]] = {
    "kopf header then a long token": lambda n: b"[2026-12-06 01:38:23,903] " + b"a" * n,
    "kopf prefix never closed": lambda n: (
        b"[2026-12-06 01:38:23,903] kopf.objects         [INFO    ] [" + b"a" * n
    ),
    "kopf prefix of slashes": lambda n: (
        b"[2026-12-06 01:38:23,903] kopf.objects         [INFO    ] [ns/" + b"/" * n
    ),
    "log4j2 logger never ending": lambda n: b"2026-12-06 01:39:45 INFO  " + b"a" * n + b" - x",
    "log4j2 spaces after the level": lambda n: b"2026-12-06 01:39:45 INFO" + b" " * n + b"- x",
    "log4j2 many separators": lambda n: b"2026-12-06 01:39:45 INFO  a:1" + b" - :1" * (n // 5),
}


@pytest.mark.parametrize("shape", sorted(ADVERSARIAL))
def test_new_headers_cost_grows_linearly(shape: str) -> None:
    make = ADVERSARIAL[shape]
    ratio = cost_ratio(lambda n: decode(make(n), year=YEAR), 1_000)
    assert ratio < MAX_RATIO, f"{shape}: 16x longer input cost {ratio:.1f}x"
