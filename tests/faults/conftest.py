"""The fault suite: adversarial inputs and failures, each bounded in time and count, loopback only.

Every test here is marked `faults` (so `pytest -m faults` runs just the suite); `make test` runs
them with the rest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.faults)
