#!/usr/bin/python
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
# The work is done by the action plugin of the same name (plugins/action/component.py).

from __future__ import annotations

DOCUMENTATION = r"""
---
module: component
short_description: Hand a role's Kubernetes objects, Helm charts and secrets to the delivery
version_added: 0.1.0
description:
  - A role of this collection never talks to the cluster. It describes its component with this module; the
    C(homelab.ai.deliver) role then writes every component into a GitOps tree (render mode) or server-side
    applies them (apply mode), so both modes deliver the same objects.
  - Adds the component to the fact C(homelab_ai_components), replacing one of the same name. Changes nothing.
author: homelab.ai developers
options:
  name:
    description: Name of the component; its directory in the GitOps tree.
    type: str
    required: true
  needs:
    description: Components that must be delivered first.
    type: list
    elements: str
    default: []
  objects:
    description: Kubernetes objects. Namespaced objects without a namespace get C(homelab_ai_namespace).
    type: list
    elements: dict
    default: []
  helm:
    description:
      - Helm charts, each with C(name), C(namespace), C(repo_name), C(repo_url), C(chart), C(version), C(values)
        and optionally C(needs) (other releases, as C(name)/C(namespace)).
      - Rendered as Flux HelmRepository and HelmRelease, applied with kubernetes.core.helm.
    type: list
    elements: dict
    default: []
  secrets:
    description:
      - Secrets, each with C(name), optional C(namespace), C(labels), and C(keys) mapping each key to its generation
        spec and optionally C(var), the variable that may give the value. Values never pass through here.
    type: list
    elements: dict
    default: []
  gpu_workloads:
    description: What the component places on GPUs, for the VRAM plan.
    type: list
    elements: dict
    default: []
  routes:
    description:
      - The models the component serves, for the LiteLLM configuration; each with C(model) (the catalog name),
        C(provider_model) (LiteLLM's C(model) parameter), C(api_base), C(mode) and C(cold_start).
    type: list
    elements: dict
    default: []
  summary:
    description: Endpoints and facts for the summary at the end of the run.
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  action:
    support: full
"""

EXAMPLES = r"""
- name: Hand the Qdrant objects to the delivery
  homelab.ai.component:
    name: qdrant
    objects: "{{ lookup('ansible.builtin.template', 'objects.yml.j2') | from_yaml_all }}"
    secrets:
      - name: qdrant
        keys:
          QDRANT__SERVICE__API_KEY: {var: qdrant_api_key}
"""

RETURN = r"""
component:
  description: What was registered.
  returned: success
  type: dict
  sample: {name: qdrant, objects: 4, helm: [], secrets: [qdrant]}
"""
