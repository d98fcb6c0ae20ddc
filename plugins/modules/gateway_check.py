#!/usr/bin/python
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gateway_check
short_description: Check that every catalog model answers through the LiteLLM gateway
version_added: 0.1.0
description:
  - Sends what an OpenAI client would send, through LiteLLM, for every catalog model. It lists the models with the
    master key, asks for the list without a key (which must be refused), and then, per model, sends a one-token chat
    completion, a one-token completion or an embedding request.
  - A model that scales to zero starts on its first request; each request waits up to O(timeout).
  - Fails when a model is missing, does not answer, or the gateway answers without a key. Each failure names the
    model, what the gateway said, and where to look.
  - The master key is given, or decrypted from the SOPS-encrypted Secret that site.yml keeps. It never appears in the
    result.
  - The requests only read. Check mode sends them too.
author: homelab.ai developers
options:
  url:
    description: LiteLLM's OpenAI base URL, ending in C(/v1).
    type: str
    required: true
  api_key:
    description: The master key. Without it, O(secret_file) gives it.
    type: str
  secret_file:
    description: The SOPS-encrypted Secret file that holds the master key (site.yml keeps it as C(<tree>/litellm/secret-litellm.sops.yaml)).
    type: path
  secret_key:
    description: The key of O(secret_file)'s C(stringData) that holds the master key.
    type: str
    default: master-key
  age_key_file:
    description: The age key that decrypts O(secret_file) (default C($SOPS_AGE_KEY_FILE), else sops' default).
    type: path
  sops_binary:
    description: The sops binary (default from PATH, or beside this Python).
    type: path
  models:
    description: The catalog entries to check (C(name), C(mode), and C(backend) and C(slug) for the hints).
    type: list
    elements: dict
    required: true
  namespace:
    description: The namespace of the stack, for the hints.
    type: str
    default: ai
  timeout:
    description: Seconds one model's request may take (a model scaled to zero starts first).
    type: float
    default: 300
extends_documentation_fragment:
  - homelab.ai.attributes
"""

EXAMPLES = r"""
- name: Every catalog model answers through the gateway
  homelab.ai.gateway_check:
    url: http://llm.home.arpa/v1
    secret_file: build/homelab/litellm/secret-litellm.sops.yaml
    models: "{{ homelab_ai_models }}"
"""

RETURN = r"""
url:
  description: The gateway's base URL.
  returned: always
  type: str
listed:
  description: The models the gateway lists.
  returned: always
  type: list
  elements: str
missing:
  description: Catalog models the gateway does not list.
  returned: always
  type: list
  elements: str
anonymous_refused:
  description: Whether the gateway refused the model list without a key.
  returned: always
  type: bool
models:
  description: One entry per model, with C(name), C(mode), C(ok), C(seconds), C(detail) and C(fix).
  returned: always
  type: list
  elements: dict
ok:
  description: Whether everything answered as it should.
  returned: always
  type: bool
lines:
  description: The result as text, a line per model (name, mode, seconds, answer or error).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.homelab.ai.plugins.module_utils._gateway_check import GatewayUnreachable, check_gateway
from ansible_collections.homelab.ai.plugins.module_utils._sops import SopsError, SopsRunner, find_sops


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "api_key": {"type": "str", "no_log": True},
            "secret_file": {"type": "path"},
            "secret_key": {"type": "str", "default": "master-key", "no_log": False},
            "age_key_file": {"type": "path"},
            "sops_binary": {"type": "path"},
            "models": {"type": "list", "elements": "dict", "required": True},
            "namespace": {"type": "str", "default": "ai"},
            "timeout": {"type": "float", "default": 300.0},
        },
        required_one_of=[("api_key", "secret_file")],
        supports_check_mode=True,
    )
    p = module.params
    key = p["api_key"]
    if not key:
        try:
            document = SopsRunner(find_sops(p["sops_binary"]), p["age_key_file"]).decrypt(p["secret_file"])
        except SopsError as exc:
            module.fail_json(msg=f"secret_file {p['secret_file']}: cannot decrypt ({exc}). Fix: run site.yml first, or give api_key")
        key = str((document.get("stringData") or {}).get(p["secret_key"]) or "")
        if not key:
            module.fail_json(msg=f"secret_file {p['secret_file']}: has no {p['secret_key']!r}. Fix: give the file site.yml keeps for LiteLLM")
        module.no_log_values.add(key)
    try:
        report = check_gateway(p["url"], key, p["models"], p["timeout"], p["namespace"])
    except GatewayUnreachable as exc:
        module.fail_json(msg=str(exc), url=p["url"])
    if not report.ok:
        module.fail_json(msg="The gateway check failed:\n" + "\n".join(f"- {line}" for line in report.problems()), **report.to_dict())
    module.exit_json(changed=False, **report.to_dict())


if __name__ == "__main__":
    main()
