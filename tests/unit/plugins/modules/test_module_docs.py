# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Every module's DOCUMENTATION, EXAMPLES and RETURN is YAML that ansible-doc can read, and documents its options."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

MODULES = sorted((Path(__file__).resolve().parents[4] / "plugins" / "modules").glob("*.py"))


def _docs(path: Path) -> dict:
    tree = ast.parse(path.read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
            found[node.targets[0].id] = ast.literal_eval(node.value)
    return found


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_docs_parse(path: Path) -> None:
    docs = _docs(path)
    assert set(docs) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    documentation = yaml.safe_load(docs["DOCUMENTATION"])
    assert documentation["module"] == path.stem
    assert all(isinstance(line, str) for line in documentation["description"])
    for option in (documentation.get("options") or {}).values():
        assert all(isinstance(line, str) for line in ([option["description"]] if isinstance(option["description"], str) else option["description"]))
    assert isinstance(yaml.safe_load(docs["EXAMPLES"]), list)
    yaml.safe_load(docs["RETURN"])
