"""Rules: which log lines become which Events (schema, loading with line numbers, compilation)."""

from sidecar.rules.compile import CompiledRule, RuleSet, compile_rules, render
from sidecar.rules.load import RulesError, RulesProblem, load_rules, parse_rules
from sidecar.rules.templates import MissingField

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
