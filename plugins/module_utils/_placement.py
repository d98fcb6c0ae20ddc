# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Placement of a workload: its node, its GPU (extended resource, runtime class) and who its pod runs as."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

__all__ = ["GPU_RESOURCES", "RUN_AS", "gpu_pod", "gpu_resource", "node_gpu"]

GPU_RESOURCES = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu", "intel": "gpu.intel.com/i915"}
# the user the collection's own pods run as where the image does not name one: above the host's users (10000)
RUN_AS = 10001


def gpu_resource(vendor: str, rename_shared: bool = False) -> str:
    """The extended resource a pod requests for one GPU (or one time-slice of it)."""
    if vendor not in GPU_RESOURCES:
        raise ValueError(f"{vendor!r} is not a GPU vendor; use one of {', '.join(GPU_RESOURCES)}")
    if vendor == "nvidia" and rename_shared:
        return "nvidia.com/gpu.shared"
    return GPU_RESOURCES[vendor]


def node_gpu(inventory: Mapping[str, Any], node: Optional[str], vendor: Optional[str] = None) -> Dict[str, Any]:
    """How a workload placed on ``node`` gets its GPU: node name, vendor, resource, runtime class.

    ``node`` is an inventory host or a Kubernetes node name; without a GPU on it the workload runs on the CPU
    (``vendor`` is then ``cpu`` and ``resource`` empty).
    """
    if not node:
        return {"node": None, "vendor": "cpu", "resource": "", "runtime_class": None, "replicas": 1, "memory": 0}
    for entry in inventory["nodes"]:
        if node in (entry["host"], entry["name"]):
            gpus = [g for g in entry["gpus"] if vendor in (None, g["vendor"])]
            if not gpus:
                return {"node": entry["name"], "vendor": "cpu", "resource": "", "runtime_class": None, "replicas": 1, "memory": 0}
            gpu = gpus[0]
            shared = gpu["replicas"] > 1
            return {
                "node": entry["name"],
                "vendor": gpu["vendor"],
                "gpu_id": gpu["id"],
                "model": gpu["model"],
                "resource": gpu_resource(gpu["vendor"], rename_shared=shared and gpu["rename_by_default"]),
                # the NVIDIA container runtime is selected per pod through the RuntimeClass
                "runtime_class": "nvidia" if gpu["vendor"] == "nvidia" else None,
                "replicas": gpu["replicas"],
                "memory": gpu["memory"],
                "apu": gpu["apu"],
            }
    raise ValueError(f"{node!r} is not a node of the inventory; use one of {', '.join(n['host'] for n in inventory['nodes'])}")


def gpu_pod(
    inventory: Mapping[str, Any], node: Optional[str], device_gids: Sequence[int] = (), user: Optional[int] = RUN_AS, gpu: bool = True
) -> Dict[str, Any]:
    """How a pod gets the GPU of ``node`` (the CPU without one), decided once for every GPU workload.

    ``pod`` holds the pod spec's fields: the node, the runtime class, the service account token it never needs, and the
    security context: a non-root ``user`` where the devices allow it. An NVIDIA GPU comes through its device plugin and
    runtime; AMD and Intel devices (/dev/dri, /dev/kfd) belong to the host's render and video groups, whose GIDs differ
    between distributions: the node's, as gpu_facts found them, else ``device_gids``; without them the pod runs as root.
    ``limits`` is the GPU to ask for, ``vendor``, ``node`` and ``gpu_id`` are for the VRAM plan and the labels.
    ``gpu=False`` places the pod on ``node`` without its GPU (a llama.cpp model with ``gpu_layers: 0``);
    ``user=None`` is for an image that must start as root: its containers say who they run as.
    """
    placed = node_gpu(inventory, node)
    gpu_of = placed if gpu else {**placed, "vendor": "cpu", "resource": "", "runtime_class": None, "gpu_id": None}
    return _pod(inventory, gpu_of, device_gids, user)


def _pod(inventory: Mapping[str, Any], gpu: Mapping[str, Any], device_gids: Sequence[int], user: Optional[int]) -> Dict[str, Any]:
    entry = next((n for n in inventory["nodes"] if gpu["node"] and gpu["node"] in (n["name"], n["host"])), None)
    gids = sorted({int(g) for g in ((entry or {}).get("device_gids") or device_gids)})
    needs_groups = gpu["vendor"] in ("amd", "intel")
    context: Dict[str, Any] = {}
    if user is not None and (not needs_groups or gids):
        context = {"runAsNonRoot": True, "runAsUser": user, "runAsGroup": user, "fsGroup": user, "fsGroupChangePolicy": "OnRootMismatch"}
        if needs_groups:
            context["supplementalGroups"] = gids
    context["seccompProfile"] = {"type": "RuntimeDefault"}
    pod: Dict[str, Any] = {"automountServiceAccountToken": False}
    if gpu["node"]:
        pod["nodeSelector"] = {"kubernetes.io/hostname": gpu["node"]}
    if gpu["runtime_class"]:
        pod["runtimeClassName"] = gpu["runtime_class"]
    pod["securityContext"] = context
    return {
        "pod": pod,
        "limits": {gpu["resource"]: 1} if gpu["resource"] else {},
        "vendor": gpu["vendor"],
        "node": gpu["node"],
        "gpu_id": gpu.get("gpu_id"),
        "non_root": "runAsNonRoot" in context,
    }
