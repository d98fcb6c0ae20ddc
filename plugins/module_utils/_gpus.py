# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""GPUs as the cluster sees them: node labels, the one sharing knob per vendor, declared versus detected.

Pure functions of the normalised inventory (``homelab_ai_inventory``) and of ``gpu_facts`` results.

The sharing knob (``sharing: {replicas: N}`` or ``exclusive`` on a GPU, or ``homelab_ai_gpu_sharing`` for every GPU
of a node) becomes what each vendor's device plugin understands:

- NVIDIA: time-slicing, one named config per node in the device plugin's ConfigMap, picked by the node label
  ``nvidia.com/device-plugin.config`` (the chart's config manager watches it).
- Intel: ``-shared-dev-num=N`` of the GPU plugin, a flag for the whole node: one DaemonSet per distinct N, selected by
  the node label ``homelab.ai/gpu.intel.shared-dev-num``.
- AMD: the ROCm device plugin has no time-slicing (one container per GPU); the preflight refuses replicas above 1, and
  models that share an AMD GPU go into one llama.cpp or Ollama server instead.

Time-slicing shares compute, never memory: the VRAM plan (``_vram_plan``) checks that what shares a GPU fits.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ._problems import Problem
from ._quantity import format_bytes, to_quantity
from ._yaml import dump

__all__ = [
    "GPU_LABEL_PREFIX",
    "INTEL_SHARED_LABEL",
    "NVIDIA_CONFIGMAP",
    "NVIDIA_CONFIG_LABEL",
    "compare_gpus",
    "gpu_node_labels",
    "gpus_from_facts",
    "intel_plugin_groups",
    "label_value",
    "node_feature_rules",
    "nvidia_config_name",
    "nvidia_device_plugin_config",
    "nvidia_device_plugin_configmap",
    "sharing_profile",
]

# the node labels of the GPUs: homelab.ai/gpu.<vendor>, .product, .memory ... (gpu_node_labels)
GPU_LABEL_PREFIX = "homelab.ai/gpu"
NVIDIA_CONFIG_LABEL = "nvidia.com/device-plugin.config"
NVIDIA_CONFIGMAP = "nvidia-device-plugin-configs"
INTEL_SHARED_LABEL = f"{GPU_LABEL_PREFIX}.intel.shared-dev-num"
# Memory the driver reports is a little below the marketing size (20475 MiB on a "20 GB" card): tolerate that much.
MEMORY_TOLERANCE = 0.03


def label_value(text: str, max_len: int = 63) -> str:
    """A Kubernetes label value made from free text (``Ryzen AI Max+ 395 (Radeon 8060S)`` -> ``Ryzen-AI-Max-395-Radeon-8060S``)."""
    value = re.sub(r"[^A-Za-z0-9_.]+", "-", str(text)).strip("-_.")
    if len(value) > max_len:
        digest = hashlib.sha256(value.encode()).hexdigest()[:8]
        value = value[: max_len - 9].rstrip("-_.") + "-" + digest
    return value


def sharing_profile(replicas: int) -> str:
    return "exclusive" if replicas <= 1 else "time-sliced"


def _vendor_groups(node: Mapping[str, Any]) -> Dict[str, List[Mapping[str, Any]]]:
    groups: Dict[str, List[Mapping[str, Any]]] = {}
    for gpu in node["gpus"]:
        groups.setdefault(gpu["vendor"], []).append(gpu)
    return dict(sorted(groups.items()))


def nvidia_config_name(node_name: str) -> str:
    """The node's config in the NVIDIA ConfigMap: a ConfigMap key and a label value at once."""
    return label_value(node_name)


def gpu_node_labels(node: Mapping[str, Any]) -> Dict[str, str]:
    """The labels that describe a node's GPUs and select its device plugin configuration.

    Per vendor on the node: ``homelab.ai/gpu.<vendor>`` (``"true"``, the device plugins' node selector),
    ``.product``, ``.memory`` (of the smallest device, what any pod can count on), ``.count``, ``.sharing``
    (``exclusive`` or ``time-sliced``), ``.replicas`` and, for APUs, ``.apu``.
    """
    labels: Dict[str, str] = {}
    for vendor, gpus in _vendor_groups(node).items():
        prefix = f"{GPU_LABEL_PREFIX}.{vendor}"
        replicas = int(gpus[0]["replicas"])  # the preflight makes every GPU of a vendor on a node share alike
        models = sorted({str(g["model"]) for g in gpus})
        labels[prefix] = "true"
        labels[f"{prefix}.product"] = label_value("_".join(models))
        memories = [int(g["memory"]) for g in gpus if g.get("memory")]
        if memories:
            labels[f"{prefix}.memory"] = to_quantity(min(memories))
        labels[f"{prefix}.count"] = str(sum(int(g["count"]) for g in gpus))
        labels[f"{prefix}.sharing"] = sharing_profile(replicas)
        labels[f"{prefix}.replicas"] = str(replicas)
        if any(g.get("apu") for g in gpus):
            labels[f"{prefix}.apu"] = "true"
        if vendor == "nvidia":
            labels[NVIDIA_CONFIG_LABEL] = nvidia_config_name(node["name"])
        elif vendor == "intel":
            labels[INTEL_SHARED_LABEL] = str(replicas)
    return labels


def node_feature_rules(inventory: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """One node-feature-discovery ``NodeFeatureRule`` per labelled node: its GPU labels and ``homelab_ai_node_labels``.

    nfd-master puts the labels on the node whose name the rule matches (the worker publishes ``system.name``'s
    ``nodename``), records them as its own and removes them once no rule gives them: a node that leaves the inventory
    loses its labels, and no Node object is ever created or deleted, in render mode (Flux) or apply mode.
    """
    rules = []
    for node in inventory["nodes"]:
        if not node["gpus"] and not node.get("labels"):
            continue
        labels = {**gpu_node_labels(node), **dict(node.get("labels") or {})}
        rules.append(
            {
                "apiVersion": "nfd.k8s-sigs.io/v1alpha1",
                "kind": "NodeFeatureRule",
                "metadata": {"name": f"homelab-ai-node-{node['name']}"},
                "spec": {
                    "rules": [
                        {
                            "name": f"homelab.ai labels of node {node['name']}",
                            "labels": labels,
                            "matchFeatures": [{"feature": "system.name", "matchExpressions": {"nodename": {"op": "In", "value": [node["name"]]}}}],
                        }
                    ]
                },
            }
        )
    return rules


def nvidia_device_plugin_config(replicas: int, rename_by_default: bool = False, fail_requests_greater_than_one: bool = True) -> Dict[str, Any]:
    """One config of the NVIDIA device plugin (``version: v1``); time-slicing only when ``replicas`` is above 1."""
    config: Dict[str, Any] = {"version": "v1", "flags": {"migStrategy": "none"}}
    if replicas > 1:
        config["sharing"] = {
            "timeSlicing": {
                "renameByDefault": bool(rename_by_default),
                "failRequestsGreaterThanOne": bool(fail_requests_greater_than_one),
                "resources": [{"name": "nvidia.com/gpu", "replicas": int(replicas)}],
            }
        }
    return config


def nvidia_device_plugin_configmap(inventory: Mapping[str, Any], namespace: str, name: str = NVIDIA_CONFIGMAP) -> Optional[Dict[str, Any]]:
    """The ConfigMap the chart's ``config.name`` points at: ``default`` (exclusive) plus one config per NVIDIA node.

    None when the inventory has no NVIDIA GPU.
    """
    data: Dict[str, str] = {}
    for node in inventory["nodes"]:
        gpus = [g for g in node["gpus"] if g["vendor"] == "nvidia"]
        if gpus:
            first = gpus[0]
            config = nvidia_device_plugin_config(int(first["replicas"]), bool(first["rename_by_default"]), bool(first["fail_requests_greater_than_one"]))
            data[nvidia_config_name(node["name"])] = dump(config)
    if not data:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/name": "nvidia-device-plugin"}},
        "data": {"default": dump(nvidia_device_plugin_config(1)), **data},
    }


def intel_plugin_groups(inventory: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """One Intel GPU plugin DaemonSet per distinct ``-shared-dev-num``: its name, value, node selector and nodes."""
    groups: Dict[int, List[str]] = {}
    for node in inventory["nodes"]:
        gpus = [g for g in node["gpus"] if g["vendor"] == "intel"]
        if gpus:
            groups.setdefault(int(gpus[0]["replicas"]), []).append(node["name"])
    return [
        {
            "name": f"intel-gpu-plugin-shared-{replicas}",
            "shared_dev_num": replicas,
            "node_selector": {INTEL_SHARED_LABEL: str(replicas)},
            "nodes": nodes,
        }
        for replicas, nodes in sorted(groups.items())
    ]


# --- declared and detected ----------------------------------------------------------------------------------------------


def gpus_from_facts(host: str, facts: Mapping[str, Any], problems: List[Problem]) -> List[Dict[str, Any]]:
    """``homelab_ai_gpus`` entries made from a node's ``gpu_facts``, for a node that declares none.

    A GPU whose memory the driver does not report cannot be planned: that is a problem naming the fix.
    """
    entries = []
    for index, gpu in enumerate(facts.get("gpus") or []):
        if not gpu.get("memory"):
            problems.append(
                Problem(
                    f"{host}: homelab_ai_gpu_facts.gpus[{index}]",
                    f"the {gpu.get('vendor')} GPU {gpu.get('model')!r} was found, but its driver reports no memory",
                    "declare the node's GPUs in homelab_ai_gpus with their memory (e.g. memory: 16Gi)",
                )
            )
            continue
        entries.append({key: gpu[key] for key in ("vendor", "model", "memory", "count", "apu") if key in gpu})
    return entries


def compare_gpus(host: str, declared: Sequence[Mapping[str, Any]], facts: Mapping[str, Any]) -> Tuple[List[Problem], List[str], Dict[str, int]]:
    """Declared (``homelab_ai_gpus``) against detected (``gpu_facts``) GPUs of one node, per vendor.

    Problems where the plan would count on GPUs that are not there; where a GPU has less memory than declared, the
    node's figure wins (the third value: vendor -> memory per GPU) and a warning says so. Warnings also where the
    declaration is merely conservative (a GPU found but not declared, less memory declared than found: a budget the
    plan keeps) or the APU flag differs.
    """
    problems: List[Problem] = []
    warnings: List[str] = []
    corrected: Dict[str, int] = {}
    detected = list(facts.get("gpus") or [])
    vendors = sorted({g["vendor"] for g in declared} | {g["vendor"] for g in detected})
    where = f"{host}: homelab_ai_gpus"
    for vendor in vendors:
        want = [g for g in declared if g["vendor"] == vendor]
        have = [g for g in detected if g["vendor"] == vendor]
        want_count = sum(int(g.get("count") or 1) for g in want)
        have_count = sum(int(g.get("count") or 1) for g in have)
        have_text = ", ".join(f"{g.get('count', 1)}x {g.get('model')}" for g in have) or "none"
        if want_count > have_count:
            problems.append(
                Problem(
                    where,
                    f"declares {want_count} {vendor} GPU(s), but the node has {have_count} ({have_text})",
                    "correct homelab_ai_gpus to what gpu_facts found, or check the driver on the node (lspci, dmesg)",
                )
            )
            continue
        if have_count > want_count:
            warnings.append(f"{where}: the node has {have_count} {vendor} GPU(s) ({have_text}) but declares {want_count}; the others are not scheduled on")
            if not want:
                continue
        have_memory = [int(g["memory"]) for g in have if g.get("memory")]
        want_memory = max(int(g["memory"]) for g in want)
        if have_memory:
            found = max(have_memory)
            if want_memory > found * (1 + MEMORY_TOLERANCE):
                corrected[vendor] = found
                warnings.append(
                    f"{where} ({vendor}).memory: declares {format_bytes(want_memory)} per GPU, but the node reports {format_bytes(found)}; "
                    f"the VRAM plan uses what the node reports (set memory: {to_quantity(found)} to say so)"
                )
            elif want_memory < found * (1 - 0.1):
                warnings.append(
                    f"{where} ({vendor}): declares {format_bytes(want_memory)} per GPU, the node reports {format_bytes(found)}; "
                    "the VRAM plan uses the declared value"
                )
        want_apu = any(g.get("apu") for g in want)
        have_apu = any(g.get("apu") for g in have)
        if want_apu != have_apu:
            warnings.append(f"{where} ({vendor}): apu is declared {str(want_apu).lower()} but detected {str(have_apu).lower()}")
    return problems, warnings, corrected
