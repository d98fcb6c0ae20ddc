# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Action of homelab.ai.sops_secrets (documented in plugins/modules/sops_secrets.py).

The deliver role keeps every Secret of the stack: as a loop of homelab.ai.sops_secret that started a module per
Secret, the largest share of a render. Here they are kept in one task on the controller, where the files are, with
the values read from the role variables each key names (``value_vars``), never passed as task arguments.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.homelab.ai.plugins.module_utils._sops import (
    AgeKeyError,
    SopsError,
    default_age_key_file,
    encryption_recipients,
    keep_secrets,
)

_SPEC = {
    "secrets": {"type": "list", "elements": "dict", "required": True},
    "age_recipients": {"type": "list", "elements": "str", "default": []},
    "age_key_file": {"type": "path"},
    "sops_binary": {"type": "path"},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(_SPEC)

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        validated = ArgumentSpecValidator(_SPEC).validate(self._task.args)
        if validated.error_messages:
            return {**result, "failed": True, "msg": "; ".join(validated.error_messages)}
        params = validated.validated_parameters
        # each key's value as the inventory gives it (a role variable, or its default): templated here, never an argument
        values = {
            str(entry["name"]): {key: self._templar.template(task_vars.get(var)) for key, var in (entry.get("value_vars") or {}).items()}
            for entry in params["secrets"]
        }
        key_file = params["age_key_file"] or default_age_key_file()
        try:
            recipients = encryption_recipients(params["age_recipients"], key_file)
            results = keep_secrets(params["secrets"], values, recipients, key_file, bool(self._play_context.check_mode), params["sops_binary"] or "")
        except (AgeKeyError, SopsError, ValueError) as exc:
            return {**result, "failed": True, "msg": str(exc)}
        result.update(changed=any(r["changed"] for r in results), results=results)
        return result
