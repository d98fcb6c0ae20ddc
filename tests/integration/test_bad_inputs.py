"""Every kind of bad input stops site.yml before anything is written, with a message naming the input and the fix."""

from __future__ import annotations

import pytest
import yaml

from tests.support.example import EXAMPLE, copy_example
from tests.support.playbook import run_site
from tests.support.tree_checks import load_objects


def edit(path, change):
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def models(change):
    return ("group_vars/all/models.yml", change)


def host(name, change):
    return (f"host_vars/{name}.yml", change)


def services(change):
    return ("group_vars/all/services.yml", change)


def rename_key(entry, old, new):
    entry[new] = entry.pop(old)


CASES = {
    "misspelled model key": (
        models(lambda d: rename_key(d["homelab_ai_models"][3], "backend", "bakend")),
        ["homelab_ai_models[3] (llama3.2).bakend: is not a known key (did you mean backend?)", "Fix: use one of name, backend, source"],
    ),
    "misspelled variable": (
        ("group_vars/all/cluster.yml", lambda d: rename_key(d, "homelab_ai_mode", "homelab_ai_mdoe")),
        ["homelab_ai_mdoe: is not a variable of homelab.ai (did you mean homelab_ai_mode?)"],
    ),
    "unknown GPU vendor": (
        host("media-01", lambda d: d["homelab_ai_gpus"][0].update(vendor="intell")),
        ["media-01: homelab_ai_gpus[0].vendor: 'intell' is not a known GPU vendor (did you mean intel?). Fix: use one of nvidia, amd, intel"],
    ),
    "unknown backend": (
        models(lambda d: d["homelab_ai_models"][0].update(backend="vllm")),
        ["homelab_ai_models[0] (qwen-embed).backend: 'vllm' is not a backend", "Fix: use one of llamacpp, ollama"],
    ),
    "model on a node that does not exist": (
        models(lambda d: d["homelab_ai_models"][2].update(node="strix-03")),
        [
            "homelab_ai_models[2] (llama-3.3-70b).node: 'strix-03' is not a node of the inventory",
            "Fix: use one of gpu-nvidia-01, gpu-amd-01, strix-01, strix-02, media-01",
        ],
    ),
    "two models with one name": (
        models(lambda d: d["homelab_ai_models"].append({**d["homelab_ai_models"][3], "source": "ollama://llama3.2:1b"})),
        ["homelab_ai_models: the name 'llama3.2' is used 2 times (homelab_ai_models[3], homelab_ai_models[5])", "must be unique"],
    ),
    "size that is not a quantity": (
        services(lambda d: d.update(ollama_storage_size="100GB")),
        ["ollama_storage_size: '100GB' is not a Kubernetes quantity (write 100Gi for binary units)"],
    ),
    "model size that is not a quantity": (
        models(lambda d: d["homelab_ai_models"][1].update(size="18 GB")),
        ["homelab_ai_models[1] (qwen3-30b-a3b).size: '18 GB' is not a Kubernetes quantity"],
    ),
    "sharing replicas below 1": (
        host("gpu-nvidia-01", lambda d: d["homelab_ai_gpus"][0]["sharing"].update(replicas=0)),
        ["gpu-nvidia-01: homelab_ai_gpus[0].sharing.replicas: 0 is not between 1 and 64. Fix: write a whole number from 1 to 64"],
    ),
    "GPU over-committed": (
        services(lambda d: d.update(ollama_vram="16Gi")),
        [
            "VRAM of gpu-nvidia-01/gpu0 (RTX 4000 SFF on gpu-nvidia-01): ollama 16.0 GiB + stable-diffusion 12.0 GiB = 28.0 GiB, "
            "4.0 GiB more than its 24.0 GiB",
            "homelab_ai_vram_overcommit: true",
            "OVER-COMMITTED",
        ],
    ),
    "node-level time-slicing of an AMD GPU": (
        host("strix-01", lambda d: d.update(homelab_ai_gpu_sharing={"replicas": 2})),
        ["strix-01: homelab_ai_gpu_sharing (amd).replicas: AMD's GPU device plugin has no time-slicing"],
    ),
    "llamacpp_images without the vendor a model runs on": (
        services(lambda d: d.update(llamacpp_images={"nvidia": "ghcr.io/ggml-org/llama.cpp:server-cuda-b11312"})),
        [
            "llamacpp_images: has no image for amd (qwen-embed, qwen3-30b-a3b, llama-3.3-70b on amd): a value given replaces",
            "Fix: add amd: ghcr.io/ggml-org/llama.cpp:server-vulkan-b11312 (the role's defaults), or leave llamacpp_images out",
        ],
    ),
    "the Hub's web page of a model file": (
        models(lambda d: d["homelab_ai_models"][0].update(source="https://huggingface.co/Qwen/Qwen3-Embedding-0.6B-GGUF/blob/main/Qwen3-Embedding-0.6B-Q8_0.gguf")),
        ["is the Hub's web page of the file, which serves HTML, not the model; use hf://Qwen/Qwen3-Embedding-0.6B-GGUF/Qwen3-Embedding-0.6B-Q8_0.gguf"],
    ),
    "GPU memory without a unit": (
        host("gpu-amd-01", lambda d: d["homelab_ai_gpus"][0].update(memory=32)),
        ["gpu-amd-01: homelab_ai_gpus[0].memory: 32 has no unit, so it is 32 bytes. Fix: write the unit: 32Gi (or 32Mi)"],
    ),
    "a volume size without a unit": (
        services(lambda d: d.update(ollama_storage_size="100")),
        ["ollama_storage_size: '100' has no unit, so it is 100 bytes. Fix: write the unit: 100Gi (or 100Mi)"],
    ),
    "node on an Ollama model": (
        models(lambda d: d["homelab_ai_models"][3].update(node="gpu-amd-01")),
        [
            "homelab_ai_models[3] (llama3.2).node: is not read for an Ollama model: every Ollama model runs in the one Ollama server, on ollama_node",
            "Fix: remove node from the model, and set ollama_node: gpu-amd-01 to run Ollama there",
        ],
    ),
    "Ollama on a node that declares no GPU": (
        [host("media-01", lambda d: d.update(homelab_ai_gpus=[])), services(lambda d: d.update(ollama_node="media-01"))],
        [
            "ollama_node: 'media-01' declares no GPU (homelab_ai_gpus), so Ollama would run on its CPU",
            "or set ollama_gpu: false to run it on this node's CPU",
        ],
    ),
    "role variable of the wrong kind": (
        services(lambda d: d.update(ollama_service_type="Ingress")),
        ["ollama_service_type", "ClusterIP, NodePort, LoadBalancer"],
    ),
}


