"""Adversarial log lines: every decoder's work grows linearly with the line.

A logfmt line ending in a long bare token once backtracked quadratically in the pair pattern
(`level=info msg=x ` + 100,000 x `a` took 87 s), stalling the event loop and the health probes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.lines.decode import decode
from sidecar.core.lines.formats import go as go_formats
from tests.faults.scaling import MAX_RATIO, cost_ratio

#: Adversarial shapes, each a function of a length: the cost of decoding it must grow linearly.
ADVERSARIAL: dict[str, Callable[[int], bytes]] = {
    "logfmt long bare token": lambda n: b"level=info msg=x " + b"a" * n,
    "logfmt token after a quote": lambda n: b'level=info msg=x "' + b"a" * n,
    "logfmt unterminated quotes": lambda n: b"level=info " + b'k="x ' * (n // 5),
    "logfmt many equals": lambda n: b"level=info msg=" + b"=" * n,
    "logfmt backslashes": lambda n: b'level=info msg="' + b"\\" * n,
    "logfmt alternating quotes": lambda n: b"level=info " + b'a"' * (n // 2),
    "klog structured long token": lambda n: (
        b'I1025 00:15:15.525108 1 file.go:116] "msg" k=v ' + b"a" * n
    ),
    "klog unterminated message": lambda n: b'I1025 00:15:15.525108 1 f.go:1] "' + b"\\a" * (n // 2),
    "zap console long fields": lambda n: b"2024-01-01T00:00:00Z\tINFO\tmsg\t{" + b'"a":' * (n // 4),
    "json deep nesting": lambda n: b'{"msg":"x","a":' + b"[" * n + b"]" * n + b"}",
    "go escapes": lambda n: b'level=info msg="' + b"\\x41" * (n // 4) + b'"',
}


@pytest.mark.parametrize("shape", sorted(ADVERSARIAL))
def test_decoding_cost_grows_linearly(shape: str) -> None:
    make = ADVERSARIAL[shape]
    ratio = cost_ratio(lambda n: decode(make(n), year=2024), 1_000)
    assert ratio < MAX_RATIO, f"{shape}: 16x longer input cost {ratio:.1f}x"


#: The pair pattern before the look-behind that made it linear: the reference for what it finds.
_QUADRATIC_PAIR = re.compile(r'([^\s="]+)=("(?:[^"\\]|\\.)*"|\S*)')


@given(st.text(alphabet='ab= "\\\tx', max_size=40))
def test_linear_pair_pattern_finds_the_same_pairs(text: str) -> None:
    assert go_formats._PAIR.findall(text) == _QUADRATIC_PAIR.findall(text)
