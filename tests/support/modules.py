# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Run a module of the collection the way Ansible does: a separate Python process, arguments as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, Mapping, Optional

from .example import ROOT

SRC = ROOT / ".cache" / "src"  # ansible_collections/homelab/ai -> the checkout (tests/conftest.py)


def run_module(name: str, args: Mapping[str, Any], *, check_mode: bool = False, diff: bool = False, env: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    payload = {"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check_mode, "_ansible_diff": diff}}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(payload, handle)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", f"ansible_collections.homelab.ai.plugins.modules.{name}", handle.name],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(SRC), **(env or {})},
            check=False,
        )
    finally:
        os.unlink(handle.name)
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"module {name} printed no JSON: {proc.stdout!r} {proc.stderr!r}") from exc
    result["_stdout"] = proc.stdout + proc.stderr
    return result