def _refused(cases, case, collections, age_key, tmp_path):
    """The example with a case's edits, run: stopped by the preflight, each expected text said once, nothing written."""
    edits, expected = cases[case]
    inventory = copy_example(tmp_path / "inventory")
    for relpath, change in edits if isinstance(edits, list) else [edits]:
        edit(inventory / relpath, change)
    out = tmp_path / "out"
    run = run_site(collections, inventory, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(out)})
    assert run.rc != 0
    assert "nothing was written or applied" in run.output
    for text in expected:
        assert text in run.output, run.output[-3000:]
        # each problem once, in the preflight's words: not repeated per host, nor by Ansible's report of the failure
        assert len(text) < 30 or run.output.count(text) == 1, run.output[-3000:]
    assert not out.exists()


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_before_anything_is_written(case, collections, age_key, tmp_path):
    _refused(CASES, case, collections, age_key, tmp_path)


def test_a_mistake_in_the_variables_of_every_host_is_said_once(collections, age_key, tmp_path):
    inventory = copy_example(tmp_path / "inventory")
    edit(inventory / "group_vars" / "all" / "cluster.yml", lambda d: rename_key(d, "homelab_ai_mode", "homelab_ai_mdoe"))
    edit(inventory / "group_vars" / "homelab_ai_nodes" / "bootstrap.yml", lambda d: d.update(homelab_ai_gpu_sharnig="exclusive"))
    run = run_site(collections, inventory, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(tmp_path / "out")})
    assert run.rc != 0
    assert run.output.count("homelab_ai_mdoe: is not a variable") == 1, run.output[-3000:]
    assert run.output.count("homelab_ai_gpu_sharnig: is not a variable") == 1
    assert "every node (5 hosts): homelab_ai_gpu_sharnig: is not a variable of homelab.ai (did you mean homelab_ai_gpu_sharing?)" in run.output
    assert "The inventory has 2 problem(s)" in run.output


