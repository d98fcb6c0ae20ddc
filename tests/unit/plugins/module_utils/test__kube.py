from __future__ import annotations

import pytest

from ansible_collections.homelab.ai.plugins.module_utils._inventory import build_inventory
from ansible_collections.homelab.ai.plugins.module_utils._kube import cache_size, gpu_resource, node_gpu
from tests.support.example import example_inventory


def inventory():
    shared, hosts = example_inventory()
    return build_inventory(shared, hosts).to_dict()


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


def test_cache_size():
    assert cache_size({"cache_size": 50 * 2**30}, "20Gi") == "50Gi"
    assert cache_size({"size": 18 * 2**30}, "20Gi") == "21Gi"  # 18 GiB + 10 % + 1 GiB, rounded up
    assert cache_size({"size": None}, "20Gi") == "20Gi"
