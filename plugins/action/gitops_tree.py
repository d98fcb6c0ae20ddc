# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Action of homelab.ai.gitops_tree (documented in plugins/modules/gitops_tree.py): writes the tree on the controller."""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

from ansible.plugins.action import ActionBase

from ansible_collections.homelab.ai.plugins.module_utils._components import (
    COMMON_LABELS,
    collect_components,
    namespace_objects,
    prepare,
)
from ansible_collections.homelab.ai.plugins.module_utils._tree import TreeError, contents_of, readme, render_files, secret_path, sync_tree
from ansible_collections.homelab.ai.plugins.module_utils._wiring import unreached_data


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("path", "components", "age_recipients", "files", "flux_path", "flux_source", "prune_secrets", "secrets", "network"))

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self._task.args
        missing = [name for name in ("path", "age_recipients", "flux_path", "flux_source") if not args.get(name)]
        if missing:
            result.update(failed=True, msg=f"homelab.ai.gitops_tree needs {', '.join(missing)}")
            return result
        path = str(args["path"])
        cluster = os.path.basename(os.path.normpath(path))
        # the checksums of what pods read, the NetworkPolicies: made as apply mode makes them (_components.prepare)
        components, readers = prepare(args.get("components") or collect_components(task_vars or {}), args.get("secrets") or [], args.get("network"))
        namespaces = namespace_objects(components)
        contents = contents_of(components, namespaces)
        flux = {"flux_path": str(args["flux_path"]), "flux_source": str(args["flux_source"])}
        age_key_file = str((_inventory(task_vars or {}).get("sops") or {}).get("age_key_file") or "")
        extra = {"README.md": readme(cluster, contents, age_key_file=age_key_file, **flux), **(args.get("files") or {})}
        try:
            files = render_files(
                components, namespaces, age_recipients=args["age_recipients"], cluster=cluster, labels=COMMON_LABELS, extra_files=extra, **flux
            )
            secrets = [secret_path(c, s["name"]) for c in components for s in c["secrets"]]
            synced = sync_tree(
                path,
                files,
                secrets=secrets,
                prune_secrets=bool(args.get("prune_secrets")),
                check_mode=bool(self._task.check_mode),
                want_diff=bool(self._task.diff),
            )
        except (TreeError, ValueError) as exc:
            result.update(failed=True, msg=str(exc))
            return result
        result.update(
            changed=synced.changed,
            path=path,
            created=synced.created,
            updated=synced.updated,
            removed=synced.removed,
            unchanged=synced.unchanged,
            kept_secrets=synced.kept_secrets,
            kept_data=synced.kept_data,
            left_models=synced.left_models,
            notes=unreached_data(_wiring(task_vars or {}), synced.kept_data_of),
            cleaned=synced.cleaned,
            contents=contents,
            secret_readers=readers,
        )
        if self._task.diff and synced.diffs:
            result["diff"] = synced.diffs
        return result


def _inventory(task_vars: Dict[str, Any]) -> Dict[str, Any]:
    """The preflight's homelab_ai_inventory fact."""
    return dict((task_vars.get("ansible_facts") or {}).get("homelab_ai_inventory") or task_vars.get("homelab_ai_inventory") or {})


def _wiring(task_vars: Dict[str, Any]) -> Dict[str, Any]:
    return dict(_inventory(task_vars).get("wiring") or {})
