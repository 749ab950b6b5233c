"""What the decoder tests share: the year klog lines are read in, the property settings,
and a line decoded as a record (failing the test when it is not)."""

from __future__ import annotations

from datetime import datetime

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from sidecar.core.lines.decode import Undecodable, decode
from sidecar.core.lines.records import LEVELS, UNKNOWN_LEVEL, ObjectRef, Record

YEAR = 2024
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def at(text: str) -> float:
    """Epoch seconds of an RFC 3339 time, independently of the decoder."""
    return datetime.fromisoformat(text).timestamp()


def record(line: bytes | str) -> Record:
    raw = line.encode() if isinstance(line, str) else line
    decoded = decode(raw, year=YEAR)
    assert type(decoded) is Record, f"{raw!r} did not decode: {decoded}"
    return decoded


def check_decoded(result: object) -> None:
    assert type(result) in (Record, Undecodable)
    if type(result) is Record:
        assert result.level in (*LEVELS, UNKNOWN_LEVEL)
        assert isinstance(result.message, str)
        assert isinstance(result.logger, str)
        assert isinstance(result.verbosity, int)
        assert result.time is None or isinstance(result.time, float)
        assert isinstance(result.fields, dict)
        for key in ["", *result.fields]:
            ref = result.ref(key)
            assert ref is None or (isinstance(ref, ObjectRef) and ref.name)
    else:
        assert isinstance(result, Undecodable)
        assert result.reason in {"empty", "continuation", "invalid_json", "unrecognised"}


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(
        [
            "Level(-2)",
            "LEVEL(-2)",
            "WARN+2",
            "inf",
            "nan",
            "1e999",
            "2024-01-11T14:21:03Z",
            "ns/name",
            "Level(99999999999999999999)",
            "Level(-)",
            "-",
        ]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
