#!/usr/bin/python
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kube_access
short_description: Check that apply mode can reach the cluster, before anything else runs
version_added: 0.1.0
description:
  - Finds the kubeconfig and context that M(kubernetes.core.k8s) will use with the same O(kubeconfig) and O(context),
    in its order. The options, else E(K8S_AUTH_KUBECONFIG) and E(K8S_AUTH_CONTEXT); with neither, the service account
    of the pod Ansible runs in, if any; else E(KUBECONFIG) (its files merged), else C(~/.kube/config). E(K8S_AUTH_HOST)
    with credentials replaces the kubeconfig, and the other E(K8S_AUTH_*) settings override it, as they do for
    kubernetes.core.
  - Checks that the file exists, can be read and is a kubeconfig, that the context exists (the current one without
    O(context)), and that the API server answers C(GET /version) and C(GET /api) within O(timeout) seconds, with the
    kubeconfig's CA and credentials.
  - Fails with one message that names the input (C(homelab_ai_kubeconfig), C(homelab_ai_kube_context), the file, the
    server, the user or the CA) and the fix; for k3s it names C(/etc/rancher/k3s/k3s.yaml).
  - Only reads. Check mode asks the server too.
author: homelab.ai developers
requirements:
  - kubernetes (the Python client kubernetes.core uses)
options:
  kubeconfig:
    description:
      - The kubeconfig (C(homelab_ai_kubeconfig)); several files may be joined with C(:), as the client merges them.
      - Without it, kubernetes.core's default (see above).
    type: str
  context:
    description: The context (C(homelab_ai_kube_context)); without it, the kubeconfig's current context.
    type: str
  distribution:
    description:
      - The cluster's distribution (C(homelab_ai_kube_distribution)). With C(k3s) the messages say what to do on k3s;
        C(generic) leaves that out. Any other value counts as C(k3s) here (the preflight refuses it later).
    type: str
    default: k3s
  timeout:
    description: Seconds to wait for the API server, to connect and again to answer.
    type: float
    default: 10
extends_documentation_fragment:
  - homelab.ai.attributes
"""

EXAMPLES = r"""
- name: Check the way to the cluster before anything is rendered or any node contacted
  homelab.ai.kube_access:
    kubeconfig: "{{ homelab_ai_kubeconfig | default(omit) }}"
    context: "{{ homelab_ai_kube_context | default(omit) }}"
  register: __kube_access
"""

RETURN = r"""
origin:
  description: What named the kubeconfig, C(homelab_ai_kubeconfig), C(K8S_AUTH_KUBECONFIG), C(KUBECONFIG) or C(~/.kube/config).
  returned: success
  type: str
kubeconfig:
  description: The kubeconfig files read (none for a pod's service account or E(K8S_AUTH_HOST)).
  returned: success
  type: list
  elements: str
context:
  description: The context used.
  returned: success
  type: str
cluster:
  description: The context's cluster.
  returned: success
  type: str
user:
  description: The context's user.
  returned: success
  type: str
server:
  description: The API server's URL.
  returned: success
  type: str
  sample: https://10.10.1.10:6443
version:
  description: The API server's version, as C(GET /version) says.
  returned: success
  type: str
  sample: v1.33.5+k3s1
msg:
  description: One line that says which server answers which user.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.homelab.ai.plugins.module_utils._kube_access import AccessError, check_access


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "kubeconfig": {"type": "str"},
            "context": {"type": "str"},
            "distribution": {"type": "str", "default": "k3s"},
            "timeout": {"type": "float", "default": 10.0},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        access = check_access(p["kubeconfig"], p["context"], distribution=p["distribution"], timeout=p["timeout"])
    except ImportError as exc:
        module.fail_json(msg=f"the kubernetes Python client is missing ({exc}); install it on the controller: pip install kubernetes")
    except AccessError as exc:
        module.fail_json(msg=f"Apply mode cannot reach the cluster, so the run stops before it renders, applies or contacts a node. {exc}")
    module.exit_json(
        changed=False,
        msg=access.describe(),
        origin=access.origin,
        kubeconfig=list(access.kubeconfig),
        context=access.context,
        cluster=access.cluster,
        user=access.user,
        server=access.server,
        version=access.version,
    )


if __name__ == "__main__":
    main()
