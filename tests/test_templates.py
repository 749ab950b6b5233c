"""Templates substitute values and can do nothing else."""

from __future__ import annotations

import pytest

from sidecar.rules.templates import MissingField, TemplateError, compile_template, lookup_path

FIELDS = {"resource": "cpu", "count": 3, "ok": True, "obj": {"name": "a"}, "a.b": "dotted"}


def render(source: str) -> str:
    return compile_template(source).render(lambda path: lookup_path(FIELDS, path))


def test_substitution_and_json_spelling_of_non_strings() -> None:
    assert render("{resource} x{count} {ok} {obj}") == 'cpu x3 true {"name":"a"}'


def test_nested_and_dotted_keys() -> None:
    assert render("{obj.name} {a.b}") == "a dotted"


def test_braces_escape() -> None:
    assert render("{{literal}} {resource}") == "{literal} cpu"


def test_missing_field_raises_missing_field_with_its_path() -> None:
    with pytest.raises(MissingField) as caught:
        render("{obj.nope}")
    assert caught.value.path == "obj.nope"


@pytest.mark.parametrize(
    "source",
    ["{x.__class__.__mro__}", "{x[0]}", "{x!r}", "{x:>999999999}", "{", "{}", "{0}"],
)
def test_anything_but_plain_names_is_refused(source: str) -> None:
    if source == "{x.__class__.__mro__}":
        # A dunder path is only a dictionary lookup: it can never reach attributes.
        with pytest.raises(MissingField):
            render(source)
        return
    with pytest.raises(TemplateError):
        compile_template(source)
