# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

from typing import Any, Dict

import pytest
import yaml

from ansible_collections.homelab.ai.plugins.module_utils._gpus import (
    compare_gpus,
    gpu_node_labels,
    intel_plugin_groups,
    label_value,
    node_feature_rules,
    nvidia_device_plugin_config,
    nvidia_device_plugin_configmap,
)
from ansible_collections.homelab.ai.plugins.module_utils._inventory import build_inventory
from ansible_collections.homelab.ai.plugins.module_utils._problems import InputError
from tests.support.example import example_inventory

GIB = 2**30


def example_hosts() -> Dict[str, Dict[str, Any]]:
    return dict(sorted(example_inventory()[1].items()))  # by name: the order the assertions list nodes in


def inventory(hosts=None, **shared) -> Dict[str, Any]:
    return build_inventory(shared, example_hosts() if hosts is None else hosts, cwd="/tmp").to_dict()


def node(inv, name):
    return next(n for n in inv["nodes"] if n["name"] == name)


def test_label_value() -> None:
    assert label_value("Ryzen AI Max+ 395 (Radeon 8060S)") == "Ryzen-AI-Max-395-Radeon-8060S"
    assert label_value("RTX 4000 SFF") == "RTX-4000-SFF"
    long = label_value("x" * 100)
    assert len(long) == 63 and long.startswith("x" * 40)


def test_labels_of_the_example_nodes() -> None:
    inv = inventory()
    assert gpu_node_labels(node(inv, "gpu-nvidia-01")) == {
        "homelab.ai/gpu.nvidia": "true",
        "homelab.ai/gpu.nvidia.product": "RTX-4000-SFF",
        "homelab.ai/gpu.nvidia.memory": "24Gi",
        "homelab.ai/gpu.nvidia.count": "1",
        "homelab.ai/gpu.nvidia.sharing": "time-sliced",
        "homelab.ai/gpu.nvidia.replicas": "4",
        "nvidia.com/device-plugin.config": "gpu-nvidia-01",
    }
    strix = gpu_node_labels(node(inv, "strix-01"))
    assert strix["homelab.ai/gpu.amd.apu"] == "true"
    assert strix["homelab.ai/gpu.amd.memory"] == "96Gi"
    assert strix["homelab.ai/gpu.amd.sharing"] == "exclusive"
    media = gpu_node_labels(node(inv, "media-01"))
    assert media["homelab.ai/gpu.intel.shared-dev-num"] == "2"
    assert media["homelab.ai/gpu.intel.sharing"] == "time-sliced"


def test_node_labels_come_as_node_feature_rules_that_match_the_node_by_name() -> None:
    hosts = example_hosts()
    hosts["gpu-amd-01"]["homelab_ai_node_labels"] = {"topology.homelab.ai/rack": "rack-1"}
    hosts["cpu-01"] = {"homelab_ai_node_labels": {"homelab.ai/storage": "true"}}
    hosts["cpu-02"] = {}
    rules = node_feature_rules(inventory(hosts))
    assert [r["metadata"]["name"] for r in rules] == [
        f"homelab-ai-node-{n}" for n in ("gpu-amd-01", "gpu-nvidia-01", "media-01", "strix-01", "strix-02", "cpu-01")
    ]
    assert all(r["kind"] == "NodeFeatureRule" and set(r["metadata"]) == {"name"} for r in rules)  # cluster-scoped
    (amd,) = rules[0]["spec"]["rules"]
    assert amd["matchFeatures"] == [{"feature": "system.name", "matchExpressions": {"nodename": {"op": "In", "value": ["gpu-amd-01"]}}}]
    assert amd["labels"]["topology.homelab.ai/rack"] == "rack-1" and amd["labels"]["homelab.ai/gpu.amd"] == "true"
    assert rules[-1]["spec"]["rules"][0]["labels"] == {"homelab.ai/storage": "true"}


