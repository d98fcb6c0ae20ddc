"""The pull Job's objects: valid against the Kubernetes 1.33 schemas, within the collection's policy, and running
the very code the unit tests run."""

from __future__ import annotations

import ast
import json
import sys

import kubernetes_validate
import pytest

from ansible_collections.homelab.ai.plugins.filter.core import FilterModule
from ansible_collections.homelab.ai.plugins.module_utils._problems import InputError
from ansible_collections.homelab.ai.plugins.module_utils._pull_job import CODE_MODULES, DEFAULT_IMAGE, cache_size, code_configmap, code_files, pull_job
from tests.support.tree_checks import K8S_VERSION, policy_problems

EMBED = {"name": "qwen-embed", "slug": "qwen-embed", "source": "hf://Qwen/Qwen3-Embedding-0.6B-GGUF/Qwen3-Embedding-0.6B-Q8_0.gguf"}
OLLAMA = {"name": "llama3.2", "source": "ollama://llama3.2:3b"}


def validate(objects):
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    assert policy_problems([("pull", obj) for obj in objects]) == []


def test_a_configmap_with_the_code_and_a_job_that_mounts_the_pvc():
    configmap, job = pull_job(EMBED, "llamacpp-qwen-embed-cache", namespace="ai", node="gpu-amd-01")
    validate([configmap, job])
    assert set(configmap["data"]) == {"__init__.py", *CODE_MODULES}
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == DEFAULT_IMAGE and container["command"] == ["python", "-m", "homelab_ai_pull._pull"]
    spec = json.loads(container["args"][1])
    assert spec == {"source": EMBED["source"], "dest": "/models", "connections": 8, "part_size": 16 << 20, "name": "qwen-embed"}
    assert {"name": "code", "configMap": {"name": configmap["metadata"]["name"]}} in pod["volumes"]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "llamacpp-qwen-embed-cache"}} in pod["volumes"]
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "gpu-amd-01"}
    assert pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 4 and job["spec"]["ttlSecondsAfterFinished"] == 86400
    assert container["resources"]["limits"]["memory"] == "512Mi"
    assert len(job["metadata"]["name"]) <= 63 and job["metadata"]["name"].startswith("pull-qwen-embed-")


def test_the_job_name_changes_with_its_spec_and_only_then():
    first = pull_job(EMBED, "cache")[1]["metadata"]["name"]
    assert pull_job(EMBED, "cache")[1]["metadata"]["name"] == first  # pure: same input, same objects
    assert pull_job({**EMBED, "sha256": "a" * 64}, "cache")[1]["metadata"]["name"] != first  # a Job's template is immutable
    long = pull_job({**EMBED, "slug": "x" * 80}, "cache")[1]["metadata"]["name"]
    assert len(long) <= 63


def test_ollama_models_go_into_ollamas_directory_and_share_one_code_configmap():
    shared = code_configmap("ollama-pull-code", "ai")
    jobs = [
        pull_job(m, "ollama-models", subdir="models", code="ollama-pull-code", namespace="ai")[0]
        for m in (OLLAMA, {"name": "qwen", "source": "ollama://qwen2.5-coder:14b"})
    ]
    validate([shared, *jobs])
    assert json.loads(jobs[0]["spec"]["template"]["spec"]["containers"][0]["args"][1])["dest"] == "/models/models"
    assert jobs[0]["metadata"]["name"] != jobs[1]["metadata"]["name"]


def test_a_token_comes_from_a_secret_and_never_from_the_spec():
    job = pull_job(EMBED, "cache", token_secret={"name": "hf-token"})[1]
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "HF_TOKEN", "optional": True}}} in env
    validate([job])


def test_bad_input_fails_at_render_time_naming_the_model():
    with pytest.raises(InputError) as info:
        pull_job({"name": "bad", "source": "s3://x/y", "sha256": "nope"}, "Not_A_PVC", image="python")
    text = str(info.value)
    assert "model bad: pvc" in text and "model bad: image" in text
    with pytest.raises(InputError, match=r"model bad\.source"):
        pull_job({"name": "bad", "source": "s3://x/y"}, "cache")


def test_the_configmap_carries_only_standard_library_code():
    files = code_files()
    assert "from ._download import" in files["_pull.py"]
    for name, text in files.items():  # the stock image has the standard library only
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                modules = [node.module or ""]
            else:
                continue
            assert all(m.split(".")[0] in sys.stdlib_module_names or m == "__future__" for m in modules), (name, modules)


def test_the_filters_are_registered():
    filters = FilterModule().filters()
    objects = filters["pull_job"](EMBED, "cache")
    assert [o["kind"] for o in objects] == ["ConfigMap", "Job"]
    assert filters["pull_code"]("x")["metadata"]["name"] == "x"


def test_cache_size():
    assert cache_size({"cache_size": 50 * 2**30}, "20Gi") == "50Gi"
    assert cache_size({"size": 18 * 2**30}, "20Gi") == "21Gi"  # 18 GiB + 10 % + 1 GiB, rounded up
    assert cache_size({"size": None}, "20Gi") == "20Gi"


def test_a_llama_cpp_models_pull_refuses_anything_but_gguf():
    def spec(model):
        return json.loads(pull_job(model, "cache")[1]["spec"]["template"]["spec"]["containers"][0]["args"][1])

    assert spec({**EMBED, "backend": "llamacpp"})["magic"] == "GGUF"
    assert "magic" not in spec({**OLLAMA, "backend": "ollama"}) and "magic" not in spec({"source": "hf://org/sd/model.safetensors"})
