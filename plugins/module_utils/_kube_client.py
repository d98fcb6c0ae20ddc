# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The cluster as ``_prune.Pruner`` sees it, through the kubernetes Python client (what kubernetes.core uses too)."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Dict, Optional

from ._kube_access import load, resolve
from ._prune import RECORD_NAMESPACE, Chart, Ref

__all__ = ["KubeClient"]


class KubeClient:
    def __init__(self, kubeconfig: Optional[str] = None, context: Optional[str] = None):
        from kubernetes import client, dynamic  # imported here: the module documents itself without the client

        # the cluster kubernetes.core's modules of the same run talk to (K8S_AUTH_* and a pod's service account included)
        configuration = load(resolve(kubeconfig, context, os.environ)).configuration
        self._client = dynamic.DynamicClient(client.ApiClient(configuration))

    def _api(self, api_version: str, kind: str) -> Any:
        return self._client.resources.get(api_version=api_version, kind=kind)

    def get(self, ref: Ref) -> Optional[Dict[str, Any]]:
        from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

        try:
            return self._api(ref.api_version, ref.kind).get(name=ref.name, namespace=ref.namespace or None).to_dict()
        except (NotFoundError, ResourceNotFoundError):  # the object, or its kind (a CRD uninstalled with its chart)
            return None

    def delete(self, ref: Ref) -> None:
        from kubernetes.dynamic.exceptions import NotFoundError

        with contextlib.suppress(NotFoundError):  # gone already
            self._api(ref.api_version, ref.kind).delete(name=ref.name, namespace=ref.namespace or None, body={"propagationPolicy": "Background"})

    def release_exists(self, chart: Chart) -> bool:
        """Helm keeps a release as Secrets labelled owner=helm, name=<release> in its namespace."""
        namespace, name = chart
        found = self._api("v1", "Secret").get(namespace=namespace, label_selector=f"owner=helm,name={name}")
        return bool(found.items)

    def read_record(self, name: str) -> Optional[Dict[str, str]]:
        found = self.get(Ref("v1", "ConfigMap", RECORD_NAMESPACE, name))
        return dict((found or {}).get("data") or {}) if found else None

    def write_record(self, name: str, data: Dict[str, str]) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": RECORD_NAMESPACE, "labels": {"app.kubernetes.io/managed-by": "homelab.ai"}},
            "data": data,
        }
        self._api("v1", "ConfigMap").server_side_apply(body=body, name=name, namespace=RECORD_NAMESPACE, field_manager="homelab-ai", force_conflicts=True)
