# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The example inventory for tests: as plain data, normalised, as the preflight makes it, or copied for a playbook run."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

# the collection's own modules are imported inside the functions: benchmarks import this file without tests/conftest.py,
# which makes ``ansible_collections.homelab.ai`` importable
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory" / "example"
GIB = 2**30


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


def normalised_example(**variables: Any) -> Dict[str, Any]:
    """``build_inventory`` of the example as a dict (``variables`` override the inventory's); no preflight, no key."""
    from ansible_collections.homelab.ai.plugins.module_utils._inventory import build_inventory

    shared, hosts = example_inventory()
    return build_inventory({**shared, **variables}, hosts, cwd="/tmp").to_dict()


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


def copy_example(dest: Path) -> Path:
    """A copy of inventory/example at ``dest``, for a playbook run that may edit it."""
    shutil.copytree(EXAMPLE, dest)
    return dest


def components_of(inventory: Dict[str, Any], *, ollama_vram: Optional[int] = None, sd_vram: int = 12 * GIB, max_loaded: int = 1) -> List[Dict[str, Any]]:
    """What the llamacpp, ollama and stable_diffusion roles register for the example (Ollama and SD on gpu-nvidia-01)."""
    from ansible_collections.homelab.ai.plugins.module_utils._placement import node_gpu

    llamacpp = []
    for model in inventory["models"]:
        if model["backend"] == "llamacpp":
            gpu = node_gpu(inventory, model["node"])
            llamacpp.append(
                {
                    "name": model["name"],
                    "kind": "llamacpp",
                    "node": gpu["node"],
                    "gpu": gpu["gpu_id"],
                    "model": model["name"],
                    "vram": model["vram"],
                    "scale_to_zero": model["scale_to_zero"],
                }
            )
    nvidia = node_gpu(inventory, "gpu-nvidia-01")
    ollama_models = [m["name"] for m in inventory["models"] if m["backend"] == "ollama"]
    return [
        {"name": "llamacpp", "gpu_workloads": llamacpp},
        {
            "name": "ollama",
            "gpu_workloads": [
                {
                    "name": "ollama",
                    "kind": "ollama",
                    "node": nvidia["node"],
                    "gpu": nvidia["gpu_id"],
                    "vram": ollama_vram,
                    "models": ollama_models,
                    "max_loaded": max_loaded,
                }
            ],
        },
        {
            "name": "stable-diffusion",
            "gpu_workloads": [{"name": "stable-diffusion", "kind": "stable-diffusion", "node": nvidia["node"], "gpu": nvidia["gpu_id"], "vram": sd_vram}],
        },
    ]
