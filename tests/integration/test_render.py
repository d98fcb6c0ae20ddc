"""site.yml in render mode on the example inventory: the tree, its validity, its secrets, check mode."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from tests.support.example import EXAMPLE, ROOT
from tests.support.playbook import run_site
from tests.support.tree_checks import (
    CRD_DIR,
    check_tree,
    decrypt_secrets,
    kustomization_problems,
    load_objects,
    plaintext_leaks,
    policy_problems,
    schema_problems,
    values_problems,
)


def test_the_run_ends_by_saying_where_the_tree_is_and_what_it_holds(rendered):
    tree, run = rendered
    assert f"GitOps tree: {tree}" in run.output
    for line in (
        "infrastructure/gpu-plugins/",
        "infrastructure/longhorn/",
        "apps/llamacpp/",
        "Open WebUI              http://10.10.2.25/",
        "qwen-embed              llamacpp, embedding, on gpu-amd-01",
    ):
        assert line in run.output


def test_the_tree_has_layers_with_a_directory_per_component_in_dependency_order(rendered):
    tree, _ = rendered
    infrastructure = yaml.safe_load((tree / "infrastructure" / "kustomization.yaml").read_text())["resources"]
    apps = yaml.safe_load((tree / "apps" / "kustomization.yaml").read_text())["resources"]
    assert infrastructure == ["namespaces", "gpu-plugins", "longhorn", "llamacpp"]
    assert apps == ["gpu-plugins", "llamacpp", "ollama", "litellm", "qdrant", "stable-diffusion", "open-webui", "network-policies"]
    assert sorted(p.name for p in (tree / "flux").iterdir()) == ["apps.yaml", "infrastructure.yaml"]
    assert not (tree / "kustomization.yaml").exists()  # one Kustomization for everything cannot come up
    assert kustomization_problems(tree) == []
    assert "age1" in (tree / ".sops.yaml").read_text()


def test_every_object_validates_against_the_upstream_schemas(rendered):
    tree, _ = rendered
    objects = load_objects(tree)
    problems, unchecked = schema_problems(objects)
    assert problems == []
    assert CRD_DIR.is_dir(), f"no CRDs at {CRD_DIR}"
    assert unchecked == []
    kinds = {obj["kind"] for _, obj in objects}
    assert {"HelmRelease", "HelmRepository", "ElastiService", "Kustomization", "NodeFeatureRule", "PodMonitor"} <= kinds


def test_every_helm_value_is_a_key_of_its_chart(rendered):
    tree, _ = rendered
    problems, unchecked = values_problems(load_objects(tree))
    assert problems == []
    # no values.yaml of these in tests/fixtures/charts yet: their keys were read in the charts' sources
    assert unchecked == ["kube-prometheus-stack 88.5.3", "node-feature-discovery 0.19.0"]


def test_a_misspelled_helm_value_is_caught():
    release = {"kind": "HelmRelease", "spec": {"chart": {"spec": {"chart": "longhorn", "version": "1.10.1"}}}}
    release["spec"]["values"] = {"persistence": {"defaultClas": False, "defaultClassReplicaCount": 1}, "preUpgradeChecker": {"jobEnabled": False}}
    assert values_problems([("longhorn.yaml", release)])[0] == ["longhorn.yaml: values.persistence.defaultClas: longhorn 1.10.1 has no such key"]


def test_workloads_follow_the_policy(rendered):
    tree, _ = rendered
    assert policy_problems(load_objects(tree)) == []


def test_the_example_hardware_is_modelled(rendered):
    tree, _ = rendered
    objects = {(obj["kind"], obj["metadata"]["name"]): obj for _, obj in load_objects(tree)}
    config = objects[("ConfigMap", "nvidia-device-plugin-configs")]["data"]["gpu-nvidia-01"]
    assert yaml.safe_load(config)["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 4}]
    (rule,) = objects[("NodeFeatureRule", "homelab-ai-node-gpu-nvidia-01")]["spec"]["rules"]
    assert rule["labels"]["nvidia.com/device-plugin.config"] == "gpu-nvidia-01"
    intel = objects[("DaemonSet", "intel-gpu-plugin-shared-2")]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "-shared-dev-num=2" in intel
    assert objects[("RuntimeClass", "nvidia")]["handler"] == "nvidia"
    sizes = {name: obj["spec"]["resources"]["requests"]["storage"] for (kind, name), obj in objects.items() if kind == "PersistentVolumeClaim"}
    assert (sizes["ollama-models"], sizes["open-webui-data"], sizes["sd-data"]) == ("100Gi", "10Gi", "150Gi")
    services = {name: obj["spec"] for (kind, name), obj in objects.items() if kind == "Service"}
    assert services["open-webui"]["loadBalancerIP"] == "10.10.2.25" and services["open-webui"]["ports"][0]["port"] == 80
    # ComfyUI's web UI on the LAN, its API for Open WebUI in the cluster only
    assert services["stable-diffusion-ui"]["loadBalancerIP"] == "10.10.2.26" and services["stable-diffusion-ui"]["ports"][0]["port"] == 80
    assert services["stable-diffusion"]["type"] == "ClusterIP" and services["stable-diffusion"]["ports"][0]["port"] == 8188
    assert services["ollama"]["type"] == "ClusterIP" and services["ollama"]["ports"][0]["port"] == 11434
    embed = objects[("Deployment", "llamacpp-qwen-embed")]["spec"]["template"]["spec"]
    assert embed["nodeSelector"] == {"kubernetes.io/hostname": "gpu-amd-01"}
    assert embed["containers"][0]["resources"]["limits"]["amd.com/gpu"] == 1
    assert "--embeddings" in embed["containers"][0]["args"]
    assert ("ElastiService", "llamacpp-qwen3-30b-a3b") in objects
    assert "replicas" not in objects[("Deployment", "llamacpp-qwen3-30b-a3b")]["spec"]  # left to KubeElasti
    litellm = yaml.safe_load(objects[("ConfigMap", "litellm-config")]["data"]["config.yaml"])
    assert [m["model_name"] for m in litellm["model_list"]] == ["qwen-embed", "qwen3-30b-a3b", "llama-3.3-70b", "llama3.2", "qwen2.5-coder"]


def test_secrets_are_encrypted_and_never_in_plain_text(rendered, age_key):
    tree, run = rendered
    secrets = decrypt_secrets(tree, str(age_key))
    assert sorted(name for name, _ in secrets) == [
        "apps/litellm/secret-litellm.sops.yaml",
        "apps/open-webui/secret-open-webui.sops.yaml",
        "apps/qdrant/secret-qdrant.sops.yaml",
        "apps/stable-diffusion/secret-stable-diffusion.sops.yaml",
    ]
    values = {name: secret["stringData"] for name, secret in secrets}
    assert values["apps/litellm/secret-litellm.sops.yaml"]["master-key"].startswith("sk-")
    assert len(values["apps/open-webui/secret-open-webui.sops.yaml"]["secret-key"]) == 64
    assert plaintext_leaks(tree, secrets, run.output) == []
    assert check_tree(tree, str(age_key)) == []


def test_check_mode_on_a_new_directory_writes_nothing(collections, age_key, tmp_path):
    run = run_site(collections, EXAMPLE, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(tmp_path / "out")}, args=["--check"])
    assert run.rc == 0, run.output[-3000:]
    assert run.recap["changed"] > 0
    assert not (tmp_path / "out").exists()


def test_a_second_run_and_check_mode_change_nothing(rendered, collections, age_key):
    tree, _ = rendered
    before = {p: p.read_bytes() for p in Path(tree).rglob("*") if p.is_file()}
    for args in ([], ["--check", "--diff"]):
        run = run_site(collections, EXAMPLE, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(tree.parent)}, args=args)
        assert run.rc == 0 and run.recap["changed"] == 0, run.output[-3000:]
    assert {p: p.read_bytes() for p in Path(tree).rglob("*") if p.is_file()} == before


def test_the_vram_plan_is_shown_and_written(rendered):
    tree, run = rendered
    assert "VRAM plan (what may be in use at once on each GPU):" in run.output
    assert "gpu-nvidia-01/gpu0  RTX 4000 SFF (nvidia, time-sliced x4)" in run.output
    plan = (tree / "vram-plan.md").read_text()
    assert "| gpu-nvidia-01/gpu0 (RTX 4000 SFF) | gpu-nvidia-01 | 24.0 GiB | time-sliced x4 |" in plan
    assert "| strix-02/gpu0 | llama-3.3-70b | llamacpp |" in plan


def test_gpu_nodes_get_their_labels_from_node_feature_rules_never_node_objects(rendered):
    tree, _ = rendered
    assert [path for path, obj in load_objects(tree) if obj["kind"] == "Node"] == []
    rule = yaml.safe_load((tree / "apps" / "gpu-plugins" / "nodefeaturerule-homelab-ai-node-strix-01.yaml").read_text())
    (match,) = rule["spec"]["rules"][0]["matchFeatures"]
    assert match == {"feature": "system.name", "matchExpressions": {"nodename": {"op": "In", "value": ["strix-01"]}}}
    labels = rule["spec"]["rules"][0]["labels"]
    assert labels["homelab.ai/gpu.amd"] == "true" and labels["homelab.ai/gpu.amd.apu"] == "true"
    assert labels["homelab.ai/gpu.amd.memory"] == "96Gi" and labels["homelab.ai/gpu.amd.sharing"] == "exclusive"


def test_model_pull_jobs_fill_the_volumes_before_the_servers_use_them(rendered):
    tree, _ = rendered
    objects = {(obj["kind"], obj["metadata"]["name"]): obj for _, obj in load_objects(tree)}
    jobs = {obj["metadata"]["annotations"]["homelab.ai/model"]: obj for (kind, _), obj in objects.items() if kind == "Job"}
    assert {"qwen-embed", "qwen3-30b-a3b", "llama-3.3-70b", "llama3.2", "qwen2.5-coder"} <= set(jobs)
    embed_job = jobs["qwen-embed"]["spec"]["template"]["spec"]
    assert embed_job["volumes"][0]["persistentVolumeClaim"]["claimName"] == "llamacpp-qwen-embed-cache"
    assert embed_job["nodeSelector"] == {"kubernetes.io/hostname": "gpu-amd-01"}
    embed = objects[("Deployment", "llamacpp-qwen-embed")]["spec"]["template"]["spec"]
    args = embed["containers"][0]["args"]
    assert args[args.index("--model") + 1] == "/models/Qwen3-Embedding-0.6B-Q8_0.gguf"
    assert embed["initContainers"][0]["command"][-1] == "/models/Qwen3-Embedding-0.6B-Q8_0.gguf"
    ollama_job = jobs["llama3.2"]["spec"]["template"]["spec"]
    assert ollama_job["volumes"][0]["persistentVolumeClaim"]["claimName"] == "ollama-models"
    assert '"dest": "/data/models"' in ollama_job["containers"][0]["args"][1]
    assert ("ConfigMap", "llamacpp-pull-code") in objects and ("ConfigMap", "ollama-pull-code") in objects


def test_a_hugging_face_token_reaches_the_pull_jobs_encrypted_only(collections, age_key, tmp_path):
    token = "hf_" + "gatedtoken0123456789abcdef"
    out = tmp_path / "out"
    run = run_site(collections, EXAMPLE, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(out), "homelab_ai_hf_token": token})
    assert run.rc == 0, run.output[-3000:]
    tree = out / "homelab"
    secrets = dict(decrypt_secrets(tree, str(age_key)))
    assert secrets["apps/llamacpp/secret-llamacpp-huggingface.sops.yaml"]["stringData"] == {"HF_TOKEN": token}
    jobs = [obj for path, obj in load_objects(tree) if obj["kind"] == "Job" and path.startswith("apps/llamacpp/")]
    assert len(jobs) == 3
    for job in jobs:
        env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "llamacpp-huggingface"
    assert plaintext_leaks(tree, secrets.items(), run.output) == []
    assert token not in run.output


def test_the_play_order_of_the_component_roles_does_not_matter(rendered, collections, age_key, tmp_path):
    tree, _ = rendered
    play = yaml.safe_load((ROOT / "playbooks" / "cluster.yml").read_text())[0]
    roles = [entry["role"] for entry in play["roles"]]
    components = roles[1:-1]  # preflight first and deliver last: they read and deliver everything
    assert roles[0] == "homelab.ai.preflight" and roles[-1] == "homelab.ai.deliver" and len(components) == 8
    for seed in (1, 2):
        shuffled = list(reversed(components)) if seed == 1 else components[1::2] + components[::2]
        assert shuffled != components
        play["roles"] = [{"role": role} for role in [roles[0], *shuffled, roles[-1]]]
        playbook = tmp_path / f"shuffled-{seed}.yml"
        playbook.write_text(yaml.safe_dump([play]))
        out = tmp_path / f"out-{seed}"
        shutil.copytree(tree, out / "homelab")  # the same secrets: the pods' checksums of them are then the same too
        run = run_site(collections, EXAMPLE, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(out)}, playbook=str(playbook))
        assert run.rc == 0 and run.recap["changed"] == 0, run.output[-3000:]
        assert {p.relative_to(out / "homelab"): p.read_bytes() for p in (out / "homelab").rglob("*") if p.is_file()} == {
            p.relative_to(tree): p.read_bytes() for p in tree.rglob("*") if p.is_file()
        }


def test_a_regenerated_secret_is_announced_and_restarts_only_its_readers(rendered, collections, age_key, tmp_path):
    tree, _ = rendered
    out = tmp_path / "out"
    shutil.copytree(tree, out / "homelab")
    (out / "homelab" / "apps" / "qdrant" / "secret-qdrant.sops.yaml").unlink()
    run = run_site(collections, EXAMPLE, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(out)})
    assert run.rc == 0, run.output[-3000:]
    assert "New values generated for Secret ai/qdrant (api-key): StatefulSet qdrant, Deployment open-webui restart with them" in run.output

    def checksums(root: Path) -> dict[str, str]:
        return {
            f"{obj['kind']} {obj['metadata']['name']}": obj["spec"]["template"]["metadata"]["annotations"]["homelab.ai/checksum"]
            for _, obj in load_objects(root)
            if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet") and "homelab.ai/checksum" in obj["spec"]["template"]["metadata"].get("annotations", {})
        }

    before, after = checksums(tree), checksums(out / "homelab")
    assert before.keys() == after.keys() and {"StatefulSet qdrant", "Deployment open-webui", "Deployment litellm"} <= before.keys()
    assert sorted(name for name in before if before[name] != after[name]) == ["Deployment open-webui", "StatefulSet qdrant"]


def test_open_webui_offers_the_chat_models_litellm_routes(rendered):
    tree, _ = rendered
    objects = {(obj["kind"], obj["metadata"]["name"]): obj for _, obj in load_objects(tree)}
    env = {e["name"]: e.get("value") for e in objects[("Deployment", "open-webui")]["spec"]["template"]["spec"]["containers"][0]["env"]}
    routed = [m["model_name"] for m in yaml.safe_load(objects[("ConfigMap", "litellm-config")]["data"]["config.yaml"])["model_list"]]
    # every model LiteLLM routes but the embedding model, in its order; no arena model, no update check
    assert json.loads(env["OPENAI_API_CONFIGS"]) == {"0": {"enable": True, "model_ids": [m for m in routed if m != "qwen-embed"]}}
    assert (env["ENABLE_EVALUATION_ARENA_MODELS"], env["ENABLE_VERSION_UPDATE_CHECK"]) == ("False", "False")


def test_on_k3s_servicelb_open_webui_comes_through_traefik_and_comfyui_on_a_node_port(collections, age_key, tmp_path):
    """k3s's ServiceLB binds a LoadBalancer's port on every node, where Traefik holds 80: the UIs would stay pending."""
    out = tmp_path / "out"
    run = run_site(collections, EXAMPLE, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(out), "homelab_ai_load_balancer": "servicelb"})
    assert run.rc == 0, run.output[-3000:]
    objects = {(obj["kind"], obj["metadata"]["name"]): obj for _, obj in load_objects(out / "homelab")}
    assert objects[("Service", "open-webui")]["spec"]["type"] == "ClusterIP"
    ingress = objects[("Ingress", "open-webui")]["spec"]
    assert ingress["ingressClassName"] == "traefik" and "host" not in ingress["rules"][0]
    ui = objects[("Service", "stable-diffusion-ui")]["spec"]
    assert ui["type"] == "NodePort" and "loadBalancerIP" not in ui
    assert objects[("Ingress", "litellm")]["spec"]["ingressClassName"] == "traefik"
    # what a browser opens, and Traefik (kube-system) and anyone on the node port may reach them
    assert "Open WebUI              http://gpu-nvidia-01/  (Ingress, every host name of the nodes)" in run.output
    assert "ComfyUI                 NodePort: `kubectl get svc` shows the port Kubernetes picked" in run.output
    webui_policy = objects[("NetworkPolicy", "open-webui")]["spec"]["ingress"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}} in [peer for rule in webui_policy for peer in rule["from"]]
    problems, _ = schema_problems(list(load_objects(out / "homelab")))
    assert problems == []


def test_the_summary_is_plain_lines_without_this_checkouts_ansible_cfg(collections, age_key, tmp_path):
    """As an installed collection runs: Ansible's own defaults (ansible.builtin.debug would print one JSON line)."""
    bare = tmp_path / "ansible.cfg"
    bare.write_text("[defaults]\n")
    out = tmp_path / "out"
    run = run_site(collections, EXAMPLE, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(out)}, env={"ANSIBLE_CONFIG": str(bare)}, cwd=tmp_path)
    assert run.rc == 0, run.output[-3000:]
    lines = run.output.splitlines()
    assert f"GitOps tree: {out / 'homelab'}  (93 created, 0 updated, 0 removed, 0 unchanged)" in lines
    assert "Endpoints:" in lines and "  Open WebUI              http://10.10.2.25/  (LoadBalancer)" in lines
    assert not [line for line in lines if "GitOps tree" in line and ("\\n" in line or '"' in line)]


