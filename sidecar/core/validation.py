"""pydantic's validation errors as a user reads them: the keys they wrote and a plain message.

Shared by the rules file and the pod annotations, which both report pydantic errors to someone who
wrote YAML, not Python.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic_core import ErrorDetails


def error_message(detail: ErrorDetails) -> str:
    """The message without the "Value error, " pydantic puts before a validator's own words."""
    return detail["msg"].removeprefix("Value error, ")


def error_path(location: Sequence[int | str]) -> list[str]:
    """The steps of `location` the user wrote: pydantic also names union members and validators
    (`function-after[...]`, `literal['a']`), which are nowhere in the file."""
    return [str(step) for step in location if not str(step).startswith(("function-", "literal["))]
