#!/usr/bin/python
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kube_prune
short_description: Remove from the cluster what an earlier apply run applied and this one no longer renders
version_added: 0.1.0
description:
  - Apply mode's counterpart of Flux's prune. Each run records what it applied in the ConfigMap
    C(kube-system/homelab-ai-applied-<cluster>); the next run removes what the record names and O(objects) and
    O(charts) no longer do, for example the Deployment, Service, pull Job and ElastiService of a model that left the
    catalog.
  - Removes only objects that still carry the label C(app.kubernetes.io/managed-by=homelab.ai); one that lost it is
    left alone and reported in RV(foreign).
  - Never removes a PersistentVolumeClaim or Namespace, nor reports for uninstalling a Helm release that holds volumes,
    unless O(prune_data) is true; they stay in the record (RV(kept)) so that a later run asked to can still remove them.
  - Helm releases are not uninstalled here; RV(uninstall) lists them for M(kubernetes.core.helm) (C(state=absent)).
    With O(write_record) the record is written, without the releases Helm no longer has.
  - Check mode lists what would go and changes nothing.
author: homelab.ai developers
options:
  cluster:
    description: The cluster's name (C(homelab_ai_cluster_name)); the record is named after it.
    type: str
    required: true
  objects:
    description: Every object this run applied (C(apiVersion), C(kind), C(metadata.name), C(metadata.namespace)).
    type: list
    elements: dict
    required: true
  charts:
    description: The Helm releases this run installed, each C(namespace), C(name) and C(keeps_data).
    type: list
    elements: dict
    default: []
  prune_data:
    description: Also remove volume claims, namespaces and Helm releases that hold volumes.
    type: bool
    default: false
  write_record:
    description: Record O(objects) and O(charts) (with what was kept) for the next run.
    type: bool
    default: false
  kubeconfig:
    description: Kubeconfig file; the client's default without it.
    type: path
  context:
    description: Kubeconfig context.
    type: str
extends_documentation_fragment:
  - homelab.ai.attributes
"""

EXAMPLES = r"""
- name: Remove what the last run applied and this one does not
  homelab.ai.kube_prune:
    cluster: homelab
    objects: "{{ _deliver_plan.refs }}"
    charts: "{{ _deliver_plan.charts }}"
  register: __pruned
"""

RETURN = r"""
removed:
  description: The objects removed (or, in check mode, that would be), as C(Kind namespace/name).
  returned: always
  type: list
  elements: str
kept:
  description: Volume claims and namespaces no longer rendered, kept because O(prune_data) is false.
  returned: always
  type: list
  elements: str
foreign:
  description: Recorded objects that no longer carry the collection's label, left alone and forgotten.
  returned: always
  type: list
  elements: str
uninstall:
  description: Helm releases no longer rendered that Helm still has, each C(namespace) and C(name).
  returned: always
  type: list
  elements: dict
kept_charts:
  description: Helm releases no longer rendered that hold volumes, kept because O(prune_data) is false.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.homelab.ai.plugins.module_utils._prune import Pruner


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "cluster": {"type": "str", "required": True},
            "objects": {"type": "list", "elements": "dict", "required": True},
            "charts": {"type": "list", "elements": "dict", "default": []},
            "prune_data": {"type": "bool", "default": False},
            "write_record": {"type": "bool", "default": False},
            "kubeconfig": {"type": "path"},
            "context": {"type": "str"},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        from ansible_collections.homelab.ai.plugins.module_utils._kube_client import KubeClient

        client = KubeClient(p["kubeconfig"], p["context"])
        result = Pruner(client, p["cluster"], check_mode=module.check_mode).run(
            p["objects"], p["charts"], prune_data=p["prune_data"], write_record=p["write_record"]
        )
    except ImportError as exc:
        module.fail_json(msg=f"the kubernetes Python client is missing ({exc}); install it on the controller: pip install kubernetes")
    except Exception as exc:  # the client's errors carry the API server's answer
        module.fail_json(msg=f"could not remove what is no longer rendered: {exc}")
    module.exit_json(
        changed=result.changed,
        removed=result.removed,
        kept=result.kept,
        foreign=result.foreign,
        uninstall=result.uninstall,
        kept_charts=result.kept_charts,
    )


if __name__ == "__main__":
    main()
