"""site.yml in apply mode against a stand-in Kubernetes API server on loopback (no cluster can be had here).

The stand-in (tests/support/fake_kube.py) speaks the API that kubernetes.core uses: discovery, GET, server-side
apply with dry runs, patches. The inventory is the molecule apply scenario's: one node without GPUs and the
components that need no Helm chart (the helm binary is not available here either).
"""

from __future__ import annotations

import base64

import pytest

from tests.support.example import ROOT
from tests.support.fake_kube import FakeKube
from tests.support.playbook import run_site
from tests.support.tree_checks import decrypt_secrets, load_objects, plaintext_leaks

INVENTORY = ROOT / "extensions" / "molecule" / "apply_kind" / "inventory"
NODE = "homelab-ai-molecule-control-plane"


def apply(collections, age_key, kube, out, args=(), mode="apply"):
    kubeconfig = out.parent / f"kubeconfig-{kube.server.server_address[1]}"
    kubeconfig.write_text(kube.kubeconfig())
    return run_site(
        collections,
        INVENTORY,
        age_key=age_key,
        extra_vars={"homelab_ai_render_dir": str(out), "homelab_ai_kubeconfig": str(kubeconfig), "homelab_ai_mode": mode},
        args=args,
    )


@pytest.fixture(scope="module")
def applied(collections, age_key, tmp_path_factory):
    base = tmp_path_factory.mktemp("apply")
    with FakeKube(nodes=[NODE]) as kube:
        first = apply(collections, age_key, kube, base / "state")
        assert first.rc == 0, first.output[-4000:]
        first.requests = list(kube.log)  # what the first run asked: other tests of the module run again, in any order
        yield kube, first, base / "state" / "molecule"


def test_apply_mode_applies_namespaces_first_then_each_component(applied):
    _, run, _ = applied
    assert run.recap["changed"] > 0
    applies = [r for r in run.requests if r.method == "PATCH" and "apply-patch" in r.content_type]
    kinds = [r.kind for r in applies]
    first_namespaced = next(i for i, r in enumerate(applies) if r.namespace)
    assert kinds[0] == "Namespace" and "Namespace" not in kinds[first_namespaced:]
    order = [(r.kind, r.name) for r in applies]
    assert order.index(("Secret", "litellm")) < order.index(("Deployment", "litellm"))
    assert order.index(("Secret", "qdrant")) < order.index(("StatefulSet", "qdrant"))
    assert not [kind for kind, name in order if "longhorn" in name]  # longhorn_enabled: false renders nothing of Longhorn
    assert all(r.namespace == "ai" for r in applies if r.kind in ("Deployment", "StatefulSet", "Secret", "Service"))


def test_the_way_to_the_cluster_is_checked_before_the_nodes(applied):
    kube, run, _ = applied
    output = " ".join(run.output.split())  # the YAML callback folds long lines
    answered = output.index(f"the API server {kube.url} (v1.33.0) answers user fake of context fake in ")
    assert output.index("PLAY [Check the way to the cluster (apply mode)]") < answered < output.index("PLAY [Find the GPUs of the nodes]")


def test_apply_delivers_the_objects_render_writes(applied, collections, age_key, tmp_path):
    kube, _, _ = applied
    rendered = apply(collections, age_key, kube, tmp_path / "tree", mode="render")
    assert rendered.rc == 0, rendered.output[-3000:]
    tree = tmp_path / "tree" / "molecule"
    # the tree's flux/ Kustomizations are how Flux delivers it; apply mode delivers the rest itself, and keeps its record
    in_tree = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for path, o in load_objects(tree) if not path.startswith("flux/")}
    in_tree |= {(s["kind"], s["metadata"]["namespace"], s["metadata"]["name"]) for _, s in decrypt_secrets(tree, str(age_key))}
    in_cluster = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in kube.objects() if o["metadata"]["name"] != NODE}
    assert in_cluster == in_tree | {("ConfigMap", "kube-system", "homelab-ai-applied-molecule")}


def test_secrets_reach_the_cluster_from_memory_only(applied, age_key):
    kube, run, state = applied
    files = decrypt_secrets(state, str(age_key))
    assert sorted(name for name, _ in files) == ["apps/litellm/secret-litellm.sops.yaml", "apps/qdrant/secret-qdrant.sops.yaml"]
    in_cluster = {o["metadata"]["name"]: o for o in kube.objects("Secret")}
    for _, secret in files:
        applied_secret = in_cluster[secret["metadata"]["name"]]
        values = applied_secret.get("stringData") or {k: base64.b64decode(v).decode() for k, v in applied_secret.get("data", {}).items()}
        assert values == secret["stringData"]
    assert plaintext_leaks(state, files, run.output) == []
    assert all(p.name.endswith(".sops.yaml") for p in state.rglob("*") if p.is_file())


def test_a_second_apply_changes_nothing(applied, collections, age_key):
    kube, _, state = applied
    again = apply(collections, age_key, kube, state.parent)
    assert again.rc == 0 and again.recap["changed"] == 0, again.output[-4000:]


