# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Scheduling on GPUs: which extended resource, runtime class and node a workload asks for."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from ._quantity import to_bytes, to_quantity

__all__ = ["GPU_LABEL_PREFIX", "GPU_RESOURCES", "cache_size", "gpu_resource", "node_gpu"]

GPU_RESOURCES = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu", "intel": "gpu.intel.com/i915"}
GPU_LABEL_PREFIX = "homelab.ai/gpu"


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


_GI = 2**30


def cache_size(model: Mapping[str, Any], default: str) -> str:
    """Size of a model's cache volume: as set, else the file size plus 10 % and 1 GiB (partial downloads,
    metadata), rounded up to whole GiB, else ``default``."""
    if model.get("cache_size"):
        return to_quantity(int(model["cache_size"]))
    if model.get("size"):
        wanted = int(model["size"]) * 11 // 10 + _GI
        return to_quantity(-(-wanted // _GI) * _GI)
    return to_quantity(to_bytes(default))
