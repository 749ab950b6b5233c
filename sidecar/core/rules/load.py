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

from sidecar.core.rules.compile import RuleSet, compile_rules
from sidecar.core.rules.formats import name_the_format
from sidecar.core.rules.schema import RulesFile
from sidecar.core.rules.wording import describe, describe_file_level


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


#: Problems reported for one file: the first ones in file order, then one line counting the rest.
#: A file of 200,000 empty rules had 600,000, each a line of `check` and, refused by a hot
#: reload, a line of the daemon's log; the first few are what a person fixes first anyway.
MAX_PROBLEMS = 20


def first_problems(problems: list[RulesProblem], what: str = "problems") -> list[RulesProblem]:
    """`problems` in file order, cut to `MAX_PROBLEMS` and a last one that counts the rest (at
    the line where they start), so that reporting them costs the same for any file."""
    ordered = sorted(problems, key=lambda problem: problem.line)
    if len(ordered) <= MAX_PROBLEMS:
        return ordered
    rest = ordered[MAX_PROBLEMS:]
    return [
        *ordered[:MAX_PROBLEMS],
        RulesProblem(
            rest[0].file,
            rest[0].line,
            None,
            f"{len(rest):,} more {what} from here on (only the first {MAX_PROBLEMS} are reported)",
        ),
    ]


class RulesError(Exception):
    """A rules file that cannot be used; `problems` lists the problems found, in file order:
    the first `MAX_PROBLEMS`, then one that counts the rest."""

    def __init__(self, problems: list[RulesProblem]) -> None:
        self.problems = first_problems(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def load_rules(path: str | Path, env: Mapping[str, str] | None = None) -> RuleSet:
    """Read, validate and compile a rules file; raise `RulesError` naming every problem.

    `{env.NAME}` in templates is resolved from `env` (the process environment by default).
    """
    data = read_rules_file(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RulesError([RulesProblem(str(path), 1, None, f"cannot read: {error}")]) from error
    return compile_rules(parse_rules(text, str(path)), os.environ if env is None else env)


#: Nesting of mappings and sequences a rules file may use; a real one needs about 6. PyYAML builds
#: nodes recursively, and 2,000 nested `[` overflowed the stack with a traceback.
MAX_DEPTH = 32
#: The largest rules file, in bytes: what one ConfigMap can hold (etcd's 1 MiB object limit), and
#: some hundred times a real rules file.
MAX_FILE_BYTES = 1 << 20
#: The most rules a file may hold. Each rule is tried on every line that passes the pre-filter,
#: so even this many costs throughput; a real file holds tens.
MAX_RULES = 1000
#: The most YAML nodes (values, mappings and lists) a file may hold: about 25 per rule of
#: `MAX_RULES` with room to spare. PyYAML's nodes and the validated rules cost about 1 KB per
#: node, so this bounds the memory of loading (about 50 MB at most) whatever the file holds.
MAX_NODES = 50_000
#: libyaml's parser (in PyYAML's wheels) when present: the pure-Python one took 6 s for a file of
#: 1,000 rules, twice per load, on the event loop during a hot reload. Both build the same nodes.
LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_rules_file(path: str | Path) -> bytes:
    """The content of a rules file, refused beyond `MAX_FILE_BYTES` (never read further).

    Raises:
        RulesError: unreadable, or too large.
    """
    try:
        with Path(path).open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise RulesError([RulesProblem(str(path), 1, None, f"cannot read: {error}")]) from error
    if len(data) > MAX_FILE_BYTES:
        raise RulesError([_too_large(str(path))])
    return data


def _too_large(filename: str) -> RulesProblem:
    return RulesProblem(
        filename,
        1,
        None,
        f"the file is larger than {MAX_FILE_BYTES:,} bytes (what one ConfigMap can hold); "
        "a rules file is read by people: split it, or share rules through `transition.tracker`",
    )


def parse_rules(text: str, filename: str) -> RulesFile:
    """Validate a rules file's text; raise `RulesError` naming its problems (see `RulesError`).

    The file's size, nesting, number of rules and of YAML nodes are checked first, in one pass
    over the parser's events that stops at the first bound crossed, so that no file can make
    loading build more than `MAX_NODES` nodes or report more than `MAX_PROBLEMS` problems.
    """
    if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise RulesError([_too_large(filename)])
    loader = LOADER(text)
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
                    name_the_format(
                        location, data, _describe(location, detail["type"], detail["msg"])
                    ),
                )
            )
        raise RulesError(problems) from None
    if problems:
        raise RulesError(problems)
    return parsed


def _refuse_hostile_structure(text: str, filename: str) -> None:
    """Refuse aliases, deep nesting, too many rules or nodes from the event stream, before any
    node is built.

    Aliases are refused outright rather than bounded: a rules file is short and read by people,
    and nine anchors of nine aliases each expand to 9^9 nodes (the duplicate-key walk took 80 s of
    CPU at every start). The parser itself is an iterative state machine, so this pass is linear,
    and it stops at the first bound crossed: 200,000 empty rules (a 600 KB file) cost 949 MB and
    21 s when they were all built and validated; now the pass ends at rule 1,001.
    """
    nodes = rules = 0
    # Per open collection: [is a mapping, its next child is a key, it is the `rules` list].
    frames: list[list[bool]] = []
    # The last key read in the top-level mapping.
    top_key: object = None
    for event in yaml.parse(text, Loader=LOADER):
        line = event.start_mark.line + 1 if event.start_mark is not None else 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _refusal(
                filename,
                line,
                "YAML anchors and aliases (&name, *name, <<) are not allowed in a rules file; "
                "write the value out",
            )
        if isinstance(event, yaml.CollectionEndEvent):
            frames.pop()
            continue
        if not isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent):
            continue
        nodes += 1
        if nodes > MAX_NODES:
            raise _refusal(
                filename,
                line,
                f"the file holds more than {MAX_NODES:,} YAML values and collections",
            )
        opens_rules = False
        if frames:
            parent = frames[-1]
            if parent[2]:
                rules += 1
                if rules > MAX_RULES:
                    raise _refusal(filename, line, f"the file holds more than {MAX_RULES:,} rules")
            if parent[0]:
                top = len(frames) == 1
                if parent[1] and top:
                    top_key = event.value if isinstance(event, yaml.ScalarEvent) else None
                opens_rules = top and not parent[1] and top_key == "rules"
                parent[1] = not parent[1]
        if isinstance(event, yaml.CollectionStartEvent):
            if len(frames) >= MAX_DEPTH:
                raise _refusal(
                    filename, line, f"mappings and lists are nested more than {MAX_DEPTH} deep"
                )
            sequence = isinstance(event, yaml.SequenceStartEvent)
            frames.append([not sequence, True, opens_rules and sequence])


def _refusal(filename: str, line: int, message: str) -> RulesError:
    return RulesError([RulesProblem(filename, line, None, message)])


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
