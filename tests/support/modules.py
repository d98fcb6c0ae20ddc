# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Run a module of the collection with arguments and return what it answered (its exit_json or fail_json as a dict)."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, Mapping, Optional, Tuple
from unittest import mock

from .example import ROOT

SRC = ROOT / ".cache" / "src"  # ansible_collections/homelab/ai -> the checkout (tests/conftest.py)


def run_module(
    name: str,
    args: Mapping[str, Any],
    *,
    check_mode: bool = False,
    diff: bool = False,
    env: Optional[Mapping[str, str]] = None,
    in_process: bool = False,
) -> Dict[str, Any]:
    """The module's answer, with everything it printed under ``_stdout``.

    By default it runs the way Ansible runs it: a Python process of its own, arguments as JSON in a file. With
    ``in_process`` it runs ``main()`` here, so that a test can monkeypatch what the module imports (and pays no start-up)."""
    payload = {"_ansible_check_mode": check_mode, "_ansible_diff": diff, **args}  # `_ansible_*` in args win
    stdout, stderr = _in_process(name, payload, env) if in_process else _in_subprocess(name, payload, env)
    try:
        result = json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"module {name} printed no JSON: {stdout!r} {stderr!r}") from exc
    result["_stdout"] = stdout + stderr
    return result


def _in_process(name: str, payload: Dict[str, Any], env: Optional[Mapping[str, str]]) -> Tuple[str, str]:
    from ansible.module_utils.testing import patch_module_args

    module = importlib.import_module(f"ansible_collections.homelab.ai.plugins.modules.{name}")
    out = io.StringIO()
    with patch_module_args(payload), mock.patch.dict(os.environ, env or {}), contextlib.redirect_stdout(out):
        try:
            module.main()
        except SystemExit:  # exit_json and fail_json end the process
            return out.getvalue(), ""
    raise AssertionError(f"module {name} returned without exit_json or fail_json: {out.getvalue()!r}")


def _in_subprocess(name: str, payload: Dict[str, Any], env: Optional[Mapping[str, str]]) -> Tuple[str, str]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": payload}, handle)
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
    return proc.stdout, proc.stderr
