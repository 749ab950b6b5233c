"""Loading a rules file: YAML with line numbers, pydantic validation, compilation.

Every error names the file, the line, the rule and what is wrong, because the person reading it is
about to fix a file by hand, often from a crash-looping pod's log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sidecar.rules.compile import RuleSet, compile_rules
from sidecar.rules.schema import RulesFile
from sidecar.rules.wording import describe, describe_file_level


@dataclass(frozen=True, slots=True)
class RulesProblem:
    file: str
    #: 1-based, as editors count.
    line: int
    #: The rule's name, or `#N` for an unnamed rule; None for file-level problems.
    rule: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        if self.rule is not None:
            return f"{where}: rule {self.rule}: {self.message}"
        return f"{where}: {self.message}"


class RulesError(Exception):
    """A rules file that cannot be used; `problems` lists every problem found, in file order."""

    def __init__(self, problems: list[RulesProblem]) -> None:
        self.problems = sorted(problems, key=lambda problem: problem.line)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def load_rules(path: str | Path, env: Mapping[str, str] | None = None) -> RuleSet:
    """Read, validate and compile a rules file; raise `RulesError` naming every problem.

    `{env.NAME}` in templates is resolved from `env` (the process environment by default).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RulesError([RulesProblem(str(path), 1, None, f"cannot read: {error}")]) from error
    return compile_rules(parse_rules(text, str(path)), os.environ if env is None else env)


#: Nesting of mappings and sequences a rules file may use; a real one needs about 6. PyYAML builds
#: nodes recursively, and 2,000 nested `[` overflowed the stack with a traceback.
MAX_DEPTH = 32


def parse_rules(text: str, filename: str) -> RulesFile:
    loader = yaml.SafeLoader(text)
    try:
        _refuse_hostile_structure(text, filename)
        node = loader.get_single_node()
        if node is None:
            raise RulesError([RulesProblem(filename, 1, None, "the file is empty")])
        problems = list(_duplicate_keys(node, filename))
        data = loader.construct_document(node)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(error, "problem", None) or str(error)
        raise RulesError(
            [RulesProblem(filename, line, None, f"invalid YAML: {problem}")]
        ) from error
    finally:
        loader.dispose()
    rule_names = _rule_names(data)
    problems.extend(_duplicate_rule_names(node, data, filename))
    try:
        parsed = RulesFile.model_validate(data)
    except ValidationError as error:
        for detail in error.errors():
            location = tuple(detail["loc"])
            problems.append(
                RulesProblem(
                    filename,
                    _line_of(node, location),
                    _rule_of(location, rule_names),
                    _describe(location, detail["type"], detail["msg"]),
                )
            )
        raise RulesError(problems) from None
    if problems:
        raise RulesError(problems)
    return parsed


def _refuse_hostile_structure(text: str, filename: str) -> None:
    """Refuse aliases and deep nesting from the event stream, before any node is built.

    Aliases are refused outright rather than bounded: a rules file is short and read by people,
    and nine anchors of nine aliases each expand to 9^9 nodes (the duplicate-key walk took 80 s of
    CPU at every start). The parser itself is an iterative state machine, so this pass is linear.
    """
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1 if event.start_mark is not None else 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise RulesError(
                [
                    RulesProblem(
                        filename,
                        line,
                        None,
                        "YAML anchors and aliases (&name, *name, <<) are not allowed in a rules "
                        "file; write the value out",
                    )
                ]
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise RulesError(
                    [
                        RulesProblem(
                            filename,
                            line,
                            None,
                            f"mappings and lists are nested more than {MAX_DEPTH} deep",
                        )
                    ]
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _duplicate_keys(node: yaml.Node, filename: str) -> list[RulesProblem]:
    """PyYAML keeps the last of two equal keys silently; a user's rules must not vanish."""
    problems: list[RulesProblem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    problems.append(
                        RulesProblem(
                            filename,
                            key.start_mark.line + 1,
                            None,
                            f"key {key.value!r} appears twice in the same mapping",
                        )
                    )
                seen.add(key.value)
            problems.extend(_duplicate_keys(value, filename))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            problems.extend(_duplicate_keys(item, filename))
    return problems


def _rule_names(data: Any) -> list[str]:
    rules = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(rules, list):
        return []
    names = []
    for index, rule in enumerate(rules):
        name = rule.get("name") if isinstance(rule, dict) else None
        names.append(str(name) if isinstance(name, str) and name else f"#{index + 1}")
    return names


def _duplicate_rule_names(node: yaml.Node, data: Any, filename: str) -> list[RulesProblem]:
    problems = []
    first_line: dict[str, int] = {}
    rules = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(rules, list):
        return []
    for index, rule in enumerate(rules):
        name = rule.get("name") if isinstance(rule, dict) else None
        if not isinstance(name, str):
            continue
        line = _line_of(node, ("rules", index, "name"))
        if name in first_line:
            problems.append(
                RulesProblem(
                    filename,
                    line,
                    name,
                    f"the name is already used by the rule on line "
                    f"{first_line[name]}; rule names must be unique",
                )
            )
        else:
            first_line[name] = line
    return problems


def _line_of(node: yaml.Node, location: tuple[Any, ...]) -> int:
    """The line of the deepest YAML node on the validation error's path."""
    line = node.start_mark.line
    for step in location:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == step or (step == "message" and key.value == "msg"):
                    line = key.start_mark.line
                    node = value
                    break
            else:
                return line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if step >= len(node.value):
                return line + 1
            node = node.value[step]
            line = node.start_mark.line
        else:
            return line + 1
    return line + 1


def _in_rule(location: tuple[Any, ...]) -> bool:
    return len(location) >= 2 and location[0] == "rules" and isinstance(location[1], int)


def _rule_of(location: tuple[Any, ...], names: list[str]) -> str | None:
    if _in_rule(location):
        index = location[1]
        return names[index] if index < len(names) else f"#{index + 1}"
    return None


def _describe(location: tuple[Any, ...], error_type: str, message: str) -> str:
    if _in_rule(location):
        return describe(location[2:], error_type, message)
    return describe_file_level(location, error_type, message)
