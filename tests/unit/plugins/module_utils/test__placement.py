from __future__ import annotations

import pytest

from ansible_collections.homelab.ai.plugins.module_utils._placement import gpu_pod, gpu_resource, node_gpu
from tests.support.example import normalised_example


def inventory():
    return normalised_example()


def test_node_gpu_per_vendor():
    inv = inventory()
    nvidia = node_gpu(inv, "gpu-nvidia-01")
    assert (nvidia["resource"], nvidia["runtime_class"], nvidia["replicas"], nvidia["gpu_id"]) == ("nvidia.com/gpu", "nvidia", 4, "gpu-nvidia-01/gpu0")
    assert node_gpu(inv, "strix-01")["resource"] == "amd.com/gpu"
    assert node_gpu(inv, "media-01")["resource"] == "gpu.intel.com/i915"
    assert node_gpu(inv, None)["vendor"] == "cpu"
    with pytest.raises(ValueError, match="'nope' is not a node of the inventory"):
        node_gpu(inv, "nope")


def test_renamed_shared_nvidia_resource():
    assert gpu_resource("nvidia", rename_shared=True) == "nvidia.com/gpu.shared"
    with pytest.raises(ValueError):
        gpu_resource("matrox")


def test_gpu_pod_runs_non_root_where_the_devices_allow():
    inv = inventory()
    nvidia = gpu_pod(inv, "gpu-nvidia-01")
    assert nvidia["pod"] == {
        "automountServiceAccountToken": False,
        "nodeSelector": {"kubernetes.io/hostname": "gpu-nvidia-01"},
        "runtimeClassName": "nvidia",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    assert nvidia["limits"] == {"nvidia.com/gpu": 1} and nvidia["non_root"]
    # AMD without the host's GIDs: root, as the render group's GID is unknown
    amd = gpu_pod(inv, "strix-01")
    assert amd["pod"]["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}} and not amd["non_root"]
    # with the declared GIDs, or those gpu_facts found on the node (which win), non-root in those groups
    assert gpu_pod(inv, "strix-01", [44, 992])["pod"]["securityContext"]["supplementalGroups"] == [44, 992]
    inv["nodes"][[n["host"] for n in inv["nodes"]].index("strix-01")]["device_gids"] = [44, 105]
    assert gpu_pod(inv, "strix-01", [44, 992])["pod"]["securityContext"]["supplementalGroups"] == [44, 105]
    cpu = gpu_pod(inv, None)
    assert cpu["pod"]["securityContext"]["runAsNonRoot"] and "nodeSelector" not in cpu["pod"] and cpu["limits"] == {}


def test_a_cpu_model_stays_on_its_node_without_the_gpu():
    cpu = gpu_pod(inventory(), "strix-01", gpu=False)
    assert cpu["pod"]["nodeSelector"] == {"kubernetes.io/hostname": "strix-01"} and cpu["limits"] == {} and cpu["vendor"] == "cpu" and cpu["non_root"]