def test_a_url_with_a_fragment_names_the_same_file_for_the_pull_job_and_the_server(collections, age_key, tmp_path):
    # https://host/x/file.gguf#sha: the Job writes file.gguf, and the server and its init container wait for it
    catalog = [{"name": "frag", "backend": "llamacpp", "source": "https://models.example/x/tiny.gguf#sha", "node": "strix-01", "size": "1Gi"}]
    out = tmp_path / "out"
    run = run_site(collections, EXAMPLE, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(out), "homelab_ai_models": catalog})
    assert run.rc == 0, run.output[-3000:]
    objects = {(obj["kind"], obj["metadata"]["name"]): obj for _, obj in load_objects(out / "homelab")}
    pod = objects[("Deployment", "llamacpp-frag")]["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--model") + 1] == "/models/tiny.gguf"
    assert pod["initContainers"][0]["command"][-1] == "/models/tiny.gguf"
    (job,) = [obj for (kind, _), obj in objects.items() if kind == "Job" and obj["metadata"]["annotations"]["homelab.ai/model"] == "frag"]
    spec = json.loads(job["spec"]["template"]["spec"]["containers"][0]["args"][1])
    assert spec["dest"] == "/models" and "filename" not in spec  # the pull code names it by Source.filename: tiny.gguf


