# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The LiteLLM proxy configuration, generated from the model catalog.

Every catalog model becomes one route under its catalog name: llama.cpp servers through LiteLLM's
OpenAI-compatible provider (``openai/<name>`` with the server's ``api_base``), Ollama models through
``ollama_chat/`` (chat) or ``ollama/`` (embedding and completion). The master key is read from the
environment, which the Deployment fills from a Secret, so the config map holds no secret.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from ._sources import parse_source

__all__ = ["llamacpp_service", "litellm_config"]


def llamacpp_service(model: Mapping[str, Any]) -> str:
    return f"llamacpp-{model['slug']}"


def litellm_config(
    models: Sequence[Mapping[str, Any]],
    namespace: str,
    llamacpp_port: int = 8080,
    ollama_url: Optional[str] = None,
    cold_start_timeout: int = 600,
    timeout: int = 300,
    master_key_env: str = "LITELLM_MASTER_KEY",
) -> Dict[str, Any]:
    model_list: List[Dict[str, Any]] = []
    for model in models:
        if model["backend"] == "llamacpp":
            host = f"{llamacpp_service(model)}.{namespace}.svc.cluster.local"
            params: Dict[str, Any] = {
                # llama-server answers to any model name; --alias makes /v1/models show the catalog name
                "model": f"openai/{model['name']}",
                "api_base": f"http://{host}:{llamacpp_port}/v1",
                "api_key": "none",
            }
        elif model["backend"] == "ollama":
            if not ollama_url:
                raise ValueError(f"model {model['name']} uses Ollama, but Ollama is not enabled (ollama_enabled)")
            provider = "ollama_chat" if model["mode"] == "chat" else "ollama"
            params = {"model": f"{provider}/{parse_source(model['source']).ollama_name}", "api_base": ollama_url}
        else:
            raise ValueError(f"model {model['name']}: unknown backend {model['backend']!r}")
        # a server scaled to zero loads the model first: give that request time
        params["timeout"] = cold_start_timeout if model.get("scale_to_zero") else timeout
        model_list.append({"model_name": model["name"], "litellm_params": params, "model_info": {"mode": model["mode"]}})
    return {
        "model_list": model_list,
        "litellm_settings": {"drop_params": True},
        "general_settings": {"master_key": f"os.environ/{master_key_env}"},
    }
