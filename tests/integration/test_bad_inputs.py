"""Every kind of bad input stops site.yml before anything is written, with a message naming the input and the fix."""

from __future__ import annotations

import pytest
import yaml

from tests.support.playbook import copy_example, run_site


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
        ["gpu-nvidia-01: homelab_ai_gpus[0].sharing.replicas: 0 is below 1. Fix: write a whole number of at least 1"],
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
    "role variable of the wrong kind": (
        services(lambda d: d.update(ollama_service_type="Ingress")),
        ["ollama_service_type", "ClusterIP, NodePort, LoadBalancer"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_before_anything_is_written(case, collections, age_key, tmp_path):
    (relpath, change), expected = CASES[case]
    inventory = copy_example(tmp_path / "inventory")
    edit(inventory / relpath, change)
    out = tmp_path / "out"
    run = run_site(collections, inventory, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(out)})
    assert run.rc != 0
    assert "nothing was written or applied" in run.output
    for text in expected:
        assert text in run.output, run.output[-3000:]
    assert not out.exists()


def test_no_age_key_says_how_to_make_one(collections, tmp_path):
    out = tmp_path / "out"
    run = run_site(collections, copy_example(tmp_path / "inventory"), age_key=tmp_path / "none" / "keys.txt", extra_vars={"homelab_ai_render_dir": str(out)})
    assert run.rc != 0
    assert f"homelab_ai_sops_age_key_file: no age key at {tmp_path}/none/keys.txt" in run.output
    assert "age-keygen -o" in run.output and "make age-key" in run.output
    assert not out.exists()
