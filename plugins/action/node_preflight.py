# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Action of homelab.ai.node_preflight (documented in plugins/modules/node_preflight.py).

An action plugin because it must not connect to the node: it reads the inventory (groups, connection,
user) on the controller. The checks live in module_utils/_node_bootstrap.py.
"""

from __future__ import annotations

import getpass
from typing import Any, Dict, Optional

from ansible import constants as C
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.homelab.ai.plugins.module_utils._node_bootstrap import check_node
from ansible_collections.homelab.ai.plugins.module_utils._problems import failure_summary, format_problems

_SPEC = {
    "gpus": {"type": "list", "elements": "dict", "default": []},
    "k3s_join": {"type": "bool", "default": False},
    "k3s_token_set": {"type": "bool", "default": False},
    "k3s_version": {"type": "str", "default": ""},
    "k3s_server_group": {"type": "str", "default": "server"},
    "k3s_agent_group": {"type": "str", "default": "agent"},
    "k3s_api_endpoint": {"type": "str", "default": ""},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(_SPEC)

    def _remote_user(self) -> Optional[str]:
        """The user SSH logs in as, from wherever the inventory, config, play or command line set it (None if nowhere)."""
        try:
            user = self._connection.get_option("remote_user")
        except KeyError:  # connection plugins without users (local, chroot ...)
            user = None
        return user or self._play_context.remote_user or None

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        validated = ArgumentSpecValidator(_SPEC).validate(self._task.args)
        if validated.error_messages:
            result.update(failed=True, msg="homelab.ai.node_preflight: " + "; ".join(validated.error_messages))
            return result
        args = validated.validated_parameters
        host = task_vars.get("inventory_hostname", "node")
        groups = task_vars.get("groups", {})
        hostvars = task_vars.get("hostvars", {})
        servers = groups.get(args["k3s_server_group"]) or []
        addresses = {}
        for server in servers[:1]:
            address = hostvars[server].get("ansible_host") if server in hostvars else None
            addresses[server] = str(address or server)
        connection = getattr(self._connection, "_load_name", None) or self._play_context.connection or "ssh"
        k3s, problems = check_node(
            host,
            connection=str(connection),
            remote_user=self._remote_user(),
            local_user=getpass.getuser(),
            groups=groups,
            gpus=args["gpus"],
            k3s={
                "join": args["k3s_join"],
                "token_set": args["k3s_token_set"],
                "version": args["k3s_version"],
                "server_group": args["k3s_server_group"],
                "agent_group": args["k3s_agent_group"],
                "api_endpoint": args["k3s_api_endpoint"],
            },
            addresses=addresses,
        )
        if problems:
            consequence = "nothing was changed on any node"
            Display().display(format_problems(problems, consequence), color=C.COLOR_ERROR, stderr=True)
            result.update(failed=True, msg=failure_summary(problems, consequence))
            return result
        result.update(changed=False, k3s=k3s)
        return result
