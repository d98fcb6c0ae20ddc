# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Action of homelab.ai.preflight (documented in plugins/modules/preflight.py).

An action plugin because it reads the whole inventory on the controller: the shared variables, every
node host's variables and every role's argument spec. The checks live in module_utils/_preflight.py.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

from ansible import constants as C
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.homelab.ai.plugins.module_utils._preflight import load_role_specs, run_preflight
from ansible_collections.homelab.ai.plugins.module_utils._problems import InputError, failure_summary
from ansible_collections.homelab.ai.plugins.module_utils._wiring import load_declarations
from ansible_collections.homelab.ai.plugins.module_utils._yaml import plain

_ROLES_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "roles")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS: frozenset = frozenset()

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        specs = load_role_specs(_ROLES_DIR)
        prefixes = tuple(["homelab_ai_"] + [role + "_" for role in specs])
        variables = {name: self._templar.template(value) for name, value in task_vars.items() if name.startswith(prefixes)}
        group = variables.get("homelab_ai_node_group") or "homelab_ai_nodes"
        hostvars = task_vars.get("hostvars", {})
        hosts = {}
        for host in task_vars.get("groups", {}).get(group, []):
            host_vars = hostvars[host]
            # the collection's values, and the other names too: a look-alike of ours is a misspelling
            hosts[host] = {name: host_vars[name] if name.startswith("homelab_ai_") else None for name in host_vars}
            # what homelab.ai.gpu_facts found, also where facts are not injected as variables
            detected = (host_vars.get("ansible_facts") or {}).get("homelab_ai_gpu_facts")
            if detected is not None and "homelab_ai_gpu_facts" not in hosts[host]:
                hosts[host]["homelab_ai_gpu_facts"] = detected
        try:
            inventory, warnings = run_preflight(
                variables, hosts, specs, declarations=load_declarations(_ROLES_DIR), names=[n for n in task_vars if n not in variables], cwd=os.getcwd()
            )
        except InputError as exc:
            # each problem once, as the preflight words it: a failed task's own message is printed twice by Ansible
            Display().display(str(exc), color=C.COLOR_ERROR, stderr=True)
            result.update(failed=True, msg=failure_summary(exc.problems))
            return result
        # plain builtins: a fact of Ansible's tagged values costs a copy in every later task
        result.update(changed=False, ansible_facts={"homelab_ai_inventory": plain(inventory)}, warnings=warnings)
        result["summary"] = {
            "cluster": inventory["cluster_name"],
            "mode": inventory["mode"],
            "nodes": len(inventory["nodes"]),
            "gpus": sum(g["count"] for n in inventory["nodes"] for g in n["gpus"]),
            "models": len(inventory["models"]),
        }
        return result
