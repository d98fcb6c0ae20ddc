# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The attributes every module of the collection shares (a module states only where it differs)."""

from __future__ import annotations


class ModuleDocFragment:
    # every module: check mode reads and reports without changing anything; no diff unless the module says otherwise
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and say what it would change, without changing anything.
    support: full
  diff_mode:
    description: Returns details on what changed (or would change in check mode) in diff mode.
    support: none
"""

    # a module whose work is done by an action plugin of the same name, on the controller
    ACTION = r"""
options: {}
attributes:
  action:
    description: Runs as an action plugin on the controller.
    support: full
"""

    FACTS = r"""
options: {}
attributes:
  facts:
    description: Sets facts.
    support: full
"""
