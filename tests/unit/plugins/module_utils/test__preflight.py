from __future__ import annotations

import pytest

from ansible_collections.homelab.ai.plugins.module_utils._preflight import (
    load_role_specs,
    quantity_problems,
    run_preflight,
    spec_problems,
)
from ansible_collections.homelab.ai.plugins.module_utils._problems import InputError
from tests.support.example import ROOT, example_inventory

SPECS = load_role_specs(str(ROOT / "roles"))


def test_every_public_role_has_an_argument_spec():
    assert {"preflight", "gpu_plugins", "longhorn", "llamacpp", "ollama", "qdrant", "litellm", "open_webui", "stable_diffusion", "deliver"} <= set(SPECS)


def test_the_example_passes_and_takes_recipients_from_the_key_file(age_key):
    shared, hosts = example_inventory()
    inventory, warnings = run_preflight({**shared, "homelab_ai_sops_age_key_file": age_key}, hosts, SPECS, cwd="/x")
    assert inventory["sops"]["age_recipients"] == ["age1cx5crtrxtzwq8j383v7u3zkdmspc3my6yayylrd2t5zslkurs33svafqlw"]
    assert warnings == []


def test_missing_age_key_says_how_to_make_one(tmp_path):
    shared, hosts = example_inventory()
    with pytest.raises(InputError) as info:
        run_preflight({**shared, "homelab_ai_sops_age_key_file": str(tmp_path / "none.txt")}, hosts, SPECS)
    (problem,) = info.value.problems
    assert "no age key at" in str(problem) and "age-keygen -o" in str(problem)


def test_misspelled_and_look_alike_variables_are_errors(age_key):
    shared, hosts = example_inventory()
    hosts["media-01"]["homelab_ai_gpu"] = []  # homelab_ai_gpus
    variables = {**shared, "homelab_ai_sops_age_key_file": age_key, "homelab_ai_modles": [], "ollama_kepe_alive": "1m"}
    with pytest.raises(InputError) as info:
        run_preflight(variables, hosts, SPECS, names=["stable_difusion_enabled", "ansible_host", "backup_schedule"])
    assert [p.where for p in info.value.problems] == ["homelab_ai_modles", "ollama_kepe_alive", "stable_difusion_enabled", "media-01: homelab_ai_gpu"]
    assert "(did you mean ollama_keep_alive?)" in str(info.value.problems[1])
    allowed = ["homelab_ai_modles", "ollama_kepe_alive", "stable_difusion_enabled", "homelab_ai_gpu"]
    run_preflight({**variables, "homelab_ai_allowed_variables": allowed}, hosts, SPECS, names=["stable_difusion_enabled"])


def test_role_variables_are_checked_against_their_argument_spec():
    problems = spec_problems("ollama", SPECS["ollama"], {"ollama_service_type": "Ingress", "ollama_port": "port"})
    text = " ".join(str(p) for p in problems)
    assert "ollama_service_type" in text and "ClusterIP, NodePort, LoadBalancer" in text
    assert "ollama_port" in text


def test_quantities_by_name_and_in_resources():
    problems = quantity_problems(
        {"ollama_storage_size": "100GB", "ollama_vram": "", "qdrant_resources": {"requests": {"cpu": "lots", "memory": "1Gi"}, "limits": {"nvidia.com/gpu": 1}}}
    )
    assert [p.where for p in problems] == ["ollama_storage_size", "qdrant_resources.requests.cpu"]


def test_scale_to_zero_without_a_prometheus_to_ask_is_refused(age_key):
    shared, hosts = example_inventory()
    variables = {**shared, "homelab_ai_sops_age_key_file": age_key, "llamacpp_prometheus_install": False}
    with pytest.raises(InputError) as info:
        run_preflight(variables, hosts, SPECS)
    (problem,) = info.value.problems
    assert str(problem).startswith("llamacpp_prometheus_url: is empty and llamacpp_prometheus_install is false, but qwen3-30b-a3b, llama-3.3-70b scale to zero")
    run_preflight({**variables, "llamacpp_prometheus_url": "http://prometheus.monitoring.svc:9090"}, hosts, SPECS)


def test_verifying_declared_gpus_is_a_bool_of_the_controller_or_of_one_node(age_key):
    shared, hosts = example_inventory()
    hosts["gpu-nvidia-01"]["homelab_ai_verify_gpus"] = True  # playbooks/gpu_facts.yml reads it per node
    run_preflight({**shared, "homelab_ai_sops_age_key_file": age_key, "homelab_ai_verify_gpus": "yes"}, hosts, SPECS)
    with pytest.raises(InputError) as info:
        run_preflight({**shared, "homelab_ai_sops_age_key_file": age_key, "homelab_ai_verify_gpus": "sometimes"}, hosts, SPECS)
    (problem,) = info.value.problems
    assert "argument 'homelab_ai_verify_gpus' is of type str and we were unable to convert to bool" in str(problem)


def _problems_of(age_key, hosts=None, **variables):
    shared, example_hosts = example_inventory()
    try:
        run_preflight({**shared, "homelab_ai_sops_age_key_file": age_key, **variables}, hosts or example_hosts, SPECS)
    except InputError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_llamacpp_images_given_in_part_needs_only_the_vendors_the_models_run_on(age_key):
    assert _problems_of(age_key, llamacpp_images={"amd": "ghcr.io/ggml-org/llama.cpp:server-vulkan-b11312"}) == []
    (missing,) = _problems_of(age_key, llamacpp_images={"nvidia": "ghcr.io/ggml-org/llama.cpp:server-cuda-b11312"})
    assert missing.startswith("llamacpp_images: has no image for amd (qwen-embed, qwen3-30b-a3b, llama-3.3-70b on amd)")
    (unknown,) = _problems_of(age_key, llamacpp_images={"amd": "a:1", "rocm": "b:1"})
    assert unknown.startswith("llamacpp_images.rocm: is not a vendor")


def test_ollama_on_a_node_without_a_gpu_is_refused_unless_asked_for(age_key):
    _, hosts = example_inventory()
    hosts["media-01"]["homelab_ai_gpus"] = []
    (refused,) = _problems_of(age_key, hosts, ollama_node="media-01")
    assert "'media-01' declares no GPU" in refused and "ollama_gpu: false" in refused
    assert _problems_of(age_key, hosts, ollama_node="media-01", ollama_gpu=False) == []


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"ollama_storage_size": 100}, "ollama_storage_size: 100 has no unit, so it is 100 bytes. Fix: write the unit: 100Gi (or 100Mi)"),
        ({"qdrant_resources": {"requests": {"memory": "512"}}}, "qdrant_resources.requests.memory: '512' has no unit, so it is 512 bytes"),
        ({"ollama_vram": "1Ki"}, "ollama_vram: '1Ki' is 1024 bytes, less than 1Mi"),
    ],
)
def test_a_size_without_its_unit_is_refused_with_the_unit(age_key, variables, message):
    (problem,) = _problems_of(age_key, **variables)
    assert problem.startswith(message)


def test_a_cpu_request_needs_no_unit():
    assert quantity_problems({"qdrant_resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}) == []