def test_check_mode_is_a_server_side_dry_run(collections, age_key, tmp_path):
    with FakeKube(nodes=[NODE]) as kube:
        run = apply(collections, age_key, kube, tmp_path / "state", args=["--check"])
        assert run.rc == 0, run.output[-4000:]
        writes = [r for r in kube.log if r.method in ("PATCH", "POST", "PUT", "DELETE")]
        assert writes and all(r.dry_run for r in writes)
        assert [o["metadata"]["name"] for o in kube.objects()] == [NODE]
        assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("fails", [False, True])
def test_apply_waits_for_the_model_pull_jobs_and_reports_a_failure(collections, age_key, tmp_path, fails):
    with FakeKube(nodes=[NODE], failing_jobs=["pull-llama3-2-"] if fails else []) as kube:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(kube.kubeconfig())
        run = run_site(
            collections,
            INVENTORY,
            age_key=age_key,
            extra_vars={
                "homelab_ai_render_dir": str(tmp_path / "state"),
                "homelab_ai_kubeconfig": str(kubeconfig),
                "homelab_ai_mode": "apply",
                "ollama_enabled": True,
                "homelab_ai_models": [{"name": "llama3.2", "backend": "ollama", "source": "ollama://llama3.2:3b"}],
            },
        )
        jobs = kube.objects("Job")
        assert [job["metadata"]["annotations"]["homelab.ai/model"] for job in jobs] == ["llama3.2"]
        if fails:
            assert run.rc != 0
            assert f"The model pull Job ai/{jobs[0]['metadata']['name']} failed: Job has reached the specified backoff limit" in run.output
        else:
            assert run.rc == 0, run.output[-3000:]


MODEL = {"name": "llama3.2", "backend": "ollama", "source": "ollama://llama3.2:3b"}
LLAMA = {"name": "tiny", "backend": "llamacpp", "source": "hf://org/tiny-GGUF/tiny.gguf", "node": NODE, "gpu_layers": 0, "scale_to_zero": True}


def test_a_model_removed_from_the_catalog_leaves_the_cluster_but_its_volume_stays(collections, age_key, tmp_path):
    state = tmp_path / "state"
    # a CPU llama.cpp model that scales to zero: Deployment, Service, pull Job, ElastiService, cache volume
    with_model = {
        "homelab_ai_models": [LLAMA],
        "llamacpp_kubeelasti_install": False,
        "llamacpp_prometheus_install": False,
        "llamacpp_prometheus_url": "http://prometheus.monitoring.svc.cluster.local:9090",
        "llamacpp_podmonitor": False,
    }
    with FakeKube(nodes=[NODE]) as kube:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(kube.kubeconfig())
        common = {"homelab_ai_render_dir": str(state), "homelab_ai_kubeconfig": str(kubeconfig), "homelab_ai_mode": "apply"}
        first = run_site(collections, INVENTORY, age_key=age_key, extra_vars={**common, **with_model})
        assert first.rc == 0, first.output[-4000:]
        names = {(o["kind"], o["metadata"]["name"]) for o in kube.objects()}
        model_objects = {("Deployment", "llamacpp-tiny"), ("Service", "llamacpp-tiny"), ("ElastiService", "llamacpp-tiny")}
        assert model_objects <= names and ("PersistentVolumeClaim", "llamacpp-tiny-cache") in names
        (job,) = [o["metadata"]["name"] for o in kube.objects("Job")]

        without = {**with_model, "homelab_ai_models": []}
        check = run_site(collections, INVENTORY, age_key=age_key, extra_vars={**common, **without}, args=["--check"])
        assert check.rc == 0, check.output[-4000:]
        assert "would remove: Deployment ai/llamacpp-tiny (no longer rendered)" in check.output
        assert {(o["kind"], o["metadata"]["name"]) for o in kube.objects()} == names  # check mode removed nothing

        second = run_site(collections, INVENTORY, age_key=age_key, extra_vars={**common, **without})
        assert second.rc == 0, second.output[-4000:]
        left = {(o["kind"], o["metadata"]["name"]) for o in kube.objects()}
        assert not (model_objects | {("Job", job), ("ConfigMap", "llamacpp-pull-code")}) & left
        assert ("PersistentVolumeClaim", "llamacpp-tiny-cache") in left
        assert "removed: Deployment ai/llamacpp-tiny (no longer rendered)" in second.output
        assert "kept: PersistentVolumeClaim ai/llamacpp-tiny-cache holds data and is no longer rendered" in second.output
        deletes = [(r.kind, r.name) for r in kube.log if r.method == "DELETE"]
        assert deletes.index(("Deployment", "llamacpp-tiny")) < deletes.index(("Service", "llamacpp-tiny"))

        again = run_site(collections, INVENTORY, age_key=age_key, extra_vars={**common, **without})
        assert again.rc == 0 and again.recap["changed"] == 0, again.output[-4000:]

        asked = run_site(collections, INVENTORY, age_key=age_key, extra_vars={**common, **without, "homelab_ai_prune_data": True})
        assert asked.rc == 0, asked.output[-4000:]
        assert ("PersistentVolumeClaim", "llamacpp-tiny-cache") not in {(o["kind"], o["metadata"]["name"]) for o in kube.objects()}
        assert not [r for r in kube.log if r.method == "DELETE" and r.kind == "Namespace"]  # ai is still in use
