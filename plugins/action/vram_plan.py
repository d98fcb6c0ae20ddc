# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Action of homelab.ai.vram_plan (documented in plugins/modules/vram_plan.py).

The plan is the controller's business (it reads the inventory, and fetches GGUF headers from the controller): run on
the controller, it spares the run a module to package and start (about a third of a second of a render).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from ansible import constants as C
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.homelab.ai.plugins.modules.vram_plan import ARGUMENT_SPEC, run_plan


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        result = super().run(tmp, task_vars)
        validated = ArgumentSpecValidator(ARGUMENT_SPEC).validate(self._task.args)
        if validated.error_messages:
            return {**result, "failed": True, "msg": "; ".join(validated.error_messages)}
        outcome, warnings = run_plan(validated.validated_parameters, bool(self._play_context.check_mode))
        if outcome.get("failed") and outcome.get("problems"):
            # the problems and the table once: a failed task's own message is printed twice by Ansible
            Display().display(outcome["msg"], color=C.COLOR_ERROR, stderr=True)
            outcome = {
                "failed": True,
                "msg": f"The VRAM plan has {len(outcome['problems'])} problem(s), listed above; nothing was written or applied",
                "notes": outcome.get("notes", []),
            }
        result.update(outcome)
        if warnings:
            result["warnings"] = warnings
        return result
