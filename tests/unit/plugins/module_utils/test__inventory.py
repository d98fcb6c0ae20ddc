from __future__ import annotations

import pytest

from ansible_collections.homelab.ai.plugins.module_utils._inventory import (
    InputError,
    build_inventory,
    check_variable_names,
)
from tests.support.example import example_inventory


def problems(shared, hosts):
    with pytest.raises(InputError) as info:
        build_inventory(shared, hosts, cwd="/tmp")
    return [str(p) for p in info.value.problems]


def test_the_example_inventory_is_valid_and_normalised():
    shared, hosts = example_inventory()
    inventory = build_inventory(shared, hosts, cwd="/srv")
    assert inventory.tree_dir == "/srv/build/homelab"
    assert inventory.vendors == ["amd", "intel", "nvidia"]
    nvidia = inventory.node("gpu-nvidia-01")
    assert nvidia is not None and nvidia.gpus[0].replicas == 4 and nvidia.gpus[0].memory == 24 * 2**30
    embed = next(m for m in inventory.models if m.name == "qwen-embed")
    assert (embed.backend, embed.mode, embed.node, embed.gpu_vendor, embed.gpu_layers) == ("llamacpp", "embedding", "gpu-amd-01", "amd", 999)
    assert embed.source_info["repo"] == "Qwen/Qwen3-Embedding-0.6B-GGUF"
    ollama = next(m for m in inventory.models if m.name == "llama3.2")
    assert ollama.node is None and ollama.context == 4096


def test_every_problem_is_reported_at_once():
    shared, hosts = example_inventory()
    shared["homelab_ai_mode"] = "deploy"
    shared["homelab_ai_models"][0]["context"] = "big"
    hosts["media-01"]["homelab_ai_gpus"][0]["vendor"] = "intl"
    found = problems(shared, hosts)
    assert len(found) == 3
    assert any(p.startswith("homelab_ai_mode: 'deploy' is not one of render, apply") for p in found)


def test_misspelled_model_key_is_named_with_a_suggestion():
    shared, hosts = example_inventory()
    shared["homelab_ai_models"][3]["bakend"] = shared["homelab_ai_models"][3].pop("backend")
    found = problems(shared, hosts)
    assert "homelab_ai_models[3] (llama3.2).bakend: is not a known key (did you mean backend?)" in found[0]
    assert "homelab_ai_models[3] (llama3.2).backend: is missing" in found[1]


def test_unknown_gpu_vendor():
    shared, hosts = example_inventory()
    hosts["gpu-amd-01"]["homelab_ai_gpus"][0]["vendor"] = "amdgpu"
    assert problems(shared, hosts) == [
        "gpu-amd-01: homelab_ai_gpus[0].vendor: 'amdgpu' is not a known GPU vendor (did you mean amd?). Fix: use one of nvidia, amd, intel"
    ]


def test_model_with_unknown_backend_or_node():
    shared, hosts = example_inventory()
    shared["homelab_ai_models"][0]["backend"] = "vllm"
    shared["homelab_ai_models"][1]["node"] = "strix-03"
    found = problems(shared, hosts)
    assert found[0].startswith("homelab_ai_models[0] (qwen-embed).backend: 'vllm' is not a backend. Fix: use one of llamacpp, ollama")
    assert found[1].startswith("homelab_ai_models[1] (qwen3-30b-a3b).node: 'strix-03' is not a node of the inventory (did you mean strix-0")
    assert "Fix: use one of gpu-nvidia-01, gpu-amd-01, strix-01, strix-02, media-01" in found[1]


def test_two_models_with_one_name():
    shared, hosts = example_inventory()
    shared["homelab_ai_models"].append(dict(shared["homelab_ai_models"][0]))
    (found,) = problems(shared, hosts)
    assert found.startswith("homelab_ai_models: the name 'qwen-embed' is used 2 times (homelab_ai_models[0], homelab_ai_models[5])")
    assert "must be unique" in found


def test_names_that_collide_as_object_names():
    shared, hosts = example_inventory()
    shared["homelab_ai_models"].append({**shared["homelab_ai_models"][0], "name": "qwen_embed"})
    (found,) = problems(shared, hosts)
    assert "object name llamacpp-qwen-embed is used 2 times" in found


def test_size_that_is_not_a_quantity():
    shared, hosts = example_inventory()
    shared["homelab_ai_models"][0]["size"] = "640MB"
    (found,) = problems(shared, hosts)
    assert found.startswith("homelab_ai_models[0] (qwen-embed).size: '640MB' is not a Kubernetes quantity (write 640Mi for binary units)")


@pytest.mark.parametrize("replicas", [0, -2])
def test_sharing_replicas_below_one(replicas):
    shared, hosts = example_inventory()
    hosts["gpu-nvidia-01"]["homelab_ai_gpus"][0]["sharing"]["replicas"] = replicas
    (found,) = problems(shared, hosts)
    assert found == f"gpu-nvidia-01: homelab_ai_gpus[0].sharing.replicas: {replicas} is not between 1 and 64. Fix: write a whole number from 1 to 64"


def test_amd_cannot_time_slice():
    shared, hosts = example_inventory()
    hosts["gpu-amd-01"]["homelab_ai_gpus"][0]["sharing"] = {"replicas": 2}
    (found,) = problems(shared, hosts)
    assert "AMD's GPU device plugin has no time-slicing" in found


