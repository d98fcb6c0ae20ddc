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
