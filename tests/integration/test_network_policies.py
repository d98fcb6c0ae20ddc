"""The rendered NetworkPolicies, evaluated against the stack's own wiring (tests/support/netpol.py: their semantics).

Every in-cluster URL that a workload carries (in its pod or a ConfigMap it mounts) must be let through to the
workload behind that Service; every backend must stay out of reach of every other pod, inside the namespace and out.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Tuple

import pytest
import yaml

from tests.support.netpol import Source, allows, labels_of, pod_source
from tests.support.tree_checks import cluster_address, load_objects, service_backend, strings_in

TRAEFIK = Source("kube-system", {"app.kubernetes.io/name": "traefik"})
OUTSIDE = Source(None)
STRANGER = Source("default", {"app": "curious"})


def used_paths(objects: List[Dict[str, Any]]) -> List[Tuple[Dict[str, Any], Dict[str, Any], int, str]]:
    """(client workload, server workload, container port, URL) for every in-cluster URL a workload carries."""
    configmaps = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects if o["kind"] == "ConfigMap"}
    found = []
    for client in (o for o in objects if o["kind"] in ("Deployment", "StatefulSet")):
        pod = client["spec"]["template"]["spec"]
        texts = list(strings_in(pod))
        for volume in pod.get("volumes") or []:
            if volume.get("configMap"):
                texts += list(strings_in(configmaps.get((client["metadata"]["namespace"], volume["configMap"]["name"]), {}).get("data") or {}))
        for text in texts:
            for word in text.split():
                address = cluster_address(word.strip("\"',"))
                backend, _ = service_backend(objects, *address) if address else (None, "")
                if backend:
                    found.append((client, backend[0], backend[2], word))
    return found


@pytest.fixture(scope="module")
def stack(rendered):
    tree, _ = rendered
    objects = [obj for _, obj in load_objects(tree)]
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    workloads = {o["metadata"]["name"]: o for o in objects if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"]["namespace"] == "ai"}
    return objects, policies, workloads


def test_the_namespace_denies_ingress_by_default(stack):
    _, policies, _ = stack
    (deny,) = [p for p in policies if p["metadata"]["name"] == "default-deny-ingress"]
    assert deny["metadata"]["namespace"] == "ai" and deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}


def test_every_url_the_stack_uses_is_let_through(stack):
    objects, policies, _ = stack
    paths = used_paths(objects)
    pairs = {(c["metadata"]["name"], s["metadata"]["name"]) for c, s, _, _ in paths}
    # the wiring of the example: LiteLLM to every model server, Open WebUI to LiteLLM, Qdrant and image generation
    assert {("litellm", "llamacpp-qwen-embed"), ("litellm", "ollama"), ("open-webui", "litellm"), ("open-webui", "qdrant")} <= pairs
    assert ("open-webui", "stable-diffusion") in pairs
    blocked = [(c["metadata"]["name"], url) for c, s, port, url in paths if not allows(policies, "ai", labels_of(s), port, pod_source(c))]
    assert blocked == []


def test_what_is_exposed_is_reachable_from_where_it_is_exposed(stack):
    _, policies, workloads = stack
    assert allows(policies, "ai", labels_of(workloads["open-webui"]), 8080, OUTSIDE)  # its LoadBalancer
    assert allows(policies, "ai", labels_of(workloads["litellm"]), 4000, TRAEFIK)  # its Ingress, through Traefik
    assert not allows(policies, "ai", labels_of(workloads["litellm"]), 4000, OUTSIDE)
    # Prometheus scrapes and KubeElasti's resolver forwards to the models that scale to zero
    for name in ("llamacpp-qwen3-30b-a3b", "llamacpp-llama-3-3-70b"):
        assert allows(policies, "ai", labels_of(workloads[name]), 8080, Source("monitoring", {"app.kubernetes.io/name": "prometheus"}))
        assert allows(policies, "ai", labels_of(workloads[name]), 8080, Source("elasti", {"app.kubernetes.io/name": "elasti-resolver"}))


def test_a_backend_is_out_of_reach_of_every_other_pod(stack):
    objects, policies, workloads = stack
    clients: Dict[str, set] = {}
    for client, server, _, _ in used_paths(objects):
        clients.setdefault(server["metadata"]["name"], set()).add(client["metadata"]["name"])
    jobs = [o for o in objects if o["kind"] == "Job"]
    for name in ("llamacpp-qwen-embed", "llamacpp-qwen3-30b-a3b", "ollama", "qdrant", "litellm"):
        server = workloads[name]
        ports = [p["containerPort"] for c in server["spec"]["template"]["spec"]["containers"] for p in c.get("ports") or []]
        others = [w for other, w in workloads.items() if other != name and other not in clients[name]]
        assert others, name
        for port in ports:
            assert [w["metadata"]["name"] for w in others if allows(policies, "ai", labels_of(server), port, pod_source(w))] == [], (name, port)
            assert not allows(policies, "ai", labels_of(server), port, STRANGER), (name, port)
            assert not allows(policies, "ai", labels_of(server), port, OUTSIDE), (name, port)
            assert [j["metadata"]["name"] for j in jobs if allows(policies, "ai", labels_of(server), port, pod_source(j))] == [], (name, port)


def test_the_evaluation_sees_a_broken_policy(stack):
    _, policies, workloads = stack
    broken = copy.deepcopy(policies)
    (litellm_to_embed,) = [p for p in broken if p["metadata"]["name"] == "llamacpp-qwen-embed"]
    litellm_to_embed["spec"]["ingress"][0]["from"] = [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "open-webui"}}}]
    client = workloads["litellm"]
    assert not allows(broken, "ai", labels_of(workloads["llamacpp-qwen-embed"]), 8080, pod_source(client))
    # and with no policy at all, every pod reaches every backend
    assert allows([], "ai", labels_of(workloads["ollama"]), 11434, STRANGER)


def test_a_policy_per_workload_of_the_namespace(stack):
    _, policies, workloads = stack
    names = {p["metadata"]["name"] for p in policies}
    assert set(workloads) <= names
    assert yaml.safe_dump(policies)  # plain data
