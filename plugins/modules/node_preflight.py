#!/usr/bin/python
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
# The work is done by the action plugin of the same name (plugins/action/node_preflight.py).

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_preflight
short_description: Check a node's inventory entry before the node bootstrap connects to it
version_added: 0.1.0
description:
  - Runs on the controller and never connects to the node, so a bad inventory stops the run before any change.
  - Checks that SSH connections name their user (C(ansible_user), C(remote_user) or C(-u)), that the node's GPUs are
    well formed, and the k3s layout of the k3s-io/k3s-ansible inventories (groups C(server) and C(agent) under
    C(k3s_cluster)) - a host in both groups, a joining host in neither, a missing token or release.
  - Fails with one message that lists every problem, each naming the input and how to fix it.
  - Returns the node's place in the k3s cluster.
author: homelab.ai developers
options:
  gpus:
    description: The node's GPUs (C(node_bootstrap_gpus)).
    type: list
    elements: dict
    default: []
  k3s_join:
    description: Whether the node joins (or starts) a k3s cluster.
    type: bool
    default: false
  k3s_token_set:
    description: Whether a k3s token is given (the token itself never passes through here).
    type: bool
    default: false
  k3s_version:
    description: The k3s release to install.
    type: str
    default: ""
  k3s_server_group:
    description: Inventory group of the k3s servers.
    type: str
    default: server
  k3s_agent_group:
    description: Inventory group of the k3s agents.
    type: str
    default: agent
  k3s_api_endpoint:
    description: Address of the Kubernetes API that joining nodes use; by default the first server's C(ansible_host).
    type: str
    default: ""
extends_documentation_fragment:
  - homelab.ai.attributes
  - homelab.ai.attributes.action
notes:
  - Runs on the controller only.
seealso:
  - module: homelab.ai.node_info
"""

EXAMPLES = r"""
- name: Check the node's inventory entry
  homelab.ai.node_preflight:
    gpus: "{{ node_bootstrap_gpus }}"
    k3s_join: "{{ node_bootstrap_k3s_join }}"
    k3s_token_set: "{{ node_bootstrap_k3s_token | length > 0 }}"
    k3s_version: "{{ node_bootstrap_k3s_version }}"
  register: preflight
"""

RETURN = r"""
k3s:
  description: The node's place in the k3s cluster.
  returned: success
  type: dict
  contains:
    role:
      description: C(server), C(agent), or null when the host is in neither group.
      type: str
    first_server:
      description: The first host of the server group (it starts the cluster), or null.
      type: str
    server_url:
      description: The URL joining nodes register with, or empty.
      type: str
  sample: {role: agent, first_server: cp-01, server_url: "https://10.10.1.10:6443"}
problems:
  description: Every problem found, when the inventory is refused.
  returned: failure
  type: list
  elements: str
"""
