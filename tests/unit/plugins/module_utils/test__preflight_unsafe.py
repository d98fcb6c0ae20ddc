"""Unsafe and malformed inventories: every one is refused by the preflight, with a problem that names the input.

The preflight runs before any role renders and before anything is written (tests/integration/test_bad_inputs.py runs a
sample through site.yml and checks that nothing is written). Each case changes the example inventory one way; some
are generated from the argument specs (a newline and a key fed into every string variable).
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Tuple

import pytest
import yaml

from ansible_collections.homelab.ai.plugins.module_utils._preflight import load_role_specs, run_preflight
from ansible_collections.homelab.ai.plugins.module_utils._problems import InputError
from ansible_collections.homelab.ai.plugins.module_utils._wiring import load_declarations
from tests.support.example import ROOT, example_inventory

ROLES = str(ROOT / "roles")
SPECS = load_role_specs(ROLES)
DECLARATIONS = load_declarations(ROLES)
Change = Callable[[Dict[str, Any], Dict[str, Dict[str, Any]]], None]


def shared(**values: Any) -> Change:
    return lambda variables, hosts: variables.update(values)


def model(index: int, **values: Any) -> Change:
    return lambda variables, hosts: variables["homelab_ai_models"][index].update(values)


def gpu(host: str, **values: Any) -> Change:
    return lambda variables, hosts: hosts[host]["homelab_ai_gpus"][0].update(values)


def node(host: str, **values: Any) -> Change:
    return lambda variables, hosts: hosts[host].update(values)


INJECTION = "x\n  injected: true"
# (change, the input the problem must name)
CASES: Dict[str, Tuple[Change, str]] = {
    # YAML injection and addresses
    "load balancer IP with an injected key": (shared(open_webui_load_balancer_ip="10.10.2.25\n  externalIPs: ['203.0.113.9']"), "open_webui_load_balancer_ip"),
    "load balancer IP out of range": (shared(open_webui_load_balancer_ip="999.1.1.1"), "open_webui_load_balancer_ip"),
    "load balancer IP with a last octet over 255": (shared(stable_diffusion_load_balancer_ip="10.10.2.325"), "stable_diffusion_load_balancer_ip"),
    "two Services on one address and port": (
        shared(stable_diffusion_load_balancer_ip="10.10.2.25"),
        "open_webui_load_balancer_ip and stable_diffusion_load_balancer_ip",
    ),
    "a LoadBalancer on Traefik's port under k3s's ServiceLB": (
        shared(homelab_ai_load_balancer="servicelb", open_webui_expose="load-balancer"),
        "open_webui_port",
    ),
    "two Ingresses that claim every host": (
        shared(homelab_ai_load_balancer="servicelb", stable_diffusion_expose="ingress"),
        "open_webui_ingress_host and stable_diffusion_ingress_host",
    ),
    "a node port outside the range": (shared(stable_diffusion_expose="node-port", stable_diffusion_node_port=8080), "stable_diffusion_node_port"),
    "Longhorn off and no other storage class": (shared(longhorn_enabled=False), "homelab_ai_storage_class"),
    "Longhorn off but a volume on its class": (
        shared(longhorn_enabled=False, homelab_ai_storage_class="local-path", open_webui_storage_class="longhorn"),
        "open_webui_storage_class",
    ),
    "a load balancer kind that does not exist": (shared(homelab_ai_load_balancer="metallb"), "homelab_ai_load_balancer"),
    "an exposure that does not exist": (shared(open_webui_expose="public"), "open_webui_expose"),
    "storage class with an injected volumeName": (shared(open_webui_storage_class="longhorn\n  volumeName: pvc-of-someone-else"), "open_webui_storage_class"),
    "storage class in upper case": (shared(qdrant_storage_class="Longhorn"), "qdrant_storage_class"),
    "PVC name with a slash": (shared(ollama_pvc_name="ollama/models"), "ollama_pvc_name"),
    "ingress host with a space and a semicolon": (shared(litellm_ingress_host="llm home;arpa"), "litellm_ingress_host"),
    "ingress host with a port": (shared(litellm_ingress_host="llm.home.arpa:443"), "litellm_ingress_host"),
    "ingress class with an injected key": (shared(litellm_ingress_class=INJECTION), "litellm_ingress_class"),
    "TLS secret name in upper case": (shared(litellm_ingress_tls_secret="LLM_TLS"), "litellm_ingress_tls_secret"),
    "namespace of a chart with an injected key": (shared(gpu_plugins_nfd_namespace=INJECTION), "gpu_plugins_nfd_namespace"),
    "shared namespace that is no DNS label": (shared(homelab_ai_namespace="AI Stack"), "homelab_ai_namespace"),
    "cluster name with a slash": (shared(homelab_ai_cluster_name="home/lab"), "homelab_ai_cluster_name"),
    # images and charts
    "image without a tag": (shared(ollama_image="docker.io/ollama/ollama"), "ollama_image"),
    "image at latest": (shared(qdrant_image="docker.io/qdrant/qdrant:latest"), "qdrant_image"),
    "image with an injected key": (shared(litellm_image="ghcr.io/berriai/litellm:1\n  command: [sh]"), "litellm_image"),
    "image with a space": (shared(open_webui_image="ghcr.io/open-webui/open-webui: v0.11.3"), "open_webui_image"),
    "llama.cpp image of one vendor broken": (
        shared(llamacpp_images={"nvidia": "bad image", "amd": "a:1", "intel": "b:1", "cpu": "c:1"}),
        "llamacpp_images.nvidia",
    ),
    "chart repository over plain http with credentials": (shared(longhorn_chart_repo="https://user:pw@charts.longhorn.io"), "longhorn_chart_repo"),
    "chart repository with a token in the query": (
        shared(gpu_plugins_nvidia_chart_repo="https://nvidia.github.io/k8s-device-plugin?token=abc"),
        "gpu_plugins_nvidia_chart_repo",
    ),
    "chart repository of another scheme": (shared(llamacpp_kubeelasti_chart_repo="ftp://tfy.jfrog.io/tfy-helm"), "llamacpp_kubeelasti_chart_repo"),
    "chart version that is not semver": (shared(longhorn_chart_version="latest"), "longhorn_chart_version"),
    # URLs and queries
    "Prometheus URL with credentials": (shared(llamacpp_prometheus_url="http://admin:admin@prometheus.monitoring.svc:9090"), "llamacpp_prometheus_url"),
    "Prometheus URL that is no URL": (shared(llamacpp_prometheus_url="prometheus:9090"), "llamacpp_prometheus_url"),
    "uptime filter that escapes its braces": (
        shared(llamacpp_prometheus_uptime_filter='container="x"} or vector(1) or up{a="b"'),
        "llamacpp_prometheus_uptime_filter",
    ),
    "uptime filter with braces": (shared(llamacpp_prometheus_uptime_filter='{container="prometheus"}'), "llamacpp_prometheus_uptime_filter"),
    # model sources
    "https source with credentials": (model(0, source="https://user:pass@models.example/f.gguf"), "homelab_ai_models[0] (qwen-embed).source"),
    "https source with a token in the query": (model(0, source="https://models.example/f.gguf?token=secret"), "homelab_ai_models[0] (qwen-embed).source"),
    "https source whose file is '..'": (model(0, source="https://host/models/.."), "homelab_ai_models[0] (qwen-embed).source"),
    "plain http source": (model(0, source="http://models.example/f.gguf"), "homelab_ai_models[0] (qwen-embed).source"),
    "hf revision that climbs": (
        model(1, source="hf://unsloth/Qwen3-30B-A3B-GGUF/Qwen3-30B-A3B-Q4_K_M.gguf@../../x"),
        "homelab_ai_models[1] (qwen3-30b-a3b).source",
    ),
    "hf file path that climbs": (model(1, source="hf://unsloth/Qwen3-30B-A3B-GGUF/../../etc/passwd"), "homelab_ai_models[1] (qwen3-30b-a3b).source"),
    "hf repo name with '--'": (model(1, source="hf://unsloth/Qwen3--x/f.gguf"), "homelab_ai_models[1] (qwen3-30b-a3b).source"),
    "hf file name with shell syntax": (model(1, source="hf://unsloth/Qwen3-30B-A3B-GGUF/$(id).gguf"), "homelab_ai_models[1] (qwen3-30b-a3b).source"),
    "ollama registry with shell syntax": (model(3, source="ollama://$(id)/library/llama3.2:3b"), "homelab_ai_models[3] (llama3.2).source"),
    "ollama model in upper case": (model(3, source="ollama://Llama3.2:3b"), "homelab_ai_models[3] (llama3.2).source"),
    "ollama tag with a slash": (model(3, source="ollama://llama3.2:3b/x"), "homelab_ai_models[3] (llama3.2).source"),
    # bounds
    "context of 10^20": (model(1, context=10**20), "homelab_ai_models[1] (qwen3-30b-a3b).context"),
    "parallel of 10^9": (model(1, parallel=10**9), "homelab_ai_models[1] (qwen3-30b-a3b).parallel"),
    "gpu_layers below zero": (model(1, gpu_layers=-1), "homelab_ai_models[1] (qwen3-30b-a3b).gpu_layers"),
    "model size of a petabyte": (model(1, size="1Pi"), "homelab_ai_models[1] (qwen3-30b-a3b).size"),
    "cache size of zero": (model(1, cache_size="0"), "homelab_ai_models[1] (qwen3-30b-a3b).cache_size"),
    "GPU memory of a petabyte": (gpu("gpu-amd-01", memory="1Pi"), "gpu-amd-01: homelab_ai_gpus[0].memory"),
    "GPU count of 1000": (gpu("gpu-amd-01", count=1000), "gpu-amd-01: homelab_ai_gpus[0].count"),
    "time-slicing into 10^6": (gpu("gpu-nvidia-01", sharing={"replicas": 10**6}), "gpu-nvidia-01: homelab_ai_gpus[0].sharing.replicas"),
    "port out of range": (shared(litellm_port=70000), "litellm_port"),
    "replicas of 10^6": (shared(litellm_replicas=10**6), "litellm_replicas"),
    "cooldown past the CRD's maximum": (shared(llamacpp_scale_to_zero_cooldown=10**9), "llamacpp_scale_to_zero_cooldown"),
    "apply timeout of a year": (shared(homelab_ai_apply_timeout=365 * 86400), "homelab_ai_apply_timeout"),
    "device GID below zero": (shared(llamacpp_device_gids=[44, -5]), "llamacpp_device_gids[1]"),
    "keep-alive that is no duration": (shared(ollama_keep_alive="forever"), "ollama_keep_alive"),
    "storage size that is no quantity": (shared(stable_diffusion_storage_size="150 GB"), "stable_diffusion_storage_size"),
    "resources that are no quantities": (
        shared(litellm_resources={"requests": {"cpu": "lots"}, "limits": {"memory": "2GB"}}),
        "litellm_resources.requests.cpu",
    ),
    # secrets, keys and names
    "master key with a line break": (shared(litellm_master_key="sk-abc\ndef"), "litellm_master_key"),
    "master key without sk-": (shared(litellm_master_key="abcdef0123456789"), "litellm_master_key"),
    "master key of the documentation's examples": (shared(litellm_master_key="sk-1234"), "litellm_master_key"),
    "password with a space": (shared(stable_diffusion_password="pass word"), "stable_diffusion_password"),
    "Hugging Face token with a line break": (shared(homelab_ai_hf_token="hf_abc\nx"), "homelab_ai_hf_token"),
    "env name with a space": (shared(open_webui_env={"MY VAR": "1"}), "open_webui_env.MY VAR"),
    "annotation key that is no label key": (shared(open_webui_service_annotations={"bad key!": "x"}), "open_webui_service_annotations.bad key!"),
    "PodMonitor label key that is no label key": (shared(llamacpp_podmonitor_labels={"-release": "x"}), "llamacpp_podmonitor_labels.-release"),
    "node label in Kubernetes' namespace": (
        node("media-01", homelab_ai_node_labels={"kubernetes.io/role": "x"}),
        "media-01: homelab_ai_node_labels.kubernetes.io/role",
    ),
    "node label without a prefix": (node("media-01", homelab_ai_node_labels={"fast": "true"}), "media-01: homelab_ai_node_labels.fast"),
    "checkpoint folder that climbs": (shared(stable_diffusion_checkpoint_dir="../../etc"), "stable_diffusion_checkpoint_dir"),
    # Stable Diffusion: what the proxy's configuration and the image's start script read as given
    "web UI user name with a colon": (shared(stable_diffusion_username="admin:x"), "stable_diffusion_username"),
    "web UI password with a colon": (shared(stable_diffusion_password="abc:defgh"), "stable_diffusion_password"),
    "API key with a quote and a dollar": (shared(stable_diffusion_api_key='k"; return 200; #' + "x" * 32), "stable_diffusion_api_key"),
    "API key too short to guess": (shared(stable_diffusion_api_key="short"), "stable_diffusion_api_key"),
    "ComfyUI argument with a space": (shared(stable_diffusion_args=["--preview-method auto"]), "stable_diffusion_args[0]"),
    "ComfyUI argument with a glob": (shared(stable_diffusion_args=["--output-directory=/out/*"]), "stable_diffusion_args[0]"),
    "ComfyUI listening beside the proxy": (shared(stable_diffusion_args=["--lowvram", "--listen"]), "stable_diffusion_args[1]"),
    "ComfyUI on another port": (shared(stable_diffusion_args=["--port=9000"]), "stable_diffusion_args[0]"),
    "checkpoint that is no model file": (shared(stable_diffusion_model="sd_xl_base_1.0.txt"), "stable_diffusion_model"),
    "checkpoint that the pull Jobs do not place": (shared(stable_diffusion_model="dreamshaper.safetensors"), "stable_diffusion_model"),
    "checkpoint source from Ollama": (
        shared(stable_diffusion_checkpoints=[{"source": "ollama://llama3.2:3b"}], stable_diffusion_model="llama3.2-3b.safetensors"),
        "stable_diffusion_checkpoints[0].source",
    ),
    "checkpoint source with credentials": (
        shared(stable_diffusion_checkpoints=[{"source": "https://u:p@models.example/sd.safetensors"}], stable_diffusion_model="sd.safetensors"),
        "stable_diffusion_checkpoints[0].source",
    ),
    "checkpoint sha256 that is no digest": (
        shared(stable_diffusion_checkpoints=[{"source": "hf://org/repo/sd.safetensors", "sha256": "abc"}], stable_diffusion_model="sd.safetensors"),
        "stable_diffusion_checkpoints[0].sha256",
    ),
    "checkpoint file name with a line break": (
        shared(stable_diffusion_checkpoints=[{"source": "hf://org/repo/sd.safetensors", "filename": "sd\nx.safetensors"}]),
        "stable_diffusion_checkpoints[0].filename",
    ),
    "checkpoint with an unknown key": (
        shared(stable_diffusion_checkpoints=[{"source": "hf://org/repo/sd.safetensors", "sha": "x"}]),
        "stable_diffusion_checkpoints[0]",
    ),
    "image size that is no multiple of 8": (shared(open_webui_image_resolution="1000x1001"), "open_webui_image_resolution"),
    "image steps of 10^6": (shared(open_webui_image_steps=1000000), "open_webui_image_steps"),
    "render dir across two lines": (shared(homelab_ai_render_dir="build\nother"), "homelab_ai_render_dir"),
    "node group with a space": (shared(homelab_ai_node_group="gpu nodes"), "homelab_ai_node_group"),
    "flux path that climbs": (shared(homelab_ai_flux_path="../outside"), "homelab_ai_flux_path"),
    "pooling that llama.cpp does not know": (model(0, pooling="max"), "homelab_ai_models[0] (qwen-embed).pooling"),
    "pooling of a chat model": (model(1, pooling="last"), "homelab_ai_models[1] (qwen3-30b-a3b).pooling"),
    "layers of 10^6": (model(1, layers=1000000), "homelab_ai_models[1] (qwen3-30b-a3b).layers"),
    "model name too long to scale to zero": (
        model(1, name="qwen3-30b-a3b-instruct-2507-thinking-q4"),
        "homelab_ai_models[1] (qwen3-30b-a3b-instruct-2507-thinking-q4).name",
    ),
    # look-alike switches
    "longhorn_enable for longhorn_enabled": (shared(longhorn_enable=False), "longhorn_enable"),
    "stable_difusion_enabled for stable_diffusion_enabled": (shared(stable_difusion_enabled=False), "stable_difusion_enabled"),
    "open_webui_enabeld": (shared(open_webui_enabeld=False), "open_webui_enabeld"),
    "homelab_ai_gpu on a node": (node("media-01", homelab_ai_gpu=[]), "media-01: homelab_ai_gpu"),
    # across components
    "Open WebUI without LiteLLM": (shared(litellm_enabled=False, homelab_ai_models=[]), "open_webui_enabled"),
    "a model whose backend is off": (shared(ollama_enabled=False), "homelab_ai_models[3] (llama3.2)"),
    "Ollama on a node that is not in the inventory": (shared(ollama_node="gpu-nvidia-02"), "ollama_node"),
    "Stable Diffusion on a node without an NVIDIA GPU": (shared(stable_diffusion_node="strix-01"), "stable_diffusion_node"),
    "scale to zero without a Prometheus to ask": (shared(llamacpp_prometheus_install=False), "llamacpp_prometheus_url"),
}


def _run(age_key: str, change: Change, names: Tuple[str, ...] = ()) -> List[str]:
    variables, hosts = example_inventory()
    variables = copy.deepcopy(variables)
    change(variables, hosts)
    extra = [name for name in variables if not name.startswith(("homelab_ai_", *(f"{role}_" for role in SPECS)))]
    with pytest.raises(InputError) as info:
        run_preflight(
            {**variables, "homelab_ai_sops_age_key_file": age_key},
            hosts,
            SPECS,
            declarations=DECLARATIONS,
            names=[*extra, *names],
            cwd="/x",
        )
    return [problem.where for problem in info.value.problems]


def test_there_are_at_least_sixty_unsafe_inventories():
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_unsafe_inventory_is_refused_naming_its_input(case, age_key):
    change, where = CASES[case]
    found = _run(age_key, change)
    assert where in found, found


def _string_options():
    """Every string variable of every role the preflight checks, from the argument specs."""
    for role, options in sorted(SPECS.items()):
        if role in ("node_bootstrap", "check"):  # their own plays check them; they never reach a manifest of the tree
            continue
        for name, option in sorted(options.items()):
            if option.get("type") == "str" and not option.get("choices"):
                yield name


# string variables whose values are free text by design: they reach the manifests as data, which
# tests/integration/test_bad_inputs.py::test_a_newline_and_a_key_in_free_text_stays_one_scalar renders and checks
# (the maps and lists of free text: environment values, annotations, Helm values); none of the plain strings is
FREE_TEXT: set = set()


@pytest.mark.parametrize("name", list(_string_options()))
def test_a_newline_and_a_key_in_a_string_variable_is_refused_or_free_text(name, age_key):
    if name in FREE_TEXT:
        pytest.skip(f"{name} is free text: rendered as one scalar, checked in the integration test")
    found = _run(age_key, shared(**{name: f"v-{name}\n  injected: true"}))
    assert any(where == name or where.startswith(f"{name}.") or name in where.split(" and ") for where in found), found


def test_the_generated_cases_cover_every_string_variable():
    names = list(_string_options())
    assert len(names) >= 40
    assert set(FREE_TEXT) <= set(names)


def test_the_example_passes(age_key):
    variables, hosts = example_inventory()
    run_preflight({**variables, "homelab_ai_sops_age_key_file": age_key}, hosts, SPECS, declarations=DECLARATIONS, cwd="/x")


def test_every_problem_is_reported_at_once(age_key):
    def many(variables, hosts):
        for change, _ in (CASES["image at latest"], CASES["port out of range"], CASES["context of 10^20"], CASES["longhorn_enable for longhorn_enabled"]):
            change(variables, hosts)

    assert sorted(_run(age_key, many)) == sorted(["qdrant_image", "litellm_port", "homelab_ai_models[1] (qwen3-30b-a3b).context", "longhorn_enable"])


def test_the_cases_are_yaml_safe():
    # the payloads survive a YAML round trip, as in an inventory file
    assert yaml.safe_load(yaml.safe_dump({"x": INJECTION}))["x"] == INJECTION


def test_longhorn_off_with_one_storage_class_for_all(age_key):
    variables, hosts = example_inventory()
    inventory, _ = run_preflight(
        {**variables, "longhorn_enabled": False, "homelab_ai_storage_class": "local-path", "homelab_ai_sops_age_key_file": age_key},
        hosts,
        SPECS,
        declarations=DECLARATIONS,
        cwd="/x",
    )
    assert inventory["storage"] == {"data": "local-path", "models": "local-path"}
    default, _ = run_preflight({**variables, "homelab_ai_sops_age_key_file": age_key}, hosts, SPECS, declarations=DECLARATIONS, cwd="/x")
    assert default["storage"] == {"data": "longhorn", "models": "longhorn-models"}
