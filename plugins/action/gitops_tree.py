# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Action of homelab.ai.gitops_tree (documented in plugins/modules/gitops_tree.py): writes the tree on the controller."""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase

from ansible_collections.homelab.ai.plugins.module_utils._components import collect_components, namespace_objects, order_components
from ansible_collections.homelab.ai.plugins.module_utils._tree import contents_of, readme, render_files, secret_filename, sync_tree


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("path", "components", "age_recipients", "files"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        missing = [name for name in ("path", "age_recipients") if not args.get(name)]
        if missing:
            result.update(failed=True, msg=f"homelab.ai.gitops_tree needs {', '.join(missing)}")
            return result
        components = order_components(args.get("components") or collect_components(task_vars or {}))
        namespaces = namespace_objects(components)
        contents = contents_of(components, namespaces)
        extra = {"README.md": readme(os.path.basename(os.path.normpath(str(args["path"]))), contents), **(args.get("files") or {})}
        files = render_files(components, namespaces, age_recipients=args["age_recipients"], extra_files=extra)
        keep = [f"{c['name']}/{secret_filename(s['name'])}" for c in components for s in c["secrets"]]
        synced = sync_tree(str(args["path"]), files, keep=keep, check_mode=bool(self._task.check_mode), want_diff=bool(self._task.diff))
        result.update(
            changed=synced.changed,
            path=str(args["path"]),
            created=synced.created,
            updated=synced.updated,
            removed=synced.removed,
            unchanged=synced.unchanged,
            contents=contents,
        )
        if self._task.diff and synced.diffs:
            result["diff"] = synced.diffs
        return result
