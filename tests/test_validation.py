"""pydantic errors as the user reads them: their own keys, a plain message."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, ValidationError, field_validator

from sidecar.core.validation import error_message, error_path


class Inner(BaseModel):
    mode: Literal["a"] | int

    @field_validator("mode")
    @classmethod
    def _odd(cls, value: object) -> object:
        if value == 2:
            raise ValueError("must not be 2")
        return value


class Outer(BaseModel):
    inner: list[Inner]


def test_union_members_and_the_value_error_prefix_are_left_out() -> None:
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate({"inner": [{"mode": "a"}, {"mode": 2}]})
    [detail] = caught.value.errors()
    assert error_path(detail["loc"]) == ["inner", "1", "mode"]
    assert error_message(detail) == "must not be 2"


def test_a_literal_union_member_is_not_a_step() -> None:
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate({"inner": [{"mode": "b"}]})
    paths = {tuple(error_path(detail["loc"])) for detail in caught.value.errors()}
    assert ("inner", "0", "mode") in paths  # pydantic's loc ends in "literal['a']" here
