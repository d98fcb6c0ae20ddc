#!/usr/bin/python
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
# The work is done by the action plugin of the same name (plugins/action/gitops_tree.py).

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gitops_tree
short_description: Write the components of homelab.ai as a GitOps tree (kustomize + Flux + SOPS)
version_added: 0.1.0
description:
  - Writes one directory per component with a C(kustomization.yaml) and one file per object, Flux
    C(HelmRepository) and C(HelmRelease) objects for Helm charts, a root C(kustomization.yaml) in dependency order
    and a C(.sops.yaml) whose creation rule encrypts C(data) and C(stringData) for the age recipients.
  - The encrypted Secrets themselves are written by M(homelab.ai.sops_secret); this module lists them in the
    kustomizations and keeps them.
  - Writes only files whose content differs, each atomically; removes files it wrote earlier that are no longer
    rendered (they carry a header line), and never touches other files, so the tree can live in a Git checkout.
  - Runs on the controller (an action plugin), where the registered components are, so that they are not copied into module
    arguments, which for large catalogs would cost more than writing the tree.
author: homelab.ai developers
options:
  path:
    description: The root of the tree, C(<homelab_ai_render_dir>/<cluster>).
    type: path
    required: true
  components:
    description:
      - The components to write; by default every component the roles of the play registered
        (P(homelab.ai.components#lookup)). They are written in dependency order, after a C(namespaces/) directory
        with the namespaces that no component creates itself.
    type: list
    elements: dict
  age_recipients:
    description: age public keys for the C(.sops.yaml) creation rule.
    type: list
    elements: str
    required: true
  files:
    description: Further generated files by relative path, for example the VRAM plan.
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  action:
    support: full
"""

EXAMPLES = r"""
- name: Write the GitOps tree of every registered component
  homelab.ai.gitops_tree:
    path: build/homelab
    age_recipients: [age1...]
"""

RETURN = r"""
path:
  description: The root of the tree.
  returned: always
  type: str
created:
  description: Files created, relative to O(path).
  returned: always
  type: list
  elements: str
updated:
  description: Files whose content changed.
  returned: always
  type: list
  elements: str
removed:
  description: Files of an earlier run that are no longer rendered.
  returned: always
  type: list
  elements: str
unchanged:
  description: Number of files already as rendered.
  returned: always
  type: int
contents:
  description: Per component directory, the number of objects by kind.
  returned: always
  type: dict
  sample: {ollama: {StatefulSet: 1, Service: 1, PersistentVolumeClaim: 1}}
"""
