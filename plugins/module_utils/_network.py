# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""NetworkPolicies from what the objects say about each other: who talks to whom, and what is exposed.

Without them any pod of the cluster reaches the llama.cpp servers and Ollama (which take no key) and so gets past
LiteLLM's master key. The namespace of the stack denies all ingress by default, and each workload then admits:

- the pods of the workloads that name one of its Services in an in-cluster URL (an env value, an argument, a file of
  a ConfigMap it mounts: LiteLLM's routes, Open WebUI's LiteLLM, Qdrant and image addresses), on that port;
- anyone on the ports of its LoadBalancer or NodePort Services, and the ingress controller's namespace on the ports
  its Ingresses name (the distribution's: Traefik in kube-system on k3s);
- Prometheus' namespace on the port of a PodMonitor that selects it, and KubeElasti's on its port when an ElastiService
  scales it to zero (the resolver forwards the requests it held).

Nothing is written by hand per component: a new component that names another's Service is admitted there.
Egress stays open (pull Jobs fetch models from the internet).
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

__all__ = ["DEFAULT_DENY", "network_policies", "service_urls"]

DEFAULT_DENY = "default-deny-ingress"
_WORKLOADS = ("Deployment", "StatefulSet")
_URL = re.compile(
    r"https?://(?P<service>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.(?P<namespace>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc(?:\.cluster\.local)?(?::(?P<port>\d+))?"
)
Peer = Dict[str, Any]


def service_urls(text: str) -> List[Tuple[str, str, Optional[int]]]:
    """``(service, namespace, port)`` of every in-cluster URL in a text (the port None where the scheme's default)."""
    return [(m["service"], m["namespace"], int(m["port"]) if m["port"] else None) for m in _URL.finditer(text)]


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def _container_port(pod: Mapping[str, Any], target: Any) -> Optional[Dict[str, Any]]:
    for container in pod.get("containers") or []:
        for port in container.get("ports") or []:
            if target in (port.get("name"), port.get("containerPort")):
                return {"port": port["containerPort"], "protocol": port.get("protocol", "TCP")}
    return None


def network_policies(
    objects: Sequence[Mapping[str, Any]], namespaces: Sequence[str], ingress_namespaces: Sequence[str], labels: Mapping[str, str]
) -> List[Dict[str, Any]]:
    """A default deny for each of ``namespaces`` and, per workload there, what may reach it (see the module's text)."""
    workloads = [o for o in objects if o["kind"] in _WORKLOADS and o["metadata"].get("namespace") in namespaces]
    services = [o for o in objects if o["kind"] == "Service"]
    configmaps = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects if o["kind"] == "ConfigMap"}

    def backend(service: Mapping[str, Any], port: Optional[int]) -> List[Tuple[Mapping[str, Any], Dict[str, Any]]]:
        """(workload, container port) behind a Service port (all its ports when ``port`` is None)."""
        found = []
        for entry in service["spec"].get("ports") or []:
            if port is not None and int(entry["port"]) != port:
                continue
            for workload in workloads:
                pod = workload["spec"]["template"]
                if workload["metadata"].get("namespace") == service["metadata"].get("namespace") and _selects(
                    service["spec"].get("selector") or {}, pod["metadata"].get("labels") or {}
                ):
                    target = _container_port(pod["spec"], entry.get("targetPort", entry["port"]))
                    if target:
                        found.append((workload, target))
        return found

    def service(name: str, namespace: str) -> Optional[Mapping[str, Any]]:
        return next((s for s in services if s["metadata"]["name"] == name and s["metadata"].get("namespace") == namespace), None)

    # (target workload key, port, protocol) -> peers
    admitted: Dict[Tuple[str, str], Dict[Tuple[int, str], List[Peer]]] = {}

    def admit(workload: Mapping[str, Any], target: Mapping[str, Any], peer: Peer) -> None:
        key = (workload["metadata"]["namespace"], workload["metadata"]["name"])
        peers = admitted.setdefault(key, {}).setdefault((int(target["port"]), str(target["protocol"])), [])
        if peer not in peers:
            peers.append(peer)

    for workload in workloads:
        pod = workload["spec"]["template"]
        namespace = workload["metadata"]["namespace"]
        texts = list(_strings(pod["spec"]))
        for volume in pod["spec"].get("volumes") or []:
            if volume.get("configMap"):
                texts += list(_strings((configmaps.get((namespace, volume["configMap"]["name"])) or {}).get("data") or {}))
        me = {"podSelector": {"matchLabels": dict(pod["metadata"].get("labels") or {})}}
        for text in texts:
            for name, url_namespace, port in service_urls(text):
                found = service(name, url_namespace)
                for target_workload, target in backend(found, port) if found else []:
                    peer = me if url_namespace == namespace else {**me, "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
                    admit(target_workload, target, peer)
    everyone: Peer = {"ipBlock": {"cidr": "0.0.0.0/0"}}
    for svc in services:
        if svc["spec"].get("type") in ("LoadBalancer", "NodePort"):
            for target_workload, target in backend(svc, None):
                admit(target_workload, target, everyone)
    for ingress in (o for o in objects if o["kind"] == "Ingress"):
        for rule in ingress["spec"].get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                ref = path["backend"]["service"]
                found = service(ref["name"], ingress["metadata"].get("namespace", ""))
                number = (ref.get("port") or {}).get("number")
                if found and number is None:
                    number = next((p["port"] for p in found["spec"]["ports"] if p.get("name") == (ref.get("port") or {}).get("name")), None)
                for target_workload, target in backend(found, number) if found else []:
                    for controller in ingress_namespaces:
                        admit(target_workload, target, {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": controller}}})
    for monitor in (o for o in objects if o["kind"] == "PodMonitor"):
        scrapers = _scrapers(objects, monitor)
        for workload in workloads:
            pod = workload["spec"]["template"]
            if workload["metadata"]["namespace"] == monitor["metadata"].get("namespace") and _selects(
                ((monitor["spec"].get("selector") or {}).get("matchLabels")) or {}, pod["metadata"].get("labels") or {}
            ):
                for endpoint in monitor["spec"].get("podMetricsEndpoints") or []:
                    scraped = _container_port(pod["spec"], endpoint.get("port"))
                    for scraper in scrapers if scraped else []:
                        admit(workload, scraped or {}, {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": scraper}}})
    resolvers = sorted({o["metadata"]["namespace"] for o in objects if o["kind"] == "HelmRelease" and o["spec"]["chart"]["spec"]["chart"] == "elasti"})
    for elasti in (o for o in objects if o["kind"] == "ElastiService"):
        found = service(elasti["spec"]["service"], elasti["metadata"].get("namespace", ""))
        for target_workload, target in backend(found, None) if found else []:
            for resolver in resolvers:
                admit(target_workload, target, {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": resolver}}})

    policies = [_policy(DEFAULT_DENY, namespace, {}, [], labels) for namespace in namespaces if any(w["metadata"]["namespace"] == namespace for w in workloads)]
    for workload in workloads:
        key = (workload["metadata"]["namespace"], workload["metadata"]["name"])
        rules = [{"from": peers, "ports": [{"port": port, "protocol": protocol}]} for (port, protocol), peers in sorted((admitted.get(key) or {}).items())]
        if rules:
            selector = dict(workload["spec"]["selector"].get("matchLabels") or {})
            policies.append(_policy(workload["metadata"]["name"], key[0], selector, rules, labels))
    return policies


def _scrapers(objects: Sequence[Mapping[str, Any]], monitor: Mapping[str, Any]) -> List[str]:
    """The namespaces of the Prometheus that reads a PodMonitor: the installed one, else the ElastiServices' address."""
    installed = sorted(
        {o["metadata"]["namespace"] for o in objects if o["kind"] == "HelmRelease" and o["spec"]["chart"]["spec"]["chart"] == "kube-prometheus-stack"}
    )
    asked = sorted(
        {
            ns
            for o in objects
            if o["kind"] == "ElastiService"
            for t in o["spec"].get("triggers") or []
            for _, ns, _ in service_urls(str((t.get("metadata") or {}).get("serverAddress", "")))
        }
    )
    return installed or asked


def _policy(name: str, namespace: str, selector: Mapping[str, str], rules: List[Dict[str, Any]], labels: Mapping[str, str]) -> Dict[str, Any]:
    spec: Dict[str, Any] = {"podSelector": {"matchLabels": dict(selector)} if selector else {}, "policyTypes": ["Ingress"]}
    if rules:
        spec["ingress"] = rules
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": spec,
    }
