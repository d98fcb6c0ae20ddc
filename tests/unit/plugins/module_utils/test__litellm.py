from __future__ import annotations

import pytest

from ansible_collections.homelab.ai.plugins.module_utils._inventory import build_inventory
from ansible_collections.homelab.ai.plugins.module_utils._litellm import litellm_config, llamacpp_routes, ollama_routes
from tests.support.example import example_inventory


def routes():
    shared, hosts = example_inventory()
    models = build_inventory(shared, hosts).to_dict()["models"]
    return llamacpp_routes(models, "ai", 8080) + ollama_routes(models, "http://ollama.ai.svc.cluster.local:11434")


def test_every_catalog_model_gets_a_route_to_its_backend():
    config = litellm_config(routes(), timeout=300, cold_start_timeout=600)
    by_name = {entry["model_name"]: entry for entry in config["model_list"]}
    assert list(by_name) == ["qwen-embed", "qwen3-30b-a3b", "llama-3.3-70b", "llama3.2", "qwen2.5-coder"]
    assert by_name["qwen-embed"]["litellm_params"] == {
        "model": "openai/qwen-embed",
        "api_base": "http://llamacpp-qwen-embed.ai.svc.cluster.local:8080/v1",
        "api_key": "none",
        "encoding_format": "float",  # LiteLLM would send null, which llama-server refuses
        "timeout": 300,
    }
    assert by_name["qwen-embed"]["model_info"] == {"mode": "embedding"}
    assert "encoding_format" not in by_name["qwen3-30b-a3b"]["litellm_params"]
    assert by_name["llama-3.3-70b"]["litellm_params"]["timeout"] == 600  # scales to zero: cold start
    assert by_name["llama3.2"]["litellm_params"] == {"model": "ollama_chat/llama3.2:3b", "api_base": "http://ollama.ai.svc.cluster.local:11434", "timeout": 300}
    assert config["general_settings"] == {"master_key": "os.environ/LITELLM_MASTER_KEY"}


def test_ollama_embedding_models_use_the_plain_provider():
    (route,) = ollama_routes([{"name": "e", "backend": "ollama", "mode": "embedding", "source": "ollama://nomic-embed-text"}], "http://o:11434")
    assert route["provider_model"] == "ollama/nomic-embed-text:latest"


def test_a_model_routed_twice_is_refused():
    with pytest.raises(ValueError, match="models routed twice: qwen-embed"):
        litellm_config(routes() + routes()[:1])
