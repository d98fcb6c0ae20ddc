# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Action of homelab.ai.component (documented in plugins/modules/component.py).

Adds the component a role describes to the ``homelab_ai_components`` fact, which the deliver role turns
into a GitOps tree or applies. It runs on the controller and changes nothing.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.homelab.ai.plugins.module_utils._components import normalize_component
from ansible_collections.homelab.ai.plugins.module_utils._problems import InputError


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("name", "needs", "objects", "secrets", "helm", "gpu_workloads", "routes", "summary"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        facts = task_vars.get("ansible_facts", {})
        inventory = facts.get("homelab_ai_inventory")
        if not inventory:
            result.update(failed=True, msg="homelab.ai.component needs the preflight first: run the homelab.ai.preflight role before the component roles")
            return result
        try:
            component = normalize_component(self._task.args, inventory["namespace"])
        except InputError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        registered = [c for c in facts.get("homelab_ai_components", []) if c["name"] != component["name"]]
        result.update(
            changed=False,
            ansible_facts={"homelab_ai_components": [*registered, component]},
            component={
                "name": component["name"],
                "objects": len(component["objects"]),
                "helm": [chart["name"] for chart in component["helm"]],
                "secrets": [secret["name"] for secret in component["secrets"]],
            },
        )
        return result
