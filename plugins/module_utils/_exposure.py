# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""How a person on the LAN reaches a component: an Ingress, a LoadBalancer or a NodePort Service, or nothing.

A role declares what it shows to people in its ``meta/component.yml``::

    exposes:
      service: open-webui                # the Service a browser reaches
      port: open_webui_port
      expose: open_webui_expose          # auto | ingress | load-balancer | node-port | none
      on_servicelb: ingress              # what auto means where LoadBalancers are k3s's ServiceLB
      load_balancer_ip: open_webui_load_balancer_ip
      node_port: open_webui_node_port
      ingress: {host: ..., class: ..., tls: ..., annotations: ...}

``auto`` is a LoadBalancer where the cluster has an address pool (MetalLB, kube-vip, Cilium: an address per Service)
and ``on_servicelb`` on k3s's ServiceLB, which binds a LoadBalancer's port on every node: port 80 and 443 are
Traefik's there, and a second Service on one port never gets it. The preflight refuses what cannot come up (two
Services on one address and port, a port Traefik holds, two Ingresses that both claim every host), and the summary
prints the address a browser opens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ._problems import Problem

__all__ = ["EXPOSE", "Exposure", "exposure_problems", "ingress_object", "resolve_exposure", "service_fields", "urls"]

EXPOSE = ("auto", "ingress", "load-balancer", "node-port", "none")
SERVICE_TYPES = {"ingress": "ClusterIP", "load-balancer": "LoadBalancer", "node-port": "NodePort", "none": "ClusterIP"}
INGRESS_PORTS = (80, 443)  # what the ingress controller listens on, through ServiceLB on every k3s node
NODE_PORTS = (30000, 32767)  # the API server's default --service-node-port-range

Value = Callable[[Any], Any]  # a role variable (or a literal, or None) of the declaration -> its value


@dataclass
class Exposure:
    component: str
    role: str
    service: str
    port: int
    kind: str  # ingress | load-balancer | node-port | none
    variable: str  # the role variable that chose it (for messages)
    load_balancer_ip: str = ""
    node_port: int = 0  # 0: the API server picks one
    host: str = ""  # the Ingress's host; "" claims every host
    ingress_class: str = ""
    tls_secret: str = ""
    annotations: Dict[str, str] = field(default_factory=dict)
    # for the summary: an address of a node (a hostless Ingress, a NodePort, ServiceLB) and the in-cluster URL
    node_address: str = ""
    cluster_url: str = ""
    shared_address: bool = False  # ServiceLB: a LoadBalancer answers on every node's address

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def resolve_exposure(
    role: str, component: str, declared: Mapping[str, Any], value: Value, *, load_balancer: str, ingress_class: str, node_address: str, cluster_url: str
) -> Exposure:
    """The exposure a declaration asks for, with ``auto`` decided for the cluster's load balancer."""
    chosen = str(value(declared["expose"]) or "auto")
    if "enabled" in declared and not value(declared["enabled"]):
        chosen = "none"
    kind = chosen
    if chosen == "auto":
        kind = str(declared.get("on_servicelb") or "node-port") if load_balancer == "servicelb" else "load-balancer"
    ingress = declared.get("ingress") or {}
    return Exposure(
        component=component,
        role=role,
        service=str(declared["service"]),
        port=int(value(declared["port"])),
        kind=kind,
        variable=str(declared["expose"]),
        load_balancer_ip=str(value(declared.get("load_balancer_ip")) or "") if kind == "load-balancer" else "",
        node_port=int(value(declared.get("node_port")) or 0) if kind == "node-port" else 0,
        host=str(value(ingress.get("host")) or "") if kind == "ingress" else "",
        ingress_class=str(value(ingress.get("class")) or ingress_class) if kind == "ingress" else "",
        tls_secret=str(value(ingress.get("tls")) or "") if kind == "ingress" else "",
        annotations={str(k): str(v) for k, v in (value(ingress.get("annotations")) or {}).items()} if kind == "ingress" else {},
        node_address=node_address,
        cluster_url=cluster_url,
        shared_address=load_balancer == "servicelb",
    )


