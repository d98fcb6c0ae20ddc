"""ansible-doc works for every module and plugin: their documentation blocks are valid YAML with the usual keys."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.support.example import ROOT

PLUGINS = sorted(p for kind in ("modules", "lookup") for p in (ROOT / "plugins" / kind).glob("*.py"))


def blocks(path: Path):
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
            found[node.targets[0].id] = node.value.value
    return found


@pytest.mark.parametrize("path", PLUGINS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_documentation_parses(path):
    docs = blocks(path)
    assert set(docs) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    documentation = yaml.safe_load(docs["DOCUMENTATION"])
    name = documentation.get("module") or documentation.get("name")
    assert name == path.stem
    assert documentation["short_description"] and documentation["description"] and documentation["author"]
    for option, spec in (documentation.get("options") or {}).items():
        assert spec.get("description"), f"{name}: option {option} has no description"
    assert yaml.safe_load(docs["EXAMPLES"])
    yaml.safe_load(docs["RETURN"])
