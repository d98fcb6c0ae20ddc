"""One Python version for the project, and 3.9 with the standard library only for what runs on the nodes."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Set

from tests.support.example import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
MODULE_UTILS = ROOT / "plugins" / "module_utils"
PREFIX = "ansible_collections.homelab.ai.plugins.module_utils."
# Modules that run on a node's Python (the node bootstrap, model pulls to a node's disk, an Ollama on a node)
NODE_MODULES = ("gpu_facts", "kernel_cmdline", "model_pull", "node_info", "ollama_model")


def _module_utils_imported(path: Path) -> Set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:  # from ._x import ...
                found.add(node.module)
            elif node.module and node.module.startswith(PREFIX):
                found.add(node.module[len(PREFIX) :])
    return found


def node_side_files() -> Set[str]:
    """The node-side modules, the pull Job's code, and every module_utils they import, directly or not."""
    from ansible_collections.homelab.ai.plugins.module_utils._pull_job import CODE_MODULES

    todo = [ROOT / "plugins" / "modules" / f"{name}.py" for name in NODE_MODULES]
    todo += [MODULE_UTILS / name for name in CODE_MODULES]
    seen: Set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(MODULE_UTILS / f"{name}.py" for name in _module_utils_imported(path))
    return {str(path.relative_to(ROOT)) for path in seen}


def test_one_version_for_mypy_ruff_and_the_makefile():
    version = PYPROJECT["tool"]["mypy"]["python_version"]
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py" + version.replace(".", "")
    made = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "-s", "--eval", "show-version: ; @echo $(PYTHON_VERSION)", "show-version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert made == version
    assert f"**{version}**" in (ROOT / "docs" / "DEVELOPMENT.md").read_text()
    assert sys.version_info[:2] >= tuple(int(part) for part in version.split("."))


def test_the_node_side_files_are_checked_for_the_nodes_python():
    per_file = PYPROJECT["tool"]["ruff"]["per-file-target-version"]
    assert set(per_file.values()) == {"py39"}
    assert set(per_file) == node_side_files()
    assert "**3.9**" in (ROOT / "docs" / "DEVELOPMENT.md").read_text()


def test_the_node_side_files_import_the_standard_library_only():
    for relpath in sorted(node_side_files()):
        for node in ast.walk(ast.parse((ROOT / relpath).read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                # a module's own AnsibleModule is shipped with it by Ansible
                allowed = top in sys.stdlib_module_names or name.startswith(PREFIX) or re.match(r"ansible\.module_utils\.basic$", name)
                assert allowed, f"{relpath} imports {name}"
