"""Every module of the package belongs to a layer of the import contract (pyproject.toml).

import-linter checks only the modules a contract names; a module nobody added to a layer would be
unchecked. The layers name packages, so a new module is covered by the package it is put in, and
this test fails for one put anywhere else.
"""

from __future__ import annotations

import pkgutil
import re
import tomllib
from pathlib import Path

import sidecar

ROOT = Path(__file__).resolve().parents[1]


def layered_names() -> set[str]:
    """The packages and modules the main layers contract names."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    main = next(c for c in contracts if c["name"].startswith("cli > engines"))
    return {name for layer in main["layers"] for name in re.split(r"\s*[:|]\s*", layer)}


def all_modules() -> list[str]:
    """Every module and package under `sidecar`, as dotted names."""
    return [m.name for m in pkgutil.walk_packages(sidecar.__path__, "sidecar.")]


def unlayered(names: list[str], layered: set[str]) -> list[str]:
    """The names that no layer owns (a layer owns a package's modules too)."""
    return [
        name
        for name in names
        if not any(name == owner or name.startswith(owner + ".") for owner in layered)
    ]


def test_every_module_belongs_to_a_layer() -> None:
    assert unlayered(all_modules(), layered_names()) == []


def test_the_layers_name_packages_and_few_modules_stay_at_the_root() -> None:
    root_modules = {
        m.name for m in pkgutil.iter_modules(sidecar.__path__, "sidecar.") if not m.ispkg
    }
    assert root_modules == {"sidecar.__main__", "sidecar.model"}


def test_a_module_outside_every_layer_is_found() -> None:
    """The check itself: a module at the root or in an unnamed package is reported."""
    names = ["sidecar.stray", "sidecar.core.lines.decode", "sidecar.corex.thing"]
    assert unlayered(names, layered_names()) == ["sidecar.stray", "sidecar.corex.thing"]
