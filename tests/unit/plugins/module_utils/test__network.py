from __future__ import annotations

from ansible_collections.homelab.ai.plugins.module_utils._network import network_policies, service_urls


def workload(name, labels, port, env=()):
    container = {"name": "c", "ports": [{"name": "http", "containerPort": port}], "env": list(env)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "ai"},
        "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}},
    }


def service(name, labels, port, kind="ClusterIP"):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "ai"},
        "spec": {"type": kind, "selector": labels, "ports": [{"port": port, "targetPort": "http"}]},
    }


def test_service_urls():
    assert service_urls("x http://qdrant.ai.svc.cluster.local:6333 and https://litellm.ai.svc/v1") == [("qdrant", "ai", 6333), ("litellm", "ai", None)]


def test_a_workload_is_reached_by_who_names_its_service_and_by_nobody_else():
    db = workload("db", {"app": "db"}, 6333)
    web = workload("web", {"app": "web"}, 8080, [{"name": "DB", "value": "http://db.ai.svc.cluster.local:6333"}])
    idle = workload("idle", {"app": "idle"}, 9000)
    objects = [db, web, idle, service("db", {"app": "db"}, 6333), service("web", {"app": "web"}, 80, "LoadBalancer")]
    policies = {p["metadata"]["name"]: p for p in network_policies(objects, ["ai"], ["kube-system"], {"x": "y"})}
    assert policies["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    assert policies["db"]["spec"]["ingress"] == [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 6333, "protocol": "TCP"}]}]
    assert policies["web"]["spec"]["ingress"] == [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 8080, "protocol": "TCP"}]}]
    assert "idle" not in policies  # the default denial covers it
    assert network_policies(objects, [], ["kube-system"], {}) == []  # a namespace the collection does not own is left alone