def exposure_problems(exposures: Sequence[Exposure], load_balancer: str, distribution: str) -> List[Problem]:
    """What cannot come up: every problem at once, each naming the role variables and the fix."""
    problems: List[Problem] = []
    claims: Dict[Tuple[str, int], List[Exposure]] = {}
    for exposure in exposures:
        if exposure.kind == "load-balancer":
            # ServiceLB binds the port on every node: one address for all of them
            address = exposure.load_balancer_ip if load_balancer == "address-pool" else "every node"
            if address:
                claims.setdefault((address, exposure.port), []).append(exposure)
            if load_balancer == "servicelb" and distribution == "k3s" and exposure.port in INGRESS_PORTS:
                problems.append(
                    Problem(
                        f"{exposure.role}_port",
                        f"{exposure.port} is Traefik's on every k3s node (ServiceLB binds a LoadBalancer's port there), so {exposure.service} would stay "
                        "<pending>",
                        f"serve it through Traefik ({exposure.variable}: ingress), or give it another port ({exposure.role}_port: 8080), or set "
                        "homelab_ai_load_balancer: address-pool where MetalLB or kube-vip give each Service an address of its own",
                    )
                )
        if exposure.kind == "node-port" and exposure.node_port and not NODE_PORTS[0] <= exposure.node_port <= NODE_PORTS[1]:
            problems.append(
                Problem(
                    f"{exposure.role}_node_port",
                    f"{exposure.node_port} is outside the node port range {NODE_PORTS[0]}-{NODE_PORTS[1]}",
                    "choose a port in that range, or 0 to let Kubernetes pick one",
                )
            )
    for (address, port), sharing in sorted(claims.items()):
        if len(sharing) > 1:
            names = " and ".join(f"{e.role}_load_balancer_ip" if address != "every node" else f"{e.role}_port" for e in sharing)
            problems.append(
                Problem(
                    names,
                    f"claim the same address and port {address}:{port}; the load balancer gives it to one Service only",
                    "give each Service its own address, or another port",
                )
            )
    node_ports: Dict[int, List[Exposure]] = {}
    for exposure in exposures:
        if exposure.kind == "node-port" and exposure.node_port:
            node_ports.setdefault(exposure.node_port, []).append(exposure)
    for port, sharing in sorted(node_ports.items()):
        if len(sharing) > 1:
            problems.append(Problem(" and ".join(f"{e.role}_node_port" for e in sharing), f"claim the same node port {port}", "give each its own, or 0"))
    hostless = [e for e in exposures if e.kind == "ingress" and not e.host]
    if len(hostless) > 1:
        problems.append(
            Problem(
                " and ".join(f"{e.role}_ingress_host" for e in hostless),
                f"are empty: the Ingresses of {' and '.join(e.component for e in hostless)} would each claim every host name, and only one would be served",
                "give each a host name your LAN resolves to the nodes (for example chat.home.arpa), or all but one of them",
            )
        )
    return problems


def service_fields(exposure: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The Service's ``type`` and ``loadBalancerIP``, and the ``nodePort`` of its port, for the exposure."""
    if not exposure:
        return {"type": "ClusterIP"}
    fields: Dict[str, Any] = {"type": SERVICE_TYPES[exposure["kind"]]}
    if exposure.get("load_balancer_ip"):
        fields["loadBalancerIP"] = exposure["load_balancer_ip"]
    if exposure.get("node_port"):
        fields["nodePort"] = int(exposure["node_port"])
    return fields


def ingress_object(exposure: Optional[Mapping[str, Any]], labels: Mapping[str, str], port_name: str = "http") -> Optional[Dict[str, Any]]:
    """The Ingress of an exposure of kind ``ingress`` (None for the others)."""
    if not exposure or exposure["kind"] != "ingress":
        return None
    rule: Dict[str, Any] = {
        "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": exposure["service"], "port": {"name": port_name}}}}]}
    }
    if exposure.get("host"):
        rule = {"host": exposure["host"], **rule}
    metadata: Dict[str, Any] = {"name": exposure["service"], "labels": dict(labels)}
    if exposure.get("annotations"):
        metadata["annotations"] = dict(exposure["annotations"])
    spec: Dict[str, Any] = {}
    if exposure.get("ingress_class"):
        spec["ingressClassName"] = exposure["ingress_class"]
    if exposure.get("tls_secret"):
        spec["tls"] = [{"hosts": [exposure["host"]] if exposure.get("host") else [], "secretName": exposure["tls_secret"]}]
    spec["rules"] = [rule]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": spec}


def urls(exposure: Optional[Mapping[str, Any]], path: str = "/") -> Tuple[str, str]:
    """(what a browser on the LAN opens, how) for the summary; the first is "" where only the cluster reaches it."""
    if not exposure or exposure["kind"] == "none":
        return "", f"in the cluster only: {exposure['cluster_url'] if exposure else ''} (kubectl port-forward to reach it)"
    kind, node = exposure["kind"], exposure.get("node_address") or "<a node>"
    if kind == "ingress":
        scheme = "https" if exposure.get("tls_secret") else "http"
        return f"{scheme}://{exposure.get('host') or node}{path}", "Ingress" + ("" if exposure.get("host") else ", every host name of the nodes")
    if kind == "node-port":
        port = exposure.get("node_port")
        return (f"http://{node}:{port}{path}", "NodePort, on every node") if port else ("", "NodePort: `kubectl get svc` shows the port Kubernetes picked")
    suffix = "" if int(exposure["port"]) == 80 else f":{exposure['port']}"
    if exposure.get("shared_address"):
        return f"http://{node}{suffix}{path}", "LoadBalancer (ServiceLB), on every node"
    if exposure.get("load_balancer_ip"):
        return f"http://{exposure['load_balancer_ip']}{suffix}{path}", "LoadBalancer"
    return "", f"LoadBalancer: `kubectl get svc {exposure['service']}` shows the address it got"
