from __future__ import annotations

from ansible_collections.homelab.ai.plugins.module_utils._litellm import litellm_config, routes
from tests.support.example import example_inventory
from tests.support.example import example_preflight as inventory


def test_every_catalog_model_gets_a_route_to_its_backend(age_key):
    config = litellm_config(inventory(age_key), timeout=300, cold_start_timeout=600)
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
    assert config["general_settings"] == {"master_key": "os.environ/LITELLM_MASTER_KEY", "always_include_stream_usage": True}


def test_the_routes_follow_the_backends_declared_services(age_key):
    found = {r["model"]: r["api_base"] for r in routes(inventory(age_key, llamacpp_port=9000, ollama_port=11500, homelab_ai_namespace="llm"))}
    assert found["qwen-embed"] == "http://llamacpp-qwen-embed.llm.svc.cluster.local:9000/v1"
    assert found["llama3.2"] == "http://ollama.llm.svc.cluster.local:11500"


def test_ollama_embedding_models_use_the_plain_provider(age_key):
    shared, _ = example_inventory()
    catalog = [*shared["homelab_ai_models"], {"name": "e", "backend": "ollama", "mode": "embedding", "source": "ollama://nomic-embed-text"}]
    (route,) = [r for r in routes(inventory(age_key, homelab_ai_models=catalog)) if r["model"] == "e"]
    assert route["provider_model"] == "ollama/nomic-embed-text:latest"
