#!/usr/bin/python
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ollama_model
short_description: Keep a model present, up to date or absent in a running Ollama
version_added: 0.1.0
description:
  - Talks to Ollama's HTTP API (C(/api/tags), streaming C(/api/pull), C(/api/delete), C(/api/show)) instead of
    C(kubectl exec ... ollama pull).
  - C(present) pulls a model that Ollama does not list; C(latest) pulls always and reports a change only when the
    model's digest moved; C(absent) deletes it.
  - To fill Ollama's volume before it starts (no running Ollama needed), use M(homelab.ai.model_pull) with an
    C(ollama://) source, or the pull Job of the C(homelab.ai.pull_job) filter.
author: homelab.ai developers
options:
  name:
    description: The model as Ollama names it (C(llama3.2:3b), C(llama3.2) meaning C(:latest)), or an C(ollama://) source.
    type: str
    required: true
  state:
    description: C(present), C(latest) or C(absent).
    type: str
    choices: [present, latest, absent]
    default: present
  url:
    description: Ollama's base URL.
    type: str
    default: http://127.0.0.1:11434
  insecure:
    description: Let Ollama pull from a registry without TLS.
    type: bool
    default: false
  timeout:
    description: Seconds a pull may take.
    type: float
    default: 3600
  registry:
    description:
      - Base URL of the registry (default C(https://<registry of the name>)). Only used in check mode with
        C(state=latest), to compare Ollama's digest with the registry's manifest without pulling.
    type: str
extends_documentation_fragment:
  - homelab.ai.attributes
seealso:
  - module: homelab.ai.model_pull
"""

EXAMPLES = r"""
- name: Llama 3.2 in the cluster's Ollama
  homelab.ai.ollama_model:
    name: llama3.2:3b
    url: http://ollama.ai.svc.cluster.local:11434

- name: Every Ollama model of the catalog, kept up to date
  homelab.ai.ollama_model:
    name: "{{ item.source }}"
    state: latest
    url: "{{ ollama_url }}"
  loop: "{{ homelab_ai_models | selectattr('backend', 'eq', 'ollama') }}"
"""

RETURN = r"""
name:
  description: The model's name as Ollama lists it.
  returned: always
  type: str
action:
  description: pulled, updated, unchanged, deleted, absent; in check mode C(would pull), C(would update), C(would delete).
  returned: always
  type: str
digest:
  description: The model's digest after the run.
  returned: always
  type: str
before_digest:
  description: The digest before the run (empty when the model was missing).
  returned: always
  type: str
size:
  description: Size in bytes, as Ollama reports it.
  returned: always
  type: int
details:
  description: Ollama's details (family, parameter_size, quantization_level, ...).
  returned: always
  type: dict
statuses:
  description: The status lines of the pull stream.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.homelab.ai.plugins.module_utils._download import DownloadError
from ansible_collections.homelab.ai.plugins.module_utils._ollama import OllamaApi, OllamaError, ensure_model
from ansible_collections.homelab.ai.plugins.module_utils._ollama_registry import fetch_manifest
from ansible_collections.homelab.ai.plugins.module_utils._sources import Source


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["present", "latest", "absent"], "default": "present"},
            "url": {"type": "str", "default": "http://127.0.0.1:11434"},
            "insecure": {"type": "bool", "default": False},
            "timeout": {"type": "float", "default": 3600.0},
            "registry": {"type": "str"},
        },
        supports_check_mode=True,
    )
    p = module.params

    def registry_digest(source: Source) -> str:
        try:
            return fetch_manifest(source, p["registry"] or "", timeout=30.0, retries=1).digest
        except DownloadError as exc:
            module.warn(f"cannot compare with the registry ({exc}); assuming a pull would change the model")
            return ""

    try:
        result = ensure_model(
            OllamaApi(p["url"], p["timeout"]), p["name"], p["state"], check_mode=module.check_mode, insecure=p["insecure"], registry_digest=registry_digest
        )
    except OllamaError as exc:
        module.fail_json(msg=str(exc), name=p["name"])
    module.exit_json(**result.to_dict())


if __name__ == "__main__":
    main()
