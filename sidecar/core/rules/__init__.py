"""Rules: which log lines become which Events (schema, loading with line numbers, compilation)."""

from sidecar.core.rules.compile import CompiledRule, RuleSet, compile_rules, render
from sidecar.core.rules.load import RulesError, RulesProblem, load_rules, parse_rules
from sidecar.core.rules.templates import MissingField

__all__ = [
    "CompiledRule",
    "MissingField",
    "RuleSet",
    "RulesError",
    "RulesProblem",
    "compile_rules",
    "load_rules",
    "parse_rules",
    "render",
]
