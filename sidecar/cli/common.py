"""What the commands share: loading rules with their problems reported."""

from __future__ import annotations

import sys
from typing import TextIO

from sidecar.core.rules import RulesError, RuleSet, load_rules


def load_rules_or_report(path: str, err: TextIO | None = None) -> RuleSet | None:
    """The rules in `path`; or None after printing every problem (the caller exits 2)."""
    try:
        return load_rules(path)
    except RulesError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=err or sys.stderr)
        return None