def test_nvidia_only_sharing_options_are_refused_elsewhere():
    shared, hosts = example_inventory()
    hosts["media-01"]["homelab_ai_gpus"][0]["sharing"]["rename_by_default"] = True
    (found,) = problems(shared, hosts)
    assert found.startswith("media-01: homelab_ai_gpus[0].sharing.rename_by_default: is an NVIDIA time-slicing option")


def test_gpus_of_a_node_share_alike():
    shared, hosts = example_inventory()
    hosts["gpu-nvidia-01"]["homelab_ai_gpus"].append({"vendor": "nvidia", "memory": "12Gi"})
    (found,) = problems(shared, hosts)
    assert "shares all GPUs of a node alike" in found


def test_source_must_match_backend():
    shared, hosts = example_inventory()
    shared["homelab_ai_models"][3]["source"] = "hf://org/repo/file.gguf"
    shared["homelab_ai_models"][0]["source"] = "ollama://nomic-embed-text"
    found = problems(shared, hosts)
    assert "is an Ollama model" in found[0] and "is not an Ollama model" in found[1]


def test_llamacpp_model_needs_a_node_with_a_gpu_unless_on_the_cpu():
    shared, hosts = example_inventory()
    hosts["gpu-amd-01"] = {}
    (found,) = problems(shared, hosts)
    assert "has no GPU declared" in found
    shared["homelab_ai_models"][0]["gpu_layers"] = 0
    assert build_inventory(shared, hosts).models[0].gpu_vendor is None


def test_check_variable_names_suggests_the_declared_name():
    (problem,) = check_variable_names(["homelab_ai_modles", "homelab_ai_models", "other_var"], ["homelab_ai_models"], ["homelab_ai"])
    assert str(problem).startswith("homelab_ai_modles: is not a variable of homelab.ai (did you mean homelab_ai_models?)")


@pytest.mark.parametrize(
    ("name", "meant"),
    [("longhorn_enable", "longhorn_enabled"), ("stable_difusion_enabled", "stable_diffusion_enabled"), ("open_webui_enabeld", "open_webui_enabled")],
)
def test_look_alike_variables_are_errors_unless_allowed(name, meant):
    known = ["longhorn_enabled", "stable_diffusion_enabled", "open_webui_enabled"]
    prefixes = ["homelab_ai", "longhorn", "stable_diffusion", "open_webui"]
    (problem,) = check_variable_names([name, "ansible_host", "my_backup_enabled", "inventory_hostname"], known, prefixes)
    assert str(problem) == (
        f"{name}: is not a variable of homelab.ai (did you mean {meant}?). Fix: correct the name (the shared and role variables"
        " are in the roles' meta/argument_specs.yml, a node's homelab_ai_gpus, homelab_ai_gpu_sharing, homelab_ai_node_name and"
        " homelab_ai_node_labels under Nodes in the README's inventory section); if it is a variable of your own, list it in"
        " homelab_ai_allowed_variables"
    )
    assert check_variable_names([name], known, prefixes, allowed=[name]) == []


def test_flux_reads_the_tree_where_the_inventory_says():
    shared, hosts = example_inventory()
    inventory = build_inventory(shared, hosts, cwd="/srv")
    assert (inventory.flux.path, inventory.flux.source, inventory.prune_data) == ("./homelab", "flux-system", False)
    shared.update(homelab_ai_flux_path="clusters/homelab/", homelab_ai_flux_source="homelab-repo", homelab_ai_prune_data="yes")
    inventory = build_inventory(shared, hosts, cwd="/srv")
    assert (inventory.flux.path, inventory.flux.source, inventory.prune_data) == ("./clusters/homelab", "homelab-repo", True)


@pytest.mark.parametrize("path", ["../elsewhere", "./a/../../b", "a b", "/", "a\n  b: c"])
def test_a_flux_path_outside_the_repository_is_refused(path):
    shared, hosts = example_inventory()
    shared["homelab_ai_flux_path"] = path
    (problem,) = problems(shared, hosts)
    assert problem.startswith(f"homelab_ai_flux_path: {path!r} is not a path inside a Git repository")


def test_a_model_that_scales_to_zero_needs_a_service_name_kubeelasti_can_extend():
    shared, hosts = example_inventory()
    shared["homelab_ai_models"][1]["name"] = "qwen3-30b-a3b-instruct-2507-thinking-q4"  # llamacpp-<it>: 48 characters
    (problem,) = problems(shared, hosts)
    assert problem.startswith("homelab_ai_models[1] (qwen3-30b-a3b-instruct-2507-thinking-q4).name: its Service llamacpp-qwen3-30b-a3b")
    assert "at most 32 letters and digits" in problem
    shared["homelab_ai_models"][1]["scale_to_zero"] = False  # no KubeElasti, 63 is the limit
    build_inventory(shared, hosts, cwd="/tmp")


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("storage", "a label without a prefix is set as feature.node.kubernetes.io/storage"),
        ("node-role.kubernetes.io/gpu", "the node-role.kubernetes.io prefix belongs to Kubernetes"),
        ("kubernetes.io/arch", "the kubernetes.io prefix belongs to Kubernetes"),
    ],
)
def test_node_labels_that_node_feature_discovery_would_not_set_are_refused(key, why):
    shared, hosts = example_inventory()
    hosts["media-01"]["homelab_ai_node_labels"] = {key: "x", "feature.node.kubernetes.io/custom": "y", "homelab.ai/rack": "r1"}
    (problem,) = problems(shared, hosts)
    fix = "Fix: use a prefix of your own, such as homelab.ai/ or example.com/"
    assert problem == f"media-01: homelab_ai_node_labels.{key}: {why}: node-feature-discovery, which puts the labels on the nodes, would not set it. {fix}"
