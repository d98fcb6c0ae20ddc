from __future__ import annotations

from ansible_collections.homelab.ai.plugins.module_utils._exposure import (
    Exposure,
    exposure_problems,
    ingress_object,
    resolve_exposure,
    service_fields,
    urls,
)

DECLARED = {
    "service": "open-webui",
    "port": "open_webui_port",
    "expose": "open_webui_expose",
    "on_servicelb": "ingress",
    "load_balancer_ip": "open_webui_load_balancer_ip",
    "node_port": "open_webui_node_port",
    "ingress": {"host": "open_webui_ingress_host", "class": "open_webui_ingress_class", "tls": "open_webui_ingress_tls_secret"},
}


def resolve(load_balancer="address-pool", **values):
    defaults = {"open_webui_port": 80, "open_webui_expose": "auto", "open_webui_load_balancer_ip": "10.10.2.25", "open_webui_node_port": 0}
    merged = {**defaults, **values}
    return resolve_exposure(
        "open_webui",
        "open-webui",
        DECLARED,
        lambda setting: merged.get(setting) if isinstance(setting, str) and setting.startswith("open_webui_") else setting,
        load_balancer=load_balancer,
        ingress_class="traefik",
        node_address="gpu-nvidia-01",
        cluster_url="http://open-webui.ai.svc.cluster.local:80",
    )


def test_auto_is_a_load_balancer_with_an_address_pool_and_the_declared_choice_on_servicelb():
    pool = resolve()
    assert (pool.kind, pool.load_balancer_ip) == ("load-balancer", "10.10.2.25")
    assert service_fields(pool.to_dict()) == {"type": "LoadBalancer", "loadBalancerIP": "10.10.2.25"}
    assert urls(pool.to_dict()) == ("http://10.10.2.25/", "LoadBalancer")
    servicelb = resolve("servicelb")
    assert (servicelb.kind, servicelb.ingress_class, servicelb.load_balancer_ip) == ("ingress", "traefik", "")
    assert service_fields(servicelb.to_dict()) == {"type": "ClusterIP"}
    assert urls(servicelb.to_dict()) == ("http://gpu-nvidia-01/", "Ingress, every host name of the nodes")


def test_an_ingress_routes_its_host_to_the_service_and_takes_tls():
    exposure = resolve(open_webui_expose="ingress", open_webui_ingress_host="chat.home.arpa", open_webui_ingress_tls_secret="chat-tls").to_dict()
    ingress = ingress_object(exposure, {"app": "x"})
    assert ingress["spec"]["ingressClassName"] == "traefik"
    assert ingress["spec"]["tls"] == [{"hosts": ["chat.home.arpa"], "secretName": "chat-tls"}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "chat.home.arpa" and rule["http"]["paths"][0]["backend"]["service"] == {"name": "open-webui", "port": {"name": "http"}}
    assert urls(exposure) == ("https://chat.home.arpa/", "Ingress")
    assert ingress_object(resolve().to_dict(), {}) is None


def test_a_node_port_and_the_cluster_only():
    fixed = resolve(open_webui_expose="node-port", open_webui_node_port=30080).to_dict()
    assert service_fields(fixed) == {"type": "NodePort", "nodePort": 30080}
    assert urls(fixed) == ("http://gpu-nvidia-01:30080/", "NodePort, on every node")
    assert urls(resolve(open_webui_expose="node-port").to_dict())[0] == ""
    hidden = resolve(open_webui_expose="none").to_dict()
    assert service_fields(hidden) == {"type": "ClusterIP"}
    assert urls(hidden) == ("", "in the cluster only: http://open-webui.ai.svc.cluster.local:80 (kubectl port-forward to reach it)")


def exposure(role, kind, port=80, **kw) -> Exposure:
    return Exposure(component=role.replace("_", "-"), role=role, service=role, port=port, kind=kind, variable=f"{role}_expose", **kw)


def test_what_cannot_come_up_is_refused():
    # ServiceLB: Traefik's port, and two LoadBalancers on one port of every node
    found = exposure_problems([exposure("open_webui", "load-balancer"), exposure("stable_diffusion", "load-balancer")], "servicelb", "k3s")
    assert [p.where for p in found] == ["open_webui_port", "stable_diffusion_port", "open_webui_port and stable_diffusion_port"]
    assert "Traefik's on every k3s node" in found[0].message and "open_webui_expose: ingress" in found[0].fix
    # an address pool: one address and port once
    same = [exposure("open_webui", "load-balancer", load_balancer_ip="10.0.0.5"), exposure("stable_diffusion", "load-balancer", load_balancer_ip="10.0.0.5")]
    assert [p.where for p in exposure_problems(same, "address-pool", "k3s")] == ["open_webui_load_balancer_ip and stable_diffusion_load_balancer_ip"]
    # two Ingresses that claim every host, node ports out of range or twice
    two = [exposure("open_webui", "ingress"), exposure("stable_diffusion", "ingress"), exposure("litellm", "ingress", host="llm.home.arpa")]
    assert [p.where for p in exposure_problems(two, "servicelb", "k3s")] == ["open_webui_ingress_host and stable_diffusion_ingress_host"]
    ports = [exposure("open_webui", "node-port", node_port=80), exposure("a", "node-port", node_port=30080), exposure("b", "node-port", node_port=30080)]
    assert [p.where for p in exposure_problems(ports, "servicelb", "k3s")] == ["open_webui_node_port", "a_node_port and b_node_port"]
    # what works
    fine = [exposure("open_webui", "ingress"), exposure("stable_diffusion", "node-port"), exposure("litellm", "ingress", host="llm.home.arpa")]
    assert exposure_problems(fine, "servicelb", "k3s") == []
