#!/usr/bin/python
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

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
author: homelab.ai developers
options:
  path:
    description: The root of the tree, C(<homelab_ai_render_dir>/<cluster>).
    type: path
    required: true
  components:
    description: The components as the roles registered them (the C(homelab_ai_components) fact), in delivery order.
    type: list
    elements: dict
    required: true
  namespaces:
    description: Namespace objects that no component creates itself, written to C(namespaces/).
    type: list
    elements: dict
    default: []
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
"""

EXAMPLES = r"""
- name: Write the GitOps tree
  homelab.ai.gitops_tree:
    path: build/homelab
    components: "{{ ansible_facts.homelab_ai_components }}"
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.homelab.ai.plugins.module_utils._components import flux_objects
from ansible_collections.homelab.ai.plugins.module_utils._tree import render_files, secret_filename, sync_tree


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "components": {"type": "list", "elements": "dict", "required": True},
            "namespaces": {"type": "list", "elements": "dict", "default": []},
            "age_recipients": {"type": "list", "elements": "str", "required": True},
            "files": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    params = module.params
    components = params["components"]
    files = render_files(components, params["namespaces"], age_recipients=params["age_recipients"], extra_files=params["files"])
    keep = [f"{c['name']}/{secret_filename(s['name'])}" for c in components for s in c["secrets"]]
    result = sync_tree(params["path"], files, keep=keep, check_mode=module.check_mode, want_diff=module._diff)
    contents = {}
    if params["namespaces"]:
        contents["namespaces"] = {"Namespace": len(params["namespaces"])}
    for component in components:
        kinds: dict = {}
        objects = list(component["objects"]) + [obj for chart in component["helm"] for obj in flux_objects(chart)]
        for obj in objects:
            kinds[obj["kind"]] = kinds.get(obj["kind"], 0) + 1
        if component["secrets"]:
            kinds["Secret (SOPS)"] = len(component["secrets"])
        contents[component["name"]] = kinds
    output = {
        "changed": result.changed,
        "path": params["path"],
        "created": result.created,
        "updated": result.updated,
        "removed": result.removed,
        "unchanged": result.unchanged,
        "contents": contents,
    }
    if module._diff:
        output["diff"] = result.diffs
    module.exit_json(**output)


if __name__ == "__main__":
    main()