def test_no_age_key_says_how_to_make_one(collections, tmp_path):
    out = tmp_path / "out"
    run = run_site(collections, copy_example(tmp_path / "inventory"), age_key=tmp_path / "none" / "keys.txt", extra_vars={"homelab_ai_render_dir": str(out)})
    assert run.rc != 0
    assert f"homelab_ai_sops_age_key_file: no age key at {tmp_path}/none/keys.txt" in run.output
    assert "age-keygen -o" in run.output and "make age-key" in run.output
    assert not out.exists()


UNSAFE = {
    "a load balancer IP that injects externalIPs": (
        services(lambda d: d.update(open_webui_load_balancer_ip="10.10.2.25\n  externalIPs: ['203.0.113.9']")),
        ["open_webui_load_balancer_ip: \"10.10.2.25\\n  externalIPs: ['203.0.113.9']\" is not an IPv4 or IPv6 address"],
    ),
    "a storage class that injects a volumeName": (
        services(lambda d: d.update(open_webui_storage_class="longhorn\n  volumeName: pvc-1")),
        ["open_webui_storage_class: 'longhorn\\n  volumeName: pvc-1' is not a DNS subdomain"],
    ),
    "a look-alike switch": (
        services(lambda d: d.update(stable_difusion_enabled=False)),
        ["stable_difusion_enabled: is not a variable of homelab.ai (did you mean stable_diffusion_enabled?)", "homelab_ai_allowed_variables"],
    ),
    "a revision that climbs out of the repository": (
        models(lambda d: d["homelab_ai_models"][1].update(source="hf://unsloth/Qwen3-30B-A3B-GGUF/Qwen3-30B-A3B-Q4_K_M.gguf@../../x")),
        ["homelab_ai_models[1] (qwen3-30b-a3b).source: 'hf://unsloth/Qwen3-30B-A3B-GGUF/Qwen3-30B-A3B-Q4_K_M.gguf@../../x': '../../x' is not a branch"],
    ),
    "two Services on one address": (
        services(lambda d: d.update(stable_diffusion_load_balancer_ip="10.10.2.25")),
        ["open_webui_load_balancer_ip and stable_diffusion_load_balancer_ip: claim the same address and port 10.10.2.25:80"],
    ),
    "a source URL with credentials": (
        models(lambda d: d["homelab_ai_models"][0].update(source="https://user:pass@models.example/f.gguf")),
        ["homelab_ai_models[0] (qwen-embed).source: 'https://user:pass@models.example/f.gguf' carries credentials"],
    ),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_an_unsafe_inventory_is_refused_before_anything_is_written(case, collections, age_key, tmp_path):
    _refused(UNSAFE, case, collections, age_key, tmp_path)


MARK = "homelab-ai-payload"


def _payload(name: str) -> str:
    return f"{MARK}-{name}\n  injected: true"


def _leaves(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path, value


def test_a_newline_and_a_key_in_free_text_stays_one_scalar(rendered, collections, age_key, tmp_path):
    """What the preflight lets through as free text (env values, annotations, Helm values) reaches the
    manifests as data: the objects are the example's, with those scalars changed and nothing added beside them."""
    baseline_tree, _ = rendered
    free = {
        "stable_diffusion_env": {"HOMELAB_AI_TEST": _payload("sd-env")},
        "open_webui_env": {"HOMELAB_AI_TEST": _payload("env")},
        "stable_diffusion_service_annotations": {"example.com/note": _payload("annotation")},
        "litellm_ingress_annotations": {"example.com/note": _payload("ingress")},
        "longhorn_values": {"defaultSettings": {"backupTarget": _payload("values")}},
    }
    out = tmp_path / "out"
    run = run_site(collections, EXAMPLE, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(out), **free})
    assert run.rc == 0, run.output[-3000:]
    before = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for _, o in load_objects(baseline_tree)}
    after = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for _, o in load_objects(out / "homelab")}
    assert set(after) == set(before)
    seen = set()
    for key, obj in after.items():
        old = dict(_leaves(before[key]))
        for path, value in _leaves(obj):
            assert "injected" not in path, (key, path)  # no payload became a key
            if isinstance(value, str) and MARK in value:
                seen.add(value.split(MARK + "-", 1)[1].split("\n", 1)[0])
                assert "\n  injected: true" in value  # the whole payload, one scalar
            elif path not in old or old[path] != value:
                # beside a payload only what carries it may differ: an env entry, an annotation, the checksum of what
                # a pod reads
                assert any(p in ("env", "annotations", "values") for p in path), (key, path, value)
    assert seen == {"sd-env", "env", "annotation", "ingress", "values"}
