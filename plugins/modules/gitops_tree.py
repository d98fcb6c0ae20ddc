#!/usr/bin/python
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
# The work is done by the action plugin of the same name (plugins/action/gitops_tree.py).

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gitops_tree
short_description: Write the components of homelab.ai as a GitOps tree for Flux (kustomize + SOPS), in layers
version_added: 0.1.0
description:
  - Writes the tree Flux applies in layers, each by a Flux C(Kustomization) of its own in C(flux/), namely
    C(infrastructure/) (namespaces, storage, GPU plugins, every Helm chart as a C(HelmRepository) and C(HelmRelease);
    its Kustomization waits until all of it is ready) and C(apps/) (the workloads and the custom resources of those
    charts; its Kustomization depends on the infrastructure one). A custom resource never shares a layer with the chart
    that installs its CRD, which Flux's dry run would refuse on a fresh cluster.
  - Each layer has one directory per component with a C(kustomization.yaml) and one file per object; the root holds a
    C(.sops.yaml) whose creation rule encrypts C(data) and C(stringData) for the age recipients, and a C(README.md)
    that says how to point Flux at C(flux/).
  - The encrypted Secrets themselves are written by M(homelab.ai.sops_secret); this module lists them in the
    kustomizations and keeps them. A secret file that is no longer rendered stays (its values cannot be made again)
    unless O(prune_secrets) is true.
  - Assembles the new tree beside the old one and swaps it in (one atomic exchange on Linux), so a run that dies or
    fills the disk leaves the old tree or the new one, never a mix; the next run removes what a killed run left.
    Files it did not write are carried over untouched (C(.git), C(flux/flux-system/) of C(flux bootstrap), notes), so the
    tree can live in a Git checkout.
  - Runs on the controller (an action plugin), where the registered components are, so that they are not copied into module
    arguments, which for large catalogs would cost more than writing the tree.
author: homelab.ai developers
options:
  path:
    description: The root of the tree, C(<homelab_ai_render_dir>/<cluster>); its last part names the Flux Kustomizations.
    type: path
    required: true
  components:
    description:
      - The components to write; by default every component the roles of the play registered
        (P(homelab.ai.components#lookup)). They are written in dependency order, after an C(infrastructure/namespaces/)
        directory with the namespaces that no component creates itself.
    type: list
    elements: dict
  age_recipients:
    description: age public keys for the C(.sops.yaml) creation rule.
    type: list
    elements: str
    required: true
  flux_path:
    description: Where the tree lies in the Git repository Flux reads (C(spec.path) of the Flux Kustomizations).
    type: str
    required: true
  flux_source:
    description: The C(GitRepository) in C(flux-system) that holds the tree.
    type: str
    required: true
  prune_secrets:
    description: Remove encrypted secret files that are no longer rendered (they are kept otherwise).
    type: bool
    default: false
  files:
    description: Further generated files by relative path, for example the VRAM plan.
    type: dict
    default: {}
extends_documentation_fragment:
  - homelab.ai.attributes
  - homelab.ai.attributes.action
attributes:
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Write the GitOps tree of every registered component
  homelab.ai.gitops_tree:
    path: build/homelab
    age_recipients: [age1...]
    flux_path: ./homelab
    flux_source: flux-system
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
kept_secrets:
  description: Encrypted secret files no longer rendered and kept (O(prune_secrets) removes them).
  returned: always
  type: list
  elements: str
kept_data:
  description:
    - Volume claims and namespaces that left the tree. Flux does not prune them (they carry
      C(kustomize.toolkit.fluxcd.io/prune=disabled)); they stay in the cluster until deleted by hand.
  returned: always
  type: list
  elements: str
left_models:
  description:
    - Ollama models whose pull Job left the tree (the model left the catalog). Their blobs stay on Ollama's volume,
      which stays; each item names the model (C(model)), Ollama's name for it (C(name)), the volume (C(pvc)) and the
      namespace.
  returned: always
  type: list
  elements: dict
notes:
  description:
    - What the components still on no longer reach, where a component they consumed is off and its data stayed (Open
      WebUI's documents in Qdrant's volume).
  returned: always
  type: list
  elements: str
cleaned:
  description: What a killed run had left (a half-built tree beside this one, temporary files), now removed.
  returned: always
  type: list
  elements: str
contents:
  description: Per directory, the number of objects by kind.
  returned: always
  type: dict
  sample: {apps/ollama: {StatefulSet: 1, Service: 1, PersistentVolumeClaim: 1}}
"""
