# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The example inventory as plain data, for tests that need a realistic inventory without Ansible."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, Tuple

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory" / "example"


def example_inventory() -> Tuple[Dict[str, Any], Dict[str, Dict[str, Any]]]:
    """(controller variables, {node host: its variables}) of inventory/example."""
    shared: Dict[str, Any] = {}
    for path in sorted((EXAMPLE / "group_vars" / "all").glob("*.yml")):
        shared.update(yaml.safe_load(path.read_text()) or {})
    hosts_file = yaml.safe_load((EXAMPLE / "hosts.yml").read_text())
    hosts: Dict[str, Dict[str, Any]] = {}
    for host in hosts_file["all"]["children"]["homelab_ai_nodes"]["hosts"]:
        host_vars = EXAMPLE / "host_vars" / f"{host}.yml"
        hosts[host] = yaml.safe_load(host_vars.read_text()) if host_vars.exists() else {}
    return copy.deepcopy(shared), hosts


def example_preflight(age_key: str, **variables: Any) -> Dict[str, Any]:
    """``homelab_ai_inventory`` of the example as the real preflight makes it (``variables`` override the inventory's)."""
    from ansible_collections.homelab.ai.plugins.module_utils._preflight import load_role_specs, run_preflight
    from ansible_collections.homelab.ai.plugins.module_utils._wiring import load_declarations

    shared, hosts = example_inventory()
    roles = str(ROOT / "roles")
    found, _warnings = run_preflight(
        {**shared, "homelab_ai_sops_age_key_file": age_key, **variables}, hosts, load_role_specs(roles), declarations=load_declarations(roles), cwd="/x"
    )
    return found
