# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Filters of homelab.ai: thin wrappers over module_utils, each documented in plugins/filter/<name>.yml."""

from __future__ import annotations

from typing import Any, Callable, Dict

from ansible.errors import AnsibleFilterError

from ansible_collections.homelab.ai.plugins.module_utils._comfyui import client_settings, server_settings
from ansible_collections.homelab.ai.plugins.module_utils._components import (
    delivery_plan,
    delivery_secrets,
    describe_component,
    endpoints,
    gpu_workloads_of,
)
from ansible_collections.homelab.ai.plugins.module_utils._exposure import ingress_object, service_fields
from ansible_collections.homelab.ai.plugins.module_utils._gpus import intel_plugin_groups, node_feature_rules, nvidia_device_plugin_configmap
from ansible_collections.homelab.ai.plugins.module_utils._litellm import litellm_config
from ansible_collections.homelab.ai.plugins.module_utils._llama_server import embedding_args
from ansible_collections.homelab.ai.plugins.module_utils._placement import gpu_pod, node_gpu
from ansible_collections.homelab.ai.plugins.module_utils._problems import InputError
from ansible_collections.homelab.ai.plugins.module_utils._pull_job import cache_size, code_configmap, pull_job, pull_wait_container
from ansible_collections.homelab.ai.plugins.module_utils._quantity import QuantityError, to_bytes
from ansible_collections.homelab.ai.plugins.module_utils._scale_to_zero import elasti_trigger
from ansible_collections.homelab.ai.plugins.module_utils._yaml import dump


def _wrap(func: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (InputError, QuantityError, ValueError, KeyError) as exc:
            raise AnsibleFilterError(f"homelab.ai.{func.__name__}: {exc}") from exc

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {
            "delivery_plan": _wrap(delivery_plan),
            "component": _wrap(describe_component),
            "delivery_secrets": _wrap(delivery_secrets),
            "endpoints": _wrap(endpoints),
            "gpu_workloads_of": _wrap(gpu_workloads_of),
            "litellm_config": _wrap(litellm_config),
            "cache_size": _wrap(cache_size),
            "node_gpu": _wrap(node_gpu),
            "gpu_pod": _wrap(gpu_pod),
            "node_feature_rules": _wrap(node_feature_rules),
            "nvidia_device_plugin_configmap": _wrap(nvidia_device_plugin_configmap),
            "intel_plugin_groups": _wrap(intel_plugin_groups),
            "to_bytes": _wrap(to_bytes),
            "to_nice_k8s_yaml": _wrap(dump),
            "elasti_trigger": _wrap(elasti_trigger),
            "pull_job": _wrap(pull_job),
            "pull_code": _wrap(code_configmap),
            "pull_wait_container": _wrap(pull_wait_container),
            "embedding_args": _wrap(embedding_args),
            "exposed_service": _wrap(service_fields),
            "exposed_ingress": _wrap(ingress_object),
            "comfyui_server": _wrap(server_settings),
            "comfyui_client": _wrap(client_settings),
        }
