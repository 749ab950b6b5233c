"""Properties of `sidecar.core.lines.decode` over generated input: it never raises, and what it
returns is always well formed, whatever the bytes."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import example, given
from hypothesis import strategies as st

from sidecar.core.lines.decode import (
    decode,
    unquote_go,
)
from tests.decode_support import PROPERTY, YEAR, check_decoded, json_values

# --- properties of decode -----------------------------------------------------------------------


@PROPERTY
@given(st.binary(max_size=300))
@example(b"\xff\xfe{")
@example(b'{"msg":"\xff"}')
@example(b"I0101 00:00:00.000000 1 x.go:1] \xff")
def test_decode_arbitrary_bytes_never_raises(line: bytes) -> None:
    check_decoded(decode(line, year=YEAR))


WELL_KNOWN = [
    "ts",
    "time",
    "timestamp",
    "@timestamp",
    "level",
    "lvl",
    "severity",
    "msg",
    "message",
    "logger",
    "v",
    "err",
    "name",
    "namespace",
    "Pod",
]


@PROPERTY
@given(st.dictionaries(st.sampled_from(WELL_KNOWN) | st.text(max_size=8), json_values, max_size=8))
def test_decode_json_objects_with_any_values(obj: dict[str, Any]) -> None:
    check_decoded(decode(orjson.dumps(obj), year=YEAR))


@PROPERTY
@given(st.text(max_size=200))
def test_decode_text_after_an_open_brace(rest: str) -> None:
    check_decoded(decode(b"{" + rest.encode("utf-8", "surrogatepass"), year=YEAR))


@PROPERTY
@given(
    st.sampled_from("IWEF"),
    st.integers(0, 99),
    st.integers(0, 99),
    st.text(max_size=200),
)
def test_decode_klog_header_then_anything(severity: str, month: int, day: int, rest: str) -> None:
    line = f"{severity}{month:02d}{day:02d} 00:15:15.525108       1 x.go:116] {rest}"
    result = decode(line.encode("utf-8", "surrogatepass"), year=YEAR)
    check_decoded(result)


@PROPERTY
@given(
    st.lists(
        st.one_of(
            st.text(alphabet=st.characters(blacklist_characters="\t\n"), max_size=20),
            st.sampled_from(
                [
                    "INFO",
                    "DEBUG",
                    "Level(-2)",
                    "LEVEL(-3)",
                    "2024-01-11T14:21:03Z",
                    "1.7e9",
                    "{",
                    '{"a": 1}',
                    "{}",
                    '{"name": "x"}',
                ]
            ),
        ),
        min_size=1,
        max_size=7,
    )
)
def test_decode_tab_separated_anything(parts: list[str]) -> None:
    check_decoded(decode("\t".join(parts).encode("utf-8", "surrogatepass"), year=YEAR))


logfmt_value = st.one_of(
    st.from_regex(r'"([^"\\]|\\.){0,12}"', fullmatch=True),
    st.text(alphabet=st.characters(blacklist_characters=' "\n'), max_size=12),
)


@PROPERTY
@given(
    st.lists(
        st.tuples(
            st.sampled_from(WELL_KNOWN) | st.from_regex(r"[a-z]{1,6}", fullmatch=True), logfmt_value
        ),
        max_size=6,
    )
)
def test_decode_logfmt_anything(pairs: list[tuple[str, str]]) -> None:
    line = " ".join(f"{key}={value}" for key, value in pairs)
    check_decoded(decode(line.encode("utf-8", "surrogatepass"), year=YEAR))


@PROPERTY
@given(st.text(max_size=40))
def test_unquote_go_never_raises(body: str) -> None:
    assert isinstance(unquote_go(f'"{body}"'), str)


@PROPERTY
@given(st.text(max_size=40).filter(lambda text: "\\" not in text and '"' not in text))
def test_unquote_go_inverts_plain_quoting(body: str) -> None:
    assert unquote_go(f'"{body}"') == body
