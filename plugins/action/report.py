# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Action of homelab.ai.report (documented in plugins/modules/report.py).

ansible.builtin.debug prints a multi-line message as one JSON string full of \\n unless the callback is told to
format results as YAML, which only the checkout's ansible.cfg does: a collection installed elsewhere showed its
summary as one unreadable line. This prints the text itself, line by line, whatever the callback.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

_display = Display()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset({"text"})

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        result = super().run(tmp, task_vars)
        text = str(self._task.args.get("text") or "")
        # to the console and to ANSIBLE_LOG_PATH, as the play's own output goes
        _display.display("\n" + text.rstrip("\n") + "\n")
        result.update(changed=False, lines=len(text.splitlines()))
        return result
