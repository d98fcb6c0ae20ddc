# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Filters of the node bootstrap: thin wrappers over module_utils/_node_bootstrap.py and _kernel_cmdline.py, each
documented in plugins/filter/<name>.yml."""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.homelab.ai.plugins.module_utils._kernel_cmdline import CmdlineError, format_args
from ansible_collections.homelab.ai.plugins.module_utils._node_bootstrap import joining_k3s, node_plan


def node_bootstrap_plan(gpus: Any, info: Mapping[str, Any], settings: Mapping[str, Any]) -> Dict[str, Any]:
    """What the node bootstrap does on a node (see node_plan)."""
    try:
        return node_plan(gpus, info, settings)
    except (TypeError, ValueError, KeyError) as exc:
        raise AnsibleFilterError(f"homelab.ai.node_bootstrap_plan: {exc}") from exc


def kernel_args_string(args: Any) -> str:
    """``name=value ...`` for a mapping of kernel arguments."""
    try:
        return format_args(args)
    except CmdlineError as exc:
        raise AnsibleFilterError(f"homelab.ai.kernel_args_string: {exc}") from exc


def k3s_joining(hosts: Any, hostvars: Mapping[str, Any]) -> Any:
    """Of ``hosts``, those whose node bootstrap installs k3s in this run (see joining_k3s)."""
    return joining_k3s({host: hostvars[host] for host in hosts or [] if host in hostvars})


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {
            "node_bootstrap_plan": node_bootstrap_plan,
            "kernel_args_string": kernel_args_string,
            "k3s_joining": k3s_joining,
        }
