# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

from typing import Any, Dict, List, Optional

DOCUMENTATION = r"""
---
name: components
short_description: The components the roles of this play registered for the delivery
version_added: 0.1.0
author: homelab.ai developers
description:
  - Every role of the collection describes its component with the filter C(homelab.ai.component) and keeps it in a
    variable of its own, C(_<role>_component). This lookup returns all of them, sorted by name; the delivery orders
    them by what they need.
  - Takes no terms.
"""

EXAMPLES = r"""
- name: List what will be delivered
  ansible.builtin.debug:
    msg: "{{ lookup('homelab.ai.components') | map(attribute='name') }}"
"""

RETURN = r"""
_raw:
  description: The components, each a dict with name, needs, objects, helm, secrets, gpu_workloads, routes and summary.
  type: list
  elements: dict
"""

from ansible.plugins.lookup import LookupBase

from ansible_collections.homelab.ai.plugins.module_utils._components import collect_components


class LookupModule(LookupBase):
    def run(self, terms: List[Any], variables: Optional[Dict[str, Any]] = None, **kwargs: Any) -> List[Any]:
        # a list of one list: lookup() and query() both hand back the list of components
        return [collect_components(variables or {})]