def test_what_a_change_leaves_behind_is_said(rendered, collections, age_key, tmp_path):
    """Qdrant turned off while its volume holds Open WebUI's documents, and an Ollama model taken out of the catalog:
    nothing holding data is deleted, and the summary says what is no longer found and what stays where."""
    tree, _ = rendered
    out = tmp_path / "out"
    shutil.copytree(tree, out / "homelab")
    inventory = tmp_path / "inventory"
    shutil.copytree(EXAMPLE, inventory)
    models = inventory / "group_vars" / "all" / "models.yml"
    catalog = yaml.safe_load(models.read_text())
    catalog["homelab_ai_models"] = [m for m in catalog["homelab_ai_models"] if m["name"] != "llama3.2"]
    models.write_text(yaml.safe_dump(catalog))
    run = run_site(collections, inventory, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(out), "qdrant_enabled": False})
    assert run.rc == 0, run.output[-3000:]
    assert (
        "note: qdrant is off and its data stays in the cluster (PersistentVolumeClaim ai/qdrant-data), but open-webui no longer"
        " reaches it: what it stored in qdrant is not found (Open WebUI's documents) until qdrant_enabled is true again"
    ) in run.output
    assert (
        "left the catalog: Ollama model llama3.2 (llama3.2:3b); its files stay on the volume ollama-models. To free the space:"
        " kubectl exec -n ai statefulset/ollama -- ollama rm llama3.2:3b"
    ) in run.output
    assert (out / "homelab" / "apps" / "ollama" / "persistentvolumeclaim-ollama-models.yaml").exists()
