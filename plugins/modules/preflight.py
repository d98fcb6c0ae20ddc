#!/usr/bin/python
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
# The work is done by the action plugin of the same name (plugins/action/preflight.py).

from __future__ import annotations

DOCUMENTATION = r"""
---
module: preflight
short_description: Check the whole homelab.ai inventory before anything is rendered, written or applied
version_added: 0.1.0
description:
  - Reads the shared C(homelab_ai_*) variables of the controller and the variables of every host of the node group
    (C(homelab_ai_gpus), C(homelab_ai_gpu_sharing), C(homelab_ai_node_name), C(homelab_ai_node_labels), and
    C(homelab_ai_gpu_facts) where M(homelab.ai.gpu_facts) ran on the node).
  - A node that declares no C(homelab_ai_gpus) is planned with the GPUs M(homelab.ai.gpu_facts) found; where both exist
    they are compared. A node with fewer GPUs than declared is a problem; where a GPU has less memory than declared,
    the node's figure is planned with and a warning says so (other differences warn).
  - C(homelab_ai_gpu_sharing) (C(exclusive), or a mapping with C(replicas)) is the sharing knob for every GPU of a node that sets
    no C(sharing) of its own.
  - Validates the model catalog (unknown keys, backends, sources, nodes, duplicate names), the GPUs (vendor, memory,
    sharing), Kubernetes quantities, the values the inventory sets for every role against that role's
    C(meta/argument_specs.yml), misspelled variable names, and the age key SOPS encrypts for.
  - Fails with one message that lists every problem, each naming the input and how to fix it.
  - On success sets the fact C(homelab_ai_inventory), the normalised inventory the roles render from.
author: homelab.ai developers
options: {}
extends_documentation_fragment:
  - homelab.ai.attributes
  - homelab.ai.attributes.action
notes:
  - Runs on the controller only.
"""

EXAMPLES = r"""
- name: Check the inventory
  homelab.ai.preflight:
"""

RETURN = r"""
ansible_facts:
  description: Facts set.
  returned: success
  type: dict
  contains:
    homelab_ai_inventory:
      description: The normalised inventory (cluster, nodes with their GPUs, models with defaults filled in, SOPS recipients).
      type: dict
      returned: success
summary:
  description: Counts of what was found.
  returned: success
  type: dict
  sample: {cluster: homelab, mode: render, nodes: 5, gpus: 5, models: 6}
problems:
  description: Every problem found, when the inventory is refused.
  returned: failure
  type: list
  elements: str
"""
