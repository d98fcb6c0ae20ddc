# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Kubernetes NetworkPolicy semantics for ingress, to evaluate the rendered policies without a cluster.

As the API documents it (networking.k8s.io/v1): a pod that no policy selects for Ingress takes any traffic; one that
some policy selects takes only what one of those policies' rules admits. A rule admits a source when a ``from`` peer
matches it (none given: every source) on one of its ``ports`` (none given: every port). A peer's ``podSelector`` alone
means pods of the policy's namespace; with ``namespaceSelector`` the pods of the namespaces it selects; a
``namespaceSelector`` alone every pod there; ``ipBlock`` addresses (here: a source outside the cluster, or any pod
for 0.0.0.0/0, as most network plugins treat it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Mapping, Optional


@dataclass(frozen=True)
class Source:
    namespace: Optional[str] = None  # None: outside the cluster
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str = "192.0.2.10"

    def __hash__(self) -> int:
        return hash((self.namespace, tuple(sorted(self.labels.items())), self.ip))


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A LabelSelector: every matchLabels pair, every matchExpressions term; {} selects everything."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for term in selector.get("matchExpressions") or []:
        value, present = labels.get(term["key"]), term["key"] in labels
        op = term["operator"]
        if (op == "In" and value not in term["values"]) or (op == "NotIn" and value in term["values"]):
            return False
        if (op == "Exists" and not present) or (op == "DoesNotExist" and present):
            return False
    return True


def _peer_matches(peer: Mapping[str, Any], policy_namespace: str, source: Source) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        network = ipaddress.ip_network(block["cidr"])
        inside = ipaddress.ip_address(source.ip) in network or network.prefixlen == 0
        return inside and not any(ipaddress.ip_address(source.ip) in ipaddress.ip_network(e) for e in block.get("except") or [])
    if source.namespace is None:
        return False  # pod and namespace selectors match pods only
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": source.namespace}
        if not _selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif source.namespace != policy_namespace:
        return False
    return _selects(peer.get("podSelector") or {}, source.labels)


def allows(policies: Iterable[Mapping[str, Any]], namespace: str, labels: Mapping[str, str], port: int, source: Source) -> bool:
    """Whether ``source`` reaches TCP ``port`` of a pod with ``labels`` in ``namespace``."""
    selecting = [
        p
        for p in policies
        if p["kind"] == "NetworkPolicy"
        and p["metadata"].get("namespace") == namespace
        and "Ingress" in (p["spec"].get("policyTypes") or ["Ingress"])
        and _selects(p["spec"].get("podSelector") or {}, labels)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress") or []:
            ports = rule.get("ports")
            if ports and not any(p.get("protocol", "TCP") == "TCP" and p.get("port") in (port, None) for p in ports):
                continue
            peers = rule.get("from")
            if not peers or any(_peer_matches(peer, policy["metadata"]["namespace"], source) for peer in peers):
                return True
    return False


def pod_source(workload: Mapping[str, Any]) -> Source:
    return Source(workload["metadata"].get("namespace"), dict(workload["spec"]["template"]["metadata"].get("labels") or {}), "10.42.0.10")


def labels_of(workload: Mapping[str, Any]) -> Dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"].get("labels") or {})
