#!/usr/bin/python
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
# The work is done by the action plugin of the same name (plugins/action/sops_secrets.py).

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sops_secrets
short_description: Keep many Kubernetes Secrets in SOPS-encrypted files at once, their values from role variables
version_added: 0.1.0
description:
  - What M(homelab.ai.sops_secret) does for one Secret, for all of O(secrets) in one task on the controller. A value
    the inventory gives is kept, else one generated once is kept across runs; a file is written only when a value or a
    recipient changes; nothing is written in check mode.
  - Each key's value comes from the variable that C(value_vars) names for it (templated on the controller, never a task
    argument, so it shows in no log); an empty value counts as not given.
author: homelab.ai developers
options:
  secrets:
    description:
      - The Secrets, as M(homelab.ai.delivery_secrets) lists them - C(name), C(namespace), C(type), C(labels), C(path),
        C(previous_path), C(generate) (per key - C(length), C(charset), C(prefix)) and C(value_vars) (per key, the
        variable that may give its value).
    type: list
    elements: dict
    required: true
  age_recipients:
    description: Age public keys to encrypt for; empty for the one noted in O(age_key_file).
    type: list
    elements: str
    default: []
  age_key_file:
    description: The age key that decrypts the files; default C(SOPS_AGE_KEY_FILE), else C(~/.config/sops/age/keys.txt).
    type: path
  sops_binary:
    description: The sops binary; default the one on C(PATH) or beside Python.
    type: path
extends_documentation_fragment:
  - homelab.ai.attributes
  - homelab.ai.attributes.action
notes:
  - Runs on the controller only. It never returns a value.
"""

EXAMPLES = r"""
- name: Keep each secret in a SOPS-encrypted file
  homelab.ai.sops_secrets:
    secrets: "{{ lookup('homelab.ai.components') | homelab.ai.delivery_secrets(tree_dir) }}"
  register: kept
"""

RETURN = r"""
results:
  description:
    - Per Secret, in order, what M(homelab.ai.sops_secret) returns (C(path), C(keys), C(action), C(generated),
      C(reasons), C(checksum), C(changed)), and the entry as C(item).
  returned: success
  type: list
  elements: dict
"""
