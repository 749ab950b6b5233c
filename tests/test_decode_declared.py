"""Line formats declared in the rules file (`formats:`): text by an RE2 pattern, JSON by paths,
their times and levels, their order before (or instead of) the built-in formats, their errors,
their counter and what `explain` says of them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sidecar.core.explain import explain_line, format_text, to_json
from sidecar.core.lines.decode import UNRECOGNISED, decode, why_not
from sidecar.core.lines.formats.declared import Formats
from sidecar.core.lines.records import Record
from sidecar.core.pipeline import LinePipeline, Processor
from sidecar.core.rules import RulesError, compile_rules, load_rules, parse_rules
from sidecar.core.rules.lint import lint_rules
from sidecar.core.transitions import TransitionTracker
from sidecar.runtime.metrics import Metrics

RULE = """
rules:
  - name: any
    match: {level: [debug, info, warning, error, fatal]}
    object: {kind: Node, name: n}
    reason: Seen
"""


def formats(text: str) -> Formats:
    return compile_rules(parse_rules(textwrap.dedent(text) + RULE, "rules.yaml")).formats


def read(line: str, fmts: Formats) -> Record:
    record = decode(line.encode(), year=2024, formats=fmts)
    assert type(record) is Record, record
    return record


TEXT = formats(
    r"""
    formats:
      declared:
        - name: billing
          regex: >-
            ^(?P<time>\S+ \S+) \| (?P<level>\w+) \| (?P<logger>\S+) \| (?P<ref>\S+)
            \| (?P<message>.*)$
          time: {layout: "%d/%m/%Y %H:%M:%S.%f"}
          levels: {E: error, W: warning, I: info, "50": fatal}
    """
)


def test_a_text_format_fills_the_record_from_its_named_groups() -> None:
    record = read("11/01/2024 14:21:06.806 | E | billing.sync | ns/inv-7 | sync failed", TEXT)
    assert (record.format, record.level, record.logger, record.message) == (
        "billing",
        "error",
        "billing.sync",
        "sync failed",
    )
    assert record.time == pytest.approx(1704982866.806)
    assert record.fields == {"ref": "ns/inv-7"}
    assert record.missing == ()


def test_the_level_map_then_the_built_in_names_and_never_a_silent_info() -> None:
    line = "11/01/2024 14:21:06.806 | {} | l | r | m"
    assert read(line.format("50"), TEXT).level == "fatal"
    assert read(line.format("warning"), TEXT).level == "warning"  # built-in spelling
    assert read(line.format("SEVERE"), TEXT).level == "unknown"


def test_a_time_the_layout_does_not_read_is_missing_not_the_clock() -> None:
    record = read("2024-01-11 14:21:06 | I | l | r | m", TEXT)
    assert record.time is None
    assert record.missing == ("time",)


def test_declared_formats_come_before_the_built_in_ones_which_still_read_the_rest() -> None:
    assert read('{"level":"info","msg":"zap","ts":1}', TEXT).format == "json"
    assert decode(b"nothing here", year=2024, formats=TEXT) is UNRECOGNISED


JSON = formats(
    """
    formats:
      declared:
        - name: pino
          json: {time: time, level: level, message: msg, logger: name}
          time: {epoch: ms}
          levels: {10: debug, 20: debug, 30: info, 40: warning, 50: error, 60: fatal}
        - name: serilog
          json: {time: "@t", level: "@l", message: "@mt", logger: 'props["Source.Context"]'}
          time: {epoch: ns}
    """
)


def test_a_json_format_reads_its_paths_and_numeric_levels() -> None:
    line = '{"level":50,"time":1704982864806,"pid":7,"name":"rec","msg":"rejected","ns":"b"}'
    record = read(line, JSON)
    assert (record.format, record.level, record.logger, record.message) == (
        "pino",
        "error",
        "rec",
        "rejected",
    )
    assert record.time == pytest.approx(1704982864.806)
    assert record.fields == {"pid": 7, "ns": "b"}
    # The built-in JSON decoder reads the same line's 50 as a level it does not know.
    assert read(line, Formats()).level == "unknown"


def test_a_json_format_with_nested_paths_and_epoch_nanoseconds() -> None:
    line = (
        '{"@t":1704982864806000000,"@l":"Error","@mt":"failed",'
        '"props":{"Source.Context":"Billing"},"x":1}'
    )
    record = read(line, JSON)
    assert (record.format, record.level, record.logger, record.message) == (
        "serilog",
        "error",
        "Billing",
        "failed",
    )
    assert record.time == pytest.approx(1704982864.806)
    assert record.fields["x"] == 1


def test_a_json_format_takes_only_lines_with_every_key_it_names() -> None:
    # A zap line shares `level` and `msg` with pino, but has no `time` or `name`.
    assert read('{"level":"info","ts":1,"msg":"m"}', JSON).format == "json"


def test_builtin_false_reads_only_the_declared_formats() -> None:
    only = formats(
        """
        formats:
          builtin: false
          declared:
            - name: plain
              regex: '^(?P<level>[A-Z]+): (?P<message>.*)$'
        """
    )
    assert read("WARN: disk", only).format == "plain"
    assert decode(b'{"level":"info","msg":"zap"}', year=2024, formats=only) is UNRECOGNISED
    assert decode(b"ValueError: x", year=2024, formats=only).reason == "continuation"  # type: ignore[union-attr]


def test_old_rules_files_have_the_built_in_formats_only() -> None:
    assert compile_rules(parse_rules(RULE, "rules.yaml")).formats == Formats()


@pytest.mark.parametrize(
    ("declaration", "expected"),
    [
        (
            "- name: billing\n  regex: '(?P<message>.*'",
            "rules.yaml:5: format billing: regex: invalid RE2 pattern: missing ): (?P<message>.*",
        ),
        (
            "- name: billing\n  regex: '(?P<msg>.*)'",
            "rules.yaml:4: format billing: the pattern has no named group time, level, logger or "
            "message ((?P<message>...)); nothing would be read from a line",
        ),
        (
            "- name: pino\n  json: {message: msg}\n  time: {epoch: minutes}",
            "rules.yaml:6: format pino: time.epoch: Input should be 's', 'ms', 'us' or 'ns'",
        ),
        (
            "- name: pino\n  json: {message: msg}\n  time: {layout: 'no directive'}",
            "rules.yaml:6: format pino: time: layout 'no directive' has no strptime directive "
            "(%Y, %H, ...)",
        ),
        (
            "- name: pino\n  json: {message: msg}\n  levels: {50: bad}",
            "rules.yaml:6: format pino: levels.50: Input should be 'debug', 'info', 'warning', "
            "'error' or 'fatal'",
        ),
        (
            "- name: json\n  json: {message: msg}",
            "rules.yaml:4: format json: name: 'json' is a built-in format's name; choose another",
        ),
        (
            "- name: pino\n  json: {message: 'a[b'}",
            "rules.yaml:5: format pino: json.message: 'a[b' is not a field path",
        ),
    ],
)
def test_a_bad_declaration_stops_loading_naming_the_file_line_and_format(
    tmp_path: Path, declaration: str, expected: str
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "component: c\nformats:\n  declared:\n  " + declaration.replace("\n", "\n  ") + "\n" + RULE
    )
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    problems = [str(p).replace(str(path), "rules.yaml") for p in caught.value.problems]
    assert len(problems) == 1
    assert problems[0].startswith(expected), problems[0]


def test_each_declared_format_has_a_counter_zero_included() -> None:
    rules = compile_rules(
        parse_rules(
            textwrap.dedent(
                r"""
                formats:
                  declared:
                    - name: plain
                      regex: '^(?P<level>[A-Z]+): (?P<message>.*)$'
                    - name: never
                      regex: '^NEVER (?P<message>.*)$'
                """
            )
            + RULE,
            "rules.yaml",
        )
    )
    pipeline = LinePipeline(Processor(rules, TransitionTracker()), year=2024, max_line_bytes=1000)
    fed = pipeline.feed(b'WARN: disk\nINFO: ok\n{"level":"info","msg":"zap"}\n')
    assert fed.counts.declared == {"plain": 2, "never": 0}
    registry = CollectorRegistry()
    Metrics(registry).count_lines("replay", fed.counts)
    value = registry.get_sample_value
    assert value("event_sidecar_lines_declared_format_total", {"format": "plain"}) == 2
    assert value("event_sidecar_lines_declared_format_total", {"format": "never"}) == 0


def test_explain_says_which_formats_were_tried_and_why_each_failed() -> None:
    rules = compile_rules(
        parse_rules(
            textwrap.dedent(
                """
                formats:
                  declared:
                    - name: pino
                      json: {time: time, level: level, message: msg}
                    - name: plain
                      regex: '^(?P<level>[A-Z]+): (?P<message>.*)$'
                """
            )
            + RULE,
            "rules.yaml",
        )
    )
    processor = Processor(rules, TransitionTracker())

    def explain(line: str) -> list[str]:
        traced = explain_line(processor, line.encode(), 1, year=2024, max_line_bytes=1000)
        assert to_json(traced, None).get("formats_tried", []) == list(traced.tried)
        return format_text(traced, None).split("\n")[1:]

    zap = explain('{"level":"info","msg":"zap"}')
    assert zap[:3] == [
        "  format tried: declared format pino: no time at time",
        "  format tried: declared format plain: pattern did not match",
        "  record: json, time (none), level info, message zap",
    ]
    plain = explain("WARN: disk")
    assert plain[0] == "  format tried: declared format pino: not a JSON object"
    assert plain[1].startswith("  record: plain,")
    nothing = explain("just words")
    assert nothing[0] == "  undecodable: unrecognised"
    assert nothing[1:5] == [
        "  format tried: declared format pino: not a JSON object",
        "  format tried: declared format plain: pattern did not match",
        "  format tried: json: not JSON (no `{` first)",
        "  format tried: klog: no `I0102 15:04:05.000000 1 file.go:1]` header",
    ]
    assert nothing[-1] == "  format tried: logfmt: no key=value pairs"


def test_the_readme_example_loads_and_reads_its_lines() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("### Declared formats") :]
    example = section[section.index("```yaml\n") + 8 : section.index("```\n", 8)]
    rules = compile_rules(parse_rules(example, "README.md"))
    record = read(
        "11/01/2024 14:21:06.806 | E | billing.sync | team-a/invoice-7 | sync failed",
        rules.formats,
    )
    assert (record.format, record.level, record.fields) == (
        "billing",
        "error",
        {"ref": "team-a/invoice-7"},
    )
    assert read('{"level":50,"time":1704982864806,"msg":"m","name":"n"}', rules.formats).level == (
        "error"
    )


def test_the_number_of_declared_formats_is_bounded(tmp_path: Path) -> None:
    many = "".join(
        f"    - name: f{index}\n      regex: '^(?P<message>x{index})$'\n" for index in range(65)
    )
    path = tmp_path / "rules.yaml"
    path.write_text("formats:\n  declared:\n" + many + RULE)
    with pytest.raises(RulesError, match="at most 64"):
        load_rules(path)


def test_check_warns_about_an_unanchored_pattern_and_a_format_without_message() -> None:
    text = (
        "formats:\n  declared:\n"
        "    - name: loose\n      regex: '(?P<level>[A-Z]+): .*'\n"
        "    - name: j\n      json: {level: lvl}\n"
        "    - name: fine\n      regex: '^(?P<message>.*)$'\n" + RULE
    )
    warnings = [str(problem) for problem in lint_rules(text, "rules.yaml", {})]
    assert warnings == [
        "rules.yaml:4: format loose: the pattern is searched anywhere in a line: without `^` it "
        "may read lines of other formats that merely hold such text; anchor it",
        "rules.yaml:4: format loose: no `message` group: its lines have an empty message "
        "(counted as incomplete, `not in the line: message` in explain)",
        "rules.yaml:6: format j: no `message` path: its lines have an empty message (counted as "
        "incomplete, `not in the line: message` in explain)",
    ]


def test_a_go_panic_lists_no_declared_format_as_tried() -> None:
    formats = compile_rules(
        parse_rules(
            "formats:\n  declared:\n    - name: plain\n      regex: '^(?P<message>.*)$'\n" + RULE,
            "rules.yaml",
        )
    ).formats
    panic = b"panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:5 +0x10"
    assert why_not(panic, formats) == []
    record = decode(panic, year=2024, formats=formats)
    assert type(record) is Record and record.format == "go-panic"
