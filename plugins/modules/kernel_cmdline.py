#!/usr/bin/python
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kernel_cmdline
short_description: Set kernel arguments in a boot loader's configuration, keeping the others
version_added: 0.1.0
description:
  - Merges O(args) into the kernel command line a boot loader builds its entries from. An argument that is already
    there gets the new value where it stands (the kernel reads C(-) and C(_) alike in names); one that is given twice
    keeps only its first place; arguments the module is not told about stay as they are.
  - C(format=grub) edits the shell variable O(variable) of a GRUB defaults file (the last assignment, the one GRUB
    reads), C(format=plain) a file holding just the command line, such as C(/etc/kernel/cmdline).
  - Only writes the file, atomically; regenerating the boot entries (C(update-grub), C(grubby)) and rebooting are left
    to handlers, so that they run once. Supports check and diff mode.
author: homelab.ai developers
options:
  path:
    description: The file to edit. With C(format=grub) it has to exist.
    type: path
    required: true
  args:
    description: Kernel parameters and their values; null for a bare flag such as C(quiet).
    type: dict
    required: true
  format:
    description: How the file holds the command line.
    type: str
    choices: [grub, plain]
    default: grub
  variable:
    description: The shell variable of a GRUB defaults file (C(format=grub)).
    type: str
    default: GRUB_CMDLINE_LINUX
extends_documentation_fragment:
  - homelab.ai.attributes
attributes:
  diff_mode:
    support: full
seealso:
  - module: homelab.ai.node_info
"""

EXAMPLES = r"""
- name: Give the Strix Halo APU a 96 GiB GTT
  homelab.ai.kernel_cmdline:
    path: /etc/default/grub
    args:
      amdgpu.gttsize: 98304
      ttm.pages_limit: 25165824
  notify: Update GRUB
"""

RETURN = r"""
cmdline:
  description: The command line in the file after the change (or as it would be, in check mode).
  returned: always
  type: str
  sample: quiet amdgpu.gttsize=98304 ttm.pages_limit=25165824
previous:
  description: The command line before.
  returned: always
  type: str
  sample: quiet
args:
  description: O(args) as one string, as C(grubby --args) takes them.
  returned: always
  type: str
  sample: amdgpu.gttsize=98304 ttm.pages_limit=25165824
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.homelab.ai.plugins.module_utils._kernel_cmdline import CmdlineError, edit_grub_defaults, edit_plain, format_args


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "args": {"type": "dict", "required": True},
            "format": {"type": "str", "choices": ["grub", "plain"], "default": "grub"},
            "variable": {"type": "str", "default": "GRUB_CMDLINE_LINUX"},
        },
        supports_check_mode=True,
    )
    path, fmt = module.params["path"], module.params["format"]
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    elif fmt == "grub":
        module.fail_json(msg=f"{path} does not exist: is GRUB the boot loader of this node?")
    else:
        text = ""
    try:
        if fmt == "grub":
            new_text, old, new = edit_grub_defaults(text, module.params["variable"], module.params["args"])
        else:
            new_text, old, new = edit_plain(text, module.params["args"])
        args = format_args(module.params["args"])
    except CmdlineError as exc:
        module.fail_json(msg=f"{path}: {exc}")
    changed = new_text != text
    result = {"changed": changed, "cmdline": new, "previous": old, "args": args}
    if module._diff:
        result["diff"] = {"before": text, "after": new_text, "before_header": path, "after_header": path}
    if changed and not module.check_mode:
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, exist_ok=True)
        descriptor, temp = tempfile.mkstemp(prefix=".homelab-ai-", dir=directory)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(new_text)
        if os.path.exists(path):
            os.chmod(temp, os.stat(path).st_mode & 0o7777)
        else:
            os.chmod(temp, 0o644)
        module.atomic_move(temp, path)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
