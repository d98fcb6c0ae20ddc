# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The LiteLLM proxy configuration: a route per catalog model to the server of its backend.

The routes come from the catalog (``homelab_ai_inventory.models``) and the wiring (``homelab_ai_inventory.wiring``,
what each backend offers): llama.cpp servers through LiteLLM's OpenAI-compatible provider (``openai/<name>`` with the
model's own Service as ``api_base``), Ollama models through ``ollama_chat/`` (chat) or ``ollama/`` (embedding,
completion). A backend that is off gets no routes (the preflight refuses its models). The master key is read from the
environment, which the Deployment fills from a Secret, so the config map holds no secret.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

from ._sources import parse_source

__all__ = ["litellm_config", "routes"]


def routes(inventory: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """A route per catalog model whose backend is on, in catalog order."""
    wiring = inventory["wiring"]
    found: List[Dict[str, Any]] = []
    for model in inventory["models"]:
        backend = wiring.get(model["backend"]) or {}
        if not backend.get("enabled") or not backend.get("service"):
            continue
        if model["backend"] == "llamacpp":
            # llama-server answers under --alias, the catalog name
            provider, api_base = f"openai/{model['name']}", backend["service"]["models"][model["name"]]["url"]
        else:
            provider = f"{'ollama_chat' if model['mode'] == 'chat' else 'ollama'}/{parse_source(model['source']).ollama_name}"
            api_base = backend["service"]["url"]
        found.append(
            {"model": model["name"], "provider_model": provider, "api_base": api_base, "mode": model["mode"], "cold_start": bool(model.get("scale_to_zero"))}
        )
    return found


def litellm_config(
    inventory: Mapping[str, Any],
    timeout: int = 300,
    cold_start_timeout: int = 600,
    master_key_env: str = "LITELLM_MASTER_KEY",
) -> Dict[str, Any]:
    """LiteLLM's config.yaml for the catalog: a route per model, timeouts, the master key from the environment."""
    model_list = []
    for route in routes(inventory):
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
        # streamed answers end with their token counts whether or not the client asks (LiteLLM 1.104.2 strips
        # them otherwise): Open WebUI asks only for models whose capabilities say so, and counts nothing without them
        "general_settings": {"master_key": f"os.environ/{master_key_env}", "always_include_stream_usage": True},
    }
