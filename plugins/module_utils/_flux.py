# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""How the tree is delivered by Flux: layers, the Flux Kustomizations that apply them, the objects of a Helm chart.

Flux's kustomize-controller applies the CRDs and Namespaces of a Kustomization first, then dry-runs every other
object and applies none of them if one fails. A custom resource whose CRD a HelmRelease of the same Kustomization
installs is refused by that dry run on a fresh cluster (``no matches for kind``), and with it everything else. So the
tree is cut in layers, each applied by a Flux Kustomization of its own:

- ``infrastructure``: namespaces, storage, GPU plugins and every Helm chart; its Kustomization waits until all of it
  is ready, the charts' CRDs included;
- ``apps``: the workloads, and every custom resource whose CRD a chart of an earlier layer installs; its
  Kustomization depends on the infrastructure one.

An object goes into the layer its component names, and a custom resource at least into the layer after the one whose
chart provides its API group (``provides`` of a chart).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = [
    "FLUX_GROUPS",
    "FLUX_NAMESPACE",
    "LAYERS",
    "PRUNE_DISABLED",
    "api_group",
    "chart_objects",
    "flux_kustomization",
    "keeps_data",
    "layer_of",
    "providers",
]

FLUX_NAMESPACE = "flux-system"
LAYERS = ("infrastructure", "apps")
# API groups whose CRDs Flux itself installs (flux install / flux bootstrap)
FLUX_GROUPS = frozenset(
    {
        "source.toolkit.fluxcd.io",
        "kustomize.toolkit.fluxcd.io",
        "helm.toolkit.fluxcd.io",
        "notification.toolkit.fluxcd.io",
        "image.toolkit.fluxcd.io",
    }
)
# Kinds that always go into the first layer: what the other layers need to exist first.
_FIRST_LAYER_KINDS = frozenset({"Namespace", "HelmRepository", "HelmRelease", "OCIRepository"})
# What Flux must never delete when it leaves the tree (a component removed, a Kustomization renamed): the data.
PRUNE_DISABLED = {"kustomize.toolkit.fluxcd.io/prune": "disabled"}
_DATA_KINDS = frozenset({"PersistentVolumeClaim", "Namespace"})


def api_group(obj: Mapping[str, Any]) -> str:
    version = str(obj.get("apiVersion") or "")
    return version.split("/", 1)[0] if "/" in version else ""


def keeps_data(obj: Mapping[str, Any]) -> bool:
    """Whether the object holds data that no run may delete unless asked: a volume claim, a namespace."""
    return obj.get("kind") in _DATA_KINDS


def providers(charts: Sequence[Tuple[str, Mapping[str, Any]]]) -> Dict[str, Tuple[str, str]]:
    """``{API group: (layer, chart)}`` for the charts ``[(layer, chart)]`` that install CRDs (``provides``)."""
    found: Dict[str, Tuple[str, str]] = {}
    for layer, chart in charts:
        for group in chart.get("provides") or []:
            found.setdefault(str(group), (layer, str(chart["name"])))
    return found


def layer_of(obj: Mapping[str, Any], component_layer: str, provided: Mapping[str, Tuple[str, str]]) -> str:
    """The layer an object goes into; ``ValueError`` where no layer comes after the chart of its CRD."""
    if obj.get("kind") in _FIRST_LAYER_KINDS and api_group(obj) in ("", *FLUX_GROUPS):
        return LAYERS[0]
    layer = component_layer
    provider = provided.get(api_group(obj))
    if provider:
        after = LAYERS.index(provider[0]) + 1
        if after >= len(LAYERS):
            raise ValueError(f"{obj['kind']} {obj['metadata']['name']}: its CRD comes from chart {provider[1]} in the last layer, {provider[0]}")
        layer = LAYERS[max(after, LAYERS.index(layer))]
    return layer


def chart_objects(chart: Mapping[str, Any], interval: str = "1h") -> List[Dict[str, Any]]:
    """The Flux HelmRepository and HelmRelease that install a chart the way kubernetes.core.helm does."""
    oci = chart["repo_url"].startswith("oci://")
    repository: Dict[str, Any] = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "HelmRepository",
        "metadata": {"name": chart["repo_name"], "namespace": FLUX_NAMESPACE},
        "spec": {"interval": interval, "url": chart["repo_url"], **({"type": "oci"} if oci else {})},
    }
    metadata: Dict[str, Any] = {"name": chart["name"], "namespace": chart["namespace"]}
    if chart.get("keeps_data"):
        # uninstalling it would take the volumes with it (Longhorn): only a person does that
        metadata["annotations"] = dict(PRUNE_DISABLED)
    release: Dict[str, Any] = {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": metadata,
        "spec": {
            "interval": "30m",
            "chart": {
                "spec": {
                    "chart": chart["chart"],
                    "version": str(chart["version"]),
                    "sourceRef": {"kind": "HelmRepository", "name": chart["repo_name"], "namespace": FLUX_NAMESPACE},
                }
            },
            "install": {"crds": "CreateReplace", "remediation": {"retries": 3}},
            "upgrade": {"crds": "CreateReplace", "remediation": {"retries": 3}},
            **({"dependsOn": [{"name": need["name"], "namespace": need["namespace"]} for need in chart["needs"]]} if chart.get("needs") else {}),
            "values": chart.get("values") or {},
        },
    }
    return [repository, release]


def flux_kustomization(
    cluster: str,
    layer: str,
    *,
    path: str,
    source: str,
    depends_on: Optional[str],
    decrypt: bool,
    labels: Mapping[str, str],
) -> Dict[str, Any]:
    """The Flux Kustomization that applies one layer of the tree."""
    first = layer == LAYERS[0]
    spec: Dict[str, Any] = {
        **({"dependsOn": [{"name": f"{cluster}-{depends_on}"}]} if depends_on else {}),
        "interval": "10m",
        "retryInterval": "2m",
        # Longhorn and the device plugins take minutes on a fresh cluster; a model download is not waited for
        "timeout": "20m" if first else "10m",
        "path": path,
        "prune": True,
        # the next layer starts only once every chart of this one is ready, its CRDs installed
        "wait": first,
        "sourceRef": {"kind": "GitRepository", "name": source, "namespace": FLUX_NAMESPACE},
    }
    if decrypt:
        spec["decryption"] = {"provider": "sops", "secretRef": {"name": "sops-age"}}
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": f"{cluster}-{layer}", "namespace": FLUX_NAMESPACE, "labels": dict(labels)},
        "spec": spec,
    }
