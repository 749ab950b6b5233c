"""Templates substitute values and can do nothing else, through the renderer rules use."""

from __future__ import annotations

import pytest

from sidecar.core.lines.records import Record
from sidecar.core.rules import render as render_template
from sidecar.core.rules.templates import MissingField, TemplateError, compile_template

FIELDS = {"resource": "cpu", "count": 3, "ok": True, "obj": {"name": "a"}, "a.b": "dotted"}
RECORD = Record("Quota evaluated", level="warning", logger="quota", fields=FIELDS)


def render(source: str, extra: dict[str, str] | None = None) -> str:
    return render_template(compile_template(source), RECORD, extra)


def test_substitution_and_json_spelling_of_non_strings() -> None:
    assert render("{resource} x{count} {ok} {obj}") == 'cpu x3 true {"name":"a"}'


def test_nested_and_dotted_keys() -> None:
    assert render("{obj.name} {a.b}") == "a dotted"


def test_record_attributes_and_transition_names() -> None:
    assert (
        render("{message}|{msg}|{level}|{logger}")
        == "Quota evaluated|Quota evaluated|warning|quota"
    )
    assert render("{from} -> {to}", {"from": "1", "to": "2"}) == "1 -> 2"


def test_a_constant_template_renders_its_text() -> None:
    assert render("no fields {{here}}") == "no fields {here}"


def test_braces_escape() -> None:
    assert render("{{literal}} {resource}") == "{literal} cpu"


def test_missing_field_raises_missing_field_with_its_path() -> None:
    with pytest.raises(MissingField) as caught:
        render("{obj.nope}")
    assert caught.value.path == "obj.nope"


@pytest.mark.parametrize(
    "source",
    ["{x.__class__.__mro__}", "{x.upper()}", "{x!r}", "{x:>999999999}", "{", "{}", "{0}"],
)
def test_anything_but_plain_names_is_refused(source: str) -> None:
    """Anything but a path (names, quoted keys, `[index]`, `[key=value]`: see
    tests/test_rules_paths.py) is refused: templates are data look-ups only."""
    if source == "{x.__class__.__mro__}":
        # A dunder path is only a dictionary lookup: it can never reach attributes.
        with pytest.raises(MissingField):
            render(source)
        return
    with pytest.raises(TemplateError):
        compile_template(source)
