#!/usr/bin/python
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
# The work is done by the action plugin of the same name (plugins/action/report.py).

from __future__ import annotations

DOCUMENTATION = r"""
---
module: report
short_description: Print a text as it is, line by line, whatever the stdout callback and its settings
version_added: 0.1.0
description:
  - Prints O(text) to the console (and to C(ANSIBLE_LOG_PATH)) as plain lines. M(ansible.builtin.debug) prints a
    multi-line message as one JSON string full of C(\n) unless the callback formats results as YAML.
  - The deliver role prints its summary with it.
author: homelab.ai developers
options:
  text:
    description: The text to print.
    type: str
    required: true
extends_documentation_fragment:
  - homelab.ai.attributes
  - homelab.ai.attributes.action
notes:
  - Runs on the controller only. Never pass it a secret value.
"""

EXAMPLES = r"""
- name: Show what was done
  homelab.ai.report:
    text: "{{ lookup('ansible.builtin.template', 'summary.txt.j2') }}"
"""

RETURN = r"""
lines:
  description: How many lines were printed.
  returned: always
  type: int
  sample: 24
"""