def test_nvidia_config_formats() -> None:
    assert nvidia_device_plugin_config(1) == {"version": "v1", "flags": {"migStrategy": "none"}}
    assert nvidia_device_plugin_config(4, rename_by_default=True) == {
        "version": "v1",
        "flags": {"migStrategy": "none"},
        "sharing": {"timeSlicing": {"renameByDefault": True, "failRequestsGreaterThanOne": True, "resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}},
    }


def test_nvidia_configmap_has_one_config_per_node() -> None:
    hosts = example_hosts()
    hosts["gpu-nvidia-02"] = {"homelab_ai_gpus": [{"vendor": "nvidia", "memory": "12Gi"}]}
    configmap = nvidia_device_plugin_configmap(inventory(hosts), "kube-system")
    assert configmap is not None
    assert configmap["metadata"] == {
        "name": "nvidia-device-plugin-configs",
        "namespace": "kube-system",
        "labels": {"app.kubernetes.io/name": "nvidia-device-plugin"},
    }
    assert sorted(configmap["data"]) == ["default", "gpu-nvidia-01", "gpu-nvidia-02"]
    shared = yaml.safe_load(configmap["data"]["gpu-nvidia-01"])
    assert shared["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 4}]
    assert shared["sharing"]["timeSlicing"]["failRequestsGreaterThanOne"] is True
    assert "sharing" not in yaml.safe_load(configmap["data"]["gpu-nvidia-02"])
    assert yaml.safe_load(configmap["data"]["default"]) == {"version": "v1", "flags": {"migStrategy": "none"}}


def test_no_nvidia_no_configmap() -> None:
    hosts = {k: v for k, v in example_hosts().items() if k != "gpu-nvidia-01"}
    assert nvidia_device_plugin_configmap(inventory(hosts), "kube-system") is None


def test_intel_groups_by_shared_dev_num() -> None:
    hosts = example_hosts()
    hosts["media-02"] = {"homelab_ai_gpus": [{"vendor": "intel", "memory": "8Gi"}]}
    hosts["media-03"] = {"homelab_ai_gpus": [{"vendor": "intel", "memory": "8Gi", "sharing": {"replicas": 2}}]}
    assert intel_plugin_groups(inventory(hosts)) == [
        {"name": "intel-gpu-plugin-shared-1", "shared_dev_num": 1, "node_selector": {"homelab.ai/gpu.intel.shared-dev-num": "1"}, "nodes": ["media-02"]},
        {
            "name": "intel-gpu-plugin-shared-2",
            "shared_dev_num": 2,
            "node_selector": {"homelab.ai/gpu.intel.shared-dev-num": "2"},
            "nodes": ["media-01", "media-03"],
        },
    ]


def test_node_level_sharing_knob() -> None:
    hosts = {
        "gpu-01": {
            "homelab_ai_gpu_sharing": {"replicas": 3, "rename_by_default": True},
            "homelab_ai_gpus": [
                {"vendor": "nvidia", "memory": "24Gi"},
                {"vendor": "intel", "memory": "4Gi"},
                {"vendor": "intel", "memory": "4Gi", "sharing": "exclusive"},
            ],
        }
    }
    with pytest.raises(InputError) as caught:  # the two Intel GPUs now share differently
        inventory(hosts)
    assert "shared differently" in str(caught.value)
    del hosts["gpu-01"]["homelab_ai_gpus"][2]
    gpus = inventory(hosts)["nodes"][0]["gpus"]
    assert [(g["vendor"], g["replicas"], g["rename_by_default"]) for g in gpus] == [("nvidia", 3, True), ("intel", 3, False)]


def test_node_level_sharing_refused_for_amd() -> None:
    with pytest.raises(InputError) as caught:
        inventory({"strix": {"homelab_ai_gpu_sharing": {"replicas": 2}, "homelab_ai_gpus": [{"vendor": "amd", "memory": "96Gi", "apu": True}]}})
    [problem] = caught.value.problems
    assert problem.where == "strix: homelab_ai_gpu_sharing (amd).replicas"
    assert "no time-slicing" in problem.message


# --- declared and detected ----------------------------------------------------------------------------------------------


def facts(*gpus, device_gids=(44, 110)):
    return {"gpus": list(gpus), "device_gids": list(device_gids)}


def test_compare_agreeing() -> None:
    declared = [{"vendor": "nvidia", "model": "RTX 4000 SFF", "memory": 20 * GIB, "count": 1, "apu": False}]
    problems, warnings, corrected = compare_gpus(
        "n", declared, facts({"vendor": "nvidia", "model": "NVIDIA RTX 4000 SFF Ada Generation", "memory": 20475 * 2**20, "count": 1, "apu": False})
    )
    assert problems == [] and warnings == [] and corrected == {}  # 20 GiB declared, 20475 MiB reported: within tolerance


def test_compare_missing_gpu_is_a_problem() -> None:
    declared = [{"vendor": "nvidia", "model": "x", "memory": 24 * GIB, "count": 2, "apu": False}]
    problems, _, _ = compare_gpus("n", declared, facts({"vendor": "nvidia", "model": "RTX", "memory": 24 * GIB, "count": 1, "apu": False}))
    [problem] = problems
    assert problem.where == "n: homelab_ai_gpus"
    assert "declares 2 nvidia GPU(s), but the node has 1 (1x RTX)" in problem.message


def test_compare_more_memory_declared_than_found_lets_the_node_win() -> None:
    # the example's RTX 4000 SFF Ada: 24 GB in the write-up, 20 GB on the card
    declared = [{"vendor": "nvidia", "model": "RTX 4000 SFF", "memory": 24 * GIB, "count": 1, "apu": False}]
    reported = {"vendor": "nvidia", "model": "NVIDIA RTX 4000 SFF Ada Generation", "memory": 20475 * 2**20, "count": 1, "apu": False}
    problems, warnings, corrected = compare_gpus("n", declared, facts(reported))
    assert problems == [] and corrected == {"nvidia": 20475 * 2**20}
    [warning] = warnings
    assert "declares 24.0 GiB per GPU, but the node reports 20.0 GiB; the VRAM plan uses what the node reports" in warning


def test_the_inventory_plans_with_the_memory_the_node_reports() -> None:
    reported = {"vendor": "nvidia", "model": "NVIDIA RTX 4000 SFF Ada Generation", "memory": 20 * GIB, "count": 1, "apu": False}
    hosts = {"gpu-nvidia-01": {"homelab_ai_gpus": [{"vendor": "nvidia", "model": "RTX 4000 SFF", "memory": "24Gi"}], "homelab_ai_gpu_facts": facts(reported)}}
    inventory = build_inventory({}, hosts, cwd="/tmp")
    assert inventory.nodes[0].gpus[0].memory == 20 * GIB
    assert any("the VRAM plan uses what the node reports" in w for w in inventory.warnings)


def test_compare_warnings() -> None:
    declared = [{"vendor": "amd", "model": "Strix", "memory": 64 * GIB, "count": 1, "apu": False}]
    problems, warnings, _ = compare_gpus(
        "n",
        declared,
        facts(
            {"vendor": "amd", "model": "Strix", "memory": 96 * GIB, "count": 1, "apu": True},
            {"vendor": "intel", "model": "UHD", "memory": None, "count": 1, "apu": True},
        ),
    )
    assert problems == []
    assert len(warnings) == 3
    assert any("uses the declared value" in w for w in warnings)
    assert any("apu is declared false but detected true" in w for w in warnings)
    assert any("1 intel GPU(s)" in w for w in warnings)


def test_inventory_uses_detected_gpus_where_none_declared() -> None:
    detected = facts({"vendor": "amd", "model": "Strix Halo", "memory": 96 * GIB, "count": 1, "apu": True, "driver": "amdgpu", "gtt": 96 * GIB})
    inv = inventory({"strix": {"homelab_ai_gpu_facts": detected}})
    [gpu] = inv["nodes"][0]["gpus"]
    assert (gpu["vendor"], gpu["memory"], gpu["apu"], gpu["source"]) == ("amd", 96 * GIB, True, "detected")
    assert inv["nodes"][0]["device_gids"] == [44, 110]


def test_inventory_refuses_detected_gpu_without_memory() -> None:
    with pytest.raises(InputError) as caught:
        inventory({"media": {"homelab_ai_gpu_facts": facts({"vendor": "intel", "model": "UHD 770", "memory": None, "count": 1, "apu": True})}})
    [problem] = caught.value.problems
    assert problem.where == "media: homelab_ai_gpu_facts.gpus[0]"
    assert "declare the node's GPUs in homelab_ai_gpus" in problem.fix


def test_inventory_compares_declared_with_detected() -> None:
    hosts = example_hosts()
    hosts["gpu-amd-01"]["homelab_ai_gpu_facts"] = facts({"vendor": "amd", "model": "R9700", "memory": 32 * GIB, "count": 1, "apu": False})
    hosts["strix-01"]["homelab_ai_gpu_facts"] = facts()  # the driver did not load
    with pytest.raises(InputError) as caught:
        inventory(hosts)
    [problem] = caught.value.problems
    assert problem.where == "strix-01: homelab_ai_gpus" and "but the node has 0 (none)" in problem.message


def test_inventory_carries_warnings_and_overcommit() -> None:
    hosts = example_hosts()
    hosts["gpu-amd-01"]["homelab_ai_gpu_facts"] = facts(
        {"vendor": "amd", "model": "R9700", "memory": 32 * GIB, "count": 1, "apu": False},
        {"vendor": "intel", "model": "iGPU", "memory": None, "count": 1, "apu": True},
    )
    inv = inventory(hosts, homelab_ai_vram_overcommit=True)
    assert inv["vram_overcommit"] is True
    assert len(inv["warnings"]) == 1 and "gpu-amd-01" in inv["warnings"][0]
    assert inventory(hosts, homelab_ai_vram_overcommit="yes")["vram_overcommit"] is True  # as `-e name=yes` hands it over
    with pytest.raises(InputError):
        inventory(hosts, homelab_ai_vram_overcommit="sometimes")
