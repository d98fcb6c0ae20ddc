# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The LiteLLM proxy configuration, made from the routes the inference components register.

The llama.cpp and Ollama roles each register a route per catalog model they serve: llama.cpp servers through
LiteLLM's OpenAI-compatible provider (``openai/<name>`` with the server's Service as ``api_base``), Ollama models
through ``ollama_chat/`` (chat) or ``ollama/`` (embedding, completion). LiteLLM thus routes exactly to what is
deployed. The master key is read from the environment, which the Deployment fills from a Secret, so the
config map holds no secret.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

from ._sources import parse_source

__all__ = ["litellm_config", "llamacpp_routes", "llamacpp_service", "ollama_routes"]


def llamacpp_service(model: Mapping[str, Any]) -> str:
    return f"llamacpp-{model['slug']}"


def llamacpp_routes(models: Sequence[Mapping[str, Any]], namespace: str, port: int = 8080) -> List[Dict[str, Any]]:
    return [
        {
            "model": model["name"],
            # llama-server answers under --alias, the catalog name
            "provider_model": f"openai/{model['name']}",
            "api_base": f"http://{llamacpp_service(model)}.{namespace}.svc.cluster.local:{port}/v1",
            "mode": model["mode"],
            "cold_start": bool(model.get("scale_to_zero")),
        }
        for model in models
        if model["backend"] == "llamacpp"
    ]


def ollama_routes(models: Sequence[Mapping[str, Any]], url: str) -> List[Dict[str, Any]]:
    return [
        {
            "model": model["name"],
            "provider_model": f"{'ollama_chat' if model['mode'] == 'chat' else 'ollama'}/{parse_source(model['source']).ollama_name}",
            "api_base": url,
            "mode": model["mode"],
            "cold_start": False,
        }
        for model in models
        if model["backend"] == "ollama"
    ]


def litellm_config(
    routes: Sequence[Mapping[str, Any]],
    timeout: int = 300,
    cold_start_timeout: int = 600,
    master_key_env: str = "LITELLM_MASTER_KEY",
) -> Dict[str, Any]:
    names = [route["model"] for route in routes]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"models routed twice: {', '.join(repeated)}")
    model_list = []
    for route in routes:
        params: Dict[str, Any] = {"model": route["provider_model"], "api_base": route["api_base"]}
        if route["provider_model"].startswith("openai/"):
            params["api_key"] = "none"  # llama-server wants no key, the OpenAI client wants one
            if route["mode"] == "embedding":
                # a client that sends no encoding_format gets LiteLLM's null forwarded, which llama-server refuses
                # (500 "type must be string, but is null"); a client's own choice still wins
                params["encoding_format"] = "float"
        # a server scaled to zero loads its model first: give that request time
        params["timeout"] = cold_start_timeout if route.get("cold_start") else timeout
        model_list.append({"model_name": route["model"], "litellm_params": params, "model_info": {"mode": route["mode"]}})
    return {
        "model_list": model_list,
        "litellm_settings": {"drop_params": True},
        "general_settings": {"master_key": f"os.environ/{master_key_env}"},
    }
